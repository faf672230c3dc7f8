//! Every struct shared with WGSL: `#[repr(C)]`, `Pod`, and size/offset asserts that pin the layout
//! to the WGSL declaration (field names are the WGSL names). No vec3 anywhere; uniform structs
//! are padded to a multiple of 16 bytes.

use bytemuck::{Pod, Zeroable};
use std::mem::{offset_of, size_of};

/// `DenseParams` in dense_forward.wgsl and dense_backward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct DenseParams {
    pub rows: u32,
    pub in_width: u32,
    pub out_width: u32,
    /// [`crate::mlp::Activation`] as u32.
    pub activation: u32,
    pub weight_offset: u32,
    pub bias_offset: u32,
    pub group_stride: u32,
    pub group_count: u32,
    pub split_count: u32,
    pub rows_per_split: u32,
    /// 1: add into the destination instead of overwriting it.
    pub accumulate: u32,
    /// weight_grad_partial: index of the launch's first split (non-zero only when the
    /// executor splits the rows into chunks; row 0 of the launch is row
    /// `split_base * rows_per_split` of the batch).
    pub split_base: u32,
}
const _: () = {
    assert!(size_of::<DenseParams>() == 48);
    assert!(offset_of!(DenseParams, rows) == 0);
    assert!(offset_of!(DenseParams, rows_per_split) == 36);
    assert!(offset_of!(DenseParams, split_base) == 44);
    assert!(offset_of!(DenseParams, activation) == 12);
    assert!(offset_of!(DenseParams, group_count) == 28);
    assert!(offset_of!(DenseParams, accumulate) == 40);
};

/// `HeadParams` in policy_head.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct HeadParams {
    pub rows: u32,
    pub logit_width: u32,
    pub component_count: u32,
    pub use_mask: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub iteration: u32,
    pub step: u32,
    pub agent_offset: u32,
    /// `head_backward` only: 1 adds `extra_grad[row * logit_width + j]` to every allowed
    /// logit's gradient (a loss term over the logits the PPO loss does not have: the reference
    /// FEN port's KL of the mean controller distribution to uniform, F7).
    pub extra_grad: u32,
    pub pad1: u32,
    pub pad2: u32,
}
const _: () = {
    assert!(size_of::<HeadParams>() == 48);
    assert!(offset_of!(HeadParams, extra_grad) == 36);
    assert!(offset_of!(HeadParams, seed_lo) == 16);
    assert!(offset_of!(HeadParams, rows) == 0);
    assert!(offset_of!(HeadParams, agent_offset) == 32);
};

/// `GaeParams` in gae.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GaeParams {
    pub steps: u32,
    pub agents: u32,
    pub gamma: f32,
    pub gae_lambda: f32,
    /// 1: the launch covers a chunk of steps followed by one already computed step, whose value
    /// and advantage start the recursion (set by the GPU executor's chunks; 0 otherwise).
    pub carry: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}
const _: () = {
    assert!(size_of::<GaeParams>() == 32);
    assert!(offset_of!(GaeParams, steps) == 0);
    assert!(offset_of!(GaeParams, agents) == 4);
    assert!(offset_of!(GaeParams, gae_lambda) == 12);
    assert!(offset_of!(GaeParams, carry) == 16);
};

/// `FairParams` in fairness.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct FairParams {
    pub rows: u32,
    /// Cells with a weight; a row whose cell id is `cells` or more is not adjusted.
    pub cells: u32,
    /// Rows per segment of the mix term (0: no mix term).
    pub mix_width: u32,
    /// Segments (`segment_means`).
    pub segments: u32,
}
const _: () = {
    assert!(size_of::<FairParams>() == 16);
    assert!(offset_of!(FairParams, rows) == 0);
    assert!(offset_of!(FairParams, cells) == 4);
    assert!(offset_of!(FairParams, mix_width) == 8);
};

/// `SegmentSum` in fairness.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SegmentSum {
    pub sum: f32,
    pub count: u32,
}
const _: () = assert!(size_of::<SegmentSum>() == 8);

/// `CopyParams` in rollout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct CopyParams {
    pub rows: u32,
    /// Words per row.
    pub width: u32,
    pub src_base: u32,
    pub dst_base: u32,
    /// [`CopyMode`] as u32.
    pub mode: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}
const _: () = {
    assert!(size_of::<CopyParams>() == 32);
    assert!(offset_of!(CopyParams, rows) == 0);
    assert!(offset_of!(CopyParams, dst_base) == 12);
    assert!(offset_of!(CopyParams, mode) == 16);
};

/// How `copy_rows` picks its source and destination rows (see rollout.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CopyMode {
    /// Row r of `src_base + r` to row `dst_base + r`.
    Range = 0,
    /// Row `index[r]` to row `dst_base + r`.
    Gather = 1,
    /// Row `src_base + r` to row `index[r]` (distinct indices).
    Scatter = 2,
}

