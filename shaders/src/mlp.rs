//! Dense networks: shapes, parameter layout, PyTorch-default initialisation, and recording of
//! forward and backward launches (grouped or not) into a [`Program`].

use crate::cpu::philox4x32_10;
use crate::layout::DenseParams;
use crate::program::{BufferId, Program, SeqId};
use crate::registry::Kernel;

/// Most row splits of the weight-gradient reduction. The split count depends only on the
/// placement's rows (see [`grad_splits`]), so the order of every sum (and hence every bit) does
/// not depend on the device.
pub const GRAD_SPLITS: u32 = 32;

/// Fewest rows of one weight-gradient split (batches under `GRAD_SPLITS * MIN_SPLIT_ROWS` rows
/// use fewer splits). Short splits cost more than they parallelise: every split writes a full
/// gradient-sized partial that the reduction reads back, and the tiled kernel stages 16 rows at
/// a time, so a split under 16 rows leaves part of each stage empty.
pub const MIN_SPLIT_ROWS: u32 = 64;

/// Row splits of the weight-gradient reduction over `rows` rows: one per `MIN_SPLIT_ROWS`
/// rows, at least one and at most `GRAD_SPLITS`.
pub fn grad_splits(rows: u32) -> u32 {
    rows.div_ceil(MIN_SPLIT_ROWS).clamp(1, GRAD_SPLITS)
}

/// Rows x outputs of one workgroup's tile in the tiled dense kernels (dense_forward.wgsl,
/// dense_backward.wgsl); 64 invocations each own an 8 x 8 block.
pub const TILE: u32 = 64;

/// Elements of `act_grad` per invocation (AG_ELEMENTS in dense_backward.wgsl).
pub const ACT_GRAD_ELEMENTS: u64 = 4;

/// Invocations of an `act_grad` launch over `elements` elements.
pub fn act_grad_threads(elements: u64) -> u64 {
    elements.div_ceil(ACT_GRAD_ELEMENTS)
}

/// Invocations to launch for a tiled dense kernel over an `m` x `n` result (`batches` times):
/// one workgroup of 64 per 64 x 64 tile.
pub fn tiled_threads(m: u32, n: u32, batches: u32) -> u64 {
    u64::from(m.div_ceil(TILE)) * u64::from(n.div_ceil(TILE)) * u64::from(batches) * 64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Activation {
    Identity = 0,
    Relu = 1,
    /// Slope 0.01 below zero, as the reference.
    LeakyRelu = 2,
    Tanh = 3,
}

/// One dense layer inside a parameter set. Offsets are in floats from the set's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub in_width: u32,
    pub out_width: u32,
    pub weight_offset: u32,
    pub bias_offset: u32,
    pub activation: Activation,
}

/// A stack of dense layers `widths[0] -> widths[1] -> ... -> widths[n]`, with `group_count`
/// independent parameter sets (grouped networks: each row picks its set by a group id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpSpec {
    pub widths: Vec<u32>,
    pub hidden_activation: Activation,
    pub output_activation: Activation,
    pub group_count: u32,
}

impl MlpSpec {
    pub fn layers(&self) -> Vec<LayerShape> {
        assert!(
            self.widths.len() >= 2,
            "an MLP needs an input and an output width"
        );
        assert!(
            self.widths.iter().all(|&w| w > 0),
            "widths must be positive"
        );
        assert!(self.group_count > 0, "at least one parameter set");
        let mut offset = 0u32;
        let n = self.widths.len() - 1;
        (0..n)
            .map(|l| {
                let (i, o) = (self.widths[l], self.widths[l + 1]);
                let shape = LayerShape {
                    in_width: i,
                    out_width: o,
                    weight_offset: offset,
                    bias_offset: offset + i * o,
                    activation: if l + 1 == n {
                        self.output_activation
                    } else {
                        self.hidden_activation
                    },
                };
                offset += i * o + o;
                shape
            })
            .collect()
    }

    /// Floats in one parameter set.
    pub fn set_len(&self) -> u32 {
        self.layers()
            .iter()
            .map(|l| l.in_width * l.out_width + l.out_width)
            .sum()
    }

    /// Floats in all parameter sets.
    pub fn param_len(&self) -> u32 {
        self.set_len() * self.group_count
    }

    pub fn input_width(&self) -> u32 {
        self.widths[0]
    }

