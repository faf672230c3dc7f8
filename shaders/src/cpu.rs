//! The CPU twin of every WGSL kernel: the same parameters, the same index space, the same
//! summation order (so results differ from the GPU only by rounding of fused multiply-adds and
//! of the transcendental functions), and the same integer RNG (bit-identical draws).
//! These are the test oracle and, through [`crate::CpuExecutor`], the `cpu` backend.
//! Loops are reordered for cache locality where that keeps every sum's order.

// Index loops on purpose: each mirrors its WGSL kernel's loop, so the orders visibly match.
#![allow(clippy::needless_range_loop)]

use crate::layout::*;

const LEAKY_SLOPE: f32 = 0.01;
const TANH_CLAMP: f32 = 15.0;

fn activate(z: f32, activation: u32) -> f32 {
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

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [
                k[0].wrapping_add(0x9E37_79B9),
                k[1].wrapping_add(0xBB67_AE85),
            ];
        }
        let p0 = u64::from(0xD251_1F53u32) * u64::from(c[0]);
        let p1 = u64::from(0xCD9E_8D57u32) * u64::from(c[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The uniform in [0, 1) that `head_sample` draws for (row, component): 24 bits of Philox.
pub fn sample_uniform(p: &HeadParams, row: u32, component: u32) -> f32 {
    let bits = philox4x32_10(
        [
            p.iteration,
            p.step,
            p.agent_offset.wrapping_add(row),
            component,
        ],
        [p.seed_lo, p.seed_hi],
    );
    (bits[0] >> 8) as f32 * (1.0 / 16_777_216.0)
}

fn allowed(p: &HeadParams, masks: &[u32], row: usize, j: usize) -> bool {
    p.use_mask == 0 || masks[row * p.logit_width as usize + j] != 0
}

fn component_lse(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    row: usize,
    start: usize,
    size: usize,
) -> f32 {
    let z = &logits[row * p.logit_width as usize..];
    let mut m = -3.0e38f32;
    for j in start..start + size {
        if allowed(p, masks, row, j) {
            m = m.max(z[j]);
        }
    }
    let mut s = 0.0f32;
    for j in start..start + size {
        if allowed(p, masks, row, j) {
            s += (z[j] - m).exp();
        }
    }
    m + s.ln()
}

fn component_entropy(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    row: usize,
    start: usize,
    size: usize,
    lse: f32,
) -> f32 {
    let z = &logits[row * p.logit_width as usize..];
    let mut h = 0.0f32;
    for j in start..start + size {
        if allowed(p, masks, row, j) {
            let lp = z[j] - lse;
            h -= lp.exp() * lp;
        }
    }
    h
}

/// Twin of `head_sample`.
pub fn head_sample(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    component_sizes: &[u32],
    actions: &mut [u32],
    policy_out: &mut [f32],
) {
    let width = p.logit_width as usize;
    let n_comp = p.component_count as usize;
    for row in 0..p.rows as usize {
        let z = &logits[row * width..];
        let (mut start, mut logp, mut entropy) = (0usize, 0.0f32, 0.0f32);
        for c in 0..n_comp {
            let size = component_sizes[c] as usize;
            let lse = component_lse(p, logits, masks, row, start, size);
            let u = sample_uniform(p, row as u32, c as u32);
            let (mut action, mut last_allowed, mut found, mut cdf) = (start, start, false, 0.0f32);
            for j in start..start + size {
                if allowed(p, masks, row, j) {
                    last_allowed = j;
                    cdf += (z[j] - lse).exp();
                    if !found && u < cdf {
                        action = j;
                        found = true;
                    }
                }
            }
            if !found {
                action = last_allowed;
            }
            actions[row * n_comp + c] = (action - start) as u32;
            logp += z[action] - lse;
            entropy += component_entropy(p, logits, masks, row, start, size, lse);
            start += size;
        }
        policy_out[row * 2] = logp;
        policy_out[row * 2 + 1] = entropy;
    }
}

/// Twin of `head_evaluate`.
pub fn head_evaluate(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    component_sizes: &[u32],
    actions: &[u32],
    policy_out: &mut [f32],
) {
    let width = p.logit_width as usize;
    let n_comp = p.component_count as usize;
    for row in 0..p.rows as usize {
        let z = &logits[row * width..];
        let (mut start, mut logp, mut entropy) = (0usize, 0.0f32, 0.0f32);
        for c in 0..n_comp {
            let size = component_sizes[c] as usize;
            let lse = component_lse(p, logits, masks, row, start, size);
            let action = start + actions[row * n_comp + c] as usize;
            logp += z[action] - lse;
            entropy += component_entropy(p, logits, masks, row, start, size, lse);
            start += size;
        }
        policy_out[row * 2] = logp;
        policy_out[row * 2 + 1] = entropy;
    }
}

/// Twin of `head_backward`.
pub fn head_backward(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    component_sizes: &[u32],
    actions: &[u32],
    policy_grad: &[f32],
    logit_grad: &mut [f32],
) {
    let width = p.logit_width as usize;
    let n_comp = p.component_count as usize;
    for row in 0..p.rows as usize {
        let g_logp = policy_grad[row * 2];
        let g_entropy = policy_grad[row * 2 + 1];
        let mut start = 0usize;
        for c in 0..n_comp {
            let size = component_sizes[c] as usize;
            let lse = component_lse(p, logits, masks, row, start, size);
            let h = component_entropy(p, logits, masks, row, start, size, lse);
            let action = start + actions[row * n_comp + c] as usize;
            for j in start..start + size {
                let mut g = 0.0f32;
                if allowed(p, masks, row, j) {
                    let lp = logits[row * width + j] - lse;
                    let prob = lp.exp();
                    let onehot = if j == action { 1.0 } else { 0.0 };
                    g = g_logp * (onehot - prob) - g_entropy * prob * (lp + h);
                }
                logit_grad[row * width + j] = g;
            }
            start += size;
        }
    }
}

/// Agent `a`'s recursion over its first `len` steps, latest first, from the (value, advantage)
/// that follow them: the WGSL `walk` both GAE entry points share.
fn gae_walk(
    p: &GaeParams,
    a: usize,
    len: usize,
    (mut next_value, mut running): (f32, f32),
    (rewards, values, dones): (&[f32], &[f32], &[f32]),
    advantages: &mut [f32],
    returns: &mut [f32],
) {
    let agents = p.agents as usize;
    for k in 0..len {
        let i = (len - 1 - k) * agents + a;
        let nonterminal = 1.0 - dones[i];
        let delta = rewards[i] + p.gamma * next_value * nonterminal - values[i];
        running = delta + p.gamma * p.gae_lambda * nonterminal * running;
        advantages[i] = running;
        returns[i] = running + values[i];
        next_value = values[i];
    }
}

/// Twin of `gae`.
pub fn gae(
    p: &GaeParams,
    rewards: &[f32],
    values: &[f32],
    dones: &[f32],
    last_values: &[f32],
    advantages: &mut [f32],
    returns: &mut [f32],
) {
    let (steps, agents) = (p.steps as usize, p.agents as usize);
    for a in 0..agents {
        let (next_value, running) = if p.carry != 0 {
            (values[steps * agents + a], advantages[steps * agents + a])
        } else {
            (last_values[a], 0.0f32)
        };
        let inputs = (rewards, values, dones);
        gae_walk(
            p,
            a,
            steps,
            (next_value, running),
            inputs,
            advantages,
            returns,
        );
    }
}

/// Twin of `gae_ragged`.
#[allow(clippy::too_many_arguments)]
pub fn gae_ragged(
    p: &GaeParams,
    rewards: &[f32],
    values: &[f32],
    dones: &[f32],
    last_values: &[f32],
    advantages: &mut [f32],
    returns: &mut [f32],
    lengths: &[u32],
) {
    let (steps, agents) = (p.steps as usize, p.agents as usize);
    for a in 0..agents {
        let len = (lengths[a] as usize).min(steps);
        let inputs = (rewards, values, dones);
        gae_walk(
            p,
            a,
            len,
            (last_values[a], 0.0),
            inputs,
            advantages,
            returns,
        );
    }
}

/// Twin of `ppo_loss` (with `p.pairwise`, the reference's B x B HS ratio; see the shader).
#[allow(clippy::too_many_arguments)]
pub fn ppo_loss(
    p: &LossParams,
    policy_new: &[f32],
    values_new: &[f32],
    policy_old: &[f32],
    values_old: &[f32],
    advantages: &[f32],
    adv_adjust: &[f32],
    returns: &[f32],
    policy_grad: &mut [f32],
    value_grad: &mut [f32],
    terms: &mut [f32],
) {
    let rows = p.rows as usize;
    for i in 0..rows {
        let adv = advantages[i] + adv_adjust[i];
        let log_ratio = policy_new[i * 2] - policy_old[i * 2];
        let ratio = log_ratio.exp();
        let (pg, d_pg, clipped) = if p.pairwise != 0 {
            // Row i's pairs (r_ki = exp(logp_new_i - logp_old_k)), k in order.
            let lp_new = policy_new[i * 2];
            let (mut pg_sum, mut d_sum, mut clipped_sum) = (0.0f32, 0.0f32, 0.0f32);
            for k in 0..rows {
                let r = (lp_new - policy_old[k * 2]).exp();
                let u = -adv * r;
                let c = -adv * r.clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef);
                pg_sum += u.max(c);
                d_sum += if u >= c { -adv * r } else { 0.0 };
                clipped_sum += if (r - 1.0).abs() > p.clip_coef {
                    1.0
                } else {
                    0.0
                };
            }
            let inv_b = 1.0 / p.rows as f32;
            (pg_sum * inv_b, d_sum * inv_b, clipped_sum * inv_b)
        } else {
            let pg_unclipped = -adv * ratio;
            let pg_clipped = -adv * ratio.clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef);
            let d_pg = if pg_unclipped >= pg_clipped {
                -adv * ratio
            } else {
                0.0
            };
            let clipped = if (ratio - 1.0).abs() > p.clip_coef {
                1.0
            } else {
                0.0
            };
            (pg_unclipped.max(pg_clipped), d_pg, clipped)
        };

        let v = values_new[i];
        let err = v - returns[i];
        let mut v_loss = err * err;
        let mut d_v = 2.0 * err;
        if p.clip_vloss != 0 {
            let v_old = values_old[i];
            let dv = v - v_old;
            let err_clipped = v_old + dv.clamp(-p.clip_coef, p.clip_coef) - returns[i];
            let v_loss_clipped = err_clipped * err_clipped;
            if v_loss_clipped > v_loss {
                v_loss = v_loss_clipped;
                d_v = if dv > -p.clip_coef && dv < p.clip_coef {
                    2.0 * err_clipped
                } else {
                    0.0
                };
            }
        }
        let scale = p.loss_scale * p.loss_norm;
        policy_grad[i * 2] = scale * d_pg;
        policy_grad[i * 2 + 1] = -scale * p.ent_coef;
        value_grad[i] = scale * p.vf_coef * d_v;
        terms[i * 4] = pg;
        terms[i * 4 + 1] = v_loss;
        terms[i * 4 + 2] = (ratio - 1.0) - log_ratio;
        terms[i * 4 + 3] = clipped;
    }
}

