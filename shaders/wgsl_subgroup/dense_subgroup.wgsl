// Subgroup variants of the three matrix kernels of a dense layer, for devices whose subgroups
// are exactly 8 invocations wide (Mesa's llvmpipe/lavapipe on 256-bit SIMD; see
// GpuContext::subgroup_dense). They compute the same sums in the same order as the tiled kernels
// of dense_forward.wgsl and dense_backward.wgsl (and their CPU twins):
//   dense_forward_sg:        y[row, o]  = act(b[o] + sum_i W[o, i] * x[row, i])   (i ascending)
//   input_grad_sg:           dx[row, i] = sum_o W[o, i] * dz[row, o]              (o ascending)
//   weight_grad_partial_sg:  per (split, o, c): sum over the split's rows (ascending) of
//                            dz[row, o] * x[row, c] (c = in_width: the bias column, x = 1)
// Only ungrouped layers (group_count = 1) run here, and only launches that are not split into
// row chunks; everything else runs the tiled kernels. Layout of DenseParams and parameters as in
// dense_forward.wgsl.
//
// Why a separate file: llvmpipe runs the invocations of a subgroup as the lanes of one SIMD
// register, and every storage or workgroup-memory load is a loop over the lanes with a branch
// per lane, so a load costs several cycles per lane while an FMA costs one instruction for all
// 8 lanes. The tiled kernels share operands through workgroup memory, which costs the same per
// lane as reading them from the buffer again. Here operands are shared through registers
// instead: each lane loads one of 8 rows and subgroupBroadcast hands it to the others (an
// element extract and a splat on llvmpipe). No workgroup memory and no barriers.
//
// Shape of one workgroup (= one subgroup of 8 lanes): a block of 32 "rows" x 32 "columns" of
// the result, with the reduction over k:
//   acc[r][j] (r < 32, j < 4) = result at row m0 + r, column n0 + lane + 8 j
//   for each k in ascending order: acc[r][j] += A[m0 + r, k] * B[k, n0 + lane + 8 j]
// A is loaded by the lanes, row m0 + lane + 8 q (q < 4) per lane, and broadcast; B is the lane's
// own four columns. For forward A = x (k = input), B = W^T; for input_grad A = dz (k = output),
// B = W; for weight_grad_partial A = dz^T (k = row, "rows" = outputs) and B = [x | 1].
// The reduction runs four k at a time (A as one vec4 per lane and q, B as four vec4 over j),
// then one at a time for the remainder; each accumulator still adds its terms one at a time in
// ascending k (a + t0 + t1 + t2 + t3 in WGSL is ((a + t0) + t1) + t2) + t3).

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
// tanh(15) rounds to 1.0 in f32; clamping keeps every driver's tanh away from inf/inf.
const TANH_CLAMP: f32 = 15.0;

// Result rows and columns of one workgroup's block.
const BM: u32 = 32u;
const BN: u32 = 32u;

@group(0) @binding(0) var<uniform> p: DenseParams;

// dense_forward_sg (bindings of dense_forward)
@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_weights: array<f32>;
@group(0) @binding(3) var<storage, read> f_group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> f_y: array<f32>;

// input_grad_sg (bindings of input_grad)
@group(0) @binding(1) var<storage, read> ig_dz: array<f32>;
@group(0) @binding(2) var<storage, read> ig_weights: array<f32>;
@group(0) @binding(3) var<storage, read> ig_group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> ig_dx: array<f32>;

// weight_grad_partial_sg (bindings of weight_grad_partial)
@group(0) @binding(1) var<storage, read> wp_x: array<f32>;
@group(0) @binding(2) var<storage, read> wp_dz: array<f32>;
@group(0) @binding(3) var<storage, read> wp_group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> wp_partial: array<f32>;

// The 32 x 4 accumulators of a lane: acc[r] holds columns n0 + lane + 8 j in its components j.
alias Acc = array<vec4<f32>, 32>;

fn activate(z: f32, activation: u32) -> f32 {
    switch activation {
        case 1u: { return max(z, 0.0); }
        case 2u: { return select(z * LEAKY_SLOPE, z, z > 0.0); }
        case 3u: { return tanh(clamp(z, -TANH_CLAMP, TANH_CLAMP)); }
        default: { return z; }
    }
}

