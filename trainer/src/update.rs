//! Pieces both trainers share around the networks: the chunked act loop (a group or role with
//! more rows than the network's batch acts in several calls, each with its own sample key) and
//! the loss statistics of an update (the last minibatch of every epoch, averaged).

use crate::config::TrainConfig;
use fairground_kernel::rng::Stream;
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, Executor, LossStats, SampleKey, ShaderError,
};

/// A network of the config's shape (spec §3: leaky ReLU; `trunk` shared by both heads, `hidden`
/// the heads' own widths) for `obs_width` inputs and the action components of a group or role.
pub fn actor_critic_spec(
    cfg: &TrainConfig,
    obs_width: u32,
    action_components: Vec<u32>,
    batch: u32,
) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width,
        trunk: cfg.ppo.trunk.clone(),
        hidden: cfg.ppo.hidden.clone(),
        action_components,
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch,
        use_masks: false,
    }
}

/// The loss statistics of one update as the metrics report them (means over the last minibatch
/// of every epoch, then over the networks that trained).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossMetrics {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
}

/// Call `f(start, end, key)` for the rows `start..end` of each chunk of at most `batch` of `n`
/// rows; row r of a chunk samples with counter (iteration, step, start + r), so the actions do
/// not depend on how the rows are chunked.
pub fn act_chunks(
    n: usize,
    batch: usize,
    seed: u64,
    iteration: u32,
    step: u32,
    mut f: impl FnMut(usize, usize, SampleKey) -> Result<(), ShaderError>,
) -> Result<(), ShaderError> {
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let key = SampleKey {
            seed,
            iteration,
            step,
            agent_offset: start as u32,
        };
        f(start, end, key)?;
        start = end;
    }
    Ok(())
}

/// Where a network's chunked calls sample from: its batch (the chunk size), its sample seed,
/// and the iteration and step.
#[derive(Clone, Copy, Debug)]
pub struct ActAt {
    pub batch: usize,
    pub seed: u64,
    pub iteration: u32,
    pub step: u32,
}

/// A rollout step through the device store, chunk by chunk: act on `obs` (rows of `width`),
/// write each row's outputs into store row `dst[row]`, and append the actions to `actions`.
/// Every chunk but the last is read back here; the last is left queued (returns whether there
/// is one) for [`collect_store_actions`], so that on the GPU the last chunks of all networks
/// go in one submission.
pub fn act_into_store<E: Executor>(
    ac: &mut ActorCritic<E>,
    at: ActAt,
    obs: &[f32],
    width: usize,
    dst: &[u32],
    actions: &mut Vec<u32>,
) -> Result<bool, ShaderError> {
    let mut queued = false;
    act_chunks(
        dst.len(),
        at.batch,
        at.seed,
        at.iteration,
        at.step,
        |start, end, key| {
            // A chunk's inputs overwrite the last one's: read it before.
            collect_store_actions(ac, std::mem::take(&mut queued), actions)?;
            ac.queue_act_stored(
                &obs[start * width..end * width],
                &[],
                &[],
                key,
                &dst[start..end],
            )?;
            queued = true;
            Ok(())
        },
    )?;
    Ok(queued)
}

/// The actions of the chunk [`act_into_store`] left queued (when `queued`), appended to
/// `actions`.
pub fn collect_store_actions<E: Executor>(
    ac: &mut ActorCritic<E>,
    queued: bool,
    actions: &mut Vec<u32>,
) -> Result<(), ShaderError> {
    if queued {
        actions.extend(ac.act_actions()?);
    }
    Ok(())
}

/// The values of `obs` (rows of `width`, after a rollout's last step) stored as the bootstrap
/// values of store slots `slots`, chunk by chunk.
pub fn bootstrap_store<E: Executor>(
    ac: &mut ActorCritic<E>,
    at: ActAt,
    obs: &[f32],
    width: usize,
    slots: &[u32],
) -> Result<(), ShaderError> {
    act_chunks(
        slots.len(),
        at.batch,
        at.seed,
        at.iteration,
        at.step,
        |start, end, key| {
            ac.queue_act(&obs[start * width..end * width], &[], &[], key)?;
            ac.store_bootstrap(&slots[start..end])
        },
    )
}

/// Greedy actions: the index of the largest logit (the first on ties) of each of the first
/// `rows` rows of `choices` logits, pushed onto `out`.
pub fn push_argmax(logits: &[f32], choices: usize, rows: usize, out: &mut Vec<u32>) {
    for row in logits.chunks_exact(choices).take(rows) {
        let mut best = 0;
        for (k, &l) in row.iter().enumerate() {
            if l > row[best] {
                best = k;
            }
        }
        out.push(best as u32);
    }
}

/// Scratch of [`train_stored_epochs`], allocated once per network.
#[derive(Debug, Default)]
pub struct EpochScratch {
    pub order: Vec<u32>,
    pub mb_rows: Vec<u32>,
}

