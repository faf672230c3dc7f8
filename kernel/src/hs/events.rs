//! The event queue: a fixed-capacity calendar queue per instance in preallocated storage (see
//! [`Queue`]), popping in `(time, order_key, insertion counter)` order exactly as the reference's
//! `heapq` tuple (spec §2.5). Times are the reference's floats (`clock + travel`); a non-negative
//! `f64`'s bit pattern orders like the number, so the key compares as two integers.

use super::params::{EVENTS_MAX, MINUTES_MAX};
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

/// One bucket per minute: an event at time `x` fires on the first tick at or after `x`, i.e. on
/// tick `ceil(x)`, so it is kept in bucket `ceil(x)`. Events are scheduled at most 30 minutes
/// ahead (treatment; the longest walk is 20), so a day's last events still land below this.
pub const BUCKETS: usize = MINUTES_MAX as usize + 64;

/// "No node": the end of a bucket list or of the free list.
const NIL: u16 = u16::MAX;

const _: () = assert!(
    EVENTS_MAX < NIL as usize,
    "event nodes are u16 with NIL reserved"
);

/// The bucket of an event time (`ceil`, exact for the non-negative times below 2^31 stored here,
/// without the libm call `f64::ceil` compiles to on baseline x86-64; `i32` converts in one
/// instruction where `usize` needs several).
#[inline]
fn bucket(time: f64) -> usize {
    let whole = time as i32;
    (whole + i32::from(f64::from(whole) < time)) as usize
}

/// The scalar part of an instance's event queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    /// Pending events.
    pub len: u32,
    /// Every bucket below `cursor` is empty.
    pub cursor: u16,
    /// Head of the list of released nodes.
    pub free: u16,
    /// Nodes `used..` have never been handed out since the last [`Queue::clear`].
    pub used: u16,
}

/// The per-instance event queue: a calendar of per-minute buckets, each a singly linked list of
/// nodes kept sorted by `(time, order_key, counter)`. Bucket order agrees with time order, so
/// popping the head of the lowest non-empty bucket pops exactly the heap's minimum: the order
/// is the reference's `heapq` order (spec §2.5), without a heap's log-depth sifting. A push
/// appends at the bucket's tail when its key is the largest (most pushes) and otherwise walks
/// the bucket from its head (a dozen events in practice).
pub struct Queue<'a> {
    pub meta: &'a mut QueueMeta,
    /// Node payloads (`EVENTS_MAX`).
    pub ev: &'a mut [Event],
    /// Next node in the same bucket, or in the free list (`EVENTS_MAX`).
    pub next: &'a mut [u16],
    /// First node of each bucket (`BUCKETS`).
    pub head: &'a mut [u16],
    /// Last node of each non-empty bucket (`BUCKETS`; stale while the bucket is empty).
    pub tail: &'a mut [u16],
}

impl Queue<'_> {
    /// Empty the queue (start of a day).
    pub fn clear(&mut self) {
        self.head.fill(NIL);
        *self.meta = QueueMeta {
            len: 0,
            cursor: 0,
            free: NIL,
            used: 0,
        };
    }

    /// Insert an event.
    #[inline]
    pub fn push(&mut self, e: Event) {
        let b = bucket(e.time());
        assert!(
            b < BUCKETS,
            "HospitalSim event at minute {} is past the calendar (BUCKETS = {BUCKETS})",
            e.time()
        );
        let m = &mut *self.meta;
        let i = if m.free != NIL {
            let i = m.free;
            m.free = self.next[i as usize];
            i
        } else {
            assert!(
                (m.used as usize) < EVENTS_MAX,
                "HospitalSim event queue full: EVENTS_MAX = {EVENTS_MAX} pending events in one instance"
            );
            m.used += 1;
            m.used - 1
        };
        self.ev[i as usize] = e;
        self.next[i as usize] = NIL;
        let h = self.head[b];
        if h == NIL {
            self.head[b] = i;
            self.tail[b] = i;
        } else if self.ev[self.tail[b] as usize].less(&e) {
            // The common case (every integer-time event with order key 0: its time is the
            // bucket's largest and its counter the newest): append.
            self.next[self.tail[b] as usize] = i;
            self.tail[b] = i;
        } else {
            // Insert after every smaller key; the tail is larger, so this is never the end.
            let mut prev = NIL;
            let mut cur = h;
            while self.ev[cur as usize].less(&e) {
                prev = cur;
                cur = self.next[cur as usize];
            }
            self.next[i as usize] = cur;
            if prev == NIL {
                self.head[b] = i;
            } else {
                self.next[prev as usize] = i;
            }
        }
        m.cursor = m.cursor.min(b as u16);
        m.len += 1;
    }

    /// Remove and return the earliest event if it is due at tick `t` (its time is at most `t`).
    #[inline]
    pub fn pop_due(&mut self, t: u16) -> Option<Event> {
        let m = &mut *self.meta;
        while m.cursor <= t && self.head[m.cursor as usize] == NIL {
            m.cursor += 1;
        }
        if m.cursor > t {
            return None;
        }
        let b = m.cursor as usize;
        let i = self.head[b];
        self.head[b] = self.next[i as usize];
        self.next[i as usize] = m.free;
        m.free = i;
        m.len -= 1;
        Some(self.ev[i as usize])
    }
}

