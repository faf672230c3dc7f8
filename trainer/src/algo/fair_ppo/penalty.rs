//! Fair-PPO's penalty terms (docs/fair-ppo.md): the group comparisons of one update, the shaped
//! penalty's running scales and the reference's normalisers, and their metrics.
//!
//! A fairness notion is a list of *comparisons*, one per level: demographic parity has one
//! (non-sensitive vs sensitive), conditional statistical parity one per level of the legitimate
//! factor (AH: berry colour; HS: priority), counterfactual fairness one per factual/twin pair.
//! Each comparison has an advantaged-by-convention side `a` (non-sensitive, or the factual
//! world) and a side `b`, a retrospective gap (realised mean return of `a` minus that of `b`)
//! and a prospective gap (mean critic value of `a` minus that of `b`).
//!
//! - `shaped`: [`Shaper`] turns the gaps into `delta = alpha * g_R / M_R + beta * g_V / M_V`
//!   per comparison, with `M` running maxima of |gap| (decay 0.99), and the trainers turn delta
//!   into per-cell (weight, mix weight) pairs that the device applies per row (`fair_adjust`):
//!   AH `(1 - delta, delta)` for side a and `(1 + delta, -delta)` for side b, the mix being the
//!   other group's mean advantage at the same instance and step; HS `(1, -delta)` / `(1, delta)`
//!   on the router's rows, the mix being the patient's standardised ledger-to-go (every notion;
//!   for CF a hospital against its twin); AH counterfactual runs `(1 ∓ delta, 0)`. alpha = beta
//!   = 0 gives exactly (1, 0): PPO bit for bit.
//! - `reference`: spec §4 exactly: [`MinMax`] normalisers, the penalty P, and the dynamic-λ
//!   gradient factor `1 + P / (P + 1e-8)` where the reference's λ is not detached (AH DP and
//!   CSP), else 1 (no gradient effect: HS, and AH CF).

use crate::config::{Fairness, Penalty, TrainConfig};
use serde::{Deserialize, Serialize};

/// Decay of the running normalisers (spec §4.1).
pub const DECAY: f64 = 0.99;

/// The reference's running min–max normaliser (spec §4.1): state (max, min) from (−∞, +∞);
/// `update(x)`: max := max(x, 0.99·max), min := min(x, 0.99·min); `normalise(x)` :=
/// (x − min)/(max − min) if max > min, else 0. The infinite start is kept as `seen = false`
/// (the first update sets both bounds to x, exactly what the infinities give), so the state
/// is finite and round-trips through a JSON checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "MinMaxRepr")]
pub struct MinMax {
    pub max: f64,
    pub min: f64,
    pub seen: bool,
}

/// What a checkpoint may hold: also the first format, whose fresh bounds were ±∞ written as
/// JSON null (read back as a fresh normaliser).
#[derive(Deserialize)]
struct MinMaxRepr {
    max: Option<f64>,
    min: Option<f64>,
    seen: Option<bool>,
}

impl From<MinMaxRepr> for MinMax {
    fn from(r: MinMaxRepr) -> Self {
        let seen = r.seen.unwrap_or(r.max.is_some() && r.min.is_some());
        Self {
            max: r.max.unwrap_or(0.0),
            min: r.min.unwrap_or(0.0),
            seen,
        }
    }
}

impl MinMax {
    pub fn update(&mut self, x: f64) {
        if self.seen {
            self.max = x.max(DECAY * self.max);
            self.min = x.min(DECAY * self.min);
        } else {
            (self.max, self.min, self.seen) = (x, x, true);
        }
    }

    pub fn normalise(&self, x: f64) -> f64 {
        if self.max > self.min {
            (x - self.min) / (self.max - self.min)
        } else {
            0.0
        }
    }

    /// Update with `x`, then normalise `x` (the reference's order).
    pub fn update_normalise(&mut self, x: f64) -> f64 {
        self.update(x);
        self.normalise(x)
    }
}

/// The reference's gradient factor of a pass with penalty `p` (spec §4.1): with λ = L/(P +
/// 1e-8) not detached, ∇(L + λP) = (1 + P/(P + 1e-8))·∇L; with λ detached, 1.
pub fn reference_factor(p: f64, lambda_detached: bool) -> f32 {
    if lambda_detached {
        1.0
    } else {
        (1.0 + p / (p + 1e-8)) as f32
    }
}

