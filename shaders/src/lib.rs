//! fairground-shaders: hand-written WGSL compute kernels for PPO, each with a CPU twin.
//!
//! - [`registry`]: the WGSL sources (`include_str!`) and every kernel's binding table.
//! - [`layout`]: the `#[repr(C)]` + `Pod` structs shared with WGSL, with layout asserts.
//! - [`cpu`]: the CPU twin of every kernel.
//! - [`program`]: buffers and launch sequences declared once; [`Executor`] runs them on the GPU
//!   ([`GpuExecutor`]), with the twins ([`CpuExecutor`]), or with the twins and a tuned GEMM
//!   ([`GemmExecutor`]) — the `gpu`, `cpu` and `cpu-gemm` backends.
//! - [`device`]: adapter choice, explicit limits, pipelines built once ([`GpuContext`]).
//! - [`mlp`], [`ppo`]: dense networks (grouped or not), GAE, reductions, and [`ActorCritic`].

pub mod cpu;
pub mod cpu_exec;
pub mod device;
pub mod error;
pub mod gemm_exec;
pub mod gpu_exec;
pub mod layout;
pub mod mlp;
pub mod peak;
pub mod ppo;
pub mod program;
pub mod registry;

pub use cpu_exec::CpuExecutor;
pub use device::{BackendChoice, GpuContext};
pub use error::ShaderError;
pub use gemm_exec::{GemmExecutor, GemmPool};
pub use gpu_exec::GpuExecutor;
pub use mlp::{Activation, MlpSpec};
pub use peak::{Peak, PeakProbe};
pub use ppo::{
    ActOutput, ActorCritic, ActorCriticSpec, LossStats, Minibatch, OptimizerState,
    PackedActorCritic, PackedRows, Packing, PpoHyper, SampleKey,
};
pub use program::{BufferId, Executor, ExecutorExt, Program, SeqId};
pub use registry::{Family, Kernel};
