// Dense layer backward, four entry points recorded in this order for each layer:
//   act_grad:            dz = dy * act'(z), with act' derived from the kept output y
//                        (four elements per invocation)
//   input_grad:          dx[row, i] = sum_o W[o, i] * dz[row, o]          (order o = 0, 1, ...)
//                        (tiled GEMM, see below)
//   weight_grad_partial: for a fixed number of row splits (split_count, which depends only on
//                        the batch's rows: see mlp::grad_splits), per (split, group, o, c):
//                        sum over the split's rows (ascending) of dz[row, o] * x[row, c]
//                        (c = in_width is the bias column, x = 1) (tiled GEMM, see below)
//   weight_grad_reduce:  per (group, o, c): sum of the partials in split order 0, 1, ...
// A launch may cover a chunk of the batch's rows (see GpuExecutor): its rows are the chunk's,
// and weight_grad_partial writes the splits split_base, split_base + 1, ... (chunks start on
// split boundaries, so every split's sum is the same as without chunks).
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
    split_base: u32,
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

// Elements of act_grad per invocation: four independent elements in straight-line code, so
// llvmpipe's per-lane load loops run back to back instead of one per shader invocation (see
// mlp::ACT_GRAD_ELEMENTS, which sizes the launch).
const AG_ELEMENTS: u32 = 4u;

fn act_grad_one(idx: u32, n: u32) {
    if idx < n {
        ag_dz[idx] = ag_dy[idx] * act_derivative(ag_y[idx], p.activation);
    }
}

@compute @workgroup_size(64)
fn act_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid) * AG_ELEMENTS;
    let n = p.rows * p.out_width;
    act_grad_one(idx, n);
    act_grad_one(idx + 1u, n);
    act_grad_one(idx + 2u, n);
    act_grad_one(idx + 3u, n);
}

fn group_bit(g: u32) -> u32 {
    return select(1u << g, 0xffffffffu, g >= 31u);
}

// Tile sizes of input_grad and weight_grad_partial, as in dense_forward.wgsl: TM x TN results
// per workgroup of 64 invocations (8 x 8 each), TK of the inner dimension per stage.
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// Staged operands, [k][m / 4] and [k][n / 4].
var<workgroup> as_: array<vec4<f32>, 256>;
var<workgroup> bs: array<vec4<f32>, 256>;
var<workgroup> present_bits: atomic<u32>;
var<workgroup> present: u32;

// An 8 x 8 block of accumulators: row a of the block is (lo[a], hi[a]).
struct Block {
    lo: array<vec4<f32>, 8>,
    hi: array<vec4<f32>, 8>,
}

// One stage of the tile product: block += A(ty * 8 .. + 8, k) * B(k, tx * 8 .. + 8) for
// k = 0 .. TK in ascending order, one term at a time.
fn multiply_stage(c: ptr<function, Block>, tx: u32, ty: u32) {
    for (var k = 0u; k < TK; k = k + 1u) {
        let a0 = as_[k * 16u + ty * 2u];
        let a1 = as_[k * 16u + ty * 2u + 1u];
        let b0 = bs[k * 16u + tx * 2u];
        let b1 = bs[k * 16u + tx * 2u + 1u];
        (*c).lo[0] = (*c).lo[0] + a0.x * b0; (*c).hi[0] = (*c).hi[0] + a0.x * b1;
        (*c).lo[1] = (*c).lo[1] + a0.y * b0; (*c).hi[1] = (*c).hi[1] + a0.y * b1;
        (*c).lo[2] = (*c).lo[2] + a0.z * b0; (*c).hi[2] = (*c).hi[2] + a0.z * b1;
        (*c).lo[3] = (*c).lo[3] + a0.w * b0; (*c).hi[3] = (*c).hi[3] + a0.w * b1;
        (*c).lo[4] = (*c).lo[4] + a1.x * b0; (*c).hi[4] = (*c).hi[4] + a1.x * b1;
        (*c).lo[5] = (*c).lo[5] + a1.y * b0; (*c).hi[5] = (*c).hi[5] + a1.y * b1;
        (*c).lo[6] = (*c).lo[6] + a1.z * b0; (*c).hi[6] = (*c).hi[6] + a1.z * b1;
        (*c).lo[7] = (*c).lo[7] + a1.w * b0; (*c).hi[7] = (*c).hi[7] + a1.w * b1;
    }
}

// ig_dz[row, k], zero outside the matrix.
fn ig_load_dz(row: u32, k: u32) -> f32 {
    let v = ig_dz[min(row, p.rows - 1u) * p.out_width + min(k, p.out_width - 1u)];
    return select(0.0, v, row < p.rows && k < p.out_width);
}

