//! The agents' actions applied to an instance (spec §2.7): the router's routing, the
//! dispatcher's escort assignments and the manager's swing-doctor moves.

use super::events::EventKind;
use super::layout::{Room, SPEED_ROBOT, quality, ward_slot};
use super::log::{Cause, EventSink};
use super::params::*;
use super::patients::Status;
use super::state::*;
use super::tick::Ctx;

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
    /// The router's decision for the pending patient (spec §2.7a); returns its reward, all of
    /// it added to that patient's impairment group in `parts`.
    pub(crate) fn apply_routing<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: u8,
        parts: &mut [f64; IMPAIRMENTS],
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
        parts[imp.min(IMPAIRMENTS - 1)] += reward;
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

    /// The dispatcher's assignment (spec §2.7b); returns its reward. In `parts`: the penalty
    /// for addressing no open request goes to each request's patient's group (−2 each), an
    /// assignment's travel and priority bonus to its patient's group.
    pub(crate) fn apply_dispatch<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: &[u8],
        parts: &mut [f64; IMPAIRMENTS],
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
            for r in 0..n_req {
                let g = self.p_impairment[self.req_patient[r] as usize] as usize;
                parts[g.min(IMPAIRMENTS - 1)] -= 2.0;
            }
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
            let earned = f64::max(0.0, 10.0 - travel)
                + match self.p_priority[p] {
                    2 => 15.0,
                    1 => 5.0,
                    _ => 0.0,
                };
            reward += earned;
            parts[(self.p_impairment[p] as usize).min(IMPAIRMENTS - 1)] += earned;
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

    /// The manager's moves (spec §2.7c); returns its reward. In `parts`: each waiting patient's
    /// share of a move's queue pressure goes to its group; the idle penalties and the move
    /// cost concern no patient and are split equally among the groups.
    pub(crate) fn apply_manager<L: EventSink>(
        &mut self,
        ctx: &Ctx,
        log: &mut L,
        inst: u32,
        action: &[u8],
        parts: &mut [f64; IMPAIRMENTS],
    ) -> f64 {
        let n_swing = ctx.params.n_swing as usize;
        assert_eq!(action.len(), n_swing);
        let t = self.clock();
        let ti = t as i32;
        let mut reward = self.sc[0].manager_penalty;
        let mut shared = reward;
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
                    let w =
                        wait as f64 * super::patients::URGENCY_WEIGHT[self.p_priority[p] as usize];
                    pressure += w;
                    parts[(self.p_impairment[p] as usize).min(IMPAIRMENTS - 1)] += w / 5.0;
                }
            }
            if any {
                reward += pressure / 5.0;
            }
            reward -= 1.0;
            shared -= 1.0;
            self.doc_leave_room(d);
            self.set_doc_busy(d, t + 10);
            self.push_event((t + 10) as f64, 0, EventKind::DoctorArrived, d);
            self.doc_target[d] = room;
            self.sc[0].stats.swing_moves += 1;
            self.log_staff(log, inst, Cause::ManagerMove, d, PATIENT_NONE);
        }
        for part in parts.iter_mut() {
            *part += shared / IMPAIRMENTS as f64;
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
