//! Twins of the dense kernels (dense_forward.wgsl, dense_backward.wgsl): the forward pass, the
//! activation gradient, the input gradient and the split-then-reduce weight gradient. One file
//! for both shaders because they share the activations, the grouped parameter sets and the
//! register blocking that keeps every sum in the shaders' order.

use crate::layout::DenseParams;

const LEAKY_SLOPE: f32 = 0.01;
const TANH_CLAMP: f32 = 15.0;

/// The shaders' activation of one pre-activation (shared with the cpu-gemm executor).
pub(crate) fn activate(z: f32, activation: u32) -> f32 {
    match activation {
        1 => z.max(0.0),
        2 => {
            if z > 0.0 {
                z
            } else {
                z * LEAKY_SLOPE
            }
        }
        3 => z.clamp(-TANH_CLAMP, TANH_CLAMP).tanh(),
        _ => z,
    }
}

fn act_derivative(y: f32, activation: u32) -> f32 {
    match activation {
        1 => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        2 => {
            if y > 0.0 {
                1.0
            } else {
                LEAKY_SLOPE
            }
        }
        3 => 1.0 - y * y,
        _ => 1.0,
    }
}

fn set_base(p: &DenseParams, group_ids: &[u32], row: usize) -> usize {
    if p.group_count > 1 {
        group_ids[row] as usize * p.group_stride as usize
    } else {
        0
    }
}

/// Rows and outputs of one register block in the dense twins: the loops below keep an
/// `RB x OB` block of accumulators in registers and vectorise over its OB columns. Blocking only
/// regroups independent sums; every accumulator still adds its terms one at a time in the
/// documented order, so results are bit-identical to the plain loops.
const RB: usize = 4;
const OB: usize = 8;

/// The distinct parameter sets of `rows` rows, each with its rows in ascending order (one set,
/// 0, when the network is not grouped).
fn rows_by_set(p: &DenseParams, group_ids: &[u32], rows: usize) -> Vec<(usize, Vec<usize>)> {
    if p.group_count <= 1 {
        return vec![(0, (0..rows).collect())];
    }
    let mut sets: Vec<(usize, Vec<usize>)> = Vec::new();
    for row in 0..rows {
        let base = set_base(p, group_ids, row);
        match sets.iter_mut().find(|(b, _)| *b == base) {
            Some((_, v)) => v.push(row),
            None => sets.push((base, vec![row])),
        }
    }
    sets
}

