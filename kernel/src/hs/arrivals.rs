//! Where the day's arrival peaks come from (spec §2.4 and §3.2's curriculum).
//!
//! The reference's hospital wrapper draws ONE random peak per day unless its caller set an
//! `arrival_template_override`; the DP, CSP, FEN and SOTO training scripts set one every
//! episode (a curriculum over a pool of five two-peak templates), and their test scripts build
//! a fresh template for every test episode. The counterfactual scripts never apply theirs.
//! Which of the three a run uses is an input of the day's patient generation, not a rule of the
//! hospital: [`ArrivalPeaks`] in the construction config.
//!
//! Everything here is fixed-size: the pool lives in an array built at construction, and a day
//! picks its template with draws from its own stream (no allocation while stepping).

use crate::rng::{Purpose, Stream};
use serde::{Deserialize, Serialize};

/// Peaks per template (the reference's `generate_arrival_templates` always makes two).
pub const TEMPLATE_PEAKS: usize = 2;
/// Largest curriculum pool (the reference uses 5; its CF scripts generate 50 and never use them).
pub const POOL_MAX: usize = 64;

/// One day's peak intervals `[start, end)` in minutes; an interval with `start >= end` is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalTemplate {
    pub peaks: [(u16, u16); TEMPLATE_PEAKS],
}

impl ArrivalTemplate {
    /// The wrapper's fallback: a single interval (the second one empty).
    pub fn single(start: u16, end: u16) -> Self {
        Self {
            peaks: [(start, end), (0, 0)],
        }
    }

    /// Whether minute `t` lies in a peak (the reference's `any(a <= t < b for a, b in peaks)`).
    #[inline]
    pub fn is_peak(&self, t: i64) -> bool {
        self.peaks
            .iter()
            .any(|&(a, b)| i64::from(a) <= t && t < i64::from(b))
    }

    /// The training scripts' difficulty score: number of peaks × their total duration (the
    /// reference sums `end − start` of each; a template always has two peaks).
    pub fn difficulty(&self) -> i64 {
        let total: i64 = self
            .peaks
            .iter()
            .map(|&(a, b)| i64::from(b) - i64::from(a))
            .sum();
        TEMPLATE_PEAKS as i64 * total
    }

    /// One template as `generate_arrival_templates` draws it: a morning peak starting at
    /// N(120, 30) and an afternoon one at N(300, 30) minutes, each lasting N(60, 15); every
    /// normal variate truncated toward zero (Python's `int`), the start clipped to
    /// `[0, sim_minutes − 30]` (0 when the day is shorter than 30 minutes), the duration to
    /// `[30, 120]`, the end to the day; the two intervals sorted. Draw order: start, duration
    /// of the morning peak, then of the afternoon one.
    pub fn draw(sim_minutes: u16, s: &mut Stream) -> Self {
        let sim = i64::from(sim_minutes);
        let mut peak = |mean_start: f64| {
            let start = s.normal(mean_start, 30.0) as i64;
            let duration = s.normal(60.0, 15.0) as i64;
            let start = 0.max(start.min(sim - 30));
            let duration = 30.max(duration.min(120));
            let end = sim.min(start + duration);
            (start as u16, end as u16)
        };
        let morning = peak(120.0);
        let afternoon = peak(300.0);
        let mut peaks = [morning, afternoon];
        peaks.sort();
        Self { peaks }
    }
}

/// The training scripts' curriculum (spec §3.2): `templates` templates drawn once from a fixed
/// seed (the reference reseeds its global RNG with 42, whatever the run's seed) and sorted by
/// [`ArrivalTemplate::difficulty`] (stable); the day of global index g draws uniformly from the
/// first `max(1, ⌊0.3·templates⌋)` while g < `phase_days[0]`, from the first
/// `max(1, ⌊0.7·templates⌋)` while g < `phase_days[1]`, then from all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Curriculum {
    pub templates: u8,
    pub seed: u64,
    pub phase_days: [u32; 2],
}

impl Default for Curriculum {
    /// The reference's values: five templates from seed 42, phases ending at days 300 and 600.
    fn default() -> Self {
        Self {
            templates: 5,
            seed: 42,
            phase_days: [300, 600],
        }
    }
}

