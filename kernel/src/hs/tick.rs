//! One tick of one instance (spec §2.5) and the event handlers of the patient journey (§2.6).
//!
//! Time: the clock is an integer minute; event times are the reference's floats
//! (`clock + travel`), and an event fires on the first tick whose clock is at or after its time.
//!
//! Hot-path notes (semantics unchanged): the waiting-penalty pass of step 9 visits only the
//! patients that can be penalised (those listed in a ward with status triaged, and the triage
//! queue), the treatment pass skips empty wards, and idle helpers are a bit mask.

use super::events::{self, Event, EventKind};
use super::layout::{
    CANONICAL_WARD, ROOM_NONE, Room, SPEED_NURSE, SPEED_ROBOT, SPEEDS, TravelTable, quality,
    ward_slot,
};
use super::log::{Cause, EventSink, LogRecord};
use super::params::*;
use super::patients::{IMPAIRMENT_HIGH, IMPAIRMENT_NONE, Status, WAIT_WEIGHT};
use super::state::*;

/// Everything a tick reads besides the instance state.
pub(crate) struct Ctx<'p> {
    pub params: &'p HsParams,
    pub flags: HsFlags,
    pub travel: &'p TravelTable,
}

/// Why a tick call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    None,
    Routing,
    Dispatch,
    Manager,
}

/// Bit k set iff `action[k] < lim`, for components and `lim` both below 128 (SWAR, 8 bytes at a
/// time: `(r | 0x80) - lim` keeps its high bit iff `r >= lim`, and a multiply gathers the eight
/// high bits into one byte; a loop of 20 compares and shifts is several times longer).
#[inline]
fn below_mask(action: &[u8; DISPATCH_COMPONENTS], lim: u8) -> u32 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    debug_assert!(lim < 0x80 && action.iter().all(|&r| r < 0x80));
    let mut padded = [0x7fu8; DISPATCH_COMPONENTS.next_multiple_of(8)];
    padded[..DISPATCH_COMPONENTS].copy_from_slice(action);
    let mut mask = 0u32;
    for (c, chunk) in padded.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let below = !((x | HIGH) - ONES * u64::from(lim)) & HIGH;
        // Byte j's high bit (bit 8j + 7) moves to bit 56 + j.
        let packed = ((below >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
        mask |= packed << (8 * c);
    }
    mask & ((1u32 << DISPATCH_COMPONENTS) - 1)
}

