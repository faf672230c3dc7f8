//! What FEN and SOTO share around their routed networks.
//!
//! Truncated segments: FEN's macro steps and SOTO's stream segments end inside an episode, and
//! the slot's next decision may belong to another network. The segment's last row is then
//! marked done and its reward gets γ·V(o_{t+1}) from the critic of the network that acted, so
//! GAE never runs across two networks (nor reads the dense layout's hole in the network the
//! slot left) and the segment bootstraps as a truncation, not as a terminal state
//! (baselines-spec §A4.4, §A5.4).

use crate::algo::fen::controller::FlatGae;
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

/// Every slot's current observation and share unit, refreshed from the environment's gathers:
/// what FEN's controllers and SOTO's recommendation read for slots of any network.
#[derive(Clone, Debug)]
pub struct SlotObs {
    width: usize,
    pub obs: Vec<f32>,
    pub unit: Vec<u32>,
    gather: (Vec<u32>, Vec<f32>),
}

impl SlotObs {
    pub fn new(slots: usize, width: usize) -> Self {
        Self {
            width,
            obs: vec![0.0; slots * width],
            unit: vec![0; slots],
            gather: (Vec::with_capacity(slots), Vec::new()),
        }
    }

    /// Gather every environment network into the per-slot rows.
    pub fn refresh<A: crate::env::EnvAdapter>(&mut self, env: &A, share: crate::config::Share) {
        let w = self.width;
        for e in 0..env.nets().len() {
            let unit = share.unit(e) as u32;
            let (slots, obs) = &mut self.gather;
            env.gather(e, slots, obs);
            for (j, &s) in slots.iter().enumerate() {
                let s = s as usize;
                self.obs[s * w..(s + 1) * w].copy_from_slice(&obs[j * w..(j + 1) * w]);
                self.unit[s] = unit;
            }
        }
    }

    /// Slot `s`'s observation.
    pub fn row(&self, s: usize) -> &[f32] {
        &self.obs[s * self.width..(s + 1) * self.width]
    }
}

/// Per slot, the (network, store row) of its decision this round among `nets` (NONE pairs for a
/// slot that did not act).
pub fn acted_rows<E: Executor>(nets: &[PolicyNet<E>], out: &mut [(u32, u32)]) {
    out.fill((crate::common::NONE, crate::common::NONE));
    for (k, net) in nets.iter().enumerate() {
        for (&s, &row) in net.slots.iter().zip(&net.dst) {
            out[s as usize] = (k as u32, row);
        }
    }
}

/// The reference ports' GAE on a stored network (FEN F9, SOTO S10, FEN-HS): its advantages
/// and returns replaced by GAE over its rollout rows flattened in row order (time-major,
/// agent-minor, as one trajectory: no episode ends), as `port` finishes it
/// ([`FlatGae`]). Returns the rows (sorted) with their values.
pub fn flat_store_advantages<E: Executor>(
    net: &mut PolicyNet<E>,
    gamma: f32,
    lambda: f32,
    port: FlatGae,
) -> Result<(Vec<u32>, Vec<f32>), ShaderError> {
    if net.rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let values = net.ac.stored_values()?;
    let mut rows = net.rows.clone();
    rows.sort_unstable();
    let r: Vec<f32> = rows.iter().map(|&k| net.rewards[k as usize]).collect();
    let v: Vec<f32> = rows.iter().map(|&k| values[k as usize]).collect();
    let (a, t) = crate::algo::fen::controller::flat_gae_of(port, &r, &v, gamma, lambda);
    let (mut adv, mut ret) = (vec![0.0f32; values.len()], vec![0.0f32; values.len()]);
    for ((&k, &a), &t) in rows.iter().zip(&a).zip(&t) {
        adv[k as usize] = a;
        ret[k as usize] = t;
    }
    net.transfer_bytes += (values.len() * 12) as u64;
    net.ac.store_set_advantages(&adv, &ret)?;
    Ok((rows, v))
}
