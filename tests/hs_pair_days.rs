//! Guarantees for counterfactual pairs whose days end together (`PairDays::EitherEnds`, the
//! reference's CF scripts: both worlds step once per loop `while not done_w0 and not done_w1`):
//! - a pair's worlds end every day in the same round, on the same day number, so they start
//!   each next day together; one of them reached the end of the clock, the other stopped where
//!   it stood (`end_minute`), and under random play the cut is real (some days end early);
//! - until a pair's first day end its trajectory is the one of whole days (`PairDays::Full`):
//!   the mode changes only where days end;
//! - results are the same for any thread count, including splits that would fall inside a
//!   pair (odd pair counts), and a snapshot without the field reads as whole days;
//! - without twins the mode is refused.

use fairground_kernel::Profile;
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{
    HsActions, HsConfig, HsDayStats, HsEnv, HsRound, PairDays, RandomPolicy,
};
use fairground_kernel::pool::WorkerPool;

fn config(profile: Profile, pairs: u32, pair_days: PairDays) -> HsConfig {
    let mut c = HsConfig::new(2 * pairs, 17, profile);
    c.twins = true;
    c.pair_days = pair_days;
    c.params.n_patients = 60;
    c.params.sim_minutes = 240;
    c
}

/// Play until every instance has ended `days` days: every round's digest, and every day end
/// as (round, instance, statistics).
fn play(c: HsConfig, days: u32, threads: usize) -> (Vec<String>, Vec<(usize, usize, HsDayStats)>) {
    let n = c.instances as usize;
    let pool = WorkerPool::new(threads);
    let mut policy = RandomPolicy::new(c.seed, n, true);
    let mut actions = HsActions::new(n, &c.params);
    let mut env = HsEnv::new(c);
    let mut round = HsRound::new(n);
    env.observe(&mut round);
    let (mut digests, mut ends) = (Vec::new(), Vec::new());
    let mut ended = vec![0u32; n];
    let mut r = 0;
    while ended.iter().any(|&e| e < days) {
        policy.fill(&round, &mut actions);
        env.step(&actions, &mut round, &pool);
        let mut h = TrajectoryHash::new();
        round.hash_into(&mut h);
        digests.push(h.hex());
        for (i, e) in ended.iter_mut().enumerate() {
            if round.day_done[i] == 1 {
                *e += 1;
                ends.push((r, i, round.day_stats[i]));
            }
        }
        r += 1;
    }
    (digests, ends)
}

#[test]
fn a_pairs_days_end_together_one_cut_short() {
    for profile in Profile::ALL {
        let c = config(profile, 3, PairDays::EitherEnds);
        let sim_minutes = c.params.sim_minutes;
        let (_, ends) = play(c, 4, 2);
        let mut cut = 0;
        for pair in ends.chunks(2) {
            let [(ra, a, sa), (rb, b, sb)] = pair else {
                panic!("{profile}: an unpaired day end: {pair:?}")
            };
            // Day ends are listed in instance order within a round, so a pair's are adjacent.
            assert_eq!((ra, a / 2, sa.day), (rb, b / 2, sb.day), "{profile}");
            assert_eq!((a % 2, b % 2), (0, 1), "{profile}");
            assert!(
                sa.end_minute.max(sb.end_minute) >= sim_minutes,
                "{profile}: neither world reached the end: {} {}",
                sa.end_minute,
                sb.end_minute
            );
            assert!(sa.end_minute > 0 && sb.end_minute > 0, "{profile}");
            cut += usize::from(sa.end_minute.min(sb.end_minute) < sim_minutes);
        }
        assert!(
            cut > 0,
            "{profile}: no day was cut short over {} pair-days",
            ends.len() / 2
        );
    }
}

#[test]
fn until_a_day_ends_the_trajectory_is_the_whole_days_one() {
    for profile in Profile::ALL {
        let (whole, whole_ends) = play(config(profile, 2, PairDays::Full), 1, 1);
        let (either, either_ends) = play(config(profile, 2, PairDays::EitherEnds), 1, 1);
        let first_end = whole_ends[0].0.min(either_ends[0].0);
        assert_eq!(whole_ends[0].0, either_ends[0].0, "{profile}");
        assert_eq!(whole[..first_end], either[..first_end], "{profile}");
        // Whole days end at the clock's end.
        assert!(
            whole_ends.iter().all(|(_, _, s)| s.end_minute >= 240),
            "{profile}"
        );
    }
}

#[test]
fn thread_count_and_odd_pair_counts_change_nothing() {
    for profile in Profile::ALL {
        let one = play(config(profile, 3, PairDays::EitherEnds), 2, 1);
        for threads in [2, 4] {
            let other = play(config(profile, 3, PairDays::EitherEnds), 2, threads);
            assert_eq!(one.0, other.0, "{profile}: {threads} threads");
        }
    }
}

#[test]
fn old_snapshots_read_as_whole_days_and_twins_are_required() {
    let c = config(Profile::Reference, 1, PairDays::Full);
    let mut json = serde_json::to_value(&c).unwrap();
    json.as_object_mut().unwrap().remove("pair_days");
    let back: HsConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back.pair_days, PairDays::Full);
    let mut solo = config(Profile::Reference, 1, PairDays::EitherEnds);
    solo.twins = false;
    let refused = std::panic::catch_unwind(|| HsEnv::new(solo));
    assert!(refused.is_err(), "EitherEnds without twins was accepted");
}
