//! Guarantees: on a device whose storage bindings are limited to 1 MiB, launches over buffers
//! larger than that run in chunks of rows (sub-range bindings at aligned offsets, several
//! dispatches per launch) and give the CPU twin's results within the same tolerances as
//! unchunked launches (gpu_vs_cpu.rs): dense forward, input and weight gradients (whose
//! fixed-split sums are unchanged by chunking), grouped or not; GAE (chunks of steps, latest
//! first, carrying the recursion; `gae_returns` in independent chunks of steps), a whole actor-critic step with and without a shared trunk
//! (whose heads' input gradients add up across chunks), group reductions and normalisation (chunks on split
//! boundaries) and Adam (chunks of parameters) give results bit-identical to the unchunked run
//! on the ordinary device; and a launch that cannot be chunked fails with the typed error.

mod common;

use common::{SMALL_BINDING, assert_close, gpu, gpu_small_bindings, integers, uniform};
use fairground_shaders::layout::{AdamParams, AdamState, GaeParams, GroupStats, ReduceMode};
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::ppo::{
    GaeBuffers, ReduceSpec, record_adam_update, record_group_reduce, record_normalize,
    reduce_partial_words,
};
use fairground_shaders::registry::Kernel;
use fairground_shaders::{
    Activation, CpuExecutor, Executor, ExecutorExt, GpuExecutor, Program, ShaderError,
};

fn check_chunked_mlp(rows: u32, widths: &[u32], groups: u32) {
    let name = format!("chunked mlp rows {rows} widths {widths:?} groups {groups}");
    let Some(ctx) = gpu_small_bindings(&name) else {
        return;
    };
    assert_eq!(ctx.limits.max_storage_buffer_binding_size, SMALL_BINDING);
    let spec = MlpSpec {
        widths: widths.to_vec(),
        hidden_activation: Activation::LeakyRelu,
        output_activation: Activation::Tanh,
        group_count: groups,
    };
    let place = MlpPlacement::new(spec.clone(), 3, rows);
    let n = rows as usize;
    let mut prog = Program::new();
    let input = prog.buffer("x", n * spec.input_width() as usize);
    let params = prog.buffer("params", 3 + spec.param_len() as usize);
    let grads = prog.buffer("grads", 3 + spec.param_len() as usize);
    let gids = prog.buffer("groups", n);
    let dy = prog.buffer("dy", n * spec.output_width() as usize);
    let bufs = place.declare_buffers(&mut prog, "net", input, true);
    let seq = prog.sequence();
    place.record_forward(&mut prog, seq, params, gids, &bufs);
    place.record_backward(&mut prog, seq, params, grads, gids, &bufs, dy);
    let launches = prog.ops(seq).len();
    let x = uniform(1, n * spec.input_width() as usize, -2.0, 2.0);
    let mut p = vec![0.0; 3];
    p.extend(spec.init_params(5));
    let g = integers(2, n, groups);
    let dyv = uniform(3, n * spec.output_width() as usize, -1.0, 1.0);
    let mut gpu = GpuExecutor::new(ctx, prog.clone()).expect("chunked executor");
    assert!(
        gpu.dispatch_count(seq) > launches,
        "{name}: some launch runs in chunks ({} dispatches for {launches} launches)",
        gpu.dispatch_count(seq)
    );
    let mut cpu = CpuExecutor::new(prog);
    for e in [&mut gpu as &mut dyn Executor, &mut cpu] {
        e.write(input, &x).unwrap();
        e.write(params, &p).unwrap();
        e.write(gids, &g).unwrap();
        e.write(dy, &dyv).unwrap();
        e.run(seq).unwrap();
    }
    // Tolerances and their reasons as in gpu_vs_cpu.rs: the same summation order on both sides,
    // FMA contraction and tanh ulps only.
    for (l, &b) in bufs.activations.iter().enumerate().skip(1) {
        assert_close(
            &format!("{name}: y{l}"),
            &gpu.read::<f32>(b).unwrap(),
            &cpu.read::<f32>(b).unwrap(),
            2e-5,
            1e-4,
        );
    }
    assert_close(
        &format!("{name}: grads"),
        &gpu.read::<f32>(grads).unwrap(),
        &cpu.read::<f32>(grads).unwrap(),
        1e-3,
        1e-3,
    );
    let dx0 = bufs.activation_grads[0].unwrap();
    assert_close(
        &format!("{name}: dx0"),
        &gpu.read::<f32>(dx0).unwrap(),
        &cpu.read::<f32>(dx0).unwrap(),
        2e-5,
        1e-4,
    );
}