// All 32 accumulators set to v (a constructor, not a loop: a dynamically indexed array would
// live in memory instead of registers).
fn filled(v: vec4<f32>) -> Acc {
    return Acc(v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v,
        v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v);
}

fn block_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// Four steps k .. k + 4 for one accumulator: a, A's four values, B's four columns per step.
fn step4(a: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return a + av.x * b0 + av.y * b1 + av.z * b2 + av.w * b3;
}

// Four steps of all 32 rows: a_q holds A[m0 + lane + 8 q, k .. k + 4] of this lane, b_c the
// lane's B[k + c, columns].
fn add4(acc: ptr<function, Acc>, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
        b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
    (*acc)[0] = step4((*acc)[0], subgroupBroadcast(a0, 0u), b0, b1, b2, b3);
    (*acc)[1] = step4((*acc)[1], subgroupBroadcast(a0, 1u), b0, b1, b2, b3);
    (*acc)[2] = step4((*acc)[2], subgroupBroadcast(a0, 2u), b0, b1, b2, b3);
    (*acc)[3] = step4((*acc)[3], subgroupBroadcast(a0, 3u), b0, b1, b2, b3);
    (*acc)[4] = step4((*acc)[4], subgroupBroadcast(a0, 4u), b0, b1, b2, b3);
    (*acc)[5] = step4((*acc)[5], subgroupBroadcast(a0, 5u), b0, b1, b2, b3);
    (*acc)[6] = step4((*acc)[6], subgroupBroadcast(a0, 6u), b0, b1, b2, b3);
    (*acc)[7] = step4((*acc)[7], subgroupBroadcast(a0, 7u), b0, b1, b2, b3);
    (*acc)[8] = step4((*acc)[8], subgroupBroadcast(a1, 0u), b0, b1, b2, b3);
    (*acc)[9] = step4((*acc)[9], subgroupBroadcast(a1, 1u), b0, b1, b2, b3);
    (*acc)[10] = step4((*acc)[10], subgroupBroadcast(a1, 2u), b0, b1, b2, b3);
    (*acc)[11] = step4((*acc)[11], subgroupBroadcast(a1, 3u), b0, b1, b2, b3);
    (*acc)[12] = step4((*acc)[12], subgroupBroadcast(a1, 4u), b0, b1, b2, b3);
    (*acc)[13] = step4((*acc)[13], subgroupBroadcast(a1, 5u), b0, b1, b2, b3);
    (*acc)[14] = step4((*acc)[14], subgroupBroadcast(a1, 6u), b0, b1, b2, b3);
    (*acc)[15] = step4((*acc)[15], subgroupBroadcast(a1, 7u), b0, b1, b2, b3);
    (*acc)[16] = step4((*acc)[16], subgroupBroadcast(a2, 0u), b0, b1, b2, b3);
    (*acc)[17] = step4((*acc)[17], subgroupBroadcast(a2, 1u), b0, b1, b2, b3);
    (*acc)[18] = step4((*acc)[18], subgroupBroadcast(a2, 2u), b0, b1, b2, b3);
    (*acc)[19] = step4((*acc)[19], subgroupBroadcast(a2, 3u), b0, b1, b2, b3);
    (*acc)[20] = step4((*acc)[20], subgroupBroadcast(a2, 4u), b0, b1, b2, b3);
    (*acc)[21] = step4((*acc)[21], subgroupBroadcast(a2, 5u), b0, b1, b2, b3);
    (*acc)[22] = step4((*acc)[22], subgroupBroadcast(a2, 6u), b0, b1, b2, b3);
    (*acc)[23] = step4((*acc)[23], subgroupBroadcast(a2, 7u), b0, b1, b2, b3);
    (*acc)[24] = step4((*acc)[24], subgroupBroadcast(a3, 0u), b0, b1, b2, b3);
    (*acc)[25] = step4((*acc)[25], subgroupBroadcast(a3, 1u), b0, b1, b2, b3);
    (*acc)[26] = step4((*acc)[26], subgroupBroadcast(a3, 2u), b0, b1, b2, b3);
    (*acc)[27] = step4((*acc)[27], subgroupBroadcast(a3, 3u), b0, b1, b2, b3);
    (*acc)[28] = step4((*acc)[28], subgroupBroadcast(a3, 4u), b0, b1, b2, b3);
    (*acc)[29] = step4((*acc)[29], subgroupBroadcast(a3, 5u), b0, b1, b2, b3);
    (*acc)[30] = step4((*acc)[30], subgroupBroadcast(a3, 6u), b0, b1, b2, b3);
    (*acc)[31] = step4((*acc)[31], subgroupBroadcast(a3, 7u), b0, b1, b2, b3);
}