/// Twin of `dense_forward`. W of each set is transposed into scratch so a block of outputs is a
/// contiguous run for every input i.
pub fn dense_forward(
    p: &DenseParams,
    x: &[f32],
    weights: &[f32],
    group_ids: &[u32],
    y: &mut [f32],
) {
    let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
    let mut wt = vec![0.0f32; n_in * n_out];
    for (base, rows) in rows_by_set(p, group_ids, p.rows as usize) {
        let w = &weights[base + p.weight_offset as usize..][..n_in * n_out];
        let bias = &weights[base + p.bias_offset as usize..][..n_out];
        for o in 0..n_out {
            for i in 0..n_in {
                wt[i * n_out + o] = w[o * n_in + i];
            }
        }
        let mut blocks = rows.chunks_exact(RB);
        for rb in &mut blocks {
            let mut o0 = 0;
            while o0 + OB <= n_out {
                let mut acc = [[0.0f32; OB]; RB];
                for a in acc.iter_mut() {
                    a.copy_from_slice(&bias[o0..o0 + OB]);
                }
                for i in 0..n_in {
                    let wr: &[f32; OB] = wt[i * n_out + o0..][..OB].try_into().expect("OB");
                    for (r, a) in acc.iter_mut().enumerate() {
                        let xv = x[rb[r] * n_in + i];
                        for k in 0..OB {
                            a[k] += wr[k] * xv;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    for k in 0..OB {
                        y[rb[r] * n_out + o0 + k] = activate(a[k], p.activation);
                    }
                }
                o0 += OB;
            }
            for &row in rb {
                forward_plain(p, x, w, bias, row, o0, y);
            }
        }
        for &row in blocks.remainder() {
            forward_plain(p, x, w, bias, row, 0, y);
        }
    }
}

/// Outputs `from..` of one row of `dense_forward`, one dot product at a time.
fn forward_plain(
    p: &DenseParams,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    row: usize,
    from: usize,
    y: &mut [f32],
) {
    let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
    let xr = &x[row * n_in..(row + 1) * n_in];
    for o in from..n_out {
        let wo = &w[o * n_in..][..n_in];
        let mut acc = bias[o];
        for i in 0..n_in {
            acc += wo[i] * xr[i];
        }
        y[row * n_out + o] = activate(acc, p.activation);
    }
}

/// Twin of `act_grad`.
pub fn act_grad(p: &DenseParams, y: &[f32], dy: &[f32], dz: &mut [f32]) {
    let n = p.rows as usize * p.out_width as usize;
    for i in 0..n {
        dz[i] = dy[i] * act_derivative(y[i], p.activation);
    }
}

/// Twin of `input_grad`: dx[row, i] = sum over o ascending of W[o, i] * dz[row, o].
pub fn input_grad(p: &DenseParams, dz: &[f32], weights: &[f32], group_ids: &[u32], dx: &mut [f32]) {
    let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
    let store = |dx: &mut [f32], idx: usize, v: f32| {
        dx[idx] = if p.accumulate != 0 { dx[idx] + v } else { v };
    };
    for (base, rows) in rows_by_set(p, group_ids, p.rows as usize) {
        let w = &weights[base + p.weight_offset as usize..][..n_in * n_out];
        let mut blocks = rows.chunks_exact(RB);
        for rb in &mut blocks {
            let mut i0 = 0;
            while i0 + OB <= n_in {
                let mut acc = [[0.0f32; OB]; RB];
                for o in 0..n_out {
                    let wr: &[f32; OB] = w[o * n_in + i0..][..OB].try_into().expect("OB");
                    for (r, a) in acc.iter_mut().enumerate() {
                        let d = dz[rb[r] * n_out + o];
                        for k in 0..OB {
                            a[k] += wr[k] * d;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    for k in 0..OB {
                        store(dx, rb[r] * n_in + i0 + k, a[k]);
                    }
                }
                i0 += OB;
            }
            for &row in rb {
                for i in i0..n_in {
                    let mut acc = 0.0f32;
                    for o in 0..n_out {
                        acc += w[o * n_in + i] * dz[row * n_out + o];
                    }
                    store(dx, row * n_in + i, acc);
                }
            }
        }
        for &row in blocks.remainder() {
            for i in 0..n_in {
                let mut acc = 0.0f32;
                for o in 0..n_out {
                    acc += w[o * n_in + i] * dz[row * n_out + o];
                }
                store(dx, row * n_in + i, acc);
            }
        }
    }
}

/// Twin of `weight_grad_partial`: per (split, set, o, c), the sum over the split's rows of the
/// set in ascending order of dz[row, o] * x[row, c] (c = in_width: the bias column, x = 1).
pub fn weight_grad_partial(
    p: &DenseParams,
    x: &[f32],
    dz: &[f32],
    group_ids: &[u32],
    partial: &mut [f32],
) {
    let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
    let cols = n_in + 1;
    let groups = p.group_count as usize;
    let rows = p.rows as usize;
    let per_split = groups * n_out * cols;
    let base = p.split_base as usize;
    partial[base * per_split..p.split_count as usize * per_split].fill(0.0);
    let mut set_rows: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for split in 0..p.split_count as usize - base {
        let start = (split * p.rows_per_split as usize).min(rows);
        let end = (start + p.rows_per_split as usize).min(rows);
        set_rows.iter_mut().for_each(Vec::clear);
        for r in start..end {
            let g = if groups == 1 {
                0
            } else {
                group_ids[r] as usize
            };
            if g < groups {
                set_rows[g].push(r);
            }
        }
        for (g, rs) in set_rows.iter().enumerate() {
            let dst = &mut partial[(base + split) * per_split + g * n_out * cols..][..n_out * cols];
            let mut o0 = 0;
            while o0 + RB <= n_out {
                let mut c0 = 0;
                while c0 + OB <= n_in {
                    let mut acc = [[0.0f32; OB]; RB];
                    for &r in rs {
                        let xr: &[f32; OB] = x[r * n_in + c0..][..OB].try_into().expect("OB");
                        for (j, a) in acc.iter_mut().enumerate() {
                            let d = dz[r * n_out + o0 + j];
                            for k in 0..OB {
                                a[k] += d * xr[k];
                            }
                        }
                    }
                    for (j, a) in acc.iter().enumerate() {
                        dst[(o0 + j) * cols + c0..][..OB].copy_from_slice(a);
                    }
                    c0 += OB;
                }
                for o in o0..o0 + RB {
                    partial_plain(x, dz, rs, n_in, n_out, o, c0, &mut dst[o * cols..][..cols]);
                }
                o0 += RB;
            }
            for o in o0..n_out {
                partial_plain(x, dz, rs, n_in, n_out, o, 0, &mut dst[o * cols..][..cols]);
            }
        }
    }
}

/// Columns `from..=n_in` (the last one the bias column) of one output of
/// `weight_grad_partial`, over rows `rs` in order.
#[allow(clippy::too_many_arguments)]
fn partial_plain(
    x: &[f32],
    dz: &[f32],
    rs: &[usize],
    n_in: usize,
    n_out: usize,
    o: usize,
    from: usize,
    dst: &mut [f32],
) {
    for &r in rs {
        let d = dz[r * n_out + o];
        let xr = &x[r * n_in..(r + 1) * n_in];
        for c in from..n_in {
            dst[c] += d * xr[c];
        }
        dst[n_in] += d;
    }
}

/// Twin of `weight_grad_reduce`.
pub fn weight_grad_reduce(p: &DenseParams, partial: &[f32], grads: &mut [f32]) {
    let (n_in, n_out) = (p.in_width as usize, p.out_width as usize);
    let cols = n_in + 1;
    let per_split = p.group_count as usize * n_out * cols;
    for idx in 0..per_split {
        let c = idx % cols;
        let o = (idx / cols) % n_out;
        let g = idx / cols / n_out;
        let mut acc = 0.0f32;
        for s in 0..p.split_count as usize {
            acc += partial[s * per_split + idx];
        }
        let set = g * p.group_stride as usize;
        let dst = if c < n_in {
            set + p.weight_offset as usize + o * n_in + c
        } else {
            set + p.bias_offset as usize + o
        };
        grads[dst] = if p.accumulate != 0 {
            grads[dst] + acc
        } else {
            acc
        };
    }
}
