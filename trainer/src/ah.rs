//! PPO on Allelopathic Harvest, both profiles.
//!
//! One actor-critic per group (0 = non-sensitive, 1 = sensitive; spec §3.1: parameters shared
//! by the players of a group, none across groups). Every step, each agent's observation goes to
//! its group's network, and the sampled action goes back to exactly that agent. Groups are
//! re-read after every step because the sensitive subset is redrawn every episode.
//!
//! After T steps: GAE per agent trajectory (time-major, agent-minor, done masks: an episode's
//! last step bootstraps with 0), advantages standardised per group, then K epochs of
//! minibatch PPO per network. The two networks run side by side on the kernel's worker pool
//! (with 2+ threads).
//!
//! The reference trainer's [REPRO] behaviours, each a [`TrainConfig`] flag (all on in the
//! `reference` profile):
//! - `ah_action_misalignment` ([`concat_group_actions`]): the environment receives each
//!   instance's actions as [non-sensitive players' actions, then sensitive players'], applied to
//!   players in order; the rollout still records each player's own sampled action.
//! - `ah_interleaved_gae` ([`interleaved_gae`]): GAE over a group's whole memory as one
//!   trajectory (no done masks, last entry bootstraps with 0).
//! - `ah_standardized_returns` ([`group_memory`], [`standardize`]): returns = standardised
//!   advantage + stored value, standardised again inside each minibatch.
//! - `ah_cross_group_training` ([`training_passes`]): each network also trains on the other
//!   group's memory, with the stored (other network's) log-probabilities as the old ones. The
//!   networks share no state, so running each network's passes (in the listed order) side by
//!   side gives the same parameters as the reference's one-after-the-other schedule.
//!
//! Fair-PPO (`algo = "fair-ppo"`, docs/fair-ppo.md): rows belong to fairness cells
//! ([`FairCells`]: group, group × berry preference, or agent slot of the factual or twin world);
//! after GAE each network's device store reduces its rewards and values by cell, the host turns
//! the sums into the penalty's [`plan`] (shaped weights and the cross-group mix term, or the
//! reference's loss scale per pass), and the store applies it per row before the epochs. With
//! `fairness = "cf"` a twin world ([`AhEnv::twin`]) is stepped in lock-step, its slots after the
//! factual world's in every per-slot buffer.
//!
//! Where the data lives: the kernel steps the instances on the CPU. With no [REPRO] flag on
//! ([`uses_store`]), each group network keeps its rollout in an on-device store
//! (`ActorCritic::with_store`, a `T x slots` grid in which the other group's rows are holes
//! marked done): a rollout step uploads the group's observations and reads back only its
//! actions; GAE, advantage standardisation, the minibatch gathers, the losses, backward passes
//! and Adam all run through the [`Executor`] (WGSL on the GPU, or the CPU twins), and the host
//! keeps only rewards, dones and groups (GAE's inputs and the metrics). A group changes only at
//! an episode reset, where `done = 1`, so GAE over a network's grid with holes is exactly GAE per
//! agent trajectory. The reference's flags need memories the grid cannot express (one
//! interleaved trajectory, the other group's rows, misaligned actions), so with any of them the
//! rollout is kept on the host ([`GroupMemory`], GAE with [`fairground_shaders::cpu::gae`], the
//! twin the GAE shader is tested against) and minibatches are uploaded.

use crate::config::{Fairness, Penalty, TrainConfig};
use crate::fair::{
    Comparison, FairMetrics, FairSpec, MinMax, Shaper, csp_value, normaliser_bounds,
    reference_factor, shaped_json, side_weights,
};
use crate::update::{
    ActAt, EpochScratch, LossMetrics, LossSums, act_chunks, act_into_store, actor_critic_spec,
    bootstrap_store, push_argmax, store_fair_adjust, train_stored_epochs,
};
use fairground_kernel::ah::{ACTIONS, AhEnv, AhParams, AhSnapshot, OBS_DIM, StepOut};
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::pool::{Split, WorkerPool};
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::layout::GaeParams;
use fairground_shaders::layout::{FairParams, SegmentSum};
use fairground_shaders::ppo::{CellStats, StoreSpec};
use fairground_shaders::{
    ActorCritic, ActorCriticSpec, Executor, Minibatch, OptimizerState, Program, ShaderError,
};
use std::sync::Mutex;
use std::time::Instant;

/// Networks (and agent groups): 0 = non-sensitive, 1 = sensitive.
pub const GROUPS: usize = 2;
pub const GROUP_NAMES: [&str; GROUPS] = ["non_sensitive", "sensitive"];

/// Rows of one forward call at most (larger groups are split into several calls).
const ACT_CHUNK_MAX: usize = 8192;

/// Which environment stream an [`AhTrainer`] uses (`Purpose::TrainEnv` index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvUse {
    Train = 0,
    Eval = 1,
}

/// The game the config describes.
pub fn ah_params(cfg: &TrainConfig) -> AhParams {
    let mut p = AhParams::new(cfg.profile);
    p.episode_steps = cfg.episode_steps;
    p
}

/// Whether the rollout lives in the networks' device stores: yes unless a [REPRO] flag asks for
/// a memory the `T x slots` grid cannot express (see the module documentation).
pub fn uses_store(cfg: &TrainConfig) -> bool {
    !(cfg.ah_action_misalignment
        || cfg.ah_interleaved_gae
        || cfg.ah_standardized_returns
        || cfg.ah_cross_group_training)
}

/// The network of each group (spec §3.1: separate policy and value MLPs, leaky ReLU).
pub fn net_spec(cfg: &TrainConfig, batch: u32) -> ActorCriticSpec {
    actor_critic_spec(cfg, OBS_DIM as u32, vec![ACTIONS], batch)
}

/// The seeds a run derives from its root seed (recorded in the manifest).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seeds {
    pub run: u64,
    pub env: u64,
    pub init: [u64; GROUPS],
    pub sample: [u64; GROUPS],
}

impl Seeds {
    pub fn derive(seed: u64, env_use: EnvUse) -> Self {
        let one = |p: Purpose, i: u64| Stream::new(seed, p, &[i]).next_u64();
        Self {
            run: seed,
            env: one(Purpose::TrainEnv, env_use as u64),
            init: [one(Purpose::TrainInit, 0), one(Purpose::TrainInit, 1)],
            sample: [one(Purpose::TrainSample, 0), one(Purpose::TrainSample, 1)],
        }
    }
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

/// What one iteration measured (deterministic except the timings).
#[derive(Clone, Debug)]
pub struct IterStats {
    pub mean_reward_per_agent_step: f64,
    /// Per group: the mean over its agents of the reward summed over the iteration's T steps.
    pub return_by_group: [f64; GROUPS],
    pub episodes_completed: u32,
    /// Per group: the mean per-agent return of the episodes completed this iteration.
    pub episode_return_by_group: Option<[f64; GROUPS]>,
    /// Means over the last minibatch of every epoch, then over the two networks.
    pub loss: LossMetrics,
    /// Disparities of the rollout and what the penalty did.
    pub fair: FairMetrics,
    pub wall_s: f64,
}

/// One group's network and its scratch (allocated once).
struct GroupNet<E: Executor> {
    ac: ActorCritic<E>,
    sample_seed: u64,
    shuffle: Stream,
    batch: usize,
    slots: Vec<u32>,
    act_obs: Vec<f32>,
    out_actions: Vec<u32>,
    out_logp: Vec<f32>,
    out_values: Vec<f32>,
    order: Vec<u32>,
    mb_obs: Vec<f32>,
    mb_actions: Vec<u32>,
    mb_logp: Vec<f32>,
    mb_values: Vec<f32>,
    mb_adv: Vec<f32>,
    mb_adj: Vec<f32>,
    mb_ret: Vec<f32>,
    /// Loss statistics of the current update.
    loss: LossSums,
    transfer_bytes: u64,
    /// Store rows of the current act call (`t * slots + slot`).
    dst: Vec<u32>,
    /// This network's view of the rollout: done (or a hole) per store row, and 0 = own row,
    /// 1 = hole.
    store_dones: Vec<f32>,
    store_valid: Vec<u32>,
    /// This network's store rows (store path).
    rows: Vec<u32>,
    epochs: EpochScratch,
    /// Fair-PPO: the fairness cell of every store row (the other group's rows: none) and the
    /// device's per-cell reductions of this update.
    cell_ids: Vec<u32>,
    cell_stats: Option<CellStats>,
    /// Host path: the cells of the current minibatch's rows.
    mb_cells: Vec<u32>,
    /// Per segment (instance and step) and cell: this network's advantage sums (mix term).
    segment_sums: Vec<SegmentSum>,
}

/// Group networks `first..first + nets.len()`: how [`WorkerPool::run_split`] hands them out.
struct NetView<'a, E: Executor> {
    nets: &'a mut [GroupNet<E>],
    first: usize,
}

impl<E: Executor + Send> Split for NetView<'_, E> {
    fn instances(&self) -> usize {
        self.nets.len()
    }

    fn split_at(self, at: usize) -> (Self, Self) {
        let (a, b) = self.nets.split_at_mut(at);
        (
            NetView {
                nets: a,
                first: self.first,
            },
            NetView {
                nets: b,
                first: self.first + at,
            },
        )
    }
}

/// How actions are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// Sample from the policy (training, and evaluation by default).
    Sample,
    /// The most probable action.
    Greedy,
}