#[test]
fn dense_launches_over_oversized_buffers_run_in_chunks_and_match_the_cpu_twin() {
    // 4096 x 256 floats = 4 MiB: four chunks; 3001 rows: a short last chunk and weight
    // gradient splits of 94 rows (chunks start on split boundaries).
    check_chunked_mlp(4096, &[10, 256, 16, 9], 1);
    check_chunked_mlp(3001, &[9, 300, 7], 2);
}

#[test]
fn a_launch_that_cannot_be_chunked_is_a_typed_error() {
    let Some(ctx) = gpu_small_bindings("a_launch_that_cannot_be_chunked_is_a_typed_error") else {
        return;
    };
    let words = (SMALL_BINDING / 4) as usize + 1;
    let mut prog = Program::new();
    let w = prog.buffer("weights", words);
    let state = prog.buffer("state", 4);
    let (g, m1, m2) = (
        prog.buffer("g", 1),
        prog.buffer("m1", 1),
        prog.buffer("m2", 1),
    );
    let seq = prog.sequence();
    let p = fairground_shaders::layout::AdamParams {
        param_count: words as u32,
        ..Default::default()
    };
    prog.push(
        seq,
        Kernel::AdamUpdate,
        &p,
        &[state, state, w, g, m1, m2],
        64,
    );
    match GpuExecutor::new(ctx.clone(), prog) {
        Err(ShaderError::BufferTooLarge { label, .. }) => assert_eq!(label, "weights"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an oversized binding of a launch without rows was accepted"),
    }
    // GAE over 262_144 agents: one step is the whole binding, with the carried step it cannot
    // fit any chunk of steps.
    let mut prog = Program::new();
    let b = GaeBuffers::declare(&mut prog, 4, 262_144);
    let seq = prog.sequence();
    let p = GaeParams {
        steps: 4,
        agents: 262_144,
        ..Default::default()
    };
    b.record(&mut prog, seq, p);
    match GpuExecutor::new(ctx, prog) {
        Err(ShaderError::BufferTooLarge { label, .. }) => assert!(label.starts_with("gae.")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a GAE step wider than the binding was accepted"),
    }
}

#[test]
fn actor_critic_on_small_bindings_matches_the_cpu_backend_full_and_partial() {
    let Some(ctx) = gpu_small_bindings("actor_critic_on_small_bindings_matches_the_cpu_backend")
    else {
        return;
    };
    use fairground_shaders::ActorCriticSpec;
    let separate = ActorCriticSpec {
        obs_width: 10,
        trunk: vec![],
        hidden: vec![256, 16],
        // 4096 x 70 logits (1.1 MiB): the head launches run in chunks too.
        action_components: vec![70],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch: 4096,
        use_masks: false,
    };
    // A shared trunk whose 4096 x 256 output (4 MiB) runs in chunks: the value head's input
    // gradient is added into the policy head's, chunk by chunk, before the trunk's backward.
    let trunk = ActorCriticSpec {
        trunk: vec![256],
        hidden: vec![16],
        ..separate.clone()
    };
    for s in [separate, trunk] {
        check_actor_critic_on_small_bindings(&ctx, &s);
    }
}

fn check_actor_critic_on_small_bindings(
    ctx: &std::sync::Arc<fairground_shaders::GpuContext>,
    s: &fairground_shaders::ActorCriticSpec,
) {
    use fairground_shaders::{ActorCritic, Minibatch, PpoHyper, SampleKey};
    let s = s.clone();
    let n = s.batch as usize;
    let obs = uniform(1, n * 10, -1.0, 1.0);
    let actions = integers(2, n, 70);
    let old_logp = uniform(3, n, -4.5, -4.0);
    let (old_values, adv, ret) = (
        uniform(4, n, -0.5, 0.5),
        uniform(5, n, -1.0, 1.0),
        uniform(6, n, -1.0, 1.0),
    );
    let adj = vec![0.0; n];
    let hyper = PpoHyper {
        max_grad_norm: 0.5,
        ..PpoHyper::default()
    };
    let p0 = s.init_params(3);
    let mut g =
        ActorCritic::new(s.clone(), hyper, &p0, |p| GpuExecutor::new(ctx.clone(), p)).unwrap();
    let mut c = ActorCritic::new(s.clone(), hyper, &p0, |p| Ok(CpuExecutor::new(p))).unwrap();
    for rows in [4096usize, 3000] {
        let key = SampleKey {
            seed: 8,
            iteration: 1,
            step: rows as u32,
            agent_offset: 100,
        };
        let ga = g.act(&obs[..rows * 10], &[], &[], key).unwrap();
        let ca = c.act(&obs[..rows * 10], &[], &[], key).unwrap();
        // Chunks of the sampling launch keep the batch's Philox counters: the same draws.
        let same = ga
            .actions
            .iter()
            .zip(&ca.actions)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same * 1000 >= rows * 999,
            "rows {rows}: {same} actions agree"
        );
        // Same summation order; FMA and exp/log ulps only.
        assert_close("values", &ga.values, &ca.values, 1e-5, 1e-4);
        let mb = Minibatch {
            obs: &obs[..rows * 10],
            group_ids: &[],
            masks: &[],
            actions: &actions[..rows],
            old_logp: &old_logp[..rows],
            old_values: &old_values[..rows],
            advantages: &adv[..rows],
            adv_adjust: &adj[..rows],
            returns: &ret[..rows],
        };
        for _ in 0..3 {
            g.train_minibatch(&mb).unwrap();
            c.train_minibatch(&mb).unwrap();
        }
        // Three Adam steps of lr 5e-4; rounding differences of the gradients move the steps by
        // far less (as in actor_critic.rs, where ten steps get 1e-4).
        assert_close(
            &format!("params after {rows}-row steps (trunk {:?})", s.trunk),
            &g.params().unwrap(),
            &c.params().unwrap(),
            1e-4,
            0.0,
        );
    }
}

/// Runs `prog` on the small-binding device (where it must run in chunks), on the ordinary
/// device (unchunked) and on the CPU twins, after `setup` on each; `None` after a loud skip.
fn chunked_unchunked_cpu(
    name: &str,
    prog: Program,
    seq: fairground_shaders::SeqId,
    setup: impl Fn(&mut dyn Executor),
) -> Option<(GpuExecutor, GpuExecutor, CpuExecutor)> {
    let small = gpu_small_bindings(name)?;
    let full = gpu(name)?;
    let mut chunked = GpuExecutor::new(small, prog.clone()).expect("chunked executor");
    let mut whole = GpuExecutor::new(full, prog.clone()).expect("unchunked executor");
    let launches = prog.ops(seq).len();
    assert!(
        chunked.dispatch_count(seq) > launches,
        "{name}: some launch runs in chunks ({} dispatches for {launches} launches)",
        chunked.dispatch_count(seq)
    );
    assert_eq!(whole.dispatch_count(seq), launches, "{name}: unchunked");
    let mut cpu = CpuExecutor::new(prog);
    for e in [&mut chunked as &mut dyn Executor, &mut whole, &mut cpu] {
        setup(e);
        e.run(seq).unwrap();
    }
    Some((chunked, whole, cpu))
}

fn assert_bits(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!(
            "{what}: element {i}: {} vs {} (bit-identical expected)",
            a[i], b[i]
        );
    }
}

