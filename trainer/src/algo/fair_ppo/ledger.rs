//! Fair-PPO's one environment-specific extension: the ledger credit (HS's router,
//! `Credit::Ledger`, docs/fair-ppo.md). The shaped penalty credits each decision of the
//! credited network with the standardised ledger its patient gained from the decision on (the
//! ledger-to-go of finished patients), and its prospective gap is a ledger critic's: per cell, a
//! ridge least-squares fit of ledger-to-go on the decision's observation, refitted every update.

use crate::config::TrainConfig;
use crate::env::fairness::FairnessCells;
use crate::net::PolicyNet;
use fairground_shaders::Executor;

/// The ledger critic's ridge per row: keeps the fit defined when symptom bits are collinear
/// (12 bits, 6 illnesses) without moving the predictions' mean.
const LEDGER_CRITIC_RIDGE: f64 = 1e-3;

/// No patient in a credit record.
const NO_PATIENT: u16 = u16::MAX;

/// The credited network's per-row records of one rollout.
pub struct Ledger {
    /// The credited network (the router).
    pub net: usize,
    width: usize,
    /// Per store row: the patient (or `NO_PATIENT`), how many days its slot had ended in this
    /// rollout when it was routed, and the patient's ledger then.
    credit: Vec<(u16, u32, f64)>,
    /// Per store row: the observation the decision saw (the critic's features).
    obs_rows: Vec<f32>,
    /// Per store row: the ledger the patient gained from the decision on (NaN: not credited).
    to_go: Vec<f64>,
}

impl Ledger {
    pub fn new(net: usize, rows: usize, width: usize) -> Self {
        Self {
            net,
            width,
            credit: vec![(NO_PATIENT, 0, 0.0); rows],
            obs_rows: vec![0.0; rows * width],
            to_go: Vec::new(),
        }
    }

    pub fn begin_rollout(&mut self) {
        self.credit.fill((NO_PATIENT, 0, 0.0));
    }

    /// Record the patients of the credited network's decisions for `slots` into `rows`.
    pub fn on_decision<A: FairnessCells>(
        &mut self,
        env: &A,
        slots: &[u32],
        rows: &[u32],
        obs: &[f32],
    ) {
        let w = self.width;
        for (k, (&slot, &row)) in slots.iter().zip(rows).enumerate() {
            let ends = env.episodes_ended(slot);
            self.credit[row as usize] = match env.routed_patient(slot) {
                Some((p, ledger)) => (p, ends, ledger),
                None => (NO_PATIENT, ends, 0.0),
            };
            self.obs_rows[row as usize * w..(row as usize + 1) * w]
                .copy_from_slice(&obs[k * w..(k + 1) * w]);
        }
    }

    /// Per store row, the ledger its patient gained from the decision on: the reward-to-go of
    /// the patient ledger, so a decision is never credited with what happened before it. Only
    /// patients that finished (done or exited) are credited, since only they enter the
    /// disparity: a row whose patient is still in its day when the rollout ends, or whose day
    /// ended unfinished, gets NaN, as do rows without a patient or cell and rows whose day
    /// ended twice since.
    pub fn compute_to_go<A: FairnessCells, E: Executor>(
        &mut self,
        env: &A,
        net: &PolicyNet<E>,
        cell_ids: &[u32],
        cells: usize,
    ) {
        let slots = net.count.len();
        let mut to_go = vec![f64::NAN; self.credit.len()];
        for &row in &net.rows {
            let (p, ends_then, then) = self.credit[row as usize];
            let c = cell_ids[row as usize] as usize;
            if p == NO_PATIENT || c >= cells {
                continue;
            }
            let slot = (row as usize % slots) as u32;
            let last = env.final_ledger(slot, p, ends_then);
            to_go[row as usize] = last.map_or(f64::NAN, |l| l - then);
        }
        self.to_go = to_go;
    }

    /// The ledger critic: per cell, a ridge fit of the ledger-to-go of this rollout's credited
    /// rows on their observations, and its mean prediction over all of the cell's rows with a
    /// patient, finished or not (None: fewer than 2 credited rows). The prospective gap of a
    /// comparison is the difference of its cells' means.
    pub fn critic(&self, rows: &[u32], cell_ids: &[u32], cells: usize) -> Vec<Option<f64>> {
        let w = self.width;
        let obs = |row: u32| {
            self.obs_rows[row as usize * w..(row as usize + 1) * w]
                .iter()
                .map(|&v| f64::from(v))
        };
        (0..cells)
            .map(|c| {
                let in_cell = |row: &&u32| {
                    cell_ids[**row as usize] as usize == c
                        && self.credit[**row as usize].0 != NO_PATIENT
                };
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for &row in rows.iter().filter(in_cell) {
                    let l = self.to_go[row as usize];
                    if !l.is_nan() {
                        x.extend(obs(row));
                        y.push(l);
                    }
                }
                let fit = ridge_fit(&x, &y, w, LEDGER_CRITIC_RIDGE)?;
                let (mut sum, mut n) = (0.0, 0usize);
                let mut feat = vec![0.0; w];
                for &row in rows.iter().filter(in_cell) {
                    for (f, v) in feat.iter_mut().zip(obs(row)) {
                        *f = v;
                    }
                    sum += ridge_predict(&fit, &feat);
                    n += 1;
                }
                Some(sum / n as f64)
            })
            .collect()
    }

