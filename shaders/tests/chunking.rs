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
