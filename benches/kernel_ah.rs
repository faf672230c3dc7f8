//! Criterion bench `kernel_ah`: throughput of `AhEnv::step` in agent-steps (one element = one
//! agent acting once, observations included), for both profiles, 1 and 2 threads, at the issue's
//! size (256 instances × 40 agents). Actions are uniform random, drawn before timing.
//! See benches/README.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fairground_kernel::Profile;
use fairground_kernel::ah::{AhEnv, AhParams, StepOut};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};
use std::hint::black_box;

const INSTANCES: usize = 256;
/// Pre-drawn action sets cycled through, so the bench does not time the action RNG.
const ACTION_SETS: usize = 64;

fn kernel_ah(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel_ah");
    for profile in Profile::ALL {
        for threads in [1usize, 2] {
            let mut env = AhEnv::new(AhParams::new(profile), INSTANCES, 0).unwrap();
            let pool = WorkerPool::new(threads);
            let n = INSTANCES * env.agents();
            let mut rng = Stream::new(0, Purpose::RandomActions, &[]);
            let actions: Vec<Vec<u8>> = (0..ACTION_SETS)
                .map(|_| (0..n).map(|_| rng.below(9) as u8).collect())
                .collect();
            let mut obs = vec![0f32; env.obs_len()];
            let mut rewards = vec![0f32; n];
            let mut dones = vec![0u8; INSTANCES];
            let mut groups = vec![0u8; env.instances() * env.agents()];
            let mut prefs = vec![0u8; env.instances() * env.agents()];
            let mut k = 0;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(
                BenchmarkId::new(profile.name(), format!("{threads}_threads")),
                |b| {
                    b.iter(|| {
                        k = (k + 1) % ACTION_SETS;
                        env.step(
                            &actions[k],
                            StepOut {
                                obs: &mut obs,
                                rewards: &mut rewards,
                                dones: &mut dones,
                                groups: &mut groups,
                                prefs: &mut prefs,
                            },
                            &pool,
                        );
                        black_box(&obs);
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, kernel_ah);
criterion_main!(benches);
