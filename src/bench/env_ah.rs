//! `bench env --env ah`: step N instances T steps under uniform random actions.

use crate::cli::EnvBenchArgs;
use fairground_kernel::Profile;
use fairground_kernel::ah::{ACTIONS, AhEnv, AhParams, StepOut};
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};
use std::time::{Duration, Instant};

/// What a random rollout produced.
#[derive(Clone, Debug)]
pub struct RolloutReport {
    /// Digest of the initial observations, then every step's observations, rewards and dones,
    /// in instance order. Depends only on (params, instances, steps, seed), never on threads.
    pub trajectory_hash: String,
    /// Sum of all rewards (accumulated in f64 in instance order).
    pub reward_sum: f64,
    /// Wall time spent inside `AhEnv::step` only (action generation and hashing excluded).
    pub step_time: Duration,
}

/// Step `instances` instances of `params` for `steps` steps; actions are uniform in 0..9 from
/// the `RandomActions` stream of `seed`, drawn in instance-major order each step.
pub fn random_rollout(
    params: AhParams,
    instances: usize,
    steps: u32,
    seed: u64,
    threads: usize,
) -> anyhow::Result<RolloutReport> {
    let mut env = AhEnv::new(params, instances, seed)?;
    let pool = WorkerPool::new(threads);
    let n_agents = env.agents();
    let mut actions = vec![0u8; instances * n_agents];
    let mut obs = vec![0f32; env.obs_len()];
    let mut rewards = vec![0f32; instances * n_agents];
    let mut dones = vec![0u8; instances];
    let mut groups = vec![0u8; env.instances() * env.agents()];
    let mut prefs = vec![0u8; env.instances() * env.agents()];
    let mut action_rng = Stream::new(seed, Purpose::RandomActions, &[]);
    let mut hash = TrajectoryHash::new();
    env.observe(&mut obs);
    hash.write_f32s(&obs);
    let mut step_time = Duration::ZERO;
    let mut reward_sum = 0f64;
    for _ in 0..steps {
        for a in actions.iter_mut() {
            *a = action_rng.below(ACTIONS) as u8;
        }
        let t0 = Instant::now();
        env.step(
            &actions,
            StepOut {
                obs: &mut obs,
                rewards: &mut rewards,
                dones: &mut dones,
                groups: &mut groups,
                prefs: &mut prefs,
            },
            &pool,
        );
        step_time += t0.elapsed();
        hash.write_f32s(&obs);
        hash.write_f32s(&rewards);
        hash.write_bytes(&dones);
        reward_sum += rewards.iter().map(|&r| r as f64).sum::<f64>();
    }
    Ok(RolloutReport {
        trajectory_hash: hash.hex(),
        reward_sum,
        step_time,
    })
}

pub fn run(args: &EnvBenchArgs) -> anyhow::Result<String> {
    let params = AhParams::new(args.profile);
    let agents = params.agents as u64;
    let report = random_rollout(
        params,
        args.instances as usize,
        args.steps,
        args.seed,
        args.threads as usize,
    )?;
    let env_steps = args.instances as u64 * args.steps as u64;
    let secs = report.step_time.as_secs_f64().max(1e-9);
    let line = serde_json::json!({
        "env": "ah",
        "profile": args.profile,
        "instances": args.instances,
        "steps": args.steps,
        "threads": args.threads,
        "agent_steps_per_s": (env_steps * agents) as f64 / secs,
        "env_steps_per_s": env_steps as f64 / secs,
        "mean_reward_per_agent_step": report.reward_sum / (env_steps * agents) as f64,
        "trajectory_hash": report.trajectory_hash,
    });
    Ok(line.to_string())
}

/// The profile names, for messages.
pub fn profiles() -> String {
    Profile::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}
