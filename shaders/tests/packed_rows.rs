//! Guarantees (the first constraint of docs/packing.md, checked before anything is built on it):
//! a grouped MLP's forward output for a row depends only on that row and its parameter set. It
//! does not depend on which other rows, of which sets, share the launch, or on the launch's row
//! count. Set g's `b` rows run alone in a `b`-row launch, and packed at rows `g * b ..` of a
//! `K * b`-row launch beside K - 1 other sets' rows, give the same bits, on:
//! - the CPU twins;
//! - `cpu-gemm` on 1 and 2 threads;
//! - the GPU where a driver exists (a loud skip otherwise).
//!
//! Where each set's rows fill the weight-gradient splits they fill alone (docs/packing.md), its
//! parameter gradients after a backward pass are the same bits too. The cases include the
//! paper's network at the trainer's 256-row batch and odd row counts.

mod common;

use common::{gpu, uniform};
use fairground_shaders::mlp::{MlpPlacement, MlpSpec, grad_splits};
use fairground_shaders::{
    Activation, CpuExecutor, Executor, ExecutorExt, GemmExecutor, GemmPool, GpuExecutor, Program,
};

struct Case {
    /// Rows of each set's minibatch.
    rows: u32,
    widths: &'static [u32],
    /// Parameter sets packed together.
    sets: u32,
    /// Whether each set's rows fill whole weight-gradient splits of the packed launch, the
    /// ones it has alone (see docs/packing.md): then the gradients are the same bits too.
    splits_align: bool,
}

const CASES: &[Case] = &[
    Case {
        rows: 256,
        widths: &[10, 256, 128, 64, 9],
        sets: 3,
        // 4 splits of 64 rows alone, 12 of 64 packed.
        splits_align: true,
    },
    Case {
        rows: 7,
        widths: &[10, 256, 128, 64, 1],
        sets: 4,
        // One split alone and one packed: each set's partial sums run over its rows in order.
        splits_align: true,
    },
    Case {
        rows: 65,
        widths: &[13, 64, 9],
        sets: 2,
        // 2 splits of 33 rows alone, 3 of 44 packed: the sums group other rows.
        splits_align: false,
    },
];

/// Rows per weight-gradient split of a launch of `rows` rows (as `MlpPlacement` lays them out).
fn rows_per_split(rows: u32) -> u32 {
    rows.div_ceil(grad_splits(rows)).max(1)
}

/// Whether every set's rows fill the splits of the packed launch that they fill alone: the
/// same split size and each set starting on a split boundary, or a single split both times.
fn splits_align(case: &Case) -> bool {
    let (alone, packed) = (case.rows, case.rows * case.sets);
    let single = grad_splits(alone) == 1 && grad_splits(packed) == 1;
    single
        || (rows_per_split(alone) == rows_per_split(packed) && alone % rows_per_split(alone) == 0)
}

