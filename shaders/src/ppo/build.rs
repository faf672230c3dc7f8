//! The actor-critic's program declaration: every buffer, the act sequence and the training
//! sequence, and which launches follow each call's row count.

use super::record::{ReduceSpec, record_adam_update, record_group_reduce, reduce_partial_words};
use super::{ActorCritic, ActorCriticSpec, PpoHyper, StoreSpec};
use crate::error::ShaderError;
use crate::layout::*;
use crate::mlp::{MlpBuffers, MlpPlacement};
use crate::program::{BufferId, Executor, ExecutorExt, OpRef, Program};
use crate::registry::Kernel;

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

impl<E: Executor> ActorCritic<E> {
    pub(super) fn build(
        spec: ActorCriticSpec,
        hyper: PpoHyper,
        params: &[f32],
        store: Option<StoreSpec>,
        make_executor: impl FnOnce(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, ShaderError> {
        let rows = spec.batch;
        let n = rows as usize;
        let n_comp = spec.action_components.len();
        let logit_width = spec.logit_width() as usize;
        let [_, policy_offset, value_offset] = spec.param_offsets();
        let trunk = spec.trunk().map(|t| MlpPlacement {
            spec: t,
            param_offset: 0,
            rows,
        });
        let policy = MlpPlacement {
            spec: spec.policy(),
            param_offset: policy_offset,
            rows,
        };
        let value = MlpPlacement {
            spec: spec.value(),
            param_offset: value_offset,
            rows,
        };
        let param_len = spec.param_len() as usize;
        if params.len() != param_len {
            return Err(ShaderError::ShapeMismatch {
                what: "parameters",
                expected: param_len,
                got: params.len(),
            });
        }
        let mut prog = Program::new();
        let obs = prog.buffer("obs", n * spec.obs_width as usize);
        let trunk_bufs = trunk
            .as_ref()
            .map(|t| t.declare_buffers(&mut prog, "trunk", obs, false));
        // With a trunk, both heads read its output and write their input gradients into one
        // buffer: the policy head's (declared with it), the value head's added to it.
        let head_input = trunk_bufs
            .as_ref()
            .map_or(obs, |b| *b.activations.last().expect("trunk output"));
        let policy_bufs = policy.declare_buffers(&mut prog, "policy", head_input, trunk.is_some());
        let mut value_bufs = value.declare_buffers(&mut prog, "value", head_input, false);
        let trunk_grad = policy_bufs.activation_grads[0];
        value_bufs.activation_grads[0] = trunk_grad;
        let stats_words = 5 * size_of::<GroupStats>() / 4;
        let bufs = Buffers {
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
            moment1: prog.buffer("moment1", param_len),
            moment2: prog.buffer("moment2", param_len),
            adam_state: prog.buffer("adam_state", size_of::<AdamState>() / 4),
            norm_partial: prog.buffer("norm_partial", reduce_partial_words(1)),
            norm_stats: prog.buffer("norm_stats", size_of::<GroupStats>() / 4),
            stats_partial: prog.buffer("stats_partial", reduce_partial_words(1)),
            stats: prog.buffer("stats", stats_words),
            trunk: trunk_bufs,
            policy: policy_bufs,
            value: value_bufs,
        };
        let head_params = HeadParams {
            rows,
            logit_width: logit_width as u32,
            component_count: n_comp as u32,
            use_mask: u32::from(spec.use_masks),
            ..HeadParams::default()
        };
        let logits = *bufs.policy.activations.last().expect("policy output");
        let values_new = *bufs.value.activations.last().expect("value output");
        let logit_grad = bufs
            .policy
            .activation_grads
            .last()
            .expect("policy output")
            .expect("declared");

        // act: forward the trunk and both heads, sample.
        let act_seq = prog.sequence();
        if let (Some(t), Some(tb)) = (&trunk, &bufs.trunk) {
            t.record_forward(&mut prog, act_seq, bufs.params, bufs.group_ids, tb);
        }
        policy.record_forward(
            &mut prog,
            act_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.policy,
        );
        value.record_forward(&mut prog, act_seq, bufs.params, bufs.group_ids, &bufs.value);
        let lw = logit_width as u32;
        let mask_words = if spec.use_masks { lw } else { 0 };
        let comps = n_comp as u32;
        let sample_op = prog.push_rows(
            act_seq,
            Kernel::HeadSample,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.sampled_actions,
                bufs.sample_out,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2],
        );

        // train: forward, evaluate, loss, backward, Adam, statistics.
        let train_seq = prog.sequence();
        if let (Some(t), Some(tb)) = (&trunk, &bufs.trunk) {
            t.record_forward(&mut prog, train_seq, bufs.params, bufs.group_ids, tb);
        }
        policy.record_forward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.policy,
        );
        value.record_forward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.group_ids,
            &bufs.value,
        );
        prog.push_rows(
            train_seq,
            Kernel::HeadEvaluate,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.actions,
                bufs.policy_new,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2],
        );
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
            train_seq,
            Kernel::PpoLoss,
            &loss,
            &[
                bufs.policy_new,
                values_new,
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
        prog.push_rows(
            train_seq,
            Kernel::HeadBackward,
            &head_params,
            &[
                logits,
                bufs.masks,
                bufs.components,
                bufs.actions,
                bufs.policy_grad,
                logit_grad,
            ],
            u64::from(rows),
            &[lw, mask_words, 0, comps, 2, lw],
        );
        policy.record_backward(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.grads,
            bufs.group_ids,
            &bufs.policy,
            logit_grad,
        );
        // With a trunk, the value head's input gradient adds to the policy head's.
        value.record_backward_with(
            &mut prog,
            train_seq,
            bufs.params,
            bufs.grads,
            bufs.group_ids,
            &bufs.value,
            bufs.value_grad,
            trunk_grad.is_some(),
        );
        if let (Some(t), Some(tb), Some(dx)) = (&trunk, &bufs.trunk, trunk_grad) {
            t.record_backward(
                &mut prog,
                train_seq,
                bufs.params,
                bufs.grads,
                bufs.group_ids,
                tb,
                dx,
            );
        }
        let adam = AdamParams {
            param_count: param_len as u32,
            lr: hyper.lr,
            beta1: hyper.beta1,
            beta2: hyper.beta2,
            epsilon: hyper.epsilon,
            max_grad_norm: hyper.max_grad_norm,
            pad0: 0,
            pad1: 0,
        };
        // From here to the statistics, launches run over parameters, not rows.
        let params_ops = prog.ops(train_seq).len();
        prog.push(train_seq, Kernel::AdamBegin, &adam, &[bufs.adam_state], 1);
        if hyper.max_grad_norm > 0.0 {
            let norm = ReduceSpec {
                mode: ReduceMode::Square,
                ..ReduceSpec::plain(param_len as u32)
            };
            record_group_reduce(
                &mut prog,
                train_seq,
                norm,
                bufs.grads,
                bufs.group_ids,
                bufs.norm_stats,
                bufs.norm_partial,
                bufs.norm_stats,
            );
        }
        record_adam_update(
            &mut prog,
            train_seq,
            &adam,
            bufs.adam_state,
            bufs.norm_stats,
            bufs.params,
            bufs.grads,
            bufs.moment1,
            bufs.moment2,
        );
        let stats_ops = prog.ops(train_seq).len();
        // Statistics: policy loss, value loss, approx KL, clip fraction, entropy.
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
                value_offset: offset,
                output_offset: slot as u32,
                ..ReduceSpec::plain(rows)
            };
            record_group_reduce(
                &mut prog,
                train_seq,
                s,
                values,
                bufs.group_ids,
                bufs.stats,
                bufs.stats_partial,
                bufs.stats,
            );
        }

        // Every launch whose uniform holds the row count (at byte 0) follows the rows of each
        // call; rows_per_split stays that of `batch`, so the fixed split order does not depend
        // on the call's rows.
        let store = store.map(|st| Self::declare_store(&mut prog, &spec, &bufs, train_seq, st));
        let mut row_seqs = vec![
            (act_seq, 0..0, 0..0),
            (train_seq, params_ops..stats_ops, 0..0),
        ];
        if let Some(st) = &store {
            // The stored minibatch sequence: the gathers (rows set by `set_copy_rows`), then a
            // copy of the training launches.
            let g = st.train_offset;
            row_seqs.push((st.gather_seq, g + params_ops..g + stats_ops, 0..g));
        }
        let mut row_ops = Vec::new();
        for (seq, skip, copies) in row_seqs {
            for (index, op) in prog.ops(seq).iter().enumerate() {
                if !skip.contains(&index)
                    && !copies.contains(&index)
                    && op.kernel != Kernel::HeadSample
                {
                    let op_ref = OpRef {
                        seq: seq.0,
                        index: index as u32,
                    };
                    row_ops.push((op_ref, op.kernel, op.uniform.clone()));
                }
            }
        }

        let mut exec = make_executor(prog)?;
        exec.write(bufs.params, params)?;
        exec.write(bufs.adam_state, &[AdamState::INITIAL])?;
        exec.write(bufs.components, &spec.action_components)?;
        Ok(Self {
            exec,
            spec,
            bufs,
            act_seq,
            train_seq,
            sample_op,
            head_params,
            scratch: vec![0.0; n * 2],
            row_ops,
            rows,
            act_rows: rows,
            store,
        })
    }
}
