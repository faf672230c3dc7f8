//! fairground-trainer: PPO-family training on the fairground kernels, with reproducible run
//! directories.
//!
//! - [`config`]: the typed, documented configuration (TOML + flags), validated up front.
//! - [`env`]: the environment seam ([`env::EnvAdapter`]) and its two adapters, AH and HS, with
//!   their fairness cells ([`env::fairness::FairnessCells`]).
//! - [`algo`]: the algorithm seam ([`algo::Algorithm`], every default PPO): PPO and Fair-PPO.
//! - [`train_loop`]: the one training loop, generic over environment, algorithm and backend.
//! - [`net`]: [`net::PolicyNet`], one network with its rollout store.
//! - [`pack`]: K runs in lockstep whose networks train as the sets of packed actor-critics.
//! - [`repro`]: the AH reference profile's host-side path (the [REPRO] memories).
//! - [`metrics`]: disparities and welfare, shared by training and evaluation.
//! - [`run`]: `train`, `eval` and `bench train` as the binary runs them, over one
//!   [`run::RunTrainer`].
//! - [`io`]: atomic writes and checkpoints (safetensors + JSON sidecar).
//! - [`update`]: the chunked act loop, the stored-update epochs and the loss statistics.
//! - [`common`], [`error`]: shared small types and typed one-line errors.

pub mod algo;
pub mod audit;
pub mod common;
pub mod config;
pub mod env;
pub mod error;
pub mod io;
pub mod metrics;
pub mod net;
pub mod pack;
pub mod replay;
pub mod repro;
pub mod run;
pub mod sweep;
pub mod train_loop;
pub mod update;
pub mod view;

pub use config::{Algo, Backend, EnvName, Fairness, Penalty, TrainConfig};
pub use error::TrainError;
pub use run::{BenchRequest, EvalRequest, Overrides, TrainRequest, bench, eval, train};