/// Where a day's peaks come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalPeaks {
    /// The wrapper's fallback: one peak per day, start U{0..420}, end U{60..120} + U{0..420}
    /// (independent of the start, so it may precede it: no peak), drawn from the day's
    /// patient stream before the rates.
    #[default]
    SingleRandom,
    /// The training scripts' curriculum over a fixed pool (the patient stream then draws no
    /// peak: the rates come first, as in the reference when the override is set).
    Curriculum(Curriculum),
    /// The test scripts: every day a fresh template drawn from the day's own stream.
    FreshTemplate,
}

impl ArrivalPeaks {
    /// Panics (a programmer error) on an empty or oversized pool or unordered phases.
    pub fn validate(&self) {
        if let ArrivalPeaks::Curriculum(c) = self {
            assert!(
                (1..=POOL_MAX).contains(&(c.templates as usize)),
                "Curriculum.templates = {} is outside 1..={POOL_MAX}",
                c.templates
            );
            assert!(
                c.phase_days[0] <= c.phase_days[1],
                "Curriculum.phase_days must be ascending, got {:?}",
                c.phase_days
            );
        }
    }
}

/// [`ArrivalPeaks`] resolved at construction: the sorted pool, ready for the days.
#[derive(Clone, Debug)]
pub struct ArrivalPlan {
    peaks: ArrivalPeaks,
    pool: [ArrivalTemplate; POOL_MAX],
    pool_len: usize,
    sim_minutes: u16,
}

/// Sub-streams of a day's `Purpose::HsTemplates` stream (and of the pool's).
const CHOICE: u64 = 0;
const FRESH: u64 = 1;
const POOL: u64 = 2;

impl ArrivalPlan {
    pub fn new(peaks: ArrivalPeaks, sim_minutes: u16) -> Self {
        peaks.validate();
        let mut pool = [ArrivalTemplate::default(); POOL_MAX];
        let mut pool_len = 0;
        if let ArrivalPeaks::Curriculum(c) = peaks {
            pool_len = c.templates as usize;
            let mut s = Stream::new(c.seed, Purpose::HsTemplates, &[POOL]);
            for t in pool[..pool_len].iter_mut() {
                *t = ArrivalTemplate::draw(sim_minutes, &mut s);
            }
            // Python's `sorted` is stable; so is `sort_by_key`.
            pool[..pool_len].sort_by_key(ArrivalTemplate::difficulty);
        }
        Self {
            peaks,
            pool,
            pool_len,
            sim_minutes,
        }
    }

    /// The curriculum's pool, easiest first (empty unless [`ArrivalPeaks::Curriculum`]).
    pub fn pool(&self) -> &[ArrivalTemplate] {
        &self.pool[..self.pool_len]
    }

    /// How many of the pool's first templates the day of global index `g` chooses from.
    pub fn pool_prefix(&self, g: u64) -> usize {
        let ArrivalPeaks::Curriculum(c) = self.peaks else {
            return 0;
        };
        let n = self.pool_len;
        // The reference: easy = sorted[:max(1, int(n*0.3))], medium = sorted[:max(1, int(n*0.7))].
        if g < u64::from(c.phase_days[0]) {
            1.max(n * 3 / 10)
        } else if g < u64::from(c.phase_days[1]) {
            1.max(n * 7 / 10)
        } else {
            n
        }
    }

