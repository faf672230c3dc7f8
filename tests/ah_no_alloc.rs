//! Guarantees: after construction, stepping AH instances allocates nothing — not on the hot
//! path, not at episode resets, not when the step is split over worker threads. A counting
//! global allocator counts every allocation of every thread during ≥ 10,000 steps of 64
//! instances.
//!
//! Runs without libtest (`harness = false` in Cargo.toml): libtest's main thread does its own
//! bookkeeping allocations while a test runs, and under CPU load those landed inside the counted
//! window (seen in CI-like runs: 4 small allocations, all on the harness's main thread). Without
//! the harness, every allocation in the process belongs to the code under test.

use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams, StepOut};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    stepping_allocates_nothing();
    println!(
        "ah_no_alloc: 10,000 steps × 64 instances allocate nothing (both profiles, 1 and 2 threads)"
    );
}

fn stepping_allocates_nothing() {
    const INSTANCES: usize = 64;
    const STEPS: u32 = 10_000;
    for profile in Profile::ALL {
        for threads in [1, 2] {
            let mut params = AhParams::new(profile);
            params.episode_steps = 1_000; // 9 resets inside the counted window
            params.flags.fixed_agent_order = threads == 1; // cover the shuffled order too
            let mut env = AhEnv::new(params, INSTANCES, 1).unwrap();
            let pool = WorkerPool::new(threads);
            let n = INSTANCES * env.agents();
            let mut obs = vec![0f32; env.obs_len()];
            let mut rewards = vec![0f32; n];
            let mut dones = vec![0u8; INSTANCES];
            let mut groups = vec![0u8; env.instances() * env.agents()];
            let mut prefs = vec![0u8; env.instances() * env.agents()];
            let mut actions = vec![0u8; n];
            let mut rng = Stream::new(1, Purpose::RandomActions, &[]);
            let mut resets = 0u32;
            // Warm up once (first use of the pool's threads), then count.
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
            let before = allocations();
            for _ in 0..STEPS {
                for a in actions.iter_mut() {
                    *a = rng.below(9) as u8;
                }
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
                resets += dones.iter().map(|&d| d as u32).sum::<u32>();
            }
            let after = allocations();
            assert_eq!(
                after - before,
                0,
                "{profile}, {threads} threads: allocations while stepping"
            );
            assert_eq!(
                resets,
                INSTANCES as u32 * 10,
                "the window covered episode resets"
            );
        }
    }
}