/// Per network (or role), the (max, min) of each of its normalisers that has seen a value: the
/// reference penalty's scales in a metrics line.
pub fn normaliser_bounds(norms: &[Vec<MinMax>]) -> Vec<Vec<[f64; 2]>> {
    norms
        .iter()
        .map(|n| {
            n.iter()
                .filter(|m| m.seen)
                .map(|m| [m.max, m.min])
                .collect()
        })
        .collect()
}

/// A running scale: max(|x|, 0.99·scale), the shaped penalty's normaliser (one per component).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningMax {
    pub value: f64,
}

impl RunningMax {
    pub fn update(&mut self, x: f64) -> f64 {
        self.value = x.abs().max(DECAY * self.value);
        self.value
    }

    /// x / scale, 0 when the scale is 0 (no gap has been seen yet).
    pub fn normalise(&self, x: f64) -> f64 {
        if self.value > 0.0 {
            x / self.value
        } else {
            0.0
        }
    }
}

/// One comparison of an update: side a (non-sensitive or factual) against side b.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// The level's name ("all" for DP, the factor level for CSP, the pair for CF).
    pub level: String,
    /// Realised mean return of a minus that of b (None: not measured this update).
    pub retro: Option<f64>,
    /// Mean critic value of a minus that of b (None: a side had no rows).
    pub pro: Option<f64>,
}

/// The shaped penalty's state (checkpointed): one running scale per component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shaper {
    pub retro_scale: RunningMax,
    pub pro_scale: RunningMax,
}

/// What the shaped penalty did in one update.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ShapedTerms {
    /// Per comparison: delta (side a's weight is 1 − delta, side b's 1 + delta).
    pub delta: Vec<f64>,
    /// Normalised retrospective and prospective gaps per comparison.
    pub retro_norm: Vec<f64>,
    pub pro_norm: Vec<f64>,
    pub retro_scale: f64,
    pub pro_scale: f64,
}

impl Shaper {
    /// Update the scales with the largest |gap| of this update and return each comparison's
    /// delta = alpha·g_R/M_R + beta·g_V/M_V (a missing gap counts 0).
    pub fn update(&mut self, comps: &[Comparison], alpha: f32, beta: f32) -> ShapedTerms {
        let biggest = |f: &dyn Fn(&Comparison) -> Option<f64>| {
            comps
                .iter()
                .filter_map(f)
                .map(f64::abs)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        if let Some(r) = biggest(&|c| c.retro) {
            self.retro_scale.update(r);
        }
        if let Some(v) = biggest(&|c| c.pro) {
            self.pro_scale.update(v);
        }
        let retro_norm: Vec<f64> = comps
            .iter()
            .map(|c| self.retro_scale.normalise(c.retro.unwrap_or(0.0)))
            .collect();
        let pro_norm: Vec<f64> = comps
            .iter()
            .map(|c| self.pro_scale.normalise(c.pro.unwrap_or(0.0)))
            .collect();
        let delta = retro_norm
            .iter()
            .zip(&pro_norm)
            .map(|(r, v)| f64::from(alpha) * r + f64::from(beta) * v)
            .collect();
        ShapedTerms {
            delta,
            retro_norm,
            pro_norm,
            retro_scale: self.retro_scale.value,
            pro_scale: self.pro_scale.value,
        }
    }
}

/// Side a's and side b's advantage weights for a delta, as the device takes them (f32). With
/// delta = 0 both are exactly 1.
pub fn side_weights(delta: f64) -> [f32; 2] {
    [(1.0 - delta) as f32, (1.0 + delta) as f32]
}

/// What the run's algorithm asks of the penalty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FairSpec {
    pub fairness: Fairness,
    pub penalty: Penalty,
    pub alpha: f32,
    pub beta: f32,
}

impl FairSpec {
    /// The penalty of a Fair-PPO run; None for plain PPO (the metrics are still measured).
    pub fn of(cfg: &TrainConfig) -> Option<Self> {
        cfg.algo.is_fair().then_some(Self {
            fairness: cfg.fair.fairness,
            penalty: cfg.fair.penalty,
            alpha: cfg.fair.alpha,
            beta: cfg.fair.beta,
        })
    }
}

