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
        EnvName::Hs => {
            // AH's options, refused rather than ignored.
            let ah_only = [
                ("--sensitive-fraction", args.sensitive_fraction.is_some()),
                ("--episode-steps", args.episode_steps.is_some()),
            ];
            if let Some((flag, _)) = ah_only.iter().find(|(_, on)| *on) {
                anyhow::bail!("{flag}: an AH option (bench env --env ah); not for --env hs");
            }
            env_hs::run(args)
        }
    }
}
