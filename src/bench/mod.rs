//! `fairground bench …`: throughput measurements that print one JSON line each.

pub mod env_ah;
pub mod env_hs;
pub mod shaders;

use crate::cli::EnvBenchArgs;
use fairground_trainer::EnvName;

/// Run `bench env` and return its JSON line.
pub fn env(args: &EnvBenchArgs) -> anyhow::Result<String> {
    match args.env {
        EnvName::Ah => env_ah::run(args),
        EnvName::Hs => env_hs::run(args),
    }
}
