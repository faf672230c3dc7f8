//! HS frames for the viewer: one per decision round of hospital 0 (the factual world), from
//! the restored start (frame 0) to the end of the day (frame `rounds`).
//!
//! Places are encoded one character each: `'0' + room` for a room a patient, helper or doctor
//! is in, `'a' + room` for one it walks (or is escorted) towards, `-` for neither. The kernel
//! starts the next day inside the round that ends one, so the last frame keeps the hospital of
//! the frame before it and carries the finished day's own statistics (what `eval` reports and
//! the replay's header records).

use crate::replay::sim::Kernel;
use fairground_kernel::hs::layout::{ROOMS, Room};
use fairground_kernel::hs::{
    HsDayStats, IMPAIRMENTS, InstanceRef, ROLE_ESCORTING, ROLE_IDLE, ROLE_MOVING, Status,
};
use serde::Serialize;

fn at(r: Room) -> char {
    char::from(b'0' + r as u8)
}

fn towards(r: Room) -> char {
    char::from(b'a' + r as u8)
}

/// Per impairment group (none, low, high): patients arrived, treated (done or exited) and the
/// sums of their ledgers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GroupCounts {
    pub arrived: [u32; IMPAIRMENTS],
    pub treated: [u32; IMPAIRMENTS],
    pub ledger_arrived: [f64; IMPAIRMENTS],
    pub ledger_treated: [f64; IMPAIRMENTS],
}

/// One frame of the day.
#[derive(Clone, Debug, Serialize)]
pub struct HsFrame {
    /// Minute of the day.
    pub clock: u16,
    /// The role that acted in the round that led here (0 router, 1 dispatcher, 2 manager;
    /// none in frame 0) and the reward it got.
    pub acted: Option<u8>,
    pub reward: f32,
    /// The role the hospital waits for now.
    pub pending: u8,
    /// Patients arrived so far (patients `0..arrived` are in the building or gone).
    pub arrived: u32,
    /// One character per patient of the day: `'a' + status`.
    pub status: String,
    /// One character per patient: its place (see the module's encoding).
    pub place: String,
    /// Per helper (nurses, then robots): role (`0` idle, `1` moving, `2` escorting), place.
    pub helpers: String,
    /// Per doctor (fixed ward by ward, then swing): place, `1` busy or `0` free.
    pub doctors: String,
    pub entrance_queue: u32,
    /// Triage queue by priority (low, medium, high).
    pub triage_queue: [u16; 3],
    pub requests: u32,
    pub groups: GroupCounts,
    /// The day ended with the round that led here.
    pub end: bool,
}

/// The day's frames and what does not change within it.
#[derive(Clone, Debug, Serialize)]
pub struct HsFrames {
    pub rooms: Vec<HsRoom>,
    pub patients: u32,
    pub sim_minutes: u16,
    pub nurses: u32,
    pub robots: u32,
    pub fixed_doctors_per_ward: u32,
    pub swing_doctors: u32,
    /// Per patient: `'0' + impairment` (none, low, high) and `'0' + priority` (low, medium,
    /// high).
    pub impairment: String,
    pub priority: String,
    pub statuses: Vec<&'static str>,
    pub frames: Vec<HsFrame>,
}

/// A room as the viewer draws it.
#[derive(Clone, Debug, Serialize)]
pub struct HsRoom {
    pub name: &'static str,
    pub floor: i32,
}

impl HsFrames {
    pub fn new() -> Self {
        Self {
            rooms: Room::ALL
                .iter()
                .map(|&r| HsRoom {
                    name: r.name(),
                    floor: r.floor(),
                })
                .collect(),
            patients: 0,
            sim_minutes: 0,
            nurses: 0,
            robots: 0,
            fixed_doctors_per_ward: 0,
            swing_doctors: 0,
            impairment: String::new(),
            priority: String::new(),
            statuses: Status::ALL.iter().map(|s| s.name()).collect(),
            frames: vec![],
        }
    }

    /// Add the frame of `kernel` after a round (the start: `first`).
    pub fn push(&mut self, kernel: &Kernel, first: bool) {
        let Kernel::Hs { env, round, .. } = kernel else {
            unreachable!("an HS replay restores an HS kernel")
        };
        let inst = env.instance(0);
        if self.frames.is_empty() {
            let p = &env.config().params;
            self.patients = u32::from(inst.stats().patients);
            self.sim_minutes = p.sim_minutes;
            self.nurses = u32::from(p.n_nurses);
            self.robots = u32::from(p.n_robots);
            self.fixed_doctors_per_ward = u32::from(p.fixed_doctors_per_ward);
            self.swing_doctors = u32::from(p.n_swing);
            let n = self.patients as usize;
            self.impairment = (0..n)
                .map(|k| char::from(b'0' + inst.impairment(k)))
                .collect();
            self.priority = (0..n)
                .map(|k| char::from(b'0' + inst.priority(k)))
                .collect();
        }
        let acted = (!first).then_some(round.acted[0]);
        let reward = if first { 0.0 } else { round.reward[0] };
        let frame = if !first && round.day_done[0] != 0 {
            let prev = self.frames.last().expect("a round follows the start frame");
            let booked = day_counts(&round.day_stats[0]);
            HsFrame {
                clock: round.day_stats[0].end_minute.max(prev.clock),
                acted,
                reward,
                // Treated patients and their ledgers as the day booked them; "arrived" stays
                // the live count (the day's statistics count every patient of the day, arrived
                // or not, when a counterfactual day is cut short).
                groups: GroupCounts {
                    arrived: prev.groups.arrived,
                    ledger_arrived: prev.groups.ledger_arrived,
                    ..booked
                },
                end: true,
                ..prev.clone()
            }
        } else {
            self.live_frame(&inst, env.config().params.n_doctors(), acted, reward)
        };
        self.frames.push(frame);
    }

