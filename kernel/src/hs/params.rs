//! Limits, configuration and the rule flags of HospitalSim.
//!
//! Limits are compile-time constants (every stored column is sized by them); the configuration
//! ([`HsParams`]) picks counts within them and is checked once at construction. The flags
//! ([`HsFlags`]) are the reference profile's quirks, each a named switch.

use crate::Profile;
use serde::{Deserialize, Serialize};

/// Most patients in one day (the reference uses 300).
pub const PATIENTS_MAX: usize = 320;
/// Most pending events in one instance's queue. Each patient has at most one pending event, each
/// helper at most one, and a swing doctor at most one per re-targeting still in flight (at most
/// three: a move takes 10 minutes and decisions come every 5), so this bound is never reached
/// with the limits below; overflowing it is an assert naming it.
pub const EVENTS_MAX: usize = 1024;
/// Most acceptance clerks (reference 30).
pub const CLERKS_MAX: usize = 32;
/// Most triage agents (reference 30).
pub const TRIAGE_MAX: usize = 32;
/// Most nurses (reference 60).
pub const NURSES_MAX: usize = 64;
/// Most robots (reference 30).
pub const ROBOTS_MAX: usize = 64;
/// Most helpers (nurses + robots); idle helpers are a 128-bit mask.
pub const HELPERS_MAX: usize = 128;
/// Most fixed doctors per treatment ward (reference 10).
pub const FIXED_PER_WARD_MAX: usize = 16;
/// Most swing doctors (reference 18).
pub const SWING_MAX: usize = 32;
/// Treatment wards.
pub const WARDS: usize = 6;
/// Every doctor of an instance: fixed doctors ward by ward, then the swing doctors.
pub const DOCTORS_MAX: usize = WARDS * FIXED_PER_WARD_MAX + SWING_MAX;
/// Most simulated minutes per day (reference 720).
pub const MINUTES_MAX: u32 = 1440;
/// Router observation length (12 symptom bits + 6 ward loads).
pub const ROUTER_OBS: usize = 18;
/// Dispatcher observation length.
pub const DISPATCHER_OBS: usize = 6;
/// Manager observation length (3 per ward + free swing fraction).
pub const MANAGER_OBS: usize = 19;
/// Router action: one of the six wards.
pub const ROUTER_ACTIONS: u32 = 6;
/// Dispatcher action: this many components…
pub const DISPATCH_COMPONENTS: usize = 20;
/// …each in `0..DISPATCH_CHOICES`.
pub const DISPATCH_CHOICES: u32 = 50;
/// Manager action: one component per swing doctor, each in `0..MANAGER_CHOICES` (6 = no-op).
pub const MANAGER_CHOICES: u32 = 7;
/// Impairment groups of patients (none, low, high): the parts of [`super::HsRound::reward_by_group`].
pub const IMPAIRMENTS: usize = 3;
/// Events handled per tick call before the rest of the tick runs (the reference's cap).
pub const EVENTS_PER_CALL_MAX: u32 = 1000;

const _: () = assert!(NURSES_MAX + ROBOTS_MAX <= HELPERS_MAX && HELPERS_MAX == 128);
const _: () = assert!(DOCTORS_MAX <= u8::MAX as usize, "doctor ids are u8");
const _: () = assert!(PATIENTS_MAX <= u16::MAX as usize, "patient ids are u16");
const _: () = assert!(PATIENTS_MAX + HELPERS_MAX + 3 * SWING_MAX <= EVENTS_MAX);
const _: () = assert!(EVENTS_MAX <= u32::MAX as usize);
const _: () = assert!(DISPATCH_COMPONENTS <= HELPERS_MAX);
const _: () = assert!(
    DISPATCH_COMPONENTS <= 32 && DISPATCH_CHOICES <= 255,
    "dispatch components are a u32 bit mask of u8 choices"
);
const _: () = assert!(
    MINUTES_MAX + 64 <= u16::MAX as u32,
    "times are stored as u16 minutes"
);

/// Counts and rates of one hospital. Defaults are the values every reference script passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HsParams {
    pub n_patients: u16,
    pub n_clerks: u8,
    pub n_triage: u8,
    pub n_nurses: u8,
    pub n_robots: u8,
    pub fixed_doctors_per_ward: u8,
    pub n_swing: u8,
    /// Length of a day in minutes (reference: 12 h = 720).
    pub sim_minutes: u16,
    /// Discount used by the patient ledger's potential-based shaping.
    pub gamma: f64,
    /// Safety cap: after this many consecutive empty dispatch decisions at one minute the
    /// dispatcher is not asked again until the clock advances (counted in the day statistics).
    pub dispatch_empty_cap: u16,
}

impl Default for HsParams {
    fn default() -> Self {
        Self {
            n_patients: 300,
            n_clerks: 30,
            n_triage: 30,
            n_nurses: 60,
            n_robots: 30,
            fixed_doctors_per_ward: 10,
            n_swing: 18,
            sim_minutes: 720,
            gamma: 0.99,
            dispatch_empty_cap: 100,
        }
    }
}

