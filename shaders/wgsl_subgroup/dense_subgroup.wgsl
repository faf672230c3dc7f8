// Subgroup variants of the three matrix kernels of a dense layer, for devices whose subgroups
// are exactly 8 invocations wide (Mesa's llvmpipe/lavapipe on 256-bit SIMD; see
// GpuContext::subgroup_dense). They compute the same sums in the same order as the tiled kernels
// of dense_forward.wgsl and dense_backward.wgsl (and their CPU twins):
//   dense_forward_sg:        y[row, o]  = act(b[o] + sum_i W[o, i] * x[row, i])   (i ascending)
//   input_grad_sg:           dx[row, i] = sum_o W[o, i] * dz[row, o]              (o ascending)
//   weight_grad_partial_sg:  per (split, o, c): sum over the split's rows (ascending) of
//                            dz[row, o] * x[row, c] (c = in_width: the bias column, x = 1)
// and two elementwise kernels of dense_backward.wgsl with vec4 loads (end of the file):
//   act_grad_v4:             dz = dy * act'(y)
//   weight_grad_reduce_v4:   per (o, c): sum of the partials in split order 0, 1, ...
// Only ungrouped layers (group_count = 1) run here, and only launches that are not split into
// row chunks; everything else runs the tiled kernels. Layout of DenseParams and parameters as in
// dense_forward.wgsl.
//
// Why a separate file: llvmpipe runs the invocations of a subgroup as the lanes of one SIMD
// register, and every storage or workgroup-memory load is a loop over the lanes with a branch
// per lane, so a load costs several cycles per lane (a vec4 load little more than a scalar
// one) while an FMA costs one instruction for all 8 lanes. The tiled kernels share operands
// through workgroup memory, which costs the same per lane as reading them from the buffer
// again. Here operands are shared through registers instead: each lane loads part of the shared
// operand and subgroupBroadcast hands it to the others (an element extract and a splat on
// llvmpipe). No workgroup memory and no barriers; every load is a vec4.
//
// Shape of one workgroup (= one subgroup of 8 lanes): a block of 32 "rows" x 32 "columns" of
// the result, with the reduction over k. Each lane keeps acc[a] (a < 32) with four columns in
// its components; for each k in ascending order acc[a][j] += A[row(a), k] * B[k, col(lane, j)]:
//   dense_forward_sg:        row(a) = m0 + a (A = x),  col = n0 + lane + 8 j (B = W^T),
//                            A row m0 + lane + 8 q loaded by lane, broadcast to acc[8 q + lane]
//   input_grad_sg:           row(a) = m0 + a (A = dz), col = n0 + 4 lane + j (B = W),
//                            A loaded and broadcast as in forward
//   weight_grad_partial_sg:  "rows" are outputs, row(8 e + l) = m0 + 4 l + e (A = dz^T: lane l
//                            loads outputs m0 + 4 l .. + 4 of each row), col = n0 + 4 lane + j
//                            (B = [x | 1]), k = the rows of the split
// The reduction runs four k at a time, then one at a time for the remainder; each accumulator
// still adds its terms one at a time in ascending k (a + t0 + t1 + t2 + t3 in WGSL is
// (((a + t0) + t1) + t2) + t3).
//
// Vec4 loads at any float offset: the buffers are bound as arrays of vec4 (the executor sizes
// every buffer to a multiple of 16 bytes), and four floats from offset s are cut out of the
// vec4s s / 4 and s / 4 + 1 (funnel). Along a row, the second vec4 of one step is the first of
// the next, so a row costs one load per four floats whatever its alignment.

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

// dense_forward_sg (bindings of dense_forward; group ids unused)
@group(0) @binding(1) var<storage, read> f_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> f_weights: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> f_y: array<f32>;

// input_grad_sg (bindings of input_grad; group ids unused)
@group(0) @binding(1) var<storage, read> ig_dz: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ig_weights: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> ig_dx: array<f32>;

// act_grad_v4 (bindings of act_grad)
@group(0) @binding(1) var<storage, read> ag_y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ag_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> ag_dz: array<vec4<f32>>;

