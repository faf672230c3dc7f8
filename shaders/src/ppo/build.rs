//! The actor-critic's program, declared once: its buffers, then the act sequence and the
//! training sequence as named recording stages (forward, loss, backward, Adam, statistics),
//! then which launches follow each call's row count. Kept apart from the face in `mod.rs`
//! because it changes when the network or the update changes, not when a call does.
//!
//! Buffers and sequences are numbered in declaration order, so the stages run in a fixed
//! order and every program is the same launch for launch on every backend.

use super::record::{ReduceSpec, record_adam_update, record_group_reduce, reduce_partial_words};
use super::store::{Store, declare_store};
use super::{ActOutput, ActorCriticSpec, PpoHyper, StoreSpec};
use crate::error::ShaderError;
use crate::layout::{AdamParams, AdamState, GroupStats, HeadParams, LossParams, ReduceMode};
use crate::mlp::{MlpBuffers, MlpPlacement};
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program, SeqId};
use crate::registry::Kernel;
use std::ops::Range;

/// Every buffer of the actor-critic's program outside the rollout store.
pub(super) struct Buffers {
    pub(super) obs: BufferId,
    pub(super) group_ids: BufferId,
    pub(super) masks: BufferId,
    pub(super) components: BufferId,
    pub(super) sampled_actions: BufferId,
    pub(super) sample_out: BufferId,
    pub(super) actions: BufferId,
    pub(super) policy_new: BufferId,
    pub(super) policy_old: BufferId,
    pub(super) values_old: BufferId,
    pub(super) advantages: BufferId,
    pub(super) adv_adjust: BufferId,
    pub(super) returns: BufferId,
    pub(super) policy_grad: BufferId,
    pub(super) value_grad: BufferId,
    pub(super) terms: BufferId,
    pub(super) params: BufferId,
    pub(super) grads: BufferId,
    /// The minibatches' gradient sum in accumulate mode (one word otherwise).
    pub(super) grad_acc: BufferId,
    /// A gradient per (row, logit) added in the head's backward when switched on
    /// ([`super::ActorCritic::set_logit_grad_extra`]).
    pub(super) logit_extra: BufferId,
    pub(super) moment1: BufferId,
    pub(super) moment2: BufferId,
    pub(super) adam_state: BufferId,
    pub(super) norm_partial: BufferId,
    pub(super) norm_stats: BufferId,
    pub(super) stats_partial: BufferId,
    pub(super) stats: BufferId,
    pub(super) trunk: Option<MlpBuffers>,
    pub(super) policy: MlpBuffers,
    pub(super) value: MlpBuffers,
}

impl Buffers {
    /// The policy head's output: rows x logit width.
    pub(super) fn logits(&self) -> BufferId {
        *self.policy.activations.last().expect("policy output")
    }

    /// The value head's output: one value per row.
    pub(super) fn values_new(&self) -> BufferId {
        *self.value.activations.last().expect("value output")
    }

    /// Read back the last act of `rows` rows: actions, log-probabilities, entropies, values.
    pub(super) fn read_act<E: Executor>(
        &self,
        exec: &mut E,
        spec: &ActorCriticSpec,
        rows: usize,
    ) -> Result<ActOutput, ShaderError> {
        let mut actions: Vec<u32> = exec.read(self.sampled_actions)?;
        actions.truncate(rows * spec.action_components.len());
        let out: Vec<f32> = exec.read(self.sample_out)?;
        let mut values: Vec<f32> = exec.read(self.values_new())?;
        values.truncate(rows);
        Ok(ActOutput {
            actions,
            logp: out.iter().step_by(2).take(rows).copied().collect(),
            entropy: out.iter().skip(1).step_by(2).take(rows).copied().collect(),
            values,
        })
    }

    /// dL/d(logits), written by the head's backward and read by the policy head's.
    fn logit_grad(&self) -> BufferId {
        self.policy
            .activation_grads
            .last()
            .expect("policy output")
            .expect("declared")
    }

    /// dL/d(trunk output), shared by both heads; `None` without a trunk.
    fn trunk_grad(&self) -> Option<BufferId> {
        self.policy.activation_grads[0]
    }
}

/// A launch whose uniform holds the row count (at byte 0), with its kernel and its uniform for
/// `batch` rows.
pub(super) type RowOp = (OpRef, Kernel, Vec<u8>);

