//! `fairground bench …`: throughput measurements that print one JSON line each.

pub mod env_ah;
pub mod env_hs;
pub mod shaders;

use crate::cli::{EnvBenchArgs, EnvKind};

/// Run `bench env` and return its JSON line.
pub fn env(args: &EnvBenchArgs) -> anyhow::Result<String> {
    match args.env {
        EnvKind::Ah => env_ah::run(args),
        EnvKind::Hs => env_hs::run(args),
    }
}
