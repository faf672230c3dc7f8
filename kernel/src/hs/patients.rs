//! Patient statuses, their shaping potentials, the transitions the spec allows, and the daily
//! patient schedule (spec §2.3, §2.4, §2.6, §2.8).

use super::arrivals::ArrivalTemplate;
use crate::rng::Stream;
use serde::{Deserialize, Serialize};

/// A patient's status (spec §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Status {
    Waiting = 0,
    BeingAccepted = 1,
    MovingToTriage = 2,
    WaitingForEscort = 3,
    InTriageQueue = 4,
    BeingTriaged = 5,
    /// Waiting in a ward for a doctor.
    Triaged = 6,
    MovingToWard = 7,
    BeingTreated = 8,
    Done = 9,
    WaitingForExit = 10,
    MovingToExit = 11,
    Exited = 12,
    /// Walking with a helper; has no shaping potential.
    BeingEscorted = 13,
}

pub const STATUSES: usize = 14;

impl Status {
    pub const ALL: [Status; STATUSES] = [
        Status::Waiting,
        Status::BeingAccepted,
        Status::MovingToTriage,
        Status::WaitingForEscort,
        Status::InTriageQueue,
        Status::BeingTriaged,
        Status::Triaged,
        Status::MovingToWard,
        Status::BeingTreated,
        Status::Done,
        Status::WaitingForExit,
        Status::MovingToExit,
        Status::Exited,
        Status::BeingEscorted,
    ];

    #[inline]
    pub fn from_u8(s: u8) -> Status {
        Status::ALL[s as usize]
    }

    /// Shaping potential Φ (spec §2.6); `None` for being_escorted.
    #[inline]
    pub fn potential(self) -> Option<f64> {
        Some(match self {
            Status::Waiting => 0.0,
            Status::BeingAccepted => 1.0,
            Status::MovingToTriage => 2.0,
            Status::WaitingForEscort => 2.0,
            Status::InTriageQueue => 3.0,
            Status::BeingTriaged => 4.0,
            Status::Triaged => 5.0,
            Status::MovingToWard => 5.5,
            Status::BeingTreated => 6.0,
            Status::Done => 7.0,
            Status::WaitingForExit => 8.0,
            Status::MovingToExit => 8.5,
            Status::Exited => 9.0,
            Status::BeingEscorted => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::BeingAccepted => "being_accepted",
            Status::MovingToTriage => "moving_to_triage",
            Status::WaitingForEscort => "waiting_for_escort",
            Status::InTriageQueue => "in_triage_queue",
            Status::BeingTriaged => "being_triaged",
            Status::Triaged => "triaged",
            Status::MovingToWard => "moving_to_ward",
            Status::BeingTreated => "being_treated",
            Status::Done => "done",
            Status::WaitingForExit => "waiting_for_exit",
            Status::MovingToExit => "moving_to_exit",
            Status::Exited => "exited",
            Status::BeingEscorted => "being_escorted",
        }
    }

    /// "Finished" for the metrics (spec §2.8, §6): done or exited.
    #[inline]
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Exited)
    }
}

/// Every status transition the journey of spec §2.6 allows (both profiles).
pub fn transition_allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Waiting, BeingAccepted)
            | (BeingAccepted, MovingToTriage)
            | (BeingAccepted, WaitingForEscort)
            | (MovingToTriage, InTriageQueue)
            | (WaitingForEscort, BeingEscorted)
            | (BeingEscorted, InTriageQueue)
            | (BeingEscorted, Triaged)
            | (BeingEscorted, Exited)
            | (InTriageQueue, BeingTriaged)
            | (BeingTriaged, MovingToWard)
            | (BeingTriaged, WaitingForEscort)
            | (MovingToWard, Triaged)
            | (Triaged, BeingTreated)
            | (Triaged, MovingToTriage)
            | (Triaged, WaitingForEscort)
            | (BeingTreated, Done)
            | (Done, MovingToExit)
            | (Done, WaitingForExit)
            | (WaitingForExit, BeingEscorted)
            | (MovingToExit, Exited)
    )
}