// weight_grad_reduce_v4 (bindings of weight_grad_reduce)
@group(0) @binding(1) var<storage, read> wr_partial: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> wr_grads: array<f32>;

// weight_grad_partial_sg (bindings of weight_grad_partial; group ids unused)
@group(0) @binding(1) var<storage, read> wp_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wp_dz: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> wp_partial: array<f32>;

// The 32 accumulators of a lane, four columns each.
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

// Floats s .. s + 4 of a buffer, from lo = its vec4 s / 4, hi = vec4 s / 4 + 1 and sh = s % 4.
fn funnel(lo: vec4<f32>, hi: vec4<f32>, sh: u32) -> vec4<f32> {
    let s1 = vec4<f32>(lo.yzw, hi.x);
    let s2 = vec4<f32>(lo.zw, hi.xy);
    let s3 = vec4<f32>(lo.w, hi.xyz);
    return select(select(select(lo, s1, sh == 1u), s2, sh == 2u), s3, sh == 3u);
}

// Column c of a 4 x 4 block given as its rows: (r0[c], r1[c], r2[c], r3[c]).
fn column(r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, c: u32) -> vec4<f32> {
    return vec4<f32>(r0[c], r1[c], r2[c], r3[c]);
}

// Four steps k .. k + 4 for one accumulator: a, A's four values, B's four columns per step.
fn step4(a: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return a + av.x * b0 + av.y * b1 + av.z * b2 + av.w * b3;
}

// Four steps of all 32 accumulators: lane l's a_q (q < 4) holds the four A values of
// accumulator 8 q + l, b_c the lane's B values of step k + c.
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

// One step of all 32 accumulators: lane l's a_q = the A value of accumulator 8 q + l, b the
// lane's B values.
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

// ---- dense_forward_sg ----

fn f_x1(s: u32) -> f32 {
    return f_x[s >> 2u][s & 3u];
}

