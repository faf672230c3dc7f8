//! Guarantees for the `cpu-gemm` executor (the matrix products through the `gemm` crate):
//! - over the GPU comparison's shape table (batch 1, 7, 64, 1000, 65537; widths 1, 9, 64, 256;
//!   grouped and not; every activation) its MLP forward, input gradients and weight gradients
//!   agree with the CPU twins within the tolerances written beside each comparison, and the
//!   paper's network (10 → 256 → 128 → 64 → 9) at the trainer's 256- and 320-row batches too;
//! - its results are the same bits on 1, 2 and 3 threads, for every case of that table and for
//!   a whole actor-critic after 10 Adam steps (grouped heads, and a shared trunk), and the same
//!   bits run to run;
//! - driven through the same `ActorCritic` interface it agrees with the twins on sampled
//!   actions, values, loss statistics and parameters after 10 steps, and its accumulate mode
//!   (the reference baselines' one step per update) leaves the parameters alone until the step;
//! - the model-FLOP counter counts 2 × rows × inputs × outputs per dense launch.

mod common;

use common::minibatch::{data, minibatch, train_10};
use common::{assert_close, integers, uniform};
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, BufferId, CpuExecutor, Executor, ExecutorExt,
    GemmExecutor, GemmPool, PpoHyper, Program, SampleKey,
};

fn pool(threads: usize) -> GemmPool {
    GemmPool::new(threads).expect("pool")
}

struct MlpCase {
    rows: u32,
    widths: &'static [u32],
    groups: u32,
    hidden: Activation,
}

/// What an MLP case produces: every layer's output, the parameter gradients and the input
/// gradient.
#[derive(PartialEq)]
struct Out {
    ys: Vec<Vec<f32>>,
    grads: Vec<f32>,
    dx0: Vec<f32>,
}

fn run_mlp<E: Executor>(case: &MlpCase, make: impl Fn(Program) -> E) -> Out {
    let spec = MlpSpec {
        widths: case.widths.to_vec(),
        hidden_activation: case.hidden,
        output_activation: Activation::Tanh,
        group_count: case.groups,
    };
    let place = MlpPlacement::new(spec.clone(), 3, case.rows);
    let rows = case.rows as usize;
    let mut prog = Program::new();
    let input = prog.buffer("x", rows * spec.input_width() as usize);
    let params = prog.buffer("params", 3 + spec.param_len() as usize);
    let grads = prog.buffer("grads", 3 + spec.param_len() as usize);
    let groups = prog.buffer("groups", rows);
    let dy = prog.buffer("dy", rows * spec.output_width() as usize);
    let bufs = place.declare_buffers(&mut prog, "net", input, true);
    let seq = prog.sequence();
    place.record_forward(&mut prog, seq, params, groups, &bufs);
    place.record_backward(&mut prog, seq, params, grads, groups, &bufs, dy);
    let mut p = vec![0.0; 3];
    p.extend(spec.init_params(5));
    let mut e = make(prog);
    e.write(
        input,
        &uniform(1, rows * spec.input_width() as usize, -2.0, 2.0),
    )
    .unwrap();
    e.write(params, &p).unwrap();
    e.write(groups, &integers(2, rows, case.groups)).unwrap();
    e.write(
        dy,
        &uniform(3, rows * spec.output_width() as usize, -1.0, 1.0),
    )
    .unwrap();
    e.run(seq).unwrap();
    let read = |e: &mut E, b: BufferId| e.read::<f32>(b).unwrap();
    Out {
        ys: bufs.activations[1..]
            .iter()
            .map(|&b| read(&mut e, b))
            .collect(),
        grads: read(&mut e, grads),
        dx0: read(&mut e, bufs.activation_grads[0].unwrap()),
    }
}

