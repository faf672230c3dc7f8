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

/// `{"mean": m, "se": s}` of the samples that have a value (se = unbiased std / √n, 0 for one
/// sample); null when none has: the unit of every `--stats` statistic.
pub(crate) fn mean_se(v: impl Iterator<Item = Option<f64>>) -> serde_json::Value {
    let v: Vec<f64> = v.flatten().collect();
    if v.is_empty() {
        return serde_json::Value::Null;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let se = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
    } else {
        0.0
    };
    serde_json::json!({ "mean": mean, "se": se })
}