fn f_w1(s: u32) -> f32 {
    return f_weights[s >> 2u][s & 3u];
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
    let rows = min(vec4<u32>(m0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(last_row));
    let o = min(vec4<u32>(n0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(last_o));
    // Float offsets of this lane's four rows of x and four rows of W, split for the funnel.
    let xs = rows * p.in_width;
    let ws = o * p.in_width + vec4<u32>(p.weight_offset);
    let xq = xs >> vec4<u32>(2u);
    let xsh = xs & vec4<u32>(3u);
    let wq = ws >> vec4<u32>(2u);
    let wsh = ws & vec4<u32>(3u);
    let bo = vec4<u32>(p.bias_offset) + o;
    // Every sum starts at its bias.
    var acc = filled(vec4<f32>(f_w1(bo.x), f_w1(bo.y), f_w1(bo.z), f_w1(bo.w)));
    // The first vec4 of each row; each step loads the next one.
    var x0 = f_x[xq.x];
    var x1 = f_x[xq.y];
    var x2 = f_x[xq.z];
    var x3 = f_x[xq.w];
    var w0 = f_weights[wq.x];
    var w1 = f_weights[wq.y];
    var w2 = f_weights[wq.z];
    var w3 = f_weights[wq.w];
    let steps = p.in_width / 4u;
    for (var t = 1u; t <= steps; t = t + 1u) {
        let xn0 = f_x[xq.x + t];
        let xn1 = f_x[xq.y + t];
        let xn2 = f_x[xq.z + t];
        let xn3 = f_x[xq.w + t];
        let wn0 = f_weights[wq.x + t];
        let wn1 = f_weights[wq.y + t];
        let wn2 = f_weights[wq.z + t];
        let wn3 = f_weights[wq.w + t];
        // W[o_j, k .. k + 4] as rows j; add4 wants its columns (one step, four outputs).
        let v0 = funnel(w0, wn0, wsh.x);
        let v1 = funnel(w1, wn1, wsh.y);
        let v2 = funnel(w2, wn2, wsh.z);
        let v3 = funnel(w3, wn3, wsh.w);
        add4(&acc, funnel(x0, xn0, xsh.x), funnel(x1, xn1, xsh.y), funnel(x2, xn2, xsh.z),
            funnel(x3, xn3, xsh.w), column(v0, v1, v2, v3, 0u), column(v0, v1, v2, v3, 1u),
            column(v0, v1, v2, v3, 2u), column(v0, v1, v2, v3, 3u));
        x0 = xn0;
        x1 = xn1;
        x2 = xn2;
        x3 = xn3;
        w0 = wn0;
        w1 = wn1;
        w2 = wn2;
        w3 = wn3;
    }
    for (var k = steps * 4u; k < p.in_width; k = k + 1u) {
        add1(&acc, f_x1(xs.x + k), f_x1(xs.y + k), f_x1(xs.z + k), f_x1(xs.w + k),
            vec4<f32>(f_w1(ws.x + k), f_w1(ws.y + k), f_w1(ws.z + k), f_w1(ws.w + k)));
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

// ---- input_grad_sg ----

fn ig_dz1(s: u32) -> f32 {
    return ig_dz[s >> 2u][s & 3u];
}

// W[k, i .. i + 4] for the float offset s of W[k, i]; aligned: s is a multiple of 4 (a
// constant of each entry point, so the other path compiles away).
fn ig_w4(s: u32, aligned: bool) -> vec4<f32> {
    let q = s >> 2u;
    if aligned {
        return ig_weights[q];
    }
    return funnel(ig_weights[q], ig_weights[q + 1u], s & 3u);
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

// Inputs i .. i + 4 of one row.
fn ig_store(row: u32, i: u32, v: vec4<f32>) {
    if row >= p.rows {
        return;
    }
    ig_store1(row, i, v.x);
    ig_store1(row, i + 1u, v.y);
    ig_store1(row, i + 2u, v.z);
    ig_store1(row, i + 3u, v.w);
}

// input_grad_sg_aligned: weight_offset and in_width multiples of 4, so every W[k, i0 ..]
// starts a vec4 (one load instead of two).
@compute @workgroup_size(8)
fn input_grad_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    input_grad_body(wg, nwg, lane, false);
}

@compute @workgroup_size(8)
fn input_grad_sg_aligned(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    input_grad_body(wg, nwg, lane, true);
}

fn input_grad_body(wg: vec3<u32>, nwg: vec3<u32>, lane: u32, aligned: bool) {
    let tiles_n = (p.in_width + BN - 1u) / BN;
    let tiles_m = (p.rows + BM - 1u) / BM;
    let tile = block_index(wg, nwg);
    if tile >= tiles_m * tiles_n {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;
    let last_row = p.rows - 1u;
    let rows = min(vec4<u32>(m0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(last_row));
    let ds = rows * p.out_width;
    let dq = ds >> vec4<u32>(2u);
    let dsh = ds & vec4<u32>(3u);
    // This lane's inputs i0 .. i0 + 4: W[k, i0 ..] starts at ws + k * in_width. Inputs past
    // in_width read whatever follows (finite data or zero) into sums that are not stored.
    let i0 = n0 + 4u * lane;
    let ws = p.weight_offset + i0;
    var acc = filled(vec4<f32>(0.0));
    var d0 = ig_dz[dq.x];
    var d1 = ig_dz[dq.y];
    var d2 = ig_dz[dq.z];
    var d3 = ig_dz[dq.w];
    let steps = p.out_width / 4u;
    for (var t = 1u; t <= steps; t = t + 1u) {
        let dn0 = ig_dz[dq.x + t];
        let dn1 = ig_dz[dq.y + t];
        let dn2 = ig_dz[dq.z + t];
        let dn3 = ig_dz[dq.w + t];
        let k = 4u * (t - 1u);
        let s = ws + k * p.in_width;
        add4(&acc, funnel(d0, dn0, dsh.x), funnel(d1, dn1, dsh.y), funnel(d2, dn2, dsh.z),
            funnel(d3, dn3, dsh.w), ig_w4(s, aligned), ig_w4(s + p.in_width, aligned),
            ig_w4(s + 2u * p.in_width, aligned), ig_w4(s + 3u * p.in_width, aligned));
        d0 = dn0;
        d1 = dn1;
        d2 = dn2;
        d3 = dn3;
    }
    for (var k = steps * 4u; k < p.out_width; k = k + 1u) {
        add1(&acc, ig_dz1(ds.x + k), ig_dz1(ds.y + k), ig_dz1(ds.z + k), ig_dz1(ds.w + k),
            ig_w4(ws + k * p.in_width, aligned));
    }
    // One call per accumulator (constant indices keep acc in registers).
    ig_store(m0 + 0u, i0, acc[0]);
    ig_store(m0 + 1u, i0, acc[1]);
    ig_store(m0 + 2u, i0, acc[2]);
    ig_store(m0 + 3u, i0, acc[3]);
    ig_store(m0 + 4u, i0, acc[4]);
    ig_store(m0 + 5u, i0, acc[5]);
    ig_store(m0 + 6u, i0, acc[6]);
    ig_store(m0 + 7u, i0, acc[7]);
    ig_store(m0 + 8u, i0, acc[8]);
    ig_store(m0 + 9u, i0, acc[9]);
    ig_store(m0 + 10u, i0, acc[10]);
    ig_store(m0 + 11u, i0, acc[11]);
    ig_store(m0 + 12u, i0, acc[12]);
    ig_store(m0 + 13u, i0, acc[13]);
    ig_store(m0 + 14u, i0, acc[14]);
    ig_store(m0 + 15u, i0, acc[15]);
    ig_store(m0 + 16u, i0, acc[16]);
    ig_store(m0 + 17u, i0, acc[17]);
    ig_store(m0 + 18u, i0, acc[18]);
    ig_store(m0 + 19u, i0, acc[19]);
    ig_store(m0 + 20u, i0, acc[20]);
    ig_store(m0 + 21u, i0, acc[21]);
    ig_store(m0 + 22u, i0, acc[22]);
    ig_store(m0 + 23u, i0, acc[23]);
    ig_store(m0 + 24u, i0, acc[24]);
    ig_store(m0 + 25u, i0, acc[25]);
    ig_store(m0 + 26u, i0, acc[26]);
    ig_store(m0 + 27u, i0, acc[27]);
    ig_store(m0 + 28u, i0, acc[28]);
    ig_store(m0 + 29u, i0, acc[29]);
    ig_store(m0 + 30u, i0, acc[30]);
    ig_store(m0 + 31u, i0, acc[31]);
}

// ---- weight_grad_partial_sg ----

// Four floats from offset s of dz or x (aligned: s is a multiple of 4, as in ig_w4).
fn wp_dz4(s: u32, aligned: bool) -> vec4<f32> {
    let q = s >> 2u;
    if aligned {
        return wp_dz[q];
    }
    return funnel(wp_dz[q], wp_dz[q + 1u], s & 3u);
}

fn wp_x4(s: u32, aligned: bool) -> vec4<f32> {
    let q = s >> 2u;
    if aligned {
        return wp_x[q];
    }
    return funnel(wp_x[q], wp_x[q + 1u], s & 3u);
}

// [x | 1][r, c0 .. c0 + 4]: bias marks the component whose column is in_width (reads 1);
// columns past it read whatever follows, into sums that are not stored.
fn wp_xb(r: u32, c0: u32, bias: vec4<bool>, aligned: bool) -> vec4<f32> {
    return select(wp_x4(r * p.in_width + c0, aligned), vec4<f32>(1.0), bias);
}

// Columns c .. c + 4 of output o of the partial whose outputs start at row d.
fn wp_store(d: u32, o: u32, c: u32, v: vec4<f32>) {
    let cols = p.in_width + 1u;
    if o >= p.out_width {
        return;
    }
    let at = (d + o) * cols;
    if c < cols {
        wp_partial[at + c] = v.x;
    }
    if c + 1u < cols {
        wp_partial[at + c + 1u] = v.y;
    }
    if c + 2u < cols {
        wp_partial[at + c + 2u] = v.z;
    }
    if c + 3u < cols {
        wp_partial[at + c + 3u] = v.w;
    }
}

// weight_grad_partial_sg_aligned: in_width and out_width multiples of 4, so every row's
// four outputs of dz and four columns of x start a vec4.
@compute @workgroup_size(8)
fn weight_grad_partial_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    weight_grad_partial_body(wg, nwg, lane, false);
}

@compute @workgroup_size(8)
fn weight_grad_partial_sg_aligned(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    weight_grad_partial_body(wg, nwg, lane, true);
}

fn weight_grad_partial_body(wg: vec3<u32>, nwg: vec3<u32>, lane: u32, aligned: bool) {
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
    // This lane loads outputs m0 + 4 lane .. + 4 of dz (for accumulators 8 e + lane, e < 4)
    // and owns columns c0 .. c0 + 4.
    let o0 = m0 + 4u * lane;
    let c0 = n0 + 4u * lane;
    let bias = vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(p.in_width);
    var acc = filled(vec4<f32>(0.0));
    let r4 = start + ((end - start) & ~3u);
    for (var r = start; r < r4; r = r + 4u) {
        // dz[r + t, o0 .. o0 + 4] as rows t; accumulator 8 e + lane wants column e.
        let g0 = wp_dz4(r * p.out_width + o0, aligned);
        let g1 = wp_dz4((r + 1u) * p.out_width + o0, aligned);
        let g2 = wp_dz4((r + 2u) * p.out_width + o0, aligned);
        let g3 = wp_dz4((r + 3u) * p.out_width + o0, aligned);
        add4(&acc, column(g0, g1, g2, g3, 0u), column(g0, g1, g2, g3, 1u),
            column(g0, g1, g2, g3, 2u), column(g0, g1, g2, g3, 3u), wp_xb(r, c0, bias, aligned),
            wp_xb(r + 1u, c0, bias, aligned), wp_xb(r + 2u, c0, bias, aligned),
            wp_xb(r + 3u, c0, bias, aligned));
    }
    for (var r = r4; r < end; r = r + 1u) {
        let g = wp_dz4(r * p.out_width + o0, aligned);
        add1(&acc, g.x, g.y, g.z, g.w, wp_xb(r, c0, bias, aligned));
    }
    let d = (p.split_base + split) * p.out_width;
    // One call per accumulator (constant indices keep acc in registers); accumulator 8 e + l
    // is output m0 + 4 l + e.
    wp_store(d, m0 + 0u, c0, acc[0]);
    wp_store(d, m0 + 4u, c0, acc[1]);
    wp_store(d, m0 + 8u, c0, acc[2]);
    wp_store(d, m0 + 12u, c0, acc[3]);
    wp_store(d, m0 + 16u, c0, acc[4]);
    wp_store(d, m0 + 20u, c0, acc[5]);
    wp_store(d, m0 + 24u, c0, acc[6]);
    wp_store(d, m0 + 28u, c0, acc[7]);
    wp_store(d, m0 + 1u, c0, acc[8]);
    wp_store(d, m0 + 5u, c0, acc[9]);
    wp_store(d, m0 + 9u, c0, acc[10]);
    wp_store(d, m0 + 13u, c0, acc[11]);
    wp_store(d, m0 + 17u, c0, acc[12]);
    wp_store(d, m0 + 21u, c0, acc[13]);
    wp_store(d, m0 + 25u, c0, acc[14]);
    wp_store(d, m0 + 29u, c0, acc[15]);
    wp_store(d, m0 + 2u, c0, acc[16]);
    wp_store(d, m0 + 6u, c0, acc[17]);
    wp_store(d, m0 + 10u, c0, acc[18]);
    wp_store(d, m0 + 14u, c0, acc[19]);
    wp_store(d, m0 + 18u, c0, acc[20]);
    wp_store(d, m0 + 22u, c0, acc[21]);
    wp_store(d, m0 + 26u, c0, acc[22]);
    wp_store(d, m0 + 30u, c0, acc[23]);
    wp_store(d, m0 + 3u, c0, acc[24]);
    wp_store(d, m0 + 7u, c0, acc[25]);
    wp_store(d, m0 + 11u, c0, acc[26]);
    wp_store(d, m0 + 15u, c0, acc[27]);
    wp_store(d, m0 + 19u, c0, acc[28]);
    wp_store(d, m0 + 23u, c0, acc[29]);
    wp_store(d, m0 + 27u, c0, acc[30]);
    wp_store(d, m0 + 31u, c0, acc[31]);
}

// ---- act_grad_v4 and weight_grad_reduce_v4 ----
// The elementwise kernels of dense_backward.wgsl with vec4 loads: four elements per
// invocation, same arithmetic per element (ungrouped, unchunked launches only, as above).

fn act_derivative4(y: vec4<f32>, activation: u32) -> vec4<f32> {
    switch activation {
        case 1u: { return select(vec4<f32>(0.0), vec4<f32>(1.0), y > vec4<f32>(0.0)); }
        case 2u: { return select(vec4<f32>(LEAKY_SLOPE), vec4<f32>(1.0), y > vec4<f32>(0.0)); }
        case 3u: { return vec4<f32>(1.0) - y * y; }
        default: { return vec4<f32>(1.0); }
    }
}

@compute @workgroup_size(64)
fn act_grad_v4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = block_index(wg, nwg) * 64u + lid;
    let n = p.rows * p.out_width;
    if 4u * i >= n {
        return;
    }
    let dz = ag_dy[i] * act_derivative4(ag_y[i], p.activation);
    if 4u * i + 4u <= n {
        ag_dz[i] = dz;
    } else {
        // The last, partial vec4: words past n are not the launch's to write.
        for (var c = 0u; 4u * i + c < n; c = c + 1u) {
            ag_dz[i][c] = dz[c];
        }
    }
}

// The reduced gradient of partial element (o, c) into its parameter's gradient; idx is its
// partial index (past the partial: nothing to store).
fn wr_store(idx: u32, o: u32, c: u32, v: f32) {
    if idx >= p.out_width * (p.in_width + 1u) {
        return;
    }
    var dst = p.bias_offset + o;
    if c < p.in_width {
        dst = p.weight_offset + o * p.in_width + c;
    }
    if p.accumulate != 0u {
        wr_grads[dst] = wr_grads[dst] + v;
    } else {
        wr_grads[dst] = v;
    }
}

// (o, c + 1) after (o, c), wrapping at cols columns (integer division costs llvmpipe a scalar
// loop over the lanes; one per invocation is enough).
fn wr_next(oc: vec2<u32>, cols: u32) -> vec2<u32> {
    let c = oc.y + 1u;
    return select(vec2<u32>(oc.x, c), vec2<u32>(oc.x + 1u, c - cols), c >= cols);
}

@compute @workgroup_size(64)
fn weight_grad_reduce_v4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i0 = (block_index(wg, nwg) * 64u + lid) * 4u;
    let cols = p.in_width + 1u;
    let per_split = p.out_width * cols;
    if i0 >= per_split {
        return;
    }
    // Partials i0 .. i0 + 4 of every split, summed in split order.
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s < p.split_count; s = s + 1u) {
        let at = s * per_split + i0;
        let q = at >> 2u;
        acc = acc + funnel(wr_partial[q], wr_partial[q + 1u], at & 3u);
    }
    let o0 = i0 / cols;
    let oc0 = vec2<u32>(o0, i0 - o0 * cols);
    let oc1 = wr_next(oc0, cols);
    let oc2 = wr_next(oc1, cols);
    let oc3 = wr_next(oc2, cols);
    wr_store(i0, oc0.x, oc0.y, acc.x);
    wr_store(i0 + 1u, oc1.x, oc1.y, acc.y);
    wr_store(i0 + 2u, oc2.x, oc2.y, acc.z);
    wr_store(i0 + 3u, oc3.x, oc3.y, acc.w);
}
