// Dense layer forward for a batch, as a tiled GEMM:
//   y[row, o] = act(b[o] + sum_i W[o, i] * x[row, i])      (summed in order i = 0, 1, ...)
// Grouped networks: when group_count > 1 every row reads its own parameter set, selected by
// group_ids[row]; set g starts group_stride floats after set g - 1. Parameters of one layer are
// W (out_width x in_width, row-major) at weight_offset, then b (out_width) at bias_offset.
// The output is kept: backward derives the activation's derivative from it.
//
// Tiling: one workgroup of 64 invocations computes a 64-row x 64-output tile of y. The inner
// dimension advances 16 at a time: the workgroup stages x (64 x 16) and W (64 x 16) into
// workgroup memory, transposed to [k][row] and [k][output] so each step reads two vec4 of rows
// and two vec4 of outputs; every invocation keeps an 8 x 8 block of accumulators (rows
// ty * 8 .. + 8, outputs tx * 8 .. + 8). Each accumulator still adds its terms one at a time in
// ascending i, starting from the bias, so the sum's order is the CPU twin's. Staging loads are
// clamped into range and zeroed outside it (a zero term leaves the sum unchanged), so there is
// no divergent control flow around the barriers. Grouped networks loop over the parameter sets
// present in the tile (a bit mask built with integer workgroup atomics; sets >= 32 are always
// visited) and each row keeps the result of its own set.

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

// Tile sizes: TM rows x TN outputs per workgroup, TK of the inner dimension per stage.
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> p: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> group_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// [k][row / 4] and [k][output / 4].
var<workgroup> xs: array<vec4<f32>, 256>;
var<workgroup> ws: array<vec4<f32>, 256>;
var<workgroup> present_bits: atomic<u32>;
var<workgroup> present: u32;

fn activate(z: f32, activation: u32) -> f32 {
    switch activation {
        case 1u: { return max(z, 0.0); }
        case 2u: { return select(z * LEAKY_SLOPE, z, z > 0.0); }
        case 3u: { return tanh(clamp(z, -TANH_CLAMP, TANH_CLAMP)); }
        default: { return z; }
    }
}

fn group_bit(g: u32) -> u32 {
    return select(1u << g, 0xffffffffu, g >= 31u);
}

// x[row, k], zero outside the matrix.
fn load_x(row: u32, k: u32) -> f32 {
    let v = x[min(row, p.rows - 1u) * p.in_width + min(k, p.in_width - 1u)];
    return select(0.0, v, row < p.rows && k < p.in_width);
}

// W[o, k] of the set starting at w0, zero outside the matrix.
fn load_w(w0: u32, o: u32, k: u32) -> f32 {
    let v = weights[w0 + min(o, p.out_width - 1u) * p.in_width + min(k, p.in_width - 1u)];
    return select(0.0, v, o < p.out_width && k < p.in_width);
}