// One step of all 32 rows: a_q = A[m0 + lane + 8 q, k], b = the lane's B[k, columns].
fn add1(acc: ptr<function, Acc>, a0: f32, a1: f32, a2: f32, a3: f32, b: vec4<f32>) {
    (*acc)[0] = (*acc)[0] + subgroupBroadcast(a0, 0u) * b;
    (*acc)[1] = (*acc)[1] + subgroupBroadcast(a0, 1u) * b;
    (*acc)[2] = (*acc)[2] + subgroupBroadcast(a0, 2u) * b;
    (*acc)[3] = (*acc)[3] + subgroupBroadcast(a0, 3u) * b;
    (*acc)[4] = (*acc)[4] + subgroupBroadcast(a0, 4u) * b;
    (*acc)[5] = (*acc)[5] + subgroupBroadcast(a0, 5u) * b;
    (*acc)[6] = (*acc)[6] + subgroupBroadcast(a0, 6u) * b;
    (*acc)[7] = (*acc)[7] + subgroupBroadcast(a0, 7u) * b;
    (*acc)[8] = (*acc)[8] + subgroupBroadcast(a1, 0u) * b;
    (*acc)[9] = (*acc)[9] + subgroupBroadcast(a1, 1u) * b;
    (*acc)[10] = (*acc)[10] + subgroupBroadcast(a1, 2u) * b;
    (*acc)[11] = (*acc)[11] + subgroupBroadcast(a1, 3u) * b;
    (*acc)[12] = (*acc)[12] + subgroupBroadcast(a1, 4u) * b;
    (*acc)[13] = (*acc)[13] + subgroupBroadcast(a1, 5u) * b;
    (*acc)[14] = (*acc)[14] + subgroupBroadcast(a1, 6u) * b;
    (*acc)[15] = (*acc)[15] + subgroupBroadcast(a1, 7u) * b;
    (*acc)[16] = (*acc)[16] + subgroupBroadcast(a2, 0u) * b;
    (*acc)[17] = (*acc)[17] + subgroupBroadcast(a2, 1u) * b;
    (*acc)[18] = (*acc)[18] + subgroupBroadcast(a2, 2u) * b;
    (*acc)[19] = (*acc)[19] + subgroupBroadcast(a2, 3u) * b;
    (*acc)[20] = (*acc)[20] + subgroupBroadcast(a2, 4u) * b;
    (*acc)[21] = (*acc)[21] + subgroupBroadcast(a2, 5u) * b;
    (*acc)[22] = (*acc)[22] + subgroupBroadcast(a2, 6u) * b;
    (*acc)[23] = (*acc)[23] + subgroupBroadcast(a2, 7u) * b;
    (*acc)[24] = (*acc)[24] + subgroupBroadcast(a3, 0u) * b;
    (*acc)[25] = (*acc)[25] + subgroupBroadcast(a3, 1u) * b;
    (*acc)[26] = (*acc)[26] + subgroupBroadcast(a3, 2u) * b;
    (*acc)[27] = (*acc)[27] + subgroupBroadcast(a3, 3u) * b;
    (*acc)[28] = (*acc)[28] + subgroupBroadcast(a3, 4u) * b;
    (*acc)[29] = (*acc)[29] + subgroupBroadcast(a3, 5u) * b;
    (*acc)[30] = (*acc)[30] + subgroupBroadcast(a3, 6u) * b;
    (*acc)[31] = (*acc)[31] + subgroupBroadcast(a3, 7u) * b;
}

// ---- dense_forward_sg: rows x outputs, k = input ----

// Four consecutive inputs of one row of x starting at index i (a valid row start + k).
fn f_x4(i: u32) -> vec4<f32> {
    return vec4<f32>(f_x[i], f_x[i + 1u], f_x[i + 2u], f_x[i + 3u]);
}

