//! Twins of policy_head.wgsl: categorical / multi-discrete sampling, evaluation of stored
//! actions and the head's backward, with masks; and Philox4x32-10, the counter-based RNG the
//! sampler draws from (so CPU and GPU draws are bit-identical).

use crate::layout::HeadParams;

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
#[allow(clippy::too_many_arguments)] // one slice per binding of the kernel
pub fn head_backward(
    p: &HeadParams,
    logits: &[f32],
    masks: &[u32],
    component_sizes: &[u32],
    actions: &[u32],
    policy_grad: &[f32],
    logit_grad: &mut [f32],
    extra: &[f32],
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
            // The entropy, as `component_entropy` sums it, keeping each probability in the
            // gradient's row: the loop below needs the same `exp(lp)`, and computing it once
            // saves a third of the exponentials without changing a bit.
            let mut h = 0.0f32;
            for j in start..start + size {
                if allowed(p, masks, row, j) {
                    let lp = logits[row * width + j] - lse;
                    let prob = lp.exp();
                    h -= prob * lp;
                    logit_grad[row * width + j] = prob;
                }
            }
            let action = start + actions[row * n_comp + c] as usize;
            for j in start..start + size {
                let mut g = 0.0f32;
                if allowed(p, masks, row, j) {
                    let lp = logits[row * width + j] - lse;
                    let prob = logit_grad[row * width + j];
                    let onehot = if j == action { 1.0 } else { 0.0 };
                    g = g_logp * (onehot - prob) - g_entropy * prob * (lp + h);
                    if p.extra_grad == 1 {
                        g += extra[row * width + j];
                    }
                }
                logit_grad[row * width + j] = g;
            }
            start += size;
        }
    }
}
