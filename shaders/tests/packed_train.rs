//! Guarantees (issue 16's packed runs, docs/packing.md): a [`PackedActorCritic`] of K sets of
//! one spec, trained on K minibatches per call, leaves every set with the same bits as that
//! set's own [`ActorCritic`] trained alone on its minibatch: parameters, gradients, Adam
//! moments and counters, and loss statistics, after several steps that include a short last
//! minibatch (padding rows inside the set's splits). Acting set g gives the bits set g's
//! actor-critic alone gives. A set restored from its checkpoint continues as it would have.
//!
//! The cases: the AH shape (separate policy and value networks, the paper's widths), the HS
//! shape (a shared trunk, two action components, masks, value clipping) with a batch whose
//! split size leaves padding between sets, and accumulate mode (one Adam step on the mean of
//! several minibatches). With gradient clipping on, so each set's own norm matters. Backends:
//! the CPU twins, `cpu-gemm` on 1 and 2 threads, and the GPU where a driver exists (a loud skip
//! otherwise). Bad packings are refused with one line naming the field.

mod common;

use common::{gpu, integers, uniform};
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, CpuExecutor, Executor, GemmExecutor, GemmPool,
    GpuExecutor, LossStats, Minibatch, OptimizerState, PackedActorCritic, Packing, PpoHyper,
    Program, SampleKey,
};

struct Case {
    name: &'static str,
    spec: ActorCriticSpec,
    hyper: PpoHyper,
    sets: u32,
    set_rows: u32,
    /// Rows of each training call, in order (every set the same).
    steps: &'static [u32],
    /// Accumulate mode: an Adam step after this many calls.
    apply_every: Option<u32>,
}

fn cases() -> Vec<Case> {
    let clip = PpoHyper {
        max_grad_norm: 0.5,
        ..PpoHyper::default()
    };
    vec![
        Case {
            name: "ah shape",
            spec: ActorCriticSpec {
                obs_width: 10,
                trunk: vec![],
                hidden: vec![256, 128, 64],
                action_components: vec![9],
                group_count: 1,
                hidden_activation: Activation::LeakyRelu,
                batch: 256,
                use_masks: false,
            },
            hyper: clip,
            sets: 3,
            set_rows: 256,
            steps: &[256, 256, 100],
            apply_every: None,
        },
        Case {
            name: "hs shape",
            spec: ActorCriticSpec {
                obs_width: 12,
                trunk: vec![32, 16],
                hidden: vec![],
                action_components: vec![9, 3],
                group_count: 1,
                hidden_activation: Activation::Relu,
                // 5 splits of 60 rows: 100-row sets start 120 rows apart.
                batch: 300,
                use_masks: true,
            },
            hyper: PpoHyper {
                clip_vloss: true,
                ..clip
            },
            sets: 4,
            set_rows: 100,
            steps: &[100, 37, 100],
            apply_every: None,
        },
        Case {
            name: "accumulate",
            spec: ActorCriticSpec {
                obs_width: 7,
                trunk: vec![],
                hidden: vec![16],
                action_components: vec![5],
                group_count: 1,
                hidden_activation: Activation::Tanh,
                // 2 splits of 50 rows: 3 sets of 100 rows packed keep them (a 300-row launch
                // of its own would split into 5 of 60).
                batch: 100,
                use_masks: false,
            },
            hyper: PpoHyper {
                accumulate: true,
                ..clip
            },
            sets: 3,
            set_rows: 100,
            steps: &[100, 100, 20, 100],
            apply_every: Some(2),
        },
    ]
}

/// One set's inputs of one training call.
struct Data {
    obs: Vec<f32>,
    masks: Vec<u32>,
    actions: Vec<u32>,
    old_logp: Vec<f32>,
    old_values: Vec<f32>,
    adv: Vec<f32>,
    adj: Vec<f32>,
    ret: Vec<f32>,
}

