//! `bench env --env hs`: N HospitalSim instances under uniform random actions until every
//! instance has finished `--days` days.
//!
//! What is timed: only `HsEnv::step` (applying the actions, advancing every instance to its next
//! decision, auto-resetting finished days and writing observations and rewards). Not timed:
//! construction, drawing the random actions, hashing and bookkeeping. `days_per_s` counts only
//! completed days (instances that run ahead finish extra days, which count; the partial days
//! in progress when the last instance finishes do not), so it is a slight underestimate.
//!
//! With `--stats` the line also carries per-day statistics (each a mean over days with its
//! standard error) of the first `--days` days of every instance, the quantities
//! `tools/refcompare/` measures on the reference code. They are read from the day statistics
//! the kernel keeps anyway and from the per-step rewards outside the timed call, so the
//! trajectory and the timed part are the same as without.

use crate::cli::EnvBenchArgs;
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{HsActions, HsConfig, HsDayStats, HsEnv, HsRound, RandomPolicy};
use fairground_kernel::pool::WorkerPool;
use std::time::{Duration, Instant};

/// One finished day: the kernel's statistics and the reward each role received during it (the
/// sum of the rewards of the actions it took, the reference wrapper's `rewards[role]`).
#[derive(Clone, Debug)]
pub struct DaySample {
    pub stats: HsDayStats,
    pub role_reward: [f64; 3],
}

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
    /// With `stats`: the first `days` days of every instance, in the order they finished.
    pub samples: Vec<DaySample>,
}

/// Run the bench loop (also used by tests and the criterion bench).
pub fn run_uniform(config: HsConfig, days: u32, threads: usize) -> HsBenchResult {
    run_days(config, days, threads, false)
}