/// `LossParams` in ppo_loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct LossParams {
    pub rows: u32,
    pub clip_coef: f32,
    pub vf_coef: f32,
    pub ent_coef: f32,
    /// 1: clip the value loss around the old value.
    pub clip_vloss: u32,
    /// Fairness hook: a scalar multiplying the whole loss.
    pub loss_scale: f32,
    /// 1 / rows for a mean over the minibatch.
    pub loss_norm: f32,
    /// 1: the reference's HS pairwise surrogate (spec §3.2 [REPRO]): the B x B ratio matrix
    /// r_ij = exp(logp_new_j - logp_old_i), clipped element-wise, mean over all B² pairs.
    pub pairwise: u32,
}
const _: () = {
    assert!(size_of::<LossParams>() == 32);
    assert!(offset_of!(LossParams, clip_vloss) == 16);
    assert!(offset_of!(LossParams, loss_norm) == 24);
    assert!(offset_of!(LossParams, pairwise) == 28);
};

/// `AdamParams` in adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct AdamParams {
    pub param_count: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// <= 0 disables clipping.
    pub max_grad_norm: f32,
    /// `grad_accumulate` only: 0 adds the minibatch's gradients to the accumulator, 1 writes
    /// the accumulator times `accumulate_scale` into the gradients and clears it.
    pub accumulate_mode: u32,
    pub accumulate_scale: f32,
    /// Parameters per parameter set of a packed network: parameter i belongs to set
    /// `(param_base + i) / set_len`, which has its own Adam state and gradient norm (state[set],
    /// norm_stats[set]). 0: one set (every parameter uses entry 0).
    pub set_len: u32,
    /// adam_update: the index of the launch's first parameter (non-zero only when the executor
    /// splits the parameters into chunks).
    pub param_base: u32,
    pub pad0: u32,
    pub pad1: u32,
}
const _: () = {
    assert!(size_of::<AdamParams>() == 48);
    assert!(offset_of!(AdamParams, set_len) == 32);
    assert!(offset_of!(AdamParams, param_base) == 36);
    assert!(offset_of!(AdamParams, accumulate_mode) == 24);
    assert!(offset_of!(AdamParams, epsilon) == 16);
    assert!(offset_of!(AdamParams, max_grad_norm) == 20);
};

/// `AdamState` in adam.wgsl (a storage struct the GPU updates each step).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct AdamState {
    pub beta1_pow: f32,
    pub beta2_pow: f32,
    pub step: u32,
    pub pad0: u32,
}
const _: () = {
    assert!(size_of::<AdamState>() == 16);
    assert!(offset_of!(AdamState, step) == 8);
};

impl AdamState {
    pub const INITIAL: AdamState = AdamState {
        beta1_pow: 1.0,
        beta2_pow: 1.0,
        step: 0,
        pad0: 0,
    };
}

/// `ReduceParams` in group_reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ReduceParams {
    pub rows: u32,
    pub group_count: u32,
    pub split_count: u32,
    pub rows_per_split: u32,
    pub value_stride: u32,
    pub value_offset: u32,
    /// [`ReduceMode`] as u32.
    pub mode: u32,
    pub use_groups: u32,
    pub epsilon: f32,
    /// reduce_final writes group g's stats at index output_offset + g.
    pub output_offset: u32,
    /// reduce_partial: index of the launch's first split (non-zero only when the executor
    /// splits the rows into chunks).
    pub split_base: u32,
    pub pad1: u32,
}
const _: () = {
    assert!(size_of::<ReduceParams>() == 48);
    assert!(offset_of!(ReduceParams, rows_per_split) == 12);
    assert!(offset_of!(ReduceParams, split_base) == 40);
    assert!(offset_of!(ReduceParams, rows) == 0);
    assert!(offset_of!(ReduceParams, mode) == 24);
    assert!(offset_of!(ReduceParams, epsilon) == 32);
    assert!(offset_of!(ReduceParams, output_offset) == 36);
};

/// What `reduce_partial` sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ReduceMode {
    Value = 0,
    SquaredDeviation = 1,
    Square = 2,
}

/// `GroupPartial` in group_reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GroupPartial {
    pub sum: f32,
    pub count: u32,
}
const _: () = {
    assert!(size_of::<GroupPartial>() == 8);
    assert!(offset_of!(GroupPartial, count) == 4);
};

/// `GroupStats` in group_reduce.wgsl and adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GroupStats {
    pub sum: f32,
    pub count: u32,
    pub mean: f32,
    /// sum / (count - 1), 0 when count < 2 (unbiased variance when the sum is of squared
    /// deviations).
    pub variance: f32,
}
const _: () = {
    assert!(size_of::<GroupStats>() == 16);
    assert!(offset_of!(GroupStats, mean) == 8);
    assert!(offset_of!(GroupStats, variance) == 12);
};