/// Levels above which the penalty's metrics are summarised (counterfactual runs compare every
/// agent): mean and largest |·| instead of one value per level.
pub const LEVELS_LISTED: usize = 16;

/// The metrics of the shaped penalty.
pub fn shaped_json(comps: &[Comparison], t: &ShapedTerms) -> serde_json::Value {
    if comps.len() > LEVELS_LISTED {
        let summary = |v: &mut dyn Iterator<Item = f64>| {
            let v: Vec<f64> = v.map(f64::abs).collect();
            let n = v.len().max(1) as f64;
            serde_json::json!({
                "mean_abs": v.iter().sum::<f64>() / n,
                "max_abs": v.iter().copied().fold(0.0, f64::max),
            })
        };
        return serde_json::json!({
            "mode": "shaped",
            "levels": comps.len(),
            "retro": summary(&mut comps.iter().filter_map(|c| c.retro)),
            "pro": summary(&mut comps.iter().filter_map(|c| c.pro)),
            "retro_scale": t.retro_scale,
            "pro_scale": t.pro_scale,
            "delta": summary(&mut t.delta.iter().copied()),
        });
    }
    serde_json::json!({
        "mode": "shaped",
        "levels": comps.iter().map(|c| c.level.clone()).collect::<Vec<_>>(),
        "retro": comps.iter().map(|c| c.retro).collect::<Vec<_>>(),
        "pro": comps.iter().map(|c| c.pro).collect::<Vec<_>>(),
        "retro_norm": t.retro_norm,
        "pro_norm": t.pro_norm,
        "retro_scale": t.retro_scale,
        "pro_scale": t.pro_scale,
        "delta": t.delta,
    })
}

#[cfg(test)]
mod tests {
    //! The normalisers and the shaped weights on hand-computed numbers.
    use super::*;

    #[test]
    fn min_max_follows_the_reference_rules() {
        let mut n = MinMax::default();
        // First update: max = min = x, normalise gives 0.
        assert_eq!(n.update_normalise(5.0), 0.0);
        // Second: max = max(0, 4.95) = 4.95, min = min(0, 4.95) = 0 → 0 / 4.95.
        assert_eq!(n.update_normalise(0.0), 0.0);
        assert_eq!((n.max, n.min), (4.95, 0.0));
        let x = n.update_normalise(2.0);
        assert!((x - 2.0 / (0.99 * 4.95)).abs() < 1e-12);
    }

    #[test]
    fn min_max_round_trips_and_reads_the_infinite_start_as_fresh() {
        let mut n = MinMax::default();
        n.update(3.0);
        let back: MinMax = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        let fresh: MinMax = serde_json::from_str(r#"{"max":null,"min":null}"#).unwrap();
        assert_eq!(fresh, MinMax::default());
    }

    #[test]
    fn the_reference_factor_doubles_only_undetached_positive_penalties() {
        assert_eq!(reference_factor(0.0, false), 1.0);
        assert_eq!(reference_factor(0.3, false), 2.0);
        assert_eq!(reference_factor(0.3, true), 1.0);
    }

    #[test]
    fn shaped_deltas_are_normalised_gaps_and_zero_weights_are_exactly_one() {
        let mut s = Shaper::default();
        let comps = [
            Comparison {
                level: "red".into(),
                retro: Some(2.0),
                pro: Some(-1.0),
            },
            Comparison {
                level: "blue".into(),
                retro: Some(-4.0),
                pro: None,
            },
        ];
        let t = s.update(&comps, 0.5, 0.25);
        assert_eq!(t.retro_scale, 4.0);
        assert_eq!(t.pro_scale, 1.0);
        assert_eq!(t.delta, vec![0.5 * 0.5 - 0.25, -0.5]);
        let zero = Shaper::default().update(&comps, 0.0, 0.0);
        for d in zero.delta {
            assert_eq!(side_weights(d), [1.0, 1.0]);
        }
        // The scale decays by 0.99 when the gaps shrink.
        let t = s.update(&comps[..1], 0.5, 0.0);
        assert_eq!(t.retro_scale, 0.99 * 4.0);
    }
}