// W[o_j, k] for the lane's four outputs, whose rows of W start at w.
fn f_w(w: vec4<u32>, k: u32) -> vec4<f32> {
    return vec4<f32>(f_weights[w.x + k], f_weights[w.y + k], f_weights[w.z + k], f_weights[w.w + k]);
}

// Outputs o .. o + 24 (step 8) of one row.
fn f_store(row: u32, o: u32, v: vec4<f32>) {
    if row >= p.rows {
        return;
    }
    let at = row * p.out_width;
    if o < p.out_width {
        f_y[at + o] = activate(v.x, p.activation);
    }
    if o + 8u < p.out_width {
        f_y[at + o + 8u] = activate(v.y, p.activation);
    }
    if o + 16u < p.out_width {
        f_y[at + o + 16u] = activate(v.z, p.activation);
    }
    if o + 24u < p.out_width {
        f_y[at + o + 24u] = activate(v.w, p.activation);
    }
}

@compute @workgroup_size(8)
fn dense_forward_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tiles_n = (p.out_width + BN - 1u) / BN;
    let tiles_m = (p.rows + BM - 1u) / BM;
    let tile = block_index(wg, nwg);
    // The whole workgroup (one subgroup) leaves together: tile is uniform.
    if tile >= tiles_m * tiles_n {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;
    // Loads are clamped into the matrix; rows and outputs past it are computed and not stored.
    let last_row = p.rows - 1u;
    let last_o = p.out_width - 1u;
    let xr = vec4<u32>(
        min(m0 + lane, last_row),
        min(m0 + lane + 8u, last_row),
        min(m0 + lane + 16u, last_row),
        min(m0 + lane + 24u, last_row),
    ) * p.in_width;
    let o = vec4<u32>(
        min(n0 + lane, last_o),
        min(n0 + lane + 8u, last_o),
        min(n0 + lane + 16u, last_o),
        min(n0 + lane + 24u, last_o),
    );
    let w = o * p.in_width + vec4<u32>(p.weight_offset);
    let bias = vec4<f32>(
        f_weights[p.bias_offset + o.x],
        f_weights[p.bias_offset + o.y],
        f_weights[p.bias_offset + o.z],
        f_weights[p.bias_offset + o.w],
    );
    // Every sum starts at its bias.
    var acc = filled(bias);
    let k4 = p.in_width & ~3u;
    for (var k = 0u; k < k4; k = k + 4u) {
        add4(&acc, f_x4(xr.x + k), f_x4(xr.y + k), f_x4(xr.z + k), f_x4(xr.w + k),
            f_w(w, k), f_w(w, k + 1u), f_w(w, k + 2u), f_w(w, k + 3u));
    }
    for (var k = k4; k < p.in_width; k = k + 1u) {
        add1(&acc, f_x[xr.x + k], f_x[xr.y + k], f_x[xr.z + k], f_x[xr.w + k], f_w(w, k));
    }
    // One call per accumulator: acc is only ever indexed by constants, so it stays in
    // registers (a run-time index would put it in memory).
    f_store(m0 + 0u, n0 + lane, acc[0]);
    f_store(m0 + 1u, n0 + lane, acc[1]);
    f_store(m0 + 2u, n0 + lane, acc[2]);
    f_store(m0 + 3u, n0 + lane, acc[3]);
    f_store(m0 + 4u, n0 + lane, acc[4]);
    f_store(m0 + 5u, n0 + lane, acc[5]);
    f_store(m0 + 6u, n0 + lane, acc[6]);
    f_store(m0 + 7u, n0 + lane, acc[7]);
    f_store(m0 + 8u, n0 + lane, acc[8]);
    f_store(m0 + 9u, n0 + lane, acc[9]);
    f_store(m0 + 10u, n0 + lane, acc[10]);
    f_store(m0 + 11u, n0 + lane, acc[11]);
    f_store(m0 + 12u, n0 + lane, acc[12]);
    f_store(m0 + 13u, n0 + lane, acc[13]);
    f_store(m0 + 14u, n0 + lane, acc[14]);
    f_store(m0 + 15u, n0 + lane, acc[15]);
    f_store(m0 + 16u, n0 + lane, acc[16]);
    f_store(m0 + 17u, n0 + lane, acc[17]);
    f_store(m0 + 18u, n0 + lane, acc[18]);
    f_store(m0 + 19u, n0 + lane, acc[19]);
    f_store(m0 + 20u, n0 + lane, acc[20]);
    f_store(m0 + 21u, n0 + lane, acc[21]);
    f_store(m0 + 22u, n0 + lane, acc[22]);
    f_store(m0 + 23u, n0 + lane, acc[23]);
    f_store(m0 + 24u, n0 + lane, acc[24]);
    f_store(m0 + 25u, n0 + lane, acc[25]);
    f_store(m0 + 26u, n0 + lane, acc[26]);
    f_store(m0 + 27u, n0 + lane, acc[27]);
    f_store(m0 + 28u, n0 + lane, acc[28]);
    f_store(m0 + 29u, n0 + lane, acc[29]);
    f_store(m0 + 30u, n0 + lane, acc[30]);
    f_store(m0 + 31u, n0 + lane, acc[31]);
}

