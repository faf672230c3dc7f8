//! The event handlers of the patient journey (spec §2.6): intake, triage, treatment, the
//! event dispatch and a helper's arrival.

use super::events::{Event, EventKind};
use super::layout::{ROOM_NONE, Room, SPEEDS};
use super::log::{Cause, EventSink};
use super::params::*;
use super::patients::Status;
use super::state::*;
use super::tick::Ctx;

impl Inst<'_> {
    /// Step 3: arrivals join the entrance queue; free clerks take its head.
    pub(super) fn intake<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
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
    pub(super) fn triage<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
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
    pub(super) fn treatment<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) {
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
    pub(super) fn handle<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        ev: Event,
    ) -> bool {
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

    pub(super) fn helper_arrived<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        h: usize,
    ) {
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
}
