//! `bench env --env ah`: step N instances T steps under uniform random actions.

use crate::cli::EnvBenchArgs;
use fairground_kernel::Profile;
use fairground_kernel::ah::stats::{OUTCOME_REWARD, OUTCOMES};
use fairground_kernel::ah::{ACTIONS, AhEnv, AhParams, AhStats, InstanceStats, StepOut, action};
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
    /// With `stats`: the counters of every instance (the episodes in progress closed at the
    /// end), and per instance the reward of its sensitive and of all its agents.
    pub stats: Option<(AhStats, Vec<[f64; 2]>)>,
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
    rollout(params, instances, steps, seed, threads, false)
}

/// [`random_rollout`], with `stats` also counting what happened inside the steps (the same
/// trajectory: `AhEnv::step_recording`).
pub fn rollout(
    params: AhParams,
    instances: usize,
    steps: u32,
    seed: u64,
    threads: usize,
    stats: bool,
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
    let mut counters = stats.then(|| (AhStats::new(instances), vec![[0f64; 2]; instances]));
    // The sensitive attribute in effect during a step: the step's own `groups` output is
    // already the next episode's where an episode ended.
    let mut sensitive = vec![0u8; instances * n_agents];
    if stats {
        env.observe_groups(&mut sensitive, &mut prefs);
    }
    for _ in 0..steps {
        for a in actions.iter_mut() {
            *a = action_rng.below(ACTIONS) as u8;
        }
        let t0 = Instant::now();
        let out = StepOut {
            obs: &mut obs,
            rewards: &mut rewards,
            dones: &mut dones,
            groups: &mut groups,
            prefs: &mut prefs,
        };
        match &mut counters {
            None => env.step(&actions, out, &pool),
            Some((st, _)) => env.step_recording(&actions, out, &pool, st),
        }
        step_time += t0.elapsed();
        if let Some((_, shares)) = &mut counters {
            for (k, &r) in rewards.iter().enumerate() {
                let i = k / n_agents;
                shares[i][0] += f64::from(r) * f64::from(sensitive[k]);
                shares[i][1] += f64::from(r);
            }
            sensitive.copy_from_slice(&groups);
        }
        hash.write_f32s(&obs);
        hash.write_f32s(&rewards);
        hash.write_bytes(&dones);
        reward_sum += rewards.iter().map(|&r| r as f64).sum::<f64>();
    }
    if let Some((st, _)) = &mut counters {
        env.close_episodes(st);
    }
    Ok(RolloutReport {
        trajectory_hash: hash.hex(),
        reward_sum,
        step_time,
        stats: counters,
    })
}

pub fn run(args: &EnvBenchArgs) -> anyhow::Result<String> {
    let mut params = AhParams::new(args.profile);
    if let Some(f) = args.sensitive_fraction {
        params.sensitive_fraction = f;
    }
    if let Some(t) = args.episode_steps {
        params.episode_steps = t;
    }
    let agents = params.agents as u64;
    let (sensitive_fraction, episode_steps) = (params.sensitive_fraction, params.episode_steps);
    let report = rollout(
        params,
        args.instances as usize,
        args.steps,
        args.seed,
        args.threads as usize,
        args.stats,
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
    let mut line = line;
    if let Some((st, shares)) = &report.stats {
        let o = line.as_object_mut().expect("object");
        o.insert("sensitive_fraction".into(), sensitive_fraction.into());
        o.insert("episode_steps".into(), episode_steps.into());
        o.insert("stats".into(), stats_json(st, shares));
    }
    Ok(line.to_string())
}

/// Each statistic as `{"mean": m, "se": s}` over the instances (each instance an independent
/// sample; se = unbiased std / √n, 0 for one instance).
fn stats_json(st: &AhStats, shares: &[[f64; 2]]) -> serde_json::Value {
    let summary = |f: &dyn Fn(usize, &InstanceStats) -> Option<f64>| {
        super::mean_se(st.instances.iter().enumerate().map(|(i, s)| f(i, s)))
    };
    let per_step = |x: fn(&InstanceStats) -> u64| {
        move |_: usize, s: &InstanceStats| {
            (s.agent_steps > 0).then(|| x(s) as f64 / s.agent_steps as f64)
        }
    };
    let mut executed = serde_json::Map::new();
    let mut reward = serde_json::Map::new();
    for a in 0..ACTIONS as usize {
        executed.insert(
            action::NAMES[a].into(),
            summary(&move |_, s| {
                (s.agent_steps > 0).then(|| s.executed[a] as f64 / s.agent_steps as f64)
            }),
        );
    }
    for (k, name) in OUTCOMES.iter().enumerate() {
        reward.insert(
            (*name).into(),
            summary(&move |_, s| {
                (s.agent_steps > 0)
                    .then(|| (s.outcomes[k] * OUTCOME_REWARD[k]) as f64 / s.agent_steps as f64)
            }),
        );
    }
    serde_json::json!({
        "instances": st.instances.len(),
        "episodes": st.total().episodes,
        "mean_reward_per_agent_step": summary(&|i, s| {
            (s.agent_steps > 0).then(|| shares[i][1] / s.agent_steps as f64)
        }),
        "players_moved_mean": summary(&|_, s| {
            (s.episodes > 0).then(|| s.moved_agents as f64 / s.episodes as f64)
        }),
        "frozen_agents_mean": summary(&|_, s| {
            (s.episodes > 0).then(|| s.frozen_agents as f64 / s.episodes as f64)
        }),
        "substituted_fraction": summary(&per_step(|s| s.substituted)),
        "exhausted_fraction": summary(&per_step(|s| s.exhausted)),
        "frozen_turn_fraction": summary(&per_step(|s| s.frozen_turns)),
        "resting_turn_fraction": summary(&per_step(|s| s.resting_turns)),
        "executed_fraction": executed,
        "ripe_fraction_mean": summary(&|_, s| {
            (s.bushes > 0).then(|| s.ripe_bushes as f64 / s.bushes as f64)
        }),
        "sensitive_reward_share": summary(&|i, _| {
            (shares[i][1] > 0.0).then(|| shares[i][0] / shares[i][1])
        }),
        "reward_per_agent_step_by_outcome": reward,
    })
}

/// The profile names, for messages.
pub fn profiles() -> String {
    Profile::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}