// ---- input_grad_sg: rows x inputs, k = output ----

fn ig_dz4(i: u32) -> vec4<f32> {
    return vec4<f32>(ig_dz[i], ig_dz[i + 1u], ig_dz[i + 2u], ig_dz[i + 3u]);
}

// W[k, i_j] for the lane's four inputs (w: weight_offset + i_j).
fn ig_w(w: vec4<u32>, k: u32) -> vec4<f32> {
    let at = k * p.in_width;
    return vec4<f32>(ig_weights[w.x + at], ig_weights[w.y + at], ig_weights[w.z + at], ig_weights[w.w + at]);
}

// dx[row, i] (= or +=) v for one i.
fn ig_store1(row: u32, i: u32, v: f32) {
    if i < p.in_width {
        let idx = row * p.in_width + i;
        if p.accumulate != 0u {
            ig_dx[idx] = ig_dx[idx] + v;
        } else {
            ig_dx[idx] = v;
        }
    }
}

// Inputs i .. i + 24 (step 8) of one row.
fn ig_store(row: u32, i: u32, v: vec4<f32>) {
    if row >= p.rows {
        return;
    }
    ig_store1(row, i, v.x);
    ig_store1(row, i + 8u, v.y);
    ig_store1(row, i + 16u, v.z);
    ig_store1(row, i + 24u, v.w);
}