// W[k, i] of the set whose weights start at w0, zero outside the matrix.
fn ig_load_w(w0: u32, k: u32, i: u32) -> f32 {
    let v = ig_weights[w0 + min(k, p.out_width - 1u) * p.in_width + min(i, p.in_width - 1u)];
    return select(0.0, v, k < p.out_width && i < p.in_width);
}

// input_grad as a tiled GEMM dx = dz (rows x out) * W (out x in): tiles of 64 rows x 64
// inputs; each result adds its terms in ascending o, as the CPU twin.
@compute @workgroup_size(64)
fn input_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tiles_n = (p.in_width + TN - 1u) / TN;
    let tiles_m = (p.rows + TM - 1u) / TM;
    let tile = wg.y * nwg.x + wg.x;
    if tile >= tiles_m * tiles_n {
        return;
    }
    let m0 = (tile / tiles_n) * TM;
    let n0 = (tile % tiles_n) * TN;
    let tx = lid % 8u;
    let ty = lid / 8u;

    if p.group_count > 1u {
        if lid == 0u {
            atomicStore(&present_bits, 0u);
        }
        workgroupBarrier();
        let row = m0 + lid;
        if row < p.rows {
            atomicOr(&present_bits, group_bit(ig_group_ids[row]));
        }
        workgroupBarrier();
        if lid == 0u {
            present = atomicLoad(&present_bits);
        }
    } else {
        if lid == 0u {
            present = 1u;
        }
    }
    let mask = workgroupUniformLoad(&present);

    for (var g = 0u; g < p.group_count; g = g + 1u) {
        if (mask & group_bit(g)) == 0u {
            continue;
        }
        let w0 = g * p.group_stride + p.weight_offset;
        var c: Block;
        for (var k0 = 0u; k0 < p.out_width; k0 = k0 + TK) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                // dz: k = lid % 16 of row quads lid / 16 + 4 j (reads along a row).
                let q = lid / TK + 4u * j;
                let k = k0 + lid % TK;
                let r = m0 + q * 4u;
                as_[(lid % TK) * 16u + q] = vec4<f32>(
                    ig_load_dz(r, k),
                    ig_load_dz(r + 1u, k),
                    ig_load_dz(r + 2u, k),
                    ig_load_dz(r + 3u, k),
                );
                // W: input quad lid % 16 of k = lid / 16 + 4 j (reads along a row of W).
                let kb = lid / 16u + 4u * j;
                let i = n0 + (lid % 16u) * 4u;
                bs[kb * 16u + lid % 16u] = vec4<f32>(
                    ig_load_w(w0, k0 + kb, i),
                    ig_load_w(w0, k0 + kb, i + 1u),
                    ig_load_w(w0, k0 + kb, i + 2u),
                    ig_load_w(w0, k0 + kb, i + 3u),
                );
            }
            workgroupBarrier();
            multiply_stage(&c, tx, ty);
            workgroupBarrier();
        }
        let r0 = m0 + ty * 8u;
        let i0 = n0 + tx * 8u;
        ig_store_row(r0, i0, g, c.lo[0], c.hi[0]);
        ig_store_row(r0 + 1u, i0, g, c.lo[1], c.hi[1]);
        ig_store_row(r0 + 2u, i0, g, c.lo[2], c.hi[2]);
        ig_store_row(r0 + 3u, i0, g, c.lo[3], c.hi[3]);
        ig_store_row(r0 + 4u, i0, g, c.lo[4], c.hi[4]);
        ig_store_row(r0 + 5u, i0, g, c.lo[5], c.hi[5]);
        ig_store_row(r0 + 6u, i0, g, c.lo[6], c.hi[6]);
        ig_store_row(r0 + 7u, i0, g, c.lo[7], c.hi[7]);
    }
}

// Inputs i0 .. i0 + 8 of one row of dx, when the row is in set g.
fn ig_store_row(row: u32, i0: u32, g: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if row >= p.rows || (p.group_count > 1u && ig_group_ids[row] != g) {
        return;
    }
    for (var b = 0u; b < 8u; b = b + 1u) {
        let i = i0 + b;
        if i < p.in_width {
            let v = select(hi[b & 3u], lo[b & 3u], b < 4u);
            let idx = row * p.in_width + i;
            if p.accumulate != 0u {
                ig_dx[idx] = ig_dx[idx] + v;
            } else {
                ig_dx[idx] = v;
            }
        }
    }
}

// dz[r, o] of rows [start, end) in set g, zero otherwise.
fn wp_load_dz(r: u32, o: u32, end: u32, g: u32) -> f32 {
    let rr = min(r, p.rows - 1u);
    let v = wp_dz[rr * p.out_width + min(o, p.out_width - 1u)];
    var keep = r < end && o < p.out_width;
    if p.group_count > 1u {
        keep = keep && wp_group_ids[rr] == g;
    }
    return select(0.0, v, keep);
}

