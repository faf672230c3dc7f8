//! SOTO's welfare gradient (Zimmer et al. 2021; baselines-spec §A2.1, §A5.4): the team stream
//! of every agent trains on `A^T(t) = Σ_j w_j Â_j(t)`, the welfare's gradient weights times
//! every agent's (standardised) advantage at the same step. GGF weights the agents by rank of
//! their utility (ω_r = b^{−r}, r = 0 the worst-off, ties broken by agent index); α-fairness by
//! `(J_j + ε)^{−α}`.

use crate::config::SotoWelfare;

/// Ascending ranks of `j` (0 = the lowest utility), ties broken by index: deterministic and
/// independent of the float's sign of zero.
pub fn ranks(j: &[f64], out: &mut [u32]) {
    let mut order: Vec<usize> = (0..j.len()).collect();
    order.sort_by(|&a, &b| j[a].total_cmp(&j[b]).then(a.cmp(&b)));
    for (r, &i) in order.iter().enumerate() {
        out[i] = r as u32;
    }
}

/// The welfare weight of each agent of one instance from its utilities `j`.
pub fn weights(kind: SotoWelfare, j: &[f64], base: f64, alpha: f64, eps: f64, out: &mut [f64]) {
    match kind {
        SotoWelfare::Ggf => {
            let mut r = vec![0u32; j.len()];
            ranks(j, &mut r);
            for (w, &r) in out.iter_mut().zip(&r) {
                *w = base.powf(-f64::from(r));
            }
        }
        SotoWelfare::Alpha => {
            for (w, &v) in out.iter_mut().zip(j) {
                // The authors' utilities are non-negative; a negative one weighs as zero.
                *w = (v.max(0.0) + eps).powf(-alpha);
            }
        }
    }
}

/// `Σ_j w_j a_j` in agent order (a fixed order: the same bits on every thread count).
pub fn team_advantage(w: &[f64], a: &[f64]) -> f64 {
    w.iter().zip(a).map(|(w, a)| w * a).sum()
}

/// Z-scores of `j` over its agents (0 for every agent when they are all equal).
pub fn z_scores(j: &[f64], out: &mut [f64]) {
    let n = j.len() as f64;
    let mean = j.iter().sum::<f64>() / n;
    let var = j.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    for (z, &v) in out.iter_mut().zip(j) {
        *z = if sd > 0.0 { (v - mean) / sd } else { 0.0 };
    }
}

/// What a SOTO rollout (or evaluation) reports of its streams and of the welfare of the
/// episodes that ended in it, over the units' utilities (AH: the agents' returns; HS: the
/// groups' mean ledgers).
#[derive(Clone, Debug, Default)]
pub struct WelfareTally {
    pub decisions: u64,
    pub team: u64,
    pub episodes: u64,
    ggf: f64,
    alpha: (f64, u64),
    min: f64,
    mean: f64,
    cv: (f64, u64),
}

impl WelfareTally {
    /// An episode ended with the units' utilities `u`.
    pub fn add_episode(&mut self, u: &[f64], ggf_w: &[f64], alpha: f64) {
        use crate::metrics::welfare::{alpha_fair, coefficient_of_variation, ggf};
        self.episodes += 1;
        self.ggf += ggf(u, ggf_w).unwrap_or(0.0);
        if let Some(a) = alpha_fair(u, alpha) {
            self.alpha.0 += a;
            self.alpha.1 += 1;
        }
        self.min += u.iter().copied().fold(f64::INFINITY, f64::min);
        self.mean += u.iter().sum::<f64>() / u.len() as f64;
        if let Some(c) = coefficient_of_variation(u) {
            self.cv.0 += c;
            self.cv.1 += 1;
        }
    }

