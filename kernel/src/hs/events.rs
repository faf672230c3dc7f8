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

/// One queued event in 16 bytes: `hi` is the time's bit pattern; `lo` packs
/// `(order_key + 8) << 60 | counter << 24 | kind << 16 | subject`. Counters are unique, so the
/// kind and subject below them never decide an ordering: comparing `(hi, lo)` is comparing
/// `(time, order_key, counter)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub hi: u64,
    pub lo: u64,
}

/// Counters must fit their 36 bits (a day has ~10^4 events).
pub const COUNTER_MAX: u32 = u32::MAX;

impl Event {
    #[inline]
    pub fn new(time: f64, order_key: i8, counter: u32, kind: EventKind, subject: u16) -> Self {
        debug_assert!(time >= 0.0 && time.is_finite());
        debug_assert!((-8..8).contains(&order_key));
        Self {
            hi: time.to_bits(),
            lo: ((order_key as i64 + 8) as u64) << 60
                | (counter as u64) << 24
                | (kind as u64) << 16
                | subject as u64,
        }
    }

    #[inline]
    pub fn time(&self) -> f64 {
        f64::from_bits(self.hi)
    }

    #[inline]
    pub fn kind(&self) -> EventKind {
        EventKind::ALL[((self.lo >> 16) & 0xff) as usize]
    }

    #[inline]
    pub fn subject(&self) -> u16 {
        self.lo as u16
    }

    #[inline]
    fn less(&self, other: &Event) -> bool {
        ((self.hi as u128) << 64 | self.lo as u128) < ((other.hi as u128) << 64 | other.lo as u128)
    }
}

/// Children of node `i` are `4i + 1 ..= 4i + 4` (a 4-ary heap: half the depth of a binary heap,
/// and the four children sit next to each other in memory).
const ARITY: usize = 4;

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
        let parent = (i - 1) / ARITY;
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

/// Remove and return the earliest event. Bottom-up deletion: the hole left at the root walks
/// down to a leaf along the smallest children, then the last element sifts up from there
/// (usually zero or one step). Same result as the textbook sift-down (keys are unique), with
/// fewer unpredictable branches.
#[inline]
pub fn pop(heap: &mut [Event], len: &mut u32) -> Event {
    assert!(*len > 0, "pop from an empty event heap");
    let top = heap[0];
    let n = *len as usize - 1;
    *len -= 1;
    if n == 0 {
        return top;
    }
    let last = heap[n];
    let mut i = 0;
    loop {
        let first = ARITY * i + 1;
        if first >= n {
            break;
        }
        let mut c = first;
        let end = (first + ARITY).min(n);
        for k in first + 1..end {
            c = if heap[k].less(&heap[c]) { k } else { c };
        }
        heap[i] = heap[c];
        i = c;
    }
    while i > 0 {
        let parent = (i - 1) / ARITY;
        if last.less(&heap[parent]) {
            heap[i] = heap[parent];
            i = parent;
        } else {
            break;
        }
    }
    heap[i] = last;
    top
}

/// Check the heap property (used by invariant tests).
pub fn is_heap(heap: &[Event], len: u32) -> bool {
    (1..len as usize).all(|i| !heap[i].less(&heap[(i - 1) / ARITY]))
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
            assert_eq!((ev.time(), ev.subject() as u32), (e.0, e.2));
        }
        assert_eq!(len, 0);
    }
}
