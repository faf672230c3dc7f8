//! Guarantees: every kernel gives the same results on the GPU as its CPU twin, over a table of
//! shapes (batch 1, 7, 64, 1000, 65537; widths 1, 9, 64, 256; grouped and not), within the
//! tolerances written beside each comparison; sampling draws the same actions for the same keys
//! (away from CDF ties); the pairwise (reference HS) PPO loss matches its twin over batches 1, 7,
//! 64, 256 and 300; `gae_returns` matches bit for bit; batch 65537 exercises dispatches folded past 65535 workgroups per
//! dimension. Without an adapter these tests print a loud SKIPPED line (or fail under
//! FAIRGROUND_REQUIRE_GPU=1).

mod common;

use common::{assert_close, gpu, integers, uniform};
use fairground_shaders::cpu;
use fairground_shaders::layout::*;
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::ppo::{
    GaeBuffers, ReduceSpec, record_adam_update, record_group_reduce, record_normalize,
    reduce_partial_words,
};
use fairground_shaders::registry::Kernel;
use fairground_shaders::{Activation, CpuExecutor, Executor, ExecutorExt, GpuExecutor, Program};

/// Run the same program on both backends after the same setup; return (gpu, cpu) executors.
fn both(
    test: &str,
    program: Program,
    setup: impl Fn(&mut dyn Executor),
    seq: fairground_shaders::SeqId,
) -> Option<(GpuExecutor, CpuExecutor)> {
    let ctx = gpu(test)?;
    let mut g = GpuExecutor::new(ctx, program.clone()).expect("gpu executor");
    let mut c = CpuExecutor::new(program);
    setup(&mut g);
    setup(&mut c);
    g.run(seq).expect("gpu run");
    c.run(seq).expect("cpu run");
    Some((g, c))
}

fn read_f32(e: &mut dyn Executor, b: fairground_shaders::BufferId) -> Vec<f32> {
    e.read::<f32>(b).expect("read")
}

struct MlpCase {
    rows: u32,
    widths: &'static [u32],
    groups: u32,
    hidden: Activation,
    backward: bool,
}

fn check_mlp(case: &MlpCase) {
    let name = format!(
        "mlp rows {} widths {:?} groups {}",
        case.rows, case.widths, case.groups
    );
    let spec = MlpSpec {
        widths: case.widths.to_vec(),
        hidden_activation: case.hidden,
        output_activation: Activation::Tanh,
        group_count: case.groups,
    };
    // A non-zero offset, as for the value net after the policy net.
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
    if case.backward {
        place.record_backward(&mut prog, seq, params, grads, groups, &bufs, dy);
    }
    let x = uniform(1, rows * spec.input_width() as usize, -2.0, 2.0);
    let mut p = vec![0.0; 3];
    p.extend(spec.init_params(5));
    let gids = integers(2, rows, case.groups);
    let dyv = uniform(3, rows * spec.output_width() as usize, -1.0, 1.0);
    let Some((mut g, mut c)) = both(
        &name,
        prog,
        |e| {
            e.write(input, &x).unwrap();
            e.write(params, &p).unwrap();
            e.write(groups, &gids).unwrap();
            e.write(dy, &dyv).unwrap();
        },
        seq,
    ) else {
        return;
    };
    // Same summation order on both sides; the GPU may fuse multiply-adds (one rounding fewer
    // per term) and its tanh may differ by a few ulps, so allow ~1e-5 relative plus an absolute
    // floor for sums that cancel to near zero.
    for (l, &b) in bufs.activations.iter().enumerate().skip(1) {
        assert_close(
            &format!("{name}: y{l}"),
            &read_f32(&mut g, b),
            &read_f32(&mut c, b),
            2e-5,
            1e-4,
        );
    }
    if case.backward {
        // Gradients sum up to 65537 products in 32 fixed splits: the same order on both sides,
        // with per-term FMA differences growing with the number of terms, hence the looser
        // absolute floor.
        assert_close(
            &format!("{name}: grads"),
            &read_f32(&mut g, grads),
            &read_f32(&mut c, grads),
            1e-3,
            1e-3,
        );
        let dx0 = bufs.activation_grads[0].unwrap();
        assert_close(
            &format!("{name}: dx0"),
            &read_f32(&mut g, dx0),
            &read_f32(&mut c, dx0),
            2e-5,
            1e-4,
        );
    }
}