#[test]
fn gae_over_oversized_buffers_runs_in_time_chunks_latest_first_bit_identical() {
    // 600 steps x 1000 agents = 2.4 MB per buffer: three chunks of steps (256, 256, 88), each
    // starting from the step after it. Done flags every ~10 steps.
    let (steps, agents) = (600u32, 1000u32);
    let name = "chunked gae";
    let n = (steps * agents) as usize;
    let mut prog = Program::new();
    let b = GaeBuffers::declare(&mut prog, steps, agents);
    let seq = prog.sequence();
    let p = GaeParams {
        steps,
        agents,
        gamma: 0.99,
        gae_lambda: 0.95,
        ..Default::default()
    };
    let op = b.record(&mut prog, seq, p);
    let r = uniform(20, n, -1.0, 1.0);
    let v = uniform(21, n, -2.0, 2.0);
    let d: Vec<f32> = integers(22, n, 10)
        .iter()
        .map(|&k| if k == 0 { 1.0 } else { 0.0 })
        .collect();
    let lv = uniform(23, agents as usize, -2.0, 2.0);
    let Some((mut ch, mut wh, mut cpu)) = chunked_unchunked_cpu(name, prog, seq, |e| {
        e.write(b.rewards, &r).unwrap();
        e.write(b.values, &v).unwrap();
        e.write(b.dones, &d).unwrap();
        e.write(b.last_values, &lv).unwrap();
    }) else {
        return;
    };
    // Fewer steps afterwards (the latest chunk partly filled, the chunk above idle): rerun.
    for (pass, steps) in [(0, steps), (1, 300)] {
        if pass == 1 {
            let q = GaeParams { steps, ..p };
            for e in [&mut ch as &mut dyn Executor, &mut wh, &mut cpu] {
                e.set_uniform_pod(op, &q);
                e.write(b.advantages, &vec![0.0f32; n]).unwrap();
                e.write(b.returns, &vec![0.0f32; n]).unwrap();
                e.run(seq).unwrap();
            }
        }
        for (label, buf) in [("adv", b.advantages), ("ret", b.returns)] {
            let what = format!("{name} steps {steps}: {label}");
            let c = ch.read::<f32>(buf).unwrap();
            // The same shader on the same driver, the same recursion: chunks change nothing.
            assert_bits(&what, &c, &wh.read::<f32>(buf).unwrap());
            // As gae_matches_the_cpu_twin: FMA differences per step decay with gamma * lambda.
            assert_close(&what, &c, &cpu.read::<f32>(buf).unwrap(), 1e-5, 1e-5);
        }
    }
}