const CASES: &[MlpCase] = &[
    MlpCase {
        rows: 1,
        widths: &[9, 1],
        groups: 1,
        hidden: Activation::LeakyRelu,
    },
    MlpCase {
        rows: 7,
        widths: &[1, 9, 64],
        groups: 1,
        hidden: Activation::Relu,
    },
    MlpCase {
        rows: 64,
        widths: &[64, 256, 9],
        groups: 2,
        hidden: Activation::LeakyRelu,
    },
    MlpCase {
        rows: 1000,
        widths: &[9, 64, 64, 1],
        groups: 3,
        hidden: Activation::Tanh,
    },
    MlpCase {
        rows: 1000,
        widths: &[10, 256, 128, 64, 9],
        groups: 1,
        hidden: Activation::LeakyRelu,
    },
    MlpCase {
        rows: 256,
        widths: &[10, 256, 128, 64, 9],
        groups: 1,
        hidden: Activation::LeakyRelu,
    },
    MlpCase {
        rows: 320,
        widths: &[10, 256, 128, 64, 1],
        groups: 2,
        hidden: Activation::LeakyRelu,
    },
    MlpCase {
        rows: 65537,
        widths: &[9, 256],
        groups: 1,
        hidden: Activation::Identity,
    },
    MlpCase {
        rows: 65537,
        widths: &[1, 9, 1],
        groups: 2,
        hidden: Activation::LeakyRelu,
    },
];

#[test]
fn mlp_forward_and_backward_match_the_twins_and_are_thread_invariant() {
    for case in CASES {
        let name = format!(
            "rows {} widths {:?} groups {}",
            case.rows, case.widths, case.groups
        );
        let twin = run_mlp(case, CpuExecutor::new);
        let g2 = run_mlp(case, |p| GemmExecutor::new(p, pool(2)));
        // The twins sum in the shaders' order with separate multiplies and adds; gemm sums in
        // its own blocks with fused multiply-adds. Each output is a sum of at most 256 terms of
        // magnitude ≤ 2: ~1e-5 relative plus an absolute floor for sums that cancel.
        for (l, (a, b)) in g2.ys.iter().zip(&twin.ys).enumerate() {
            assert_close(&format!("{name}: y{}", l + 1), a, b, 2e-5, 1e-4);
        }
        assert_close(&format!("{name}: dx0"), &g2.dx0, &twin.dx0, 2e-5, 1e-4);
        // Weight gradients sum up to 65537 products (the twins in 32 splits, gemm in its own
        // blocks): the same bound as the GPU's against the twins.
        assert_close(
            &format!("{name}: grads"),
            &g2.grads,
            &twin.grads,
            1e-3,
            1e-3,
        );
        for threads in [1, 3] {
            let other = run_mlp(case, |p| GemmExecutor::new(p, pool(threads)));
            assert!(
                other == g2,
                "{name}: {threads} threads gave other bits than 2"
            );
        }
        assert!(
            run_mlp(case, |p| GemmExecutor::new(p, pool(2))) == g2,
            "{name}: two runs on 2 threads differ"
        );
    }
}

#[test]
fn the_flop_counter_counts_every_dense_launch() {
    // One case at a time in this binary: other tests run beside it, so count a difference
    // that only this test's launches can make large, and compare with a lower bound of it.
    let case = &CASES[5];
    let before = fairground_shaders::program::executed_flops();
    let _ = run_mlp(case, |p| GemmExecutor::new(p, pool(1)));
    let counted = fairground_shaders::program::executed_flops() - before;
    // Forward, input gradient of layers 1.., weight gradient: 3 products per layer, less the
    // first layer's input gradient (requested here, so 3 for all).
    let macs: u64 = case
        .widths
        .windows(2)
        .map(|w| w[0] as u64 * w[1] as u64)
        .sum::<u64>()
        * case.rows as u64;
    assert!(
        counted >= 3 * 2 * macs,
        "counted {counted} FLOPs, the launches need {}",
        6 * macs
    );
}

fn spec(batch: u32, trunk: Vec<u32>, hidden: Vec<u32>) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: 10,
        trunk,
        hidden,
        action_components: vec![9, 3],
        group_count: 2,
        hidden_activation: Activation::LeakyRelu,
        batch,
        use_masks: true,
    }
}

fn specs(batch: u32) -> [ActorCriticSpec; 3] {
    [
        spec(batch, vec![], vec![64, 32]),
        spec(batch, vec![48, 32], vec![]),
        spec(batch, vec![], vec![256, 128, 64]),
    ]
}

fn hyper(accumulate: bool) -> PpoHyper {
    PpoHyper {
        clip_vloss: true,
        max_grad_norm: 0.5,
        loss_scale: 1.25,
        accumulate,
        ..PpoHyper::default()
    }
}