    /// The template of a day with seed `day_seed` and global index `g` (its place in the order
    /// the run's days would be played one after another), or `None` for the single random
    /// peak, which the patient stream draws itself.
    pub fn template(&self, day_seed: u64, g: u64) -> Option<ArrivalTemplate> {
        match self.peaks {
            ArrivalPeaks::SingleRandom => None,
            ArrivalPeaks::Curriculum(_) => {
                let k = self.pool_prefix(g);
                let mut s = Stream::new(day_seed, Purpose::HsTemplates, &[CHOICE]);
                Some(self.pool[s.below(k as u32) as usize])
            }
            ArrivalPeaks::FreshTemplate => {
                let mut s = Stream::new(day_seed, Purpose::HsTemplates, &[FRESH]);
                Some(ArrivalTemplate::draw(self.sim_minutes, &mut s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The template rule of `generate_arrival_templates` (clipping, truncation, sorting), the
    //! difficulty order, and the curriculum's phase prefixes, by hand.
    use super::*;

    #[test]
    fn difficulty_is_two_times_the_total_peak_duration() {
        let t = ArrivalTemplate {
            peaks: [(131, 181), (271, 316)],
        };
        assert_eq!(t.difficulty(), 2 * (50 + 45));
        assert!(t.is_peak(131) && t.is_peak(180) && !t.is_peak(181) && t.is_peak(300));
        assert!(
            !ArrivalTemplate::single(300, 200).is_peak(250),
            "an empty interval"
        );
    }

    #[test]
    fn drawn_templates_keep_the_reference_bounds() {
        let mut s = Stream::new(7, Purpose::HsTemplates, &[9]);
        for _ in 0..2_000 {
            let t = ArrivalTemplate::draw(720, &mut s);
            assert!(t.peaks[0] <= t.peaks[1], "sorted");
            for (a, b) in t.peaks {
                assert!(a <= 690, "start clipped to sim - 30");
                let d = b - a;
                assert!((30..=120).contains(&d), "duration {d} clipped to [30, 120]");
            }
        }
        // A short day: starts clip at 0 when sim − 30 < 0, ends at the day's end.
        let t = ArrivalTemplate::draw(20, &mut s);
        assert_eq!(t.peaks, [(0, 20), (0, 20)]);
    }

    #[test]
    fn template_means_follow_the_reference_normals() {
        let mut s = Stream::new(3, Purpose::HsTemplates, &[9]);
        let n = 20_000;
        let (mut starts, mut durations) = ([0.0f64; 2], 0.0f64);
        for _ in 0..n {
            let t = ArrivalTemplate::draw(720, &mut s);
            starts[0] += f64::from(t.peaks[0].0);
            starts[1] += f64::from(t.peaks[1].0);
            durations += f64::from(t.peaks[0].1 - t.peaks[0].0);
        }
        let m = |x: f64| x / n as f64;
        // int() truncation lowers each mean by about 0.5; clipping the duration to [30, 120]
        // barely moves N(60, 15). 5 standard errors: 30/sqrt(20000) ≈ 0.21 for the starts.
        assert!((m(starts[0]) - 119.5).abs() < 1.1, "{}", m(starts[0]));
        assert!((m(starts[1]) - 299.5).abs() < 1.1, "{}", m(starts[1]));
        assert!((m(durations) - 59.5).abs() < 0.6, "{}", m(durations));
    }

    #[test]
    fn curriculum_prefixes_are_the_reference_pools() {
        let plan = ArrivalPlan::new(ArrivalPeaks::Curriculum(Curriculum::default()), 720);
        assert_eq!(plan.pool().len(), 5);
        assert!(
            plan.pool()
                .windows(2)
                .all(|w| w[0].difficulty() <= w[1].difficulty())
        );
        // 5 templates: easy = 1, medium = 3, hard = 5 (max(1, int(1.5)), int(3.5)).
        assert_eq!(
            [0, 299, 300, 599, 600, 10_000].map(|g| plan.pool_prefix(g)),
            [1, 1, 3, 3, 5, 5]
        );
        let mut seen = [0u32; 5];
        for d in 0..3_000u64 {
            let t = plan.template(d.wrapping_mul(0x9E37_79B9), d).unwrap();
            let k = plan.pool().iter().position(|p| *p == t).unwrap();
            seen[k] += 1;
            if d < 300 {
                assert_eq!(k, 0, "day {d}: the easy pool is the easiest template");
            } else if d < 600 {
                assert!(k < 3, "day {d}: the medium pool is the three easiest");
            }
        }
        assert!(
            seen.iter().all(|&c| c > 0),
            "every template is used: {seen:?}"
        );
        let two = ArrivalPlan::new(
            ArrivalPeaks::Curriculum(Curriculum {
                templates: 2,
                ..Curriculum::default()
            }),
            720,
        );
        assert_eq!([0, 300, 600].map(|g| two.pool_prefix(g)), [1, 1, 2]);
    }

    #[test]
    fn the_pool_depends_on_its_seed_not_on_the_days() {
        let c = Curriculum::default();
        let a = ArrivalPlan::new(ArrivalPeaks::Curriculum(c), 720);
        let b = ArrivalPlan::new(ArrivalPeaks::Curriculum(c), 720);
        assert_eq!(a.pool(), b.pool());
        let other = ArrivalPlan::new(ArrivalPeaks::Curriculum(Curriculum { seed: 43, ..c }), 720);
        assert_ne!(a.pool(), other.pool());
        let fresh = ArrivalPlan::new(ArrivalPeaks::FreshTemplate, 720);
        assert_ne!(fresh.template(1, 0), fresh.template(2, 0));
        assert_eq!(
            fresh.template(1, 0),
            fresh.template(1, 99),
            "fresh ignores the index"
        );
        assert_eq!(
            ArrivalPlan::new(ArrivalPeaks::SingleRandom, 720).template(1, 0),
            None
        );
    }
}