// x[r, c] with the bias column c = in_width reading 1; zero past the columns. Rows past the
// split read any valid row: their dz is zero.
fn wp_load_x(r: u32, c: u32) -> f32 {
    let v = wp_x[min(r, p.rows - 1u) * p.in_width + min(c, p.in_width - 1u)];
    return select(select(0.0, 1.0, c == p.in_width), v, c < p.in_width);
}

// weight_grad_partial as a tiled GEMM per (split, set): partial = dz^T (out x rows of the
// split) * [x | 1] (rows x (in + 1)): tiles of 64 outputs x 64 columns; each result adds its
// terms in ascending row order (rows of other sets add an exact zero), as the CPU twin.
@compute @workgroup_size(64)
fn weight_grad_partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let cols = p.in_width + 1u;
    let tiles_n = (cols + TN - 1u) / TN;
    let tiles_m = (p.out_width + TM - 1u) / TM;
    var t = wg.y * nwg.x + wg.x;
    if t >= tiles_n * tiles_m * p.group_count * p.split_count {
        return;
    }
    let n0 = (t % tiles_n) * TN;
    t = t / tiles_n;
    let m0 = (t % tiles_m) * TM;
    t = t / tiles_m;
    let g = t % p.group_count;
    let split = t / p.group_count;
    // A launch over a chunk of the batch's rows writes the splits from split_base on.
    if p.split_base + split >= p.split_count {
        return;
    }
    let start = min(split * p.rows_per_split, p.rows);
    let end = min(start + p.rows_per_split, p.rows);
    let tx = lid % 8u;
    let ty = lid / 8u;

    // A set with no row in the split (a packed launch: each split holds one set's rows) has
    // an all-zero partial there: the product would add only exact zeros, so skip it.
    if p.group_count > 1u {
        if lid == 0u {
            atomicStore(&present_bits, 0u);
        }
        workgroupBarrier();
        for (var r = start + lid; r < end; r = r + 64u) {
            atomicOr(&present_bits, group_bit(wp_group_ids[r]));
        }
        workgroupBarrier();
        if lid == 0u {
            present = atomicLoad(&present_bits);
        }
    } else {
        if lid == 0u {
            present = 1u;
        }
    }
    let mask = workgroupUniformLoad(&present);
    let empty = (mask & group_bit(g)) == 0u;

    var c: Block;
    for (var k0 = select(start, end, empty); k0 < end; k0 = k0 + TK) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            // Both operands: quad lid % 16 of row k0 + lid / 16 + 4 j (reads along rows).
            let k = lid / 16u + 4u * j;
            let q = lid % 16u;
            let o = m0 + q * 4u;
            as_[k * 16u + q] = vec4<f32>(
                wp_load_dz(k0 + k, o, end, g),
                wp_load_dz(k0 + k, o + 1u, end, g),
                wp_load_dz(k0 + k, o + 2u, end, g),
                wp_load_dz(k0 + k, o + 3u, end, g),
            );
            let cc = n0 + q * 4u;
            bs[k * 16u + q] = vec4<f32>(
                wp_load_x(k0 + k, cc),
                wp_load_x(k0 + k, cc + 1u),
                wp_load_x(k0 + k, cc + 2u),
                wp_load_x(k0 + k, cc + 3u),
            );
        }
        workgroupBarrier();
        multiply_stage(&c, tx, ty);
        workgroupBarrier();
    }
    let o0 = m0 + ty * 8u;
    let col0 = n0 + tx * 8u;
    let d0 = (p.split_base + split) * p.group_count + g;
    wp_store_row(d0, o0, col0, c.lo[0], c.hi[0]);
    wp_store_row(d0, o0 + 1u, col0, c.lo[1], c.hi[1]);
    wp_store_row(d0, o0 + 2u, col0, c.lo[2], c.hi[2]);
    wp_store_row(d0, o0 + 3u, col0, c.lo[3], c.hi[3]);
    wp_store_row(d0, o0 + 4u, col0, c.lo[4], c.hi[4]);
    wp_store_row(d0, o0 + 5u, col0, c.lo[5], c.hi[5]);
    wp_store_row(d0, o0 + 6u, col0, c.lo[6], c.hi[6]);
    wp_store_row(d0, o0 + 7u, col0, c.lo[7], c.hi[7]);
}

// Columns col0 .. col0 + 8 of output o of the partial of (split, set) number d
// (= split * group_count + set).
fn wp_store_row(d: u32, o: u32, col0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    let cols = p.in_width + 1u;
    if o >= p.out_width {
        return;
    }
    for (var b = 0u; b < 8u; b = b + 1u) {
        let col = col0 + b;
        if col < cols {
            let v = select(hi[b & 3u], lo[b & 3u], b < 4u);
            wp_partial[(d * p.out_width + o) * cols + col] = v;
        }
    }
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