impl<E: Executor> GroupNet<E> {
    /// Sample actions for the agents of group `g` (rows in slot order).
    fn act(
        &mut self,
        g: u8,
        obs: &[f32],
        groups: &[u8],
        iteration: u32,
        step: u32,
        mode: ActMode,
    ) -> Result<(), ShaderError> {
        self.gather_group(g, obs, groups);
        self.out_actions.clear();
        self.out_logp.clear();
        self.out_values.clear();
        let n = self.slots.len();
        act_chunks(
            n,
            self.batch,
            self.sample_seed,
            iteration,
            step,
            |start, end, key| {
                let out =
                    self.ac
                        .act(&self.act_obs[start * OBS_DIM..end * OBS_DIM], &[], &[], key)?;
                self.transfer_bytes += ((end - start) * OBS_DIM * 4 + self.batch * 16) as u64;
                match mode {
                    ActMode::Sample => self.out_actions.extend_from_slice(&out.actions),
                    ActMode::Greedy => {
                        let logits = self.ac.logits()?;
                        self.transfer_bytes += (logits.len() * 4) as u64;
                        push_argmax(
                            &logits,
                            ACTIONS as usize,
                            end - start,
                            &mut self.out_actions,
                        );
                    }
                }
                self.out_logp.extend_from_slice(&out.logp);
                self.out_values.extend_from_slice(&out.values);
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Collect the slots of group `g` and their observations.
    fn gather_group(&mut self, g: u8, obs: &[f32], groups: &[u8]) {
        self.slots.clear();
        self.act_obs.clear();
        for (slot, &grp) in groups.iter().enumerate() {
            if grp == g {
                self.slots.push(slot as u32);
                self.act_obs
                    .extend_from_slice(&obs[slot * OBS_DIM..(slot + 1) * OBS_DIM]);
            }
        }
    }

    /// Rollout step `step`: sample actions for group `g`'s agents and keep everything but the
    /// actions in the device store (rows `step * slots + slot`).
    fn act_stored(
        &mut self,
        g: u8,
        obs: &[f32],
        groups: &[u8],
        iteration: u32,
        step: u32,
    ) -> Result<(), ShaderError> {
        self.gather_group(g, obs, groups);
        let base = step * groups.len() as u32;
        self.dst.clear();
        self.dst.extend(self.slots.iter().map(|&s| base + s));
        self.out_actions.clear();
        let at = self.act_at(iteration, step);
        act_into_store(
            &mut self.ac,
            at,
            &self.act_obs,
            OBS_DIM,
            &self.dst,
            &mut self.out_actions,
        )?;
        // Observations and store rows up, actions down.
        self.transfer_bytes += (self.dst.len() * (OBS_DIM + 2) * 4) as u64;
        Ok(())
    }

    fn act_at(&self, iteration: u32, step: u32) -> ActAt {
        ActAt {
            batch: self.batch,
            seed: self.sample_seed,
            iteration,
            step,
        }
    }

    /// Values of the observations after the rollout's last step, stored as the bootstrap of
    /// group `g`'s slots.
    fn bootstrap_stored(
        &mut self,
        g: u8,
        obs: &[f32],
        groups: &[u8],
        iteration: u32,
        step: u32,
    ) -> Result<(), ShaderError> {
        self.gather_group(g, obs, groups);
        let at = self.act_at(iteration, step);
        bootstrap_store(&mut self.ac, at, &self.act_obs, OBS_DIM, &self.slots)?;
        self.transfer_bytes += (self.slots.len() * (OBS_DIM + 1) * 4) as u64;
        Ok(())
    }

    /// GAE over the device store (standardised per group); for Fair-PPO also the per-cell
    /// reductions of this group's rows.
    fn advantages_stored(
        &mut self,
        g: u8,
        ro: &Rollout,
        cfg: &TrainConfig,
    ) -> Result<(), ShaderError> {
        self.rows.clear();
        self.store_dones.clear();
        self.store_valid.clear();
        for (idx, (&grp, &d)) in ro.groups.iter().zip(&ro.dones).enumerate() {
            let own = grp == g;
            if own {
                self.rows.push(idx as u32);
            }
            self.store_dones.push(if own { d } else { 1.0 });
            self.store_valid.push(u32::from(!own));
        }
        self.loss = LossSums::default();
        let n = self.rows.len();
        if n == 0 {
            return Ok(());
        }
        self.ac.store_advantages(
            &ro.rewards,
            &self.store_dones,
            &self.store_valid,
            cfg.gamma,
            cfg.gae_lambda,
            cfg.normalize_advantages && n > 1,
        )?;
        self.transfer_bytes += (ro.rewards.len() * 12) as u64;
        self.cell_stats = None;
        if let Some(spec) = FairSpec::of(cfg) {
            let slots = ro.last_values.len();
            let cells = FairCells {
                fairness: spec.fairness,
                world_slots: ro.world_slots,
            };
            let none = cells.count();
            self.cell_ids.clear();
            self.cell_ids
                .extend(
                    ro.groups
                        .iter()
                        .zip(&ro.prefs)
                        .enumerate()
                        .map(|(row, (&grp, &pref))| {
                            if grp == g {
                                cells.cell(grp, pref, row % slots)
                            } else {
                                none
                            }
                        }),
                );
            self.cell_stats = Some(self.ac.store_cell_stats(&self.cell_ids)?);
            self.transfer_bytes += (self.cell_ids.len() * 4 + none as usize * 32) as u64;
        }
        Ok(())
    }

    /// K epochs of minibatch PPO on this group's store rows, gathered on the device, with the
    /// penalty's weights or loss scale.
    fn epochs_stored(&mut self, cfg: &TrainConfig, plan: &NetPlan) -> Result<(), ShaderError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = &plan.weights {
            self.transfer_bytes += store_fair_adjust(&mut self.ac, w, plan.mix.as_deref())?;
        }
        self.ac.set_loss_scale(plan.loss_scale[0]);
        self.transfer_bytes += train_stored_epochs(
            &mut self.ac,
            &self.rows,
            cfg,
            &mut self.shuffle,
            &mut self.epochs,
            &mut self.loss,
        )?;
        self.ac.finish()
    }

    /// Add the last minibatch's loss statistics to this update's sums.
    fn add_loss_stats(&mut self) -> Result<(), ShaderError> {
        self.loss.add(&self.ac.loss_stats()?);
        self.transfer_bytes += 80;
        Ok(())
    }

    /// K epochs of minibatch PPO on each of `memories` in turn (see [`training_passes`]), pass
    /// k with `plan.loss_scale[k]` and, for Fair-PPO shaped, the cell weights.
    fn train(
        &mut self,
        memories: &[&GroupMemory],
        ro: &Rollout,
        cfg: &TrainConfig,
        plan: &NetPlan,
    ) -> Result<(), ShaderError> {
        self.loss = LossSums::default();
        for (k, mem) in memories.iter().enumerate() {
            self.ac.set_loss_scale(plan.loss_scale[k]);
            self.train_on(mem, ro, cfg, plan.weights.as_deref())?;
        }
        self.ac.finish()
    }

    fn train_on(
        &mut self,
        mem: &GroupMemory,
        ro: &Rollout,
        cfg: &TrainConfig,
        weights: Option<&[[f32; 2]]>,
    ) -> Result<(), ShaderError> {
        let n = mem.rows.len();
        if n == 0 {
            return Ok(());
        }
        self.order.clear();
        self.order.extend(0..n as u32);
        let mb = cfg.minibatch_size as usize;
        for _ in 0..cfg.epochs {
            if cfg.shuffle_minibatches {
                self.shuffle.shuffle(&mut self.order);
            }
            let chunks = n.div_ceil(mb);
            for c in 0..chunks {
                let part = &self.order[c * mb..((c + 1) * mb).min(n)];
                let mut scratch = MinibatchRows {
                    obs: &mut self.mb_obs,
                    actions: &mut self.mb_actions,
                    logp: &mut self.mb_logp,
                    values: &mut self.mb_values,
                    adv: &mut self.mb_adv,
                    ret: &mut self.mb_ret,
                };
                fill_minibatch(mem, ro, part, cfg.ah_standardized_returns, &mut scratch);
                self.mb_adj.resize(part.len(), 0.0);
                if let (Some(w), Some(spec)) = (weights, FairSpec::of(cfg)) {
                    // The shaped penalty on the host path: the same twin the device runs.
                    let cells = FairCells {
                        fairness: spec.fairness,
                        world_slots: ro.world_slots,
                    };
                    let slots = ro.last_values.len();
                    self.mb_cells.clear();
                    self.mb_cells.extend(part.iter().map(|&k| {
                        let i = mem.rows[k as usize] as usize;
                        cells.cell(ro.groups[i], ro.prefs[i], i % slots)
                    }));
                    let p = FairParams {
                        rows: part.len() as u32,
                        cells: w.len() as u32,
                        ..FairParams::default()
                    };
                    // No mix term on the host path (mix_width 0).
                    fairground_shaders::cpu::fair_adjust(
                        &p,
                        &self.mb_adv,
                        &self.mb_cells,
                        w,
                        &[],
                        &mut self.mb_adj,
                    );
                }
                self.ac.train_minibatch(&Minibatch {
                    obs: &self.mb_obs,
                    group_ids: &[],
                    masks: &[],
                    actions: &self.mb_actions,
                    old_logp: &self.mb_logp,
                    old_values: &self.mb_values,
                    advantages: &self.mb_adv,
                    adv_adjust: &self.mb_adj[..part.len()],
                    returns: &self.mb_ret,
                })?;
                self.transfer_bytes += (part.len() * (OBS_DIM + 8) * 4) as u64;
                if c + 1 == chunks {
                    self.add_loss_stats()?;
                }
            }
        }
        Ok(())
    }
}

/// One group's memory for an update: its rows of the rollout (indices into the rollout, in
/// time-major, then slot order) with the advantages and returns the update trains on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupMemory {
    pub rows: Vec<u32>,
    pub adv: Vec<f32>,
    pub ret: Vec<f32>,
}

/// Standardise in place: (x − mean) / (unbiased std + 1e-8), in f64; one value becomes 0.
pub fn standardize(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let mean = x.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64;
    if n == 1 {
        x[0] = 0.0;
        return;
    }
    let var = x
        .iter()
        .map(|&a| (f64::from(a) - mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    let std = var.sqrt() + 1e-8;
    for a in x {
        *a = ((f64::from(*a) - mean) / std) as f32;
    }
}

/// `ah_interleaved_gae`: GAE over `rewards` / `values` as ONE trajectory (the CPU twin
/// `cpu::gae` with one agent, no done masks, bootstrap value 0 after the last entry).
pub fn interleaved_gae(
    gamma: f32,
    lambda: f32,
    rewards: &[f32],
    values: &[f32],
    adv: &mut [f32],
    ret: &mut [f32],
) {
    let n = values.len();
    let p = GaeParams {
        steps: n as u32,
        agents: 1,
        gamma,
        gae_lambda: lambda,
        carry: 0,
        pad0: 0,
        pad1: 0,
        pad2: 0,
    };
    let dones = vec![0.0f32; n];
    fairground_shaders::cpu::gae(&p, rewards, values, &dones, &[0.0], adv, ret);
}

/// Build group `g`'s memory from a rollout of `groups` / `rewards` / `values` (time-major,
/// slot-minor) and the per-player GAE results `clean_adv` / `clean_ret` (used unless
/// `cfg.ah_interleaved_gae`): advantages standardised over the memory with
/// `cfg.normalize_advantages`; with `cfg.ah_standardized_returns`, returns = those advantages +
/// stored values.
#[allow(clippy::too_many_arguments)]
pub fn group_memory(
    g: u8,
    groups: &[u8],
    rewards: &[f32],
    values: &[f32],
    clean_adv: &[f32],
    clean_ret: &[f32],
    cfg: &TrainConfig,
    mem: &mut GroupMemory,
) {
    mem.rows.clear();
    mem.rows.extend(
        groups
            .iter()
            .enumerate()
            .filter(|&(_, &grp)| grp == g)
            .map(|(i, _)| i as u32),
    );
    let n = mem.rows.len();
    mem.adv.clear();
    mem.ret.clear();
    if cfg.ah_interleaved_gae {
        let r: Vec<f32> = mem.rows.iter().map(|&i| rewards[i as usize]).collect();
        let v: Vec<f32> = mem.rows.iter().map(|&i| values[i as usize]).collect();
        mem.adv.resize(n, 0.0);
        mem.ret.resize(n, 0.0);
        interleaved_gae(
            cfg.gamma,
            cfg.gae_lambda,
            &r,
            &v,
            &mut mem.adv,
            &mut mem.ret,
        );
    } else {
        mem.adv
            .extend(mem.rows.iter().map(|&i| clean_adv[i as usize]));
        mem.ret
            .extend(mem.rows.iter().map(|&i| clean_ret[i as usize]));
    }
    if cfg.normalize_advantages && n > 1 {
        standardize(&mut mem.adv);
    }
    if cfg.ah_standardized_returns {
        for ((r, &a), &i) in mem.ret.iter_mut().zip(&mem.adv).zip(&mem.rows) {
            *r = a + values[i as usize];
        }
    }
}

/// The PPO passes of one update, in order: (network, memory) with 0 = non-sensitive and
/// 1 = sensitive. `ah_cross_group_training`: each network trains on its own memory, then on the
/// other group's.
pub fn training_passes(cross_group: bool) -> &'static [(usize, usize)] {
    if cross_group {
        &[(0, 0), (0, 1), (1, 1), (1, 0)]
    } else {
        &[(0, 0), (1, 1)]
    }
}

/// Fairness cells of AH rows. Demographic parity compares the groups (cell = group: 0
/// non-sensitive, 1 sensitive); conditional statistical parity compares them within each
/// berry preference (cell = 2 · group + preference, preference 0 red, 1 blue); counterfactual
/// fairness compares every agent with itself in the twin world (cell = slot: the factual
/// world's `world_slots` slots, then the twin's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FairCells {
    pub fairness: Fairness,
    /// Slots (instances × agents) of one world.
    pub world_slots: u32,
}

impl FairCells {
    pub fn count(&self) -> u32 {
        match self.fairness {
            Fairness::Dp => 2,
            Fairness::Csp => 4,
            Fairness::Cf => 2 * self.world_slots,
        }
    }

