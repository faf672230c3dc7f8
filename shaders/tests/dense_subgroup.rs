//! Guarantees for the subgroup variants of the dense matrix kernels
//! (wgsl_subgroup/dense_subgroup.wgsl): the file parses and validates with naga's subgroup
//! capability (and only that one), every variant is an entry point one subgroup wide, and on this
//! machine's adapter both the variants and the portable tiled kernels match the CPU twins on an
//! MLP forward and backward (the other GPU tests run whichever the device picks; this one pins
//! each). Without an adapter the GPU part prints a loud SKIPPED line (or fails under
//! FAIRGROUND_REQUIRE_GPU=1).

mod common;

use common::{assert_close, gpu, integers, uniform};
use fairground_shaders::device::{DENSE_SUBGROUP_SOURCE, SUBGROUP_KERNELS, SUBGROUP_WIDTH};
use fairground_shaders::mlp::{MlpPlacement, MlpSpec};
use fairground_shaders::{
    Activation, BackendChoice, CpuExecutor, Executor, ExecutorExt, GpuContext, GpuExecutor, Kernel,
    Program,
};
use std::sync::Arc;

#[test]
fn subgroup_variants_validate_with_the_subgroup_capability() {
    let src = DENSE_SUBGROUP_SOURCE;
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("dense_subgroup.wgsl: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("dense_subgroup.wgsl: {}", e.emit_to_string(src)));
    assert!(!src.contains("vec3<f32>") && !src.contains("vec3f"));
    assert!(!src.contains("atomic<f32>"), "no float atomics");
    for v in SUBGROUP_KERNELS {
        let ep = module
            .entry_points
            .iter()
            .find(|e| e.name == v.entry_point)
            .unwrap_or_else(|| panic!("no entry point {} for {:?}", v.entry_point, v.kernel));
        assert_eq!(
            ep.workgroup_size,
            [v.workgroup_size, 1, 1],
            "{}",
            v.entry_point
        );
        // The matrix variants broadcast within a workgroup: it must be one subgroup.
        if src.contains(&format!("fn {}(", v.entry_point))
            && [
                Kernel::DenseForward,
                Kernel::InputGrad,
                Kernel::WeightGradPartial,
            ]
            .contains(&v.kernel)
        {
            assert_eq!(v.workgroup_size, SUBGROUP_WIDTH, "{}", v.entry_point);
        }
    }
}

/// Forward and backward of one MLP on `ctx` and on the CPU twins, compared with the tolerances
/// of gpu_vs_cpu.rs.
fn check_mlp(ctx: Arc<GpuContext>, what: &str, rows: u32, widths: &[u32], offset: u32) {
    let name = format!("{what}: rows {rows} widths {widths:?} parameter offset {offset}");
    let spec = MlpSpec {
        widths: widths.to_vec(),
        hidden_activation: Activation::LeakyRelu,
        output_activation: Activation::Tanh,
        group_count: 1,
    };
    let place = MlpPlacement::new(spec.clone(), offset, rows);
    let n = rows as usize;
    let mut prog = Program::new();
    let input = prog.buffer("x", n * spec.input_width() as usize);
    let params = prog.buffer("params", (offset + spec.param_len()) as usize);
    let grads = prog.buffer("grads", (offset + spec.param_len()) as usize);
    let groups = prog.buffer("groups", n);
    let dy = prog.buffer("dy", n * spec.output_width() as usize);
    let bufs = place.declare_buffers(&mut prog, "net", input, true);
    let seq = prog.sequence();
    place.record_forward(&mut prog, seq, params, groups, &bufs);
    place.record_backward(&mut prog, seq, params, grads, groups, &bufs, dy);
    let x = uniform(1, n * spec.input_width() as usize, -2.0, 2.0);
    let mut p = vec![0.0; offset as usize];
    p.extend(spec.init_params(5));
    let gids = integers(2, n, 1);
    let dyv = uniform(3, n * spec.output_width() as usize, -1.0, 1.0);
    let mut g = GpuExecutor::new(ctx, prog.clone()).expect("gpu executor");
    let mut c = CpuExecutor::new(prog);
    for e in [&mut g as &mut dyn Executor, &mut c] {
        e.write(input, &x).unwrap();
        e.write(params, &p).unwrap();
        e.write(groups, &gids).unwrap();
        e.write(dy, &dyv).unwrap();
        e.run(seq).unwrap();
    }
    let mut read = |b| (g.read::<f32>(b).unwrap(), c.read::<f32>(b).unwrap());
    for (l, &b) in bufs.activations.iter().enumerate().skip(1) {
        let (gv, cv) = read(b);
        assert_close(&format!("{name}: y{l}"), &gv, &cv, 2e-5, 1e-4);
    }
    let (gv, cv) = read(grads);
    assert_close(&format!("{name}: grads"), &gv, &cv, 1e-3, 1e-3);
    let (gv, cv) = read(bufs.activation_grads[0].unwrap());
    assert_close(&format!("{name}: dx0"), &gv, &cv, 2e-5, 1e-4);
}

#[test]
fn tiled_and_subgroup_kernels_both_match_the_cpu_twin() {
    let Some(default_ctx) = gpu("tiled_and_subgroup_kernels_both_match_the_cpu_twin") else {
        return;
    };
    let tiled = Arc::new(
        GpuContext::with_options(BackendChoice::from_env().unwrap(), |_| {}, false)
            .expect("a tiled-only context on the same adapter"),
    );
    assert!(!tiled.subgroup_dense());
    if !default_ctx.subgroup_dense() {
        eprintln!(
            "NOTE: {} has no {SUBGROUP_WIDTH}-wide subgroups; only the tiled kernels run here",
            default_ctx.adapter_name()
        );
    }
    // Shapes with partial 32 x 32 blocks, remainders of the four-wide steps (widths 1, 9, 10)
    // and split remainders (1000 rows in 16 splits of 63); parameters at offset 0 (vec4
    // aligned, as the policy net) and 3 (not, as the value net after it).
    let cases: [(u32, &[u32], u32); 5] = [
        (7, &[1, 9, 64], 3),
        (256, &[10, 256, 128, 64, 9], 0),
        (256, &[10, 256, 128, 64, 9], 3),
        (1000, &[9, 64, 33, 1], 0),
        (1000, &[9, 64, 33, 1], 3),
    ];
    for (rows, widths, offset) in cases {
        check_mlp(tiled.clone(), "tiled", rows, widths, offset);
        check_mlp(default_ctx.clone(), "default", rows, widths, offset);
    }
}