/// Seeded inputs of set `set`'s call `step`, `rows` rows; masked logits keep the stored
/// action allowed.
fn data(spec: &ActorCriticSpec, set: u32, step: u32, rows: u32) -> Data {
    let n = rows as usize;
    let key = 100 * set + 10 * step;
    let lw = spec.logit_width() as usize;
    let comps = &spec.action_components;
    let mut actions = Vec::with_capacity(n * comps.len());
    for (c, &size) in comps.iter().enumerate() {
        let a = integers(key + c as u32, n, size);
        actions.push(a);
    }
    let actions: Vec<u32> = (0..n)
        .flat_map(|r| actions.iter().map(move |a| a[r]))
        .collect();
    let mut masks = Vec::new();
    if spec.use_masks {
        masks = integers(key + 7, n * lw, 4)
            .into_iter()
            .map(|v| u32::from(v != 0))
            .collect();
        for r in 0..n {
            let mut off = 0usize;
            for (c, &size) in comps.iter().enumerate() {
                masks[r * lw + off + actions[r * comps.len() + c] as usize] = 1;
                off += size as usize;
            }
        }
    }
    Data {
        obs: uniform(key + 1, n * spec.obs_width as usize, -1.0, 1.0),
        masks,
        actions,
        old_logp: uniform(key + 2, n, -3.0, -1.0),
        old_values: uniform(key + 3, n, -0.5, 0.5),
        adv: uniform(key + 4, n, -1.0, 1.0),
        adj: uniform(key + 5, n, -0.1, 0.1),
        ret: uniform(key + 6, n, -1.0, 1.0),
    }
}