/// Twin of `adam_begin`.
pub fn adam_begin(p: &AdamParams, state: &mut AdamState) {
    state.step += 1;
    state.beta1_pow *= p.beta1;
    state.beta2_pow *= p.beta2;
}

/// Twin of `adam_update`.
pub fn adam_update(
    p: &AdamParams,
    state: &AdamState,
    norm_stats: &GroupStats,
    params: &mut [f32],
    grads: &[f32],
    moment1: &mut [f32],
    moment2: &mut [f32],
) {
    let mut clip = 1.0f32;
    if p.max_grad_norm > 0.0 {
        let norm = norm_stats.sum.sqrt();
        clip = (p.max_grad_norm / (norm + 1e-6)).min(1.0);
    }
    for i in 0..p.param_count as usize {
        let g = grads[i] * clip;
        let m = p.beta1 * moment1[i] + (1.0 - p.beta1) * g;
        let v = p.beta2 * moment2[i] + (1.0 - p.beta2) * g * g;
        moment1[i] = m;
        moment2[i] = v;
        let m_hat = m / (1.0 - state.beta1_pow);
        let v_hat = v / (1.0 - state.beta2_pow);
        params[i] -= p.lr * m_hat / (v_hat.sqrt() + p.epsilon);
    }
}

/// Twin of `reduce_partial`.
pub fn reduce_partial(
    p: &ReduceParams,
    values: &[f32],
    group_ids: &[u32],
    center: &[GroupStats],
    partial: &mut [GroupPartial],
) {
    let groups = p.group_count as usize;
    let rows = p.rows as usize;
    let base = p.split_base as usize;
    for split in 0..(p.split_count as usize).saturating_sub(base) {
        let start = (split * p.rows_per_split as usize).min(rows);
        let end = (start + p.rows_per_split as usize).min(rows);
        for g in 0..groups {
            let c = if p.mode == ReduceMode::SquaredDeviation as u32 {
                center[g].mean
            } else {
                0.0
            };
            let (mut sum, mut count) = (0.0f32, 0u32);
            for r in start..end {
                if p.use_groups == 0 || group_ids[r] as usize == g {
                    let v = values[r * p.value_stride as usize + p.value_offset as usize];
                    sum += match p.mode {
                        1 => (v - c) * (v - c),
                        2 => v * v,
                        _ => v,
                    };
                    count += 1;
                }
            }
            partial[(base + split) * groups + g] = GroupPartial { sum, count };
        }
    }
}

