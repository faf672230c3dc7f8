//! FEN's utilities (Jiang & Lu 2019; baselines-spec §A4.3): each agent's utility is its mean
//! reward per step since its episode began; the agents learn the mean utility ū exactly or by
//! gossip; the controller is rewarded with the fair-efficient reward
//! `min(1, ū/c) / (ε + |u_i/ū − 1|)`, from the utilities at the end of its macro step.

use crate::config::{Consensus, DiversityReward};

/// δ_i = u_i/ū − 1 (0 when ū = 0) and η = min(1, ū/c): the controller's two extra inputs.
pub fn deviation(u: f64, ubar: f64, c: f64) -> (f64, f64) {
    let delta = if ubar != 0.0 { (u - ubar) / ubar } else { 0.0 };
    (delta, (ubar / c).min(1.0))
}

/// The fair-efficient reward of an agent of utility `u` when the mean is `ubar`.
pub fn fair_efficient_reward(u: f64, ubar: f64, c: f64, eps: f64) -> f64 {
    let (delta, eta) = deviation(u, ubar, c);
    eta / (eps + delta.abs())
}

/// The reference port's controller reward (F3): (ū/c) / (ε + |u/(ū + ε) − 1|), utilisation
/// unclipped.
pub fn reference_fair_efficient_reward(u: f64, ubar: f64, c: f64, eps: f64) -> f64 {
    (ubar / c) / (eps + (u / (ubar + eps) - 1.0).abs())
}

/// One round of the reference port's gossip (F2) on the complete graph of `ubar`'s agents:
/// ū_i ← ū_i + Σ_j (ū_j − ū_i)/(n + 1), from the estimates, not the utilities.
pub fn stale_gossip_round(ubar: &mut [f64], scratch: &mut [f64]) {
    let n = ubar.len();
    scratch.copy_from_slice(ubar);
    let w = 1.0 / (n as f64 + 1.0);
    for i in 0..n {
        let pull: f64 = scratch.iter().map(|&uj| uj - scratch[i]).sum();
        ubar[i] = scratch[i] + w * pull;
    }
}

/// Entropy of the categorical distribution of `logits`.
pub fn entropy(logits: &[f32]) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    -logits
        .iter()
        .map(|&l| {
            let lp = l - lse;
            lp.exp() * lp
        })
        .sum::<f32>()
}

/// A diversity sub-policy's reward for acting as sub-policy `z`, from the controller's
/// `logits` on the next inputs: log p_θ(z | x) floored at `floor`, or p_θ(z | x).
pub fn diversity_reward(kind: DiversityReward, floor: f32, logits: &[f32], z: usize) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let logp = logits[z] - lse;
    match kind {
        DiversityReward::LogProb => logp.max(floor),
        DiversityReward::Prob => logp.exp(),
    }
}

/// How the agents of one instance estimate ū (one estimate per agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsensusRule {
    pub kind: Consensus,
    pub rounds: u32,
    /// 0: the complete graph; k: a ring, each agent hearing k neighbours on each side.
    pub ring: u32,
}

impl ConsensusRule {
    /// Every agent's estimate of the mean of `u` into `out`; `scratch` has `u.len()` entries.
    /// Gossip starts from the agents' own utilities every call (so no stale estimate survives,
    /// the reference port's bug F2) and runs `rounds` Metropolis rounds
    /// `ũ_i ← ũ_i + Σ_{j∈N(i)} (ũ_j − ũ_i) / (max(d_i, d_j) + 1)`; every degree is equal
    /// on these graphs, so the weights are 1/(d + 1).
    pub fn estimate(&self, u: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = u.len();
        if n == 0 {
            return;
        }
        match self.kind {
            Consensus::Exact => {
                let mean = u.iter().sum::<f64>() / n as f64;
                out.fill(mean);
            }
            Consensus::Gossip => {
                out.copy_from_slice(u);
                let k = self.ring as usize;
                // The complete graph, or a ring whose neighbourhoods wrap over every agent.
                let complete = k == 0 || 2 * k + 1 >= n;
                let degree = if complete { n - 1 } else { 2 * k };
                let w = 1.0 / (degree as f64 + 1.0);
                for _ in 0..self.rounds {
                    scratch.copy_from_slice(out);
                    for i in 0..n {
                        let mut pull = 0.0;
                        if complete {
                            for &uj in scratch.iter() {
                                pull += uj - scratch[i];
                            }
                        } else {
                            for d in 1..=k {
                                pull += scratch[(i + d) % n] - scratch[i];
                                pull += scratch[(i + n - d) % n] - scratch[i];
                            }
                        }
                        out[i] = scratch[i] + w * pull;
                    }
                }
            }
        }
    }
}