    /// The cell of a row of `slot` (of both worlds' slot order), its group and preference.
    pub fn cell(&self, group: u8, pref: u8, slot: usize) -> u32 {
        match self.fairness {
            Fairness::Dp => u32::from(group),
            Fairness::Csp => 2 * u32::from(group) + u32::from(pref),
            Fairness::Cf => slot as u32,
        }
    }

    /// The comparisons: (level name, side-a cell, side-b cell).
    pub fn comparisons(&self) -> Vec<(String, u32, u32)> {
        match self.fairness {
            Fairness::Dp => vec![("all".into(), 0, 1)],
            Fairness::Csp => vec![("red".into(), 0, 2), ("blue".into(), 1, 3)],
            Fairness::Cf => (0..self.world_slots)
                .map(|s| (format!("slot{s}"), s, self.world_slots + s))
                .collect(),
        }
    }
}

/// Per-cell sums and counts of a rollout's rewards and values (the host's copy of what the
/// device reduces; the reference profile's host path and the metrics use it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellSums {
    pub reward: Vec<f64>,
    pub value: Vec<f64>,
    pub count: Vec<u64>,
}

impl CellSums {
    pub fn new(cells: usize) -> Self {
        Self {
            reward: vec![0.0; cells],
            value: vec![0.0; cells],
            count: vec![0; cells],
        }
    }

    fn add_device(&mut self, s: &CellStats) {
        for (c, (r, v)) in s.rewards.iter().zip(&s.values).enumerate() {
            self.reward[c] += f64::from(r.sum);
            self.value[c] += f64::from(v.sum);
            self.count[c] += u64::from(r.count);
        }
    }

    /// Mean per row, None for an empty cell.
    fn mean(&self, sums: &[f64], c: u32) -> Option<f64> {
        let n = self.count[c as usize];
        (n > 0).then(|| sums[c as usize] / n as f64)
    }
}

/// The comparisons of an update from per-cell sums: retro = T · (mean reward per row of side
/// a − of side b), the per-agent return gap over the rollout's T steps; pro = mean value of
/// a − of b.
pub fn ah_comparisons(cells: FairCells, sums: &CellSums, steps: u32) -> Vec<Comparison> {
    cells
        .comparisons()
        .into_iter()
        .map(|(level, a, b)| {
            let gap = |v: &[f64]| Some(sums.mean(v, a)? - sums.mean(v, b)?);
            Comparison {
                level,
                retro: gap(&sums.reward).map(|g| g * f64::from(steps)),
                pro: gap(&sums.value),
            }
        })
        .collect()
}

/// The reference's penalty of one pass of the network of group `own` on the memory of group
/// `mem` (spec §4.2, §4.3): per comparison level, retro = max(Σ rewards of the memory's side −
/// Σ of the other side, 0) on totals, pro = max(mean value of the memory's side − of the other,
/// 0); P = α·Σ normalise_R(retro) + β·Σ normalise_V(pro) with one normaliser per component and
/// level (`norms`: [R levels..., V levels...]), each updated just before normalising. Returns
/// P. (In the reference the "other memory" is the other group's, so side b is 1 − mem.)
pub fn reference_penalty(
    cells: FairCells,
    sums: &CellSums,
    mem: u8,
    spec: &FairSpec,
    norms: &mut [MinMax],
) -> RefTerms {
    // Counterfactual fairness (spec §4.4) compares whole worlds: side a = the factual world's
    // cells, side b = the twin's.
    let levels: Vec<(Vec<u32>, Vec<u32>)> = match cells.fairness {
        Fairness::Cf => vec![(
            (0..cells.world_slots).collect(),
            (cells.world_slots..2 * cells.world_slots).collect(),
        )],
        _ => cells
            .comparisons()
            .into_iter()
            .map(|(_, a, b)| (vec![a], vec![b]))
            .collect(),
    };
    let total = |v: &[f64], cs: &[u32]| cs.iter().map(|&c| v[c as usize]).sum::<f64>();
    let count = |cs: &[u32]| cs.iter().map(|&c| sums.count[c as usize]).sum::<u64>();
    let mut t = RefTerms::default();
    for (k, (a, b)) in levels.iter().enumerate() {
        let (own, other) = if mem == 0 { (a, b) } else { (b, a) };
        let retro = (total(&sums.reward, own) - total(&sums.reward, other)).max(0.0);
        // An empty side's mean is NaN in the reference (spec §9 item 22); clean treats it as 0.
        let mean = |cs: &[u32]| {
            let n = count(cs);
            if n > 0 {
                total(&sums.value, cs) / n as f64
            } else {
                0.0
            }
        };
        let pro = (mean(own) - mean(other)).max(0.0);
        let (nr, nv) = (
            norms[k].update_normalise(retro),
            norms[levels.len() + k].update_normalise(pro),
        );
        t.p += f64::from(spec.alpha) * nr + f64::from(spec.beta) * nv;
        t.retro.push(retro);
        t.pro.push(pro);
        t.retro_norm.push(nr);
        t.pro_norm.push(nv);
    }
    t
}

