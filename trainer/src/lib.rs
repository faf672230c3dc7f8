//! fairground-trainer: PPO on the fairground kernels with reproducible run directories.
//!
//! - [`config`]: the typed, documented configuration (TOML + flags), validated up front.
//! - [`ah`]: the AH PPO trainer (kernel on the CPU, one network per group through any
//!   [`fairground_shaders::Executor`]).
//! - [`hs`]: the HS PPO trainer (one network per role: router, dispatcher, manager).
//! - [`io`]: atomic writes and checkpoints (safetensors + JSON sidecar).
//! - [`run`]: `train`, `eval` and `bench train` as the binary runs them.
//! - [`update`]: the chunked act loop and the loss statistics both trainers share.
//! - [`error`]: typed one-line errors.

pub mod ah;
pub mod config;
pub mod error;
pub mod fair;
pub mod hs;
pub mod io;
pub mod run;
pub mod update;

pub use config::{Algo, Backend, EnvName, Fairness, Penalty, TrainConfig};
pub use error::TrainError;
pub use run::{EvalRequest, Overrides, TrainRequest, bench, eval, train};
