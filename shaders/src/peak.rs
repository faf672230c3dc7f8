//! The arithmetic peak a backend reaches on one large matrix product, measured through the
//! backend's own dense-forward launch (the code path training's matrix products take), so that
//! `fairground bench train` can say what fraction of it a training run uses.
//!
//! Why through the executor and not a bare GEMM call: the fraction should compare like with
//! like. The probe is one `DenseForward` launch with an identity activation (a GEMM plus a bias
//! row), run on whatever executor the bench trains with: the gemm crate in fixed tiles on
//! `cpu-gemm`, the scalar twins on `cpu`, the WGSL tiled kernel on `gpu`. Its FLOPs are counted
//! by [`op_flops`] exactly as the training launches are.

use crate::error::ShaderError;
use crate::mlp::{Activation, MlpPlacement, MlpSpec};
use crate::program::{BufferId, Executor, ExecutorExt, Program, SeqId, op_flops};

/// One dense product `rows × inputs @ inputs × outputs` recorded as a program.
pub struct PeakProbe {
    pub rows: u32,
    pub inputs: u32,
    pub outputs: u32,
    seq: SeqId,
    input: BufferId,
    params: BufferId,
    flops: u64,
}

/// The measured rate.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// The best window's rate, in GFLOP/s.
    pub gflop_per_s: f64,
    /// Launches timed, over all windows.
    pub launches: u64,
}

impl PeakProbe {
    /// The program of one `rows × inputs @ inputs × outputs` product, and the probe that runs it.
    pub fn new(rows: u32, inputs: u32, outputs: u32) -> (Program, Self) {
        let mut program = Program::new();
        let spec = MlpSpec {
            widths: vec![inputs, outputs],
            hidden_activation: Activation::Identity,
            output_activation: Activation::Identity,
            group_count: 1,
        };
        let place = MlpPlacement::new(spec, 0, rows);
        let input = program.buffer("peak.x", (rows * inputs) as usize);
        let params = program.buffer("peak.params", place.spec.param_len() as usize);
        let groups = program.buffer("peak.group", rows as usize);
        let bufs = place.declare_buffers(&mut program, "peak", input, false);
        let seq = program.sequence();
        place.record_forward(&mut program, seq, params, groups, &bufs);
        let flops = program.ops(seq).iter().map(op_flops).sum();
        let probe = Self {
            rows,
            inputs,
            outputs,
            seq,
            input,
            params,
            flops,
        };
        (program, probe)
    }

    /// Model FLOPs of one launch (2 · rows · inputs · outputs).
    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// Fill the inputs, warm up, then time `windows` windows of launches for about `seconds` in
    /// all; the peak is the best window (the machine's other load only ever slows a window down).
    pub fn measure<E: Executor + ?Sized>(
        &self,
        exec: &mut E,
        seconds: f64,
        windows: u32,
    ) -> Result<Peak, ShaderError> {
        // Values in [-1, 1) from a fixed pattern: the rate of an FMA does not depend on them,
        // but denormals and NaNs would, so keep them ordinary.
        let x: Vec<f32> = (0..self.rows * self.inputs)
            .map(|i| ((i * 7919) % 2003) as f32 / 1001.5 - 1.0)
            .collect();
        let w: Vec<f32> = (0..(self.inputs + 1) * self.outputs)
            .map(|i| ((i * 104_729) % 1999) as f32 / 999.5 - 1.0)
            .collect();
        exec.write(self.input, &x)?;
        exec.write(self.params, &w)?;
        exec.run(self.seq)?;
        exec.finish()?;
        // Size a window from one timed launch, so a slow backend does not run for minutes.
        let t0 = std::time::Instant::now();
        exec.run(self.seq)?;
        exec.finish()?;
        let one = t0.elapsed().as_secs_f64().max(1e-6);
        let per_window = ((seconds / windows.max(1) as f64 / one) as u64).clamp(1, 100_000);
        let mut best = 0.0f64;
        let mut launches = 0;
        for _ in 0..windows.max(1) {
            let t = std::time::Instant::now();
            for _ in 0..per_window {
                exec.run(self.seq)?;
            }
            exec.finish()?;
            let s = t.elapsed().as_secs_f64().max(1e-9);
            best = best.max(self.flops as f64 * per_window as f64 / s / 1e9);
            launches += per_window;
        }
        Ok(Peak {
            gflop_per_s: best,
            launches,
        })
    }
}
