//! Observations of the three learning agents (spec §2.7), computed exactly as the reference
//! (in `f64`, then stored as `f32`), and a uniform random policy for benches and tests.

use super::layout::{ROOM_NONE, W, symptoms, ward_slot};
use super::params::*;
use super::patients::{Status, URGENCY_OBS};
use super::state::*;
use super::tick::Ctx;
use crate::rng::Stream;

// `count_doctors` folds rooms to 4 bits: every room and ROOM_NONE must stay apart.
const _: () =
    assert!(super::layout::ROOMS <= 15 && (ROOM_NONE & 15) as usize >= super::layout::ROOMS);

impl Inst<'_> {
    /// Free doctors (busy_until <= now) and all doctors per ward slot: [`Self::count_doctors`],
    /// cached for the current minute: router decisions come in bursts
    /// within a minute, between which doctors rarely change. Every write of `doc_busy` or
    /// `doc_room` goes through `set_doc_busy` or the room-list helpers, which mark the cache
    /// stale (debug builds recount and compare).
    fn doctors_by_ward(&mut self, ctx: &Ctx) -> ([u32; WARDS], [u32; WARDS]) {
        let sc = &self.sc[0];
        let counts = if sc.doctor_counts_at == sc.clock {
            let (free, all) = sc.doctor_counts;
            (free.map(u32::from), all.map(u32::from))
        } else {
            let counts = self.count_doctors(ctx);
            let sc = &mut self.sc[0];
            sc.doctor_counts_at = sc.clock;
            // Counts fit u8: a ward holds at most DOCTORS_MAX (< 256) doctors.
            sc.doctor_counts = (counts.0.map(|c| c as u8), counts.1.map(|c| c as u8));
            counts
        };
        debug_assert_eq!(counts, self.count_doctors(ctx), "stale doctor counts");
        counts
    }

    /// Free doctors (busy_until <= now) and all doctors per ward slot. Fixed doctors never leave
    /// their ward and sit in one contiguous block per ward; swing doctors are counted in one
    /// pass over the swing block (same counts as scanning the room lists).
    fn count_doctors(&self, ctx: &Ctx) -> ([u32; WARDS], [u32; WARDS]) {
        let now = self.clock();
        let fixed = ctx.params.fixed_doctors_per_ward as usize;
        let mut free = [0u32; WARDS];
        let mut all = [fixed as u32; WARDS];
        for (slot, f) in free.iter_mut().enumerate() {
            // A fixed-width window (the block and whatever follows it, masked by `k < fixed`):
            // branch-free and vectorised, where a loop of `fixed` iterations is not.
            let window: &[u16; FIXED_PER_WARD_MAX] = self.doc_busy
                [slot * fixed..slot * fixed + FIXED_PER_WARD_MAX]
                .try_into()
                .expect("window within DOCTORS_MAX");
            let mut n = 0u16;
            for (k, &b) in window.iter().enumerate() {
                n += u16::from(b <= now) & u16::from(k < fixed);
            }
            *f = u32::from(n);
        }
        // Swing doctors, counted per room without branches (ROOM_NONE folds to 15, which like
        // the non-ward rooms is dropped below).
        let swing0 = WARDS * fixed;
        let (mut all_by_room, mut free_by_room) = ([0u32; 16], [0u32; 16]);
        for d in swing0..swing0 + ctx.params.n_swing as usize {
            let room = usize::from(self.doc_room[d] & 15);
            all_by_room[room] += 1;
            free_by_room[room] += u32::from(self.doc_busy[d] <= now);
        }
        let first_ward = super::layout::Room::Resuscitation as usize;
        for slot in 0..WARDS {
            all[slot] += all_by_room[first_ward + slot];
            free[slot] += free_by_room[first_ward + slot];
        }
        (free, all)
    }

    fn ward_patients(&self, room: u8) -> &[u16] {
        let slot = ward_slot(room);
        let len = self.sc[0].ward_pat_len[slot] as usize;
        &self.ward_pat[slot * PATIENTS_MAX..slot * PATIENTS_MAX + len]
    }

    /// Router observation (18) for the pending patient.
    pub(crate) fn router_obs(&mut self, ctx: &Ctx, out: &mut [f32]) {
        let p = self.sc[0].pending_patient as usize;
        out[..12].copy_from_slice(&symptoms(self.p_illness[p]));
        let (free_by_slot, _) = self.doctors_by_ward(ctx);
        for (k, ward) in W.iter().enumerate() {
            let slot = ward_slot(*ward as u8);
            let queued = self.sc[0].ward_triaged[slot];
            let free = free_by_slot[slot];
            let expected = queued as f64 / (free as f64 + 0.1);
            out[12 + k] = (expected / 60.0) as f32;
        }
    }

    /// Dispatcher observation (6).
    pub(crate) fn dispatcher_obs(&self, ctx: &Ctx, out: &mut [f32]) {
        let sc = &self.sc[0];
        let mut by_priority = [0u32; 3];
        for r in 0..sc.req_len as usize {
            by_priority[self.p_priority[self.req_patient[r] as usize] as usize] += 1;
        }
        // Requests are in creation order, so the oldest is first.
        let max_wait = if sc.req_len > 0 {
            (sc.clock as i32 - self.req_time[0] as i32) as f64
        } else {
            0.0
        };
        let nurses = ctx.params.n_nurses as usize;
        let helpers = ctx.params.n_helpers();
        // Idle helpers (role idle) are exactly the set bits of `helper_idle` (nurses first).
        let idle = u128::from(sc.helper_idle[0]) | u128::from(sc.helper_idle[1]) << 64;
        let nurse_bits = (1u128 << nurses) - 1;
        let idle_n = (idle & nurse_bits).count_ones() as f64 / (nurses.max(1)) as f64;
        let idle_r = (idle & !nurse_bits).count_ones() as f64 / ((helpers - nurses).max(1)) as f64;
        out[0] = (by_priority[2] as f64 / 10.0) as f32;
        out[1] = (by_priority[1] as f64 / 10.0) as f32;
        out[2] = (by_priority[0] as f64 / 10.0) as f32;
        out[3] = (max_wait / 60.0) as f32;
        out[4] = idle_n as f32;
        out[5] = idle_r as f32;
    }

    /// Manager observation (19).
    pub(crate) fn manager_obs(&mut self, ctx: &Ctx, out: &mut [f32]) {
        let (free_by_slot, all_by_slot) = self.doctors_by_ward(ctx);
        for (k, ward) in W.iter().enumerate() {
            let room = *ward as u8;
            let mut n = 0u32;
            let mut urg = 0.0f64;
            for &q in self.ward_patients(room) {
                if self.p_status[q as usize] != Status::Done as u8 {
                    n += 1;
                    urg += URGENCY_OBS[self.p_priority[q as usize] as usize];
                }
            }
            let (free, all) = (free_by_slot[ward_slot(room)], all_by_slot[ward_slot(room)]);
            out[3 * k] = (n as f64 / 20.0) as f32;
            out[3 * k + 1] = (free as f64 / all.max(1) as f64) as f32;
            out[3 * k + 2] = if n > 0 { (urg / n as f64) as f32 } else { 0.0 };
        }
        let swing0 = WARDS * ctx.params.fixed_doctors_per_ward as usize;
        let n_swing = ctx.params.n_swing as usize;
        let now = self.clock();
        let free = self.doc_busy[swing0..swing0 + n_swing]
            .iter()
            .filter(|&&b| b <= now)
            .count();
        out[18] = (free as f64 / n_swing as f64) as f32;
        let _ = ROOM_NONE;
    }
}

