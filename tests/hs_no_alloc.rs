//! Guarantees: after construction, stepping HospitalSim allocates nothing — over 20+ simulated
//! days per instance (day ends and auto-resets included) on a 2-thread pool, in both profiles,
//! with each source of arrival peaks (single random, the curriculum's pool, fresh templates),
//! and with counterfactual pairs whose days end together (`PairDays::EitherEnds`).
//! A counting `#[global_allocator]` (one per test binary, hence this file) checks it.

use fairground_kernel::Profile;
use fairground_kernel::hs::{
    ArrivalPeaks, Curriculum, HsActions, HsConfig, HsEnv, HsRound, PairDays, RandomPolicy,
};
use fairground_kernel::pool::WorkerPool;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs without libtest (`harness = false` in Cargo.toml): the allocator counts every thread, and
/// libtest's main thread does its own bookkeeping allocations while a test runs; under CPU load
/// those could land inside the measured window (observed: 4 allocations of 48 to 608 bytes, all
/// on the process's main thread, not on the test or pool threads). The pool's worker threads
/// are still counted.
fn main() {
    stepping_many_days_allocates_nothing();
    println!(
        "hs_no_alloc: stepping many days allocates nothing (both profiles, every arrival source, both pair-day modes)"
    );
}

fn stepping_many_days_allocates_nothing() {
    let sources = [
        ArrivalPeaks::SingleRandom,
        ArrivalPeaks::Curriculum(Curriculum {
            phase_days: [10, 40],
            ..Curriculum::default()
        }),
        ArrivalPeaks::FreshTemplate,
    ];
    let cases = Profile::ALL.into_iter().flat_map(|p| {
        sources.map(|a| (p, a, PairDays::Full)).into_iter().chain([(
            p,
            ArrivalPeaks::SingleRandom,
            PairDays::EitherEnds,
        )])
    });
    for (profile, arrivals, pair_days) in cases {
        let n = 6;
        let mut config = HsConfig::new(n as u32, 5, profile);
        config.twins = true;
        config.arrivals = arrivals;
        config.pair_days = pair_days;
        let pool = WorkerPool::new(2);
        let mut policy = RandomPolicy::new(5, n, true);
        let mut actions = HsActions::new(n, &config.params);
        let mut env = HsEnv::new(config);
        let mut round = HsRound::new(n);
        env.observe(&mut round);
        // Warm-up round (the pool's threads are already running).
        policy.fill(&round, &mut actions);
        env.step(&actions, &mut round, &pool);

        let before = allocations();
        let mut days = 0u32;
        while days < 20 * n as u32 {
            policy.fill(&round, &mut actions);
            env.step(&actions, &mut round, &pool);
            days += round.day_done.iter().map(|&d| d as u32).sum::<u32>();
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{profile} {arrivals:?} {pair_days:?}: {} allocations over {days} days",
            after - before
        );
    }
}