const KEY: SampleKey = SampleKey {
    seed: 99,
    iteration: 1,
    step: 2,
    agent_offset: 0,
};

#[test]
fn actor_critic_agrees_with_the_twins_and_is_thread_invariant() {
    for batch in [7u32, 256, 1000] {
        for s in specs(batch) {
            let name = format!("batch {batch} trunk {:?} hidden {:?}", s.trunk, s.hidden);
            let d = data(&s);
            let p0 = s.init_params(7);
            let mut twin =
                ActorCritic::new(s.clone(), hyper(false), &p0, |p| Ok(CpuExecutor::new(p)))
                    .unwrap();
            let gemm = |threads: usize| {
                ActorCritic::new(s.clone(), hyper(false), &p0, |p| {
                    Ok(GemmExecutor::new(p, pool(threads)))
                })
                .unwrap()
            };
            let mut g = gemm(2);
            let ta = twin.act(&d.obs, &d.groups, &d.masks, KEY).unwrap();
            let ga = g.act(&d.obs, &d.groups, &d.masks, KEY).unwrap();
            let same = ga
                .actions
                .iter()
                .zip(&ta.actions)
                .filter(|(a, b)| a == b)
                .count();
            assert!(
                same * 1000 >= ga.actions.len() * 999,
                "{name}: {same} of {} actions agree",
                ga.actions.len()
            );
            assert_close(
                &format!("{name}: values"),
                &ga.values,
                &ta.values,
                1e-5,
                1e-4,
            );
            let tp = train_10(&mut twin, &d);
            let gp = train_10(&mut g, &d);
            let (ts, gs) = (twin.loss_stats().unwrap(), g.loss_stats().unwrap());
            let stats = |s: fairground_shaders::LossStats| {
                [
                    s.policy_loss,
                    s.value_loss,
                    s.entropy,
                    s.approx_kl,
                    s.clip_fraction,
                ]
            };
            assert_close(&format!("{name}: loss"), &stats(gs), &stats(ts), 1e-4, 1e-3);
            // As the GPU against the twins: ten Adam steps of lr 5e-4 move a parameter by
            // ~5e-3 at most, and rounding changes each step by far less than a step.
            assert_close(&format!("{name}: params"), &gp, &tp, 1e-4, 0.0);
            assert_ne!(gp, p0, "{name}: training moved the parameters");
            for threads in [1, 3] {
                let mut other = gemm(threads);
                let oa = other.act(&d.obs, &d.groups, &d.masks, KEY).unwrap();
                assert_eq!(
                    oa.actions, ga.actions,
                    "{name}: actions on {threads} threads"
                );
                assert!(
                    oa.values
                        .iter()
                        .map(|v| v.to_bits())
                        .eq(ga.values.iter().map(|v| v.to_bits())),
                    "{name}: values on {threads} threads"
                );
                let op = train_10(&mut other, &d);
                assert!(
                    op.iter()
                        .map(|v| v.to_bits())
                        .eq(gp.iter().map(|v| v.to_bits())),
                    "{name}: parameters after 10 steps on {threads} threads differ from 2"
                );
            }
        }
    }
}

#[test]
fn accumulate_mode_moves_nothing_until_the_step() {
    let s = spec(64, vec![], vec![64, 32]);
    let d = data(&s);
    let p0 = s.init_params(11);
    let mut ac = ActorCritic::new(s.clone(), hyper(true), &p0, |p| {
        Ok(GemmExecutor::new(p, pool(2)))
    })
    .unwrap();
    let mut twin =
        ActorCritic::new(s.clone(), hyper(true), &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
    let mb = minibatch(&d);
    for _ in 0..2 {
        ac.train_minibatch(&mb).unwrap();
        twin.train_minibatch(&mb).unwrap();
    }
    assert_eq!(
        ac.params().unwrap(),
        p0,
        "accumulating launches moved parameters"
    );
    ac.apply_accumulated(2).unwrap();
    twin.apply_accumulated(2).unwrap();
    let (a, b) = (ac.params().unwrap(), twin.params().unwrap());
    assert_ne!(a, p0, "the accumulated step moved nothing");
    assert_close("accumulated step", &a, &b, 1e-5, 0.0);
}