/// Uniform random actions (the reference wrapper's `action_space.sample()`), one stream per
/// instance. Used by benches and tests; never by the kernel's own stepping.
#[derive(Clone, Debug)]
pub struct RandomPolicy {
    streams: Vec<Stream>,
}

impl RandomPolicy {
    /// Instance `i` draws from `Stream::new(seed, RandomActions, &[index(i)])`; pass
    /// `twins = true` to give both members of a counterfactual pair the same stream (common
    /// random numbers).
    pub fn new(seed: u64, instances: usize, twins: bool) -> Self {
        let streams = (0..instances)
            .map(|i| {
                let idx = if twins { i / 2 } else { i } as u64;
                Stream::new(seed, crate::rng::Purpose::RandomActions, &[idx, 0x4853])
            })
            .collect();
        Self { streams }
    }

    /// Fill the actions of every instance's pending role (other roles' slots are left as is).
    pub fn fill(&mut self, round: &super::HsRound, actions: &mut super::HsActions) {
        let n_swing = actions.n_swing;
        for (i, s) in self.streams.iter_mut().enumerate() {
            match round.role[i] {
                PENDING_ROUTER => actions.router[i] = s.below(ROUTER_ACTIONS) as u8,
                PENDING_DISPATCHER => {
                    for a in &mut actions.dispatcher
                        [i * DISPATCH_COMPONENTS..(i + 1) * DISPATCH_COMPONENTS]
                    {
                        *a = s.below(DISPATCH_CHOICES) as u8;
                    }
                }
                _ => {
                    for a in &mut actions.manager[i * n_swing..(i + 1) * n_swing] {
                        *a = s.below(MANAGER_CHOICES) as u8;
                    }
                }
            }
        }
    }
}