/// Impairment levels; index = speed class of the patient.
pub const IMPAIRMENT_NONE: u8 = 0;
pub const IMPAIRMENT_LOW: u8 = 1;
pub const IMPAIRMENT_HIGH: u8 = 2;
/// Priorities (the reference's PRIO_TO_IDX).
pub const PRIORITY_LOW: u8 = 0;
pub const PRIORITY_MEDIUM: u8 = 1;
pub const PRIORITY_HIGH: u8 = 2;

/// Waiting-penalty weight by priority (spec §2.5 step 9).
pub const WAIT_WEIGHT: [f64; 3] = [0.05, 0.15, 0.3];
/// Manager queue-pressure weight by priority (spec §2.7c).
pub const URGENCY_WEIGHT: [f64; 3] = [0.5, 1.0, 2.0];
/// Manager observation urgency by priority (spec §2.7c).
pub const URGENCY_OBS: [f64; 3] = [0.0, 0.5, 1.0];

/// One day's patients, written into caller storage (no allocation).
pub struct Schedule<'a> {
    pub impairment: &'a mut [u8],
    pub priority: &'a mut [u8],
    pub illness: &'a mut [u8],
    pub arrival: &'a mut [u16],
}

pub use crate::world::World;

/// Draw the day's patients (spec §2.3–2.4). `attrs` is the day's HsPatients stream (the
/// reference wrapper's `rng`: peaks, rates, then per patient impairment, priority, illness) and
/// `gaps` the day's HsArrivals stream (the reference's global `random.expovariate`).
/// `template`: the day's peaks when the caller sets them (the reference's
/// `arrival_template_override`; the patient stream then draws no peak), else `None` for the
/// wrapper's single random peak. Returns the peaks the day used.
pub fn generate(
    n: usize,
    sim_minutes: u16,
    template: Option<ArrivalTemplate>,
    attrs: &mut Stream,
    gaps: &mut Stream,
    swap_impairment: bool,
    out: Schedule<'_>,
) -> ArrivalTemplate {
    // Peaks: the template's, or a single interval (start, end) with end independent of start
    // (it may precede it: no peak at all).
    let peaks = template.unwrap_or_else(|| {
        let start = attrs.range_inclusive(0, 420);
        let end = attrs.range_inclusive(60, 120) + attrs.range_inclusive(0, 420);
        ArrivalTemplate::single(start as u16, end as u16)
    });
    let lambda_peak = attrs.uniform(10.0, 18.0);
    let lambda_off = attrs.uniform(1.0, 5.0);
    // build_arrival_schedule: integer times, truncated every step. Raw times are stored in the
    // u16 column before rescaling: 300 gaps at >= 1 arrival/h total ~18,000 minutes (the u16
    // range is 45 standard deviations away); overflow is asserted, never truncated.
    let mut t: i64 = 0;
    for i in 0..n {
        let lambda = if peaks.is_peak(t) {
            lambda_peak
        } else {
            lambda_off
        };
        let gap = gaps.exponential(lambda / 60.0);
        t = (t as f64 + gap) as i64; // Python int(): truncation toward zero (t + gap >= 0)
        assert!(
            t < u16::MAX as i64,
            "raw arrival time {t} minutes exceeds the u16 arrival column"
        );
        out.arrival[i] = t as u16;
    }
    let raw_last = t;
    let sim = sim_minutes as f64;
    if raw_last > sim_minutes as i64 {
        let scale = sim / raw_last as f64;
        for a in out.arrival[..n].iter_mut() {
            let scaled = (*a as f64 * scale - 0.001) as i64; // truncation toward zero
            *a = scaled.max(0) as u16;
        }
    }
    for i in 0..n {
        let u = attrs.unit_f64();
        // random.choices with weights [0.6, 0.25, 0.15]: bisect on cumulative weights.
        let mut imp = if u < 0.6 {
            IMPAIRMENT_NONE
        } else if u < 0.85 {
            IMPAIRMENT_LOW
        } else {
            IMPAIRMENT_HIGH
        };
        if swap_impairment {
            imp = match imp {
                IMPAIRMENT_NONE => IMPAIRMENT_HIGH,
                IMPAIRMENT_HIGH => IMPAIRMENT_NONE,
                x => x,
            };
        }
        out.impairment[i] = imp;
        out.priority[i] = attrs.below(3) as u8;
        out.illness[i] = attrs.below(6) as u8;
    }
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Purpose;

    #[test]
    fn worked_shaping_totals_match_the_spec() {
        let g = 0.99;
        let shape = |path: &[Status]| -> f64 {
            let mut sum = 0.0;
            for w in path.windows(2) {
                if let (Some(a), Some(b)) = (w[0].potential(), w[1].potential())
                    && b > a
                {
                    sum += g * b - a;
                }
            }
            sum
        };
        use Status::*;
        let walker = [
            Waiting,
            BeingAccepted,
            MovingToTriage,
            InTriageQueue,
            BeingTriaged,
            MovingToWard,
            Triaged,
            BeingTreated,
            Done,
            MovingToExit,
            Exited,
        ];
        let impaired = [
            Waiting,
            BeingAccepted,
            WaitingForEscort,
            BeingEscorted,
            InTriageQueue,
            BeingTriaged,
            WaitingForEscort,
            BeingEscorted,
            Triaged,
            BeingTreated,
            Done,
            WaitingForExit,
            BeingEscorted,
            Exited,
        ];
        assert!((shape(&walker) - 9.04).abs() < 1e-9, "{}", shape(&walker));
        assert!(
            (shape(&impaired) - 5.72).abs() < 1e-9,
            "{}",
            shape(&impaired)
        );
        for path in [&walker[..], &impaired[..]] {
            for w in path.windows(2) {
                assert!(transition_allowed(w[0], w[1]), "{:?}", w);
            }
        }
    }

    /// One day's schedule from fresh streams of seed `day`.
    fn day(day: u64, template: Option<ArrivalTemplate>) -> ([u8; 300], [u8; 300], [u16; 300]) {
        let (mut imp, mut pri, mut ill, mut arr) =
            ([0u8; 300], [0u8; 300], [0u8; 300], [0u16; 300]);
        let mut a = Stream::new(day, Purpose::HsPatients, &[]);
        let mut g = Stream::new(day, Purpose::HsArrivals, &[0]);
        generate(
            300,
            720,
            template,
            &mut a,
            &mut g,
            false,
            Schedule {
                impairment: &mut imp,
                priority: &mut pri,
                illness: &mut ill,
                arrival: &mut arr,
            },
        );
        (imp, pri, arr)
    }

    #[test]
    fn a_template_replaces_the_peak_draws_and_shapes_the_arrivals() {
        let morning = ArrivalTemplate {
            peaks: [(0, 60), (100, 160)],
        };
        let evening = ArrivalTemplate {
            peaks: [(400, 460), (500, 560)],
        };
        let (mut differ, mut tenth_m, mut tenth_e) = (0, 0u32, 0u32);
        for d in 0..50 {
            let (imp_m, pri_m, arr_m) = day(d, Some(morning));
            let (imp_e, pri_e, arr_e) = day(d, Some(evening));
            let (imp_f, pri_f, _) = day(d, None);
            // The rates and attributes come from the patient stream and do not depend on which
            // template: the stream draws no peak when one is given.
            assert_eq!((imp_m, pri_m), (imp_e, pri_e), "day {d}");
            // Without one, its three peak draws come first and shift every attribute draw.
            differ += usize::from((imp_m, pri_m) != (imp_f, pri_f));
            tenth_m += u32::from(arr_m[9]);
            tenth_e += u32::from(arr_e[9]);
        }
        assert_eq!(differ, 50);
        // A peak from minute 0 makes the first arrivals come at the peak rate (10-18/h instead
        // of 1-5/h): the 10th arrival comes several times earlier on average.
        assert!(
            3 * tenth_m < tenth_e,
            "10th arrivals {tenth_m} vs {tenth_e} (sums)"
        );
    }

    #[test]
    fn schedule_is_sorted_within_the_day_and_attributes_follow_the_weights() {
        let n = 300;
        let mut counts = [0u32; 3];
        for d in 0..200u64 {
            let (imp, _, arr) = day(d, None);
            assert!(arr.windows(2).all(|w| w[0] <= w[1]));
            assert!(arr[n - 1] <= 720, "{}", arr[n - 1]);
            for &i in &imp {
                counts[i as usize] += 1;
            }
        }
        let total = (n * 200) as f64;
        let f = counts.map(|c| c as f64 / total);
        assert!(
            (f[0] - 0.6).abs() < 0.01 && (f[1] - 0.25).abs() < 0.01,
            "{f:?}"
        );
    }
}
