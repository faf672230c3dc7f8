// Dense layer backward, four entry points recorded in this order for each layer:
//   act_grad:            dz = dy * act'(z), with act' derived from the kept output y
//   input_grad:          dx[row, i] = sum_o W[o, i] * dz[row, o]          (order o = 0, 1, ...)
//   weight_grad_partial: for a FIXED number of row splits, per (split, group, o, c):
//                        sum over the split's rows (ascending) of dz[row, o] * x[row, c]
//                        (c = in_width is the bias column, x = 1)
//   weight_grad_reduce:  per (group, o, c): sum of the partials in split order 0, 1, ...
// Fixed splits and a fixed-order second pass make the gradients bit-identical run to run:
// no float atomics anywhere. Layout of DenseParams and parameters as in dense_forward.wgsl.

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

const LEAKY_SLOPE: f32 = 0.01;

@group(0) @binding(0) var<uniform> p: DenseParams;

// act_grad
@group(0) @binding(1) var<storage, read> ag_y: array<f32>;
@group(0) @binding(2) var<storage, read> ag_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> ag_dz: array<f32>;

// input_grad
@group(0) @binding(1) var<storage, read> ig_dz: array<f32>;
@group(0) @binding(2) var<storage, read> ig_weights: array<f32>;
@group(0) @binding(3) var<storage, read> ig_group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> ig_dx: array<f32>;

// weight_grad_partial
@group(0) @binding(1) var<storage, read> wp_x: array<f32>;
@group(0) @binding(2) var<storage, read> wp_dz: array<f32>;
@group(0) @binding(3) var<storage, read> wp_group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> wp_partial: array<f32>;

// weight_grad_reduce
@group(0) @binding(1) var<storage, read> wr_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> wr_grads: array<f32>;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + lid;
}

fn act_derivative(y: f32, activation: u32) -> f32 {
    switch activation {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return select(LEAKY_SLOPE, 1.0, y > 0.0); }
        case 3u: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}

@compute @workgroup_size(64)
fn act_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.rows * p.out_width {
        return;
    }
    ag_dz[idx] = ag_dy[idx] * act_derivative(ag_y[idx], p.activation);
}

@compute @workgroup_size(64)
fn input_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.rows * p.in_width {
        return;
    }
    let row = idx / p.in_width;
    let i = idx % p.in_width;
    var base = 0u;
    if p.group_count > 1u {
        base = ig_group_ids[row] * p.group_stride;
    }
    let w0 = base + p.weight_offset + i;
    let dz0 = row * p.out_width;
    var acc = 0.0;
    for (var o = 0u; o < p.out_width; o = o + 1u) {
        acc = acc + ig_weights[w0 + o * p.in_width] * ig_dz[dz0 + o];
    }
    if p.accumulate != 0u {
        ig_dx[idx] = ig_dx[idx] + acc;
    } else {
        ig_dx[idx] = acc;
    }
}

@compute @workgroup_size(64)
fn weight_grad_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    let cols = p.in_width + 1u;
    if idx >= p.split_count * p.group_count * p.out_width * cols {
        return;
    }
    let c = idx % cols;
    let t = idx / cols;
    let o = t % p.out_width;
    let t2 = t / p.out_width;
    let g = t2 % p.group_count;
    let split = t2 / p.group_count;
    let start = min(split * p.rows_per_split, p.rows);
    let end = min(start + p.rows_per_split, p.rows);
    var acc = 0.0;
    for (var r = start; r < end; r = r + 1u) {
        if p.group_count == 1u || wp_group_ids[r] == g {
            let d = wp_dz[r * p.out_width + o];
            if c < p.in_width {
                acc = acc + d * wp_x[r * p.in_width + c];
            } else {
                acc = acc + d;
            }
        }
    }
    wp_partial[idx] = acc;
}

@compute @workgroup_size(64)
fn weight_grad_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    let cols = p.in_width + 1u;
    let per_split = p.group_count * p.out_width * cols;
    if idx >= per_split {
        return;
    }
    let c = idx % cols;
    let t = idx / cols;
    let o = t % p.out_width;
    let g = t / p.out_width;
    var acc = 0.0;
    for (var s = 0u; s < p.split_count; s = s + 1u) {
        acc = acc + wr_partial[s * per_split + idx];
    }
    var dst = g * p.group_stride + p.bias_offset + o;
    if c < p.in_width {
        dst = g * p.group_stride + p.weight_offset + o * p.in_width + c;
    }
    if p.accumulate != 0u {
        wr_grads[dst] = wr_grads[dst] + acc;
    } else {
        wr_grads[dst] = acc;
    }
}
