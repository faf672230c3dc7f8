//! The struct-of-arrays state of N instances. Every column is a `Vec` of `n * stride` values
//! (instance `i` owns `i * stride .. (i + 1) * stride`); strides are the named limits. A
//! [`Cols`] is a mutable view over a range of instances that splits at an instance boundary (how
//! the worker pool parallelises), [`Inst`] a mutable view of one instance and [`InstanceRef`] a
//! read-only one.

use super::events::{self, BUCKETS, Event, QueueMeta};
use super::layout::{ROOM_NONE, Room};
use super::params::*;
use super::patients::{STATUSES, Status};
use super::stats::HsDayStats;
use crate::rng::{Purpose, Stream};
use serde::{Deserialize, Serialize};

/// Stored "no patient".
pub const PATIENT_NONE: u16 = u16::MAX;
/// Stored "no timestamp".
pub const TIME_NONE: i32 = -1;
/// A cache minute that matches no clock.
pub const TIME_STALE: u16 = u16::MAX;

/// Helper roles.
pub const ROLE_IDLE: u8 = 0;
pub const ROLE_MOVING: u8 = 1;
pub const ROLE_ESCORTING: u8 = 2;

/// Which agent an instance waits for.
pub const PENDING_ROUTER: u8 = 0;
pub const PENDING_DISPATCHER: u8 = 1;
pub const PENDING_MANAGER: u8 = 2;

/// Per-instance scalars (one per instance, stored as a stride-1 column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scalars {
    /// The simulation clock T (minutes).
    pub clock: u16,
    /// The event queue's scalars (its nodes are the `ev*` columns).
    pub evq: QueueMeta,
    /// Insertion counter of the event queue (the third ordering key).
    pub ev_counter: u32,
    pub req_len: u16,
    /// Triage queue, one FIFO ring per priority (low, medium, high).
    pub tq_head: [u16; 3],
    pub tq_len: [u16; 3],
    /// Patients with index < next_arrival have arrived; the entrance queue is
    /// `entrance_head..next_arrival` (arrivals come in index order).
    pub next_arrival: u16,
    pub entrance_head: u16,
    pub ward_pat_len: [u16; WARDS],
    pub ward_doc_len: [u8; WARDS],
    /// Patients with status triaged per ward (kept by `set_status`).
    pub ward_triaged: [u16; WARDS],
    /// Idle helpers (role idle), bit h = helper h.
    pub helper_idle: [u64; 2],
    /// Which agent the instance waits for, and for the router which patient.
    pub pending: u8,
    pub pending_patient: u16,
    /// Swing-doctor idle penalty accumulated for the manager's next action (spec §2.5 step 8).
    pub manager_penalty: f64,
    /// Consecutive empty dispatches at minute `dispatch_run_minute`.
    pub dispatch_run: u16,
    pub dispatch_run_minute: i32,
    /// The dispatcher is not asked again at this minute (after the cap or, in clean, one empty
    /// dispatch).
    pub dispatch_blocked_minute: i32,
    /// Per-ward doctor counts (free, all) as of minute `doctor_counts_at` (`TIME_STALE`: none);
    /// every change to a doctor's busy time or room marks them stale (see `doctors_by_ward`).
    pub doctor_counts_at: u16,
    pub doctor_counts: ([u8; WARDS], [u8; WARDS]),
    /// Counterfactual world (0 factual, 1 counterfactual).
    pub world: u8,
    /// Days started so far (the current day's number + 1).
    pub days_started: u32,
    /// Yields one seed per day.
    pub episodes: Stream,
    pub stats: HsDayStats,
}

impl Default for Scalars {
    fn default() -> Self {
        Self {
            clock: 0,
            evq: QueueMeta::default(),
            ev_counter: 0,
            req_len: 0,
            tq_head: [0; 3],
            tq_len: [0; 3],
            next_arrival: 0,
            entrance_head: 0,
            ward_pat_len: [0; WARDS],
            ward_doc_len: [0; WARDS],
            ward_triaged: [0; WARDS],
            helper_idle: [0; 2],
            pending: 0,
            pending_patient: PATIENT_NONE,
            manager_penalty: 0.0,
            dispatch_run: 0,
            dispatch_run_minute: -1,
            dispatch_blocked_minute: -1,
            doctor_counts_at: TIME_STALE,
            doctor_counts: ([0; WARDS], [0; WARDS]),
            world: 0,
            days_started: 0,
            episodes: Stream::new(0, Purpose::Episodes, &[]),
            stats: HsDayStats::default(),
        }
    }
}

