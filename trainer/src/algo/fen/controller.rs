//! FEN's controller memory and update (baselines-spec §A4.4–A4.5): a controller row is a
//! macro decision `(x, z, log π_θ(z|x), V_c(x))`, completed by the fair-efficient reward at the
//! end of its macro step. Rows straddle rollouts: a row still open when a rollout ends stays
//! in the algorithm's state (and in checkpoints) and trains in the first update after it
//! completes. With γ_c = 0 (both authors' codebases) the advantage is `R − V_c(x)` and the
//! value target `R`; with γ_c > 0 a row also waits for its successor's value (or its episode's
//! end) and GAE(γ_c, λ_c) runs along each agent's chain of trainable rows.
//!
//! The update is PPO's (clipped surrogate, value regression, entropy bonus, Adam) through the
//! shader core's host-batch path ([`ActorCritic::train_minibatch`]), since the controller's
//! rows are few and live on the host.

use crate::config::FenConfig;
use crate::net::PolicyNet;
use crate::update::LossSums;
use fairground_shaders::{Executor, Minibatch, ShaderError};

/// One macro decision.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CtrlRow {
    pub slot: u32,
    /// Which controller (share unit) decided.
    pub unit: u32,
    pub x: Vec<f32>,
    pub z: u32,
    pub logp: f32,
    pub value: f32,
    /// The fair-efficient reward, once the macro step has ended.
    pub reward: Option<f32>,
    /// The macro step ended with its episode.
    pub terminal: bool,
    /// V_c of the agent's next macro decision (γ_c > 0).
    pub next_value: Option<f32>,
}

/// Open rows (one per slot at most) and completed rows waiting for an update.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CtrlMemory {
    pub open: Vec<Option<CtrlRow>>,
    pub done: Vec<CtrlRow>,
}

impl CtrlMemory {
    pub fn new(slots: usize) -> Self {
        Self {
            open: vec![None; slots],
            done: Vec::new(),
        }
    }

    /// A new decision for `row.slot`; with γ_c > 0 its value completes the slot's previous row.
    pub fn decide(&mut self, row: CtrlRow) {
        let value = row.value;
        for prev in self.done.iter_mut().rev() {
            if prev.slot == row.slot {
                if !prev.terminal && prev.next_value.is_none() {
                    prev.next_value = Some(value);
                }
                break;
            }
        }
        let slot = row.slot as usize;
        self.open[slot] = Some(row);
    }

    /// `slot`'s macro step ended with `reward` (`terminal`: with its episode).
    pub fn complete(&mut self, slot: u32, reward: f32, terminal: bool) {
        if let Some(mut row) = self.open[slot as usize].take() {
            row.reward = Some(reward);
            row.terminal = terminal;
            self.done.push(row);
        }
    }

    /// `episode_end_reward` (F2): `slot`'s macro step ended inside its episode; its row waits
    /// for the episode's end for its reward.
    pub fn complete_pending(&mut self, slot: u32) {
        if let Some(mut row) = self.open[slot as usize].take() {
            row.reward = None;
            row.terminal = false;
            self.done.push(row);
        }
    }

    /// `episode_end_reward` (F2): `slot`'s episode ended: every row of it waiting for a reward
    /// gets `reward`, its open row too (terminal). Returns the rows rewarded.
    pub fn settle_episode(&mut self, slot: u32, reward: f32) -> u64 {
        let mut n = 0;
        for r in self
            .done
            .iter_mut()
            .filter(|r| r.slot == slot && r.reward.is_none())
        {
            r.reward = Some(reward);
            n += 1;
        }
        if self.open[slot as usize].is_some() {
            self.complete(slot, reward, true);
            n += 1;
        }
        n
    }

    /// `maxlogit_baseline` (F5): take `unit`'s rewarded rows; their advantages are GAE(γ, λ)
    /// over them flattened in completion order (one trajectory, the last bootstrapped with 0)
    /// with each row's `value` (its largest logit) as the baseline, standardised; the value
    /// targets are the rows' values (no critic learns).
    pub fn take_flat(&mut self, unit: u32, gamma: f32, lambda: f32) -> Batch {
        let mut batch = Batch::default();
        let mut keep = Vec::with_capacity(self.done.len());
        for r in self.done.drain(..) {
            if r.unit == unit && r.reward.is_some() {
                batch.rows.push(r);
            } else {
                keep.push(r);
            }
        }
        self.done = keep;
        let rewards: Vec<f32> = batch
            .rows
            .iter()
            .map(|r| r.reward.expect("rewarded"))
            .collect();
        let values: Vec<f32> = batch.rows.iter().map(|r| r.value).collect();
        batch.adv = flat_gae(&rewards, &values, gamma, lambda);
        batch.ret = values;
        batch
    }