impl HsParams {
    /// Assert every count is within its limit (programmer error otherwise).
    pub fn validate(&self) {
        let check = |name: &str, v: usize, lo: usize, hi: usize, limit: &str| {
            assert!(
                (lo..=hi).contains(&v),
                "HsParams.{name} = {v} is outside {lo}..={hi} ({limit})"
            );
        };
        check(
            "n_patients",
            self.n_patients as usize,
            1,
            PATIENTS_MAX,
            "PATIENTS_MAX",
        );
        check(
            "n_clerks",
            self.n_clerks as usize,
            1,
            CLERKS_MAX,
            "CLERKS_MAX",
        );
        check(
            "n_triage",
            self.n_triage as usize,
            1,
            TRIAGE_MAX,
            "TRIAGE_MAX",
        );
        check(
            "n_nurses",
            self.n_nurses as usize,
            0,
            NURSES_MAX,
            "NURSES_MAX",
        );
        check(
            "n_robots",
            self.n_robots as usize,
            0,
            ROBOTS_MAX,
            "ROBOTS_MAX",
        );
        check(
            "fixed_doctors_per_ward",
            self.fixed_doctors_per_ward as usize,
            0,
            FIXED_PER_WARD_MAX,
            "FIXED_PER_WARD_MAX",
        );
        check("n_swing", self.n_swing as usize, 1, SWING_MAX, "SWING_MAX");
        check(
            "sim_minutes",
            self.sim_minutes as usize,
            1,
            MINUTES_MAX as usize,
            "MINUTES_MAX",
        );
        assert!(
            self.n_nurses as usize + self.n_robots as usize >= 1,
            "HsParams: at least one helper (nurse or robot) is needed"
        );
        assert!(
            self.dispatch_empty_cap >= 1,
            "HsParams.dispatch_empty_cap must be >= 1"
        );
    }

    /// Helpers (nurses then robots).
    pub fn n_helpers(&self) -> usize {
        self.n_nurses as usize + self.n_robots as usize
    }

    /// Doctors (fixed then swing).
    pub fn n_doctors(&self) -> usize {
        WARDS * self.fixed_doctors_per_ward as usize + self.n_swing as usize
    }
}

/// The reference code's quirks, one switch each. `reference` turns every one on, `clean` every
/// one off; a profile is nothing but this set. Spec = `shared/reference/seed-implementation-spec.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HsFlags {
    /// Spec §2.3, §2.6, §9.9. Reference: a "backup" ward (in the illness's quality map with a
    /// multiplier < 1) pays the router but does not treat: the patient is bounced back to triage
    /// like a wrong ward. Clean: every ward in the quality map treats the patient.
    pub backup_wards_do_not_treat: bool,
    /// Spec §2.6, §9.10. Reference: escorted (impaired) patients never get the triage-queue or
    /// ward arrival timestamps, so they accrue no waiting penalties and give no ward-wait samples.
    /// Clean: escorted arrivals are stamped exactly like self-walking ones.
    pub escorted_arrivals_unstamped: bool,
    /// Spec §2.6. Reference: the triage-queue timestamp is the FIRST arrival at triage and is never
    /// reset, so a bounced patient is penalised from its first minute back in the queue. Clean: the
    /// timestamp is reset at every arrival at triage (each queue wait has its 10-minute grace).
    pub triage_wait_from_first_arrival: bool,
    /// Spec §2.5 step 11. Reference: the high-impairment escort penalty measures the wait from the
    /// ward arrival timestamp (never set for escorted patients, so the penalty is dead). Clean: it
    /// measures the wait from the escort request, the evident intent.
    pub escort_penalty_from_room_time: bool,
    /// Spec §2.5 step 9 / §2.7c. Reference: a ward arrival stamped at minute 0 counts as missing
    /// (Python's falsy `or`). Clean: 0 is a time like any other. (Unreachable with the default
    /// rates; kept so the rule is explicit.)
    pub zero_room_time_is_missing: bool,
    /// Spec §2.7c, §9.11. Reference: all swing doctors start in PromptCare. Clean: they start in
    /// the StaffArea (their declared position) and reach a ward only when the manager sends them.
    pub swing_doctors_start_in_prompt_care: bool,
    /// Spec §2.7c, §9.11. Reference: busy or in-transit swing doctors can be re-targeted (their
    /// earlier arrival events stay queued and move them to the newest target early, and a
    /// re-targeted treating doctor abandons its patient, whose treatment still completes).
    /// Clean: a component addressing a busy doctor is a no-op.
    pub retarget_busy_swing_doctors: bool,
    /// Spec §2.7b, §9.12. Reference: when a dispatch assigns nobody the dispatcher is asked again
    /// at the same minute (bounded by `HsParams::dispatch_empty_cap`, counted). Clean: after an
    /// empty dispatch the clock advances before the dispatcher is asked again.
    pub dispatch_rehook_same_minute: bool,
    /// Spec §2.10, §9.13. Reference: a counterfactual twin loses its injected schedule: it gets
    /// the factual twin's attributes unswapped and independently drawn arrival times. Clean: the
    /// twin has the same arrival times and every impairment swapped none <-> high (low stays).
    pub counterfactual_schedule_lost: bool,
}

impl HsFlags {
    pub const fn from_profile(p: Profile) -> Self {
        let on = matches!(p, Profile::Reference);
        Self {
            backup_wards_do_not_treat: on,
            escorted_arrivals_unstamped: on,
            triage_wait_from_first_arrival: on,
            escort_penalty_from_room_time: on,
            zero_room_time_is_missing: on,
            swing_doctors_start_in_prompt_care: on,
            retarget_busy_swing_doctors: on,
            dispatch_rehook_same_minute: on,
            counterfactual_schedule_lost: on,
        }
    }
}