impl Inst<'_> {
    // ---------------------------------------------------------------- small helpers

    #[inline]
    pub(crate) fn clock(&self) -> u16 {
        self.sc[0].clock
    }

    #[inline]
    fn requires_assistance(&self, p: usize) -> bool {
        self.p_impairment[p] != IMPAIRMENT_NONE
    }

    /// Change a patient's status, crediting potential-based shaping (spec §2.8).
    #[inline]
    pub(crate) fn set_status<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        p: usize,
        new: Status,
        cause: Cause,
    ) {
        let old = Status::from_u8(self.p_status[p]);
        self.p_status[p] = new as u8;
        // Patients change to or from "triaged" only while listed in their ward.
        if old == Status::Triaged {
            self.sc[0].ward_triaged[ward_slot(self.p_room[p])] -= 1;
        }
        if new == Status::Triaged {
            self.sc[0].ward_triaged[ward_slot(self.p_room[p])] += 1;
        }
        if let (Some(a), Some(b)) = (old.potential(), new.potential())
            && b > a
        {
            self.p_ledger[p] += ctx.params.gamma * b - a;
        }
        if L::ENABLED {
            log.record(LogRecord {
                instance: inst,
                clock: self.clock(),
                cause,
                patient: Some(p as u16),
                staff: None,
                change: Some((old, new)),
            });
        }
    }

    #[inline]
    fn log_staff<L: EventSink>(
        &self,
        log: &mut L,
        inst: u32,
        cause: Cause,
        staff: usize,
        patient: u16,
    ) {
        if L::ENABLED {
            log.record(LogRecord {
                instance: inst,
                clock: self.clock(),
                cause,
                patient: (patient != PATIENT_NONE).then_some(patient),
                staff: Some(staff as u16),
                change: None,
            });
        }
    }

    #[inline]
    fn push_event(&mut self, time: f64, order_key: i8, kind: EventKind, subject: usize) {
        let sc = &mut self.sc[0];
        let ev = Event::new(time, order_key, sc.ev_counter, kind, subject as u16);
        sc.ev_counter += 1;
        self.queue().push(ev);
    }

    /// The instance's event queue.
    #[inline]
    pub(crate) fn queue(&mut self) -> events::Queue<'_> {
        events::Queue {
            meta: &mut self.sc[0].evq,
            ev: self.ev,
            next: self.ev_next,
            head: self.ev_head,
            tail: self.ev_tail,
        }
    }

    /// Remove a patient from its room list (the reference's `_move_agent_to_room(p, None)`).
    #[inline]
    fn leave_room(&mut self, p: usize) {
        let room = self.p_room[p];
        if Room::is_ward(room) {
            let slot = ward_slot(room);
            let len = self.sc[0].ward_pat_len[slot] as usize;
            let list = &mut self.ward_pat[slot * PATIENTS_MAX..slot * PATIENTS_MAX + len];
            let at = list
                .iter()
                .position(|&q| q as usize == p)
                .expect("patient missing from its ward list");
            list.copy_within(at + 1.., at);
            self.sc[0].ward_pat_len[slot] -= 1;
        }
        self.p_room[p] = ROOM_NONE;
    }

    /// Move a patient into a room, appending it to the room's list (removing it first).
    #[inline]
    fn enter_room(&mut self, p: usize, room: u8) {
        self.leave_room(p);
        if Room::is_ward(room) {
            let slot = ward_slot(room);
            let len = self.sc[0].ward_pat_len[slot] as usize;
            assert!(
                len < PATIENTS_MAX,
                "ward list full (PATIENTS_MAX = {PATIENTS_MAX})"
            );
            self.ward_pat[slot * PATIENTS_MAX + len] = p as u16;
            self.sc[0].ward_pat_len[slot] += 1;
        }
        self.p_room[p] = room;
    }

    /// Set a doctor's busy-until minute (through here, so cached counts go stale).
    #[inline]
    pub(crate) fn set_doc_busy(&mut self, d: usize, until: u16) {
        self.doc_busy[d] = until;
        self.sc[0].doctor_counts_at = TIME_STALE;
    }

    #[inline]
    fn doc_leave_room(&mut self, d: usize) {
        self.sc[0].doctor_counts_at = TIME_STALE;
        let room = self.doc_room[d];
        if Room::is_ward(room) {
            let slot = ward_slot(room);
            let len = self.sc[0].ward_doc_len[slot] as usize;
            let list = &mut self.ward_doc[slot * DOCTORS_MAX..slot * DOCTORS_MAX + len];
            let at = list
                .iter()
                .position(|&q| q as usize == d)
                .expect("doctor missing from its ward list");
            list.copy_within(at + 1.., at);
            self.sc[0].ward_doc_len[slot] -= 1;
        }
        self.doc_room[d] = ROOM_NONE;
    }

    #[inline]
    pub(crate) fn doc_enter_room(&mut self, d: usize, room: u8) {
        self.doc_leave_room(d);
        if Room::is_ward(room) {
            let slot = ward_slot(room);
            let len = self.sc[0].ward_doc_len[slot] as usize;
            assert!(
                len < DOCTORS_MAX,
                "ward doctor list full (DOCTORS_MAX = {DOCTORS_MAX})"
            );
            self.ward_doc[slot * DOCTORS_MAX + len] = d as u8;
            self.sc[0].ward_doc_len[slot] += 1;
        }
        self.doc_room[d] = room;
    }

    /// Start a patient walking on its own (the reference's `_initiate_patient_move`).
    #[inline]
    fn walk(&mut self, ctx: &Ctx, p: usize, from: u8, to: u8, kind: EventKind) {
        let travel = ctx.travel.get(self.p_impairment[p] as usize, from, to);
        self.leave_room(p);
        let t = self.clock() as f64 + travel;
        self.push_event(t, 0, kind, p);
    }

    /// Open an assistance request for patient `p` at `room`.
    #[inline]
    fn request(&mut self, p: usize, room: u8) {
        let sc = &mut self.sc[0];
        let r = sc.req_len as usize;
        assert!(
            r < PATIENTS_MAX,
            "request list full (PATIENTS_MAX = {PATIENTS_MAX})"
        );
        self.req_patient[r] = p as u16;
        self.req_time[r] = sc.clock;
        self.req_room[r] = room;
        self.p_request_time[p] = sc.clock;
        sc.req_len += 1;
    }

    #[inline]
    fn triage_queue_push(&mut self, p: usize) {
        let pri = self.p_priority[p] as usize;
        let sc = &mut self.sc[0];
        let len = sc.tq_len[pri] as usize;
        assert!(
            len < PATIENTS_MAX,
            "triage queue full (PATIENTS_MAX = {PATIENTS_MAX})"
        );
        let at = (sc.tq_head[pri] as usize + len) % PATIENTS_MAX;
        self.tq[pri * PATIENTS_MAX + at] = p as u16;
        sc.tq_len[pri] += 1;
    }

    /// Pop the head of the triage queue in (true priority high→low, FIFO) order: the reference
    /// stable-sorts one list by priority every tick, which is exactly three FIFOs.
    #[inline]
    fn triage_queue_pop(&mut self) -> Option<usize> {
        let sc = &mut self.sc[0];
        for pri in (0..3).rev() {
            if sc.tq_len[pri] > 0 {
                let p = self.tq[pri * PATIENTS_MAX + sc.tq_head[pri] as usize];
                sc.tq_head[pri] = ((sc.tq_head[pri] as usize + 1) % PATIENTS_MAX) as u16;
                sc.tq_len[pri] -= 1;
                return Some(p as usize);
            }
        }
        None
    }

    /// Stamp the triage-queue arrival time (first arrival only in the reference).
    #[inline]
    fn stamp_triage(&mut self, ctx: &Ctx, p: usize) {
        if !ctx.flags.triage_wait_from_first_arrival || self.p_triage_time[p] == TIME_NONE {
            self.p_triage_time[p] = self.clock() as i32;
        }
    }

    /// arrival_to_room_time, with a missing stamp (and in the reference a stamp of 0) as `now`.
    #[inline]
    fn room_time_or(&self, ctx: &Ctx, p: usize, now: i32) -> i32 {
        let t = self.p_room_time[p];
        if t == TIME_NONE || (ctx.flags.zero_room_time_is_missing && t == 0) {
            now
        } else {
            t
        }
    }

    #[inline]
    pub(crate) fn helper_speed_class(&self, ctx: &Ctx, h: usize) -> usize {
        if h < ctx.params.n_nurses as usize {
            SPEED_NURSE
        } else {
            SPEED_ROBOT
        }
    }

    #[inline]
    pub(crate) fn set_idle(&mut self, h: usize, idle: bool) {
        let w = &mut self.sc[0].helper_idle[h / 64];
        if idle {
            *w |= 1 << (h % 64);
        } else {
            *w &= !(1 << (h % 64));
        }
    }

    /// Is `p` misrouted to the ward it is in (bounced back to triage)?
    #[inline]
    fn misrouted(&self, ctx: &Ctx, p: usize) -> bool {
        let ward = self.p_ward[p];
        let illness = self.p_illness[p];
        if ctx.flags.backup_wards_do_not_treat {
            ward != CANONICAL_WARD[illness as usize] as u8
        } else {
            quality(illness, Room::from_u8(ward)).is_none()
        }
    }

    /// Does the ward (room) hold a patient with status triaged?
    #[inline]
    pub(crate) fn ward_has_triaged(&self, room: u8) -> bool {
        self.sc[0].ward_triaged[ward_slot(room)] > 0
    }

    // ---------------------------------------------------------------- the tick

    /// One call of the reference's `run_one_tick`. Returns the hook that paused it, if any.
    pub(crate) fn tick<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) -> Hook {
        let t = self.clock();
        // Step 2: events due now, in (time, order_key, counter) order, at most
        // EVENTS_PER_CALL_MAX per call.
        let mut processed = 0;
        while processed < EVENTS_PER_CALL_MAX {
            let Some(ev) = self.queue().pop_due(t) else {
                break;
            };
            self.sc[0].stats.events += 1;
            if self.handle(ctx, log, inst, ev) {
                // Routing hook: stop now; the clock does not advance.
                self.sc[0].pending = PENDING_ROUTER;
                self.sc[0].pending_patient = ev.subject();
                return Hook::Routing;
            }
            processed += 1;
        }
        self.intake(ctx, log, inst);
        self.triage(ctx, log, inst);
        self.treatment(ctx, log, inst);
        // Step 6: dispatch hook.
        let sc = &self.sc[0];
        if (sc.helper_idle[0] | sc.helper_idle[1]) != 0
            && sc.req_len > 0
            && sc.dispatch_blocked_minute != t as i32
        {
            self.sc[0].pending = PENDING_DISPATCHER;
            return Hook::Dispatch;
        }
        // Step 7: manager hook (returned after the clock advances).
        let swing0 = WARDS * ctx.params.fixed_doctors_per_ward as usize;
        let swing = swing0..swing0 + ctx.params.n_swing as usize;
        let manager = t.is_multiple_of(5) && self.doc_busy[swing.clone()].iter().any(|&b| b <= t);
        // Step 8: idle penalty for free swing doctors in wards without triaged patients.
        for d in swing {
            let room = self.doc_room[d];
            if self.doc_busy[d] <= t && Room::is_ward(room) && !self.ward_has_triaged(room) {
                self.sc[0].manager_penalty -= 0.5;
            }
        }
        // Step 9: waiting penalties (ledger only).
        let ti = t as i32;
        for slot in 0..WARDS {
            if self.sc[0].ward_triaged[slot] == 0 {
                continue;
            }
            let len = self.sc[0].ward_pat_len[slot] as usize;
            for k in 0..len {
                let p = self.ward_pat[slot * PATIENTS_MAX + k] as usize;
                if self.p_status[p] == Status::Triaged as u8 {
                    let wait = ti - self.room_time_or(ctx, p, ti);
                    if wait > 15 {
                        self.p_ledger[p] += -0.1 * WAIT_WEIGHT[self.p_priority[p] as usize];
                    }
                }
            }
        }
        #[allow(clippy::needless_range_loop)] // pri indexes the rings and the weights
        for pri in 0..3 {
            let (head, len) = (
                self.sc[0].tq_head[pri] as usize,
                self.sc[0].tq_len[pri] as usize,
            );
            for k in 0..len {
                let p = self.tq[pri * PATIENTS_MAX + (head + k) % PATIENTS_MAX] as usize;
                let stamp = self.p_triage_time[p];
                let wait = if stamp == TIME_NONE { 0 } else { ti - stamp };
                if wait > 10 {
                    self.p_ledger[p] += -0.1 * WAIT_WEIGHT[pri];
                }
            }
        }
        // Step 10.
        self.sc[0].clock += 1;
        // Step 11: high-impairment escort penalty. In the reference it measures from the ward
        // arrival stamp, which escorted patients never get when escorted arrivals are unstamped:
        // provably zero then, so skipped.
        if !(ctx.flags.escort_penalty_from_room_time && ctx.flags.escorted_arrivals_unstamped) {
            self.escort_penalty(ctx);
        }
        if L::ENABLED {
            log.tick_end(inst, &self.as_ref());
        }
        if manager {
            self.sc[0].pending = PENDING_MANAGER;
            Hook::Manager
        } else {
            Hook::None
        }
    }

    /// Spec §2.5 step 11 over every patient with status waiting_for_escort (open request, or a
    /// helper on its way to it).
    fn escort_penalty(&mut self, ctx: &Ctx) {
        let now = self.clock() as i32;
        let penalise = |this: &mut Self, p: usize| {
            if this.p_status[p] != Status::WaitingForEscort as u8
                || this.p_impairment[p] != IMPAIRMENT_HIGH
            {
                return;
            }
            let since = if ctx.flags.escort_penalty_from_room_time {
                this.room_time_or(ctx, p, now)
            } else {
                this.p_request_time[p] as i32
            };
            let wait = now - since;
            if wait > 5 {
                this.p_ledger[p] += (-2 * (wait - 5)) as f64;
            }
        };
        for r in 0..self.sc[0].req_len as usize {
            let p = self.req_patient[r] as usize;
            penalise(self, p);
        }
        for h in 0..ctx.params.n_helpers() {
            if self.h_role[h] == ROLE_MOVING && self.h_patient[h] != PATIENT_NONE {
                let p = self.h_patient[h] as usize;
                penalise(self, p);
            }
        }
    }

    /// Step 3: arrivals join the entrance queue; free clerks take its head.
    fn intake<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
        let t = self.clock();
        let n = ctx.params.n_patients;
        while self.sc[0].next_arrival < n && self.p_arrival[self.sc[0].next_arrival as usize] <= t {
            self.sc[0].next_arrival += 1;
        }
        if self.sc[0].entrance_head == self.sc[0].next_arrival {
            return;
        }
        for c in 0..ctx.params.n_clerks as usize {
            if self.clerk_busy[c] > t {
                continue;
            }
            if self.sc[0].entrance_head == self.sc[0].next_arrival {
                break;
            }
            let p = self.sc[0].entrance_head as usize;
            self.sc[0].entrance_head += 1;
            self.enter_room(p, Room::Entrance as u8);
            // Clerks predict priority (always right: the reference's accuracy threshold is 1)
            // and assistance (95%, but the prediction is never used), so no draw is needed.
            let processing = 5 + if self.requires_assistance(p) { 2 } else { 0 };
            self.clerk_busy[c] = t + processing;
            self.set_status(ctx, log, inst, p, Status::BeingAccepted, Cause::Intake);
            let order_key = -(self.p_priority[p] as i8 + 1);
            self.push_event(
                (t + processing) as f64,
                order_key,
                EventKind::AcceptanceDone,
                p,
            );
        }
    }

    /// Step 4: free triage agents take the triage queue's head.
    fn triage<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
        let t = self.clock();
        if self.sc[0].tq_len.iter().all(|&l| l == 0) {
            return;
        }
        for a in 0..ctx.params.n_triage as usize {
            if self.triage_busy[a] > t {
                continue;
            }
            let Some(p) = self.triage_queue_pop() else {
                break;
            };
            self.set_status(ctx, log, inst, p, Status::BeingTriaged, Cause::TriageStart);
            self.triage_busy[a] = t + 10;
            self.push_event((t + 10) as f64, 0, EventKind::TriageDone, p);
        }
    }

    /// Step 5: per ward in dict order, bounce misrouted patients, then pair free doctors with
    /// waiting patients in room-list order.
    fn treatment<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
        let t = self.clock();
        for slot in 0..WARDS {
            // Only "triaged" patients are bounced or paired with a doctor.
            if self.sc[0].ward_triaged[slot] == 0 {
                continue;
            }
            let room = Room::Resuscitation as u8 + slot as u8;
            let base = slot * PATIENTS_MAX;
            let mut k = 0;
            let mut waiting = 0;
            while k < self.sc[0].ward_pat_len[slot] as usize {
                let p = self.ward_pat[base + k] as usize;
                if self.p_status[p] != Status::Triaged as u8 {
                    k += 1;
                    continue;
                }
                if !self.misrouted(ctx, p) {
                    waiting += 1;
                    k += 1;
                    continue;
                }
                self.sc[0].stats.bounces += 1;
                if self.requires_assistance(p) {
                    self.set_status(ctx, log, inst, p, Status::WaitingForEscort, Cause::Bounce);
                    self.request(p, room);
                    k += 1;
                } else {
                    self.set_status(ctx, log, inst, p, Status::MovingToTriage, Cause::Bounce);
                    // Leaves the list: the next patient moves into slot k.
                    self.walk(
                        ctx,
                        p,
                        room,
                        Room::Triage as u8,
                        EventKind::PatientArrivedAtTriage,
                    );
                }
            }
            if waiting == 0 {
                continue;
            }
            let dbase = slot * DOCTORS_MAX;
            let mut di = 0;
            let mut pi = 0;
            loop {
                let dlen = self.sc[0].ward_doc_len[slot] as usize;
                while di < dlen && self.doc_busy[self.ward_doc[dbase + di] as usize] > t {
                    di += 1;
                }
                let plen = self.sc[0].ward_pat_len[slot] as usize;
                while pi < plen
                    && self.p_status[self.ward_pat[base + pi] as usize] != Status::Triaged as u8
                {
                    pi += 1;
                }
                if di >= dlen || pi >= plen {
                    break;
                }
                let d = self.ward_doc[dbase + di] as usize;
                let p = self.ward_pat[base + pi] as usize;
                if self.p_room_time[p] != TIME_NONE {
                    let st = &mut self.sc[0].stats;
                    st.ward_wait_sum += (t as i32 - self.p_room_time[p]) as f64;
                    st.ward_waits += 1;
                }
                self.set_doc_busy(d, t + 30);
                self.set_status(
                    ctx,
                    log,
                    inst,
                    p,
                    Status::BeingTreated,
                    Cause::TreatmentStart,
                );
                self.push_event((t + 30) as f64, 0, EventKind::TreatmentComplete, p);
                di += 1;
                pi += 1;
            }
        }
    }

    // ---------------------------------------------------------------- event handlers

    /// Handle one event; returns true if it raised the routing hook.
    fn handle<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32, ev: Event) -> bool {
        let kind = ev.kind();
        let s = ev.subject() as usize;
        let cause = Cause::Event(kind);
        let t = self.clock();
        match kind {
            EventKind::AcceptanceDone => {
                self.enter_room(s, Room::Entrance as u8);
                if self.requires_assistance(s) {
                    self.request(s, Room::Entrance as u8);
                    self.set_status(ctx, log, inst, s, Status::WaitingForEscort, cause);
                } else {
                    self.set_status(ctx, log, inst, s, Status::MovingToTriage, cause);
                    self.walk(
                        ctx,
                        s,
                        Room::Entrance as u8,
                        Room::Triage as u8,
                        EventKind::PatientArrivedAtTriage,
                    );
                }
            }
            EventKind::TriageDone => {
                if L::ENABLED {
                    self.log_staff(log, inst, cause, usize::MAX, s as u16);
                }
                return true;
            }
            EventKind::TreatmentComplete => {
                if self.p_status[s] == Status::Done as u8 {
                    return false; // duplicate (the reference ignores it too)
                }
                self.set_status(ctx, log, inst, s, Status::Done, cause);
                self.push_event(t as f64, 0, EventKind::ReadyToExit, s);
                let stay = t as i32 - self.p_arrival[s] as i32;
                let reward = if stay <= 30 { 250.0 } else { 200.0 };
                self.p_ledger[s] += reward;
            }
            EventKind::HelperArrived => self.helper_arrived(ctx, log, inst, s),
            EventKind::DoctorArrived => {
                let room = self.doc_target[s];
                self.set_doc_busy(s, t + 1); // cooldown
                self.doc_enter_room(s, room);
                self.log_staff(log, inst, cause, s, PATIENT_NONE);
            }
            EventKind::HelperReturnToBase => {
                self.h_role[s] = ROLE_IDLE;
                self.h_room[s] = Room::StaffArea as u8;
                self.set_idle(s, true);
                self.log_staff(log, inst, cause, s, PATIENT_NONE);
            }
            EventKind::ReadyToExit => {
                let room = self.p_room[s];
                if self.requires_assistance(s) {
                    self.set_status(ctx, log, inst, s, Status::WaitingForExit, cause);
                    self.enter_room(s, room); // re-appended: moves to the end of the room list
                    self.request(s, room);
                } else {
                    self.set_status(ctx, log, inst, s, Status::MovingToExit, cause);
                    self.walk(
                        ctx,
                        s,
                        room,
                        Room::Exit as u8,
                        EventKind::PatientArrivedAtExit,
                    );
                }
            }
            EventKind::PatientArrivedAtTriage => {
                self.enter_room(s, Room::Triage as u8);
                self.triage_queue_push(s);
                self.stamp_triage(ctx, s);
                self.set_status(ctx, log, inst, s, Status::InTriageQueue, cause);
            }
            EventKind::PatientArrivedAtWard => {
                self.p_room_time[s] = t as i32;
                self.enter_room(s, self.p_ward[s]);
                self.set_status(ctx, log, inst, s, Status::Triaged, cause);
            }
            EventKind::PatientArrivedAtExit => {
                self.enter_room(s, Room::Exit as u8);
                self.set_status(ctx, log, inst, s, Status::Exited, cause);
            }
        }
        false
    }

    fn helper_arrived<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32, h: usize) {
        let t = self.clock();
        let cause = Cause::Event(EventKind::HelperArrived);
        let p = self.h_patient[h];
        let hspeed = self.helper_speed_class(ctx, h);
        if self.h_role[h] == ROLE_MOVING {
            // Stage 1: pickup.
            self.h_room[h] = self.h_target[h];
            let here = self.h_room[h];
            let needs = p != PATIENT_NONE
                && matches!(
                    Status::from_u8(self.p_status[p as usize]),
                    Status::WaitingForEscort | Status::WaitingForExit
                );
            if !needs {
                self.h_patient[h] = PATIENT_NONE;
                let travel = ctx.travel.get(hspeed, here, Room::StaffArea as u8);
                self.push_event(t as f64 + travel, 0, EventKind::HelperReturnToBase, h);
                self.log_staff(log, inst, cause, h, p);
                return;
            }
            let p = p as usize;
            let dest = if self.p_status[p] == Status::WaitingForEscort as u8 {
                if here == Room::Entrance as u8 {
                    Room::Triage as u8
                } else if here == Room::Triage as u8 {
                    self.p_ward[p]
                } else {
                    Room::Triage as u8
                }
            } else {
                Room::Exit as u8
            };
            let pspeed = self.p_impairment[p] as usize;
            let speed = if SPEEDS[hspeed] <= SPEEDS[pspeed] {
                hspeed
            } else {
                pspeed
            };
            let travel = ctx.travel.get(speed, here, dest);
            self.set_status(ctx, log, inst, p, Status::BeingEscorted, cause);
            self.h_role[h] = ROLE_ESCORTING;
            self.leave_room(p);
            self.h_room[h] = ROOM_NONE;
            self.h_target[h] = dest;
            self.push_event(t as f64 + travel, 0, EventKind::HelperArrived, h);
            let st = &mut self.sc[0].stats;
            st.escort_wait_sum += (t as i32 - self.p_request_time[p] as i32) as f64;
            st.escort_waits += 1;
        } else {
            debug_assert_eq!(self.h_role[h], ROLE_ESCORTING);
            // Stage 2: arrival with the patient.
            let dest = self.h_target[h];
            self.h_room[h] = dest;
            let p = p as usize;
            self.enter_room(p, dest);
            let stamp = !ctx.flags.escorted_arrivals_unstamped;
            if dest == Room::Triage as u8 {
                self.triage_queue_push(p);
                if stamp {
                    self.stamp_triage(ctx, p);
                }
                self.set_status(ctx, log, inst, p, Status::InTriageQueue, cause);
            } else if dest == Room::Exit as u8 {
                self.set_status(ctx, log, inst, p, Status::Exited, cause);
            } else {
                if stamp {
                    self.p_room_time[p] = t as i32;
                }
                self.set_status(ctx, log, inst, p, Status::Triaged, cause);
            }
            self.h_role[h] = ROLE_MOVING;
            self.h_patient[h] = PATIENT_NONE;
            let travel = ctx.travel.get(hspeed, dest, Room::StaffArea as u8);
            self.push_event(t as f64 + travel, 0, EventKind::HelperReturnToBase, h);
        }
    }

    // ---------------------------------------------------------------- the agents' actions

    /// The router's decision for the pending patient (spec §2.7a); returns its reward.
    pub(crate) fn apply_routing<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: u8,
    ) -> f64 {
        assert!(
            (action as u32) < ROUTER_ACTIONS,
            "router action {action} out of 0..6"
        );
        let p = self.sc[0].pending_patient as usize;
        let ward = super::layout::W[action as usize];
        let illness = self.p_illness[p];
        let imp = self.p_impairment[p] as usize;
        let (reward, outcome) = match quality(illness, ward) {
            Some(m) => (
                100.0 * m,
                if m == 1.0 {
                    super::stats::OUTCOME_PERFECT
                } else {
                    super::stats::OUTCOME_BACKUP
                },
            ),
            None => {
                let there = ctx.travel.get(imp, Room::Triage as u8, ward as u8);
                let back = ctx.travel.get(imp, ward as u8, Room::Triage as u8);
                (-(there + back), super::stats::OUTCOME_WRONG)
            }
        };
        let st = &mut self.sc[0].stats;
        st.decisions[super::stats::ROLE_ROUTER] += 1;
        st.routing_decisions[outcome] += 1;
        if self.p_routings[p] == 0 {
            st.routing_first_by_patient[outcome] += 1;
        }
        self.p_routings[p] += 1;
        self.p_ward[p] = ward as u8;
        self.enter_room(p, Room::Triage as u8);
        if self.requires_assistance(p) {
            self.set_status(ctx, log, inst, p, Status::WaitingForEscort, Cause::Routing);
            self.request(p, Room::Triage as u8);
        } else {
            self.set_status(ctx, log, inst, p, Status::MovingToWard, Cause::Routing);
            self.walk(
                ctx,
                p,
                Room::Triage as u8,
                ward as u8,
                EventKind::PatientArrivedAtWard,
            );
        }
        reward
    }

    /// The dispatcher's assignment (spec §2.7b); returns its reward.
    pub(crate) fn apply_dispatch<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: &[u8],
    ) -> f64 {
        let action: &[u8; DISPATCH_COMPONENTS] = action
            .try_into()
            .expect("dispatch action has DISPATCH_COMPONENTS components");
        let t = self.clock();
        let n_req = self.sc[0].req_len as usize;
        assert!(
            action.iter().all(|&r| (r as u32) < DISPATCH_CHOICES),
            "dispatch component out of 0..50: {action:?}"
        );
        // Components that address an open request, as bits. Components are below
        // DISPATCH_CHOICES, so `r < n_req` is `r < lim` in u8 (a branch-free, vectorised pass;
        // random components rarely address a request, so the loop below visits few).
        let lim = n_req.min(DISPATCH_CHOICES as usize) as u8;
        let mut addressing = below_mask(action, lim);
        let mut reward = 0.0;
        if n_req > 0 && addressing == 0 {
            reward -= n_req as f64 * 2.0;
        }
        // The idle helpers as of the hook (nurses first, then robots, creation order).
        // Component k addresses the k-th of them; components past their number are ignored.
        let idle = self.sc[0].helper_idle;
        let n_idle = (idle[0].count_ones() + idle[1].count_ones()) as usize;
        addressing &= ((1u64 << n_idle.min(DISPATCH_COMPONENTS)) - 1) as u32;
        let mut taken = [0u64; PATIENTS_MAX.div_ceil(64)];
        let mut assigned = 0u32;
        // Walks the idle bits in step with the components that assign someone.
        let mut cursor = idle;
        let mut cursor_k = 0usize;
        while addressing != 0 {
            let k = addressing.trailing_zeros() as usize;
            addressing &= addressing - 1;
            let r = action[k] as usize;
            if (taken[r / 64] >> (r % 64)) & 1 == 1 {
                continue;
            }
            let mut h;
            loop {
                h = if cursor[0] != 0 {
                    cursor[0].trailing_zeros() as usize
                } else {
                    64 + cursor[1].trailing_zeros() as usize
                };
                cursor[h / 64] &= !(1 << (h % 64));
                cursor_k += 1;
                if cursor_k == k + 1 {
                    break;
                }
            }
            let p = self.req_patient[r] as usize;
            let room = self.req_room[r];
            let speed = self.helper_speed_class(ctx, h);
            let travel = ctx.travel.get(speed, self.h_room[h], room);
            let kind = usize::from(speed == SPEED_ROBOT);
            let st = &mut self.sc[0].stats;
            if st.escort_travels[kind] == 0 {
                st.escort_travel_min[kind] = travel;
                st.escort_travel_max[kind] = travel;
            }
            st.escort_travel_sum[kind] += travel;
            st.escort_travels[kind] += 1;
            st.escort_travel_min[kind] = st.escort_travel_min[kind].min(travel);
            st.escort_travel_max[kind] = st.escort_travel_max[kind].max(travel);
            reward += f64::max(0.0, 10.0 - travel);
            match self.p_priority[p] {
                2 => reward += 15.0,
                1 => reward += 5.0,
                _ => {}
            }
            // _send_helper: the helper's position becomes the destination at once.
            self.h_role[h] = ROLE_MOVING;
            self.h_target[h] = room;
            self.h_patient[h] = p as u16;
            self.h_room[h] = room;
            self.set_idle(h, false);
            self.push_event(t as f64 + travel, 0, EventKind::HelperArrived, h);
            self.log_staff(log, inst, Cause::Dispatch, h, p as u16);
            taken[r / 64] |= 1 << (r % 64);
            assigned += 1;
        }
        // Remove the assigned requests, keeping creation order.
        if assigned > 0 {
            let mut w = 0;
            for r in 0..n_req {
                if (taken[r / 64] >> (r % 64)) & 1 == 0 {
                    self.req_patient[w] = self.req_patient[r];
                    self.req_time[w] = self.req_time[r];
                    self.req_room[w] = self.req_room[r];
                    w += 1;
                }
            }
            self.sc[0].req_len = w as u16;
        }
        let sc = &mut self.sc[0];
        sc.stats.decisions[super::stats::ROLE_DISPATCHER] += 1;
        if assigned == 0 {
            sc.stats.empty_dispatches += 1;
            if ctx.flags.dispatch_rehook_same_minute {
                if sc.dispatch_run_minute != t as i32 {
                    sc.dispatch_run_minute = t as i32;
                    sc.dispatch_run = 0;
                }
                sc.dispatch_run += 1;
                if sc.dispatch_run >= ctx.params.dispatch_empty_cap {
                    sc.dispatch_blocked_minute = t as i32;
                    sc.dispatch_run = 0;
                    sc.stats.empty_dispatch_cap_triggers += 1;
                }
            } else {
                sc.dispatch_blocked_minute = t as i32;
            }
        } else {
            sc.dispatch_run = 0;
        }
        reward
    }

    /// The manager's moves (spec §2.7c); returns its reward.
    pub(crate) fn apply_manager<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: &[u8],
    ) -> f64 {
        let n_swing = ctx.params.n_swing as usize;
        assert_eq!(action.len(), n_swing);
        let t = self.clock();
        let ti = t as i32;
        let mut reward = self.sc[0].manager_penalty;
        self.sc[0].manager_penalty = 0.0;
        let swing0 = WARDS * ctx.params.fixed_doctors_per_ward as usize;
        for (k, &dest) in action.iter().enumerate() {
            assert!(
                (dest as u32) < MANAGER_CHOICES,
                "manager component {dest} out of 0..7"
            );
            if dest == 6 {
                continue;
            }
            let room = super::layout::W[dest as usize] as u8;
            let d = swing0 + k;
            if self.doc_room[d] == room {
                continue;
            }
            if !ctx.flags.retarget_busy_swing_doctors && self.doc_busy[d] > t {
                continue;
            }
            // Queue pressure of the target ward.
            let slot = ward_slot(room);
            let len = self.sc[0].ward_pat_len[slot] as usize;
            let mut pressure = 0.0f64;
            let mut any = false;
            for j in 0..len {
                let p = self.ward_pat[slot * PATIENTS_MAX + j] as usize;
                if self.p_status[p] == Status::Triaged as u8 {
                    any = true;
                    let wait = ti - self.room_time_or(ctx, p, ti);
                    pressure +=
                        wait as f64 * super::patients::URGENCY_WEIGHT[self.p_priority[p] as usize];
                }
            }
            if any {
                reward += pressure / 5.0;
            }
            reward -= 1.0;
            self.doc_leave_room(d);
            self.set_doc_busy(d, t + 10);
            self.push_event((t + 10) as f64, 0, EventKind::DoctorArrived, d);
            self.doc_target[d] = room;
            self.sc[0].stats.swing_moves += 1;
            self.log_staff(log, inst, Cause::ManagerMove, d, PATIENT_NONE);
        }
        self.sc[0].stats.decisions[super::stats::ROLE_MANAGER] += 1;
        reward
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, Stream};

    #[test]
    fn below_mask_matches_compares() {
        let mut s = Stream::new(3, Purpose::RandomActions, &[]);
        for _ in 0..2000 {
            let mut action = [0u8; DISPATCH_COMPONENTS];
            for a in &mut action {
                *a = s.below(DISPATCH_CHOICES) as u8;
            }
            let lim = s.below(DISPATCH_CHOICES + 1) as u8;
            let want = (0..DISPATCH_COMPONENTS)
                .filter(|&k| action[k] < lim)
                .fold(0u32, |m, k| m | 1 << k);
            assert_eq!(below_mask(&action, lim), want, "{action:?} < {lim}");
        }
    }
}