/// What [`declare`] hands to the actor-critic.
pub(super) struct Declared {
    pub(super) program: Program,
    pub(super) bufs: Buffers,
    pub(super) act_seq: SeqId,
    pub(super) train_seq: SeqId,
    /// The sampling launch, whose uniform carries each act's rows and key.
    pub(super) sample_op: OpRef,
    pub(super) head_params: HeadParams,
    pub(super) row_ops: Vec<RowOp>,
    pub(super) store: Option<Store>,
    /// Accumulate mode: the sequence of the one step on the minibatches' mean gradient, and
    /// its first launch (whose uniform carries 1 / minibatches).
    pub(super) apply: Option<(SeqId, OpRef)>,
}

/// The trunk (optional), the policy head and the value head, placed on `batch` rows at their
/// offsets in the parameters.
pub(super) struct Nets {
    pub(super) trunk: Option<MlpPlacement>,
    pub(super) policy: MlpPlacement,
    pub(super) value: MlpPlacement,
}

impl Nets {
    fn place(spec: &ActorCriticSpec) -> Self {
        let rows = spec.batch;
        let [trunk_offset, policy_offset, value_offset] = spec.param_offsets();
        Self {
            trunk: spec
                .trunk()
                .map(|t| MlpPlacement::new(t, trunk_offset, rows)),
            policy: MlpPlacement::new(spec.policy(), policy_offset, rows),
            value: MlpPlacement::new(spec.value(), value_offset, rows),
        }
    }
}

/// Declare the whole program: buffers, act, train (forward, loss, backward, Adam, statistics),
/// the rollout store when asked for, and the launches that follow each call's rows.
pub(super) fn declare(
    spec: &ActorCriticSpec,
    hyper: &PpoHyper,
    store: Option<StoreSpec>,
) -> Declared {
    let nets = Nets::place(spec);
    let mut prog = Program::new();
    let sizes = BufferSizes {
        rows: spec.batch as usize,
        params: spec.param_len() as usize,
        sets: 1,
    };
    let bufs = declare_buffers(&mut prog, spec, &nets, hyper.accumulate, sizes);
    let head = head_params(spec);
    let (act_seq, sample_op) = record_act(&mut prog, &nets, &bufs, &head);

    let train_seq = prog.sequence();
    record_train_forward(&mut prog, train_seq, &nets, &bufs, &head);
    record_loss(&mut prog, train_seq, &bufs, hyper, spec.batch);
    record_backward(&mut prog, train_seq, &nets, &bufs, &head);
    let adam_start = prog.ops(train_seq).len();
    let apply = if hyper.accumulate {
        // Each minibatch adds its gradients to the sum; one Adam step on their mean later.
        record_accumulate(&mut prog, train_seq, &bufs, spec.param_len(), 0, 0.0);
        let seq = prog.sequence();
        let op = record_accumulate(&mut prog, seq, &bufs, spec.param_len(), 1, 1.0);
        record_adam(&mut prog, seq, &bufs, hyper, spec.param_len(), 1);
        Some((seq, op))
    } else {
        record_adam(&mut prog, train_seq, &bufs, hyper, spec.param_len(), 1);
        None
    };
    // Launches over parameters, not rows: their uniforms never follow a call's rows.
    let param_ops = adam_start..prog.ops(train_seq).len();
    record_stats(&mut prog, train_seq, &bufs, spec.batch, 1, 0);

    let store = store.map(|st| declare_store(&mut prog, spec, &bufs, train_seq, st));
    let row_ops = row_ops(&prog, act_seq, train_seq, param_ops, store.as_ref());
    Declared {
        program: prog,
        bufs,
        act_seq,
        train_seq,
        sample_op,
        head_params: head,
        row_ops,
        store,
        apply,
    }
}

/// How large the buffers of [`declare_buffers`] are: rows per launch at most, parameter floats,
/// and parameter sets (a packed network's; each has its Adam state, gradient norm and loss
/// statistics).
#[derive(Clone, Copy, Debug)]
pub(super) struct BufferSizes {
    pub(super) rows: usize,
    pub(super) params: usize,
    pub(super) sets: usize,
}

