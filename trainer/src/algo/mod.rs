//! The algorithm seam: what an algorithm changes about PPO. Every hook's default is plain PPO,
//! so [`ppo::Ppo`] implements none of them; [`fair_ppo::FairPpo`] uses the environment's
//! fairness cells ([`crate::env::fairness::FairnessCells`]) to transform each network's
//! advantages after GAE. A new algorithm (FEN, SOTO) is a new file here, one `Algo` variant and
//! one constructor arm in `run/`.
//!
//! The training loop (`train_loop.rs`) calls the hooks in this order each iteration:
//! `begin_rollout`; per round `begin_round` (before anything is gathered: FEN's controller picks
//! sub-policies here), per network `route` (which network decides for a slot) and
//! `on_decision` (as the decisions are stored), the step, then `end_round` (the round's rewards
//! and episode ends are in the stores: FEN's utilities, diversity rewards and truncated
//! segments); after the rollout `rewards` (what a network trains on, before GAE); after GAE
//! `plan` (per network: advantage transform and loss scale; a network the algorithm drives
//! itself trains here); then the epochs, and `report` for the metrics line. Evaluation calls
//! `begin_round`, `route`, `eval_actions` (before the actions reach the environment) and
//! `end_round` too (with [`Phase::Eval`]), then `eval_report`.
//!
//! A network whose [`Algorithm::env_nets`] is empty is *driven*: the loop builds it without a
//! store, never gathers, acts or trains it, but checkpoints, hashes and restores it with the
//! others; the algorithm acts and trains it through the hooks that receive the networks.

pub mod eval_scope;
pub mod fair_ppo;
pub mod fen;
pub mod ppo;
pub mod segments;
pub mod soto;

use crate::common::ActMode;
use crate::config::TrainConfig;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::net::{NetPlan, NetShape, PolicyNet, StoreExtras};
use fairground_shaders::{ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;

/// Whether a round is played to train (decisions go to the stores) or to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Train,
    Eval(ActMode),
}

/// Where a round is: the iteration, the round within the rollout (evaluation: since the
/// start), and the phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundAt {
    pub iteration: u32,
    pub round: u32,
    pub phase: Phase,
}

/// What an algorithm changes about PPO on environment `A`.
pub trait Algorithm<A: EnvAdapter>: Send {
    /// What a checkpoint keeps of the algorithm (older checkpoints without it: the default).
    type State: serde::Serialize + serde::de::DeserializeOwned + Default + Clone;
    /// Whether [`Self::route`] splits an environment network's slots among several networks.
    const ROUTES: bool = false;
    /// Whether several runs' networks may train their minibatch steps in one packed program
    /// (`crate::pack`): true when a network's update is plain PPO over its store, with at most
    /// the per-cell advantage transform and a loss scale of its [`NetPlan`] (no logit-gradient
    /// term, no second pass over another network's rows).
    const PACKS: bool = false;