#[test]
fn mlp_forward_and_backward_match_the_cpu_twin() {
    let cases = [
        MlpCase {
            rows: 1,
            widths: &[9, 1],
            groups: 1,
            hidden: Activation::LeakyRelu,
            backward: true,
        },
        MlpCase {
            rows: 7,
            widths: &[1, 9, 64],
            groups: 1,
            hidden: Activation::Relu,
            backward: true,
        },
        MlpCase {
            rows: 64,
            widths: &[64, 256, 9],
            groups: 2,
            hidden: Activation::LeakyRelu,
            backward: true,
        },
        MlpCase {
            rows: 1000,
            widths: &[9, 64, 64, 1],
            groups: 3,
            hidden: Activation::Tanh,
            backward: true,
        },
        MlpCase {
            rows: 1000,
            widths: &[10, 256, 128, 64, 9],
            groups: 1,
            hidden: Activation::LeakyRelu,
            backward: true,
        },
        MlpCase {
            rows: 65537,
            widths: &[9, 256],
            groups: 1,
            hidden: Activation::Identity,
            backward: false,
        },
        MlpCase {
            rows: 65537,
            widths: &[1, 9, 1],
            groups: 2,
            hidden: Activation::LeakyRelu,
            backward: true,
        },
    ];
    for case in &cases {
        check_mlp(case);
    }
}