/// The earliest pending event (read-only; for invariant checks).
pub fn first(meta: &QueueMeta, ev: &[Event], head: &[u16]) -> Option<Event> {
    head[meta.cursor as usize..]
        .iter()
        .find(|&&i| i != NIL)
        .map(|&i| ev[i as usize])
}

/// Check the calendar's structure: buckets below the cursor empty, every event in the bucket of
/// its time, buckets sorted, tails at their ends, `len` events reachable (used by invariant
/// tests).
pub fn check(
    meta: &QueueMeta,
    ev: &[Event],
    next: &[u16],
    head: &[u16],
    tail: &[u16],
) -> Result<(), String> {
    if head[..meta.cursor as usize].iter().any(|&i| i != NIL) {
        return Err("event bucket below the cursor is not empty".into());
    }
    let mut count = 0usize;
    for (b, &h) in head.iter().enumerate() {
        let mut cur = h;
        let mut prev: Option<Event> = None;
        let mut last = NIL;
        while cur != NIL {
            count += 1;
            if count > EVENTS_MAX {
                return Err("event bucket lists form a cycle".into());
            }
            let e = ev[cur as usize];
            if bucket(e.time()) != b {
                return Err(format!("event at {} filed in bucket {b}", e.time()));
            }
            if prev.is_some_and(|p| !p.less(&e)) {
                return Err(format!("event bucket {b} out of order"));
            }
            prev = Some(e);
            last = cur;
            cur = next[cur as usize];
        }
        if h != NIL && tail[b] != last {
            return Err(format!("event bucket {b}: tail is not its last node"));
        }
    }
    if count != meta.len as usize {
        return Err(format!(
            "event queue holds {count} events but len is {}",
            meta.len
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, Stream};

    struct Storage {
        meta: QueueMeta,
        ev: Vec<Event>,
        next: Vec<u16>,
        head: Vec<u16>,
        tail: Vec<u16>,
    }

    impl Storage {
        fn new() -> Self {
            let mut st = Self {
                meta: QueueMeta::default(),
                ev: vec![Event::default(); EVENTS_MAX],
                next: vec![0; EVENTS_MAX],
                head: vec![0; BUCKETS],
                tail: vec![0; BUCKETS],
            };
            st.queue().clear();
            st
        }
        fn queue(&mut self) -> Queue<'_> {
            Queue {
                meta: &mut self.meta,
                ev: &mut self.ev,
                next: &mut self.next,
                head: &mut self.head,
                tail: &mut self.tail,
            }
        }
        fn check(&self) {
            check(&self.meta, &self.ev, &self.next, &self.head, &self.tail).unwrap();
        }
    }

    #[test]
    fn bucket_is_ceil() {
        for x in [0.0, 0.1, 1.0, 1.5, 2.0 - 1e-12, 2.0, 719.9, 720.0, 745.25] {
            assert_eq!(bucket(x), x.ceil() as usize, "{x}");
        }
    }

    /// A tick loop as the kernel drives it (pop what is due, push new events from "now" on, and
    /// sometimes pause mid-tick) against a sorted model of the heap order.
    #[test]
    fn pops_in_time_then_order_key_then_insertion_order() {
        let mut st = Storage::new();
        let mut model: Vec<(f64, i8, u32)> = Vec::new();
        let mut s = Stream::new(1, Purpose::RandomActions, &[]);
        let mut counter = 0u32;
        let mut popped = 0;
        for t in 0..400u16 {
            loop {
                // Pushes from now: same minute, integer delays and fractional walks.
                let pushes = if model.len() < 600 { s.below(4) } else { 0 };
                for _ in 0..pushes {
                    let delay = match s.below(4) {
                        0 => 0.0,
                        1 => s.below(31) as f64,
                        _ => s.below(200) as f64 / 10.0 + 0.1,
                    };
                    let time = t as f64 + delay;
                    let k = -(s.below(4) as i8);
                    let e = Event::new(time, k, counter, EventKind::TriageDone, counter as u16);
                    st.queue().push(e);
                    model.push((time, k, counter));
                    counter += 1;
                }
                model.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let want = model.first().filter(|m| m.0 <= t as f64).copied();
                let got = st.queue().pop_due(t);
                assert_eq!(
                    got.map(|e| (e.time(), e.lo >> 24 & 0xf_ffff_ffff)),
                    want.map(|m| (m.0, m.2 as u64)),
                    "tick {t}"
                );
                if want.is_none() {
                    break;
                }
                model.remove(0);
                popped += 1;
                if s.below(8) == 0 {
                    break; // a pause mid-tick leaves due events for the next tick
                }
            }
            st.check();
            assert_eq!(st.meta.len as usize, model.len());
            let first = first(&st.meta, &st.ev, &st.head).map(|e| e.time());
            assert_eq!(first, model.first().map(|m| m.0));
        }
        assert!(popped > 1000 && counter > 1000, "{popped} {counter}");
    }
}