    /// The networks trained (by default one per environment network).
    fn nets(&self, env: &A) -> Vec<NetShape> {
        env.nets().to_vec()
    }
    /// The environment networks whose slots network `net` decides for (their observations
    /// must be of one width); empty: a network the algorithm drives itself (see the module
    /// documentation).
    fn env_nets(&self, net: usize) -> Range<usize> {
        net..net + 1
    }
    /// With [`Self::ROUTES`]: which network decides for `slot` of environment network
    /// `env_net` this round.
    fn route(&self, env: &A, env_net: usize, slot: u32) -> usize {
        let _ = (env, slot);
        env_net
    }
    /// Inputs network `net` takes beyond its environment networks' observations (SOTO's team
    /// stream: the self stream's recommendation and the utility features), appended to each
    /// gathered slot's observation by [`Self::append_obs`].
    fn extra_obs(&self, net: usize) -> usize {
        let _ = net;
        0
    }
    /// Append network `net`'s [`Self::extra_obs`] inputs for `slot` to `out`.
    fn append_obs(&self, net: usize, slot: u32, out: &mut Vec<f32>) {
        let _ = (net, slot, out);
    }
    /// Network `net`'s architecture and PPO hyperparameters, from the config's (a controller
    /// of its own width, a sub-policy with its own entropy bonus).
    fn tune(&self, net: usize, spec: &mut ActorCriticSpec, hyper: &mut PpoHyper) {
        let _ = (net, spec, hyper);
    }
    /// Store capacity network `net` needs beyond PPO's (fairness cells, a mix term).
    fn store_extras(&self, env: &A, net: usize) -> StoreExtras {
        let _ = (env, net);
        StoreExtras::default()
    }
    /// A rollout starts.
    fn begin_rollout(&mut self, env: &A) {
        let _ = env;
    }
    /// Network `net` is about to decide for `slots` (observations `obs`), into store rows
    /// `rows`; the environment is as the decision sees it.
    fn on_decision(&mut self, env: &A, net: usize, slots: &[u32], rows: &[u32], obs: &[f32]) {
        let _ = (env, net, slots, rows, obs);
    }
    /// A round starts, before the waiting slots are gathered.
    fn begin_round<E: Executor>(
        &mut self,
        env: &A,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let _ = (env, at, nets);
        Ok(())
    }
    /// Evaluation: network `net` has chosen its slots' actions this round (in `policy`); the
    /// algorithm may replace some before they reach the environment (the FEN-HS port's random
    /// actions for a role without a sub-policy).
    fn eval_actions<E: Executor>(&mut self, at: RoundAt, net: usize, policy: &mut PolicyNet<E>) {
        let _ = (at, net, policy);
    }
    /// The round's step is done: `out` holds every slot's reward and episode end, and (in
    /// training) each network's stores hold the round's rewards and dones.
    fn end_round<E: Executor>(
        &mut self,
        env: &A,
        out: &RoundOut,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let _ = (env, out, at, nets);
        Ok(())
    }
    /// The rewards network `net` trains on, per store row, before GAE (default: the
    /// environment's).
    fn rewards(&mut self, env: &A, net: usize, rows: &[u32], rewards: &mut [f32]) {
        let _ = (env, net, rows, rewards);
    }
    /// After GAE on every network: each network's advantage transform and loss scale.
    fn plan<E: Executor>(
        &mut self,
        env: &A,
        cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        let _ = (env, cfg);
        Ok(vec![NetPlan::default(); nets.len()])
    }
    /// What the algorithm adds to a metrics line (under [`Self::REPORT_KEY`]; null for PPO).
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    /// The metrics line's key of [`Self::report`].
    const REPORT_KEY: &'static str = "penalty";
    /// Evaluation of `episodes` episodes starts: the algorithm's own numbers in `eval.json`
    /// must describe the episodes the environment keeps (the factual world's first
    /// `episodes`, in round then slot order: [`EnvAdapter::factual`]), not every one that
    /// ended.
    fn begin_eval(&mut self, episodes: usize) {
        let _ = episodes;
    }
    /// What the algorithm adds to `eval.json` (under [`Self::REPORT_KEY`]), from the rounds
    /// evaluated.
    fn eval_report(&self) -> Option<serde_json::Value> {
        None
    }
    /// Evaluation loads a checkpoint's networks: the part of the algorithm's state that belongs
    /// to the trained model (FEN's input normaliser), not to the run's progress.
    fn restore_model(&mut self, state: Self::State) {
        let _ = state;
    }
    fn state(&self) -> Self::State;
    /// Continue from a checkpoint's state; a state that cannot be this run's (another slot
    /// count, a missing stream) is refused, never dropped for a fresh one.
    fn restore(&mut self, state: Self::State) -> Result<(), TrainError>;
}

/// The refusal of a checkpoint whose algorithm state is not this run's.
pub(crate) fn foreign_state(algo: &str, what: String) -> TrainError {
    TrainError::Checkpoint {
        why: format!("its {algo} state does not fit this run: {what}"),
    }
}
