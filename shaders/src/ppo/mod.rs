//! PPO on any [`Executor`] (the `gpu` or the `cpu` backend): [`ActorCritic`], separate policy
//! and value MLPs (AH, spec §3.1) or a shared trunk with policy and value heads (HS, spec
//! §3.2), with a categorical / multi-discrete head, plus the building blocks it records into a
//! [`Program`] (GAE, fixed-order reductions, advantage normalisation).
//!
//! This file is the actor-critic's face: construction, acting, one minibatch step, and the
//! parameters and optimiser state a checkpoint needs. The rest is split by reason to change:
//!
//! - `spec`: shapes, hyperparameters and the data of one call (plain values).
//! - `build`: the program declaration, as named recording stages.
//! - `record`: recorders reused outside the actor-critic (reductions, Adam, GAE).
//! - `store`: the on-device rollout store and its calls.
//! - `adjust`: the per-cell advantage transform over the store (and its cell statistics).
//! - `packed`: several parameter sets of one spec trained in one program, each keeping the
//!   bits it has alone ([`PackedActorCritic`]).

mod adjust;
mod build;
mod packed;
mod record;
mod spec;
mod store;

pub use adjust::CellStats;
pub use packed::{PackedActorCritic, PackedRows, Packing};
pub use record::{
    GaeBuffers, REDUCE_SPLITS, ReduceSpec, record_adam_update, record_group_reduce,
    record_normalize, reduce_partial_words,
};
pub use spec::{
    ActOutput, ActorCriticSpec, LossStats, Minibatch, OptimizerState, PpoHyper, SampleKey,
};
pub use store::{StoreSpec, StoredRows};

