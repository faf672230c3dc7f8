//! Reusable recorders: launch sequences any trainer can record into a [`Program`] without an
//! [`super::ActorCritic`] (fixed-order group reductions, per-group standardisation, one Adam
//! update, GAE). They live apart from the actor-critic because the rollout store, the
//! advantage adjustment and the tests record them on their own buffers too.

use crate::layout::{AdamParams, GaeParams, GroupPartial, ReduceMode, ReduceParams};
use crate::program::{BufferId, OpRef, Program, RowLayout, SeqId};
use crate::registry::Kernel;

/// Fixed number of splits of every group reduction (first pass), see group_reduce.wgsl.
pub const REDUCE_SPLITS: u32 = 256;

/// Words of the partial-sum scratch a reduction over `group_count` groups needs.
pub fn reduce_partial_words(group_count: u32) -> usize {
    REDUCE_SPLITS as usize * group_count as usize * size_of::<GroupPartial>() / 4
}

/// What to reduce: `rows` values at `values[r * value_stride + value_offset]`.
#[derive(Clone, Copy, Debug)]
pub struct ReduceSpec {
    pub rows: u32,
    pub group_count: u32,
    /// false: every row is in group 0 (the group id buffer is not read).
    pub use_groups: bool,
    pub value_stride: u32,
    pub value_offset: u32,
    pub mode: ReduceMode,
    /// Group g's statistics land at `stats[output_offset + g]`.
    pub output_offset: u32,
}

impl ReduceSpec {
    pub fn plain(rows: u32) -> Self {
        Self {
            rows,
            group_count: 1,
            use_groups: false,
            value_stride: 1,
            value_offset: 0,
            mode: ReduceMode::Value,
            output_offset: 0,
        }
    }

    /// Words per row of the group id binding: 1, or [`RowLayout::UNREAD`] when groups are off.
    fn group_id_words(&self) -> u32 {
        if self.use_groups {
            1
        } else {
            RowLayout::UNREAD
        }
    }

    pub fn params(&self) -> ReduceParams {
        ReduceParams {
            rows: self.rows,
            group_count: self.group_count,
            split_count: REDUCE_SPLITS,
            rows_per_split: self.rows.div_ceil(REDUCE_SPLITS).max(1),
            value_stride: self.value_stride,
            value_offset: self.value_offset,
            mode: self.mode as u32,
            use_groups: u32::from(self.use_groups),
            epsilon: 1e-8,
            output_offset: self.output_offset,
            split_base: 0,
            pad1: 0,
        }
    }
}

/// Record a fixed-order group reduction: per group sum, count, mean (and sum / (count - 1)).
/// `center` holds the means used by [`ReduceMode::SquaredDeviation`] (any stats buffer
/// otherwise).
#[allow(clippy::too_many_arguments)]
pub fn record_group_reduce(
    program: &mut Program,
    seq: SeqId,
    spec: ReduceSpec,
    values: BufferId,
    group_ids: BufferId,
    center: BufferId,
    partial: BufferId,
    stats: BufferId,
) {
    let p = spec.params();
    program.push_rows(
        seq,
        Kernel::ReducePartial,
        &p,
        &[values, group_ids, center, partial],
        u64::from(REDUCE_SPLITS) * u64::from(spec.group_count),
        &[spec.value_stride, spec.group_id_words(), 0, 0],
    );
    program.push(
        seq,
        Kernel::ReduceFinal,
        &p,
        &[partial, stats],
        u64::from(spec.group_count),
    );
}

