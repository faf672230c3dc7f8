//! HospitalSim kernel throughput: decision rounds of 64 instances on one thread under uniform
//! random actions, per profile. Elements = decisions (one per instance per round; a 12-hour
//! reference day has ~3,800 decisions, a clean one ~2,000). Only `HsEnv::step` is timed, not
//! drawing the random actions (same as `fairground bench env --env hs`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fairground_kernel::Profile;
use fairground_kernel::hs::{HsActions, HsConfig, HsEnv, HsRound, RandomPolicy};
use fairground_kernel::pool::WorkerPool;
use std::hint::black_box;
use std::time::{Duration, Instant};

const INSTANCES: usize = 64;
const ROUNDS: u64 = 500;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel_hs");
    group.throughput(Throughput::Elements(ROUNDS * INSTANCES as u64));
    for profile in Profile::ALL {
        let config = HsConfig::new(INSTANCES as u32, 1, profile);
        let pool = WorkerPool::new(1);
        let mut policy = RandomPolicy::new(1, INSTANCES, false);
        let mut actions = HsActions::new(INSTANCES, &config.params);
        let mut env = HsEnv::new(config);
        let mut round = HsRound::new(INSTANCES);
        env.observe(&mut round);
        group.bench_function(format!("{profile}/64_instances_x_{ROUNDS}_rounds"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..ROUNDS {
                        policy.fill(&round, &mut actions);
                        let t0 = Instant::now();
                        env.step(&actions, &mut round, &pool);
                        timed += t0.elapsed();
                    }
                }
                black_box(&round.reward);
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