@compute @workgroup_size(8)
fn input_grad_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tiles_n = (p.in_width + BN - 1u) / BN;
    let tiles_m = (p.rows + BM - 1u) / BM;
    let tile = block_index(wg, nwg);
    if tile >= tiles_m * tiles_n {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;
    let last_row = p.rows - 1u;
    let last_i = p.in_width - 1u;
    let dr = vec4<u32>(
        min(m0 + lane, last_row),
        min(m0 + lane + 8u, last_row),
        min(m0 + lane + 16u, last_row),
        min(m0 + lane + 24u, last_row),
    ) * p.out_width;
    let w = vec4<u32>(
        min(n0 + lane, last_i),
        min(n0 + lane + 8u, last_i),
        min(n0 + lane + 16u, last_i),
        min(n0 + lane + 24u, last_i),
    ) + vec4<u32>(p.weight_offset);
    var acc = filled(vec4<f32>(0.0));
    let k4 = p.out_width & ~3u;
    for (var k = 0u; k < k4; k = k + 4u) {
        add4(&acc, ig_dz4(dr.x + k), ig_dz4(dr.y + k), ig_dz4(dr.z + k), ig_dz4(dr.w + k),
            ig_w(w, k), ig_w(w, k + 1u), ig_w(w, k + 2u), ig_w(w, k + 3u));
    }
    for (var k = k4; k < p.out_width; k = k + 1u) {
        add1(&acc, ig_dz[dr.x + k], ig_dz[dr.y + k], ig_dz[dr.z + k], ig_dz[dr.w + k], ig_w(w, k));
    }
    // One call per accumulator: acc is only ever indexed by constants, so it stays in
    // registers (a run-time index would put it in memory).
    ig_store(m0 + 0u, n0 + lane, acc[0]);
    ig_store(m0 + 1u, n0 + lane, acc[1]);
    ig_store(m0 + 2u, n0 + lane, acc[2]);
    ig_store(m0 + 3u, n0 + lane, acc[3]);
    ig_store(m0 + 4u, n0 + lane, acc[4]);
    ig_store(m0 + 5u, n0 + lane, acc[5]);
    ig_store(m0 + 6u, n0 + lane, acc[6]);
    ig_store(m0 + 7u, n0 + lane, acc[7]);
    ig_store(m0 + 8u, n0 + lane, acc[8]);
    ig_store(m0 + 9u, n0 + lane, acc[9]);
    ig_store(m0 + 10u, n0 + lane, acc[10]);
    ig_store(m0 + 11u, n0 + lane, acc[11]);
    ig_store(m0 + 12u, n0 + lane, acc[12]);
    ig_store(m0 + 13u, n0 + lane, acc[13]);
    ig_store(m0 + 14u, n0 + lane, acc[14]);
    ig_store(m0 + 15u, n0 + lane, acc[15]);
    ig_store(m0 + 16u, n0 + lane, acc[16]);
    ig_store(m0 + 17u, n0 + lane, acc[17]);
    ig_store(m0 + 18u, n0 + lane, acc[18]);
    ig_store(m0 + 19u, n0 + lane, acc[19]);
    ig_store(m0 + 20u, n0 + lane, acc[20]);
    ig_store(m0 + 21u, n0 + lane, acc[21]);
    ig_store(m0 + 22u, n0 + lane, acc[22]);
    ig_store(m0 + 23u, n0 + lane, acc[23]);
    ig_store(m0 + 24u, n0 + lane, acc[24]);
    ig_store(m0 + 25u, n0 + lane, acc[25]);
    ig_store(m0 + 26u, n0 + lane, acc[26]);
    ig_store(m0 + 27u, n0 + lane, acc[27]);
    ig_store(m0 + 28u, n0 + lane, acc[28]);
    ig_store(m0 + 29u, n0 + lane, acc[29]);
    ig_store(m0 + 30u, n0 + lane, acc[30]);
    ig_store(m0 + 31u, n0 + lane, acc[31]);
}

// ---- weight_grad_partial_sg: outputs x columns, k = row of the split ----

// dz[r .. r + 4, o] (rows valid, o clamped).
fn wp_dz4(r: u32, o: u32) -> vec4<f32> {
    let n = p.out_width;
    return vec4<f32>(wp_dz[r * n + o], wp_dz[(r + 1u) * n + o], wp_dz[(r + 2u) * n + o], wp_dz[(r + 3u) * n + o]);
}

// [x | 1][r, c_j] for the lane's four columns: c holds min(c_j, in_width - 1), bias_col marks
// c_j == in_width (reads 1).
fn wp_xc(r: u32, c: vec4<u32>, bias_col: vec4<bool>) -> vec4<f32> {
    let at = r * p.in_width;
    let v = vec4<f32>(wp_x[at + c.x], wp_x[at + c.y], wp_x[at + c.z], wp_x[at + c.w]);
    return select(v, vec4<f32>(1.0), bias_col);
}

// Columns c .. c + 24 (step 8) of output o of the partial whose outputs start at row d.
fn wp_store(d: u32, o: u32, c: u32, v: vec4<f32>) {
    let cols = p.in_width + 1u;
    if o >= p.out_width {
        return;
    }
    let at = (d + o) * cols;
    if c < cols {
        wp_partial[at + c] = v.x;
    }
    if c + 8u < cols {
        wp_partial[at + c + 8u] = v.y;
    }
    if c + 16u < cols {
        wp_partial[at + c + 16u] = v.z;
    }
    if c + 24u < cols {
        wp_partial[at + c + 24u] = v.w;
    }
}

