//! Per-day statistics for the metrics of spec §6. One record per finished day and instance.

use super::arrivals::ArrivalTemplate;
use crate::hash::TrajectoryHash;
use serde::{Deserialize, Serialize};

/// Routing outcome of one decision (spec §2.7a): multiplier 1.0 / in the map below 1 / absent.
pub const OUTCOME_PERFECT: usize = 0;
pub const OUTCOME_BACKUP: usize = 1;
pub const OUTCOME_WRONG: usize = 2;
/// Roles, as indices of `decisions`.
pub const ROLE_ROUTER: usize = 0;
pub const ROLE_DISPATCHER: usize = 1;
pub const ROLE_MANAGER: usize = 2;
/// Helper kinds, as indices of the escort travel statistics.
pub const HELPER_NURSE: usize = 0;
pub const HELPER_ROBOT: usize = 1;

/// What happened in one simulated day of one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HsDayStats {
    /// Day number of this instance (0-based).
    pub day: u32,
    pub patients: u16,
    /// Patients with status done or exited at the end of the day (spec §6 "patients treated").
    pub patients_treated: u16,
    pub patients_exited: u16,
    /// Finished patients by [impairment none/low/high][priority low/medium/high].
    pub finished: [[u16; 3]; 3],
    /// Sum of the ledger totals of finished patients, same grouping.
    pub ledger_finished: [[f64; 3]; 3],
    /// Every patient of the day, same grouping (count and ledger sum).
    pub patients_by_group: [[u16; 3]; 3],
    pub ledger_all: [[f64; 3]; 3],
    /// Escort waits (pickup minute − request minute), one per escort.
    pub escort_wait_sum: f64,
    pub escort_waits: u32,
    /// Dispatch travel times (helper position → request room at helper speed), by nurse/robot.
    pub escort_travel_sum: [f64; 2],
    pub escort_travels: [u32; 2],
    /// Smallest and largest sample (0 when there was none).
    pub escort_travel_min: [f64; 2],
    pub escort_travel_max: [f64; 2],
    /// Executed swing-doctor moves (the reference's doctor_moves_count).
    pub swing_moves: u32,
    /// Routing outcomes per decision (perfect, backup, wrong): a bounced patient counts again.
    pub routing_decisions: [u32; 3],
    /// Routing outcome of each routed patient's FIRST decision (perfect, backup, wrong).
    pub routing_first_by_patient: [u16; 3],
    /// Decisions taken per role (router, dispatcher, manager).
    pub decisions: [u32; 3],
    /// Dispatch decisions that assigned nobody.
    pub empty_dispatches: u32,
    /// Times the empty-dispatch safety cap made the clock advance.
    pub empty_dispatch_cap_triggers: u32,
    /// Ward waits (treatment start − ward arrival) of patients with an arrival stamp.
    pub ward_wait_sum: f64,
    pub ward_waits: u32,
    /// Patients sent back to triage from a ward.
    pub bounces: u32,
    /// Events handled.
    pub events: u32,
    /// The day's arrival peaks (the template the day was given, or its single random peak).
    /// Not part of the trajectory hash: the arrival times they shape are, through the day's
    /// events; statistics saved before this field existed read as no peak.
    #[serde(default)]
    pub peaks: ArrivalTemplate,
    /// The clock when the day ended: the day's length or past it for a whole day, less for a
    /// counterfactual day cut short by its twin's end (`PairDays::EitherEnds`). Not part of
    /// the trajectory hash (the events that set the clock are); statistics saved before this
    /// field existed read as 0.
    #[serde(default)]
    pub end_minute: u16,
}

impl HsDayStats {
    pub(crate) fn start(day: u32, patients: u16, peaks: ArrivalTemplate) -> Self {
        Self {
            day,
            patients,
            peaks,
            ..Self::default()
        }
    }

    /// Feed every field into a trajectory hash (floats by their bits).
    pub fn hash_into(&self, h: &mut TrajectoryHash) {
        h.write_u32(self.day);
        h.write_u32(u32::from(self.patients) | u32::from(self.patients_treated) << 16);
        h.write_u32(u32::from(self.patients_exited));
        for imp in 0..3 {
            for pri in 0..3 {
                h.write_u32(
                    u32::from(self.finished[imp][pri])
                        | u32::from(self.patients_by_group[imp][pri]) << 16,
                );
                h.write_u64(self.ledger_finished[imp][pri].to_bits());
                h.write_u64(self.ledger_all[imp][pri].to_bits());
            }
        }
        h.write_u64(self.escort_wait_sum.to_bits());
        h.write_u32(self.escort_waits);
        for k in 0..2 {
            h.write_u64(self.escort_travel_sum[k].to_bits());
            h.write_u32(self.escort_travels[k]);
            h.write_u64(self.escort_travel_min[k].to_bits());
            h.write_u64(self.escort_travel_max[k].to_bits());
        }
        h.write_u32(self.swing_moves);
        for k in 0..3 {
            h.write_u32(self.routing_decisions[k]);
            h.write_u32(u32::from(self.routing_first_by_patient[k]));
            h.write_u32(self.decisions[k]);
        }
        h.write_u32(self.empty_dispatches);
        h.write_u32(self.empty_dispatch_cap_triggers);
        h.write_u64(self.ward_wait_sum.to_bits());
        h.write_u32(self.ward_waits);
        h.write_u32(self.bounces);
        h.write_u32(self.events);
    }

    pub fn decisions_total(&self) -> u32 {
        self.decisions.iter().sum()
    }

    /// Mean ledger total of finished patients with impairment none vs impaired (low or high).
    pub fn finished_mean_ledger(&self) -> (f64, f64) {
        let mut sums = [0.0f64; 2];
        let mut counts = [0u32; 2];
        for imp in 0..3 {
            let g = usize::from(imp > 0);
            for pri in 0..3 {
                sums[g] += self.ledger_finished[imp][pri];
                counts[g] += self.finished[imp][pri] as u32;
            }
        }
        let mean = |s: f64, c: u32| if c == 0 { 0.0 } else { s / c as f64 };
        (mean(sums[0], counts[0]), mean(sums[1], counts[1]))
    }
}
