//! Truncated segments: FEN's macro steps and SOTO's stream segments end inside an episode, and
//! the slot's next decision may belong to another network. The segment's last row is then
//! marked done and its reward gets γ·V(o_{t+1}) from the critic of the network that acted, so
//! GAE never runs across two networks (nor reads the dense layout's hole in the network the
//! slot left) and the segment bootstraps as a truncation, not as a terminal state
//! (baselines-spec §A4.4, §A5.4).

use crate::common::ActMode;
use crate::net::PolicyNet;
use fairground_shaders::{Executor, ShaderError};

/// Sampling keys of forwards whose samples are never used (critic values, probabilities) are
/// apart from the decisions' keys.
pub const VALUE_KEY: u32 = 1 << 31;

/// Truncate the segments of `slots` in `net`, whose last rows are `rows`: `obs` holds each
/// slot's next observation (rows of the network's width). Returns the γ·V added per slot.
pub fn truncate<E: Executor>(
    net: &mut PolicyNet<E>,
    slots: &[u32],
    rows: &[u32],
    obs: &[f32],
    gamma: f32,
    iteration: u32,
    round: u32,
) -> Result<Vec<f32>, ShaderError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    net.slots.clear();
    net.slots.extend_from_slice(slots);
    net.obs.clear();
    net.obs.extend_from_slice(obs);
    net.act(iteration, VALUE_KEY | round, ActMode::Sample)?;
    let mut added = Vec::with_capacity(slots.len());
    for (j, (&s, &row)) in slots.iter().zip(rows).enumerate() {
        let boot = gamma * net.values[j];
        net.rewards[row as usize] += boot;
        net.end_episode(s as usize);
        added.push(boot);
    }
    Ok(added)
}
