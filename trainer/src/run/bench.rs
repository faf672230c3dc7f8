//! `fairground bench train`: the environment's default config (AH's or HS's, networks included)
//! at the given sizes, one warm-up iteration, then the timed ones; one JSON line with the
//! trained decisions per second split by phase.

use super::{make_trainer, open_backend};
use crate::common::EnvUse;
use crate::config::{Algo, Backend, EnvName, TrainConfig};
use crate::error::TrainError;
use serde::Serialize;

/// The bench line (field order as printed).
#[derive(Serialize)]
struct BenchLine<'a> {
    bench: &'static str,
    env: &'static str,
    algo: String,
    backend: &'static str,
    adapter: &'a str,
    instances: u32,
    rollout_steps: u32,
    minibatch_size: u32,
    iterations: u32,
    trunk: &'a [u32],
    hidden: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    hs_patients: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hs_sim_minutes: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    days_completed: Option<u64>,
    /// `trained_agent_steps` (AH) or `trained_decisions` (HS), and the same per second.
    #[serde(flatten)]
    trained: serde_json::Map<String, serde_json::Value>,
    wall_s: f64,
    kernel_s: f64,
    policy_act_s: f64,
    ppo_update_s: f64,
    host_s: f64,
    transfer_mib: f64,
}

/// Milliseconds: wall times are printed to three decimals.
fn ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `fairground bench train`: one JSON line. `rollout_steps` counts decision rounds for HS.
pub fn bench(
    env: EnvName,
    instances: u32,
    backend: Backend,
    rollout_steps: u32,
    minibatch_size: u32,
    iterations: u32,
    algo: Algo,
) -> Result<String, TrainError> {
    let mut cfg = TrainConfig {
        instances,
        rollout_steps,
        iterations,
        backend,
        algo,
        ..TrainConfig::default_for(env)
    };
    cfg.ppo.minibatch_size = minibatch_size;
    cfg.validate()?;
    let (backend, ctx) = open_backend(backend, cfg.threads)?;
    let mut t = make_trainer(&cfg, EnvUse::Train, ctx)?;
    // One warm-up iteration (pipelines, first allocations), then the timed ones.
    t.iterate()?;
    let before = t.timing();
    let (mut wall, mut trained, mut days) = (0.0, 0u64, 0u64);
    for _ in 0..cfg.iterations {
        let it = t.iterate()?;
        wall += it.wall_s;
        trained += it.trained;
        days += it
            .body
            .get("days_completed")
            .and_then(|d| d.as_u64())
            .unwrap_or(0);
    }
    let after = t.timing();
    let hs = env == EnvName::Hs;
    let unit = t.trained_unit();
    let mut counts = serde_json::Map::new();
    counts.insert(format!("trained_{unit}"), trained.into());
    counts.insert(
        format!("trained_{unit}_per_s"),
        ((trained as f64 / wall).round() as u64).into(),
    );
    let line = BenchLine {
        bench: "train",
        env: if hs { "hs" } else { "ah" },
        algo: algo.to_string(),
        backend: backend.name(),
        adapter: t.adapter(),
        instances: cfg.instances,
        rollout_steps: cfg.rollout_steps,
        minibatch_size: cfg.ppo.minibatch_size,
        iterations: cfg.iterations,
        trunk: &cfg.ppo.trunk,
        hidden: &cfg.ppo.hidden,
        hs_patients: hs.then_some(cfg.hs.patients),
        hs_sim_minutes: hs.then_some(cfg.hs.sim_minutes),
        days_completed: hs.then_some(days),
        trained: counts,
        wall_s: ms(wall),
        kernel_s: ms(after.kernel_s - before.kernel_s),
        policy_act_s: ms(after.act_s - before.act_s),
        ppo_update_s: ms(after.update_s - before.update_s),
        host_s: ms(after.host_s - before.host_s),
        transfer_mib: ms((after.transfer_bytes - before.transfer_bytes) as f64 / (1024.0 * 1024.0)),
    };
    Ok(serde_json::to_string(&line).expect("json"))
}
