//! Packed actor-critics (issue 16, `docs/packing.md`): `sets` parameter sets of one
//! [`ActorCriticSpec`] (the seeds of one run, or runs that differ only in a hyperparameter the
//! minibatch step does not read) trained in one program, so every launch covers every set's
//! rows, while each set's parameters, Adam state and loss statistics keep the bits the same set
//! gets from an [`super::ActorCritic`] of that spec trained alone on the same minibatches.
//!
//! What keeps the bits:
//!
//! - **Parameters, set-major.** Set g's whole network (trunk, policy head, value head, laid out
//!   as an actor-critic's) starts at `g * P`, `P = spec.param_len()`; one more set of zeros
//!   follows them, the *padding set*, which no step ever updates.
//! - **Rows on split boundaries.** Set g's rows start at row `g * S`, where `S` is
//!   `set_rows` rounded up to a multiple of the weight-gradient split the set's own batch uses
//!   (`spec.batch / grad_splits(spec.batch)`, rounded up). Its rows then fill the splits they
//!   fill alone. The rows between its last row and `(g + 1) * S` are padding: zero
//!   observations, every action allowed, group id `sets` (the padding set), so their gradients
//!   land in the padding set's and nowhere else.
//! - **Every reduction per set, with the set's own splits.** The loss statistics and the
//!   gradient norm reduce each set's rows (its parameters) as a view of the packed buffer,
//!   with the split count and rows per split the set has alone; Adam takes each set's step
//!   with that set's norm and state ([`crate::layout::AdamParams::set_len`]).
//! - **One row count per call.** Every set trains on the same number of rows in one call, so
//!   the loss mean `1 / rows` is the same for all of them: sets whose minibatches differ in
//!   size (HS's ragged stores) are not packed yet.
//!
//! Acting runs one set at a time (each set samples with its own key); what packing buys is in
//! the training step, where the launches are `sets` times larger.

use super::build::{
    BufferSizes, Buffers, Nets, RowOp, declare_buffers, head_params, record_accumulate, record_act,
    record_adam, record_backward, record_loss, record_stats, record_train_forward,
};
use super::{
    ActOutput, ActorCriticSpec, LossStats, Minibatch, OptimizerState, PpoHyper, SampleKey,
    check_len,
};
use crate::error::ShaderError;
use crate::layout::{AdamParams, AdamState, GroupStats, HeadParams, LossParams};
use crate::mlp::{MlpPlacement, MlpSpec, grad_splits};
use crate::program::{Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;

/// How many parameter sets a packed actor-critic trains, and the most rows one set has in one
/// training call (its minibatch size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    pub sets: u32,
    pub set_rows: u32,
}

/// Where a packed actor-critic's rows go: the split size of one set's batch, the rows between
/// two sets' first rows, and the rows of a training launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedRows {
    /// Rows per weight-gradient split of the set's own batch (what an actor-critic of the
    /// spec uses).
    pub rows_per_split: u32,
    /// Set g's rows start at `g * stride`: `set_rows` rounded up to `rows_per_split`.
    pub stride: u32,
    /// `sets * stride`.
    pub train_rows: u32,
}

impl Packing {
    /// The row layout of `self` for `spec`, or the field that cannot be packed and why.
    pub fn rows(&self, spec: &ActorCriticSpec) -> Result<PackedRows, ShaderError> {
        let bad = |m: String| Err(ShaderError::Packing(m));
        if spec.group_count != 1 {
            return bad(format!(
                "group_count is {}: only networks of one parameter set (group_count 1) pack",
                spec.group_count
            ));
        }
        if self.sets == 0 {
            return bad("sets is 0: allowed 1 or more".into());
        }
        if self.set_rows == 0 || self.set_rows > spec.batch {
            return bad(format!(
                "set_rows is {}: allowed 1 to {} (the spec's batch)",
                self.set_rows, spec.batch
            ));
        }
        let rows_per_split = spec.batch.div_ceil(grad_splits(spec.batch)).max(1);
        let stride = self.set_rows.div_ceil(rows_per_split) * rows_per_split;
        let train_rows = u64::from(self.sets) * u64::from(stride);
        if train_rows > u64::from(u32::MAX / 4) {
            return bad(format!(
                "sets x rows is {train_rows}: at most {} rows in one launch",
                u32::MAX / 4
            ));
        }
        Ok(PackedRows {
            rows_per_split,
            stride,
            train_rows: train_rows as u32,
        })
    }
}