    /// Take the rows of `unit` that can train now, with their advantages and value targets
    /// (GAE(γ, λ) along each slot's chain); the others stay.
    pub fn take_trainable(&mut self, unit: u32, gamma: f32, lambda: f32) -> Batch {
        let ready = |r: &CtrlRow| {
            r.reward.is_some() && (gamma == 0.0 || r.terminal || r.next_value.is_some())
        };
        let mut batch = Batch::default();
        let mut keep = Vec::with_capacity(self.done.len());
        for r in self.done.drain(..) {
            if r.unit == unit && ready(&r) {
                batch.rows.push(r);
            } else {
                keep.push(r);
            }
        }
        self.done = keep;
        let n = batch.rows.len();
        batch.adv = vec![0.0; n];
        batch.ret = vec![0.0; n];
        // Backwards along each slot's chain: a row's successor in the batch is the next row of
        // the same slot (rows are in completion order, which is decision order per slot).
        let mut next_adv: std::collections::BTreeMap<u32, f32> = Default::default();
        for k in (0..n).rev() {
            let r = &batch.rows[k];
            let reward = r.reward.expect("completed");
            let boot = if r.terminal || gamma == 0.0 {
                0.0
            } else {
                r.next_value.unwrap_or(0.0)
            };
            let delta = reward + gamma * boot - r.value;
            let carry = if r.terminal {
                0.0
            } else {
                next_adv.get(&r.slot).copied().unwrap_or(0.0)
            };
            let a = delta + gamma * lambda * carry;
            next_adv.insert(r.slot, a);
            batch.adv[k] = a;
            batch.ret[k] = a + r.value;
        }
        batch
    }
}

impl CtrlMemory {
    /// The update of every controller: `controllers[u]` (unit u's controller, units in
    /// order) trains on unit u's rows that can train now (minibatches in a fresh order each
    /// epoch with `shuffle`, else in row order). Returns the rows trained.
    pub fn train_controllers<E: Executor>(
        &mut self,
        controllers: &mut [PolicyNet<E>],
        cfg: &FenConfig,
        epochs: u32,
        minibatch: usize,
        flat: (f32, f32),
        shuffle: bool,
    ) -> Result<u64, ShaderError> {
        let mut rows = 0;
        for (unit, net) in controllers.iter_mut().enumerate() {
            let mut batch = if cfg.maxlogit_baseline {
                self.take_flat(unit as u32, flat.0, flat.1)
            } else {
                self.take_trainable(unit as u32, cfg.controller_gamma, cfg.controller_lambda)
            };
            if cfg.standardized_controller {
                batch.adv = standardised_if_many(&batch.adv);
            }
            rows += batch.rows.len() as u64;
            train_with(net, &batch, epochs, minibatch, cfg.kl_uniform, shuffle)?;
        }
        Ok(rows)
    }
}

/// Which reference port's flat GAE (a network's rows as one trajectory, no episode ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatGae {
    /// FEN-AH and SOTO-AH (F5, F9, S10): the last row bootstrapped with 0, standardised (a
    /// single row becomes 0); returns = the standardised advantage + V.
    Ah,
    /// FEN-HS (`FENAgent.update`): the last row bootstrapped with its own value, standardised
    /// over two or more rows (a single row stays as it is); returns = the raw advantage + V.
    Hs,
}

/// GAE(γ, λ) of `rewards` and `values` as one trajectory (the last row bootstrapped with
/// `last`), in f64.
fn flat_gae_raw(rewards: &[f32], values: &[f32], gamma: f32, lambda: f32, last: f64) -> Vec<f64> {
    let n = rewards.len();
    let (g, l) = (f64::from(gamma), f64::from(lambda));
    let mut adv = vec![0.0f64; n];
    let mut carry = 0.0;
    for t in (0..n).rev() {
        let next = if t + 1 < n {
            f64::from(values[t + 1])
        } else {
            last
        };
        let delta = f64::from(rewards[t]) + g * next - f64::from(values[t]);
        carry = delta + g * l * carry;
        adv[t] = carry;
    }
    adv
}