/// One pass's reference penalty: P and, per level, the clamped gaps and their normalised
/// values (the normalisers' bounds are reported with them, see [`plan`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RefTerms {
    pub p: f64,
    pub retro: Vec<f64>,
    pub pro: Vec<f64>,
    pub retro_norm: Vec<f64>,
    pub pro_norm: Vec<f64>,
}

/// What a network's update uses from the penalty: per cell the advantage weight and the
/// weight of the partner's mean advantage (shaped; see fairness.wgsl), the partner means per
/// segment (device store path), and a loss scale per pass (reference; 1 otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct NetPlan {
    pub weights: Option<Vec<[f32; 2]>>,
    pub mix: Option<Vec<f32>>,
    pub loss_scale: Vec<f32>,
}

/// Whether the shaped penalty's cross-group term runs (DP and CSP on the device store path:
/// each network's rows get the other group's mean advantage of the same instance and step;
/// counterfactual runs, and the host path of the reference profile's memories, use the
/// weights alone).
pub fn mixes(cfg: &TrainConfig) -> bool {
    FairSpec::of(cfg).is_some_and(|f| {
        f.penalty == Penalty::Shaped && f.fairness != Fairness::Cf && uses_store(cfg)
    })
}

/// The cell of the same group-flipped agents (DP: the other group; CSP: the other group's
/// agents of the same berry preference).
fn partner(fairness: Fairness, c: usize) -> usize {
    match fairness {
        Fairness::Csp => c ^ 2,
        _ => 1 - c,
    }
}

/// The Fair-PPO state a checkpoint keeps: the shaped penalty's running scales and the
/// reference's normalisers (per network: R then V, one per level).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FairState {
    pub shaper: Shaper,
    pub reference: Vec<Vec<MinMax>>,
}

/// The penalty's plan for each network from this update's per-cell sums: shaped weights,
/// or the reference's loss scale per pass (1 for plain PPO). Also returns the penalty's
/// metrics.
pub fn plan(
    fair: &mut FairState,
    cfg: &TrainConfig,
    world_slots: u32,
    sums: &CellSums,
    passes: &[(usize, usize)],
) -> ([NetPlan; GROUPS], Option<serde_json::Value>) {
    let steps = cfg.rollout_steps;
    let passes_of = |g: usize| passes.iter().filter(|&&(n, _)| n == g).count();
    let mut plans: [NetPlan; GROUPS] = std::array::from_fn(|g| NetPlan {
        weights: None,
        mix: None,
        loss_scale: vec![1.0; passes_of(g)],
    });
    let Some(spec) = FairSpec::of(cfg) else {
        return (plans, None);
    };
    match spec.penalty {
        Penalty::Shaped => {
            let cells = FairCells {
                fairness: spec.fairness,
                world_slots,
            };
            let comps = ah_comparisons(cells, sums, steps);
            let terms = fair.shaper.update(&comps, spec.alpha, spec.beta);
            // Side a (non-sensitive, factual): (1 − δ)·A + δ·Ā_partner; side b: (1 + δ)·A −
            // δ·Ā_partner (docs/fair-ppo.md). With δ = 0: (1, 0), exactly PPO.
            let mix = if mixes(cfg) { 1.0 } else { 0.0 };
            let mut w = vec![[1.0f32, 0.0]; cells.count() as usize];
            for ((_, a, b), &d) in cells.comparisons().iter().zip(&terms.delta) {
                let [wa, wb] = side_weights(d);
                w[*a as usize] = [wa, (mix * d) as f32];
                w[*b as usize] = [wb, (-mix * d) as f32];
            }
            let mut json = shaped_json(&comps, &terms);
            if spec.fairness != Fairness::Cf {
                json["weights"] = serde_json::json!(w);
            }
            for plan in &mut plans {
                plan.weights = Some(w.clone());
            }
            (plans, Some(json))
        }
        Penalty::Reference => {
            let mut p_all = Vec::new();
            let mut terms = Vec::new();
            for (g, plan) in plans.iter_mut().enumerate() {
                let mut scales = Vec::new();
                for &(net, mem) in passes.iter().filter(|&&(n, _)| n == g) {
                    let norms = &mut fair.reference[net];
                    let cells = FairCells {
                        fairness: spec.fairness,
                        world_slots,
                    };
                    let t = reference_penalty(cells, sums, mem as u8, &spec, norms);
                    let p = t.p;
                    p_all.push(p);
                    terms.push(t);
                    // AH DP and CSP: λ is not detached; AH CF: detached (spec §4.1).
                    scales.push(reference_factor(p, spec.fairness == Fairness::Cf));
                }
                plan.loss_scale = scales;
            }
            let json = serde_json::json!({
                "mode": "reference",
                "passes": passes,
                "p": p_all,
                "terms": terms,
                // Per network, its normalisers' (max, min): R levels, then V levels.
                "normalisers": normaliser_bounds(&fair.reference),
                "loss_scale": plans.iter().flat_map(|p| p.loss_scale.clone()).collect::<Vec<_>>(),
            });
            (plans, Some(json))
        }
    }
}

/// Minibatch scratch that [`fill_minibatch`] fills.
pub struct MinibatchRows<'a> {
    pub obs: &'a mut Vec<f32>,
    pub actions: &'a mut Vec<u32>,
    pub logp: &'a mut Vec<f32>,
    pub values: &'a mut Vec<f32>,
    pub adv: &'a mut Vec<f32>,
    pub ret: &'a mut Vec<f32>,
}

/// Gather the memory rows `part` (indices into `mem`): observations, actions, the STORED
/// log-probabilities and values (those of the network that acted, whichever network trains),
/// the memory's advantages and returns; with `standardize_returns` the minibatch's returns are
/// standardised over the minibatch ([`standardize`]).
fn fill_minibatch(
    mem: &GroupMemory,
    ro: &Rollout,
    part: &[u32],
    standardize_returns: bool,
    out: &mut MinibatchRows<'_>,
) {
    out.obs.clear();
    out.actions.clear();
    out.logp.clear();
    out.values.clear();
    out.adv.clear();
    out.ret.clear();
    for &k in part {
        let i = mem.rows[k as usize] as usize;
        out.obs
            .extend_from_slice(&ro.obs[i * OBS_DIM..(i + 1) * OBS_DIM]);
        out.actions.push(ro.actions[i]);
        out.logp.push(ro.logp[i]);
        out.values.push(ro.values[i]);
        out.adv.push(mem.adv[k as usize]);
        out.ret.push(mem.ret[k as usize]);
    }
    if standardize_returns {
        standardize(out.ret);
    }
}

/// `ah_action_misalignment` (spec §1.7): per instance (`agents` slots each), the actions sampled
/// for the non-sensitive players (`groups` 0) in player order, then those for the sensitive
/// ones, written to players 0, 1, … in order. `own[slot]` is the action sampled for `slot`'s own
/// observation.
pub fn concat_group_actions(groups: &[u8], own: &[u8], agents: usize, out: &mut [u8]) {
    for ((g, o), dst) in groups
        .chunks_exact(agents)
        .zip(own.chunks_exact(agents))
        .zip(out.chunks_exact_mut(agents))
    {
        let mut k = 0;
        for grp in 0..GROUPS as u8 {
            for (&gi, &a) in g.iter().zip(o) {
                if gi == grp {
                    dst[k] = a;
                    k += 1;
                }
            }
        }
    }
}

/// One finished episode of the factual world.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeTotals {
    /// Group totals `[NSr, NSb, Sr, Sb]`.
    pub totals: [f32; 4],
    /// Agents in each of those cells.
    pub counts: [u32; 4],
    /// Counterfactual runs: mean over agents of |return − the twin's return| (the twin's
    /// episode ends on the same step).
    pub cf: Option<f64>,
}

/// Host-side rollout buffers, time-major then slot (`instance * agents + agent`).
struct Rollout {
    obs: Vec<f32>,
    actions: Vec<u32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<f32>,
    groups: Vec<u8>,
    /// Berry preference of each row's agent (0 red, 1 blue).
    prefs: Vec<u8>,
    /// Slots of the factual world (the twin's follow in counterfactual runs).
    world_slots: u32,
    last_values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

impl Rollout {
    fn new(steps: usize, slots: usize, world_slots: usize) -> Self {
        let n = steps * slots;
        Self {
            world_slots: world_slots as u32,
            obs: vec![0.0; n * OBS_DIM],
            actions: vec![0; n],
            logp: vec![0.0; n],
            values: vec![0.0; n],
            rewards: vec![0.0; n],
            dones: vec![0.0; n],
            groups: vec![0; n],
            prefs: vec![0; n],
            last_values: vec![0.0; slots],
            advantages: vec![0.0; n],
            returns: vec![0.0; n],
        }
    }
}

/// Everything a checkpoint holds besides the parameters' bytes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    pub iteration: u32,
    pub env_steps: u64,
    pub shuffle_streams: Vec<Stream>,
    pub env: AhSnapshot,
    /// The counterfactual twin world (runs with `fairness = "cf"`).
    #[serde(default)]
    pub twin: Option<AhSnapshot>,
    /// Fair-PPO's running normalisers (absent in checkpoints of older versions: fresh).
    #[serde(default)]
    pub fair: FairState,
}