    /// The `soto` object's shared keys; the minimum and mean utility under `min_key` and
    /// `mean_key`.
    pub fn report(&self, welfare: SotoWelfare, min_key: &str, mean_key: &str) -> serde_json::Value {
        let per = |v: f64| (self.episodes > 0).then(|| v / self.episodes as f64);
        let mean = |(s, n): (f64, u64)| (n > 0).then(|| s / n as f64);
        let mut v = serde_json::json!({
            "welfare": welfare.to_string(),
            "team_fraction": (self.decisions > 0)
                .then(|| self.team as f64 / self.decisions as f64),
            "episodes": self.episodes,
            "ggf": per(self.ggf),
            "alpha_fair": mean(self.alpha),
            "cv": mean(self.cv),
        });
        v[min_key] = per(self.min).into();
        v[mean_key] = per(self.mean).into();
        v
    }
}

#[cfg(test)]
mod tests {
    //! baselines-spec §A5.8: weights of 1 (or α = 0) give the plain sum of the advantages; one
    //! agent gives its own advantage; the team advantage does not depend on the agents' order;
    //! ranks and ties are deterministic.
    use super::*;

    #[test]
    fn unit_weights_and_alpha_zero_give_the_plain_sum() {
        let a = [0.5, -1.25, 2.0, 0.125];
        let j = [3.0, 1.0, 2.0, 5.0];
        let mut w = [0.0; 4];
        weights(SotoWelfare::Alpha, &j, 2.0, 0.0, 1e-8, &mut w);
        assert_eq!(w, [1.0; 4]);
        assert_eq!(team_advantage(&w, &a), a.iter().sum::<f64>());
        // GGF weights are never all 1 (b > 1), but ω ≡ 1 in the sum is the plain sum.
        assert_eq!(team_advantage(&[1.0; 4], &a), a.iter().sum::<f64>());
    }

    #[test]
    fn one_agent_gets_its_own_advantage() {
        let mut w = [0.0];
        for kind in [SotoWelfare::Ggf, SotoWelfare::Alpha] {
            weights(kind, &[7.0], 2.0, 0.0, 1e-8, &mut w);
            assert_eq!(team_advantage(&w, &[-0.75]), -0.75, "{kind:?}");
        }
    }

    #[test]
    fn ggf_weights_the_worst_off_most_and_ties_go_by_index() {
        let mut w = [0.0; 4];
        weights(
            SotoWelfare::Ggf,
            &[3.0, 1.0, 3.0, 5.0],
            2.0,
            0.9,
            1e-8,
            &mut w,
        );
        // Ranks: agent 1 (J 1) → 0, agent 0 (3, lower index) → 1, agent 2 (3) → 2, agent 3 → 3.
        assert_eq!(w, [0.5, 1.0, 0.25, 0.125]);
        let mut r = [0u32; 3];
        ranks(&[0.0, -0.0, 0.0], &mut r);
        assert_eq!(r, [1, 0, 2], "total order: -0 before +0, then by index");
    }

    #[test]
    fn the_team_advantage_is_invariant_to_agent_order() {
        let j = [2.0, 9.0, 4.0, 1.0, 6.0];
        let a = [0.1, -0.4, 0.8, 1.5, -2.0];
        let perm = [3, 0, 4, 1, 2];
        for kind in [SotoWelfare::Ggf, SotoWelfare::Alpha] {
            let mut w = [0.0; 5];
            weights(kind, &j, 2.0, 0.9, 1e-8, &mut w);
            let base = team_advantage(&w, &a);
            let jp: Vec<f64> = perm.iter().map(|&i| j[i]).collect();
            let ap: Vec<f64> = perm.iter().map(|&i| a[i]).collect();
            let mut wp = [0.0; 5];
            weights(kind, &jp, 2.0, 0.9, 1e-8, &mut wp);
            let permuted = team_advantage(&wp, &ap);
            assert!(
                (base - permuted).abs() < 1e-12,
                "{kind:?}: {base} vs {permuted}"
            );
        }
        let mut z = [0.0; 3];
        z_scores(&[1.0, 2.0, 3.0], &mut z);
        assert!((z[0] + z[2]).abs() < 1e-12 && z[1] == 0.0);
        z_scores(&[4.0; 3], &mut z);
        assert_eq!(z, [0.0; 3]);
    }
}
