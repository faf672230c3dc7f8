//! `bench shaders`: throughput of the PPO compute core on the gpu or cpu backend, one JSON line.
//!
//! forward_samples_per_s: rows per second through `act` (upload observations, policy and value
//! forward, sampling, read back actions, log-probabilities and values) — what a rollout step
//! costs. train_samples_per_s: rows per second through `train_minibatch` (upload a minibatch,
//! forward, head evaluation, clipped loss, backward, Adam) — one minibatch pass, queued back to
//! back and waited for at the end.

use crate::cli::{ComputeBackend, ShadersBenchArgs};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, Executor, GpuContext, GpuExecutor,
    Minibatch, PpoHyper, SampleKey,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Warm-up calls before timing, and the least wall time each measurement runs.
const WARMUP_CALLS: u32 = 2;
const MIN_MEASURE: Duration = Duration::from_millis(1500);

/// Inputs of one minibatch, generated once.
struct Inputs {
    obs: Vec<f32>,
    actions: Vec<u32>,
    old_logp: Vec<f32>,
    old_values: Vec<f32>,
    advantages: Vec<f32>,
    adv_adjust: Vec<f32>,
    returns: Vec<f32>,
}

fn inputs(spec: &ActorCriticSpec) -> Inputs {
    let n = spec.batch as usize;
    let wave = |k: usize, scale: f32| ((k as f32) * 0.618_034).sin() * scale;
    Inputs {
        obs: (0..n * spec.obs_width as usize)
            .map(|k| wave(k, 1.0))
            .collect(),
        actions: (0..n)
            .map(|k| (k as u32 * 7 + 3) % spec.action_components[0])
            .collect(),
        old_logp: (0..n).map(|k| -2.2 + wave(k + 1, 0.1)).collect(),
        old_values: (0..n).map(|k| wave(k + 2, 0.5)).collect(),
        advantages: (0..n).map(|k| wave(k + 3, 1.0)).collect(),
        adv_adjust: vec![0.0; n],
        returns: (0..n).map(|k| wave(k + 4, 1.0)).collect(),
    }
}

/// Rows per second of `f`, run until at least MIN_MEASURE has passed (then `finish`).
fn measure<E: Executor>(
    ac: &mut ActorCritic<E>,
    rows: u32,
    mut f: impl FnMut(&mut ActorCritic<E>, u32) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    for i in 0..WARMUP_CALLS {
        f(ac, i)?;
    }
    ac.finish()?;
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < MIN_MEASURE || calls < 3 {
        f(ac, calls)?;
        calls += 1;
        if calls.is_multiple_of(8) {
            ac.finish()?;
        }
    }
    ac.finish()?;
    Ok(f64::from(calls) * f64::from(rows) / start.elapsed().as_secs_f64())
}

fn bench<E: Executor>(
    mut ac: ActorCritic<E>,
    d: &Inputs,
    adapter: String,
    args: &ShadersBenchArgs,
) -> anyhow::Result<String> {
    let rows = args.batch;
    let forward = measure(&mut ac, rows, |ac, i| {
        let key = SampleKey {
            seed: 1,
            iteration: 0,
            step: i,
            agent_offset: 0,
        };
        ac.act(&d.obs, &[], &[], key)?;
        Ok(())
    })?;
    let mb = Minibatch {
        obs: &d.obs,
        group_ids: &[],
        masks: &[],
        actions: &d.actions,
        old_logp: &d.old_logp,
        old_values: &d.old_values,
        advantages: &d.advantages,
        adv_adjust: &d.adv_adjust,
        returns: &d.returns,
    };
    let train = measure(&mut ac, rows, |ac, _| Ok(ac.train_minibatch(&mb)?))?;
    let stats = ac.loss_stats()?;
    anyhow::ensure!(stats.value_loss.is_finite(), "training diverged: {stats:?}");
    let backend = match args.backend {
        ComputeBackend::Gpu => "gpu",
        ComputeBackend::Cpu => "cpu",
        ComputeBackend::CpuGemm => "cpu-gemm",
    };
    // Keys in the documented order (serde_json's map would sort them).
    Ok(format!(
        "{{\"backend\":{},\"adapter\":{},\"batch\":{},\"hidden\":{},\"forward_samples_per_s\":{},\"train_samples_per_s\":{}}}",
        serde_json::to_string(backend)?,
        serde_json::to_string(&adapter)?,
        rows,
        serde_json::to_string(&args.hidden)?,
        forward.round(),
        train.round(),
    ))
}

pub fn run(args: &ShadersBenchArgs) -> anyhow::Result<String> {
    let spec = ActorCriticSpec {
        obs_width: args.obs,
        trunk: vec![],
        hidden: args.hidden.clone(),
        action_components: vec![args.actions],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch: args.batch,
        use_masks: false,
    };
    let params = spec.init_params(0);
    let d = inputs(&spec);
    match args.backend {
        ComputeBackend::Gpu => {
            let ctx = Arc::new(GpuContext::from_env()?);
            let adapter = ctx.adapter_name();
            let ac = ActorCritic::new(spec, PpoHyper::default(), &params, |p| {
                GpuExecutor::new(ctx, p)
            })?;
            bench(ac, &d, adapter, args)
        }
        ComputeBackend::Cpu => {
            let ac = ActorCritic::new(spec, PpoHyper::default(), &params, |p| {
                Ok(CpuExecutor::new(p))
            })?;
            bench(ac, &d, "cpu".to_string(), args)
        }
        ComputeBackend::CpuGemm => {
            let pool = fairground_shaders::GemmPool::new(2)?;
            let mut ac = ActorCritic::new(spec, PpoHyper::default(), &params, |p| {
                Ok(fairground_shaders::GemmExecutor::new(p, pool.clone()))
            })?;
            let adapter = ac.executor().adapter_name();
            bench(ac, &d, adapter, args)
        }
    }
}
