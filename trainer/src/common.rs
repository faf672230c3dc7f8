//! What every trainer shares: how actions are chosen, which environment stream a trainer uses,
//! a network's saved state, phase timings, and the seeds a run derives from its root seed.

use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::OptimizerState;

/// `s` as HTML text or attribute value (the report's tables, the viewer's title).
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "No row" in per-slot row bookkeeping.
pub const NONE: u32 = u32::MAX;

/// Rows of one forward call at most (larger batches are split into several calls).
pub const ACT_CHUNK_MAX: usize = 8192;

/// Which environment stream a trainer uses (`Purpose::TrainEnv` index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvUse {
    Train = 0,
    Eval = 1,
}

/// How actions are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// Sample from the policy (training, and evaluation by default).
    Sample,
    /// The most probable action.
    Greedy,
}

/// Parameters and Adam state of one network.
#[derive(Clone, Debug)]
pub struct NetState {
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
}

/// Wall time by phase, cumulative.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Kernel steps (the CPU simulation).
    pub kernel_s: f64,
    /// Policy forward + sampling calls (uploads, compute, readback).
    pub act_s: f64,
    /// PPO minibatch steps (uploads, compute, statistics readback).
    pub update_s: f64,
    /// Host bookkeeping: gathering rows, GAE, advantage standardisation.
    pub host_s: f64,
    /// Bytes moved between host and executor buffers (uploads + readbacks).
    pub transfer_bytes: u64,
}

impl Timing {
    /// Both runs' times and bytes added (a pack's runs in one line).
    pub fn plus(&self, o: &Timing) -> Timing {
        Timing {
            kernel_s: self.kernel_s + o.kernel_s,
            act_s: self.act_s + o.act_s,
            update_s: self.update_s + o.update_s,
            host_s: self.host_s + o.host_s,
            transfer_bytes: self.transfer_bytes + o.transfer_bytes,
        }
    }
}

/// The seeds a run derives from its root seed (recorded in the manifest): the environment's,
/// and per network its initialisation and sampling seeds. `tag` prefixes every stream path, so
/// that two environments' streams never coincide (AH: none; HS: "HS").
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seeds {
    pub run: u64,
    pub env: u64,
    pub init: Vec<u64>,
    pub sample: Vec<u64>,
}

impl Seeds {
    pub fn derive(seed: u64, tag: &[u64], env_use: EnvUse, nets: usize) -> Self {
        let one = |p: Purpose, i: u64| {
            let path: Vec<u64> = tag.iter().copied().chain([i]).collect();
            Stream::new(seed, p, &path).next_u64()
        };
        Self {
            run: seed,
            env: one(Purpose::TrainEnv, env_use as u64),
            init: (0..nets as u64)
                .map(|i| one(Purpose::TrainInit, i))
                .collect(),
            sample: (0..nets as u64)
                .map(|i| one(Purpose::TrainSample, i))
                .collect(),
        }
    }

    /// Network `net`'s minibatch shuffle stream.
    pub fn shuffle(seed: u64, tag: &[u64], net: usize) -> Stream {
        let path: Vec<u64> = tag.iter().copied().chain([net as u64]).collect();
        Stream::new(seed, Purpose::TrainShuffle, &path)
    }
}