    /// The ledger credit of every store row (segments × cells, a row's value at its own cell in
    /// its segment): its ledger-to-go standardised within the row's cell over this rollout's
    /// credited rows; 0 where not credited.
    pub fn mix(&self, rows: &[u32], cell_ids: &[u32], cells: usize, segment: usize) -> Vec<f32> {
        let ledger = &self.to_go;
        let mut sum = vec![0.0f64; cells];
        let mut sq = vec![0.0f64; cells];
        let mut cnt = vec![0u32; cells];
        for &row in rows {
            let (l, c) = (ledger[row as usize], cell_ids[row as usize] as usize);
            if !l.is_nan() {
                sum[c] += l;
                sq[c] += l * l;
                cnt[c] += 1;
            }
        }
        let mut mix = vec![0.0f32; self.credit.len().div_ceil(segment) * cells];
        for &row in rows {
            let (l, c) = (ledger[row as usize], cell_ids[row as usize] as usize);
            if l.is_nan() || cnt[c] < 2 {
                continue;
            }
            let n = f64::from(cnt[c]);
            let mean = sum[c] / n;
            let std = ((sq[c] - n * mean * mean).max(0.0) / (n - 1.0)).sqrt();
            mix[row as usize / segment * cells + c] = ((l - mean) / (std + 1e-8)) as f32;
        }
        mix
    }
}

/// The unit of the ledger credit: 1 on standardised advantages, else the standard deviation of
/// the credited network's rewards this rollout (raw advantages are on that scale).
pub fn credit_scale<E: Executor>(cfg: &TrainConfig, net: &PolicyNet<E>) -> f64 {
    if cfg.ppo.normalize_advantages {
        return 1.0;
    }
    let r: Vec<f64> = net
        .rows
        .iter()
        .map(|&k| f64::from(net.rewards[k as usize]))
        .collect();
    if r.len() < 2 {
        return 1.0;
    }
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (r.len() - 1) as f64).sqrt()
}

/// A least-squares fit with a ridge: y ≈ w·x + b over the rows of `x` (`dim` features each),
/// minimising Σ(y − w·x − b)² + λ·n·|w|² (the bias is not shrunk). Solved in f64 by Gaussian
/// elimination with partial pivoting on the (dim + 1)² normal equations. Returns w then b, or
/// None with fewer than two rows. HS's ledger critic (docs/fair-ppo.md) fits 18 features.
pub fn ridge_fit(x: &[f64], y: &[f64], dim: usize, lambda: f64) -> Option<Vec<f64>> {
    let n = y.len();
    assert_eq!(x.len(), n * dim, "ridge_fit: x is rows × dim");
    if n < 2 {
        return None;
    }
    let m = dim + 1;
    // Normal equations [XᵀX + λnI | Xᵀy] with a trailing bias column of ones.
    let mut a = vec![0.0f64; m * (m + 1)];
    for (row, &target) in x.chunks_exact(dim).zip(y) {
        let f = |j: usize| if j < dim { row[j] } else { 1.0 };
        for i in 0..m {
            let fi = f(i);
            for j in 0..m {
                a[i * (m + 1) + j] += fi * f(j);
            }
            a[i * (m + 1) + m] += fi * target;
        }
    }
    for i in 0..dim {
        a[i * (m + 1) + i] += lambda * n as f64;
    }
    for col in 0..m {
        let pivot = (col..m).max_by(|&p, &q| {
            a[p * (m + 1) + col]
                .abs()
                .total_cmp(&a[q * (m + 1) + col].abs())
        })?;
        if a[pivot * (m + 1) + col].abs() < 1e-12 {
            return None;
        }
        for k in 0..=m {
            a.swap(col * (m + 1) + k, pivot * (m + 1) + k);
        }
        for r in 0..m {
            if r != col {
                let factor = a[r * (m + 1) + col] / a[col * (m + 1) + col];
                for k in col..=m {
                    a[r * (m + 1) + k] -= factor * a[col * (m + 1) + k];
                }
            }
        }
    }
    Some(
        (0..m)
            .map(|i| a[i * (m + 1) + m] / a[i * (m + 1) + i])
            .collect(),
    )
}

/// The prediction of a [`ridge_fit`] for one row of features.
pub fn ridge_predict(w: &[f64], row: &[f64]) -> f64 {
    let (weights, bias) = w.split_at(row.len());
    weights.iter().zip(row).map(|(a, b)| a * b).sum::<f64>() + bias[0]
}

#[cfg(test)]
mod ridge_tests {
    //! The ridge fit on hand-made data.
    use super::*;

    #[test]
    fn ridge_fit_recovers_a_linear_function_and_shrinks_collinear_features() {
        // y = 2·x0 − 3·x1 + 5 on a small grid, no noise: the fit recovers it (λ tiny).
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..5 {
            for j in 0..4 {
                x.extend_from_slice(&[f64::from(i), f64::from(j)]);
                y.push(2.0 * f64::from(i) - 3.0 * f64::from(j) + 5.0);
            }
        }
        let w = ridge_fit(&x, &y, 2, 1e-12).unwrap();
        for (got, want) in w.iter().zip([2.0, -3.0, 5.0]) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
        assert!((ridge_predict(&w, &[1.0, 1.0]) - 4.0).abs() < 1e-6);
        // Two identical features: the ridge splits the weight evenly and the mean prediction
        // over the rows stays the targets' mean (the bias is not shrunk).
        let x: Vec<f64> = (0..6).flat_map(|i| [f64::from(i), f64::from(i)]).collect();
        let y: Vec<f64> = (0..6).map(|i| f64::from(i) + 1.0).collect();
        let w = ridge_fit(&x, &y, 2, 1e-3).unwrap();
        assert!((w[0] - w[1]).abs() < 1e-9, "{w:?}");
        let mean_pred: f64 = x.chunks(2).map(|r| ridge_predict(&w, r)).sum::<f64>() / 6.0;
        assert!((mean_pred - 3.5).abs() < 1e-9);
        assert!(ridge_fit(&[1.0, 2.0], &[3.0], 2, 1e-3).is_none());
    }
}
