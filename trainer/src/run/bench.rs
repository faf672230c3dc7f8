//! `fairground bench train`: the environment's default config (AH's or HS's, networks included)
//! at the given sizes, one warm-up iteration, then the timed ones; one JSON line with the
//! trained decisions per second split by phase, the model FLOP rate of the passes run, and the
//! fraction it is of a peak measured in the same process through the same matrix-product path.

use super::packed::{RunPack, make_pack, single};
use super::{make_trainer, measure_peak, open_backend};
use crate::common::{EnvUse, Timing};
use crate::config::{Algo, Backend, EnvName, TrainConfig};
use crate::error::TrainError;
use fairground_kernel::Profile;
use fairground_shaders::gpu_exec;
use serde::Serialize;

/// The bench line (field order as printed).
#[derive(Serialize)]
struct BenchLine<'a> {
    bench: &'static str,
    env: &'static str,
    algo: String,
    profile: String,
    backend: &'static str,
    adapter: &'a str,
    threads: u32,
    instances: u32,
    rollout_steps: u32,
    minibatch_size: u32,
    iterations: u32,
    /// Runs trained together (`--seeds`), and the networks per run that trained packed.
    seeds: u32,
    packed_networks: usize,
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
    /// Model FLOPs of the dense launches run in the timed iterations (2 · rows · in · out per
    /// forward, input-gradient and weight-gradient launch).
    model_gflop: f64,
    /// `model_gflop / wall_s`.
    model_gflop_per_s: f64,
    /// Model FLOPs per trained agent-step (AH) or decision (HS), in millions.
    model_mflop_per_trained: f64,
    /// The peak probe: one `rows × 256 @ 256 × 128` dense forward on the same backend.
    peak_shape: String,
    peak_gflop_per_s: f64,
    /// `model_gflop_per_s / peak_gflop_per_s`.
    peak_fraction: f64,
    /// gpu only: queue submissions and readbacks in the timed iterations (the host round
    /// trips; a readback is a submission that waits for the device).
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_submits: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_readbacks: Option<u64>,
}

/// What `fairground bench train` measures.
#[derive(Clone, Debug)]
pub struct BenchRequest {
    pub env: EnvName,
    pub instances: u32,
    pub backend: Backend,
    pub rollout_steps: u32,
    pub minibatch_size: u32,
    pub iterations: u32,
    pub algo: Algo,
    /// `reference`: the profile's defaults (for AH PPO/Fair-PPO the reference trainer, which
    /// trains each group network on both groups' memories: the reference's work per step).
    pub profile: Profile,
    /// Worker threads (the config's default when `None`).
    pub threads: Option<u32>,
    /// Runs of seeds 0..seeds trained together (`train --seeds`); 0 and 1: one run.
    pub seeds: u32,
    /// With `seeds` > 1: every network trains run by run instead of packed.
    pub no_pack: bool,
}

/// Milliseconds: wall times are printed to three decimals.
fn ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Four decimal places for rates and fractions.
fn r4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// `fairground bench train`: one JSON line. `rollout_steps` counts decision rounds for HS.
pub fn bench(req: &BenchRequest) -> Result<String, TrainError> {
    let env = req.env;
    let mut cfg = TrainConfig {
        instances: req.instances,
        rollout_steps: req.rollout_steps,
        iterations: req.iterations,
        backend: req.backend,
        ..TrainConfig::defaults_for_algo(env, req.profile, req.algo)
    };
    cfg.algo = req.algo;
    cfg.ppo.minibatch_size = req.minibatch_size;
    if let Some(threads) = req.threads {
        cfg.threads = threads;
    }
    cfg.validate()?;
    let algo = req.algo;
    let (backend, ctx) = open_backend(req.backend, cfg.threads)?;
    let seeds = req.seeds.max(1);
    let mut t: Box<dyn RunPack> = if seeds == 1 {
        single(make_trainer(&cfg, EnvUse::Train, ctx.clone())?)
    } else {
        let cfgs: Vec<TrainConfig> = (0..u64::from(seeds))
            .map(|s| TrainConfig {
                seed: cfg.seed + s,
                ..cfg.clone()
            })
            .collect();
        make_pack(&cfgs, EnvUse::Train, ctx.clone(), !req.no_pack)?
    };
    // One warm-up iteration (pipelines, first allocations), then the timed ones.
    t.iterate()?;
    let timing = |t: &mut Box<dyn RunPack>| -> Timing {
        (0..t.len()).fold(Timing::default(), |acc, r| acc.plus(&t.run(r).timing()))
    };
    let before = timing(&mut t);
    let flops_before = fairground_shaders::program::executed_flops();
    let submits_before = (gpu_exec::submits(), gpu_exec::readbacks());
    let (mut wall, mut trained, mut days) = (0.0, 0u64, 0u64);
    for _ in 0..cfg.iterations {
        // Timed here: a pack's runs report the pack's wall time each, lockstep runs their own.
        let t0 = std::time::Instant::now();
        let its = t.iterate()?;
        wall += t0.elapsed().as_secs_f64();
        for it in &its {
            trained += it.trained;
            days += it
                .body
                .get("days_completed")
                .and_then(|d| d.as_u64())
                .unwrap_or(0);
        }
    }
    let after = timing(&mut t);
    let flops = fairground_shaders::program::executed_flops() - flops_before;
    let gpu = backend == Backend::Gpu;
    let submits = gpu_exec::submits() - submits_before.0;
    let readbacks = gpu_exec::readbacks() - submits_before.1;
    // After the timed iterations, so the probe's launches are not counted as training's.
    let (peak, probe) = measure_peak(&ctx, 1.0)?;
    let model_gflop_per_s = flops as f64 / 1e9 / wall;
    let hs = env == EnvName::Hs;
    let unit = t.run(0).trained_unit();
    let packed_networks = t.packed_networks();
    let mut counts = serde_json::Map::new();
    counts.insert(format!("trained_{unit}"), trained.into());
    counts.insert(
        format!("trained_{unit}_per_s"),
        ((trained as f64 / wall).round() as u64).into(),
    );
    let adapter = t.run(0).adapter().to_string();
    let line = BenchLine {
        bench: "train",
        env: if hs { "hs" } else { "ah" },
        algo: algo.to_string(),
        profile: cfg.profile.to_string(),
        backend: backend.name(),
        adapter: &adapter,
        threads: cfg.threads,
        instances: cfg.instances,
        rollout_steps: cfg.rollout_steps,
        minibatch_size: cfg.ppo.minibatch_size,
        iterations: cfg.iterations,
        seeds,
        packed_networks,
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
        model_gflop: r4(flops as f64 / 1e9),
        model_gflop_per_s: r4(model_gflop_per_s),
        model_mflop_per_trained: r4(flops as f64 / 1e6 / trained.max(1) as f64),
        peak_shape: format!(
            "{}x{}@{}x{}",
            probe.rows, probe.inputs, probe.inputs, probe.outputs
        ),
        peak_gflop_per_s: r4(peak.gflop_per_s),
        peak_fraction: r4(model_gflop_per_s / peak.gflop_per_s),
        gpu_submits: gpu.then_some(submits),
        gpu_readbacks: gpu.then_some(readbacks),
    };
    Ok(serde_json::to_string(&line).expect("json"))
}