@compute @workgroup_size(8)
fn weight_grad_partial_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let cols = p.in_width + 1u;
    let tiles_n = (cols + BN - 1u) / BN;
    let tiles_m = (p.out_width + BM - 1u) / BM;
    var t = block_index(wg, nwg);
    if t >= tiles_n * tiles_m * p.split_count {
        return;
    }
    let n0 = (t % tiles_n) * BN;
    t = t / tiles_n;
    let m0 = (t % tiles_m) * BM;
    let split = t / tiles_m;
    if p.split_base + split >= p.split_count {
        return;
    }
    let start = min(split * p.rows_per_split, p.rows);
    let end = min(start + p.rows_per_split, p.rows);
    let last_o = p.out_width - 1u;
    let o = vec4<u32>(
        min(m0 + lane, last_o),
        min(m0 + lane + 8u, last_o),
        min(m0 + lane + 16u, last_o),
        min(m0 + lane + 24u, last_o),
    );
    let cj = vec4<u32>(n0 + lane) + vec4<u32>(0u, 8u, 16u, 24u);
    let bias_col = cj == vec4<u32>(p.in_width);
    let c = min(cj, vec4<u32>(p.in_width - 1u));
    var acc = filled(vec4<f32>(0.0));
    let r4 = start + ((end - start) & ~3u);
    for (var r = start; r < r4; r = r + 4u) {
        add4(&acc, wp_dz4(r, o.x), wp_dz4(r, o.y), wp_dz4(r, o.z), wp_dz4(r, o.w),
            wp_xc(r, c, bias_col), wp_xc(r + 1u, c, bias_col), wp_xc(r + 2u, c, bias_col),
            wp_xc(r + 3u, c, bias_col));
    }
    for (var r = r4; r < end; r = r + 1u) {
        let n = p.out_width;
        add1(&acc, wp_dz[r * n + o.x], wp_dz[r * n + o.y], wp_dz[r * n + o.z], wp_dz[r * n + o.w],
            wp_xc(r, c, bias_col));
    }
    let d = (p.split_base + split) * p.out_width;
    // One call per accumulator: acc is only ever indexed by constants, so it stays in
    // registers (a run-time index would put it in memory).
    wp_store(d, m0 + 0u, n0 + lane, acc[0]);
    wp_store(d, m0 + 1u, n0 + lane, acc[1]);
    wp_store(d, m0 + 2u, n0 + lane, acc[2]);
    wp_store(d, m0 + 3u, n0 + lane, acc[3]);
    wp_store(d, m0 + 4u, n0 + lane, acc[4]);
    wp_store(d, m0 + 5u, n0 + lane, acc[5]);
    wp_store(d, m0 + 6u, n0 + lane, acc[6]);
    wp_store(d, m0 + 7u, n0 + lane, acc[7]);
    wp_store(d, m0 + 8u, n0 + lane, acc[8]);
    wp_store(d, m0 + 9u, n0 + lane, acc[9]);
    wp_store(d, m0 + 10u, n0 + lane, acc[10]);
    wp_store(d, m0 + 11u, n0 + lane, acc[11]);
    wp_store(d, m0 + 12u, n0 + lane, acc[12]);
    wp_store(d, m0 + 13u, n0 + lane, acc[13]);
    wp_store(d, m0 + 14u, n0 + lane, acc[14]);
    wp_store(d, m0 + 15u, n0 + lane, acc[15]);
    wp_store(d, m0 + 16u, n0 + lane, acc[16]);
    wp_store(d, m0 + 17u, n0 + lane, acc[17]);
    wp_store(d, m0 + 18u, n0 + lane, acc[18]);
    wp_store(d, m0 + 19u, n0 + lane, acc[19]);
    wp_store(d, m0 + 20u, n0 + lane, acc[20]);
    wp_store(d, m0 + 21u, n0 + lane, acc[21]);
    wp_store(d, m0 + 22u, n0 + lane, acc[22]);
    wp_store(d, m0 + 23u, n0 + lane, acc[23]);
    wp_store(d, m0 + 24u, n0 + lane, acc[24]);
    wp_store(d, m0 + 25u, n0 + lane, acc[25]);
    wp_store(d, m0 + 26u, n0 + lane, acc[26]);
    wp_store(d, m0 + 27u, n0 + lane, acc[27]);
    wp_store(d, m0 + 28u, n0 + lane, acc[28]);
    wp_store(d, m0 + 29u, n0 + lane, acc[29]);
    wp_store(d, m0 + 30u, n0 + lane, acc[30]);
    wp_store(d, m0 + 31u, n0 + lane, acc[31]);
}