/// Parameters and Adam state of one network.
#[derive(Clone, Debug)]
pub struct NetState {
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
}

/// The AH PPO trainer over any executor.
pub struct AhTrainer<E: Executor> {
    pub cfg: TrainConfig,
    env: AhEnv,
    /// Counterfactual fairness: the twin world (every agent's sensitive attribute flipped,
    /// common random numbers), stepped in lock-step with the same networks. Its slots follow
    /// the factual world's in every per-slot buffer.
    twin: Option<AhEnv>,
    pool: WorkerPool,
    nets: Vec<GroupNet<E>>,
    obs: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<u8>,
    actions: Vec<u8>,
    /// The action sampled for each slot's own observation (equal to `actions` unless
    /// `ah_action_misalignment`).
    own_actions: Vec<u8>,
    groups: Vec<u8>,
    /// Berry preference per slot (0 red, 1 blue).
    prefs: Vec<u8>,
    ro: Rollout,
    mems: [GroupMemory; GROUPS],
    fair: FairState,
    pub iteration: u32,
    pub env_steps: u64,
    pub timing: Timing,
    adapter: String,
}

impl<E: Executor + Send> AhTrainer<E> {
    /// `make_executor` is called once per group network.
    pub fn new(
        cfg: &TrainConfig,
        env_use: EnvUse,
        make_executor: impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, crate::TrainError> {
        let seeds = Seeds::derive(cfg.seed, env_use);
        let params = ah_params(cfg);
        let env = AhEnv::new(params, cfg.instances as usize, seeds.env)
            .map_err(|e| crate::TrainError::Env(format!("{}: {}", e.field, e.message)))?;
        let twin = (cfg.fairness == Fairness::Cf).then(|| env.twin());
        let worlds = 1 + usize::from(twin.is_some());
        let slots = worlds * env.instances() * env.agents();
        let batch = (cfg.minibatch_size as usize).max(slots.min(ACT_CHUNK_MAX));
        let spec = net_spec(cfg, batch as u32);
        let mut nets = Vec::with_capacity(GROUPS);
        for g in 0..GROUPS {
            let init = spec.init_params(seeds.init[g]);
            let steps = cfg.rollout_steps as usize;
            let ac = if uses_store(cfg) {
                let store = StoreSpec {
                    steps: cfg.rollout_steps,
                    slots: slots as u32,
                    ragged: false,
                    cells: FairSpec::of(cfg).map_or(0, |f| {
                        FairCells {
                            fairness: f.fairness,
                            world_slots: (env.instances() * env.agents()) as u32,
                        }
                        .count()
                    }),
                    segment: if mixes(cfg) { env.agents() as u32 } else { 0 },
                };
                ActorCritic::with_store(
                    spec.clone(),
                    cfg.ppo_hyper(),
                    &init,
                    store,
                    &make_executor,
                )?
            } else {
                ActorCritic::new(spec.clone(), cfg.ppo_hyper(), &init, &make_executor)?
            };
            nets.push(GroupNet {
                ac,
                sample_seed: seeds.sample[g],
                shuffle: Stream::new(cfg.seed, Purpose::TrainShuffle, &[g as u64]),
                batch,
                slots: Vec::with_capacity(slots),
                act_obs: Vec::with_capacity(slots * OBS_DIM),
                out_actions: Vec::with_capacity(slots),
                out_logp: Vec::with_capacity(slots),
                out_values: Vec::with_capacity(slots),
                order: Vec::with_capacity(slots * steps),
                mb_obs: Vec::with_capacity(cfg.minibatch_size as usize * OBS_DIM),
                mb_actions: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_logp: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_values: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_adv: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_adj: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_ret: Vec::with_capacity(cfg.minibatch_size as usize),
                loss: LossSums::default(),
                transfer_bytes: 0,
                dst: Vec::with_capacity(slots),
                store_dones: Vec::with_capacity(slots * steps),
                store_valid: Vec::with_capacity(slots * steps),
                rows: Vec::with_capacity(slots * steps),
                epochs: EpochScratch::default(),
                cell_ids: Vec::with_capacity(slots * steps),
                cell_stats: None,
                mb_cells: Vec::with_capacity(cfg.minibatch_size as usize),
                segment_sums: Vec::new(),
            });
        }
        let adapter = nets[0].ac.executor().adapter_name();
        Ok(Self {
            cfg: cfg.clone(),
            obs: vec![0.0; worlds * env.obs_len()],
            rewards: vec![0.0; slots],
            dones: vec![0; worlds * env.instances()],
            actions: vec![0; slots],
            own_actions: vec![0; slots],
            groups: vec![0; slots],
            prefs: vec![0; slots],
            ro: Rollout::new(
                cfg.rollout_steps as usize,
                slots,
                env.instances() * env.agents(),
            ),
            mems: Default::default(),
            fair: FairState {
                shaper: Shaper::default(),
                reference: vec![vec![MinMax::default(); 4]; GROUPS],
            },
            pool: WorkerPool::new(cfg.threads as usize),
            env,
            twin,
            nets,
            iteration: 0,
            env_steps: 0,
            timing: Timing::default(),
            adapter,
        })
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    pub fn agents(&self) -> usize {
        self.env.agents()
    }

    pub fn env(&self) -> &AhEnv {
        &self.env
    }

    /// Instance `i` of the slot order: the factual world's, then the twin's.
    fn instance_of<'a>(
        env: &'a AhEnv,
        twin: &'a Option<AhEnv>,
        i: usize,
    ) -> fairground_kernel::ah::InstanceRef<'a> {
        let n = env.instances();
        match twin {
            Some(twin) if i >= n => twin.instance(i - n),
            _ => env.instance(i),
        }
    }

    /// Instances of both worlds.
    fn all_instances(&self) -> usize {
        self.env.instances() * (1 + usize::from(self.twin.is_some()))
    }

    fn observe_all(&mut self) {
        let half = self.env.obs_len();
        self.env.observe(&mut self.obs[..half]);
        if let Some(twin) = &mut self.twin {
            twin.observe(&mut self.obs[half..]);
        }
    }

    fn refresh_groups(&mut self) {
        let agents = self.env.agents();
        for i in 0..self.all_instances() {
            let inst = Self::instance_of(&self.env, &self.twin, i);
            for a in 0..agents {
                let agent = inst.agent(a);
                self.groups[i * agents + a] = u8::from(agent.sensitive);
                self.prefs[i * agents + a] = agent.pref;
            }
        }
    }

    /// Run `f` on each group's network, side by side on the kernel's worker pool (which the
    /// environment steps on too) when it has 2+ threads. The networks share nothing, so the
    /// results do not depend on the thread count; of several errors, the lowest group's is
    /// returned.
    fn run_nets(
        pool: &WorkerPool,
        nets: &mut [GroupNet<E>],
        f: impl Fn(u8, &mut GroupNet<E>) -> Result<(), ShaderError> + Sync,
    ) -> Result<(), ShaderError> {
        let errors: [Mutex<Option<ShaderError>>; GROUPS] = Default::default();
        let work = |view: NetView<'_, E>| {
            for (k, net) in view.nets.iter_mut().enumerate() {
                let g = view.first + k;
                if let Err(e) = f(g as u8, net) {
                    *errors[g].lock().expect("error slot") = Some(e);
                }
            }
        };
        pool.run_split(NetView { nets, first: 0 }, &work);
        match errors
            .into_iter()
            .find_map(|e| e.into_inner().expect("error slot"))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run both networks on the current observations.
    fn act_all(&mut self, step: u32, mode: ActMode) -> Result<(), ShaderError> {
        let (obs, groups, iteration) = (&self.obs, &self.groups, self.iteration);
        Self::run_nets(&self.pool, &mut self.nets, |g, net| {
            net.act(g, obs, groups, iteration, step, mode)
        })
    }

    /// Copy each network's sampled actions to its agents.
    fn scatter_actions(&mut self) {
        for net in &self.nets {
            for (k, &slot) in net.slots.iter().enumerate() {
                self.actions[slot as usize] = net.out_actions[k] as u8;
            }
        }
    }