/// `sets` actor-critics of one spec, trained in one program (see the module docs).
pub struct PackedActorCritic<E: Executor> {
    exec: E,
    spec: ActorCriticSpec,
    packing: Packing,
    layout: PackedRows,
    bufs: Buffers,
    act_seq: SeqId,
    train_seq: SeqId,
    sample_op: OpRef,
    head_params: HeadParams,
    /// Act launches whose row count follows each act's rows.
    act_ops: Vec<RowOp>,
    act_rows: u32,
    /// The loss launch and its uniform (its `loss_norm` follows each call's rows per set).
    loss_op: (OpRef, Vec<u8>),
    /// The loss-statistics reductions (their rows follow each call's rows per set).
    stats_ops: Vec<RowOp>,
    /// Rows per set the training launches are set to now.
    train_rows_per_set: u32,
    apply: Option<(SeqId, OpRef)>,
    host: HostRows,
}

/// The packed rows of one training call, assembled on the host (allocated once).
struct HostRows {
    obs: Vec<f32>,
    group_ids: Vec<u32>,
    masks: Vec<u32>,
    actions: Vec<u32>,
    policy_old: Vec<f32>,
    /// Old values, advantages, advantage adjustments, returns.
    per_row: [Vec<f32>; 4],
}

impl<E: Executor> PackedActorCritic<E> {
    /// Declare the program for `packing.sets` sets of `spec` and upload `params`: the sets'
    /// parameters one after another (each as [`ActorCriticSpec::init_params`] lays out one).
    pub fn new(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        packing: Packing,
        params: &[f32],
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        let layout = packing.rows(&spec)?;
        if hyper.pairwise_ratio {
            return Err(ShaderError::Packing(
                "pairwise_ratio is on: the pairwise surrogate mixes every row of a launch, \
                 allowed only off"
                    .into(),
            ));
        }
        let sets = packing.sets;
        let set_len = spec.param_len();
        let expected = set_len as usize * sets as usize;
        if params.len() != expected {
            return Err(ShaderError::ShapeMismatch {
                what: "parameters",
                expected,
                got: params.len(),
            });
        }
        let cap = layout.train_rows.max(spec.batch);
        let train = place(&spec, sets, layout, layout.train_rows, cap);
        let whole = place(&spec, sets, layout, cap, cap);
        let mut prog = Program::new();
        let sizes = BufferSizes {
            rows: cap as usize,
            params: set_len as usize * (sets as usize + 1),
            sets: sets as usize,
        };
        let bufs = declare_buffers(&mut prog, &spec, &whole, hyper.accumulate, sizes);
        let mut head = head_params(&spec);
        head.rows = cap;
        let (act_seq, sample_op) = record_act(&mut prog, &whole, &bufs, &head);

        let train_seq = prog.sequence();
        let train_head = HeadParams {
            rows: layout.train_rows,
            ..head
        };
        record_train_forward(&mut prog, train_seq, &train, &bufs, &train_head);
        let loss_index = prog.ops(train_seq).len();
        record_loss(&mut prog, train_seq, &bufs, &hyper, layout.train_rows);
        record_backward(&mut prog, train_seq, &train, &bufs, &train_head);
        let stepped = set_len * sets;
        let apply = if hyper.accumulate {
            record_accumulate(&mut prog, train_seq, &bufs, stepped, 0, 0.0);
            let seq = prog.sequence();
            let op = record_accumulate(&mut prog, seq, &bufs, stepped, 1, 1.0);
            record_adam(&mut prog, seq, &bufs, &hyper, set_len, sets);
            Some((seq, op))
        } else {
            record_adam(&mut prog, train_seq, &bufs, &hyper, set_len, sets);
            None
        };
        let stats_start = prog.ops(train_seq).len();
        record_stats(&mut prog, train_seq, &bufs, spec.batch, sets, layout.stride);

        let op_ref = |seq: SeqId, index: usize| OpRef {
            seq: seq.0,
            index: index as u32,
        };
        let act_ops = prog
            .ops(act_seq)
            .iter()
            .enumerate()
            .filter(|(_, op)| op.kernel != Kernel::HeadSample)
            .map(|(i, op)| (op_ref(act_seq, i), op.kernel, op.uniform.clone()))
            .collect();
        let loss = &prog.ops(train_seq)[loss_index];
        debug_assert_eq!(loss.kernel, Kernel::PpoLoss);
        let loss_op = (op_ref(train_seq, loss_index), loss.uniform.clone());
        let stats_ops = prog.ops(train_seq)[stats_start..]
            .iter()
            .enumerate()
            .map(|(i, op)| {
                (
                    op_ref(train_seq, stats_start + i),
                    op.kernel,
                    op.uniform.clone(),
                )
            })
            .collect();

        let mut exec = make_executor(prog)?;
        // The sets, then the padding set's zeros.
        let mut all = params.to_vec();
        all.resize(sizes.params, 0.0);
        exec.write(bufs.params, &all)?;
        exec.write(bufs.adam_state, &vec![AdamState::INITIAL; sets as usize])?;
        exec.write(bufs.components, &spec.action_components)?;
        let rows = layout.train_rows as usize;
        let host = HostRows {
            obs: vec![0.0; rows * spec.obs_width as usize],
            group_ids: vec![sets; rows],
            masks: if spec.use_masks {
                vec![1; rows * spec.logit_width() as usize]
            } else {
                Vec::new()
            },
            actions: vec![0; rows * spec.action_components.len()],
            policy_old: vec![0.0; rows * 2],
            per_row: std::array::from_fn(|_| vec![0.0; rows]),
        };
        Ok(Self {
            exec,
            spec,
            packing,
            layout,
            bufs,
            act_seq,
            train_seq,
            sample_op,
            head_params: head,
            act_ops,
            act_rows: cap,
            loss_op,
            stats_ops,
            train_rows_per_set: 0,
            apply,
            host,
        })
    }

