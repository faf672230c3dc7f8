//! Times each dense kernel alone on the AH network's layer shapes (256 rows), and one whole
//! MLP forward + backward, on the gpu backend: `cargo run --release -p fairground-shaders
//! --example dense_profile`. For tuning the tiled WGSL kernels on a given adapter.

use fairground_shaders::layout::DenseParams;
use fairground_shaders::mlp::{MlpPlacement, act_grad_threads, grad_splits, tiled_threads};
use fairground_shaders::{
    Activation, Executor, ExecutorExt, GpuContext, GpuExecutor, Kernel, MlpSpec, Program, SeqId,
};
use std::sync::Arc;
use std::time::Instant;

const ROWS: u32 = 256;
const REPEATS: usize = 20;

fn main() -> anyhow_free::Result {
    let ctx = Arc::new(GpuContext::from_env().map_err(|e| e.to_string())?);
    println!("adapter: {}", ctx.adapter_name());
    let mut program = Program::new();
    let shapes = [(10u32, 256u32), (256, 128), (128, 64), (64, 9)];
    let max_w = 256 * ROWS as usize;
    let x = program.buffer("x", max_w);
    let y = program.buffer("y", max_w);
    let dz = program.buffer("dz", max_w);
    let dx = program.buffer("dx", max_w);
    let params = program.buffer("params", 256 * 257);
    let group_ids = program.buffer("group_ids", ROWS as usize);
    let partial = program.buffer("partial", 32 * 257 * 257);
    let grads = program.buffer("grads", 256 * 257);
    let mut seqs: Vec<(String, SeqId)> = Vec::new();
    for &(i, o) in &shapes {
        let p = DenseParams {
            rows: ROWS,
            in_width: i,
            out_width: o,
            activation: Activation::LeakyRelu as u32,
            weight_offset: 0,
            bias_offset: i * o,
            group_stride: i * o + o,
            group_count: 1,
            split_count: grad_splits(ROWS),
            rows_per_split: ROWS.div_ceil(grad_splits(ROWS)),
            accumulate: 0,
            split_base: 0,
        };
        let launches: [(&str, Kernel, Vec<_>, u64); 5] = [
            (
                "forward",
                Kernel::DenseForward,
                vec![x, params, group_ids, y],
                tiled_threads(ROWS, o, 1),
            ),
            (
                "act_grad",
                Kernel::ActGrad,
                vec![y, dz, dx],
                act_grad_threads(u64::from(ROWS * o)),
            ),
            (
                "input_grad",
                Kernel::InputGrad,
                vec![dz, params, group_ids, dx],
                tiled_threads(ROWS, i, 1),
            ),
            (
                "wgrad_partial",
                Kernel::WeightGradPartial,
                vec![x, dz, group_ids, partial],
                tiled_threads(o, i + 1, grad_splits(ROWS)),
            ),
            (
                "wgrad_reduce",
                Kernel::WeightGradReduce,
                vec![partial, grads],
                u64::from(o * (i + 1)),
            ),
        ];
        for (name, kernel, bufs, threads) in launches {
            let seq = program.sequence();
            for _ in 0..REPEATS {
                program.push(seq, kernel, &p, &bufs, threads);
            }
            seqs.push((format!("{i:>3}->{o:<3} {name}"), seq));
        }
    }
    let spec = MlpSpec {
        widths: vec![10, 256, 128, 64, 9],
        hidden_activation: Activation::LeakyRelu,
        output_activation: Activation::Identity,
        group_count: 1,
    };
    let mlp = MlpPlacement::new(spec.clone(), 0, ROWS);
    let input = program.buffer("mlp.x", (ROWS * 10) as usize);
    let mlp_params = program.buffer("mlp.params", spec.param_len() as usize);
    let mlp_grads = program.buffer("mlp.grads", spec.param_len() as usize);
    let out_grad = program.buffer("mlp.dout", (ROWS * 9) as usize);
    let bufs = mlp.declare_buffers(&mut program, "mlp", input, false);
    let whole = program.sequence();
    for _ in 0..REPEATS {
        mlp.record_forward(&mut program, whole, mlp_params, group_ids, &bufs);
        mlp.record_backward(
            &mut program,
            whole,
            mlp_params,
            mlp_grads,
            group_ids,
            &bufs,
            out_grad,
        );
    }
    seqs.push(("mlp forward+backward".into(), whole));

    let mut exec = GpuExecutor::new(ctx, program).map_err(|e| e.to_string())?;
    let wave =
        |n: usize, s: f32| -> Vec<f32> { (0..n).map(|k| (k as f32 * 0.618).sin() * s).collect() };
    for (b, n) in [
        (x, max_w),
        (dz, max_w),
        (params, 256 * 257),
        (input, (ROWS * 10) as usize),
    ] {
        exec.write(b, &wave(n, 0.1)).map_err(|e| e.to_string())?;
    }
    exec.write(mlp_params, &spec.init_params(1))
        .map_err(|e| e.to_string())?;
    exec.write(out_grad, &wave((ROWS * 9) as usize, 0.1))
        .map_err(|e| e.to_string())?;
    for (name, seq) in &seqs {
        exec.run(*seq).map_err(|e| e.to_string())?;
        exec.finish().map_err(|e| e.to_string())?;
        let mut best = f64::MAX;
        for _ in 0..8 {
            let t = Instant::now();
            exec.run(*seq).map_err(|e| e.to_string())?;
            exec.finish().map_err(|e| e.to_string())?;
            best = best.min(t.elapsed().as_secs_f64() / REPEATS as f64);
        }
        println!("{name:<28} {:8.3} ms", best * 1e3);
    }
    Ok(())
}

mod anyhow_free {
    pub type Result = std::result::Result<(), String>;
}
