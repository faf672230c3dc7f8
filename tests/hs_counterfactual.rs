//! Guarantees (counterfactual twins, spec §2.10 / §9.13): with `twins`, instances 2k and 2k+1
//! simulate the same day from the same streams. In the clean profile the twin has the same
//! arrival times, priorities and illnesses and every impairment swapped none <-> high (low
//! stays low), on every day (auto-reset included); the factual twin is exactly the instance a
//! non-twin run would have. In the reference profile the twin reproduces the reference's lost
//! schedule: identical attributes, independently drawn arrival times.

#![allow(clippy::needless_range_loop)] // indices address several parallel buffers

use fairground_kernel::Profile;
use fairground_kernel::hs::{HsActions, HsConfig, HsEnv, HsRound, RandomPolicy};
use fairground_kernel::pool::WorkerPool;

fn swapped(i: u8) -> u8 {
    match i {
        0 => 2,
        2 => 0,
        x => x,
    }
}

/// One day's patients of one instance: (arrival, impairment, priority, illness).
type Day = Vec<(u16, u8, u8, u8)>;

/// Run a twin env until every instance has started `days` days; return each instance's
/// schedule per day (captured when the day starts, also across auto-resets).
fn schedules(profile: Profile, pairs: u32, days: usize) -> Vec<Vec<Day>> {
    let mut config = HsConfig::new(2 * pairs, 31, profile);
    config.twins = true;
    let n = 2 * pairs as usize;
    let pool = WorkerPool::new(2);
    let mut policy = RandomPolicy::new(31, n, true);
    let mut actions = HsActions::new(n, &config.params);
    let mut env = HsEnv::new(config);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let capture = |env: &HsEnv, i: usize| -> Day {
        let v = env.instance(i);
        (0..env.config().params.n_patients as usize)
            .map(|p| (v.arrival(p), v.impairment(p), v.priority(p), v.illness(p)))
            .collect()
    };
    let mut out: Vec<Vec<Day>> = (0..n).map(|i| vec![capture(&env, i)]).collect();
    while out.iter().any(|d| d.len() < days) {
        policy.fill(&round, &mut actions);
        env.step(&actions, &mut round, &pool);
        for (i, days_i) in out.iter_mut().enumerate() {
            if round.day_done[i] == 1 {
                days_i.push(capture(&env, i));
            }
        }
    }
    out
}

#[test]
fn clean_twins_share_arrivals_and_swap_impairment() {
    let all = schedules(Profile::Clean, 3, 3);
    for pair in 0..3 {
        for day in 0..3 {
            let (f, c) = (&all[2 * pair][day], &all[2 * pair + 1][day]);
            let mut none = 0;
            for (a, b) in f.iter().zip(c) {
                assert_eq!((a.0, a.2, a.3), (b.0, b.2, b.3), "pair {pair} day {day}");
                assert_eq!(swapped(a.1), b.1, "pair {pair} day {day}");
                none += usize::from(a.1 == 0);
            }
            assert!(none > 0 && none < f.len(), "both impairment groups present");
        }
        assert_ne!(all[2 * pair][0], all[2 * pair][1], "days differ");
    }
}

#[test]
fn factual_twin_equals_the_plain_instance() {
    let mut config = HsConfig::new(4, 31, Profile::Clean);
    config.twins = true;
    let twins = HsEnv::new(config);
    let plain = HsEnv::new(HsConfig::new(2, 31, Profile::Clean));
    let n = plain.config().params.n_patients as usize;
    for k in 0..2 {
        let (a, b) = (twins.instance(2 * k), plain.instance(k));
        for p in 0..n {
            assert_eq!(
                (
                    a.arrival(p),
                    a.impairment(p),
                    a.priority(p),
                    a.illness(p),
                    a.status(p),
                    a.ledger(p)
                ),
                (
                    b.arrival(p),
                    b.impairment(p),
                    b.priority(p),
                    b.illness(p),
                    b.status(p),
                    b.ledger(p)
                )
            );
        }
        assert_eq!(a.clock(), b.clock());
    }
}

#[test]
fn reference_twins_reproduce_the_lost_schedule() {
    let all = schedules(Profile::Reference, 2, 2);
    for pair in 0..2 {
        for day in 0..2 {
            let (f, c) = (&all[2 * pair][day], &all[2 * pair + 1][day]);
            let mut same_arrivals = 0;
            for (a, b) in f.iter().zip(c) {
                assert_eq!(
                    (a.1, a.2, a.3),
                    (b.1, b.2, b.3),
                    "attributes must be identical"
                );
                same_arrivals += usize::from(a.0 == b.0);
            }
            assert!(
                same_arrivals < f.len(),
                "reference twin must draw its own arrival times"
            );
        }
    }
}