macro_rules! columns {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $stride:expr ; )*) => {
        /// Every instance's state, column by column (serde: the snapshot format).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct HsState {
            pub(crate) n: u32,
            // Columns an older snapshot held and this version dropped are ignored on restore.
            $( $(#[$doc])* pub(crate) $name: Vec<$ty>, )*
        }

        /// Mutable view of instances `[0, n)` of some range: each column as one fixed-size
        /// array per instance. Fields are private: every column holding exactly `n` arrays is
        /// what makes `instance` sound.
        pub(crate) struct Cols<'a> {
            n: usize,
            $( $name: &'a mut [[$ty; $stride]], )*
        }

        /// Mutable view of one instance (what the tick works on). Columns are fixed-size
        /// arrays: one pointer each, and index checks against constants.
        pub(crate) struct Inst<'a> {
            $( pub(crate) $name: &'a mut [$ty; $stride], )*
        }

        /// Read-only view of one instance (for invariant checks and inspection).
        #[allow(dead_code)] // every column is part of the view; not all are read yet
        pub struct InstanceRef<'a> {
            $( pub(crate) $name: &'a [$ty], )*
        }

        impl HsState {
            pub(crate) fn zeroed(n: usize) -> Self {
                Self { n: n as u32, $( $name: vec![<$ty as Default>::default(); n * ($stride)], )* }
            }
            pub(crate) fn cols(&mut self) -> Cols<'_> {
                let n = self.n as usize;
                // Checked here, once per call, because `Cols::instance` relies on it (a restored
                // snapshot could carry short columns).
                $(
                    assert_eq!(
                        self.$name.len(),
                        n * ($stride),
                        concat!("HsState column ", stringify!($name), " has the wrong length")
                    );
                )*
                Cols { n, $( $name: self.$name.as_chunks_mut::<{ $stride }>().0, )* }
            }
            pub(crate) fn instance(&self, i: usize) -> InstanceRef<'_> {
                InstanceRef { $( $name: &self.$name[i * ($stride)..(i + 1) * ($stride)], )* }
            }
        }

        impl<'a> Cols<'a> {
            pub(crate) fn split_at(self, at: usize) -> (Self, Self) {
                assert!(at <= self.n);
                let n = self.n;
                $( let $name = self.$name.split_at_mut(at); )*
                (
                    Cols { n: at, $( $name: $name.0, )* },
                    Cols { n: n - at, $( $name: $name.1, )* },
                )
            }
            /// Instances in this view.
            pub(crate) fn len(&self) -> usize {
                self.n
            }
            /// Instance `i` of this view. Called once per instance per decision round; with a
            /// bounds check per column it cost ~250 instructions per call (10% of a step under
            /// callgrind), unchecked ~130 (step -4.5%).
            pub(crate) fn instance(&mut self, i: usize) -> Inst<'_> {
                assert!(i < self.n, "instance {i} of {}", self.n);
                // SAFETY: `i < n` and every column holds exactly `n` arrays: `HsState::cols`
                // asserts each has `n * stride` values before chunking them by `stride` and
                // `split_at` splits all of them at the same index. The fields are private to this
                // module, so nothing else can change them.
                unsafe { Inst { $( $name: self.$name.get_unchecked_mut(i), )* } }
            }
        }

        impl Inst<'_> {
            pub(crate) fn as_ref(&self) -> InstanceRef<'_> {
                InstanceRef { $( $name: &self.$name[..], )* }
            }
        }
    };
}

