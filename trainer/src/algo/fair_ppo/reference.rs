//! The reference code's penalty, in its two forms (spec §4): AH's per training pass
//! ([`ReferenceForm::Passes`]: clamped gaps on totals, min–max normalised, the dynamic-λ loss
//! scale) and HS's per role ([`ReferenceForm::Roles`]: reported only, λ detached).
//!
//! [`ReferenceForm::Passes`]: crate::env::fairness::ReferenceForm::Passes
//! [`ReferenceForm::Roles`]: crate::env::fairness::ReferenceForm::Roles

use super::penalty::{Comparison, FairSpec, MinMax, normaliser_bounds, reference_factor};
use crate::config::Fairness;
use crate::env::fairness::CellSums;
use fairground_shaders::ppo::CellStats;

/// One pass's reference penalty: P and, per level, the clamped gaps and their normalised
/// values (the normalisers' bounds are reported with them).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RefTerms {
    pub p: f64,
    pub retro: Vec<f64>,
    pub pro: Vec<f64>,
    pub retro_norm: Vec<f64>,
    pub pro_norm: Vec<f64>,
}

/// The reference's penalty of one pass on the memory of group `mem` (spec §4.2, §4.3): per
/// level (side-a cells, side-b cells), retro = max(Σ rewards of the memory's side − Σ of the
/// other side, 0) on totals, pro = max(mean value of the memory's side − of the other, 0);
/// P = α·Σ normalise_R(retro) + β·Σ normalise_V(pro) with one normaliser per component and
/// level (`norms`: [R levels..., V levels...]), each updated just before normalising. (In the
/// reference the "other memory" is the other group's, so side b is 1 − mem.)
pub fn pass_penalty(
    levels: &[(Vec<u32>, Vec<u32>)],
    sums: &CellSums,
    mem: u8,
    spec: &FairSpec,
    norms: &mut [MinMax],
) -> RefTerms {
    let total = |v: &[f64], cs: &[u32]| cs.iter().map(|&c| v[c as usize]).sum::<f64>();
    let count = |cs: &[u32]| cs.iter().map(|&c| sums.count[c as usize]).sum::<u64>();
    let mut t = RefTerms::default();
    for (k, (a, b)) in levels.iter().enumerate() {
        let (own, other) = if mem == 0 { (a, b) } else { (b, a) };
        let retro = (total(&sums.reward, own) - total(&sums.reward, other)).max(0.0);
        // An empty side's mean is NaN in the reference (spec §9 item 22); clean treats it as 0.
        let mean = |cs: &[u32]| {
            let n = count(cs);
            if n > 0 {
                total(&sums.value, cs) / n as f64
            } else {
                0.0
            }
        };
        let pro = (mean(own) - mean(other)).max(0.0);
        let (nr, nv) = (
            norms[k].update_normalise(retro),
            norms[levels.len() + k].update_normalise(pro),
        );
        t.p += f64::from(spec.alpha) * nr + f64::from(spec.beta) * nv;
        t.retro.push(retro);
        t.pro.push(pro);
        t.retro_norm.push(nr);
        t.pro_norm.push(nv);
    }
    t
}

/// The passes' penalties and loss scales (per network, in pass order) and their metrics.
/// `passes`: (network, memory) pairs in order; network `g`'s normalisers are `norms[g]`.
pub fn passes(
    norms: &mut [Vec<MinMax>],
    spec: &FairSpec,
    levels: &[(Vec<u32>, Vec<u32>)],
    sums: &CellSums,
    passes: &[(usize, usize)],
) -> (Vec<Vec<f32>>, serde_json::Value) {
    let mut p_all = Vec::new();
    let mut terms = Vec::new();
    let mut scales = vec![Vec::new(); norms.len()];
    for (g, scale) in scales.iter_mut().enumerate() {
        for &(net, mem) in passes.iter().filter(|&&(n, _)| n == g) {
            let t = pass_penalty(levels, sums, mem as u8, spec, &mut norms[net]);
            p_all.push(t.p);
            // AH DP and CSP: λ is not detached; AH CF: detached (spec §4.1).
            scale.push(reference_factor(t.p, spec.fairness == Fairness::Cf));
            terms.push(t);
        }
    }
    let json = serde_json::json!({
        "mode": "reference",
        "passes": passes,
        "p": p_all,
        "terms": terms,
        // Per network, its normalisers' (max, min): R levels, then V levels.
        "normalisers": normaliser_bounds(norms),
        "loss_scale": scales.iter().flatten().copied().collect::<Vec<_>>(),
    });
    (scales, json)
}