/// Declare the networks' activations and gradients, then the rows' inputs, outputs and
/// scratch, the parameters and Adam's state.
pub(super) fn declare_buffers(
    prog: &mut Program,
    spec: &ActorCriticSpec,
    nets: &Nets,
    accumulate: bool,
    sizes: BufferSizes,
) -> Buffers {
    let n = sizes.rows;
    let n_comp = spec.action_components.len();
    let logit_width = spec.logit_width() as usize;
    let param_len = sizes.params;
    let sets = sizes.sets;
    let obs = prog.buffer("obs", n * spec.obs_width as usize);
    let trunk = nets
        .trunk
        .as_ref()
        .map(|t| t.declare_buffers(prog, "trunk", obs, false));
    // With a trunk, both heads read its output and write their input gradients into one
    // buffer: the policy head's (declared with it), the value head's added to it.
    let head_input = trunk
        .as_ref()
        .map_or(obs, |b| *b.activations.last().expect("trunk output"));
    let with_trunk = nets.trunk.is_some();
    let policy = nets
        .policy
        .declare_buffers(prog, "policy", head_input, with_trunk);
    let mut value = nets.value.declare_buffers(prog, "value", head_input, false);
    value.activation_grads[0] = policy.activation_grads[0];
    let stats_words = 5 * sets * size_of::<GroupStats>() / 4;
    Buffers {
        obs,
        group_ids: prog.buffer("group_ids", n),
        masks: prog.buffer("masks", if spec.use_masks { n * logit_width } else { 1 }),
        components: prog.buffer("components", n_comp),
        sampled_actions: prog.buffer("sampled_actions", n * n_comp),
        sample_out: prog.buffer("sample_out", n * 2),
        actions: prog.buffer("actions", n * n_comp),
        policy_new: prog.buffer("policy_new", n * 2),
        policy_old: prog.buffer("policy_old", n * 2),
        values_old: prog.buffer("values_old", n),
        advantages: prog.buffer("advantages", n),
        adv_adjust: prog.buffer("adv_adjust", n),
        returns: prog.buffer("returns", n),
        policy_grad: prog.buffer("policy_grad", n * 2),
        value_grad: prog.buffer("value_grad", n),
        terms: prog.buffer("terms", n * 4),
        params: prog.buffer("params", param_len),
        grads: prog.buffer("grads", param_len),
        grad_acc: prog.buffer("grad_acc", if accumulate { param_len } else { 1 }),
        logit_extra: prog.buffer("logit_extra", n * logit_width),
        moment1: prog.buffer("moment1", param_len),
        moment2: prog.buffer("moment2", param_len),
        adam_state: prog.buffer("adam_state", sets * size_of::<AdamState>() / 4),
        norm_partial: prog.buffer("norm_partial", reduce_partial_words(1)),
        norm_stats: prog.buffer("norm_stats", sets * size_of::<GroupStats>() / 4),
        stats_partial: prog.buffer("stats_partial", reduce_partial_words(1)),
        stats: prog.buffer("stats", stats_words),
        trunk,
        policy,
        value,
    }
}

/// The head's uniform for `batch` rows (sampling keys are set per act).
pub(super) fn head_params(spec: &ActorCriticSpec) -> HeadParams {
    HeadParams {
        rows: spec.batch,
        logit_width: spec.logit_width(),
        component_count: spec.action_components.len() as u32,
        use_mask: u32::from(spec.use_masks),
        ..HeadParams::default()
    }
}

/// Words per row of a head launch's first five bindings: logits, masks (none without them),
/// components (not row-indexed), actions, and the (log-probability, entropy) pair.
fn head_words(head: &HeadParams) -> [u32; 5] {
    let lw = head.logit_width;
    let masks = if head.use_mask != 0 { lw } else { 0 };
    [lw, masks, 0, head.component_count, 2]
}

/// Forward the trunk (if any), then the policy head, then the value head.
fn record_forward(prog: &mut Program, seq: SeqId, nets: &Nets, bufs: &Buffers) {
    if let (Some(t), Some(tb)) = (&nets.trunk, &bufs.trunk) {
        t.record_forward(prog, seq, bufs.params, bufs.group_ids, tb);
    }
    nets.policy
        .record_forward(prog, seq, bufs.params, bufs.group_ids, &bufs.policy);
    nets.value
        .record_forward(prog, seq, bufs.params, bufs.group_ids, &bufs.value);
}