    /// Sample actions for the current observations into `self.actions` (and, with `record`,
    /// the rollout's step `t`: each slot's own observation, sampled action, log-probability and
    /// value). With `ah_action_misalignment` the environment's actions are the concatenation
    /// of [`concat_group_actions`].
    fn policy_step(&mut self, t: usize, mode: ActMode, record: bool) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        self.act_all(t as u32, mode)?;
        let m = self.actions.len();
        for net in &self.nets {
            for (k, &slot) in net.slots.iter().enumerate() {
                let slot = slot as usize;
                self.own_actions[slot] = net.out_actions[k] as u8;
                if record {
                    let i = t * m + slot;
                    self.ro.actions[i] = net.out_actions[k];
                    self.ro.logp[i] = net.out_logp[k];
                    self.ro.values[i] = net.out_values[k];
                }
            }
        }
        if self.cfg.ah_action_misalignment {
            concat_group_actions(
                &self.groups,
                &self.own_actions,
                self.env.agents(),
                &mut self.actions,
            );
        } else {
            self.actions.copy_from_slice(&self.own_actions);
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// Rollout step `t` through the device stores: sample actions into `self.actions`.
    fn stored_step(&mut self, t: usize) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        let (obs, groups, iteration) = (&self.obs, &self.groups, self.iteration);
        Self::run_nets(&self.pool, &mut self.nets, |g, net| {
            net.act_stored(g, obs, groups, iteration, t as u32)
        })?;
        self.scatter_actions();
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn kernel_step(&mut self) {
        let t0 = Instant::now();
        let (n, slots, obs) = (
            self.env.instances(),
            self.env.instances() * self.env.agents(),
            self.env.obs_len(),
        );
        self.env.step(
            &self.actions[..slots],
            StepOut {
                obs: &mut self.obs[..obs],
                rewards: &mut self.rewards[..slots],
                dones: &mut self.dones[..n],
            },
            &self.pool,
        );
        if let Some(twin) = &mut self.twin {
            twin.step(
                &self.actions[slots..],
                StepOut {
                    obs: &mut self.obs[obs..],
                    rewards: &mut self.rewards[slots..],
                    dones: &mut self.dones[n..],
                },
                &self.pool,
            );
        }
        self.timing.kernel_s += t0.elapsed().as_secs_f64();
    }

    /// One iteration: T steps of every instance, GAE, K epochs of PPO per network.
    pub fn iterate(&mut self) -> Result<IterStats, ShaderError> {
        let start = Instant::now();
        let steps = self.cfg.rollout_steps as usize;
        let agents = self.env.agents();
        let m = self.actions.len();
        self.observe_all();
        self.refresh_groups();
        let mut episodes = 0u32;
        let mut episode_sums = [0.0f64; GROUPS];
        let sensitive = self.env.params().sensitive_agents() as f64;
        let group_agents = [agents as f64 - sensitive, sensitive];
        let stored = uses_store(&self.cfg);
        for t in 0..steps {
            let h0 = Instant::now();
            if !stored {
                self.ro.obs[t * m * OBS_DIM..(t + 1) * m * OBS_DIM].copy_from_slice(&self.obs);
            }
            self.ro.groups[t * m..(t + 1) * m].copy_from_slice(&self.groups);
            self.ro.prefs[t * m..(t + 1) * m].copy_from_slice(&self.prefs);
            self.timing.host_s += h0.elapsed().as_secs_f64();
            if stored {
                self.stored_step(t)?;
            } else {
                self.policy_step(t, ActMode::Sample, true)?;
            }
            self.kernel_step();
            let h0 = Instant::now();
            self.ro.rewards[t * m..(t + 1) * m].copy_from_slice(&self.rewards);
            for (slot, d) in self.ro.dones[t * m..(t + 1) * m].iter_mut().enumerate() {
                *d = f32::from(self.dones[slot / agents]);
            }
            for (i, &d) in self.dones.iter().enumerate().take(self.env.instances()) {
                if d != 0 {
                    episodes += 1;
                    let r = self.env.instance(i).last_episode_group_returns();
                    episode_sums[0] += f64::from(r[0]) + f64::from(r[1]);
                    episode_sums[1] += f64::from(r[2]) + f64::from(r[3]);
                }
            }
            self.refresh_groups();
            self.timing.host_s += h0.elapsed().as_secs_f64();
        }
        // Bootstrap values of the observations after the last step (per-player GAE only).
        let t0 = Instant::now();
        if stored {
            let (obs, groups, iteration) = (&self.obs, &self.groups, self.iteration);
            Self::run_nets(&self.pool, &mut self.nets, |g, net| {
                net.bootstrap_stored(g, obs, groups, iteration, steps as u32)
            })?;
        } else if !self.cfg.ah_interleaved_gae {
            self.act_all(steps as u32, ActMode::Sample)?;
            for net in &self.nets {
                for (k, &slot) in net.slots.iter().enumerate() {
                    self.ro.last_values[slot as usize] = net.out_values[k];
                }
            }
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();

        let h0 = Instant::now();
        let ro = &mut self.ro;
        if !stored {
            if !self.cfg.ah_interleaved_gae {
                let gae = GaeParams {
                    steps: steps as u32,
                    agents: m as u32,
                    gamma: self.cfg.gamma,
                    gae_lambda: self.cfg.gae_lambda,
                    ..GaeParams::default()
                };
                fairground_shaders::cpu::gae(
                    &gae,
                    &ro.rewards,
                    &ro.values,
                    &ro.dones,
                    &ro.last_values,
                    &mut ro.advantages,
                    &mut ro.returns,
                );
            }
            for (g, mem) in self.mems.iter_mut().enumerate() {
                group_memory(
                    g as u8,
                    &ro.groups,
                    &ro.rewards,
                    &ro.values,
                    &ro.advantages,
                    &ro.returns,
                    &self.cfg,
                    mem,
                );
            }
        }
        // The factual world's rows (a counterfactual run's twin rows train too, but the
        // metrics describe the factual world).
        let mut reward_sum = [0.0f64; GROUPS];
        let mut rows = [0u64; GROUPS];
        let world = ro.world_slots as usize;
        for (row, (&r, &g)) in ro.rewards.iter().zip(&ro.groups).enumerate() {
            if row % m < world {
                reward_sum[g as usize] += f64::from(r);
                rows[g as usize] += 1;
            }
        }
        self.timing.host_s += h0.elapsed().as_secs_f64();

        // On the device path GAE runs inside the update (each network over its store).
        let t0 = Instant::now();
        let (ro, cfg, mems) = (&self.ro, &self.cfg, &self.mems);
        let passes = training_passes(cfg.ah_cross_group_training);
        let memories_of = |g: usize| -> Vec<(usize, &GroupMemory)> {
            passes
                .iter()
                .filter(|&&(net, _)| net == g)
                .map(|&(_, mem)| (mem, &mems[mem]))
                .collect()
        };
        if stored {
            Self::run_nets(&self.pool, &mut self.nets, |g, net| {
                net.advantages_stored(g, ro, cfg)
            })?;
        }
        let fair = FairSpec::of(cfg);
        let world_slots = ro.world_slots;
        let cells_of = |f: FairSpec| FairCells {
            fairness: f.fairness,
            world_slots,
        };
        let mut sums = CellSums::new(fair.map_or(2, |f| cells_of(f).count()) as usize);
        if let Some(spec) = fair {
            if stored {
                for net in &self.nets {
                    sums.add_device(net.cell_stats.as_ref().expect("reduced above"));
                }
            } else {
                let slots = ro.last_values.len();
                for (row, ((&r, &v), (&grp, &pref))) in ro
                    .rewards
                    .iter()
                    .zip(&ro.values)
                    .zip(ro.groups.iter().zip(&ro.prefs))
                    .enumerate()
                {
                    let c = cells_of(spec).cell(grp, pref, row % slots) as usize;
                    sums.reward[c] += f64::from(r);
                    sums.value[c] += f64::from(v);
                    sums.count[c] += 1;
                }
            }
        }
        let (mut plans, penalty) = plan(&mut self.fair, cfg, world_slots, &sums, passes);
        if stored && mixes(cfg) {
            // The cross-group term: each network's rows get the other group's mean
            // (standardised) advantage in the same instance and step.
            let spec = fair.expect("mixes implies Fair-PPO");
            let cells = cells_of(spec).count() as usize;
            Self::run_nets(&self.pool, &mut self.nets, |_, net| {
                net.segment_sums = net.ac.store_segment_means()?;
                net.transfer_bytes += (net.segment_sums.len() * 8) as u64;
                Ok(())
            })?;
            for (g, plan) in plans.iter_mut().enumerate() {
                let other = &self.nets[1 - g].segment_sums;
                let mix: Vec<f32> = (0..other.len())
                    .map(|i| {
                        let (k, c) = (i / cells, i % cells);
                        let s = other[k * cells + partner(spec.fairness, c)];
                        if s.count > 0 {
                            s.sum / s.count as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                plan.mix = Some(mix);
            }
        }
        let ro = &self.ro;
        Self::run_nets(&self.pool, &mut self.nets, |g, net| {
            let plan = &plans[g as usize];
            if stored {
                net.epochs_stored(cfg, plan)
            } else {
                let memories: Vec<&GroupMemory> = memories_of(g as usize)
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
                net.train(&memories, ro, cfg, plan)
            }
        })?;
        self.timing.update_s += t0.elapsed().as_secs_f64();

        let loss = LossSums::mean_over(self.nets.iter().map(|n| &n.loss));
        for net in &mut self.nets {
            self.timing.transfer_bytes += std::mem::take(&mut net.transfer_bytes);
        }
        self.iteration += 1;
        self.env_steps += (self.all_instances() * steps) as u64;
        let total_rows = (world * steps) as f64;
        let return_by_group =
            std::array::from_fn(|g| reward_sum[g] * steps as f64 / (rows[g].max(1) as f64));
        let fair = self.measure(steps as u32, penalty);
        Ok(IterStats {
            mean_reward_per_agent_step: reward_sum.iter().sum::<f64>() / total_rows,
            return_by_group,
            episodes_completed: episodes,
            episode_return_by_group: (episodes > 0).then(|| {
                std::array::from_fn(|g| {
                    episode_sums[g] / (f64::from(episodes) * group_agents[g].max(1.0))
                })
            }),
            loss,
            fair,
            wall_s: start.elapsed().as_secs_f64(),
        })
    }

    /// The disparities of this rollout (every algorithm), in the factual world: dp = per-agent
    /// return over the rollout of the non-sensitive group minus the sensitive group; csp per
    /// berry preference; cf (with a twin) the mean over agents of |return − twin's return|.
    fn measure(&self, steps: u32, penalty: Option<serde_json::Value>) -> FairMetrics {
        let ro = &self.ro;
        let (m, world) = (ro.last_values.len(), ro.world_slots as usize);
        let csp_cells = FairCells {
            fairness: Fairness::Csp,
            world_slots: ro.world_slots,
        };
        let mut sums = CellSums::new(4);
        let mut per_slot = vec![0.0f64; m];
        for (row, ((&r, &grp), &pref)) in
            ro.rewards.iter().zip(&ro.groups).zip(&ro.prefs).enumerate()
        {
            per_slot[row % m] += f64::from(r);
            if row % m < world {
                let c = csp_cells.cell(grp, pref, row % m) as usize;
                sums.reward[c] += f64::from(r);
                sums.count[c] += 1;
            }
        }
        let mut dp_sums = CellSums::new(2);
        for c in 0..4 {
            dp_sums.reward[c / 2] += sums.reward[c];
            dp_sums.count[c / 2] += sums.count[c];
        }
        let dp_cells = FairCells {
            fairness: Fairness::Dp,
            ..csp_cells
        };
        let dp = ah_comparisons(dp_cells, &dp_sums, steps)[0].retro;
        let csp = ah_comparisons(csp_cells, &sums, steps);
        let levels: Vec<(&str, Option<f64>)> =
            csp.iter().map(|c| (c.level.as_str(), c.retro)).collect();
        let cf = self.twin.is_some().then(|| {
            (0..world)
                .map(|s| (per_slot[s] - per_slot[world + s]).abs())
                .sum::<f64>()
                / world as f64
        });
        FairMetrics {
            dp,
            csp: csp_value(&levels),
            cf,
            penalty,
        }
    }

    /// Agent-steps trained per iteration.
    pub fn agent_steps_per_iteration(&self) -> u64 {
        (self.actions.len() * self.cfg.rollout_steps as usize) as u64
    }

    /// Hex digest of both networks' parameters (group 0 then 1).
    pub fn param_hash(&mut self) -> Result<String, ShaderError> {
        let mut h = TrajectoryHash::new();
        for net in &mut self.nets {
            h.write_f32s(&net.ac.params()?);
        }
        Ok(h.hex())
    }

    /// Everything needed to continue exactly here.
    pub fn save(&mut self) -> Result<(TrainerState, Vec<NetState>), ShaderError> {
        let mut nets = Vec::with_capacity(GROUPS);
        for net in &mut self.nets {
            nets.push(NetState {
                params: net.ac.params()?,
                optimizer: net.ac.optimizer_state()?,
            });
        }
        let state = TrainerState {
            iteration: self.iteration,
            env_steps: self.env_steps,
            shuffle_streams: self.nets.iter().map(|n| n.shuffle.clone()).collect(),
            env: self.env.snapshot(),
            twin: self.twin.as_ref().map(AhEnv::snapshot),
            fair: self.fair.clone(),
        };
        Ok((state, nets))
    }

    /// Continue from [`Self::save`]'s output.
    pub fn load(
        &mut self,
        state: TrainerState,
        nets: &[NetState],
    ) -> Result<(), crate::TrainError> {
        if nets.len() != GROUPS || state.shuffle_streams.len() != GROUPS {
            return Err(crate::TrainError::Env(format!(
                "a checkpoint holds {} networks, AH needs {GROUPS}",
                nets.len()
            )));
        }
        for ((net, s), shuffle) in self.nets.iter_mut().zip(nets).zip(state.shuffle_streams) {
            net.ac.restore(&s.params, &s.optimizer)?;
            net.shuffle = shuffle;
        }
        let restore = |s| {
            AhEnv::restore(s)
                .map_err(|e| crate::TrainError::Env(format!("{}: {}", e.field, e.message)))
        };
        if state.twin.is_some() != self.twin.is_some() {
            return Err(crate::TrainError::Env(
                "the checkpoint's twin world does not match the config's fairness".into(),
            ));
        }
        self.env = restore(state.env)?;
        if let Some(t) = state.twin {
            self.twin = Some(restore(t)?);
        }
        self.iteration = state.iteration;
        self.env_steps = state.env_steps;
        if !state.fair.reference.is_empty() {
            self.fair = state.fair;
        }
        Ok(())
    }

    /// Load only the networks' parameters and optimizer state (evaluation).
    pub fn load_nets(&mut self, nets: &[NetState]) -> Result<(), ShaderError> {
        for (net, s) in self.nets.iter_mut().zip(nets) {
            net.ac.restore(&s.params, &s.optimizer)?;
        }
        Ok(())
    }

    /// Play `episodes` whole episodes from a fresh environment and return, per episode, the
    /// group totals `[NSr, NSb, Sr, Sb]` and the number of agents in each of those four cells
    /// (first `episodes` completed, in instance order). `random`: uniform random actions from
    /// the `RandomActions` stream instead of the policy.
    pub fn play_episodes(
        &mut self,
        episodes: usize,
        mode: ActMode,
        random: bool,
    ) -> Result<Vec<EpisodeTotals>, ShaderError> {
        let mut out = Vec::with_capacity(episodes);
        let mut rng = Stream::new(self.env.seed(), Purpose::RandomActions, &[]);
        self.observe_all();
        self.refresh_groups();
        let mut t = 0u32;
        while out.len() < episodes {
            if random {
                // The twin world (if any) replays the factual world's random actions: common
                // random numbers, so that `cf` measures the attribute alone.
                let world = self.env.instances() * self.env.agents();
                for a in &mut self.actions[..world] {
                    *a = rng.below(ACTIONS) as u8;
                }
                if self.actions.len() > world {
                    self.actions.copy_within(..world, world);
                }
            } else {
                self.policy_step(t as usize, mode, false)?;
            }
            self.kernel_step();
            for (i, &d) in self.dones.iter().enumerate().take(self.env.instances()) {
                if d != 0 && out.len() < episodes {
                    // The groups are still the finished episode's (refreshed below).
                    let agents = self.env.agents();
                    let mut counts = [0u32; 4];
                    for slot in i * agents..(i + 1) * agents {
                        let c = 2 * usize::from(self.groups[slot]) + usize::from(self.prefs[slot]);
                        counts[c] += 1;
                    }
                    let inst = self.env.instance(i);
                    let cf = self.twin.as_ref().map(|twin| {
                        let twin = twin.instance(i);
                        let (a, b) = (inst.last_episode_returns(), twin.last_episode_returns());
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| f64::from((x - y).abs()))
                            .sum::<f64>()
                            / agents as f64
                    });
                    out.push(EpisodeTotals {
                        totals: inst.last_episode_group_returns(),
                        counts,
                        cf,
                    });
                }
            }
            self.refresh_groups();
            t += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! The reference profile's AH flags on tiny hand-built data: the action concatenation
    //! order, interleaved GAE as one trajectory, standardised returns, the cross-group pass
    //! order and the stored (acting network's) log-probabilities in a minibatch.
    use super::*;
    use fairground_kernel::Profile;
    use fairground_shaders::CpuExecutor;

    fn reference() -> TrainConfig {
        TrainConfig::defaults(crate::config::EnvName::Ah, Profile::Reference)
    }

    #[test]
    fn concatenation_puts_non_sensitive_actions_first_per_instance() {
        // Two instances of four players; groups 1 = sensitive.
        let groups = [0, 1, 0, 1, 1, 1, 0, 0];
        let own = [10, 11, 12, 13, 20, 21, 22, 23];
        let mut out = [0u8; 8];
        concat_group_actions(&groups, &own, 4, &mut out);
        // Instance 0: non-sensitive players 0, 2 then sensitive 1, 3; instance 1: 6, 7 then 4, 5.
        assert_eq!(out, [10, 12, 11, 13, 22, 23, 20, 21]);
        // All of one group: the identity.
        let mut same = [0u8; 4];
        concat_group_actions(&[1, 1, 1, 1], &[1, 2, 3, 4], 4, &mut same);
        assert_eq!(same, [1, 2, 3, 4]);
    }

    #[test]
    fn misaligned_step_applies_the_concatenation_and_records_own_actions() {
        let cfg = TrainConfig {
            hidden: vec![8],
            rollout_steps: 2,
            episode_steps: 2,
            backend: crate::config::Backend::Cpu,
            threads: 1,
            ..reference()
        };
        assert!(cfg.ah_action_misalignment);
        let mut t = AhTrainer::new(&cfg, EnvUse::Train, |p| Ok(CpuExecutor::new(p))).unwrap();
        t.env.observe(&mut t.obs);
        t.refresh_groups();
        t.policy_step(0, ActMode::Sample, true).unwrap();
        let m = t.actions.len();
        let recorded: Vec<u8> = t.ro.actions[..m].iter().map(|&a| a as u8).collect();
        assert_eq!(
            recorded, t.own_actions,
            "memory: each player's own sampled action"
        );
        let mut expected = vec![0u8; m];
        concat_group_actions(&t.groups, &t.own_actions, t.env.agents(), &mut expected);
        assert_eq!(t.actions, expected, "environment: the concatenation");
        // Both groups are present, so the concatenation is not the identity here.
        assert!(t.groups.contains(&0) && t.groups.contains(&1));
        assert_ne!(t.actions, t.own_actions, "40 sampled actions, misaligned");
    }

    /// 3 steps x 3 slots; group 1 holds slots (0,1), (1,0), (1,2), (2,1) in rollout order.
    const GROUPS_3X3: [u8; 9] = [0, 1, 0, 1, 0, 1, 0, 1, 0];
    const REWARDS: [f32; 9] = [0.5, 1.0, -1.0, 2.0, 0.0, -0.5, 0.25, 3.0, 1.5];
    const VALUES: [f32; 9] = [0.1, 0.2, 0.3, -0.4, 0.5, 0.6, 0.7, 0.8, -0.9];

    #[test]
    fn interleaved_gae_is_cpu_gae_over_the_flat_group_memory() {
        let cfg = TrainConfig {
            gamma: 0.9,
            gae_lambda: 0.8,
            normalize_advantages: false,
            ah_standardized_returns: false,
            ..reference()
        };
        let clean = [f32::NAN; 9];
        let mut mem = GroupMemory::default();
        group_memory(
            1,
            &GROUPS_3X3,
            &REWARDS,
            &VALUES,
            &clean,
            &clean,
            &cfg,
            &mut mem,
        );
        assert_eq!(mem.rows, [1, 3, 5, 7]);
        let r: Vec<f32> = mem.rows.iter().map(|&i| REWARDS[i as usize]).collect();
        let v: Vec<f32> = mem.rows.iter().map(|&i| VALUES[i as usize]).collect();
        let p = GaeParams {
            steps: 4,
            agents: 1,
            gamma: 0.9,
            gae_lambda: 0.8,
            carry: 0,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        };
        let (mut a, mut rt) = ([0.0f32; 4], [0.0f32; 4]);
        fairground_shaders::cpu::gae(&p, &r, &v, &[0.0; 4], &[0.0], &mut a, &mut rt);
        assert_eq!(mem.adv, a);
        assert_eq!(mem.ret, rt);
        // By hand: the last entry bootstraps with 0; each earlier one with the next entry's
        // value (another player's), no done mask.
        let last = 3.0 - 0.8;
        assert!((mem.adv[3] - last).abs() < 1e-6);
        let d2 = -0.5 + 0.9 * 0.8 - 0.6;
        assert!((mem.adv[2] - (d2 + 0.9 * 0.8 * last)).abs() < 1e-6);
        // The clean path takes the per-player results as given.
        let clean_adv: Vec<f32> = (0..9).map(|i| i as f32).collect();
        let clean_ret: Vec<f32> = (0..9).map(|i| 10.0 + i as f32).collect();
        let off = TrainConfig {
            ah_interleaved_gae: false,
            ..cfg
        };
        group_memory(
            1,
            &GROUPS_3X3,
            &REWARDS,
            &VALUES,
            &clean_adv,
            &clean_ret,
            &off,
            &mut mem,
        );
        assert_eq!(mem.adv, [1.0, 3.0, 5.0, 7.0]);
        assert_eq!(mem.ret, [11.0, 13.0, 15.0, 17.0]);
    }

    #[test]
    fn standardized_returns_are_standardized_advantage_plus_value_then_per_minibatch() {
        let cfg = reference();
        assert!(cfg.normalize_advantages && cfg.ah_standardized_returns);
        let clean = [f32::NAN; 9];
        let mut mem = GroupMemory::default();
        group_memory(
            0,
            &GROUPS_3X3,
            &REWARDS,
            &VALUES,
            &clean,
            &clean,
            &cfg,
            &mut mem,
        );
        assert_eq!(mem.rows, [0, 2, 4, 6, 8]);
        let mean = mem.adv.iter().sum::<f32>() / 5.0;
        let var = mem.adv.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        for (k, &i) in mem.rows.iter().enumerate() {
            assert_eq!(mem.ret[k], mem.adv[k] + VALUES[i as usize]);
        }
        // Inside a minibatch the returns are standardised again; the rest is as stored.
        let mut ro = Rollout::new(3, 3, 3);
        ro.values.copy_from_slice(&VALUES);
        let (mut obs, mut actions, mut logp, mut values, mut adv, mut ret) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut out = MinibatchRows {
            obs: &mut obs,
            actions: &mut actions,
            logp: &mut logp,
            values: &mut values,
            adv: &mut adv,
            ret: &mut ret,
        };
        fill_minibatch(&mem, &ro, &[1, 2, 4], true, &mut out);
        let mut expected = vec![mem.ret[1], mem.ret[2], mem.ret[4]];
        standardize(&mut expected);
        assert_eq!(ret, expected);
        let m = ret.iter().sum::<f32>() / 3.0;
        assert!(m.abs() < 1e-6);
        assert_eq!(adv, [mem.adv[1], mem.adv[2], mem.adv[4]]);
        // A one-row minibatch standardises to 0.
        let mut one = [4.0f32];
        standardize(&mut one);
        assert_eq!(one, [0.0]);
    }

    #[test]
    fn cross_group_passes_run_own_then_other_with_the_stored_log_probs() {
        assert_eq!(training_passes(true), [(0, 0), (0, 1), (1, 1), (1, 0)]);
        assert_eq!(training_passes(false), [(0, 0), (1, 1)]);
        // The non-sensitive network's second pass reads the sensitive memory with the
        // log-probabilities and values the sensitive network stored when it acted.
        let mut ro = Rollout::new(3, 3, 3);
        for i in 0..9 {
            ro.logp[i] = -(i as f32) - 0.5;
            ro.values[i] = 100.0 + i as f32;
            ro.actions[i] = i as u32;
            ro.obs[i * OBS_DIM] = i as f32;
        }
        let cfg = TrainConfig {
            normalize_advantages: false,
            ah_standardized_returns: false,
            ..reference()
        };
        let clean = [0.0f32; 9];
        let mut sensitive = GroupMemory::default();
        group_memory(
            1,
            &GROUPS_3X3,
            &REWARDS,
            &VALUES,
            &clean,
            &clean,
            &cfg,
            &mut sensitive,
        );
        let (mut obs, mut actions, mut logp, mut values, mut adv, mut ret) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut out = MinibatchRows {
            obs: &mut obs,
            actions: &mut actions,
            logp: &mut logp,
            values: &mut values,
            adv: &mut adv,
            ret: &mut ret,
        };
        // Sequential slice: memory rows 0..4 in order.
        fill_minibatch(&sensitive, &ro, &[0, 1, 2, 3], false, &mut out);
        assert_eq!(
            logp,
            [-1.5, -3.5, -5.5, -7.5],
            "stored log-probs of rows 1, 3, 5, 7"
        );
        assert_eq!(values, [101.0, 103.0, 105.0, 107.0]);
        assert_eq!(actions, [1, 3, 5, 7]);
        assert_eq!(
            obs.iter().step_by(OBS_DIM).copied().collect::<Vec<_>>(),
            [1.0, 3.0, 5.0, 7.0]
        );
        assert_eq!(adv, sensitive.adv);
        assert_eq!(ret, sensitive.ret);
    }

    #[test]
    fn reference_defaults_turn_every_flag_on_and_clean_off() {
        use crate::config::EnvName;
        for env in [EnvName::Ah, EnvName::Hs] {
            let r = TrainConfig::defaults(env, Profile::Reference);
            assert!(
                r.ah_action_misalignment
                    && r.ah_interleaved_gae
                    && r.ah_standardized_returns
                    && r.ah_cross_group_training
                    && r.hs_pairwise_ratio
                    && r.hs_whole_days
                    && !r.shuffle_minibatches
            );
            assert_eq!(r.profile, Profile::Reference);
            let c = TrainConfig::defaults(env, Profile::Clean);
            assert!(
                !(c.ah_action_misalignment
                    || c.ah_interleaved_gae
                    || c.ah_standardized_returns
                    || c.ah_cross_group_training
                    || c.hs_pairwise_ratio
                    || c.hs_whole_days)
            );
            assert_eq!(c, TrainConfig::default_for(env));
        }
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert_eq!(
            (hs.trunk.as_slice(), hs.hidden.len(), hs.lr),
            (&[256, 128][..], 0, 1e-5)
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Clean);
        assert_eq!(
            (hs.trunk.len(), hs.hidden.as_slice(), hs.lr),
            (0, &[256, 128][..], 3e-4)
        );
        let ah = TrainConfig::defaults(EnvName::Ah, Profile::Reference);
        assert_eq!((ah.instances, ah.rollout_steps), (1, 3000));
        assert!(
            !ah.ppo_hyper().pairwise_ratio,
            "the pairwise ratio is HS only"
        );
        let hs = TrainConfig::defaults(EnvName::Hs, Profile::Reference);
        assert!(hs.ppo_hyper().pairwise_ratio && !hs.normalize_advantages);
        assert_eq!(
            (hs.instances, hs.rollout_steps),
            (1, crate::config::HS_DAY_ROUNDS_CAP)
        );
        // Each flag is overridable; an AH reference file setting episode_steps only gets
        // one episode per rollout.
        let cfg = TrainConfig::from_toml_for(
            "profile = \"reference\"\nepisode_steps = 50\nah_cross_group_training = false\n",
            "t.toml",
            None,
            None,
        )
        .unwrap();
        assert_eq!(cfg.rollout_steps, 50);
        assert!(!cfg.ah_cross_group_training && cfg.ah_interleaved_gae);
        let cfg = TrainConfig::from_toml_for(
            "episode_steps = 50\nrollout_steps = 10\n",
            "t.toml",
            None,
            Some(Profile::Reference),
        )
        .unwrap();
        assert_eq!((cfg.rollout_steps, cfg.profile), (10, Profile::Reference));
        assert!(cfg.validate().is_ok());
    }
}
