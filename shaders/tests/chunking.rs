//! Guarantees: on a device whose storage bindings are limited to 1 MiB, launches over buffers
//! larger than that run in chunks of rows (sub-range bindings at aligned offsets, several
//! dispatches per launch) and give the CPU twin's results within the same tolerances as
//! unchunked launches (gpu_vs_cpu.rs): dense forward, input and weight gradients (whose
//! fixed-split sums are unchanged by chunking), grouped or not; and a launch that cannot be
//! chunked fails with the typed error instead.

mod common;

use common::{SMALL_BINDING, assert_close, gpu_small_bindings, integers, uniform};
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
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
    let place = MlpPlacement {
        spec: spec.clone(),
        param_offset: 3,
        rows,
    };
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
    match GpuExecutor::new(ctx, prog) {
        Err(ShaderError::BufferTooLarge { label, .. }) => assert_eq!(label, "weights"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an oversized binding of a launch without rows was accepted"),
    }
}

#[test]
fn actor_critic_on_small_bindings_matches_the_cpu_backend_full_and_partial() {
    let Some(ctx) = gpu_small_bindings("actor_critic_on_small_bindings_matches_the_cpu_backend")
    else {
        return;
    };
    use fairground_shaders::{ActorCritic, ActorCriticSpec, Minibatch, PpoHyper, SampleKey};
    let s = ActorCriticSpec {
        obs_width: 10,
        hidden: vec![256, 16],
        // 4096 x 70 logits (1.1 MiB): the head launches run in chunks too.
        action_components: vec![70],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch: 4096,
        use_masks: false,
    };
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
    let mut g = ActorCritic::new(s.clone(), hyper, &p0, |p| GpuExecutor::new(ctx, p)).unwrap();
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
            &format!("params after {rows}-row steps"),
            &g.params().unwrap(),
            &c.params().unwrap(),
            1e-4,
            0.0,
        );
    }
}
