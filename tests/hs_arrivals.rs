//! Guarantees (HospitalSim arrival peaks, spec §2.4 and §3.2's curriculum): with the
//! curriculum, every day takes its peaks from the pool's easy, medium or full prefix by its
//! global index (day d of hospital k of K: d·K + k); fresh templates change day by day and a
//! counterfactual twin gets its factual world's; a curriculum run is thread-invariant, restores
//! from a snapshot exactly, and differs from the single random peak; a snapshot written before
//! the config had `arrivals` reads as the single random peak.

use fairground::bench::env_hs::run_uniform;
use fairground_kernel::Profile;
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{
    ArrivalPeaks, ArrivalTemplate, Curriculum, HsActions, HsConfig, HsDayStats, HsEnv, HsRound,
    HsSnapshot, RandomPolicy,
};
use fairground_kernel::pool::WorkerPool;

fn curriculum(phase_days: [u32; 2]) -> ArrivalPeaks {
    ArrivalPeaks::Curriculum(Curriculum {
        templates: 5,
        seed: 42,
        phase_days,
    })
}

fn config(profile: Profile, instances: u32, seed: u64, arrivals: ArrivalPeaks) -> HsConfig {
    let mut c = HsConfig::new(instances, seed, profile);
    c.arrivals = arrivals;
    c
}

/// Play uniform random actions until every instance has finished `days` days; returns each
/// finished day's (instance, statistics) in the order they ended, and the env.
fn play(cfg: HsConfig, days: u32) -> (Vec<(usize, HsDayStats)>, HsEnv) {
    let n = cfg.instances as usize;
    let pool = WorkerPool::new(1);
    let mut policy = RandomPolicy::new(cfg.seed, n, cfg.twins);
    let mut actions = HsActions::new(n, &cfg.params);
    let mut env = HsEnv::new(cfg);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let mut done = vec![0u32; n];
    let mut out = Vec::new();
    while done.iter().any(|&d| d < days) {
        policy.fill(&round, &mut actions);
        env.step(&actions, &mut round, &pool);
        for (i, d) in done.iter_mut().enumerate() {
            if round.day_done[i] == 1 {
                *d += 1;
                out.push((i, round.day_stats[i]));
            }
        }
    }
    (out, env)
}

#[test]
fn curriculum_days_take_the_easy_medium_then_full_pool_by_global_day() {
    let k = 4usize;
    let (days, env) = play(
        config(Profile::Reference, k as u32, 5, curriculum([6, 14])),
        6,
    );
    let pool = env.arrival_pool().to_vec();
    assert_eq!(pool.len(), 5);
    assert!(
        pool.windows(2)
            .all(|w| w[0].difficulty() <= w[1].difficulty())
    );
    let mut late = std::collections::BTreeSet::new();
    for (i, s) in &days {
        let g = s.day as usize * k + i;
        let at = pool.iter().position(|t| *t == s.peaks);
        let at = at.unwrap_or_else(|| panic!("day {g}: peaks {:?} not in the pool", s.peaks));
        if g < 6 {
            assert_eq!(at, 0, "day {g}: the easy pool is the easiest template");
        } else if g < 14 {
            assert!(
                at < 3,
                "day {g}: the medium pool is the three easiest, got {at}"
            );
        } else {
            late.insert(at);
        }
    }
    assert!(
        late.iter().any(|&a| a >= 3),
        "the full pool's hardest two appear after day 14: {late:?}"
    );
    // The pool is the seed's, whatever the run's seed.
    let other = HsEnv::new(config(Profile::Reference, 2, 99, curriculum([6, 14])));
    assert_eq!(other.arrival_pool(), &pool[..]);
}

