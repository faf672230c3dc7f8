//! The environment seam: what the training loop needs from an environment, implemented once
//! for Allelopathic Harvest ([`ah::AhAdapter`]) and once for HospitalSim ([`hs::HsAdapter`]).
//!
//! Every round the loop asks, for each of the environment's networks, which slots wait for it
//! and with which observations ([`EnvAdapter::gather`]), hands the chosen actions back
//! ([`EnvAdapter::scatter`]), steps every instance ([`EnvAdapter::step`]) and reads each acting
//! slot's reward and whether its episode ended ([`RoundOut`]). Counterfactual twins, groups,
//! roles and the environment's own per-iteration numbers are the adapter's business.
//!
//! Invariant: nothing under `env/` imports `algo/` (checked by `tests/architecture.rs`); what
//! a fairness-aware algorithm needs from an environment is the [`fairness::FairnessCells`]
//! trait, defined here and implemented by each adapter.

pub mod ah;
pub mod fairness;
pub mod hs;
pub mod units;

use crate::common::ActMode;
use crate::error::TrainError;
use crate::net::NetShape;
use fairground_kernel::ah::AhEnv;
use fairground_kernel::hs::{HsActions, HsEnv, HsRound};
use fairground_kernel::pool::WorkerPool;

/// What a replay records of an environment at the scatter/step boundary: the kernel of the
/// factual world and the actions its last step applied (`fairground replay`). Only the
/// factual world is recorded: AH's twin world is a separate kernel whose steps never touch the
/// factual one; HS's twins share the factual hospitals' kernel, so all of it is recorded.
#[derive(Clone, Copy)]
pub enum ReplayView<'a> {
    /// AH: the factual world's kernel and the actions it received (one per agent, instance
    /// major, after any [REPRO] misalignment).
    Ah { env: &'a AhEnv, actions: &'a [u8] },
    /// HS: the hospitals' kernel, the action buffers its last step read and what that step
    /// wrote (the finished day's statistics where a day ended).
    Hs {
        env: &'a HsEnv,
        actions: &'a HsActions,
        round: &'a HsRound,
    },
}

/// What one round's step produced, per slot: the reward of the slot's decision of this round
/// and whether the slot's episode (AH) or day (HS) ended with it.
#[derive(Clone, Debug, Default)]
pub struct RoundOut {
    pub reward: Vec<f32>,
    pub done: Vec<bool>,
}

impl RoundOut {
    pub fn new(slots: usize) -> Self {
        Self {
            reward: vec![0.0; slots],
            done: vec![false; slots],
        }
    }
}

/// What the trainer needs from an environment.
pub trait EnvAdapter: Send {
    /// Everything a checkpoint needs to continue the environment exactly (a JSON object, its
    /// fields flattened into the checkpoint's sidecar).
    type Snapshot: serde::Serialize + serde::de::DeserializeOwned;
    /// The environment's part of a metrics line (its fields are flattened into it).
    type Metrics: serde::Serialize;
    /// The environment's part of `eval.json`, from the episodes played.
    type Played;

    /// The networks the environment feeds (AH: one per group; HS: one per role).
    fn nets(&self) -> &[NetShape];
    /// Store slots: every (world, instance, agent) of AH, every HS instance.
    fn slots(&self) -> usize;
    /// Stream-path tag of the run's seeds (keeps environments' streams apart).
    fn stream_tag(&self) -> &'static [u64];
    /// Instances stepped per round (the `env_steps` counter).
    fn instances(&self) -> usize;

    /// A rollout starts: observe every instance, reset this rollout's tallies.
    fn begin_rollout(&mut self);
    /// The slots waiting for network `net` now, with their observations, in slot order.
    fn gather(&self, net: usize, slots: &mut Vec<u32>, obs: &mut Vec<f32>);
    /// The actions chosen for `slots` of network `net` (`components` values per slot).
    fn scatter(&mut self, net: usize, slots: &[u32], actions: &[u32]);
    /// Step every instance once; write each acting slot's reward and episode end.
    fn step(&mut self, out: &mut RoundOut, pool: &WorkerPool);
    /// Whether the rollout has all it needs before `rollout_steps` rounds (HS whole days).
    fn rollout_complete(&self) -> bool {
        false
    }
    /// The rollout of `rounds` rounds is over (`env_steps` instance-steps so far, this rollout's
    /// included): the environment's metrics.
    fn end_rollout(&mut self, rounds: u32, env_steps: u64) -> Self::Metrics;

    fn snapshot(&self) -> Self::Snapshot;
    fn restore(&mut self, s: Self::Snapshot) -> Result<(), TrainError>;

    /// Replay: the factual kernel and the actions its last step applied.
    fn replay_view(&self) -> ReplayView<'_>;

    /// Evaluation: fill every slot's action with the baseline's uniform random choice.
    fn random_actions(&mut self);
    /// Evaluation: record what the round just played finished; true once `episodes` are in.
    fn collect(&mut self, episodes: usize, played: &mut Self::Played) -> bool;
    /// Evaluation: a fresh record of played episodes.
    fn played(&self, episodes: usize) -> Self::Played;
    /// Evaluation: how many of the asked-for episodes (days) are in (for progress).
    fn played_count(&self, played: &Self::Played) -> usize;
    /// Evaluation: `eval.json`'s environment numbers.
    fn eval_report(&self, played: &Self::Played, mode: ActMode) -> serde_json::Value;
    /// Whether `slot` is in the factual world (not a counterfactual twin's, which evaluation
    /// plays for `cf` but whose episodes it does not count).
    fn factual(&self, slot: u32) -> bool {
        let _ = slot;
        true
    }
}