/// Record per-group standardisation in place: (x - mean) / (std + 1e-8), std unbiased.
/// `mean_stats` and `var_stats` each hold `group_count` GroupStats (4 words each).
#[allow(clippy::too_many_arguments)]
pub fn record_normalize(
    program: &mut Program,
    seq: SeqId,
    spec: ReduceSpec,
    values: BufferId,
    group_ids: BufferId,
    partial: BufferId,
    mean_stats: BufferId,
    var_stats: BufferId,
) {
    let mean = ReduceSpec {
        mode: ReduceMode::Value,
        output_offset: 0,
        ..spec
    };
    record_group_reduce(
        program, seq, mean, values, group_ids, mean_stats, partial, mean_stats,
    );
    let var = ReduceSpec {
        mode: ReduceMode::SquaredDeviation,
        output_offset: 0,
        ..spec
    };
    record_group_reduce(
        program, seq, var, values, group_ids, mean_stats, partial, var_stats,
    );
    program.push_rows(
        seq,
        Kernel::Normalize,
        &mean.params(),
        &[values, group_ids, mean_stats, var_stats],
        u64::from(spec.rows),
        &[spec.value_stride, spec.group_id_words(), 0, 0],
    );
}

/// Record one Adam update over `p.param_count` parameters (after `adam_begin` and, with
/// clipping, the gradient-norm reduction into `norm_stats`). On the GPU it runs in chunks of
/// parameters when the parameter, gradient or moment buffers exceed the storage-binding limit.
#[allow(clippy::too_many_arguments)]
pub fn record_adam_update(
    program: &mut Program,
    seq: SeqId,
    p: &AdamParams,
    state: BufferId,
    norm_stats: BufferId,
    params: BufferId,
    grads: BufferId,
    moment1: BufferId,
    moment2: BufferId,
) -> OpRef {
    program.push_rows(
        seq,
        Kernel::AdamUpdate,
        p,
        &[state, norm_stats, params, grads, moment1, moment2],
        u64::from(p.param_count),
        &[0, 0, 1, 1, 1, 1],
    )
}

/// Buffers of GAE over `steps` x `agents` (time-major, agent-minor).
#[derive(Clone, Copy, Debug)]
pub struct GaeBuffers {
    pub rewards: BufferId,
    pub values: BufferId,
    pub dones: BufferId,
    pub last_values: BufferId,
    pub advantages: BufferId,
    pub returns: BufferId,
}

impl GaeBuffers {
    pub fn declare(program: &mut Program, steps: u32, agents: u32) -> Self {
        let n = steps as usize * agents as usize;
        Self {
            rewards: program.buffer("gae.rewards", n),
            values: program.buffer("gae.values", n),
            dones: program.buffer("gae.dones", n),
            last_values: program.buffer("gae.last_values", agents as usize),
            advantages: program.buffer("gae.advantages", n),
            returns: program.buffer("gae.returns", n),
        }
    }

    /// Record GAE. On the GPU it runs in chunks of time steps, latest first, when the buffers
    /// exceed the storage-binding limit; `p.agents` must then stay that of the first uniform.
    pub fn record(&self, program: &mut Program, seq: SeqId, p: GaeParams) -> OpRef {
        let a = p.agents;
        program.push_rows(
            seq,
            Kernel::Gae,
            &p,
            &[
                self.rewards,
                self.values,
                self.dones,
                self.last_values,
                self.advantages,
                self.returns,
            ],
            u64::from(p.agents),
            &[a, a, a, 0, a, a],
        )
    }

    /// Record `gae_returns` over `steps` x `agents` rows: returns := advantages + values (after
    /// a standardisation of the advantages, the reference's HS-CF value target). Chunked by
    /// time steps like GAE, but the chunks are independent.
    pub fn record_returns(&self, program: &mut Program, seq: SeqId, steps: u32, agents: u32) {
        let a = agents;
        let p = GaeParams {
            steps,
            agents,
            ..GaeParams::default()
        };
        program.push_rows(
            seq,
            Kernel::GaeReturns,
            &p,
            &[
                self.rewards,
                self.values,
                self.dones,
                self.last_values,
                self.advantages,
                self.returns,
            ],
            u64::from(steps) * u64::from(agents),
            &[RowLayout::UNREAD, a, RowLayout::UNREAD, 0, a, a],
        );
    }
}
