//! The event queue: a fixed-capacity binary min-heap per instance in preallocated storage,
//! ordered by `(time, order_key, insertion counter)` exactly as the reference's `heapq` tuple
//! (spec §2.5). Times are the reference's floats (`clock + travel`); a non-negative `f64`'s bit
//! pattern orders like the number, so the key compares as two integers.

use super::params::EVENTS_MAX;
use serde::{Deserialize, Serialize};

/// Event types (spec §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum EventKind {
    AcceptanceDone = 0,
    TriageDone = 1,
    TreatmentComplete = 2,
    HelperArrived = 3,
    DoctorArrived = 4,
    HelperReturnToBase = 5,
    ReadyToExit = 6,
    PatientArrivedAtTriage = 7,
    PatientArrivedAtWard = 8,
    PatientArrivedAtExit = 9,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::AcceptanceDone,
        EventKind::TriageDone,
        EventKind::TreatmentComplete,
        EventKind::HelperArrived,
        EventKind::DoctorArrived,
        EventKind::HelperReturnToBase,
        EventKind::ReadyToExit,
        EventKind::PatientArrivedAtTriage,
        EventKind::PatientArrivedAtWard,
        EventKind::PatientArrivedAtExit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::AcceptanceDone => "acceptance_done",
            EventKind::TriageDone => "triage_done",
            EventKind::TreatmentComplete => "treatment_complete",
            EventKind::HelperArrived => "helper_arrived",
            EventKind::DoctorArrived => "doctor_arrived",
            EventKind::HelperReturnToBase => "helper_return_to_base",
            EventKind::ReadyToExit => "ready_to_exit",
            EventKind::PatientArrivedAtTriage => "patient_arrived_at_triage",
            EventKind::PatientArrivedAtWard => "patient_arrived_at_ward",
            EventKind::PatientArrivedAtExit => "patient_arrived_at_exit",
        }
    }

    /// Does the subject index a patient (else a helper or a doctor)?
    pub fn subject_is_patient(self) -> bool {
        !matches!(
            self,
            EventKind::HelperArrived | EventKind::DoctorArrived | EventKind::HelperReturnToBase
        )
    }
}

/// One queued event. `seq` packs `(order_key + 8) << 32 | counter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time_bits: u64,
    pub seq: u64,
    pub kind: u8,
    pub subject: u16,
}

impl Event {
    #[inline]
    pub fn new(time: f64, order_key: i8, counter: u32, kind: EventKind, subject: u16) -> Self {
        debug_assert!(time >= 0.0 && time.is_finite());
        Self {
            time_bits: time.to_bits(),
            seq: (((order_key as i64 + 8) as u64) << 32) | counter as u64,
            kind: kind as u8,
            subject,
        }
    }

    #[inline]
    pub fn time(&self) -> f64 {
        f64::from_bits(self.time_bits)
    }

    #[inline]
    pub fn kind(&self) -> EventKind {
        EventKind::ALL[self.kind as usize]
    }

    #[inline]
    fn less(&self, other: &Event) -> bool {
        (self.time_bits, self.seq) < (other.time_bits, other.seq)
    }
}

/// Push onto the heap stored in `heap[..*len]`.
#[inline]
pub fn push(heap: &mut [Event], len: &mut u32, ev: Event) {
    let n = *len as usize;
    assert!(
        n < EVENTS_MAX,
        "HospitalSim event heap full: EVENTS_MAX = {EVENTS_MAX} pending events in one instance"
    );
    let mut i = n;
    while i > 0 {
        let parent = (i - 1) / 2;
        if ev.less(&heap[parent]) {
            heap[i] = heap[parent];
            i = parent;
        } else {
            break;
        }
    }
    heap[i] = ev;
    *len += 1;
}

/// The earliest event, if any.
#[inline]
pub fn peek(heap: &[Event], len: u32) -> Option<&Event> {
    if len == 0 { None } else { Some(&heap[0]) }
}

/// Remove and return the earliest event.
#[inline]
pub fn pop(heap: &mut [Event], len: &mut u32) -> Event {
    assert!(*len > 0, "pop from an empty event heap");
    let top = heap[0];
    let n = *len as usize - 1;
    *len -= 1;
    if n > 0 {
        let last = heap[n];
        let mut i = 0;
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && heap[r].less(&heap[l]) {
                r
            } else {
                l
            };
            if heap[c].less(&last) {
                heap[i] = heap[c];
                i = c;
            } else {
                break;
            }
        }
        heap[i] = last;
    }
    top
}

/// Check the heap property (used by invariant tests).
pub fn is_heap(heap: &[Event], len: u32) -> bool {
    (1..len as usize).all(|i| !heap[i].less(&heap[(i - 1) / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, Stream};

    #[test]
    fn pops_in_time_then_order_key_then_insertion_order() {
        let mut heap = vec![Event::default(); EVENTS_MAX];
        let mut len = 0;
        let mut s = Stream::new(1, Purpose::RandomActions, &[]);
        let mut expect = Vec::new();
        for c in 0..500u32 {
            let t = s.below(20) as f64 + [0.0, 0.5, 1.0 / 3.0][s.below(3) as usize];
            let k = -(s.below(4) as i8);
            push(
                &mut heap,
                &mut len,
                Event::new(t, k, c, EventKind::TriageDone, c as u16),
            );
            expect.push((t, k, c));
        }
        expect.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!(is_heap(&heap, len));
        for e in expect {
            let ev = pop(&mut heap, &mut len);
            assert_eq!((ev.time(), ev.subject as u32), (e.0, e.2));
        }
        assert_eq!(len, 0);
    }
}