#[test]
fn gae_returns_over_oversized_buffers_run_in_time_chunks_bit_identical() {
    // 600 steps x 1000 agents = 2.4 MB per buffer: chunks of steps, each row its own sum.
    let (steps, agents) = (600u32, 1000u32);
    let name = "chunked gae_returns";
    let n = (steps * agents) as usize;
    let mut prog = Program::new();
    let b = GaeBuffers::declare(&mut prog, steps, agents);
    let seq = prog.sequence();
    b.record_returns(&mut prog, seq, steps, agents);
    let v = uniform(27, n, -2.0, 2.0);
    let a = uniform(28, n, -3.0, 3.0);
    let Some((mut ch, mut wh, mut cpu)) = chunked_unchunked_cpu(name, prog, seq, |e| {
        e.write(b.values, &v).unwrap();
        e.write(b.advantages, &a).unwrap();
    }) else {
        return;
    };
    let want: Vec<f32> = a.iter().zip(&v).map(|(a, v)| a + v).collect();
    let c = ch.read::<f32>(b.returns).unwrap();
    assert_bits(name, &c, &want);
    assert_bits(name, &wh.read::<f32>(b.returns).unwrap(), &want);
    assert_bits(name, &cpu.read::<f32>(b.returns).unwrap(), &want);
}

