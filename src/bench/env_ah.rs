//! `bench env --env ah`.

use crate::cli::EnvBenchArgs;

pub fn run(_args: &EnvBenchArgs) -> anyhow::Result<String> {
    anyhow::bail!("--env ah: not implemented yet")
}
