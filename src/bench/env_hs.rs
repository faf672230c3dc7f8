//! `bench env --env hs`: N HospitalSim instances under uniform random actions until every
//! instance has finished `--days` days.
//!
//! What is timed: only `HsEnv::step` (applying the actions, advancing every instance to its next
//! decision, auto-resetting finished days and writing observations and rewards). Not timed:
//! construction, drawing the random actions, hashing and bookkeeping. `days_per_s` counts only
//! completed days (instances that run ahead finish extra days, which count; the partial days
//! in progress when the last instance finishes do not), so it is a slight underestimate.

use crate::cli::EnvBenchArgs;
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{HsActions, HsConfig, HsEnv, HsRound, RandomPolicy};
use fairground_kernel::pool::WorkerPool;
use std::time::{Duration, Instant};

/// The totals of one bench run.
pub struct HsBenchResult {
    pub simulated: Duration,
    pub days: u64,
    pub decisions: u64,
    pub events: u64,
    pub decisions_in_days: u64,
    pub treated: u64,
    pub swing_moves: u64,
    pub hash: String,
}

/// Run the bench loop (also used by tests and the criterion bench).
pub fn run_uniform(config: HsConfig, days: u32, threads: usize) -> HsBenchResult {
    let n = config.instances as usize;
    let pool = WorkerPool::new(threads);
    let mut policy = RandomPolicy::new(config.seed, n, config.twins);
    let mut actions = HsActions::new(n, &config.params);
    let mut env = HsEnv::new(config);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let mut hash = TrajectoryHash::new();
    round.hash_into(&mut hash);
    let mut done = vec![0u32; n];
    let mut r = HsBenchResult {
        simulated: Duration::ZERO,
        days: 0,
        decisions: 0,
        events: 0,
        decisions_in_days: 0,
        treated: 0,
        swing_moves: 0,
        hash: String::new(),
    };
    while done.iter().any(|&d| d < days) {
        policy.fill(&round, &mut actions);
        let t0 = Instant::now();
        env.step(&actions, &mut round, &pool);
        r.simulated += t0.elapsed();
        r.decisions += n as u64;
        round.hash_into(&mut hash);
        for (i, done_i) in done.iter_mut().enumerate() {
            if round.day_done[i] == 1 {
                let s = &round.day_stats[i];
                *done_i += 1;
                r.days += 1;
                r.events += s.events as u64;
                r.decisions_in_days += s.decisions_total() as u64;
                r.treated += s.patients_treated as u64;
                r.swing_moves += s.swing_moves as u64;
            }
        }
    }
    r.hash = hash.hex();
    r
}

pub fn run(args: &EnvBenchArgs) -> anyhow::Result<String> {
    let config = HsConfig::new(args.instances, args.seed, args.profile);
    let r = run_uniform(config, args.days, args.threads as usize);
    let secs = r.simulated.as_secs_f64().max(1e-9);
    let days = r.days.max(1) as f64;
    let line = serde_json::json!({
        "env": "hs",
        "profile": args.profile.name(),
        "instances": args.instances,
        "days": args.days,
        "threads": args.threads,
        "days_per_s": r.days as f64 / secs,
        "decisions_per_s": r.decisions as f64 / secs,
        "events_per_s": r.events as f64 / secs,
        "decisions_per_day_mean": r.decisions_in_days as f64 / days,
        "patients_treated_mean": r.treated as f64 / days,
        "swing_moves_mean": r.swing_moves as f64 / days,
        "trajectory_hash": r.hash,
    });
    Ok(line.to_string())
}