fn check_heads(rows: u32, components: &[u32], use_mask: bool) {
    let name = format!("heads rows {rows} components {components:?} masks {use_mask}");
    let n = rows as usize;
    let width: u32 = components.iter().sum();
    let n_comp = components.len();
    let mut prog = Program::new();
    let logits = prog.buffer("logits", n * width as usize);
    let masks = prog.buffer("masks", n * width as usize);
    let comps = prog.buffer("components", n_comp);
    let sampled = prog.buffer("sampled", n * n_comp);
    let sample_out = prog.buffer("sample_out", n * 2);
    let actions = prog.buffer("actions", n * n_comp);
    let eval_out = prog.buffer("eval_out", n * 2);
    let pgrad = prog.buffer("policy_grad", n * 2);
    let lgrad = prog.buffer("logit_grad", n * width as usize);
    let hp = HeadParams {
        rows,
        logit_width: width,
        component_count: n_comp as u32,
        use_mask: u32::from(use_mask),
        seed_lo: 0x1234_5678,
        seed_hi: 9,
        iteration: 3,
        step: 17,
        agent_offset: 40,
        ..HeadParams::default()
    };
    let seq = prog.sequence();
    prog.push(
        seq,
        Kernel::HeadSample,
        &hp,
        &[logits, masks, comps, sampled, sample_out],
        u64::from(rows),
    );
    prog.push(
        seq,
        Kernel::HeadEvaluate,
        &hp,
        &[logits, masks, comps, actions, eval_out],
        u64::from(rows),
    );
    let extra = prog.buffer("extra", n * width as usize);
    let lgrad2 = prog.buffer("logit_grad_extra", n * width as usize);
    prog.push(
        seq,
        Kernel::HeadBackward,
        &hp,
        &[logits, masks, comps, actions, pgrad, lgrad, extra],
        u64::from(rows),
    );
    // The same with a gradient per logit added (extra_grad).
    let hp2 = HeadParams {
        extra_grad: 1,
        ..hp
    };
    prog.push(
        seq,
        Kernel::HeadBackward,
        &hp2,
        &[logits, masks, comps, actions, pgrad, lgrad2, extra],
        u64::from(rows),
    );
    let z = uniform(10, n * width as usize, -3.0, 3.0);
    // Every component keeps at least its first logit allowed.
    let mut m = integers(11, n * width as usize, 4)
        .iter()
        .map(|&v| u32::from(v != 0))
        .collect::<Vec<_>>();
    for r in 0..n {
        let mut start = 0;
        for &s in components {
            m[r * width as usize + start] = 1;
            start += s as usize;
        }
    }
    let picks: Vec<Vec<u32>> = components
        .iter()
        .enumerate()
        .map(|(c, &s)| integers(12 + c as u32, n, s))
        .collect();
    let mut acts = Vec::with_capacity(n * n_comp);
    for r in 0..n {
        let mut start = 0;
        for (c, &s) in components.iter().enumerate() {
            // a stored action that is allowed: the first allowed one at or after a random index
            let k = picks[c][r] as usize;
            let a = (k..s as usize)
                .chain(0..k)
                .find(|&j| !use_mask || m[r * width as usize + start + j] != 0)
                .expect("one allowed");
            acts.push(a as u32);
            start += s as usize;
        }
    }
    let pg = uniform(13, n * 2, -1.0, 1.0);
    let ex = uniform(14, n * width as usize, -0.5, 0.5);
    let Some((mut g, mut c)) = both(
        &name,
        prog,
        |e| {
            e.write(logits, &z).unwrap();
            e.write(masks, &m).unwrap();
            e.write(comps, components).unwrap();
            e.write(actions, &acts).unwrap();
            e.write(pgrad, &pg).unwrap();
            e.write(extra, &ex).unwrap();
        },
        seq,
    ) else {
        return;
    };
    // extra_grad adds the given gradient to every allowed logit's, exactly (one f32 add).
    let (l1, l2) = (read_f32(&mut c, lgrad), read_f32(&mut c, lgrad2));
    for (i, ((&a, &b), &e)) in l1.iter().zip(&l2).zip(&ex).enumerate() {
        let want = if !use_mask || m[i] != 0 { a + e } else { 0.0 };
        assert_eq!(b, want, "{name}: extra at {i}");
    }
    assert_close(
        &format!("{name}: logit_grad with extra"),
        &read_f32(&mut g, lgrad2),
        &l2,
        1e-5,
        1e-5,
    );
    // log-softmax and entropy go through exp/log, whose GPU precision is a few ulps: 1e-5.
    assert_close(
        &format!("{name}: evaluate"),
        &read_f32(&mut g, eval_out),
        &read_f32(&mut c, eval_out),
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{name}: sample_out"),
        &read_f32(&mut g, sample_out),
        &read_f32(&mut c, sample_out),
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{name}: logit_grad"),
        &read_f32(&mut g, lgrad),
        &read_f32(&mut c, lgrad),
        1e-5,
        1e-5,
    );
    // Sampling: identical draws (integer Philox); the actions may differ only where u lies
    // within 1e-5 of a CDF boundary, which the exp rounding can move.
    let ga: Vec<u32> = g.read(sampled).unwrap();
    let ca: Vec<u32> = c.read(sampled).unwrap();
    let mut ties = 0;
    for r in 0..n {
        let mut start = 0usize;
        for (ci, &s) in components.iter().enumerate() {
            let i = r * n_comp + ci;
            if ga[i] != ca[i] {
                let u = cpu::sample_uniform(&hp, r as u32, ci as u32);
                let row = &z[r * width as usize + start..][..s as usize];
                let allowed = |j: usize| !use_mask || m[r * width as usize + start + j] != 0;
                let mx = (0..s as usize)
                    .filter(|&j| allowed(j))
                    .map(|j| row[j])
                    .fold(f32::MIN, f32::max);
                let total: f64 = (0..s as usize)
                    .filter(|&j| allowed(j))
                    .map(|j| f64::from(row[j] - mx).exp())
                    .sum();
                let mut cdf = 0.0f64;
                let mut near = false;
                for j in (0..s as usize).filter(|&j| allowed(j)) {
                    cdf += f64::from(row[j] - mx).exp() / total;
                    near |= (cdf - f64::from(u)).abs() < 1e-5;
                }
                assert!(
                    near,
                    "{name}: row {r} component {ci}: gpu {} cpu {} with u {u} far from a tie",
                    ga[i], ca[i]
                );
                ties += 1;
            }
            start += s as usize;
        }
    }
    assert!(
        ties * 1000 <= n * n_comp + 1000,
        "{name}: {ties} tie disagreements"
    );
}

#[test]
fn policy_heads_match_the_cpu_twin_and_sample_the_same_actions() {
    check_heads(1, &[9], false);
    check_heads(7, &[9], true);
    check_heads(64, &[3, 9, 1], true);
    check_heads(1000, &[64], false);
    check_heads(1000, &[256], true);
    check_heads(65537, &[9], false);
    check_heads(65537, &[2, 5], true);
}

