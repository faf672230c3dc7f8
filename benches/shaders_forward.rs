//! Rollout step of the PPO compute core: upload observations, policy and value forward through
//! the reference's 10-256-128-64 MLPs, categorical sampling, read back actions, log-probs and
//! values. Throughput in rows (agent-steps) per second, gpu and cpu backends, batch 256 and 4096.

#[path = "shaders_common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fairground_shaders::{ActorCritic, CpuExecutor, GpuExecutor, PpoHyper, SampleKey};

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("shaders_forward");
    group.sample_size(10);
    for batch in [256u32, 4096] {
        let spec = common::reference_spec(batch);
        let params = spec.init_params(0);
        let obs = common::wave(batch as usize * 10, 0, 1.0);
        group.throughput(Throughput::Elements(u64::from(batch)));
        let mut step = 0u32;
        if let Some(ctx) = common::gpu() {
            let mut ac = ActorCritic::new(spec.clone(), PpoHyper::default(), &params, |p| {
                GpuExecutor::new(ctx, p)
            })
            .unwrap();
            group.bench_function(BenchmarkId::new("gpu", batch), |b| {
                b.iter(|| {
                    step += 1;
                    ac.act(
                        &obs,
                        &[],
                        &[],
                        SampleKey {
                            seed: 1,
                            iteration: 0,
                            step,
                            agent_offset: 0,
                        },
                    )
                    .unwrap()
                })
            });
        }
        let mut ac = ActorCritic::new(spec, PpoHyper::default(), &params, |p| {
            Ok(CpuExecutor::new(p))
        })
        .unwrap();
        group.bench_function(BenchmarkId::new("cpu", batch), |b| {
            b.iter(|| {
                step += 1;
                ac.act(
                    &obs,
                    &[],
                    &[],
                    SampleKey {
                        seed: 1,
                        iteration: 0,
                        step,
                        agent_offset: 0,
                    },
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
