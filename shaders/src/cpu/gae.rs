//! Twins of gae.wgsl: generalised advantage estimation over time-major trajectories, dense
//! (every slot `steps` long) or ragged (slot `s` only its first `lengths[s]` steps), sharing one
//! backward recursion.

use crate::layout::GaeParams;

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

/// Twin of `gae_returns`: `returns[i] = advantages[i] + values[i]` over the first
/// `steps * agents` rows (after the advantages' standardisation: the reference's HS-CF target).
pub fn gae_returns(p: &GaeParams, values: &[f32], advantages: &[f32], returns: &mut [f32]) {
    let n = p.steps as usize * p.agents as usize;
    for ((r, &a), &v) in returns[..n]
        .iter_mut()
        .zip(&advantages[..n])
        .zip(&values[..n])
    {
        *r = a + v;
    }
}