#[test]
fn gae_matches_the_cpu_twin() {
    for (steps, agents) in [(1u32, 1u32), (64, 7), (200, 1000), (3, 65537)] {
        let name = format!("gae steps {steps} agents {agents}");
        let n = (steps * agents) as usize;
        let mut prog = Program::new();
        let b = GaeBuffers::declare(&mut prog, steps, agents);
        let seq = prog.sequence();
        b.record(
            &mut prog,
            seq,
            GaeParams {
                steps,
                agents,
                gamma: 0.99,
                gae_lambda: 0.95,
                ..Default::default()
            },
        );
        let r = uniform(20, n, -1.0, 1.0);
        let v = uniform(21, n, -2.0, 2.0);
        let d: Vec<f32> = integers(22, n, 10)
            .iter()
            .map(|&k| if k == 0 { 1.0 } else { 0.0 })
            .collect();
        let lv = uniform(23, agents as usize, -2.0, 2.0);
        let Some((mut g, mut c)) = both(
            &name,
            prog,
            |e| {
                e.write(b.rewards, &r).unwrap();
                e.write(b.values, &v).unwrap();
                e.write(b.dones, &d).unwrap();
                e.write(b.last_values, &lv).unwrap();
            },
            seq,
        ) else {
            return;
        };
        // A recurrence of up to 200 steps; FMA differences per step decay with gamma * lambda.
        assert_close(
            &format!("{name}: adv"),
            &read_f32(&mut g, b.advantages),
            &read_f32(&mut c, b.advantages),
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("{name}: ret"),
            &read_f32(&mut g, b.returns),
            &read_f32(&mut c, b.returns),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn gae_returns_match_the_cpu_twin_bit_for_bit() {
    // One f32 addition per row: no tolerance. (3, 65537) folds the dispatch past 65535
    // workgroups per dimension.
    for (steps, agents) in [(1u32, 1u32), (64, 7), (200, 1000), (3, 65537)] {
        let name = format!("gae_returns steps {steps} agents {agents}");
        let n = (steps * agents) as usize;
        let mut prog = Program::new();
        let b = GaeBuffers::declare(&mut prog, steps, agents);
        let seq = prog.sequence();
        b.record_returns(&mut prog, seq, steps, agents);
        let v = uniform(24, n, -2.0, 2.0);
        let a = uniform(25, n, -3.0, 3.0);
        let stale = uniform(26, n, -9.0, 9.0);
        let Some((mut g, mut c)) = both(
            &name,
            prog,
            |e| {
                e.write(b.values, &v).unwrap();
                e.write(b.advantages, &a).unwrap();
                e.write(b.returns, &stale).unwrap();
            },
            seq,
        ) else {
            return;
        };
        let want: Vec<f32> = a.iter().zip(&v).map(|(a, v)| a + v).collect();
        assert_eq!(read_f32(&mut g, b.returns), want, "{name}: gpu");
        assert_eq!(read_f32(&mut c, b.returns), want, "{name}: cpu");
        assert_eq!(
            read_f32(&mut g, b.advantages),
            a,
            "{name}: advantages untouched"
        );
    }
}

#[test]
fn group_reductions_and_normalisation_match_the_cpu_twin() {
    for (rows, groups) in [(1u32, 1u32), (7, 3), (1000, 1), (1000, 4), (65537, 2)] {
        let name = format!("reduce rows {rows} groups {groups}");
        let n = rows as usize;
        let mut prog = Program::new();
        let values = prog.buffer("values", n);
        let gids = prog.buffer("groups", n);
        let partial = prog.buffer("partial", reduce_partial_words(groups));
        let sums = prog.buffer("sums", 4 * groups as usize);
        let mean = prog.buffer("mean", 4 * groups as usize);
        let var = prog.buffer("var", 4 * groups as usize);
        let seq = prog.sequence();
        let spec = ReduceSpec {
            group_count: groups,
            use_groups: groups > 1,
            ..ReduceSpec::plain(rows)
        };
        record_group_reduce(&mut prog, seq, spec, values, gids, sums, partial, sums);
        record_normalize(&mut prog, seq, spec, values, gids, partial, mean, var);
        let v = uniform(30, n, -5.0, 7.0);
        let gv = integers(31, n, groups);
        let Some((mut g, mut c)) = both(
            &name,
            prog,
            |e| {
                e.write(values, &v).unwrap();
                e.write(gids, &gv).unwrap();
            },
            seq,
        ) else {
            return;
        };
        // Same fixed order on both sides; only FMA contraction in (v - c)^2 can differ.
        let gs: Vec<GroupStats> = g.read(sums).unwrap();
        let cs: Vec<GroupStats> = c.read(sums).unwrap();
        for k in 0..groups as usize {
            assert_eq!(gs[k].count, cs[k].count, "{name}: count");
            assert_eq!(
                gs[k].sum.to_bits(),
                cs[k].sum.to_bits(),
                "{name}: plain sums are bit-identical"
            );
        }
        assert_close(
            &format!("{name}: normalised"),
            &read_f32(&mut g, values),
            &read_f32(&mut c, values),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn ppo_loss_matches_the_cpu_twin() {
    for (rows, clip_vloss) in [(1u32, 0u32), (7, 1), (1000, 0), (65537, 1)] {
        check_ppo_loss(rows, clip_vloss, 0);
    }
}

/// The reference's HS pairwise surrogate (B x B ratios; every row loops over all rows).
#[test]
fn ppo_loss_pairwise_matches_the_cpu_twin() {
    for (rows, clip_vloss) in [(1u32, 0u32), (7, 1), (64, 0), (256, 1), (300, 0)] {
        check_ppo_loss(rows, clip_vloss, 1);
    }
}

fn check_ppo_loss(rows: u32, clip_vloss: u32, pairwise: u32) {
    let name = format!("ppo_loss rows {rows} clip_vloss {clip_vloss} pairwise {pairwise}");
    let n = rows as usize;
    let mut prog = Program::new();
    let ins: Vec<_> = [
        "policy_new",
        "values_new",
        "policy_old",
        "values_old",
        "adv",
        "adj",
        "ret",
    ]
    .iter()
    .enumerate()
    .map(|(k, s)| prog.buffer(*s, if k == 0 || k == 2 { 2 * n } else { n }))
    .collect();
    let pg = prog.buffer("policy_grad", 2 * n);
    let vg = prog.buffer("value_grad", n);
    let terms = prog.buffer("terms", 4 * n);
    let lp = LossParams {
        rows,
        clip_coef: 0.2,
        vf_coef: 0.5,
        ent_coef: 0.01,
        clip_vloss,
        loss_scale: 1.5,
        loss_norm: 1.0 / rows as f32,
        pairwise,
    };
    let seq = prog.sequence();
    let mut bufs = ins.clone();
    bufs.extend([pg, vg, terms]);
    prog.push(seq, Kernel::PpoLoss, &lp, &bufs, u64::from(rows));
    let data: Vec<Vec<f32>> = ins
        .iter()
        .enumerate()
        .map(|(k, _)| {
            let len = if k == 0 || k == 2 { 2 * n } else { n };
            let (lo, hi) = if k <= 2 { (-2.5, -1.5) } else { (-1.0, 1.0) };
            uniform(40 + k as u32, len, lo, hi)
        })
        .collect();
    let Some((mut g, mut c)) = both(
        &name,
        prog,
        |e| {
            for (b, d) in ins.iter().zip(&data) {
                e.write(*b, d).unwrap();
            }
        },
        seq,
    ) else {
        return;
    };
    // exp/log of the ratio: a few ulps on the GPU.
    for (what, b) in [("policy_grad", pg), ("value_grad", vg), ("terms", terms)] {
        assert_close(
            &format!("{name}: {what}"),
            &read_f32(&mut g, b),
            &read_f32(&mut c, b),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn adam_with_gradient_clipping_matches_the_cpu_twin() {
    // (parameters, max_grad_norm, parameter sets): the last is a packed network's Adam, each
    // set clipped by its own norm (its gradients scaled so the clip binds differently).
    for (count, max_norm, sets) in [
        (1u32, 0.0f32, 1u32),
        (1000, 0.5, 1),
        (65537, 1.0, 1),
        (3000, 0.3, 3),
    ] {
        let name = format!("adam params {count} max_grad_norm {max_norm} sets {sets}");
        let n = count as usize;
        let set_len = count / sets;
        let mut prog = Program::new();
        let params = prog.buffer("params", n);
        let grads = prog.buffer("grads", n);
        let m1 = prog.buffer("m1", n);
        let m2 = prog.buffer("m2", n);
        let state = prog.buffer("state", 4 * sets as usize);
        let partial = prog.buffer("partial", reduce_partial_words(1));
        let norm = prog.buffer("norm", 4 * sets as usize);
        let dummy = prog.buffer("dummy_groups", 1);
        let ap = AdamParams {
            param_count: count,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            max_grad_norm: max_norm,
            accumulate_mode: 0,
            accumulate_scale: 0.0,
            set_len: if sets > 1 { set_len } else { 0 },
            ..AdamParams::default()
        };
        let seq = prog.sequence();
        for _ in 0..3 {
            prog.push(seq, Kernel::AdamBegin, &ap, &[state], 1);
            for set in 0..sets {
                let spec = ReduceSpec {
                    mode: ReduceMode::Square,
                    value_offset: set * set_len,
                    output_offset: set,
                    ..ReduceSpec::plain(set_len)
                };
                record_group_reduce(&mut prog, seq, spec, grads, dummy, norm, partial, norm);
            }
            record_adam_update(&mut prog, seq, &ap, state, norm, params, grads, m1, m2);
        }
        let p0 = uniform(50, n, -1.0, 1.0);
        let gr: Vec<f32> = uniform(51, n, -0.1, 0.1)
            .iter()
            .enumerate()
            .map(|(i, g)| g * (1 + i / set_len as usize) as f32)
            .collect();
        let initial = vec![AdamState::INITIAL; sets as usize];
        let Some((mut g, mut c)) = both(
            &name,
            prog,
            |e| {
                e.write(params, &p0).unwrap();
                e.write(grads, &gr).unwrap();
                e.write(state, &initial).unwrap();
            },
            seq,
        ) else {
            return;
        };
        let gs: Vec<AdamState> = g.read(state).unwrap();
        let cs: Vec<AdamState> = c.read(state).unwrap();
        assert_eq!(gs, cs, "{name}: running powers are exact f32 products");
        assert!(gs.iter().all(|s| s.step == 3), "{name}: every set stepped");
        if sets > 1 {
            // The clip binds differently in each set, and so moves each set differently.
            let cn: Vec<GroupStats> = c.read(norm).unwrap();
            let norms: Vec<f32> = cn.iter().map(|s| s.sum.sqrt()).collect();
            assert!(
                norms.iter().all(|&v| v > max_norm) && norms[0] < norms[1],
                "{name}: each set's own norm, clipped: {norms:?}"
            );
        }
        // sqrt and division may be a few ulps off on the GPU; each step moves a parameter by
        // about lr = 1e-3, so 1e-6 absolute is ~1e-3 of a step.
        assert_close(
            &format!("{name}: params"),
            &read_f32(&mut g, params),
            &read_f32(&mut c, params),
            1e-6,
            1e-6,
        );
        assert_close(
            &format!("{name}: m2"),
            &read_f32(&mut g, m2),
            &read_f32(&mut c, m2),
            1e-9,
            1e-5,
        );
    }
}

#[test]
fn gradient_accumulation_matches_the_cpu_twin_bit_for_bit() {
    for count in [1u32, 1000, 65537] {
        let name = format!("grad_accumulate params {count}");
        let n = count as usize;
        let mut prog = Program::new();
        let grads = prog.buffer("grads", n);
        let acc = prog.buffer("acc", n);
        let add = AdamParams {
            param_count: count,
            ..AdamParams::default()
        };
        let mean = AdamParams {
            accumulate_mode: 1,
            accumulate_scale: 0.25,
            ..add
        };
        let seq = prog.sequence();
        // Two minibatches' gradients added, then their mean written back and the sum cleared.
        for _ in 0..2 {
            prog.push_rows(
                seq,
                Kernel::GradAccumulate,
                &add,
                &[grads, acc],
                u64::from(count),
                &[1, 1],
            );
        }
        prog.push_rows(
            seq,
            Kernel::GradAccumulate,
            &mean,
            &[grads, acc],
            u64::from(count),
            &[1, 1],
        );
        let gr = uniform(52, n, -1.0, 1.0);
        let a0 = uniform(53, n, -1.0, 1.0);
        let Some((mut g, mut c)) = both(
            &name,
            prog,
            |e| {
                e.write(grads, &gr).unwrap();
                e.write(acc, &a0).unwrap();
            },
            seq,
        ) else {
            return;
        };
        // Additions and a power-of-two scale: exact on both.
        let (gg, cg) = (read_f32(&mut g, grads), read_f32(&mut c, grads));
        assert_eq!(gg, cg, "{name}: grads");
        let want: Vec<f32> = a0
            .iter()
            .zip(&gr)
            .map(|(a, x)| (a + x + x) * 0.25)
            .collect();
        assert_eq!(cg, want, "{name}: the twin by hand");
        assert!(
            read_f32(&mut g, acc).iter().all(|&v| v == 0.0),
            "{name}: cleared"
        );
    }
}