    pub fn spec(&self) -> &ActorCriticSpec {
        &self.spec
    }

    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// Where the rows go (see [`PackedRows`]).
    pub fn layout(&self) -> PackedRows {
        self.layout
    }

    pub fn executor(&mut self) -> &mut E {
        &mut self.exec
    }

    fn check_set(&self, set: u32) -> Result<usize, ShaderError> {
        if set < self.packing.sets {
            Ok(set as usize)
        } else {
            Err(ShaderError::Packing(format!(
                "set is {set}: allowed 0 to {}",
                self.packing.sets - 1
            )))
        }
    }

    /// Sample actions of set `set` for the rows of `obs` (at most the spec's batch), as that
    /// set's actor-critic alone would with `key`.
    pub fn act(
        &mut self,
        set: u32,
        obs: &[f32],
        masks: &[u32],
        key: SampleKey,
    ) -> Result<ActOutput, ShaderError> {
        let g = self.check_set(set)? as u32;
        let width = self.spec.obs_width as usize;
        let rows = obs.len() / width;
        if !obs.len().is_multiple_of(width) || rows == 0 || rows > self.spec.batch as usize {
            return Err(ShaderError::RowCount {
                values: obs.len(),
                width,
                batch: self.spec.batch as usize,
            });
        }
        self.exec.write(self.bufs.obs, obs)?;
        self.exec.write(self.bufs.group_ids, &vec![g; rows])?;
        if self.spec.use_masks {
            check_len(
                "masks",
                rows * self.spec.logit_width() as usize,
                masks.len(),
            )?;
            self.exec.write(self.bufs.masks, masks)?;
        }
        let n = rows as u32;
        if n != self.act_rows {
            for (op, _, base) in &self.act_ops {
                let mut bytes = base.clone();
                bytes[..4].copy_from_slice(&n.to_le_bytes());
                self.exec.set_uniform(*op, &bytes);
            }
            self.act_rows = n;
        }
        let hp = HeadParams {
            rows: n,
            seed_lo: key.seed as u32,
            seed_hi: (key.seed >> 32) as u32,
            iteration: key.iteration,
            step: key.step,
            agent_offset: key.agent_offset,
            ..self.head_params
        };
        self.exec.set_uniform_pod(self.sample_op, &hp);
        self.exec.run(self.act_seq)?;
        self.bufs.read_act(&mut self.exec, &self.spec, rows)
    }