fn minibatch(d: &Data) -> Minibatch<'_> {
    Minibatch {
        obs: &d.obs,
        group_ids: &[],
        masks: &d.masks,
        actions: &d.actions,
        old_logp: &d.old_logp,
        old_values: &d.old_values,
        advantages: &d.adv,
        adv_adjust: &d.adj,
        returns: &d.ret,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// What a set ends with: parameters, gradients, both moments, Adam's counter and bias powers,
/// and the last call's loss statistics, all as bits.
#[derive(Debug, PartialEq)]
struct SetState {
    params: Vec<u32>,
    grads: Vec<u32>,
    moment1: Vec<u32>,
    moment2: Vec<u32>,
    adam: (u32, u32, u32),
    loss: [u32; 5],
}

impl SetState {
    fn new(params: &[f32], grads: &[f32], o: &OptimizerState, loss: &LossStats) -> Self {
        Self {
            params: bits(params),
            grads: bits(grads),
            moment1: bits(&o.moment1),
            moment2: bits(&o.moment2),
            adam: (
                o.adam.step,
                o.adam.beta1_pow.to_bits(),
                o.adam.beta2_pow.to_bits(),
            ),
            loss: loss_bits(loss),
        }
    }
}

fn key(set: u32) -> SampleKey {
    SampleKey {
        seed: 0x5EED_0000 + u64::from(set),
        iteration: 3,
        step: 1,
        agent_offset: 0,
    }
}

fn init(case: &Case, set: u32) -> Vec<f32> {
    case.spec.init_params(40 + u64::from(set))
}

/// Act observations of set `set` (the spec's batch rows, minus a few so the rows change).
fn act_data(case: &Case, set: u32) -> Data {
    data(&case.spec, set, 99, case.spec.batch - 3)
}

/// Each set trained alone: its final state and its first act's bits.
fn alone<E: Executor>(case: &Case, make: &impl Fn(Program) -> E) -> Vec<(SetState, Vec<u32>)> {
    (0..case.sets)
        .map(|g| {
            let mut ac = ActorCritic::new(case.spec.clone(), case.hyper, &init(case, g), |p| {
                Ok(make(p))
            })
            .expect("actor-critic");
            let a = act_data(case, g);
            let out = ac.act(&a.obs, &[], &a.masks, key(g)).expect("act");
            let acted = act_bits(&out);
            for (i, &rows) in case.steps.iter().enumerate() {
                let d = data(&case.spec, g, i as u32, rows);
                ac.train_minibatch(&minibatch(&d)).expect("train");
                if let Some(k) = case.apply_every
                    && (i as u32 + 1).is_multiple_of(k)
                {
                    ac.apply_accumulated(k).expect("apply");
                }
            }
            let state = SetState::new(
                &ac.params().expect("params"),
                &ac.grads().expect("grads"),
                &ac.optimizer_state().expect("state"),
                &ac.loss_stats().expect("stats"),
            );
            (state, acted)
        })
        .collect()
}

fn act_bits(out: &fairground_shaders::ActOutput) -> Vec<u32> {
    let mut v = out.actions.clone();
    for x in [&out.logp, &out.entropy, &out.values] {
        v.extend(bits(x));
    }
    v
}

fn loss_bits(s: &LossStats) -> [u32; 5] {
    [
        s.policy_loss.to_bits(),
        s.value_loss.to_bits(),
        s.approx_kl.to_bits(),
        s.clip_fraction.to_bits(),
        s.entropy.to_bits(),
    ]
}

fn packed_ac<E: Executor>(case: &Case, make: &impl Fn(Program) -> E) -> PackedActorCritic<E> {
    let params: Vec<f32> = (0..case.sets).flat_map(|g| init(case, g)).collect();
    let packing = Packing {
        sets: case.sets,
        set_rows: case.set_rows,
    };
    PackedActorCritic::new(case.spec.clone(), case.hyper, packing, &params, |p| {
        Ok(make(p))
    })
    .expect("packed actor-critic")
}

/// Training calls `from..` of every set, packed.
fn train_packed<E: Executor>(case: &Case, ac: &mut PackedActorCritic<E>, from: usize) {
    for (i, &rows) in case.steps.iter().enumerate().skip(from) {
        let d: Vec<Data> = (0..case.sets)
            .map(|g| data(&case.spec, g, i as u32, rows))
            .collect();
        let mbs: Vec<Minibatch<'_>> = d.iter().map(minibatch).collect();
        ac.train(&mbs).expect("packed train");
        if let Some(k) = case.apply_every
            && (i as u32 + 1).is_multiple_of(k)
        {
            ac.apply_accumulated(k).expect("apply");
        }
    }
}

fn packed_state<E: Executor>(ac: &mut PackedActorCritic<E>, g: u32) -> SetState {
    SetState::new(
        &ac.params(g).expect("params"),
        &ac.grads(g).expect("grads"),
        &ac.optimizer_state(g).expect("state"),
        &ac.loss_stats(g).expect("stats"),
    )
}

fn first_diff(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn check<E: Executor>(backend: &str, make: impl Fn(Program) -> E) {
    for case in cases() {
        let expected = alone(&case, &make);
        let mut ac = packed_ac(&case, &make);
        for g in 0..case.sets {
            let a = act_data(&case, g);
            let out = ac.act(g, &a.obs, &a.masks, key(g)).expect("packed act");
            assert!(
                act_bits(&out) == expected[g as usize].1,
                "{backend}: {}: set {g} acts differently packed",
                case.name
            );
        }
        train_packed(&case, &mut ac, 0);
        for g in 0..case.sets {
            let want = &expected[g as usize].0;
            assert!(
                want.grads.iter().any(|&b| f32::from_bits(b) != 0.0),
                "{backend}: {}: set {g} has gradients",
                case.name
            );
            let got = packed_state(&mut ac, g);
            for (what, w, p) in [
                ("parameters", &want.params, &got.params),
                ("gradients", &want.grads, &got.grads),
                ("moment1", &want.moment1, &got.moment1),
                ("moment2", &want.moment2, &got.moment2),
            ] {
                assert!(
                    w == p,
                    "{backend}: {}: set {g}'s {what} differ packed (first at {:?})",
                    case.name,
                    first_diff(w, p)
                );
            }
            assert_eq!(
                want.adam, got.adam,
                "{backend}: {}: set {g}'s Adam",
                case.name
            );
            assert_eq!(
                want.loss, got.loss,
                "{backend}: {}: set {g}'s loss",
                case.name
            );
        }
    }
}

#[test]
fn cpu_twins_packed_sets_train_as_alone() {
    check("cpu", CpuExecutor::new);
}

#[test]
fn cpu_gemm_packed_sets_train_as_alone() {
    for threads in [1, 2] {
        check("cpu-gemm", |p| {
            GemmExecutor::new(p, GemmPool::new(threads).expect("pool"))
        });
    }
}

#[test]
fn gpu_packed_sets_train_as_alone() {
    let Some(ctx) = gpu("gpu_packed_sets_train_as_alone") else {
        return;
    };
    check("gpu", |p| {
        GpuExecutor::new(ctx.clone(), p).expect("gpu executor")
    });
}

/// A set restored from its checkpoint into a fresh packed actor-critic (the others restored
/// too) continues with the same bits as the one that never stopped.
#[test]
fn restored_sets_continue_bit_identically() {
    let case = &cases()[1];
    let make = CpuExecutor::new;
    let mut whole = packed_ac(case, &make);
    train_packed(case, &mut whole, 0);
    let mut first = packed_ac(case, &make);
    let short = Case {
        steps: &case.steps[..1],
        name: case.name,
        spec: case.spec.clone(),
        ..*case
    };
    train_packed(&short, &mut first, 0);
    let mut resumed = packed_ac(case, &make);
    for g in 0..case.sets {
        let p = first.params(g).expect("params");
        let o = first.optimizer_state(g).expect("state");
        resumed.restore(g, &p, &o).expect("restore");
    }
    train_packed(case, &mut resumed, 1);
    for g in 0..case.sets {
        assert_eq!(
            packed_state(&mut whole, g),
            packed_state(&mut resumed, g),
            "set {g} after a restore"
        );
    }
}

/// Packings the bits cannot survive are refused with one line naming the field.
#[test]
fn bad_packings_are_refused_with_one_line() {
    let case = &cases()[0];
    let params: Vec<f32> = (0..case.sets).flat_map(|g| init(case, g)).collect();
    let refuse =
        |spec: ActorCriticSpec, hyper: PpoHyper, packing: Packing| match PackedActorCritic::new(
            spec,
            hyper,
            packing,
            &params,
            |p| Ok(CpuExecutor::new(p)),
        ) {
            Ok(_) => panic!("{packing:?} was accepted"),
            Err(e) => e.to_string(),
        };
    let ok = Packing {
        sets: case.sets,
        set_rows: case.set_rows,
    };
    let grouped = ActorCriticSpec {
        group_count: 2,
        ..case.spec.clone()
    };
    let pairwise = PpoHyper {
        pairwise_ratio: true,
        ..case.hyper
    };
    let refusals = [
        (
            refuse(case.spec.clone(), case.hyper, Packing { sets: 0, ..ok }),
            "sets is 0: allowed 1 or more",
        ),
        (
            refuse(
                case.spec.clone(),
                case.hyper,
                Packing {
                    set_rows: 257,
                    ..ok
                },
            ),
            "set_rows is 257: allowed 1 to 256",
        ),
        (refuse(grouped, case.hyper, ok), "group_count is 2"),
        (
            refuse(case.spec.clone(), pairwise, ok),
            "pairwise_ratio is on",
        ),
    ];
    for (e, want) in refusals {
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    // Minibatches of different sizes in one call.
    let mut ac = packed_ac(case, &CpuExecutor::new);
    let a = data(&case.spec, 0, 0, 10);
    let b = data(&case.spec, 1, 0, 11);
    let c = data(&case.spec, 2, 0, 10);
    let e = ac
        .train(&[minibatch(&a), minibatch(&b), minibatch(&c)])
        .expect_err("ragged call");
    assert!(e.to_string().contains("minibatch 1 has"), "{e}");
}
