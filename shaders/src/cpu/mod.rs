//! The CPU twin of every WGSL kernel: the same parameters, the same index space, the same
//! summation order (so results differ from the GPU only by rounding of fused multiply-adds and
//! of the transcendental functions), and the same integer RNG (bit-identical draws).
//! These are the test oracle and, through [`crate::CpuExecutor`], the `cpu` backend.
//! Loops are reordered for cache locality where that keeps every sum's order.
//!
//! One file per shader family of `shaders/wgsl/` (the dense forward and backward shaders share
//! `dense`), so a kernel and its twin are found under the same name; every twin is re-exported
//! here, at the path callers use (`cpu::gae`, `cpu::philox4x32_10`, ...).

// Index loops on purpose: each mirrors its WGSL kernel's loop, so the orders visibly match.
#![allow(clippy::needless_range_loop)]

mod adam;
mod dense;
mod fairness;
mod gae;
mod policy_head;
mod ppo_loss;
mod reduce;
mod rollout;

pub use adam::{adam_begin, adam_update, grad_accumulate};
pub(crate) use dense::activate;
pub use dense::{act_grad, dense_forward, input_grad, weight_grad_partial, weight_grad_reduce};
pub use fairness::{fair_adjust, segment_means};
pub use gae::{gae, gae_ragged, gae_returns};
pub use policy_head::{head_backward, head_evaluate, head_sample, philox4x32_10, sample_uniform};
pub use ppo_loss::ppo_loss;
pub use reduce::{normalize, reduce_final, reduce_partial};
pub use rollout::copy_rows;