    /// Queue one PPO minibatch step of every set, set g on `minibatches[g]` (without group
    /// ids: each set is one parameter set). Every minibatch has the same rows, 1 ..=
    /// `set_rows`.
    pub fn train(&mut self, minibatches: &[Minibatch<'_>]) -> Result<(), ShaderError> {
        check_len("minibatches", self.packing.sets as usize, minibatches.len())?;
        let width = self.spec.obs_width as usize;
        let n = minibatches[0].obs.len() / width;
        if n == 0 || n > self.packing.set_rows as usize {
            return Err(ShaderError::Packing(format!(
                "a minibatch has {n} rows: allowed 1 to {} (set_rows)",
                self.packing.set_rows
            )));
        }
        let comps = self.spec.action_components.len();
        let lw = self.spec.logit_width() as usize;
        let stride = self.layout.stride as usize;
        let sets = self.packing.sets;
        let h = &mut self.host;
        for (g, mb) in minibatches.iter().enumerate() {
            if mb.obs.len() != n * width {
                return Err(ShaderError::Packing(format!(
                    "minibatch {g} has {} observation values, minibatch 0 has {}: every set \
                     trains on the same rows per call",
                    mb.obs.len(),
                    n * width
                )));
            }
            check_len("group_ids", 0, mb.group_ids.len())?;
            check_len("actions", n * comps, mb.actions.len())?;
            for (what, v) in [
                ("old_logp", mb.old_logp),
                ("old_values", mb.old_values),
                ("advantages", mb.advantages),
                ("adv_adjust", mb.adv_adjust),
                ("returns", mb.returns),
            ] {
                check_len(what, n, v.len())?;
            }
            if self.spec.use_masks {
                check_len("masks", n * lw, mb.masks.len())?;
            }
            let r0 = g * stride;
            let pad = r0 + n..r0 + stride;
            h.obs[r0 * width..(r0 + n) * width].copy_from_slice(mb.obs);
            h.obs[pad.start * width..pad.end * width].fill(0.0);
            h.group_ids[r0..r0 + n].fill(g as u32);
            h.group_ids[pad.clone()].fill(sets);
            if self.spec.use_masks {
                h.masks[r0 * lw..(r0 + n) * lw].copy_from_slice(mb.masks);
                h.masks[pad.start * lw..pad.end * lw].fill(1);
            }
            h.actions[r0 * comps..(r0 + n) * comps].copy_from_slice(mb.actions);
            h.actions[pad.start * comps..pad.end * comps].fill(0);
            for (i, &lp) in mb.old_logp.iter().enumerate() {
                h.policy_old[(r0 + i) * 2] = lp;
            }
            h.policy_old[pad.start * 2..pad.end * 2].fill(0.0);
            for (dst, src) in
                h.per_row
                    .iter_mut()
                    .zip([mb.old_values, mb.advantages, mb.adv_adjust, mb.returns])
            {
                dst[r0..r0 + n].copy_from_slice(src);
                dst[pad.clone()].fill(0.0);
            }
        }
        let b = &self.bufs;
        self.exec.write(b.obs, &h.obs)?;
        self.exec.write(b.group_ids, &h.group_ids)?;
        if self.spec.use_masks {
            self.exec.write(b.masks, &h.masks)?;
        }
        self.exec.write(b.actions, &h.actions)?;
        self.exec.write(b.policy_old, &h.policy_old)?;
        for (buf, v) in [b.values_old, b.advantages, b.adv_adjust, b.returns]
            .into_iter()
            .zip(&h.per_row)
        {
            self.exec.write(buf, v)?;
        }
        self.set_train_rows(n as u32);
        self.exec.run(self.train_seq)
    }

    /// Point the loss mean and the statistics at `n` rows per set.
    fn set_train_rows(&mut self, n: u32) {
        if n == self.train_rows_per_set {
            return;
        }
        let (op, base) = &self.loss_op;
        let mut bytes = base.clone();
        let at = std::mem::offset_of!(LossParams, loss_norm);
        bytes[at..at + 4].copy_from_slice(&(1.0 / n as f32).to_le_bytes());
        self.exec.set_uniform(*op, &bytes);
        for (op, _, base) in &self.stats_ops {
            let mut bytes = base.clone();
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            self.exec.set_uniform(*op, &bytes);
        }
        self.train_rows_per_set = n;
    }

    /// Scale every set's minibatch loss by `scale` from the next training call on, as
    /// [`ActorCritic::set_loss_scale`](super::ActorCritic::set_loss_scale) does for one network
    /// (one scale for all sets: a packed call whose sets need different scales is not built).
    pub fn set_loss_scale(&mut self, scale: f32) {
        let at = std::mem::offset_of!(LossParams, loss_scale);
        let base = &mut self.loss_op.1;
        if base[at..at + 4] == scale.to_le_bytes() {
            return;
        }
        base[at..at + 4].copy_from_slice(&scale.to_le_bytes());
        let n = std::mem::take(&mut self.train_rows_per_set);
        if n > 0 {
            self.set_train_rows(n);
        } else {
            self.exec
                .set_uniform(self.loss_op.0, &self.loss_op.1.clone());
        }
    }

    /// Accumulate mode ([`PpoHyper::accumulate`]): one Adam step of every set on the mean of
    /// its gradients over the `minibatches` training calls since the last step.
    pub fn apply_accumulated(&mut self, minibatches: u32) -> Result<(), ShaderError> {
        let (seq, op) = self.apply.ok_or(ShaderError::NotAccumulating)?;
        let p = AdamParams {
            param_count: self.spec.param_len() * self.packing.sets,
            accumulate_mode: 1,
            accumulate_scale: 1.0 / minibatches.max(1) as f32,
            ..AdamParams::default()
        };
        self.exec.set_uniform_pod(op, &p);
        self.exec.run(seq)
    }

    /// Set `set`'s means of the loss terms over its rows of the last training call.
    pub fn loss_stats(&mut self, set: u32) -> Result<LossStats, ShaderError> {
        let g = self.check_set(set)? * 5;
        let s: Vec<GroupStats> = self.exec.read(self.bufs.stats)?;
        Ok(LossStats {
            policy_loss: s[g].mean,
            value_loss: s[g + 1].mean,
            approx_kl: s[g + 2].mean,
            clip_fraction: s[g + 3].mean,
            entropy: s[g + 4].mean,
        })
    }

    fn set_range(&self, set: u32) -> Result<std::ops::Range<usize>, ShaderError> {
        let len = self.spec.param_len() as usize;
        let g = self.check_set(set)?;
        Ok(g * len..(g + 1) * len)
    }

    /// Set `set`'s parameters (an actor-critic's layout).
    pub fn params(&mut self, set: u32) -> Result<Vec<f32>, ShaderError> {
        let range = self.set_range(set)?;
        let p: Vec<f32> = self.exec.read(self.bufs.params)?;
        Ok(p[range].to_vec())
    }

    /// Set `set`'s gradients of the last training call.
    pub fn grads(&mut self, set: u32) -> Result<Vec<f32>, ShaderError> {
        let range = self.set_range(set)?;
        let g: Vec<f32> = self.exec.read(self.bufs.grads)?;
        Ok(g[range].to_vec())
    }

    /// Set `set`'s Adam moments and counters (what its checkpoint stores).
    pub fn optimizer_state(&mut self, set: u32) -> Result<OptimizerState, ShaderError> {
        let range = self.set_range(set)?;
        let m1: Vec<f32> = self.exec.read(self.bufs.moment1)?;
        let m2: Vec<f32> = self.exec.read(self.bufs.moment2)?;
        let adam: Vec<AdamState> = self.exec.read(self.bufs.adam_state)?;
        Ok(OptimizerState {
            moment1: m1[range.clone()].to_vec(),
            moment2: m2[range].to_vec(),
            adam: adam[set as usize],
        })
    }

    /// Every set's parameters and Adam state, in set order, from one read of each buffer.
    pub fn save_sets(&mut self) -> Result<Vec<(Vec<f32>, OptimizerState)>, ShaderError> {
        let len = self.spec.param_len() as usize;
        let p: Vec<f32> = self.exec.read(self.bufs.params)?;
        let m1: Vec<f32> = self.exec.read(self.bufs.moment1)?;
        let m2: Vec<f32> = self.exec.read(self.bufs.moment2)?;
        let adam: Vec<AdamState> = self.exec.read(self.bufs.adam_state)?;
        Ok((0..self.packing.sets as usize)
            .map(|g| {
                let r = g * len..(g + 1) * len;
                let state = OptimizerState {
                    moment1: m1[r.clone()].to_vec(),
                    moment2: m2[r.clone()].to_vec(),
                    adam: adam[g],
                };
                (p[r].to_vec(), state)
            })
            .collect())
    }

    /// Replace set `set`'s parameters and Adam state (its checkpoint): it continues exactly as
    /// it would have, and as the same set alone would.
    pub fn restore(
        &mut self,
        set: u32,
        params: &[f32],
        state: &OptimizerState,
    ) -> Result<(), ShaderError> {
        let range = self.set_range(set)?;
        for (what, v) in [
            ("parameters", params),
            ("moment1", &state.moment1[..]),
            ("moment2", &state.moment2[..]),
        ] {
            check_len(what, range.len(), v.len())?;
        }
        let words = |v: &[f32]| bytemuck::cast_slice::<f32, u32>(v).to_vec();
        self.exec
            .write_words(self.bufs.params, range.start, &words(params))?;
        self.exec
            .write_words(self.bufs.moment1, range.start, &words(&state.moment1))?;
        self.exec
            .write_words(self.bufs.moment2, range.start, &words(&state.moment2))?;
        let state_words = size_of::<AdamState>() / 4;
        self.exec.write_words(
            self.bufs.adam_state,
            set as usize * state_words,
            bytemuck::cast_slice(&[state.adam]),
        )
    }

    /// Wait for everything queued.
    pub fn finish(&mut self) -> Result<(), ShaderError> {
        self.exec.finish()
    }
}

/// The trunk and heads of `spec` as `sets + 1` parameter sets one whole network apart (the
/// last the padding set), on `rows` rows, with the weight-gradient splits of one set's batch
/// over `cap` rows (splits past a launch's rows hold zeros, which leave every sum as it is).
fn place(spec: &ActorCriticSpec, sets: u32, layout: PackedRows, rows: u32, cap: u32) -> Nets {
    let set_len = spec.param_len();
    let [trunk_offset, policy_offset, value_offset] = spec.param_offsets();
    let net = |mlp: MlpSpec, offset: u32| {
        let mlp = MlpSpec {
            group_count: sets + 1,
            ..mlp
        };
        MlpPlacement {
            set_stride: set_len,
            split_count: cap.div_ceil(layout.rows_per_split),
            rows_per_split: layout.rows_per_split,
            ..MlpPlacement::new(mlp, offset, rows)
        }
    };
    Nets {
        trunk: spec.trunk().map(|t| net(t, trunk_offset)),
        policy: net(spec.policy(), policy_offset),
        value: net(spec.value(), value_offset),
    }
}