@compute @workgroup_size(64)
fn dense_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tiles_n = (p.out_width + TN - 1u) / TN;
    let tiles_m = (p.rows + TM - 1u) / TM;
    let tile = wg.y * nwg.x + wg.x;
    if tile >= tiles_m * tiles_n {
        return;
    }
    let m0 = (tile / tiles_n) * TM;
    let n0 = (tile % tiles_n) * TN;
    let tx = lid % 8u;
    let ty = lid / 8u;
    // Staging: invocation lid loads k = lid % 16 of row (output) quads lid / 16 + 4 j.
    let sk = lid % TK;
    let sq = lid / TK;

    if p.group_count > 1u {
        if lid == 0u {
            atomicStore(&present_bits, 0u);
        }
        workgroupBarrier();
        let row = m0 + lid;
        if row < p.rows {
            atomicOr(&present_bits, group_bit(group_ids[row]));
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
        let base = g * p.group_stride;
        let w0 = base + p.weight_offset;
        // Accumulators start at the bias: c[a][h] holds row ty * 8 + a, outputs
        // tx * 8 + 4 h .. + 4.
        var bias0 = vec4<f32>(0.0);
        var bias1 = vec4<f32>(0.0);
        for (var b = 0u; b < 4u; b = b + 1u) {
            let o0 = n0 + tx * 8u + b;
            let o1 = o0 + 4u;
            bias0[b] = weights[base + p.bias_offset + min(o0, p.out_width - 1u)];
            bias1[b] = weights[base + p.bias_offset + min(o1, p.out_width - 1u)];
        }
        var c00 = bias0; var c01 = bias1;
        var c10 = bias0; var c11 = bias1;
        var c20 = bias0; var c21 = bias1;
        var c30 = bias0; var c31 = bias1;
        var c40 = bias0; var c41 = bias1;
        var c50 = bias0; var c51 = bias1;
        var c60 = bias0; var c61 = bias1;
        var c70 = bias0; var c71 = bias1;

        for (var k0 = 0u; k0 < p.in_width; k0 = k0 + TK) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let q = sq + 4u * j;
                let r = m0 + q * 4u;
                xs[sk * 16u + q] = vec4<f32>(
                    load_x(r, k0 + sk),
                    load_x(r + 1u, k0 + sk),
                    load_x(r + 2u, k0 + sk),
                    load_x(r + 3u, k0 + sk),
                );
                let o = n0 + q * 4u;
                ws[sk * 16u + q] = vec4<f32>(
                    load_w(w0, o, k0 + sk),
                    load_w(w0, o + 1u, k0 + sk),
                    load_w(w0, o + 2u, k0 + sk),
                    load_w(w0, o + 3u, k0 + sk),
                );
            }
            workgroupBarrier();
            for (var k = 0u; k < TK; k = k + 1u) {
                let xa = xs[k * 16u + ty * 2u];
                let xb = xs[k * 16u + ty * 2u + 1u];
                let wa = ws[k * 16u + tx * 2u];
                let wb = ws[k * 16u + tx * 2u + 1u];
                c00 = c00 + xa.x * wa; c01 = c01 + xa.x * wb;
                c10 = c10 + xa.y * wa; c11 = c11 + xa.y * wb;
                c20 = c20 + xa.z * wa; c21 = c21 + xa.z * wb;
                c30 = c30 + xa.w * wa; c31 = c31 + xa.w * wb;
                c40 = c40 + xb.x * wa; c41 = c41 + xb.x * wb;
                c50 = c50 + xb.y * wa; c51 = c51 + xb.y * wb;
                c60 = c60 + xb.z * wa; c61 = c61 + xb.z * wb;
                c70 = c70 + xb.w * wa; c71 = c71 + xb.w * wb;
            }
            workgroupBarrier();
        }

        let r0 = m0 + ty * 8u;
        let o = n0 + tx * 8u;
        store_row(r0, o, g, c00, c01);
        store_row(r0 + 1u, o, g, c10, c11);
        store_row(r0 + 2u, o, g, c20, c21);
        store_row(r0 + 3u, o, g, c30, c31);
        store_row(r0 + 4u, o, g, c40, c41);
        store_row(r0 + 5u, o, g, c50, c51);
        store_row(r0 + 6u, o, g, c60, c61);
        store_row(r0 + 7u, o, g, c70, c71);
    }
}

// Outputs o .. o + 8 of one row, when the row is in set g.
fn store_row(row: u32, o: u32, g: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if row >= p.rows {
        return;
    }
    if p.group_count > 1u && group_ids[row] != g {
        return;
    }
    for (var b = 0u; b < 4u; b = b + 1u) {
        if o + b < p.out_width {
            y[row * p.out_width + o + b] = activate(lo[b], p.activation);
        }
        if o + 4u + b < p.out_width {
            y[row * p.out_width + o + 4u + b] = activate(hi[b], p.activation);
        }
    }
}