    pub fn output_width(&self) -> u32 {
        *self.widths.last().expect("at least two widths")
    }

    /// PyTorch's default `nn.Linear` initialisation, U(-1/sqrt(in), 1/sqrt(in)) for weights and
    /// biases, drawn from Philox keyed by `seed` (counter: set, layer, index, 0).
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.param_len() as usize);
        for g in 0..self.group_count {
            for (l, layer) in self.layers().iter().enumerate() {
                let bound = 1.0 / (layer.in_width as f32).sqrt();
                let n = layer.in_width * layer.out_width + layer.out_width;
                for k in 0..n {
                    let bits =
                        philox4x32_10([g, l as u32, k, 0], [seed as u32, (seed >> 32) as u32]);
                    let u = (bits[0] >> 8) as f32 * (1.0 / 16_777_216.0);
                    out.push((2.0 * u - 1.0) * bound);
                }
            }
        }
        out
    }
}

/// The activations (kept for backward) and gradient scratch of one MLP on `rows` rows.
#[derive(Clone, Debug)]
pub struct MlpBuffers {
    /// `activations[0]` is the input, `activations[l + 1]` the output of layer l.
    pub activations: Vec<BufferId>,
    /// `activation_grads[l]` = dL/d activations[l] for l >= 1 (index 0 unused: `None` unless an
    /// input gradient was requested).
    pub activation_grads: Vec<Option<BufferId>>,
    /// dL/dz of each layer.
    pub pre_activation_grads: Vec<BufferId>,
    /// Per-split partial weight gradients (shared by all layers).
    pub partial: BufferId,
}

/// An MLP placed in a program: its spec, where its parameters start in the parameter buffer,
/// the rows it runs on, and how its weight gradients split those rows.
#[derive(Clone, Debug)]
pub struct MlpPlacement {
    pub spec: MlpSpec,
    /// Offset of parameter set 0 in the parameter (and gradient) buffer, in floats.
    pub param_offset: u32,
    pub rows: u32,
    /// Floats from one parameter set to the next: `spec.set_len()` for an MLP whose sets lie
    /// side by side; a whole network's length when each set is one network of a packed
    /// actor-critic (its trunk, policy and value heads contiguous).
    pub set_stride: u32,
    /// Row splits of the weight-gradient reduction and rows per split: [`grad_splits`] of
    /// `rows` and the rows that gives, unless a packed network keeps the splits of each set's
    /// own batch (see `docs/packing.md`).
    pub split_count: u32,
    pub rows_per_split: u32,
}

impl MlpPlacement {
    /// `spec` on `rows` rows at `param_offset`, its sets side by side, its weight-gradient
    /// splits those of `rows`.
    pub fn new(spec: MlpSpec, param_offset: u32, rows: u32) -> Self {
        let split_count = grad_splits(rows);
        Self {
            set_stride: spec.set_len(),
            spec,
            param_offset,
            rows,
            split_count,
            rows_per_split: rows.div_ceil(split_count).max(1),
        }
    }

    fn dense_params(&self, layer: &LayerShape) -> DenseParams {
        DenseParams {
            rows: self.rows,
            in_width: layer.in_width,
            out_width: layer.out_width,
            activation: layer.activation as u32,
            weight_offset: self.param_offset + layer.weight_offset,
            bias_offset: self.param_offset + layer.bias_offset,
            group_stride: self.set_stride,
            group_count: self.spec.group_count,
            split_count: self.split_count,
            rows_per_split: self.rows_per_split,
            accumulate: 0,
            split_base: 0,
        }
    }

    /// Declare activation and gradient buffers; `input` is the buffer holding the input rows.
    pub fn declare_buffers(
        &self,
        program: &mut Program,
        name: &str,
        input: BufferId,
        with_input_grad: bool,
    ) -> MlpBuffers {
        let layers = self.spec.layers();
        let rows = self.rows as usize;
        let mut activations = vec![input];
        let mut activation_grads = vec![if with_input_grad {
            Some(program.buffer(
                format!("{name}.dx0"),
                rows * self.spec.input_width() as usize,
            ))
        } else {
            None
        }];
        let mut pre_activation_grads = Vec::new();
        let mut partial_words = 0usize;
        for (l, layer) in layers.iter().enumerate() {
            let n = rows * layer.out_width as usize;
            activations.push(program.buffer(format!("{name}.y{}", l + 1), n));
            activation_grads.push(Some(program.buffer(format!("{name}.dy{}", l + 1), n)));
            pre_activation_grads.push(program.buffer(format!("{name}.dz{}", l + 1), n));
            partial_words = partial_words.max(
                self.split_count as usize
                    * self.spec.group_count as usize
                    * layer.out_width as usize
                    * (layer.in_width as usize + 1),
            );
        }
        let partial = program.buffer(format!("{name}.partial"), partial_words);
        MlpBuffers {
            activations,
            activation_grads,
            pre_activation_grads,
            partial,
        }
    }

