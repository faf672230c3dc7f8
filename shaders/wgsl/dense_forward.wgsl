// Dense layer forward for a batch, one invocation per (row, output unit):
//   y[row, o] = act(b[o] + sum_i W[o, i] * x[row, i])      (summed in order i = 0, 1, ...)
// Grouped networks: when group_count > 1 every row reads its own parameter set, selected by
// group_ids[row]; set g starts group_stride floats after set g - 1. Parameters of one layer are
// W (out_width x in_width, row-major) at weight_offset, then b (out_width) at bias_offset.
// The output is kept: backward derives the activation's derivative from it.

struct DenseParams {
    rows: u32,
    in_width: u32,
    out_width: u32,
    activation: u32,
    weight_offset: u32,
    bias_offset: u32,
    group_stride: u32,
    group_count: u32,
    split_count: u32,
    rows_per_split: u32,
    accumulate: u32,
    pad0: u32,
}

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_TANH: u32 = 3u;
const LEAKY_SLOPE: f32 = 0.01;
// tanh(15) rounds to 1.0 in f32; clamping keeps every driver's tanh away from inf/inf.
const TANH_CLAMP: f32 = 15.0;

@group(0) @binding(0) var<uniform> p: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn activate(z: f32, activation: u32) -> f32 {
    switch activation {
        case 1u: { return max(z, 0.0); }
        case 2u: { return select(z * LEAKY_SLOPE, z, z > 0.0); }
        case 3u: { return tanh(clamp(z, -TANH_CLAMP, TANH_CLAMP)); }
        default: { return z; }
    }
}

fn set_base(row: u32) -> u32 {
    if p.group_count > 1u {
        return group_ids[row] * p.group_stride;
    }
    return 0u;
}

@compute @workgroup_size(64)
fn dense_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wg.y * nwg.x + wg.x) * 64u + lid;
    if idx >= p.rows * p.out_width {
        return;
    }
    let row = idx / p.out_width;
    let o = idx % p.out_width;
    let base = set_base(row);
    let w0 = base + p.weight_offset + o * p.in_width;
    let x0 = row * p.in_width;
    var acc = weights[base + p.bias_offset + o];
    for (var i = 0u; i < p.in_width; i = i + 1u) {
        acc = acc + weights[w0 + i] * x[x0 + i];
    }
    y[idx] = activate(acc, p.activation);
}