#[test]
fn fresh_templates_change_day_by_day_and_twins_share_them() {
    let mut cfg = config(Profile::Clean, 4, 11, ArrivalPeaks::FreshTemplate);
    cfg.twins = true;
    let (days, env) = play(cfg, 3);
    assert!(env.arrival_pool().is_empty());
    let factual: Vec<_> = days.iter().filter(|(i, _)| i % 2 == 0).collect();
    let distinct: std::collections::BTreeSet<_> =
        factual.iter().map(|(_, s)| s.peaks.peaks).collect();
    assert_eq!(distinct.len(), factual.len(), "a fresh template every day");
    for (i, s) in &factual {
        let twin = days
            .iter()
            .find(|(j, t)| *j == i + 1 && t.day == s.day)
            .expect("the twin's day");
        assert_eq!(twin.1.peaks, s.peaks, "hospital {i} day {}", s.day);
        for (a, b) in s.peaks.peaks {
            assert!((30..=120).contains(&(b - a)), "{:?}", s.peaks);
        }
    }
    // Clean twins have the same arrival times (the swap changes impairments only).
    for p in 0..300 {
        assert_eq!(env.instance(0).arrival(p), env.instance(1).arrival(p));
    }
}

#[test]
fn curriculum_runs_are_thread_invariant_and_differ_from_the_single_peak() {
    for profile in Profile::ALL {
        let cfg = || config(profile, 7, 3, curriculum([4, 8]));
        let one = run_uniform(cfg(), 2, 1);
        let four = run_uniform(cfg(), 2, 4);
        assert_eq!(one.hash, four.hash, "{profile}");
        let single = run_uniform(config(profile, 7, 3, ArrivalPeaks::SingleRandom), 2, 1);
        assert_ne!(one.hash, single.hash, "{profile}: the template must matter");
        let fresh = run_uniform(config(profile, 7, 3, ArrivalPeaks::FreshTemplate), 2, 1);
        assert_ne!(one.hash, fresh.hash, "{profile}");
    }
}

#[test]
fn a_curriculum_snapshot_restores_and_continues_exactly() {
    let cfg = config(Profile::Reference, 3, 21, curriculum([2, 4]));
    let n = 3;
    let pool = WorkerPool::new(2);
    let mut policy = RandomPolicy::new(21, n, false);
    let mut actions = HsActions::new(n, &cfg.params);
    let mut env = HsEnv::new(cfg);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let step = |env: &mut HsEnv,
                policy: &mut RandomPolicy,
                actions: &mut HsActions,
                round: &mut HsRound,
                k: usize| {
        let mut h = TrajectoryHash::new();
        for _ in 0..k {
            policy.fill(round, actions);
            env.step(actions, round, &pool);
            round.hash_into(&mut h);
        }
        h.hex()
    };
    step(&mut env, &mut policy, &mut actions, &mut round, 4_000);
    let json = serde_json::to_string(&env.snapshot()).unwrap();
    let snap: HsSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snap.config.arrivals, curriculum([2, 4]));
    let mut restored = HsEnv::restore(snap);
    assert_eq!(restored.arrival_pool(), env.arrival_pool());
    let (mut p2, mut a2, mut r2) = (policy.clone(), actions.clone(), round.clone());
    let never = step(&mut env, &mut policy, &mut actions, &mut round, 6_000);
    let again = step(&mut restored, &mut p2, &mut a2, &mut r2, 6_000);
    assert_eq!(never, again);
}

#[test]
fn a_snapshot_without_arrivals_reads_as_the_single_random_peak() {
    let env = HsEnv::new(config(Profile::Reference, 2, 1, ArrivalPeaks::SingleRandom));
    let mut v = serde_json::to_value(env.snapshot()).unwrap();
    let cfg = v["config"].as_object_mut().unwrap();
    assert!(cfg.remove("arrivals").is_some());
    let snap: HsSnapshot = serde_json::from_value(v).unwrap();
    assert_eq!(snap.config.arrivals, ArrivalPeaks::SingleRandom);
    // The single random peak is recorded too: one interval, the second empty.
    let s = *env.instance(0).stats();
    assert_eq!(s.peaks.peaks[1], (0, 0));
    assert_ne!(s.peaks, ArrivalTemplate::default());
}
