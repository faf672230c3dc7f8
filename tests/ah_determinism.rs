//! Guarantees the AH determinism contract (ARCHITECTURE.md, "Invariants"):
//! - the same seed gives the same trajectory, run after run;
//! - results are bit-identical for any thread count;
//! - a committed golden hash per profile pins the exact trajectory of a fixed run;
//! - snapshot → serde → restore → continue equals never snapshotting;
//! - instance `i` plays the same game whatever the number of instances;
//! - a counterfactual twin shares every random stream with its factual world.

mod common;

use common::step;
use fairground::bench::env_ah::random_rollout;
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams, AhSnapshot, OBS_DIM, World, action};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};

fn short_episodes(profile: Profile) -> AhParams {
    let mut p = AhParams::new(profile);
    p.episode_steps = 150; // several auto-resets inside a test-sized run
    p
}

#[test]
fn same_seed_same_trajectory() {
    for profile in Profile::ALL {
        let a = random_rollout(short_episodes(profile), 8, 400, 11, 1).unwrap();
        let b = random_rollout(short_episodes(profile), 8, 400, 11, 1).unwrap();
        let c = random_rollout(short_episodes(profile), 8, 400, 12, 1).unwrap();
        assert_eq!(a.trajectory_hash, b.trajectory_hash, "{profile}");
        assert_ne!(
            a.trajectory_hash, c.trajectory_hash,
            "{profile}: the seed matters"
        );
    }
}

#[test]
fn thread_count_does_not_change_results() {
    for profile in Profile::ALL {
        // 37 instances: parts of unequal size for every thread count.
        let one = random_rollout(short_episodes(profile), 37, 320, 5, 1).unwrap();
        for threads in [2, 3, 4, 8] {
            let many = random_rollout(short_episodes(profile), 37, 320, 5, threads).unwrap();
            assert_eq!(
                one.trajectory_hash, many.trajectory_hash,
                "{profile}, {threads} threads"
            );
            assert_eq!(one.reward_sum, many.reward_sum);
        }
    }
}

/// Golden trajectories: 16 instances × 500 steps (150-step episodes, so resets are included),
/// seed 42. A failure prints the new hashes. Only if a change of the rules (or of the random
/// streams) is intended: run `cargo test --test ah_determinism golden`, paste the printed hashes
/// here, and say in the commit message why trajectories changed. Optimisations must never
/// change them.
#[test]
fn golden_hashes() {
    let cases = [
        (Profile::Reference, "d7cc90188164cf78"),
        (Profile::Clean, "9d46b225005a946b"),
    ];
    let mut failures = vec![];
    for (profile, golden) in cases {
        let got = random_rollout(short_episodes(profile), 16, 500, 42, 2)
            .unwrap()
            .trajectory_hash;
        if got != golden {
            failures.push(format!("{profile}: expected {golden}, got {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "golden trajectory hashes changed:\n{}",
        failures.join("\n")
    );
}

fn random_actions(rng: &mut Stream, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(9) as u8).collect()
}

#[test]
fn snapshot_restore_continue_equals_uninterrupted() {
    for profile in Profile::ALL {
        let pool = WorkerPool::new(2);
        let mut params = short_episodes(profile);
        params.episode_steps = 60;
        let mut env = AhEnv::new(params, 5, 3).unwrap();
        let mut rng = Stream::new(3, Purpose::RandomActions, &[]);
        let n = env.instances() * env.agents();
        for _ in 0..97 {
            step(&mut env, &random_actions(&mut rng, n), &pool);
        }
        let json = serde_json::to_string(&env.snapshot()).unwrap();
        let snap: AhSnapshot = serde_json::from_str(&json).unwrap();
        let mut restored = AhEnv::restore(snap).unwrap();
        let mut obs_a = vec![0f32; env.obs_len()];
        let mut obs_b = vec![0f32; env.obs_len()];
        env.observe(&mut obs_a);
        restored.observe(&mut obs_b);
        assert_eq!(obs_a, obs_b, "{profile}: observations right after restore");
        for t in 0..130 {
            let actions = random_actions(&mut rng, n);
            let a = step(&mut env, &actions, &pool);
            let b = step(&mut restored, &actions, &pool);
            assert!(a == b, "{profile}: diverged {t} steps after restore");
        }
        assert_eq!(env.snapshot(), restored.snapshot(), "{profile}");
    }
}

#[test]
fn instance_games_do_not_depend_on_instance_count() {
    let pool = WorkerPool::new(1);
    let params = short_episodes(Profile::Reference);
    let mut small = AhEnv::new(params.clone(), 2, 9).unwrap();
    let mut large = AhEnv::new(params, 5, 9).unwrap();
    let a = small.agents();
    let mut rng = Stream::new(9, Purpose::RandomActions, &[]);
    for _ in 0..200 {
        let big_actions = random_actions(&mut rng, 5 * a);
        let (obs_s, rew_s, _) = step(&mut small, &big_actions[..2 * a], &pool);
        let (obs_l, rew_l, _) = step(&mut large, &big_actions, &pool);
        assert_eq!(obs_s[..], obs_l[..2 * a * OBS_DIM]);
        assert_eq!(rew_s[..], rew_l[..2 * a]);
    }
}

#[test]
fn counterfactual_twin_shares_streams_and_flips_the_attribute() {
    let pool = WorkerPool::new(1);
    let params = AhParams::new(Profile::Clean);
    let mut factual = AhEnv::new(params, 3, 21).unwrap();
    let mut twin = factual.twin();
    assert_eq!(twin.world(), World::Counterfactual);
    let agents = factual.agents();
    let same_layout = |f: &AhEnv, t: &AhEnv| {
        for i in 0..3 {
            let (fi, ti) = (f.instance(i), t.instance(i));
            assert!(fi.bushes().eq(ti.bushes()), "bushes of instance {i}");
            for a in 0..agents {
                let (fa, ta) = (fi.agent(a), ti.agent(a));
                assert_eq!((fa.x, fa.y, fa.pref), (ta.x, ta.y, ta.pref));
                assert_eq!(fa.sensitive, !ta.sensitive, "attribute flipped");
            }
        }
    };
    same_layout(&factual, &twin);
    // Under "stay" nobody acts, so everything that happens is the bushes' own randomness
    // (growth, lifespan): identical in both worlds, across an episode boundary too.
    let stay = vec![action::STAY; 3 * agents];
    for _ in 0..3100 {
        step(&mut factual, &stay, &pool);
        step(&mut twin, &stay, &pool);
    }
    same_layout(&factual, &twin);
}