#[test]
fn group_reductions_and_normalisation_over_oversized_buffers_run_in_split_chunks() {
    // 300_000 rows (1.2 MB of values and of group ids), 3 groups: splits of 1172 rows, chunks
    // of 13 splits; and 200_000 rows at stride 2 (1.6 MB) with groups off.
    for (rows, groups, stride) in [(300_000u32, 3u32, 1u32), (200_000, 1, 2)] {
        let name = format!("chunked reduce rows {rows} groups {groups} stride {stride}");
        let n = rows as usize;
        let mut prog = Program::new();
        let values = prog.buffer("values", n * stride as usize);
        // With groups off the ids are not read: an oversized buffer is bound as a prefix.
        let gids = prog.buffer("groups", n);
        let partial = prog.buffer("partial", reduce_partial_words(groups));
        let sums = prog.buffer("sums", 4 * groups as usize);
        let mean = prog.buffer("mean", 4 * groups as usize);
        let var = prog.buffer("var", 4 * groups as usize);
        let seq = prog.sequence();
        let spec = ReduceSpec {
            group_count: groups,
            use_groups: groups > 1,
            value_stride: stride,
            value_offset: stride - 1,
            ..ReduceSpec::plain(rows)
        };
        record_group_reduce(&mut prog, seq, spec, values, gids, sums, partial, sums);
        record_normalize(&mut prog, seq, spec, values, gids, partial, mean, var);
        let v = uniform(30, n * stride as usize, -5.0, 7.0);
        let gv = integers(31, n, groups);
        let Some((mut ch, mut wh, mut cpu)) = chunked_unchunked_cpu(&name, prog, seq, |e| {
            e.write(values, &v).unwrap();
            e.write(gids, &gv).unwrap();
        }) else {
            return;
        };
        for buf in [sums, mean, var] {
            let c: Vec<GroupStats> = ch.read(buf).unwrap();
            assert_eq!(c, wh.read::<GroupStats>(buf).unwrap(), "{name}: stats");
            let k: Vec<GroupStats> = cpu.read(buf).unwrap();
            for g in 0..groups as usize {
                assert_eq!(c[g].count, k[g].count, "{name}: count");
                assert!(c[g].count > 0, "{name}: every group has rows");
                if buf != var {
                    // Same fixed order as the CPU twin; plain sums have nothing to contract.
                    assert_eq!(c[g].sum.to_bits(), k[g].sum.to_bits(), "{name}: sums");
                }
            }
        }
        let c = ch.read::<f32>(values).unwrap();
        assert_bits(
            &format!("{name}: normalised"),
            &c,
            &wh.read::<f32>(values).unwrap(),
        );
        // As group_reductions_and_normalisation_match_the_cpu_twin: FMA in (v - c)^2 only.
        assert_close(
            &format!("{name}: normalised"),
            &c,
            &cpu.read::<f32>(values).unwrap(),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn adam_over_oversized_parameters_runs_in_chunks_bit_identical() {
    // 300_000 parameters (1.2 MB per parameter, gradient and moment buffer), clipped by the
    // global gradient norm (a chunked reduction), two steps in one submission.
    let count = 300_000u32;
    let name = "chunked adam";
    let n = count as usize;
    let mut prog = Program::new();
    let params = prog.buffer("params", n);
    let grads = prog.buffer("grads", n);
    let m1 = prog.buffer("m1", n);
    let m2 = prog.buffer("m2", n);
    let state = prog.buffer("state", 4);
    let partial = prog.buffer("partial", reduce_partial_words(1));
    let norm = prog.buffer("norm", 4);
    let dummy = prog.buffer("dummy_groups", 1);
    let ap = AdamParams {
        param_count: count,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        max_grad_norm: 0.5,
        accumulate_mode: 0,
        accumulate_scale: 0.0,
        ..AdamParams::default()
    };
    let seq = prog.sequence();
    for _ in 0..2 {
        prog.push(seq, Kernel::AdamBegin, &ap, &[state], 1);
        let spec = ReduceSpec {
            mode: ReduceMode::Square,
            ..ReduceSpec::plain(count)
        };
        record_group_reduce(&mut prog, seq, spec, grads, dummy, norm, partial, norm);
        record_adam_update(&mut prog, seq, &ap, state, norm, params, grads, m1, m2);
    }
    let p0 = uniform(50, n, -1.0, 1.0);
    let gr = uniform(51, n, -0.1, 0.1);
    let Some((mut ch, mut wh, mut cpu)) = chunked_unchunked_cpu(name, prog, seq, |e| {
        e.write(params, &p0).unwrap();
        e.write(grads, &gr).unwrap();
        e.write(state, &[AdamState::INITIAL]).unwrap();
    }) else {
        return;
    };
    let c: Vec<GroupStats> = ch.read(norm).unwrap();
    assert_eq!(c, wh.read::<GroupStats>(norm).unwrap(), "{name}: norm");
    assert!(c[0].sum > 0.25, "{name}: the norm clips");
    for (label, buf) in [("params", params), ("m1", m1), ("m2", m2)] {
        let what = format!("{name}: {label}");
        let c = ch.read::<f32>(buf).unwrap();
        assert_bits(&what, &c, &wh.read::<f32>(buf).unwrap());
        // As adam_with_gradient_clipping_matches_the_cpu_twin: sqrt and division may be a few
        // ulps off on the GPU; a step is ~lr = 1e-3, so 1e-6 absolute is ~1e-3 of a step.
        assert_close(&what, &c, &cpu.read::<f32>(buf).unwrap(), 1e-6, 1e-5);
    }
}

#[test]
fn packed_adam_over_oversized_parameters_keeps_each_sets_norm_in_chunks() {
    // A packed network's Adam: 3 sets of 100_000 parameters (1.2 MB per buffer), each set
    // clipped by its own norm (given, as the per-set reductions would leave it), two steps.
    // Chunks of parameters must still find each parameter's set.
    let (sets, set_len) = (3u32, 100_000u32);
    let count = sets * set_len;
    let name = "chunked packed adam";
    let n = count as usize;
    let mut prog = Program::new();
    let params = prog.buffer("params", n);
    let grads = prog.buffer("grads", n);
    let m1 = prog.buffer("m1", n);
    let m2 = prog.buffer("m2", n);
    let state = prog.buffer("state", 4 * sets as usize);
    let norm = prog.buffer("norm", 4 * sets as usize);
    let ap = AdamParams {
        param_count: count,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        max_grad_norm: 0.5,
        set_len,
        ..AdamParams::default()
    };
    let seq = prog.sequence();
    for _ in 0..2 {
        prog.push(seq, Kernel::AdamBegin, &ap, &[state], 1);
        record_adam_update(&mut prog, seq, &ap, state, norm, params, grads, m1, m2);
    }
    let p0 = uniform(60, n, -1.0, 1.0);
    let gr = uniform(61, n, -0.1, 0.1);
    // Squared norms 1, 4 and 9: clip factors 0.5, 0.25 and 1/6.
    let norms: Vec<GroupStats> = (1..=sets)
        .map(|k| GroupStats {
            sum: (k * k) as f32,
            count: set_len,
            mean: 0.0,
            variance: 0.0,
        })
        .collect();
    let initial = vec![AdamState::INITIAL; sets as usize];
    let Some((mut ch, mut wh, mut cpu)) = chunked_unchunked_cpu(name, prog, seq, |e| {
        e.write(params, &p0).unwrap();
        e.write(grads, &gr).unwrap();
        e.write(norm, &norms).unwrap();
        e.write(state, &initial).unwrap();
    }) else {
        return;
    };
    let states: Vec<AdamState> = ch.read(state).unwrap();
    assert!(
        states.iter().all(|s| s.step == 2),
        "{name}: every set stepped"
    );
    for (label, buf) in [("params", params), ("m1", m1), ("m2", m2)] {
        let what = format!("{name}: {label}");
        let c = ch.read::<f32>(buf).unwrap();
        assert_bits(&what, &c, &wh.read::<f32>(buf).unwrap());
        assert_close(&what, &c, &cpu.read::<f32>(buf).unwrap(), 1e-6, 1e-5);
    }
}

#[test]
fn a_reduction_over_a_view_past_its_first_row_is_not_chunked() {
    // One set's gradient norm in a packed network reads a view at value_offset; a chunk's
    // binding would not hold it, so the launch is refused instead of reading past it.
    let Some(ctx) = gpu_small_bindings("reduction view refused") else {
        return;
    };
    let n = 400_000usize;
    let mut prog = Program::new();
    let grads = prog.buffer("grads", n);
    let partial = prog.buffer("partial", reduce_partial_words(1));
    let norm = prog.buffer("norm", 8);
    let dummy = prog.buffer("dummy_groups", 1);
    let seq = prog.sequence();
    let spec = ReduceSpec {
        mode: ReduceMode::Square,
        value_offset: 200_000,
        output_offset: 1,
        ..ReduceSpec::plain(200_000)
    };
    record_group_reduce(&mut prog, seq, spec, grads, dummy, norm, partial, norm);
    match GpuExecutor::new(ctx, prog) {
        Err(ShaderError::BufferTooLarge { label, .. }) => assert_eq!(label, "grads"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a chunked view reduction was accepted"),
    }
}