/// The act sequence: forward, then sample. Returns it with its sampling launch.
pub(super) fn record_act(
    prog: &mut Program,
    nets: &Nets,
    bufs: &Buffers,
    head: &HeadParams,
) -> (SeqId, OpRef) {
    let seq = prog.sequence();
    record_forward(prog, seq, nets, bufs);
    let sample_op = prog.push_rows(
        seq,
        Kernel::HeadSample,
        head,
        &[
            bufs.logits(),
            bufs.masks,
            bufs.components,
            bufs.sampled_actions,
            bufs.sample_out,
        ],
        u64::from(head.rows),
        &head_words(head),
    );
    (seq, sample_op)
}

/// Training, first stage: forward, then the log-probability and entropy of the stored actions.
pub(super) fn record_train_forward(
    prog: &mut Program,
    seq: SeqId,
    nets: &Nets,
    bufs: &Buffers,
    head: &HeadParams,
) {
    record_forward(prog, seq, nets, bufs);
    prog.push_rows(
        seq,
        Kernel::HeadEvaluate,
        head,
        &[
            bufs.logits(),
            bufs.masks,
            bufs.components,
            bufs.actions,
            bufs.policy_new,
        ],
        u64::from(head.rows),
        &head_words(head),
    );
}

/// Training: the clipped PPO loss per row, its gradients with respect to the new
/// log-probability, entropy and value, and the four loss terms the statistics reduce.
pub(super) fn record_loss(
    prog: &mut Program,
    seq: SeqId,
    bufs: &Buffers,
    hyper: &PpoHyper,
    rows: u32,
) {
    let loss = LossParams {
        rows,
        clip_coef: hyper.clip_coef,
        vf_coef: hyper.vf_coef,
        ent_coef: hyper.ent_coef,
        clip_vloss: u32::from(hyper.clip_vloss),
        loss_scale: hyper.loss_scale,
        loss_norm: 1.0 / rows as f32,
        pairwise: u32::from(hyper.pairwise_ratio),
    };
    prog.push_rows(
        seq,
        Kernel::PpoLoss,
        &loss,
        &[
            bufs.policy_new,
            bufs.values_new(),
            bufs.policy_old,
            bufs.values_old,
            bufs.advantages,
            bufs.adv_adjust,
            bufs.returns,
            bufs.policy_grad,
            bufs.value_grad,
            bufs.terms,
        ],
        u64::from(rows),
        &[2, 1, 2, 1, 1, 1, 1, 2, 1, 4],
    );
}

/// Training: backward through the head, the policy head, the value head (its input gradient
/// added to the policy head's when they share a trunk), then the trunk.
pub(super) fn record_backward(
    prog: &mut Program,
    seq: SeqId,
    nets: &Nets,
    bufs: &Buffers,
    head: &HeadParams,
) {
    let logit_grad = bufs.logit_grad();
    let lw = head.logit_width;
    let [logits_w, masks_w, comps_w, actions_w, policy_w] = head_words(head);
    prog.push_rows(
        seq,
        Kernel::HeadBackward,
        head,
        &[
            bufs.logits(),
            bufs.masks,
            bufs.components,
            bufs.actions,
            bufs.policy_grad,
            logit_grad,
            bufs.logit_extra,
        ],
        u64::from(head.rows),
        &[logits_w, masks_w, comps_w, actions_w, policy_w, lw, lw],
    );
    let (params, grads, groups) = (bufs.params, bufs.grads, bufs.group_ids);
    nets.policy
        .record_backward(prog, seq, params, grads, groups, &bufs.policy, logit_grad);
    let trunk_grad = bufs.trunk_grad();
    nets.value.record_backward_with(
        prog,
        seq,
        params,
        grads,
        groups,
        &bufs.value,
        bufs.value_grad,
        trunk_grad.is_some(),
    );
    if let (Some(t), Some(tb), Some(dx)) = (&nets.trunk, &bufs.trunk, trunk_grad) {
        t.record_backward(prog, seq, params, grads, groups, tb, dx);
    }
}

