//! The one registry of WGSL sources and of the kernels (entry points) they define, with the
//! binding table each kernel expects. Bind group layouts and pipelines are built from this table.

/// A WGSL file: one family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    DenseForward,
    DenseBackward,
    PolicyHead,
    Gae,
    PpoLoss,
    Adam,
    GroupReduce,
    Rollout,
    Fairness,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::DenseForward,
        Family::DenseBackward,
        Family::PolicyHead,
        Family::Gae,
        Family::PpoLoss,
        Family::Adam,
        Family::GroupReduce,
        Family::Rollout,
        Family::Fairness,
    ];

    /// The file name under `shaders/wgsl/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Family::DenseForward => "dense_forward.wgsl",
            Family::DenseBackward => "dense_backward.wgsl",
            Family::PolicyHead => "policy_head.wgsl",
            Family::Gae => "gae.wgsl",
            Family::PpoLoss => "ppo_loss.wgsl",
            Family::Adam => "adam.wgsl",
            Family::GroupReduce => "group_reduce.wgsl",
            Family::Rollout => "rollout.wgsl",
            Family::Fairness => "fairness.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Family::DenseForward => include_str!("../wgsl/dense_forward.wgsl"),
            Family::DenseBackward => include_str!("../wgsl/dense_backward.wgsl"),
            Family::PolicyHead => include_str!("../wgsl/policy_head.wgsl"),
            Family::Gae => include_str!("../wgsl/gae.wgsl"),
            Family::PpoLoss => include_str!("../wgsl/ppo_loss.wgsl"),
            Family::Adam => include_str!("../wgsl/adam.wgsl"),
            Family::GroupReduce => include_str!("../wgsl/group_reduce.wgsl"),
            Family::Rollout => include_str!("../wgsl/rollout.wgsl"),
            Family::Fairness => include_str!("../wgsl/fairness.wgsl"),
        }
    }
}

/// How a kernel uses one storage binding, and the size of one element (the binding's
/// `min_binding_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read(u64),
    ReadWrite(u64),
}

const F32: u64 = 4;
const STATS: u64 = 16;
const PARTIAL: u64 = 8;

/// Every kernel (WGSL entry point). Binding 0 is always the kernel's uniform parameter struct;
/// storage bindings follow from 1 in the order of [`Kernel::storage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    DenseForward,
    ActGrad,
    InputGrad,
    WeightGradPartial,
    WeightGradReduce,
    HeadSample,
    HeadEvaluate,
    HeadBackward,
    Gae,
    GaeRagged,
    GaeReturns,
    PpoLoss,
    AdamBegin,
    AdamUpdate,
    GradAccumulate,
    ReducePartial,
    ReduceFinal,
    Normalize,
    CopyRows,
    FairAdjust,
    SegmentMeans,
}

impl Kernel {
    pub const ALL: [Kernel; 21] = [
        Kernel::DenseForward,
        Kernel::ActGrad,
        Kernel::InputGrad,
        Kernel::WeightGradPartial,
        Kernel::WeightGradReduce,
        Kernel::HeadSample,
        Kernel::HeadEvaluate,
        Kernel::HeadBackward,
        Kernel::Gae,
        Kernel::GaeRagged,
        Kernel::GaeReturns,
        Kernel::PpoLoss,
        Kernel::AdamBegin,
        Kernel::AdamUpdate,
        Kernel::GradAccumulate,
        Kernel::ReducePartial,
        Kernel::ReduceFinal,
        Kernel::Normalize,
        Kernel::CopyRows,
        Kernel::FairAdjust,
        Kernel::SegmentMeans,
    ];

    pub fn family(self) -> Family {
        match self {
            Kernel::DenseForward => Family::DenseForward,
            Kernel::ActGrad
            | Kernel::InputGrad
            | Kernel::WeightGradPartial
            | Kernel::WeightGradReduce => Family::DenseBackward,
            Kernel::HeadSample | Kernel::HeadEvaluate | Kernel::HeadBackward => Family::PolicyHead,
            Kernel::Gae | Kernel::GaeRagged | Kernel::GaeReturns => Family::Gae,
            Kernel::PpoLoss => Family::PpoLoss,
            Kernel::AdamBegin | Kernel::AdamUpdate | Kernel::GradAccumulate => Family::Adam,
            Kernel::ReducePartial | Kernel::ReduceFinal | Kernel::Normalize => Family::GroupReduce,
            Kernel::CopyRows => Family::Rollout,
            Kernel::FairAdjust | Kernel::SegmentMeans => Family::Fairness,
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::DenseForward => "dense_forward",
            Kernel::ActGrad => "act_grad",
            Kernel::InputGrad => "input_grad",
            Kernel::WeightGradPartial => "weight_grad_partial",
            Kernel::WeightGradReduce => "weight_grad_reduce",
            Kernel::HeadSample => "head_sample",
            Kernel::HeadEvaluate => "head_evaluate",
            Kernel::HeadBackward => "head_backward",
            Kernel::Gae => "gae",
            Kernel::GaeRagged => "gae_ragged",
            Kernel::GaeReturns => "gae_returns",
            Kernel::PpoLoss => "ppo_loss",
            Kernel::AdamBegin => "adam_begin",
            Kernel::AdamUpdate => "adam_update",
            Kernel::GradAccumulate => "grad_accumulate",
            Kernel::ReducePartial => "reduce_partial",
            Kernel::ReduceFinal => "reduce_final",
            Kernel::Normalize => "normalize",
            Kernel::CopyRows => "copy_rows",
            Kernel::FairAdjust => "fair_adjust",
            Kernel::SegmentMeans => "segment_means",
        }
    }