/// Running mean and variance (Welford, f64) of the controller's extra inputs, so they enter
/// its network standardised (the SOTO authors' FEN, `RunningMeanStd`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningNorm {
    pub count: u64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

impl RunningNorm {
    pub fn new(dims: usize) -> Self {
        Self {
            count: 0,
            mean: vec![0.0; dims],
            m2: vec![0.0; dims],
        }
    }

    pub fn update(&mut self, x: &[f64]) {
        self.count += 1;
        for ((&x, mean), m2) in x.iter().zip(&mut self.mean).zip(&mut self.m2) {
            let d = x - *mean;
            *mean += d / self.count as f64;
            *m2 += d * (x - *mean);
        }
    }

    /// `x` standardised in place (clipped to ±10); unchanged before two samples.
    pub fn apply(&self, x: &mut [f64]) {
        if self.count < 2 {
            return;
        }
        for ((x, mean), m2) in x.iter_mut().zip(&self.mean).zip(&self.m2) {
            let var = m2 / (self.count - 1) as f64;
            *x = ((*x - mean) / (var + 1e-8).sqrt()).clamp(-10.0, 10.0);
        }
    }
}

/// Coefficient of variation of utilities `u` (FEN's fairness measure, sample std over the
/// mean); None for fewer than two agents or a zero mean.
pub fn cv(u: &[f64]) -> Option<f64> {
    let n = u.len();
    if n < 2 {
        return None;
    }
    let mean = u.iter().sum::<f64>() / n as f64;
    if mean == 0.0 {
        return None;
    }
    let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(var.sqrt() / mean.abs())
}

#[cfg(test)]
mod tests {
    //! The fair-efficient reward against hand-computed utilities (ū = 0, u_i = ū, above and
    //! below the mean, utilisation saturating at c); exact consensus is the limit of gossip on
    //! a connected ring, and one round on the complete graph is already exact; gossip starts
    //! from the agents' own utilities every call.
    use super::*;

    #[test]
    fn fair_efficient_reward_by_hand() {
        // ū = 0: no utilisation, no reward, whatever u_i.
        assert_eq!(fair_efficient_reward(0.0, 0.0, 5.0, 0.1), 0.0);
        assert_eq!(deviation(0.3, 0.0, 5.0), (0.0, 0.0));
        // u_i = ū = 1, c = 5: (1/5) / 0.1 = 2.
        assert!((fair_efficient_reward(1.0, 1.0, 5.0, 0.1) - 2.0).abs() < 1e-12);
        // u_i = 1.5, ū = 1: δ = 0.5, η = 0.2: 0.2 / 0.6.
        assert!((fair_efficient_reward(1.5, 1.0, 5.0, 0.1) - 0.2 / 0.6).abs() < 1e-12);
        // Below the mean by as much: the same reward (|δ| punishes both directions).
        assert!((fair_efficient_reward(0.5, 1.0, 5.0, 0.1) - 0.2 / 0.6).abs() < 1e-12);
        // ū above c: utilisation saturates at 1: 1 / (0.1 + 0.5).
        assert!((fair_efficient_reward(15.0, 10.0, 5.0, 0.1) - 1.0 / 0.6).abs() < 1e-12);
    }