/// Training: one Adam step over all parameters, after the gradient-norm reduction when
/// gradients are clipped. A packed network (`sets` > 1 sets of `set_len` parameters each, side
/// by side) reduces each set's gradient norm on its own, exactly as the set alone would, and
/// each set steps with its own norm and state.
pub(super) fn record_adam(
    prog: &mut Program,
    seq: SeqId,
    bufs: &Buffers,
    hyper: &PpoHyper,
    set_len: u32,
    sets: u32,
) {
    let adam = AdamParams {
        param_count: set_len * sets,
        lr: hyper.lr,
        beta1: hyper.beta1,
        beta2: hyper.beta2,
        epsilon: hyper.epsilon,
        max_grad_norm: hyper.max_grad_norm,
        set_len: if sets > 1 { set_len } else { 0 },
        ..AdamParams::default()
    };
    prog.push(seq, Kernel::AdamBegin, &adam, &[bufs.adam_state], 1);
    if hyper.max_grad_norm > 0.0 {
        for set in 0..sets {
            let norm = ReduceSpec {
                mode: ReduceMode::Square,
                value_offset: set * set_len,
                output_offset: set,
                ..ReduceSpec::plain(set_len)
            };
            record_group_reduce(
                prog,
                seq,
                norm,
                bufs.grads,
                bufs.group_ids,
                bufs.norm_stats,
                bufs.norm_partial,
                bufs.norm_stats,
            );
        }
    }
    record_adam_update(
        prog,
        seq,
        &adam,
        bufs.adam_state,
        bufs.norm_stats,
        bufs.params,
        bufs.grads,
        bufs.moment1,
        bufs.moment2,
    );
}

/// A gradient-accumulator launch over the parameters: mode 0 adds the gradients to the sum,
/// mode 1 writes the sum times `scale` into the gradients and clears it.
pub(super) fn record_accumulate(
    prog: &mut Program,
    seq: SeqId,
    bufs: &Buffers,
    params: u32,
    mode: u32,
    scale: f32,
) -> OpRef {
    let p = AdamParams {
        param_count: params,
        accumulate_mode: mode,
        accumulate_scale: scale,
        ..AdamParams::default()
    };
    prog.push_rows(
        seq,
        Kernel::GradAccumulate,
        &p,
        &[bufs.grads, bufs.grad_acc],
        u64::from(params),
        &[1, 1],
    )
}

/// Training, last stage: the minibatch means of the policy loss, value loss, approximate KL
/// and clip fraction (the loss terms) and of the entropy, in that order in `stats`. A packed
/// network reduces each of its `sets` sets over its own rows (set g's start at row
/// `g * set_rows`) into `stats[5 g ..]`, with the splits the set alone would use.
pub(super) fn record_stats(
    prog: &mut Program,
    seq: SeqId,
    bufs: &Buffers,
    rows: u32,
    sets: u32,
    set_rows: u32,
) {
    for set in 0..sets {
        for (slot, (values, stride, offset)) in [
            (bufs.terms, 4, 0),
            (bufs.terms, 4, 1),
            (bufs.terms, 4, 2),
            (bufs.terms, 4, 3),
            (bufs.policy_new, 2, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let s = ReduceSpec {
                value_stride: stride,
                value_offset: set * set_rows * stride + offset,
                output_offset: set * 5 + slot as u32,
                ..ReduceSpec::plain(rows)
            };
            record_group_reduce(
                prog,
                seq,
                s,
                values,
                bufs.group_ids,
                bufs.stats,
                bufs.stats_partial,
                bufs.stats,
            );
        }
    }
}

/// Every launch whose uniform holds the row count (at byte 0) follows the rows of each call:
/// all of act's but the sampling (set with its key), and all of training's but the launches
/// over parameters (`param_ops`), in the training sequence and in the store's copy of it after
/// its gathers (whose rows the store sets itself). rows_per_split stays that of `batch`, so
/// the fixed split order does not depend on the call's rows.
fn row_ops(
    prog: &Program,
    act_seq: SeqId,
    train_seq: SeqId,
    param_ops: Range<usize>,
    store: Option<&Store>,
) -> Vec<RowOp> {
    // (sequence, launches to skip, index of its first training launch).
    let mut seqs = vec![(act_seq, 0..0, 0), (train_seq, param_ops.clone(), 0)];
    if let Some(st) = store {
        let g = st.train_offset;
        seqs.push((st.gather_seq, g + param_ops.start..g + param_ops.end, g));
    }
    let mut row_ops = Vec::new();
    for (seq, skip, first) in seqs {
        for (index, op) in prog.ops(seq).iter().enumerate().skip(first) {
            if !skip.contains(&index) && op.kernel != Kernel::HeadSample {
                let op_ref = OpRef {
                    seq: seq.0,
                    index: index as u32,
                };
                row_ops.push((op_ref, op.kernel, op.uniform.clone()));
            }
        }
    }
    row_ops
}