/// Twin of `reduce_final`.
pub fn reduce_final(p: &ReduceParams, partial: &[GroupPartial], stats: &mut [GroupStats]) {
    let groups = p.group_count as usize;
    for g in 0..groups {
        let (mut sum, mut count) = (0.0f32, 0u32);
        for s in 0..p.split_count as usize {
            let part = partial[s * groups + g];
            sum += part.sum;
            count += part.count;
        }
        let mean = if count > 0 { sum / count as f32 } else { 0.0 };
        let variance = if count > 1 {
            sum / (count - 1) as f32
        } else {
            0.0
        };
        stats[p.output_offset as usize + g] = GroupStats {
            sum,
            count,
            mean,
            variance,
        };
    }
}

/// Twin of `normalize`.
pub fn normalize(
    p: &ReduceParams,
    values: &mut [f32],
    group_ids: &[u32],
    mean: &[GroupStats],
    variance: &[GroupStats],
) {
    for r in 0..p.rows as usize {
        let g = if p.use_groups != 0 {
            group_ids[r] as usize
        } else {
            0
        };
        let i = r * p.value_stride as usize + p.value_offset as usize;
        values[i] = (values[i] - mean[g].mean) / (variance[g].variance.sqrt() + p.epsilon);
    }
}

/// Twin of `copy_rows`.
pub fn copy_rows(p: &CopyParams, src: &[u32], index: &[u32], dst: &mut [u32]) {
    let w = p.width as usize;
    for r in 0..p.rows as usize {
        let (mut from, mut to) = (p.src_base as usize + r, p.dst_base as usize + r);
        if p.mode == CopyMode::Gather as u32 {
            from = index[r] as usize;
        } else if p.mode == CopyMode::Scatter as u32 {
            to = index[r] as usize;
        }
        dst[to * w..(to + 1) * w].copy_from_slice(&src[from * w..(from + 1) * w]);
    }
}