/// The reference's P per role (spec §4.5–4.7; λ is detached in every HS variant, so the
/// gradient factor is 1 and training is PPO's: P is only reported). `stats`: each network's
/// device reductions by cell (CF: cell = hospital, even = factual). `partner[r]`: the network
/// whose rows CF compares with network r's (with one agent set per world, the other world's
/// network of the role, each with its own normalisers as the reference's two agents; else r,
/// whose rows hold both worlds).
pub fn roles(
    norms: &mut [Vec<MinMax>],
    spec: &FairSpec,
    comps: &[Comparison],
    stats: &[Option<CellStats>],
    role_names: &[&str],
    partner: &[usize],
) -> serde_json::Value {
    let (alpha, beta) = (f64::from(spec.alpha), f64::from(spec.beta));
    let mut p = Vec::with_capacity(norms.len());
    for (r, norms) in norms.iter_mut().enumerate() {
        let value = match spec.fairness {
            // §4.5: |gaps|, β term 0 without values of both groups.
            Fairness::Dp => {
                let c = &comps[0];
                let mut v = alpha * norms[0].update_normalise(c.retro.unwrap_or(0.0).abs());
                if let Some(pro) = c.pro {
                    v += beta * norms[4].update_normalise(pro.abs());
                }
                v
            }
            // §4.6: normalisers updated with max(d, 0), applied to the signed d; the β part is
            // always 0 in the reference.
            Fairness::Csp => {
                let mut retro = 0.0;
                for (k, c) in comps.iter().enumerate() {
                    let d = c.retro.unwrap_or(0.0);
                    norms[k].update(d.max(0.0));
                    retro += norms[k].normalise(d);
                }
                (alpha * retro).max(0.0)
            }
            // §4.7: per role, |Σ rewards of world 0 − of world 1| and |mean V|.
            Fairness::Cf => {
                let (mut r0, mut r1, mut v0, mut v1, mut n0, mut n1) =
                    (0.0, 0.0, 0.0, 0.0, 0u32, 0u32);
                let nets: &[usize] = if partner[r] == r {
                    &[r]
                } else {
                    &[r, partner[r]]
                };
                for s in nets.iter().filter_map(|&n| stats[n].as_ref()) {
                    for (c, (rw, vl)) in s.rewards.iter().zip(&s.values).enumerate() {
                        if c % 2 == 0 {
                            (r0, v0, n0) = (
                                r0 + f64::from(rw.sum),
                                v0 + f64::from(vl.sum),
                                n0 + vl.count,
                            );
                        } else {
                            (r1, v1, n1) = (
                                r1 + f64::from(rw.sum),
                                v1 + f64::from(vl.sum),
                                n1 + vl.count,
                            );
                        }
                    }
                }
                let mean = |v: f64, k: u32| if k > 0 { v / f64::from(k) } else { 0.0 };
                let retro = norms[0].update_normalise((r0 - r1).abs());
                let pro = norms[4].update_normalise((mean(v0, n0) - mean(v1, n1)).abs());
                (alpha * retro + beta * pro).max(0.0)
            }
        };
        p.push(value);
    }
    serde_json::json!({
        "mode": "reference",
        "roles": role_names,
        "p": p,
        "retro": comps.iter().map(|c| c.retro).collect::<Vec<_>>(),
        "pro": comps.iter().map(|c| c.pro).collect::<Vec<_>>(),
        "normalisers": normaliser_bounds(norms),
        "loss_scale": vec![1.0; norms.len()],
    })
}