/// K = `cfg.ppo.epochs` epochs of minibatch PPO over the store rows `rows` (after
/// `store_advantages`): each epoch visits them in minibatches of `cfg.ppo.minibatch_size` (the last
/// one partial), in a fresh order from `shuffle` when `cfg.ppo.shuffle_minibatches`, else in the
/// given order; the last minibatch of every epoch adds its statistics to `loss`. Returns the
/// bytes sent to and read from the executor.
pub fn train_stored_epochs<E: Executor>(
    ac: &mut ActorCritic<E>,
    rows: &[u32],
    cfg: &TrainConfig,
    shuffle: &mut Stream,
    scratch: &mut EpochScratch,
    loss: &mut LossSums,
) -> Result<u64, ShaderError> {
    let n = rows.len();
    let mb = cfg.ppo.minibatch_size as usize;
    let mut bytes = 0u64;
    let mut minibatches = 0u32;
    scratch.order.clear();
    scratch.order.extend(0..n as u32);
    for _ in 0..cfg.ppo.epochs {
        if cfg.ppo.shuffle_minibatches {
            shuffle.shuffle(&mut scratch.order);
        }
        let chunks = n.div_ceil(mb);
        for c in 0..chunks {
            let part = &scratch.order[c * mb..((c + 1) * mb).min(n)];
            scratch.mb_rows.clear();
            scratch
                .mb_rows
                .extend(part.iter().map(|&k| rows[k as usize]));
            ac.train_stored(&scratch.mb_rows)?;
            bytes += (part.len() * 4) as u64;
            minibatches += 1;
            if c + 1 == chunks {
                loss.add(&ac.loss_stats()?);
                bytes += 80;
            }
        }
    }
    if ac.accumulates() && minibatches > 0 {
        ac.apply_accumulated(minibatches)?;
    }
    Ok(bytes)
}

/// An algorithm's per-cell advantage transform on a device store before the epochs: per-cell
/// (weight, mix weight) and the mix term (see [`ActorCritic::store_adjust_advantages`]).
/// Returns the bytes sent.
pub fn adjust_advantages<E: Executor>(
    ac: &mut ActorCritic<E>,
    weights: &[[f32; 2]],
    mix: Option<&[f32]>,
) -> Result<u64, ShaderError> {
    ac.store_adjust_advantages(weights, mix)?;
    Ok((weights.len() * 8 + mix.map_or(0, <[f32]>::len) * 4) as u64)
}

/// Sums of [`LossStats`] over one update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSums {
    /// policy loss, value loss, entropy, approx KL, clip fraction.
    pub sums: [f64; 5],
    pub count: u32,
}

impl LossSums {
    pub fn add(&mut self, s: &LossStats) {
        let terms = [
            s.policy_loss,
            s.value_loss,
            s.entropy,
            s.approx_kl,
            s.clip_fraction,
        ];
        for (acc, v) in self.sums.iter_mut().zip(terms) {
            *acc += f64::from(v);
        }
        self.count += 1;
    }

    /// The mean over the networks that trained of each network's mean (zeros when none did).
    pub fn mean_over<'a>(all: impl IntoIterator<Item = &'a LossSums>) -> LossMetrics {
        let mut loss = [0.0f64; 5];
        let mut counted = 0.0;
        for s in all {
            if s.count > 0 {
                for (l, v) in loss.iter_mut().zip(s.sums) {
                    *l += v / f64::from(s.count);
                }
                counted += 1.0;
            }
        }
        if counted > 0.0 {
            for l in &mut loss {
                *l /= counted;
            }
        }
        let [policy_loss, value_loss, entropy, approx_kl, clip_fraction] = loss;
        LossMetrics {
            policy_loss,
            value_loss,
            entropy,
            approx_kl,
            clip_fraction,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Greedy actions take the first largest logit of each row; chunks cover every row once with offsets equal to their first row; loss means weigh
    //! every network that trained equally and ignore the ones that did not.
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_of_each_row() {
        let mut out = vec![7];
        push_argmax(
            &[0.1, 0.5, 0.5, -1.0, -2.0, -0.5, 9.0, 9.0, 9.0],
            3,
            2,
            &mut out,
        );
        assert_eq!(
            out,
            [7, 1, 2],
            "ties go to the first; the third row is not taken"
        );
    }

    #[test]
    fn chunks_cover_the_rows_with_their_offsets() {
        let mut seen = Vec::new();
        act_chunks(10, 4, 9, 1, 2, |s, e, k| {
            assert_eq!((k.seed, k.iteration, k.step), (9, 1, 2));
            seen.push((s, e, k.agent_offset));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 4, 0), (4, 8, 4), (8, 10, 8)]);
    }

    #[test]
    fn loss_means_skip_networks_that_did_not_train() {
        let mut a = LossSums::default();
        for p in [1.0, 3.0] {
            a.add(&LossStats {
                policy_loss: p,
                ..LossStats::default()
            });
        }
        let idle = LossSums::default();
        let mut b = LossSums::default();
        b.add(&LossStats {
            policy_loss: 6.0,
            clip_fraction: 0.5,
            ..LossStats::default()
        });
        let m = LossSums::mean_over([&a, &idle, &b]);
        assert_eq!(m.policy_loss, (2.0 + 6.0) / 2.0);
        assert_eq!(m.clip_fraction, 0.25);
        assert_eq!(LossSums::mean_over([&idle]), LossMetrics::default());
    }
}