use crate::error::ShaderError;
use crate::layout::{AdamParams, AdamState, GroupStats, HeadParams, LossParams};
use crate::program::{Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;
use build::{Buffers, RowOp};
use store::Store;

/// `got` values of `what` where `expected` are needed: the typed refusal, else nothing.
pub(super) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), ShaderError> {
    if expected == got {
        Ok(())
    } else {
        Err(ShaderError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Trunk (optional), policy and value heads, sampling and one PPO minibatch step, on any
/// [`Executor`].
pub struct ActorCritic<E: Executor> {
    exec: E,
    spec: ActorCriticSpec,
    bufs: Buffers,
    act_seq: SeqId,
    train_seq: SeqId,
    sample_op: OpRef,
    head_params: HeadParams,
    scratch: Vec<f32>,
    /// Launches whose row count follows each call's rows, with their uniforms for `batch`.
    row_ops: Vec<RowOp>,
    /// Rows the row launches are set to now.
    rows: u32,
    /// Rows of the last queued act.
    act_rows: u32,
    store: Option<Store>,
    apply: Option<(SeqId, OpRef)>,
}

impl<E: Executor> ActorCritic<E> {
    /// Declare the program, hand it to `make_executor` (e.g. `CpuExecutor::new` or
    /// `|p| GpuExecutor::new(ctx, p)`), and upload `params` (see
    /// [`ActorCriticSpec::init_params`]).
    pub fn new(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        Self::build(spec, hyper, params, None, make_executor)
    }

    /// [`Self::new`] with an on-device rollout store of `store` rows: acting writes its
    /// observations, actions, log-probabilities and values into the store
    /// ([`Self::queue_act_stored`]), GAE and advantage standardisation run over it
    /// ([`Self::store_advantages`]) and minibatches are gathered from it
    /// ([`Self::train_stored`]), so only actions cross back to the host during a rollout.
    pub fn with_store(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        store: StoreSpec,
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        Self::build(spec, hyper, params, Some(store), make_executor)
    }

    /// Declare the program ([`build::declare`]), make the executor, and upload the parameters,
    /// Adam's initial state and the action components.
    fn build(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        store: Option<StoreSpec>,
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        check_len("parameters", spec.param_len() as usize, params.len())?;
        let d = build::declare(&spec, &hyper, store);
        let mut exec = make_executor(d.program)?;
        exec.write(d.bufs.params, params)?;
        exec.write(d.bufs.adam_state, &[AdamState::INITIAL])?;
        exec.write(d.bufs.components, &spec.action_components)?;
        let batch = spec.batch;
        Ok(Self {
            exec,
            spec,
            bufs: d.bufs,
            act_seq: d.act_seq,
            train_seq: d.train_seq,
            sample_op: d.sample_op,
            head_params: d.head_params,
            scratch: vec![0.0; batch as usize * 2],
            row_ops: d.row_ops,
            rows: batch,
            act_rows: batch,
            store: d.store,
            apply: d.apply,
        })
    }

    pub fn spec(&self) -> &ActorCriticSpec {
        &self.spec
    }

    pub fn executor(&mut self) -> &mut E {
        &mut self.exec
    }

    /// Point every row launch at `rows` rows (a no-op when they already are).
    fn set_rows(&mut self, rows: u32) {
        if rows == self.rows {
            return;
        }
        self.write_row_uniforms(rows);
    }

    /// Scale the whole minibatch loss (its policy, value and entropy gradients) by `scale` from
    /// the next training launch on (`PpoHyper::loss_scale`; Fair-PPO's reference penalty sets
    /// the dynamic-λ factor of spec §4.1 here).
    pub fn set_loss_scale(&mut self, scale: f32) {
        let at = std::mem::offset_of!(LossParams, loss_scale);
        let mut changed = false;
        for (_, kernel, base) in &mut self.row_ops {
            if *kernel == Kernel::PpoLoss && base[at..at + 4] != scale.to_le_bytes() {
                base[at..at + 4].copy_from_slice(&scale.to_le_bytes());
                changed = true;
            }
        }
        if changed {
            self.write_row_uniforms(self.rows);
        }
    }

    fn write_row_uniforms(&mut self, rows: u32) {
        for (op, kernel, base) in &self.row_ops {
            let mut bytes = base.clone();
            bytes[..4].copy_from_slice(&rows.to_le_bytes());
            if *kernel == Kernel::PpoLoss {
                let at = std::mem::offset_of!(LossParams, loss_norm);
                bytes[at..at + 4].copy_from_slice(&(1.0 / rows as f32).to_le_bytes());
            }
            self.exec.set_uniform(*op, &bytes);
        }
        self.rows = rows;
    }

    /// Rows of a call from its observations: 1 ..= batch whole rows.
    fn rows_of(&self, obs: &[f32]) -> Result<u32, ShaderError> {
        let width = self.spec.obs_width as usize;
        let rows = obs.len() / width;
        if !obs.len().is_multiple_of(width) || rows == 0 || rows > self.spec.batch as usize {
            return Err(ShaderError::RowCount {
                values: obs.len(),
                width,
                batch: self.spec.batch as usize,
            });
        }
        Ok(rows as u32)
    }

    /// Upload observations (and group ids, masks) of `rows` rows and set the row launches.
    fn write_common(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
    ) -> Result<usize, ShaderError> {
        let rows = self.rows_of(obs)?;
        let n = rows as usize;
        self.exec.write(self.bufs.obs, obs)?;
        if self.spec.group_count > 1 || !group_ids.is_empty() {
            check_len("group_ids", n, group_ids.len())?;
            self.exec.write(self.bufs.group_ids, group_ids)?;
        }
        if self.spec.use_masks {
            check_len("masks", n * self.spec.logit_width() as usize, masks.len())?;
            self.exec.write(self.bufs.masks, masks)?;
        }
        self.set_rows(rows);
        Ok(n)
    }

    /// Queue the sampling pass for the rows of `obs` (at most `batch`) without waiting; fetch
    /// with [`Self::act_output`].
    pub fn queue_act(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<(), ShaderError> {
        self.prepare_act(obs, group_ids, masks, key)?;
        self.exec.run(self.act_seq)
    }

    /// What [`Self::queue_act`] writes before its run: the rows, and the sampler's uniform.
    pub(super) fn prepare_act(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<(), ShaderError> {
        let n = self.write_common(obs, group_ids, masks)?;
        self.act_rows = n as u32;
        self.head_params.rows = n as u32;
        self.head_params.seed_lo = key.seed as u32;
        self.head_params.seed_hi = (key.seed >> 32) as u32;
        self.head_params.iteration = key.iteration;
        self.head_params.step = key.step;
        self.head_params.agent_offset = key.agent_offset;
        let hp = self.head_params;
        self.exec.set_uniform_pod(self.sample_op, &hp);
        Ok(())
    }

    /// Read back the last queued act: actions, log-probabilities, entropies and values.
    pub fn act_output(&mut self) -> Result<ActOutput, ShaderError> {
        self.bufs
            .read_act(&mut self.exec, &self.spec, self.act_rows as usize)
    }

    /// Sample actions for the rows of `obs` (at most `batch`) and return them with
    /// log-probabilities and values.
    pub fn act(
        &mut self,
        obs: &[f32],
        group_ids: &[u32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<ActOutput, ShaderError> {
        self.queue_act(obs, group_ids, masks, key)?;
        self.act_output()
    }

    /// Queue one PPO minibatch step (forward, loss, backward, Adam) over the minibatch's rows
    /// (at most `batch`; the loss is their mean) without waiting.
    pub fn train_minibatch(&mut self, mb: &Minibatch<'_>) -> Result<(), ShaderError> {
        let n = self.write_common(mb.obs, mb.group_ids, mb.masks)?;
        check_len(
            "actions",
            n * self.spec.action_components.len(),
            mb.actions.len(),
        )?;
        for (what, v) in [
            ("old_logp", mb.old_logp),
            ("old_values", mb.old_values),
            ("advantages", mb.advantages),
            ("adv_adjust", mb.adv_adjust),
            ("returns", mb.returns),
        ] {
            check_len(what, n, v.len())?;
        }
        self.exec.write(self.bufs.actions, mb.actions)?;
        for (i, &lp) in mb.old_logp.iter().enumerate() {
            self.scratch[i * 2] = lp;
        }
        self.exec
            .write(self.bufs.policy_old, &self.scratch[..n * 2])?;
        self.exec.write(self.bufs.values_old, mb.old_values)?;
        self.exec.write(self.bufs.advantages, mb.advantages)?;
        self.exec.write(self.bufs.adv_adjust, mb.adv_adjust)?;
        self.exec.write(self.bufs.returns, mb.returns)?;
        self.exec.run(self.train_seq)
    }

    /// Add `extra` (rows × logit width, the rows of the next training launches) to the
    /// gradient of the loss with respect to each allowed logit, from the next training launch
    /// on; `None` switches it off. For a loss term over the logits that the PPO loss does not
    /// have (the reference FEN port's KL of the mean controller distribution to uniform).
    pub fn set_logit_grad_extra(&mut self, extra: Option<&[f32]>) -> Result<(), ShaderError> {
        if let Some(e) = extra {
            let lw = self.spec.logit_width() as usize;
            if e.len() > self.spec.batch as usize * lw || !e.len().is_multiple_of(lw) {
                return Err(ShaderError::ShapeMismatch {
                    what: "logit_grad_extra",
                    expected: self.spec.batch as usize * lw,
                    got: e.len(),
                });
            }
            self.exec.write(self.bufs.logit_extra, e)?;
        }
        let flag = u32::from(extra.is_some());
        let at = std::mem::offset_of!(HeadParams, extra_grad);
        let mut changed = false;
        for (_, kernel, base) in &mut self.row_ops {
            if *kernel == Kernel::HeadBackward && base[at..at + 4] != flag.to_le_bytes() {
                base[at..at + 4].copy_from_slice(&flag.to_le_bytes());
                changed = true;
            }
        }
        if changed {
            self.write_row_uniforms(self.rows);
        }
        Ok(())
    }

    /// Whether training launches accumulate gradients ([`PpoHyper::accumulate`]).
    pub fn accumulates(&self) -> bool {
        self.apply.is_some()
    }

    /// Accumulate mode ([`PpoHyper::accumulate`]): queue one Adam step on the mean of the
    /// gradients of the `minibatches` training launches since the last step, and clear their
    /// sum.
    pub fn apply_accumulated(&mut self, minibatches: u32) -> Result<(), ShaderError> {
        let (seq, op) = self.apply.ok_or(ShaderError::NotAccumulating)?;
        let p = AdamParams {
            param_count: self.spec.param_len(),
            accumulate_mode: 1,
            accumulate_scale: 1.0 / minibatches.max(1) as f32,
            ..AdamParams::default()
        };
        self.exec.set_uniform_pod(op, &p);
        self.exec.run(seq)
    }

    /// Means of the loss terms over the last minibatch.
    pub fn loss_stats(&mut self) -> Result<LossStats, ShaderError> {
        let s: Vec<GroupStats> = self.exec.read(self.bufs.stats)?;
        Ok(LossStats {
            policy_loss: s[0].mean,
            value_loss: s[1].mean,
            approx_kl: s[2].mean,
            clip_fraction: s[3].mean,
            entropy: s[4].mean,
        })
    }

    /// Wait for everything queued.
    pub fn finish(&mut self) -> Result<(), ShaderError> {
        self.exec.finish()
    }

    /// Current parameters (trunk, then policy head, then value head).
    pub fn params(&mut self) -> Result<Vec<f32>, ShaderError> {
        let mut p: Vec<f32> = self.exec.read(self.bufs.params)?;
        p.truncate(self.spec.param_len() as usize);
        Ok(p)
    }

    /// Adam's moments and counters (for checkpoints; see [`Self::restore`]).
    pub fn optimizer_state(&mut self) -> Result<OptimizerState, ShaderError> {
        let len = self.spec.param_len() as usize;
        let mut moment1: Vec<f32> = self.exec.read(self.bufs.moment1)?;
        moment1.truncate(len);
        let mut moment2: Vec<f32> = self.exec.read(self.bufs.moment2)?;
        moment2.truncate(len);
        let adam: Vec<AdamState> = self.exec.read(self.bufs.adam_state)?;
        Ok(OptimizerState {
            moment1,
            moment2,
            adam: adam[0],
        })
    }

    /// Replace the parameters and Adam's state (a checkpoint written from [`Self::params`] and
    /// [`Self::optimizer_state`]): training continues exactly as it would have.
    pub fn restore(&mut self, params: &[f32], state: &OptimizerState) -> Result<(), ShaderError> {
        let len = self.spec.param_len() as usize;
        for (what, v) in [
            ("parameters", params),
            ("moment1", &state.moment1[..]),
            ("moment2", &state.moment2[..]),
        ] {
            check_len(what, len, v.len())?;
        }
        self.exec.write(self.bufs.params, params)?;
        self.exec.write(self.bufs.moment1, &state.moment1)?;
        self.exec.write(self.bufs.moment2, &state.moment2)?;
        self.exec.write(self.bufs.adam_state, &[state.adam])
    }

    /// Policy logits of the last act (rows x logit width), e.g. for greedy actions.
    pub fn logits(&mut self) -> Result<Vec<f32>, ShaderError> {
        let n = self.act_rows as usize * self.spec.logit_width() as usize;
        let mut l: Vec<f32> = self.exec.read(self.bufs.logits())?;
        l.truncate(n);
        Ok(l)
    }

    /// Gradients of the last minibatch (same layout as the parameters).
    pub fn grads(&mut self) -> Result<Vec<f32>, ShaderError> {
        let mut g: Vec<f32> = self.exec.read(self.bufs.grads)?;
        g.truncate(self.spec.param_len() as usize);
        Ok(g)
    }
}