    /// The reference port's pieces (F3, F2, F6) by hand.
    #[test]
    fn reference_reward_gossip_round_and_entropy_by_hand() {
        // u_i = ū: (ū/c)/ε with the port's ε = 1e-6 (ratio u/(ū + ε) a hair below 1).
        let r = reference_fair_efficient_reward(0.5, 0.5, 1.0, 1e-6);
        let want = 0.5 / (1e-6 + (1.0 - 0.5 / (0.5 + 1e-6)));
        assert!((r - want).abs() < 1e-6 * want, "{r} vs {want}");
        assert!(r > 1e5, "explodes when u_i ≈ ū: {r}");
        // Unclipped: ū = 10 > c = 1 gives utilisation 10.
        assert!((reference_fair_efficient_reward(15.0, 10.0, 1.0, 0.0) - 10.0 / 0.5).abs() < 1e-12);
        // One round on two agents: weights 1/3.
        let mut ubar = [0.0, 3.0];
        stale_gossip_round(&mut ubar, &mut [0.0; 2]);
        assert_eq!(ubar, [1.0, 2.0]);
        assert!((entropy(&[0.0; 4]) - 4f32.ln()).abs() < 1e-6);
        assert!(entropy(&[0.0, -1e9]).abs() < 1e-6);
    }

    #[test]
    fn gossip_converges_to_the_exact_mean() {
        let u: Vec<f64> = (0..40).map(|i| f64::from(i * 7 % 11) * 0.1).collect();
        let mut exact = vec![0.0; 40];
        let mut scratch = vec![0.0; 40];
        let rule = |kind, rounds, ring| ConsensusRule { kind, rounds, ring };
        rule(Consensus::Exact, 1, 0).estimate(&u, &mut exact, &mut scratch);
        let mut g = vec![0.0; 40];
        rule(Consensus::Gossip, 2000, 2).estimate(&u, &mut g, &mut scratch);
        for (a, b) in g.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // A few rounds are not there yet, and the estimates differ between agents.
        rule(Consensus::Gossip, 3, 2).estimate(&u, &mut g, &mut scratch);
        assert!(g.iter().zip(&exact).any(|(a, b)| (a - b).abs() > 1e-3));
        // The complete graph: one round is the mean.
        rule(Consensus::Gossip, 1, 0).estimate(&u, &mut g, &mut scratch);
        for (a, b) in g.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn gossip_starts_from_the_current_utilities_every_call() {
        let rule = ConsensusRule {
            kind: Consensus::Gossip,
            rounds: 1,
            ring: 1,
        };
        let mut out = vec![0.0; 5];
        let mut scratch = vec![0.0; 5];
        rule.estimate(&[1.0; 5], &mut out, &mut scratch);
        assert_eq!(out, [1.0; 5]);
        // A later call does not remember the earlier estimate.
        rule.estimate(&[3.0; 5], &mut out, &mut scratch);
        assert_eq!(out, [3.0; 5]);
    }

    #[test]
    fn running_norm_standardises_and_cv_matches_its_definition() {
        let mut n = RunningNorm::new(2);
        let mut x = [2.0, 3.0];
        n.apply(&mut x);
        assert_eq!(x, [2.0, 3.0]);
        for x in [1.0, 2.0, 3.0, 4.0] {
            n.update(&[x, 10.0 * x]);
        }
        let mut z = [2.5, 25.0];
        n.apply(&mut z);
        assert!(z[0].abs() < 1e-9 && z[1].abs() < 1e-9, "the mean maps to 0");
        let sd = (5.0f64 / 3.0).sqrt();
        let mut one = [2.5 + sd, 25.0];
        n.apply(&mut one);
        assert!((one[0] - 1.0).abs() < 1e-6);
        let c = cv(&[1.0, 2.0, 3.0]).unwrap();
        assert!((c - 0.5).abs() < 1e-12, "std 1 over mean 2");
        assert_eq!(cv(&[0.0, 0.0]), None);
        assert_eq!(cv(&[1.0]), None);
    }
}
