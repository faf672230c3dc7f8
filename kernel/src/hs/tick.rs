//! One tick of one instance (spec §2.5): the clock, the event loop and the small state helpers
//! the journey's handlers (`journey.rs`, §2.6) and the actions (`actions.rs`, §2.7) share.
//!
//! Time: the clock is an integer minute; event times are the reference's floats
//! (`clock + travel`), and an event fires on the first tick whose clock is at or after its time.
//!
//! Hot-path notes (semantics unchanged): the waiting-penalty pass of step 9 visits only the
//! patients that can be penalised (those listed in a ward with status triaged, and the triage
//! queue), the treatment pass skips empty wards, and idle helpers are a bit mask.

use super::events::{self, Event, EventKind};
use super::layout::{
    CANONICAL_WARD, ROOM_NONE, Room, SPEED_NURSE, SPEED_ROBOT, TravelTable, quality, ward_slot,
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
    pub arrivals: &'p super::arrivals::ArrivalPlan,
    pub twins: bool,
    pub instances: u32,
}

/// Why a tick call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    None,
    Routing,
    Dispatch,
    Manager,
}

impl Inst<'_> {
    // ---------------------------------------------------------------- small helpers

    #[inline]
    pub(crate) fn clock(&self) -> u16 {
        self.sc[0].clock
    }

    #[inline]
    pub(super) fn requires_assistance(&self, p: usize) -> bool {
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
    pub(super) fn log_staff<L: EventSink>(
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
    pub(super) fn push_event(&mut self, time: f64, order_key: i8, kind: EventKind, subject: usize) {
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
    pub(super) fn leave_room(&mut self, p: usize) {
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
    pub(super) fn enter_room(&mut self, p: usize, room: u8) {
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
    pub(super) fn doc_leave_room(&mut self, d: usize) {
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
    pub(super) fn walk(&mut self, ctx: &Ctx, p: usize, from: u8, to: u8, kind: EventKind) {
        let travel = ctx.travel.get(self.p_impairment[p] as usize, from, to);
        self.leave_room(p);
        let t = self.clock() as f64 + travel;
        self.push_event(t, 0, kind, p);
    }

    /// Open an assistance request for patient `p` at `room`.
    #[inline]
    pub(super) fn request(&mut self, p: usize, room: u8) {
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
    pub(super) fn triage_queue_push(&mut self, p: usize) {
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
    pub(super) fn triage_queue_pop(&mut self) -> Option<usize> {
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
    pub(super) fn stamp_triage(&mut self, ctx: &Ctx, p: usize) {
        if !ctx.flags.triage_wait_from_first_arrival || self.p_triage_time[p] == TIME_NONE {
            self.p_triage_time[p] = self.clock() as i32;
        }
    }

    /// arrival_to_room_time, with a missing stamp (and in the reference a stamp of 0) as `now`.
    #[inline]
    pub(super) fn room_time_or(&self, ctx: &Ctx, p: usize, now: i32) -> i32 {
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
    pub(super) fn misrouted(&self, ctx: &Ctx, p: usize) -> bool {
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
    pub(super) fn escort_penalty(&mut self, ctx: &Ctx) {
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
}
