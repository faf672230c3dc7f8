//! One PPO minibatch pass of the compute core: upload the minibatch, forward, head evaluation,
//! clipped loss, backward through both MLPs (10-256-128-64-{9,1}), Adam — waited for after each
//! step. Throughput in trained rows (agent-steps) per second, gpu and cpu backends, batch 256 and 4096.

#[path = "shaders_common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fairground_shaders::{ActorCritic, CpuExecutor, Executor, GpuExecutor, Minibatch, PpoHyper};

fn step<E: Executor>(ac: &mut ActorCritic<E>, mb: &Minibatch<'_>) {
    ac.train_minibatch(mb).unwrap();
    ac.finish().unwrap();
}

fn train(c: &mut Criterion) {
    let mut group = c.benchmark_group("shaders_train");
    group.sample_size(10);
    for batch in [256u32, 4096] {
        let n = batch as usize;
        let spec = common::reference_spec(batch);
        let params = spec.init_params(0);
        let obs = common::wave(n * 10, 0, 1.0);
        let actions: Vec<u32> = (0..batch).map(|k| (k * 7 + 3) % 9).collect();
        let old_logp: Vec<f32> = common::wave(n, 1, 0.1).iter().map(|v| v - 2.2).collect();
        let (old_values, adv, ret) = (
            common::wave(n, 2, 0.5),
            common::wave(n, 3, 1.0),
            common::wave(n, 4, 1.0),
        );
        let adj = vec![0.0; n];
        let mb = Minibatch {
            obs: &obs,
            group_ids: &[],
            masks: &[],
            actions: &actions,
            old_logp: &old_logp,
            old_values: &old_values,
            advantages: &adv,
            adv_adjust: &adj,
            returns: &ret,
        };
        group.throughput(Throughput::Elements(u64::from(batch)));
        if let Some(ctx) = common::gpu() {
            let mut ac = ActorCritic::new(spec.clone(), PpoHyper::default(), &params, |p| {
                GpuExecutor::new(ctx, p)
            })
            .unwrap();
            group.bench_function(BenchmarkId::new("gpu", batch), |b| {
                b.iter(|| step(&mut ac, &mb))
            });
        }
        let mut ac = ActorCritic::new(spec, PpoHyper::default(), &params, |p| {
            Ok(CpuExecutor::new(p))
        })
        .unwrap();
        group.bench_function(BenchmarkId::new("cpu", batch), |b| {
            b.iter(|| step(&mut ac, &mb))
        });
    }
    group.finish();
}

criterion_group!(benches, train);
criterion_main!(benches);