    /// Size in bytes of the uniform parameter struct at binding 0.
    pub fn uniform_size(self) -> u64 {
        use crate::layout::*;
        (match self {
            Kernel::DenseForward
            | Kernel::ActGrad
            | Kernel::InputGrad
            | Kernel::WeightGradPartial
            | Kernel::WeightGradReduce => size_of::<DenseParams>(),
            Kernel::HeadSample | Kernel::HeadEvaluate | Kernel::HeadBackward => {
                size_of::<HeadParams>()
            }
            Kernel::Gae | Kernel::GaeRagged | Kernel::GaeReturns => size_of::<GaeParams>(),
            Kernel::PpoLoss => size_of::<LossParams>(),
            Kernel::AdamBegin | Kernel::AdamUpdate | Kernel::GradAccumulate => {
                size_of::<AdamParams>()
            }
            Kernel::ReducePartial | Kernel::ReduceFinal | Kernel::Normalize => {
                size_of::<ReduceParams>()
            }
            Kernel::CopyRows => size_of::<CopyParams>(),
            Kernel::FairAdjust | Kernel::SegmentMeans => size_of::<FairParams>(),
        }) as u64
    }

    /// Storage bindings 1, 2, ... in order.
    pub fn storage(self) -> &'static [Access] {
        use Access::{Read, ReadWrite};
        match self {
            // x, weights, group_ids, y
            Kernel::DenseForward => &[Read(F32), Read(F32), Read(F32), ReadWrite(F32)],
            // y, dy, dz
            Kernel::ActGrad => &[Read(F32), Read(F32), ReadWrite(F32)],
            // dz, weights, group_ids, dx
            Kernel::InputGrad => &[Read(F32), Read(F32), Read(F32), ReadWrite(F32)],
            // x, dz, group_ids, partial
            Kernel::WeightGradPartial => &[Read(F32), Read(F32), Read(F32), ReadWrite(F32)],
            // partial, grads
            Kernel::WeightGradReduce => &[Read(F32), ReadWrite(F32)],
            // logits, masks, component_sizes, actions, policy_out
            Kernel::HeadSample => &[
                Read(F32),
                Read(F32),
                Read(F32),
                ReadWrite(F32),
                ReadWrite(F32),
            ],
            Kernel::HeadEvaluate => &[Read(F32), Read(F32), Read(F32), Read(F32), ReadWrite(F32)],
            // logits, masks, component_sizes, actions, policy_grad, logit_grad, extra
            Kernel::HeadBackward => &[
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                ReadWrite(F32),
                Read(F32),
            ],
            // rewards, values, dones, last_values, advantages, returns (gae_returns reads
            // only values and advantages, but binds the same table)
            Kernel::Gae | Kernel::GaeReturns => &[
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                ReadWrite(F32),
                ReadWrite(F32),
            ],
            // policy_new, values_new, policy_old, values_old, advantages, adv_adjust, returns,
            // policy_grad, value_grad, terms
            // the Gae bindings, then lengths
            Kernel::GaeRagged => &[
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                ReadWrite(F32),
                ReadWrite(F32),
                Read(F32),
            ],
            Kernel::PpoLoss => &[
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                Read(F32),
                ReadWrite(F32),
                ReadWrite(F32),
                ReadWrite(F32),
            ],
            // state
            Kernel::AdamBegin => &[ReadWrite(STATS)],
            // state, norm_stats, params, grads, moment1, moment2
            Kernel::AdamUpdate => &[
                Read(STATS),
                Read(STATS),
                ReadWrite(F32),
                Read(F32),
                ReadWrite(F32),
                ReadWrite(F32),
            ],
            // grads, accumulator
            Kernel::GradAccumulate => &[ReadWrite(F32), ReadWrite(F32)],
            // values, group_ids, center, partial
            Kernel::ReducePartial => &[Read(F32), Read(F32), Read(STATS), ReadWrite(PARTIAL)],
            // partial, stats
            Kernel::ReduceFinal => &[Read(PARTIAL), ReadWrite(STATS)],
            // values, group_ids, mean, variance
            Kernel::Normalize => &[ReadWrite(F32), Read(F32), Read(STATS), Read(STATS)],
            // src, index, dst
            Kernel::CopyRows => &[Read(F32), Read(F32), ReadWrite(F32)],
            // advantages, cell_ids, weights (vec2 per cell), mix, adv_adjust
            Kernel::FairAdjust => &[
                Read(F32),
                Read(F32),
                Read(PARTIAL),
                Read(F32),
                ReadWrite(F32),
            ],
            // advantages, cell_ids, out
            Kernel::SegmentMeans => &[Read(F32), Read(F32), ReadWrite(PARTIAL)],
        }
    }

    /// Threads per workgroup (the WGSL `@workgroup_size`).
    pub fn workgroup_size(self) -> u32 {
        match self {
            Kernel::AdamBegin => 1,
            _ => 64,
        }
    }
}

/// Largest number of storage buffers one kernel binds (the device must allow this many).
pub fn max_storage_bindings() -> u32 {
    Kernel::ALL
        .iter()
        .map(|k| k.storage().len() as u32)
        .max()
        .unwrap_or(0)
}
