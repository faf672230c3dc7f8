//! The algorithm seam: what an algorithm changes about PPO. Every hook's default is plain PPO,
//! so [`ppo::Ppo`] implements none of them; [`fair_ppo::FairPpo`] uses the environment's
//! fairness cells ([`crate::env::fairness::FairnessCells`]) to transform each network's
//! advantages after GAE. A new algorithm (FEN, SOTO) is a new file here, one `Algo` variant and
//! one constructor arm in `run/`.
//!
//! The training loop (`train_loop.rs`) calls the hooks in this order each iteration:
//! `begin_rollout`; per round and network `route` (which network decides for a slot) and
//! `on_decision` (as the decisions are stored); after the rollout `rewards` (what a network
//! trains on, before GAE); after GAE `plan` (per network: advantage transform and loss scale);
//! then the epochs, and `report` for the metrics line.

pub mod fair_ppo;
pub mod ppo;

use crate::config::TrainConfig;
use crate::env::EnvAdapter;
use crate::net::{NetPlan, NetShape, PolicyNet, StoreExtras};
use fairground_shaders::{Executor, ShaderError};

/// What an algorithm changes about PPO on environment `A`.
pub trait Algorithm<A: EnvAdapter>: Send {
    /// What a checkpoint keeps of the algorithm (older checkpoints without it: the default).
    type State: serde::Serialize + serde::de::DeserializeOwned + Default + Clone;
    /// Whether [`Self::route`] splits an environment network's slots among several networks.
    const ROUTES: bool = false;

    /// The networks trained (by default one per environment network).
    fn nets(&self, env: &A) -> Vec<NetShape> {
        env.nets().to_vec()
    }
    /// The environment network whose slots network `net` decides for.
    fn env_net(&self, net: usize) -> usize {
        net
    }
    /// With [`Self::ROUTES`]: which network decides for `slot` of environment network
    /// `env_net` this round.
    fn route(&self, env: &A, env_net: usize, slot: u32) -> usize {
        let _ = (env, slot);
        env_net
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
    /// What the algorithm adds to a metrics line (under `penalty`; null for PPO).
    fn report(&self) -> Option<serde_json::Value> {
        None
    }
    fn state(&self) -> Self::State;
    fn restore(&mut self, state: Self::State);
}