/// Every set's forward output (rows x output width, set after set) and, after a backward pass
/// from fixed output gradients, every set's parameter gradients (set after set): `packed` runs
/// all sets in one launch, otherwise each set runs alone.
fn run_sets<E: Executor>(
    case: &Case,
    packed: bool,
    make: &impl Fn(Program) -> E,
) -> (Vec<f32>, Vec<f32>) {
    let spec = MlpSpec {
        widths: case.widths.to_vec(),
        hidden_activation: Activation::LeakyRelu,
        output_activation: Activation::Identity,
        group_count: case.sets,
    };
    let params = spec.init_params(11);
    let b = case.rows as usize;
    let w_in = spec.input_width() as usize;
    let x = uniform(1, case.sets as usize * b * w_in, -2.0, 2.0);
    let w_out = spec.output_width() as usize;
    let dy = uniform(2, case.sets as usize * b * w_out, -1.0, 1.0);
    let set_len = spec.set_len() as usize;
    let mut grads = vec![0.0; params.len()];
    let launches: Vec<(usize, usize)> = if packed {
        vec![(0, case.sets as usize)]
    } else {
        (0..case.sets as usize).map(|g| (g, g + 1)).collect()
    };
    let mut out = Vec::new();
    for (first, end) in launches {
        let rows = (end - first) * b;
        let place = MlpPlacement::new(spec.clone(), 0, rows as u32);
        let mut prog = Program::new();
        let input = prog.buffer("x", rows * w_in);
        let p = prog.buffer("params", params.len());
        let groups = prog.buffer("groups", rows);
        let grads_buf = prog.buffer("grads", params.len());
        let d = prog.buffer("dy", rows * w_out);
        let bufs = place.declare_buffers(&mut prog, "net", input, false);
        let seq = prog.sequence();
        place.record_forward(&mut prog, seq, p, groups, &bufs);
        place.record_backward(&mut prog, seq, p, grads_buf, groups, &bufs, d);
        let ids: Vec<u32> = (first..end).flat_map(|g| vec![g as u32; b]).collect();
        let mut e = make(prog);
        e.write(input, &x[first * b * w_in..end * b * w_in])
            .unwrap();
        e.write(p, &params).unwrap();
        e.write(groups, &ids).unwrap();
        e.write(d, &dy[first * b * w_out..end * b * w_out]).unwrap();
        e.run(seq).unwrap();
        out.extend(e.read::<f32>(*bufs.activations.last().unwrap()).unwrap());
        let launch_grads = e.read::<f32>(grads_buf).unwrap();
        let sets = first * set_len..end * set_len;
        grads[sets.clone()].copy_from_slice(&launch_grads[sets]);
    }
    (out, grads)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn check<E: Executor>(backend: &str, make: impl Fn(Program) -> E) {
    for case in CASES {
        // The table's premise, so its comments cannot go stale when the split sizes change.
        assert_eq!(
            case.splits_align,
            splits_align(case),
            "{:?} x {} sets of {} rows: splits_align",
            case.widths,
            case.sets,
            case.rows
        );
        let (alone, alone_grads) = run_sets(case, false, &make);
        let (packed, packed_grads) = run_sets(case, true, &make);
        assert_eq!(alone.len(), packed.len());
        assert!(alone.iter().all(|v| v.is_finite()), "{backend}: finite");
        assert!(
            bits(&alone) == bits(&packed),
            "{backend}: {:?} x {} sets of {} rows: packed rows differ from rows run alone \
             (first at {:?})",
            case.widths,
            case.sets,
            case.rows,
            alone
                .iter()
                .zip(&packed)
                .position(|(a, p)| a.to_bits() != p.to_bits())
        );
        if case.splits_align {
            assert!(
                alone_grads.iter().any(|v| *v != 0.0),
                "{backend}: gradients"
            );
            assert!(
                bits(&alone_grads) == bits(&packed_grads),
                "{backend}: {:?} x {} sets of {} rows: packed gradients differ from gradients \
                 alone (first at {:?})",
                case.widths,
                case.sets,
                case.rows,
                alone_grads
                    .iter()
                    .zip(&packed_grads)
                    .position(|(a, p)| a.to_bits() != p.to_bits())
            );
        }
    }
}

#[test]
fn cpu_twins_packed_rows_equal_rows_alone() {
    check("cpu", CpuExecutor::new);
}

#[test]
fn cpu_gemm_packed_rows_equal_rows_alone() {
    for threads in [1, 2] {
        check("cpu-gemm", |p| {
            GemmExecutor::new(p, GemmPool::new(threads).expect("pool"))
        });
    }
}

#[test]
fn gpu_packed_rows_equal_rows_alone() {
    let Some(ctx) = gpu("gpu_packed_rows_equal_rows_alone") else {
        return;
    };
    check("gpu", |p| {
        GpuExecutor::new(ctx.clone(), p).expect("gpu executor")
    });
}