    fn live_frame(
        &self,
        inst: &InstanceRef<'_>,
        doctors: usize,
        acted: Option<u8>,
        reward: f32,
    ) -> HsFrame {
        let n = self.patients as usize;
        let clock = inst.clock();
        let arrived = inst.arrived().min(n);
        let helpers = (self.nurses + self.robots) as usize;
        let mut f = HsFrame {
            clock,
            acted,
            reward,
            pending: inst.pending(),
            arrived: arrived as u32,
            status: String::with_capacity(n),
            place: String::with_capacity(n),
            helpers: String::with_capacity(2 * helpers),
            doctors: String::with_capacity(2 * doctors),
            entrance_queue: inst.entrance_queue() as u32,
            triage_queue: inst.triage_queue(),
            requests: inst.open_requests() as u32,
            groups: GroupCounts::default(),
            end: false,
        };
        // Who escorts whom: an escorted patient is where its helper goes.
        let mut escort_target = vec![None; n];
        for h in 0..helpers {
            let hp = inst.helper(h);
            if let (Some(p), Some(t)) = (hp.patient, hp.target)
                && p < n
                && hp.role == ROLE_ESCORTING
            {
                escort_target[p] = Some(t);
            }
            f.helpers.push(char::from(b'0' + hp.role));
            f.helpers.push(match (hp.role, hp.room, hp.target) {
                (ROLE_IDLE, Some(r), _) => at(r),
                // Moving without a patient: back to base after a drop-off (or a pickup with
                // nobody left to collect); the kernel keeps the old target meanwhile.
                (ROLE_MOVING, _, _) if hp.patient.is_none() => towards(Room::StaffArea),
                (_, _, Some(t)) => towards(t),
                (_, Some(r), None) => at(r),
                _ => '-',
            });
        }
        for (k, escort) in escort_target.iter().enumerate() {
            let s = inst.status(k);
            f.status.push(char::from(b'a' + s as u8));
            let place = match inst.patient_room(k) {
                Some(r) => at(r),
                None => match s {
                    // Arrived, not yet taken by a clerk: the entrance queue.
                    Status::Waiting | Status::BeingAccepted if k < arrived => at(Room::Entrance),
                    Status::MovingToTriage => towards(Room::Triage),
                    Status::MovingToExit => towards(Room::Exit),
                    Status::MovingToWard => inst.patient_ward(k).map_or('-', towards),
                    Status::BeingEscorted => escort.map_or('-', towards),
                    _ => '-',
                },
            };
            f.place.push(place);
            if k < arrived {
                let g = usize::from(inst.impairment(k)).min(IMPAIRMENTS - 1);
                f.groups.arrived[g] += 1;
                f.groups.ledger_arrived[g] += inst.ledger(k);
                if s.is_finished() {
                    f.groups.treated[g] += 1;
                    f.groups.ledger_treated[g] += inst.ledger(k);
                }
            }
        }
        for d in 0..doctors {
            let doc = inst.doctor(d);
            f.doctors.push(match (doc.room, doc.target) {
                (Some(r), _) => at(r),
                (None, Some(t)) => towards(t),
                _ => '-',
            });
            f.doctors
                .push(if doc.busy_until > clock { '1' } else { '0' });
        }
        f
    }
}

impl Default for HsFrames {
    fn default() -> Self {
        Self::new()
    }
}

/// The finished day's counts from its statistics: every patient of the day, those finished.
fn day_counts(d: &HsDayStats) -> GroupCounts {
    let mut g = GroupCounts::default();
    for imp in 0..IMPAIRMENTS {
        for pri in 0..3 {
            g.arrived[imp] += u32::from(d.patients_by_group[imp][pri]);
            g.treated[imp] += u32::from(d.finished[imp][pri]);
            g.ledger_arrived[imp] += d.ledger_all[imp][pri];
            g.ledger_treated[imp] += d.ledger_finished[imp][pri];
        }
    }
    g
}

const _: () = assert!(ROOMS <= 26, "places are one letter per room");
