//! Twins of adam.wgsl: Adam's step counter and bias-correction powers, then the per-parameter
//! update with optional global gradient-norm clipping (per parameter set in packed networks:
//! `AdamParams::set_len`).

use crate::layout::{AdamParams, AdamState, GroupStats};

/// Parameter sets of a launch: `param_count / set_len`, or 1 without packing.
fn set_count(p: &AdamParams) -> usize {
    p.param_count
        .checked_div(p.set_len)
        .map_or(1, |n| n as usize)
}

/// Twin of `adam_begin`: advances the state of every parameter set.
pub fn adam_begin(p: &AdamParams, states: &mut [AdamState]) {
    for state in &mut states[..set_count(p)] {
        state.step += 1;
        state.beta1_pow *= p.beta1;
        state.beta2_pow *= p.beta2;
    }
}

/// Twin of `adam_update`.
pub fn adam_update(
    p: &AdamParams,
    states: &[AdamState],
    norm_stats: &[GroupStats],
    params: &mut [f32],
    grads: &[f32],
    moment1: &mut [f32],
    moment2: &mut [f32],
) {
    for i in 0..p.param_count as usize {
        let set = if p.set_len == 0 {
            0
        } else {
            (p.param_base as usize + i) / p.set_len as usize
        };
        let state = &states[set];
        let mut clip = 1.0f32;
        if p.max_grad_norm > 0.0 {
            let norm = norm_stats[set].sum.sqrt();
            clip = (p.max_grad_norm / (norm + 1e-6)).min(1.0);
        }
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

/// Twin of `grad_accumulate`: mode 0 adds `grads` to `acc`; mode 1 writes `acc` times the
/// scale into `grads` and clears `acc`.
pub fn grad_accumulate(p: &AdamParams, grads: &mut [f32], acc: &mut [f32]) {
    for i in 0..p.param_count as usize {
        if p.accumulate_mode == 0 {
            acc[i] += grads[i];
        } else {
            grads[i] = acc[i] * p.accumulate_scale;
            acc[i] = 0.0;
        }
    }
}