    /// Record the forward pass: every layer's output lands in `bufs.activations[l + 1]`.
    pub fn record_forward(
        &self,
        program: &mut Program,
        seq: SeqId,
        params: BufferId,
        group_ids: BufferId,
        bufs: &MlpBuffers,
    ) {
        for (l, layer) in self.spec.layers().iter().enumerate() {
            let p = self.dense_params(layer);
            program.push_rows(
                seq,
                Kernel::DenseForward,
                &p,
                &[
                    bufs.activations[l],
                    params,
                    group_ids,
                    bufs.activations[l + 1],
                ],
                tiled_threads(self.rows, layer.out_width, 1),
                &[layer.in_width, 0, 1, layer.out_width],
            );
        }
    }

    /// Record the backward pass given dL/d(output) in `output_grad`. Writes the gradients of
    /// every parameter set into `grads` (same layout as `params`), and dL/d(input) into
    /// `bufs.activation_grads[0]` when it was declared.
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward(
        &self,
        program: &mut Program,
        seq: SeqId,
        params: BufferId,
        grads: BufferId,
        group_ids: BufferId,
        bufs: &MlpBuffers,
        output_grad: BufferId,
    ) {
        self.record_backward_with(
            program,
            seq,
            params,
            grads,
            group_ids,
            bufs,
            output_grad,
            false,
        );
    }

    /// [`Self::record_backward`], with `accumulate_input_grad`: dL/d(input) is added to what
    /// `bufs.activation_grads[0]` already holds instead of overwriting it. Two networks that
    /// read one input (the heads on a shared trunk) sum their input gradients this way; only
    /// the input-gradient launch of the first layer accumulates, every other launch is as in
    /// [`Self::record_backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_with(
        &self,
        program: &mut Program,
        seq: SeqId,
        params: BufferId,
        grads: BufferId,
        group_ids: BufferId,
        bufs: &MlpBuffers,
        output_grad: BufferId,
        accumulate_input_grad: bool,
    ) {
        let layers = self.spec.layers();
        for l in (0..layers.len()).rev() {
            let layer = &layers[l];
            let p = self.dense_params(layer);
            let dy = if l + 1 == layers.len() {
                output_grad
            } else {
                bufs.activation_grads[l + 1].expect("hidden gradients are declared")
            };
            let dz = bufs.pre_activation_grads[l];
            let rows = u64::from(self.rows);
            let (i, o) = (layer.in_width, layer.out_width);
            program.push_rows(
                seq,
                Kernel::ActGrad,
                &p,
                &[bufs.activations[l + 1], dy, dz],
                act_grad_threads(rows * u64::from(o)),
                &[o, o, o],
            );
            if let Some(dx) = bufs.activation_grads[l] {
                // Only layer 0 writes the network's input gradient; hidden layers own theirs.
                let input_grad = DenseParams {
                    accumulate: u32::from(l == 0 && accumulate_input_grad),
                    ..p
                };
                program.push_rows(
                    seq,
                    Kernel::InputGrad,
                    &input_grad,
                    &[dz, params, group_ids, dx],
                    tiled_threads(self.rows, i, 1),
                    &[o, 0, 1, i],
                );
            }
            let cells = u64::from(self.spec.group_count)
                * u64::from(layer.out_width)
                * (u64::from(layer.in_width) + 1);
            program.push_rows(
                seq,
                Kernel::WeightGradPartial,
                &p,
                &[bufs.activations[l], dz, group_ids, bufs.partial],
                tiled_threads(o, i + 1, self.split_count * self.spec.group_count),
                &[i, o, 1, 0],
            );
            program.push(
                seq,
                Kernel::WeightGradReduce,
                &p,
                &[bufs.partial, grads],
                cells,
            );
        }
    }
}