columns! {
    sc: Scalars = 1;
    /// Patient columns (stride PATIENTS_MAX).
    p_impairment: u8 = PATIENTS_MAX;
    p_priority: u8 = PATIENTS_MAX;
    p_illness: u8 = PATIENTS_MAX;
    p_arrival: u16 = PATIENTS_MAX;
    p_status: u8 = PATIENTS_MAX;
    /// Room the patient is listed in (ROOM_NONE while walking or escorted).
    p_room: u8 = PATIENTS_MAX;
    /// Ward chosen by the router at the last routing (the reference's pred_illness).
    p_ward: u8 = PATIENTS_MAX;
    /// arrival_to_room_time (TIME_NONE = unset).
    p_room_time: i32 = PATIENTS_MAX;
    /// arrival_to_triage_queue_time (TIME_NONE = unset).
    p_triage_time: i32 = PATIENTS_MAX;
    p_request_time: u16 = PATIENTS_MAX;
    p_routings: u16 = PATIENTS_MAX;
    /// The per-patient reward ledger (spec §2.8).
    p_ledger: f64 = PATIENTS_MAX;
    clerk_busy: u16 = CLERKS_MAX;
    triage_busy: u16 = TRIAGE_MAX;
    /// Doctors: fixed ward by ward (dict order), then swing.
    doc_busy: u16 = DOCTORS_MAX;
    doc_room: u8 = DOCTORS_MAX;
    doc_target: u8 = DOCTORS_MAX;
    /// Helpers: nurses then robots.
    h_role: u8 = HELPERS_MAX;
    /// The reference's helper.position (the destination as soon as it sets off).
    h_room: u8 = HELPERS_MAX;
    h_target: u8 = HELPERS_MAX;
    h_patient: u16 = HELPERS_MAX;
    /// Room lists of the six wards (patients and doctors in room-list order).
    ward_pat: u16 = WARDS * PATIENTS_MAX;
    ward_doc: u8 = WARDS * DOCTORS_MAX;
    /// Triage queue rings, one per priority.
    tq: u16 = 3 * PATIENTS_MAX;
    /// Open assistance requests in creation order.
    req_patient: u16 = PATIENTS_MAX;
    req_time: u16 = PATIENTS_MAX;
    req_room: u8 = PATIENTS_MAX;
    /// The event queue (see `events::Queue`): nodes, their links and the per-minute buckets.
    ev: Event = EVENTS_MAX;
    ev_next: u16 = EVENTS_MAX;
    ev_head: u16 = BUCKETS;
    ev_tail: u16 = BUCKETS;
}

/// A helper's public state ([`InstanceRef::helper`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Helper {
    /// `ROLE_IDLE`, `ROLE_MOVING` or `ROLE_ESCORTING`.
    pub role: u8,
    /// Where it is, or as soon as it sets off where it goes (the reference's position).
    pub room: Option<Room>,
    pub target: Option<Room>,
    /// The patient it is sent for or escorts.
    pub patient: Option<usize>,
}

/// A doctor's public state ([`InstanceRef::doctor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doctor {
    /// None while it walks to another ward.
    pub room: Option<Room>,
    pub target: Option<Room>,
    /// Busy treating until this minute.
    pub busy_until: u16,
}

fn room_or_none(r: u8) -> Option<Room> {
    (r != ROOM_NONE).then(|| Room::from_u8(r))
}

