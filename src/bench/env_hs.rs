//! `bench env --env hs`.

use crate::cli::EnvBenchArgs;

pub fn run(_args: &EnvBenchArgs) -> anyhow::Result<String> {
    anyhow::bail!("--env hs: the HospitalSim kernel is not implemented yet (allowed now: ah)")
}