/// [`run_uniform`], with `stats` also keeping every instance's first `days` days as samples.
pub fn run_days(config: HsConfig, days: u32, threads: usize, stats: bool) -> HsBenchResult {
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
    let mut role_reward = vec![[0f64; 3]; n];
    let mut r = HsBenchResult {
        simulated: Duration::ZERO,
        days: 0,
        decisions: 0,
        events: 0,
        decisions_in_days: 0,
        treated: 0,
        swing_moves: 0,
        hash: String::new(),
        samples: Vec::new(),
    };
    while done.iter().any(|&d| d < days) {
        policy.fill(&round, &mut actions);
        let t0 = Instant::now();
        env.step(&actions, &mut round, &pool);
        r.simulated += t0.elapsed();
        r.decisions += n as u64;
        round.hash_into(&mut hash);
        for (i, done_i) in done.iter_mut().enumerate() {
            if stats {
                // The reward of the action that ended a day belongs to that day.
                role_reward[i][usize::from(round.acted[i])] += f64::from(round.reward[i]);
            }
            if round.day_done[i] == 1 {
                let s = &round.day_stats[i];
                if stats && *done_i < days {
                    r.samples.push(DaySample {
                        stats: *s,
                        role_reward: role_reward[i],
                    });
                }
                role_reward[i] = [0.0; 3];
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
    let r = run_days(config, args.days, args.threads as usize, args.stats);
    let secs = r.simulated.as_secs_f64().max(1e-9);
    let days = r.days.max(1) as f64;
    let mut line = serde_json::json!({
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
    if args.stats {
        line.as_object_mut()
            .expect("object")
            .insert("stats".into(), stats_json(&r.samples));
    }
    Ok(line.to_string())
}

const ROLES: [&str; 3] = ["router", "dispatcher", "manager"];
const IMPAIRMENTS: [&str; 3] = ["none", "low", "high"];
const PRIORITIES: [&str; 3] = ["low", "medium", "high"];
const ROUTING: [&str; 3] = ["perfect", "backup", "wrong"];

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// Mean ledger of one day's finished patients whose (impairment, priority) cell passes `keep`.
fn ledger_mean(s: &HsDayStats, keep: impl Fn(usize, usize) -> bool) -> Option<f64> {
    let (mut sum, mut count) = (0.0, 0.0);
    for imp in 0..3 {
        for pri in 0..3 {
            if keep(imp, pri) {
                sum += s.ledger_finished[imp][pri];
                count += f64::from(s.finished[imp][pri]);
            }
        }
    }
    ratio(sum, count)
}

/// The statistics of `--stats`, one sample per day. Means of ratios are per-day means (the
/// reference's test scripts average a day's ratio over days), so a day without the quantity
/// (no escort, no finished impaired patient) is left out of that statistic.
pub fn stats_json(days: &[DaySample]) -> serde_json::Value {
    let per_day = |f: &dyn Fn(&DaySample) -> Option<f64>| super::mean_se(days.iter().map(f));
    let by = |names: &[&str], f: &dyn Fn(usize, &DaySample) -> Option<f64>| {
        let mut m = serde_json::Map::new();
        for (k, name) in names.iter().enumerate() {
            m.insert((*name).into(), per_day(&|d| f(k, d)));
        }
        serde_json::Value::Object(m)
    };
    let routed = |s: &HsDayStats| f64::from(s.routing_decisions.iter().sum::<u32>());
    serde_json::json!({
        "days": days.len(),
        "reward_per_day": by(&ROLES, &|k, d| Some(d.role_reward[k])),
        "decisions_per_day": by(&ROLES, &|k, d| Some(f64::from(d.stats.decisions[k]))),
        "patients_finished": per_day(&|d| Some(f64::from(d.stats.patients_treated))),
        "patients_exited": per_day(&|d| Some(f64::from(d.stats.patients_exited))),
        "patients_done_not_exited": per_day(&|d| {
            Some(f64::from(d.stats.patients_treated) - f64::from(d.stats.patients_exited))
        }),
        "escort_wait_mean": per_day(&|d| {
            ratio(d.stats.escort_wait_sum, f64::from(d.stats.escort_waits))
        }),
        "escort_travel_mean": per_day(&|d| {
            let s = &d.stats;
            ratio(
                s.escort_travel_sum[0] + s.escort_travel_sum[1],
                f64::from(s.escort_travels[0] + s.escort_travels[1]),
            )
        }),
        "escorts_per_day": per_day(&|d| Some(f64::from(d.stats.escort_waits))),
        "dispatches_per_day": per_day(&|d| {
            Some(f64::from(d.stats.escort_travels[0] + d.stats.escort_travels[1]))
        }),
        "ward_wait_mean": per_day(&|d| {
            ratio(d.stats.ward_wait_sum, f64::from(d.stats.ward_waits))
        }),
        "routing_fraction": by(&ROUTING, &|k, d| {
            ratio(f64::from(d.stats.routing_decisions[k]), routed(&d.stats))
        }),
        "swing_moves": per_day(&|d| Some(f64::from(d.stats.swing_moves))),
        "ledger_mean_by_impairment": by(&IMPAIRMENTS, &|k, d| {
            ledger_mean(&d.stats, |imp, _| imp == k)
        }),
        "ledger_mean_by_priority": by(&PRIORITIES, &|k, d| {
            ledger_mean(&d.stats, |_, pri| pri == k)
        }),
        // Non-impaired minus impaired (low or high) mean ledger of finished patients, and its
        // absolute value (the reference's reward_fairness_gap); days with both groups only.
        "ledger_dp": per_day(&|d| ledger_dp(&d.stats)),
        "ledger_dp_abs": per_day(&|d| ledger_dp(&d.stats).map(f64::abs)),
        "empty_dispatch_cap_days": per_day(&|d| {
            Some(f64::from(u8::from(d.stats.empty_dispatch_cap_triggers > 0)))
        }),
    })
}

fn ledger_dp(s: &HsDayStats) -> Option<f64> {
    Some(ledger_mean(s, |imp, _| imp == 0)? - ledger_mean(s, |imp, _| imp > 0)?)
}