impl InstanceRef<'_> {
    pub fn clock(&self) -> u16 {
        self.sc[0].clock
    }

    /// The patient the pending router decision routes (None when another role is pending).
    pub fn pending_patient(&self) -> Option<usize> {
        let s = &self.sc[0];
        (s.pending == PENDING_ROUTER && s.pending_patient != PATIENT_NONE)
            .then_some(s.pending_patient as usize)
    }

    pub fn status(&self, patient: usize) -> Status {
        Status::from_u8(self.p_status[patient])
    }

    pub fn ledger(&self, patient: usize) -> f64 {
        self.p_ledger[patient]
    }

    pub fn impairment(&self, patient: usize) -> u8 {
        self.p_impairment[patient]
    }

    pub fn priority(&self, patient: usize) -> u8 {
        self.p_priority[patient]
    }

    pub fn illness(&self, patient: usize) -> u8 {
        self.p_illness[patient]
    }

    pub fn arrival(&self, patient: usize) -> u16 {
        self.p_arrival[patient]
    }

    /// Patients of today that have arrived (arrivals come in index order).
    pub fn arrived(&self) -> usize {
        self.sc[0].next_arrival as usize
    }

    /// The room a patient is listed in; None while it walks or is escorted.
    pub fn patient_room(&self, patient: usize) -> Option<Room> {
        room_or_none(self.p_room[patient])
    }

    /// The ward the router last sent a patient to; None before its first routing.
    pub fn patient_ward(&self, patient: usize) -> Option<Room> {
        room_or_none(self.p_ward[patient])
    }

    /// Helper `h` (nurses first, then robots) as it stands.
    pub fn helper(&self, h: usize) -> Helper {
        Helper {
            role: self.h_role[h],
            room: room_or_none(self.h_room[h]),
            target: room_or_none(self.h_target[h]),
            patient: (self.h_patient[h] != PATIENT_NONE).then_some(self.h_patient[h] as usize),
        }
    }

    /// Doctor `d` (fixed doctors ward by ward, then swing doctors) as it stands.
    pub fn doctor(&self, d: usize) -> Doctor {
        Doctor {
            room: room_or_none(self.doc_room[d]),
            target: room_or_none(self.doc_target[d]),
            busy_until: self.doc_busy[d],
        }
    }

    /// Patients in the triage queue by priority (low, medium, high).
    pub fn triage_queue(&self) -> [u16; 3] {
        self.sc[0].tq_len
    }

    /// Patients arrived and not yet accepted by a clerk.
    pub fn entrance_queue(&self) -> usize {
        usize::from(self.sc[0].next_arrival - self.sc[0].entrance_head)
    }

    /// Open escort requests.
    pub fn open_requests(&self) -> usize {
        self.sc[0].req_len as usize
    }

    /// The agent this instance waits for (`PENDING_*`).
    pub fn pending(&self) -> u8 {
        self.sc[0].pending
    }

    /// Day statistics accumulated so far today.
    pub fn stats(&self) -> &HsDayStats {
        &self.sc[0].stats
    }

    pub fn pending_events(&self) -> u32 {
        self.sc[0].evq.len
    }

    /// Patients per status.
    pub fn status_counts(&self, n_patients: usize) -> [u32; STATUSES] {
        let mut c = [0u32; STATUSES];
        for &s in &self.p_status[..n_patients] {
            c[s as usize] += 1;
        }
        c
    }

    /// Check the structural invariants of one instance after a completed tick: nothing over
    /// capacity, the event queue well formed with no event in the past, every patient in exactly
    /// one place consistent with its status (room lists, triage queue, requests, escorts), staff
    /// lists consistent. (A tick that stopped at the 1000-events-per-call cap would leave events
    /// in the past; no test configuration comes near that cap.)
    pub fn check_invariants(&self, params: &HsParams) -> Result<(), String> {
        let sc = &self.sc[0];
        let n = params.n_patients as usize;
        let clock = sc.clock as f64;
        macro_rules! ensure {
            ($c:expr, $($msg:tt)*) => { let ok: bool = $c; if !ok { return Err(format!($($msg)*)); } };
        }
        // Event queue: within capacity, well formed, nothing left in the past after a completed
        // tick.
        ensure!(
            sc.evq.len as usize <= EVENTS_MAX,
            "event queue over capacity"
        );
        events::check(&sc.evq, self.ev, self.ev_next, self.ev_head, self.ev_tail)?;
        if let Some(e) = events::first(&sc.evq, self.ev, self.ev_head) {
            ensure!(
                e.time() > clock - 1.0,
                "event {} at {} is in the past (clock {})",
                e.kind().name(),
                e.time(),
                clock
            );
        }
        // Patients conserved: every patient has exactly one valid status; room-list membership
        // matches statuses.
        let counts = self.status_counts(n);
        ensure!(
            counts.iter().sum::<u32>() as usize == n,
            "patients not conserved"
        );
        let mut in_ward = [0u8; PATIENTS_MAX];
        for slot in 0..WARDS {
            let len = sc.ward_pat_len[slot] as usize;
            ensure!(len <= PATIENTS_MAX, "ward list over capacity");
            for &p in &self.ward_pat[slot * PATIENTS_MAX..slot * PATIENTS_MAX + len] {
                let p = p as usize;
                ensure!(p < n, "bad patient id {p} in ward list");
                in_ward[p] += 1;
                ensure!(
                    self.p_room[p] == Room::Resuscitation as u8 + slot as u8,
                    "patient {p} listed in ward slot {slot} but located in room {}",
                    self.p_room[p]
                );
            }
        }
        for slot in 0..WARDS {
            let len = sc.ward_pat_len[slot] as usize;
            let triaged = self.ward_pat[slot * PATIENTS_MAX..slot * PATIENTS_MAX + len]
                .iter()
                .filter(|&&p| self.p_status[p as usize] == Status::Triaged as u8)
                .count();
            ensure!(
                triaged == sc.ward_triaged[slot] as usize,
                "ward slot {slot}: {triaged} triaged patients but counter {}",
                sc.ward_triaged[slot]
            );
        }
        let mut in_tq = [0u8; PATIENTS_MAX];
        for pri in 0..3 {
            ensure!(
                sc.tq_len[pri] as usize <= PATIENTS_MAX,
                "triage queue over capacity"
            );
            for k in 0..sc.tq_len[pri] as usize {
                let p = self.tq[pri * PATIENTS_MAX + (sc.tq_head[pri] as usize + k) % PATIENTS_MAX];
                in_tq[p as usize] += 1;
                ensure!(
                    self.p_priority[p as usize] as usize == pri,
                    "patient in wrong priority queue"
                );
            }
        }
        let mut requests = [0u8; PATIENTS_MAX];
        ensure!(
            sc.req_len as usize <= PATIENTS_MAX,
            "requests over capacity"
        );
        for r in 0..sc.req_len as usize {
            requests[self.req_patient[r] as usize] += 1;
        }
        let mut escorts = [0u8; PATIENTS_MAX];
        let mut idle = 0u32;
        for h in 0..params.n_helpers() {
            let bit = (sc.helper_idle[h / 64] >> (h % 64)) & 1 == 1;
            ensure!(
                bit == (self.h_role[h] == ROLE_IDLE),
                "helper {h} idle bit disagrees with role"
            );
            idle += bit as u32;
            if self.h_patient[h] != PATIENT_NONE {
                escorts[self.h_patient[h] as usize] += 1;
            }
        }
        ensure!(
            idle == sc.helper_idle[0].count_ones() + sc.helper_idle[1].count_ones(),
            "idle bits set beyond the helpers"
        );
        for p in 0..n {
            let st = Status::from_u8(self.p_status[p]);
            let room = self.p_room[p];
            ensure!(in_ward[p] <= 1, "patient {p} listed twice in wards");
            ensure!(
                (in_ward[p] == 1) == Room::is_ward(room),
                "patient {p}: ward listing {} vs room {room}",
                in_ward[p]
            );
            ensure!(
                (in_tq[p] == 1) == (st == Status::InTriageQueue) && in_tq[p] <= 1,
                "patient {p} ({}) triage-queue membership {}",
                st.name(),
                in_tq[p]
            );
            if st == Status::Triaged || st == Status::BeingTreated {
                ensure!(
                    Room::is_ward(room),
                    "patient {p} {} outside a ward",
                    st.name()
                );
            }
            let waits = matches!(st, Status::WaitingForEscort | Status::WaitingForExit);
            ensure!(
                requests[p] + escorts[p] == u8::from(waits)
                    || (escorts[p] == 1 && st == Status::BeingEscorted),
                "patient {p} ({}) has {} requests and {} helpers",
                st.name(),
                requests[p],
                escorts[p]
            );
            if matches!(
                st,
                Status::MovingToTriage
                    | Status::MovingToWard
                    | Status::MovingToExit
                    | Status::BeingEscorted
            ) {
                ensure!(room == ROOM_NONE, "moving patient {p} is in room {room}");
            }
            if p >= sc.next_arrival as usize {
                ensure!(st == Status::Waiting, "patient {p} active before arrival");
            }
            if (p as u16) < sc.entrance_head {
                ensure!(st != Status::Waiting, "accepted patient {p} still waiting");
            }
        }
        ensure!(
            sc.entrance_head <= sc.next_arrival,
            "entrance queue head past the arrivals"
        );
        // Doctors: each listed at most once, in the room it believes it is in.
        let mut listed = [0u8; DOCTORS_MAX];
        for slot in 0..WARDS {
            for &d in &self.ward_doc
                [slot * DOCTORS_MAX..slot * DOCTORS_MAX + sc.ward_doc_len[slot] as usize]
            {
                listed[d as usize] += 1;
                ensure!(
                    self.doc_room[d as usize] == Room::Resuscitation as u8 + slot as u8,
                    "doctor {d} listed in slot {slot}"
                );
            }
        }
        #[allow(clippy::needless_range_loop)] // d indexes three columns
        for d in 0..params.n_doctors() {
            ensure!(
                listed[d] == u8::from(Room::is_ward(self.doc_room[d])),
                "doctor {d} listing {} vs room {}",
                listed[d],
                self.doc_room[d]
            );
        }
        Ok(())
    }
}