/// fairness.wgsl `fair_adjust`: for a row in cell `c < p.cells`, `(weights[c].0 - 1) *
/// advantages[r]`, plus `weights[c].1 * mix[(r / p.mix_width) * p.cells + c]` when
/// `p.mix_width > 0`; 0 for a row in no cell.
pub fn fair_adjust(
    p: &FairParams,
    advantages: &[f32],
    cell_ids: &[u32],
    weights: &[[f32; 2]],
    mix: &[f32],
    adv_adjust: &mut [f32],
) {
    for r in 0..p.rows as usize {
        let c = cell_ids[r];
        adv_adjust[r] = if c < p.cells {
            let [w, m] = weights[c as usize];
            let mut adjust = (w - 1.0) * advantages[r];
            if p.mix_width != 0 {
                let k = r / p.mix_width as usize;
                adjust += m * mix[k * p.cells as usize + c as usize];
            }
            adjust
        } else {
            0.0
        };
    }
}

/// fairness.wgsl `segment_means`: per segment and cell, the sum (in row order) and count of
/// the advantages of the segment's rows in that cell.
pub fn segment_means(p: &FairParams, advantages: &[f32], cell_ids: &[u32], out: &mut [SegmentSum]) {
    let (w, cells) = (p.mix_width as usize, p.cells as usize);
    for k in 0..p.segments as usize {
        for c in 0..cells {
            let mut s = SegmentSum::default();
            for r in k * w..((k + 1) * w).min(p.rows as usize) {
                if cell_ids[r] == c as u32 {
                    s.sum += advantages[r];
                    s.count += 1;
                }
            }
            out[k * cells + c] = s;
        }
    }
}