/// `(a − mean) / (unbiased std + 1e-8)` (a single value becomes 0).
fn standardised(adv: &[f64]) -> Vec<f32> {
    let n = adv.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = adv.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 {
        (adv.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    adv.iter()
        .map(|a| ((a - mean) / (sd + 1e-8)) as f32)
        .collect()
}

/// The FEN-HS port's standardisation: over two or more values, a single one left as it is.
pub fn standardised_if_many(adv: &[f32]) -> Vec<f32> {
    if adv.len() < 2 {
        return adv.to_vec();
    }
    standardised(&adv.iter().map(|&a| f64::from(a)).collect::<Vec<_>>())
}

/// The reference ports' GAE (F5, F9): `rewards` and `values` as one trajectory (no episode
/// ends, the last value bootstrapped with 0), then standardised (unbiased std + 1e-8; one
/// value becomes 0), in f64.
pub fn flat_gae(rewards: &[f32], values: &[f32], gamma: f32, lambda: f32) -> Vec<f32> {
    standardised(&flat_gae_raw(rewards, values, gamma, lambda, 0.0))
}

/// A port's flat GAE: (the advantages trained on, the value targets).
pub fn flat_gae_of(
    port: FlatGae,
    rewards: &[f32],
    values: &[f32],
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    match port {
        FlatGae::Ah => {
            let a = flat_gae(rewards, values, gamma, lambda);
            let ret = a.iter().zip(values).map(|(a, v)| a + v).collect();
            (a, ret)
        }
        FlatGae::Hs => {
            let last = values.last().map_or(0.0, |&v| f64::from(v));
            let raw = flat_gae_raw(rewards, values, gamma, lambda, last);
            let ret = raw
                .iter()
                .zip(values)
                .map(|(a, &v)| (a + f64::from(v)) as f32)
                .collect();
            let a = if raw.len() > 1 {
                standardised(&raw)
            } else {
                raw.iter().map(|&a| a as f32).collect()
            };
            (a, ret)
        }
    }
}

/// Rows ready to train with their advantages and returns.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub rows: Vec<CtrlRow>,
    pub adv: Vec<f32>,
    pub ret: Vec<f32>,
}

/// K epochs of minibatch PPO of controller `net` on `batch` (minibatches of `mb` rows, a fresh
/// order from the network's shuffle stream each epoch); the last minibatch of every epoch adds
/// its statistics to the network's loss.
pub fn train<E: Executor>(
    net: &mut PolicyNet<E>,
    batch: &Batch,
    epochs: u32,
    mb: usize,
) -> Result<(), ShaderError> {
    train_with(net, batch, epochs, mb, 0.0, true)
}

/// The gradient with respect to each row's logits of β · KL(p̄ ‖ uniform), p̄ the mean over
/// the rows of softmax(logits) (rows × k logits): (β/B) p_rj (g_j − Σ_i p_ri g_i) with
/// g_i = ln(k p̄_i); and the KL itself.
pub fn kl_uniform_grad(logits: &[f32], k: usize, beta: f32) -> (f64, Vec<f32>) {
    let rows = logits.len() / k;
    let mut p = vec![0.0f64; logits.len()];
    let mut mean = vec![0.0f64; k];
    for r in 0..rows {
        let l = &logits[r * k..(r + 1) * k];
        let max = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f64 = l.iter().map(|&v| f64::from(v - max).exp()).sum();
        for j in 0..k {
            let v = f64::from(l[j] - max).exp() / sum;
            p[r * k + j] = v;
            mean[j] += v / rows as f64;
        }
    }
    let g: Vec<f64> = mean.iter().map(|&m| (k as f64 * m).ln()).collect();
    let kl: f64 = mean.iter().zip(&g).map(|(m, g)| m * g).sum();
    let scale = f64::from(beta) / rows as f64;
    let mut grad = vec![0.0f32; logits.len()];
    for r in 0..rows {
        let pr = &p[r * k..(r + 1) * k];
        let dot: f64 = pr.iter().zip(&g).map(|(a, b)| a * b).sum();
        for j in 0..k {
            grad[r * k + j] = (scale * pr[j] * (g[j] - dot)) as f32;
        }
    }
    (kl, grad)
}

/// [`train`] with the reference port's β_KL · KL(mean distribution ‖ uniform) term (F7) added
/// to every minibatch's loss, at the parameters the minibatch starts from (`kl` = 0: none);
/// without `shuffle` every epoch visits the rows in order (the reference ports').
pub fn train_with<E: Executor>(
    net: &mut PolicyNet<E>,
    batch: &Batch,
    epochs: u32,
    mb: usize,
    kl: f32,
    shuffle: bool,
) -> Result<(), ShaderError> {
    net.loss = LossSums::default();
    let n = batch.rows.len();
    if n == 0 {
        return Ok(());
    }
    let w = net.shape.obs_width;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let (mut obs, mut actions, mut logp, mut values, mut adv, mut ret) = (
        Vec::with_capacity(mb * w),
        Vec::with_capacity(mb),
        Vec::with_capacity(mb),
        Vec::with_capacity(mb),
        Vec::with_capacity(mb),
        Vec::with_capacity(mb),
    );
    let zeros = vec![0.0f32; mb];
    let mut minibatches = 0u32;
    for _ in 0..epochs {
        if shuffle {
            net.shuffle.shuffle(&mut order);
        }
        let chunks = n.div_ceil(mb);
        for c in 0..chunks {
            let part = &order[c * mb..((c + 1) * mb).min(n)];
            obs.clear();
            actions.clear();
            logp.clear();
            values.clear();
            adv.clear();
            ret.clear();
            for &k in part {
                let r = &batch.rows[k as usize];
                obs.extend_from_slice(&r.x);
                actions.push(r.z);
                logp.push(r.logp);
                values.push(r.value);
                adv.push(batch.adv[k as usize]);
                ret.push(batch.ret[k as usize]);
            }
            if kl > 0.0 {
                // The minibatch's current logits, for the KL term's gradient.
                let key = fairground_shaders::SampleKey {
                    seed: 0,
                    iteration: 0,
                    step: 0,
                    agent_offset: 0,
                };
                net.ac.act(&obs, &[], &[], key)?;
                let logits = net.ac.logits()?;
                let k = net.shape.action_components[0] as usize;
                let (_, grad) = kl_uniform_grad(&logits[..part.len() * k], k, kl);
                net.ac.set_logit_grad_extra(Some(&grad))?;
                net.transfer_bytes += (part.len() * (w + 2 * k) * 4) as u64;
            }
            net.ac.train_minibatch(&Minibatch {
                obs: &obs,
                group_ids: &[],
                masks: &[],
                actions: &actions,
                old_logp: &logp,
                old_values: &values,
                advantages: &adv,
                adv_adjust: &zeros[..part.len()],
                returns: &ret,
            })?;
            net.transfer_bytes += (part.len() * (w + 5) * 4) as u64;
            minibatches += 1;
            if c + 1 == chunks {
                let stats = net.ac.loss_stats()?;
                net.loss.add(&stats);
            }
        }
    }
    if kl > 0.0 {
        net.ac.set_logit_grad_extra(None)?;
    }
    // `ppo.one_step_per_update`: one step on the mean of the minibatches' gradients.
    if net.ac.accumulates() {
        net.ac.apply_accumulated(minibatches)?;
    }
    net.ac.finish()
}

#[cfg(test)]
mod tests {
    //! With γ_c = 0 the controller's advantage is R − V_c and its target R; with γ_c > 0 a row
    //! waits for its successor's value, bootstraps with it, and GAE carries along the slot's
    //! chain but not across an episode end.
    use super::*;

    fn row(slot: u32, value: f32) -> CtrlRow {
        CtrlRow {
            slot,
            unit: 0,
            x: vec![0.0; 3],
            z: 1,
            logp: -0.5,
            value,
            reward: None,
            terminal: false,
            next_value: None,
        }
    }

    /// F7's gradient against finite differences of β · KL(p̄ ‖ uniform) over the logits; a
    /// uniform mean distribution has KL 0.
    #[test]
    fn kl_to_uniform_gradient_matches_finite_differences() {
        let logits = [0.3f32, -1.2, 0.7, 2.0, 0.1, -0.4];
        let (kl, grad) = kl_uniform_grad(&logits, 3, 0.5);
        assert!(kl > 0.0);
        let h = 1e-3f32;
        for i in 0..logits.len() {
            let (mut up, mut down) = (logits, logits);
            up[i] += h;
            down[i] -= h;
            let fd = 0.5 * (kl_uniform_grad(&up, 3, 0.5).0 - kl_uniform_grad(&down, 3, 0.5).0)
                / (2.0 * f64::from(h));
            assert!(
                (f64::from(grad[i]) - fd).abs() < 1e-5,
                "{i}: {} vs {fd}",
                grad[i]
            );
        }
        let (kl, _) = kl_uniform_grad(&[0.0, 1.0, 1.0, 0.0], 2, 0.5);
        assert!(kl.abs() < 1e-12, "p̄ uniform: {kl}");
    }

    #[test]
    fn flat_gae_by_hand() {
        // γ = λ = 0.5; values 1, 2, bootstrap 0 after the last: δ1 = 1 − 2 = −1,
        // δ0 = 0 + 0.5·2 − 1 = 0, A0 = 0 + 0.25·(−1) = −0.25; standardised over {−0.25, −1}.
        let a = flat_gae(&[0.0, 1.0], &[1.0, 2.0], 0.5, 0.5);
        let (m, sd) = (-0.625f64, (2.0f64 * 0.375 * 0.375).sqrt());
        let want = [(-0.25 - m) / (sd + 1e-8), (-1.0 - m) / (sd + 1e-8)];
        for (x, w) in a.iter().zip(want) {
            assert!((f64::from(*x) - w).abs() < 1e-6, "{a:?} vs {want:?}");
        }
        assert_eq!(
            flat_gae(&[3.0], &[1.0], 0.9, 0.9),
            [0.0],
            "one value becomes 0"
        );
    }

    /// The FEN-HS port's flat GAE: the last row bootstraps with its own value, the targets are
    /// the raw advantages + V, the advantages standardised over two or more rows only.
    #[test]
    fn the_hs_ports_flat_gae_by_hand() {
        // γ = λ = 0.5; rewards 1, 3; values 1, 2, the last bootstrapped with its own 2:
        // δ1 = 3 + 1 − 2 = 2, δ0 = 1 + 1 − 1 = 1, A0 = 1 + 0.25·2 = 1.5, A1 = 2.
        let (a, ret) = flat_gae_of(FlatGae::Hs, &[1.0, 3.0], &[1.0, 2.0], 0.5, 0.5);
        assert_eq!(ret, [2.5, 4.0], "raw advantage + V");
        let (m, sd) = (1.75f64, (2.0f64 * 0.25 * 0.25).sqrt());
        for (x, w) in a
            .iter()
            .zip([(1.5 - m) / (sd + 1e-8), (2.0 - m) / (sd + 1e-8)])
        {
            assert!((f64::from(*x) - w).abs() < 1e-5, "{a:?}");
        }
        // One row: δ = r + γV − V, left unstandardised.
        let (a, ret) = flat_gae_of(FlatGae::Hs, &[3.0], &[2.0], 0.5, 0.5);
        assert_eq!((a, ret), (vec![2.0], vec![4.0]));
        // AH's: the last row bootstraps with 0 and the targets are the standardised A + V.
        let (a, ret) = flat_gae_of(FlatGae::Ah, &[0.0, 1.0], &[1.0, 2.0], 0.5, 0.5);
        assert_eq!(a, flat_gae(&[0.0, 1.0], &[1.0, 2.0], 0.5, 0.5));
        assert_eq!(ret, [a[0] + 1.0, a[1] + 2.0]);
        assert_eq!(standardised_if_many(&[7.0]), [7.0]);
    }

    #[test]
    fn gamma_zero_gives_reward_minus_value() {
        let mut m = CtrlMemory::new(2);
        m.decide(row(0, 0.25));
        m.decide(row(1, 1.0));
        m.complete(0, 2.0, false);
        let b = m.take_trainable(0, 0.0, 0.95);
        assert_eq!(b.rows.len(), 1, "slot 1's macro step is still open");
        assert_eq!((b.adv[0], b.ret[0]), (1.75, 2.0));
        assert!(m.open[1].is_some() && m.done.is_empty());
    }

    #[test]
    fn gamma_positive_waits_for_the_successor_and_stops_at_episode_ends() {
        let (g, l) = (0.5f32, 0.5f32);
        let mut m = CtrlMemory::new(1);
        m.decide(row(0, 1.0));
        m.complete(0, 2.0, false);
        assert!(
            m.take_trainable(0, g, l).rows.is_empty(),
            "no successor yet"
        );
        m.decide(row(0, 4.0));
        m.complete(0, 1.0, true);
        m.decide(row(0, 7.0));
        let b = m.take_trainable(0, g, l);
        assert_eq!(b.rows.len(), 2);
        // Row 1 ends its episode: δ = 1 − 4 = −3, no carry, no bootstrap.
        assert_eq!(b.adv[1], -3.0);
        // Row 0: δ = 2 + 0.5·4 − 1 = 3, carry 0.25 · (−3).
        assert_eq!(b.adv[0], 3.0 + 0.25 * -3.0);
        assert_eq!(b.ret[0], b.adv[0] + 1.0);
    }
}
