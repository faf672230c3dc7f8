//! The AH reference profile's host-side training path: the reference trainer's [REPRO]
//! behaviours, each a [`TrainConfig`] flag (all on in the `reference` profile), need memories a
//! device store's `T x slots` grid cannot express, so with any of them on ([`uses_store`] false)
//! the rollout is kept on the host and minibatches are uploaded:
//! - `ah_action_misalignment` (the environment adapter's [`concat_group_actions`]): the
//!   environment receives each instance's actions as [non-sensitive players' actions, then
//!   sensitive players'], applied to players in order; the rollout still records each player's
//!   own sampled action.
//! - `ah_interleaved_gae` ([`interleaved_gae`]): GAE over a group's whole memory as one
//!   trajectory (no done masks, last entry bootstraps with 0).
//! - `ah_standardized_returns` ([`group_memory`], [`standardize`]): returns = standardised
//!   advantage + stored value, standardised again inside each minibatch.
//! - `ah_cross_group_training` ([`training_passes`]): each network also trains on the other
//!   group's memory, with the stored (other network's) log-probabilities as the old ones. The
//!   networks share no state, so running each network's passes (in the listed order) side by
//!   side gives the same parameters as the reference's one-after-the-other schedule.
//!
//! Fair-PPO on this path: the shaped penalty's weights without the partner term (applied per
//! minibatch with the CPU twin of `fair_adjust`), or the reference penalty's loss scale per pass.
//! Otherwise this is the same PPO as `train_loop.rs`, over the same [`AhAdapter`].
//!
//! [`concat_group_actions`]: crate::env::ah::concat_group_actions

use crate::algo::fair_ppo::{FairPpo, FairState};
use crate::common::{ACT_CHUNK_MAX, ActMode, EnvUse, NetState, Seeds, Timing};
use crate::config::{Algo, Penalty, TrainConfig};
use crate::env::ah::{AhAdapter, AhState, GROUP_NETS};
use crate::env::fairness::CellSums;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::net::{ParamCheck, PolicyNet, check_params, restore_all, restore_streams, save_all};
use crate::train_loop::{IterStats, TrainerState, run_nets};
use crate::update::LossSums;
use fairground_kernel::ah::OBS_DIM;
use fairground_kernel::pool::WorkerPool;
use fairground_shaders::layout::{FairParams, GaeParams};
use fairground_shaders::{Executor, Minibatch, Program, ShaderError};
use std::sync::Mutex;
use std::time::Instant;

/// Whether the rollout lives in the networks' device stores: yes unless a [REPRO] flag asks for
/// a memory the `T x slots` grid cannot express (see the module documentation).
pub fn uses_store(cfg: &TrainConfig) -> bool {
    !(cfg.ah.action_misalignment
        || cfg.ah.interleaved_gae
        || cfg.ah.standardized_returns
        || cfg.ah.cross_group_training)
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
/// `cfg.ah.interleaved_gae`): advantages standardised over the memory with
/// `cfg.ppo.normalize_advantages`; with `cfg.ah.standardized_returns`, returns = those advantages +
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
    if cfg.ah.interleaved_gae {
        let r: Vec<f32> = mem.rows.iter().map(|&i| rewards[i as usize]).collect();
        let v: Vec<f32> = mem.rows.iter().map(|&i| values[i as usize]).collect();
        mem.adv.resize(n, 0.0);
        mem.ret.resize(n, 0.0);
        interleaved_gae(
            cfg.ppo.gamma,
            cfg.ppo.gae_lambda,
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
    if cfg.ppo.normalize_advantages && n > 1 {
        standardize(&mut mem.adv);
    }
    if cfg.ah.standardized_returns {
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
    last_values: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

impl Rollout {
    fn new(steps: usize, slots: usize) -> Self {
        let n = steps * slots;
        Self {
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

/// A group network's host-side minibatch scratch.
#[derive(Default)]
struct HostBatch {
    order: Vec<u32>,
    obs: Vec<f32>,
    actions: Vec<u32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    adv: Vec<f32>,
    adj: Vec<f32>,
    ret: Vec<f32>,
    cells: Vec<u32>,
}

/// AH PPO (and Fair-PPO) with host-side memories, the reference profile's trainer.
pub struct AhReproTrainer<E: Executor> {
    pub cfg: TrainConfig,
    pub env: AhAdapter,
    fair: Option<FairPpo>,
    pool: WorkerPool,
    nets: Vec<PolicyNet<E>>,
    batches: Vec<Mutex<HostBatch>>,
    out: RoundOut,
    ro: Rollout,
    mems: [GroupMemory; GROUP_NETS],
    seeds: Seeds,
    pub iteration: u32,
    pub env_steps: u64,
    pub timing: Timing,
    adapter: String,
}

impl<E: Executor + Send> AhReproTrainer<E> {
    pub fn new(
        cfg: &TrainConfig,
        env_use: EnvUse,
        make_executor: impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, TrainError> {
        let env = AhAdapter::new(cfg, env_use)?;
        let slots = env.slots();
        let fair = (cfg.algo == Algo::FairPpo).then(|| FairPpo::new(cfg, &env, 0));
        let seeds = Seeds::derive(cfg.seed, &[], EnvUse::Train, GROUP_NETS);
        let batch = (cfg.ppo.minibatch_size as usize).max(slots.min(ACT_CHUNK_MAX));
        let mut nets = Vec::with_capacity(GROUP_NETS);
        for (g, shape) in env.nets().iter().enumerate() {
            nets.push(PolicyNet::new(
                cfg,
                shape.clone(),
                slots,
                batch,
                seeds.init[g],
                seeds.sample[g],
                Seeds::shuffle(cfg.seed, &[], g),
                None,
                |_, _| {},
                &make_executor,
            )?);
        }
        let adapter = nets[0].ac.executor().adapter_name();
        Ok(Self {
            cfg: cfg.clone(),
            fair,
            pool: WorkerPool::new(cfg.threads as usize),
            batches: (0..GROUP_NETS)
                .map(|_| Mutex::new(HostBatch::default()))
                .collect(),
            out: RoundOut::new(slots),
            ro: Rollout::new(cfg.rollout_steps as usize, slots),
            mems: Default::default(),
            env,
            nets,
            seeds,
            iteration: 0,
            env_steps: 0,
            timing: Timing::default(),
            adapter,
        })
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    pub fn seeds(&self) -> &Seeds {
        &self.seeds
    }

    fn gather(&mut self) {
        for (g, net) in self.nets.iter_mut().enumerate() {
            self.env.gather(g, &mut net.slots, &mut net.obs);
        }
    }

    /// Sample actions for the current observations and keep the rollout's step `t`: each
    /// slot's sampled action, log-probability and value.
    fn policy_step(&mut self, t: usize) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        self.gather();
        let iteration = self.iteration;
        run_nets(&self.pool, &mut self.nets, |_, net| {
            net.act(iteration, t as u32, ActMode::Sample)
        })?;
        let m = self.out.reward.len();
        for (g, net) in self.nets.iter().enumerate() {
            for (k, &slot) in net.slots.iter().enumerate() {
                let i = t * m + slot as usize;
                self.ro.actions[i] = net.actions[k];
                self.ro.logp[i] = net.logp[k];
                self.ro.values[i] = net.values[k];
            }
            self.env.scatter(g, &net.slots, &net.actions);
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// One iteration: T steps of every instance, host GAE and memories, the passes.
    pub fn iterate(&mut self) -> Result<IterStats<crate::env::ah::AhMetrics>, ShaderError> {
        let start = Instant::now();
        let steps = self.cfg.rollout_steps as usize;
        let m = self.out.reward.len();
        self.rollout(steps, m)?;
        self.bootstrap(steps)?;
        let h0 = Instant::now();
        self.memories(steps, m);
        self.timing.host_s += h0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (scales, weights) = self.plan();
        self.passes(&scales, weights.as_deref())?;
        self.timing.update_s += t0.elapsed().as_secs_f64();

        let loss = LossSums::mean_over(self.nets.iter().map(|n| &n.loss));
        for net in &mut self.nets {
            self.timing.transfer_bytes += std::mem::take(&mut net.transfer_bytes);
        }
        self.iteration += 1;
        self.env_steps += (self.env.instances() * steps) as u64;
        Ok(IterStats {
            env: self.env.end_rollout(steps as u32, self.env_steps),
            loss,
            penalty: self
                .fair
                .as_ref()
                .and_then(crate::algo::Algorithm::<AhAdapter>::report),
            report_key: "penalty",
            trained: (m * steps) as u64,
            wall_s: start.elapsed().as_secs_f64(),
        })
    }

    /// T steps of every instance into the host rollout (`m` slots a step).
    fn rollout(&mut self, steps: usize, m: usize) -> Result<(), ShaderError> {
        self.env.begin_rollout();
        for t in 0..steps {
            let h0 = Instant::now();
            self.ro.obs[t * m * OBS_DIM..(t + 1) * m * OBS_DIM].copy_from_slice(self.env.obs());
            self.ro.groups[t * m..(t + 1) * m].copy_from_slice(self.env.groups());
            self.ro.prefs[t * m..(t + 1) * m].copy_from_slice(self.env.prefs());
            self.timing.host_s += h0.elapsed().as_secs_f64();
            self.policy_step(t)?;
            let k0 = Instant::now();
            self.env.step(&mut self.out, &self.pool);
            self.timing.kernel_s += k0.elapsed().as_secs_f64();
            self.ro.rewards[t * m..(t + 1) * m].copy_from_slice(&self.out.reward);
            for (d, &done) in self.ro.dones[t * m..(t + 1) * m]
                .iter_mut()
                .zip(&self.out.done)
            {
                *d = f32::from(u8::from(done));
            }
        }
        Ok(())
    }

    /// Bootstrap values of the observations after the last step (per-player GAE only).
    fn bootstrap(&mut self, steps: usize) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        if !self.cfg.ah.interleaved_gae {
            self.gather();
            let iteration = self.iteration;
            run_nets(&self.pool, &mut self.nets, |_, net| {
                net.act(iteration, steps as u32, ActMode::Sample)
            })?;
            for net in &self.nets {
                for (k, &slot) in net.slots.iter().enumerate() {
                    self.ro.last_values[slot as usize] = net.values[k];
                }
            }
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// Every network's passes (see [`training_passes`]), pass k of network g with loss scale
    /// `scales[g][k]` and, for Fair-PPO shaped, the cell weights. The networks share nothing:
    /// their passes run side by side on the pool (each batch's lock is only ever taken by its
    /// own network).
    fn passes(
        &mut self,
        scales: &[Vec<f32>],
        weights: Option<&[[f32; 2]]>,
    ) -> Result<(), ShaderError> {
        let (ro, cfg, mems, batches) = (&self.ro, &self.cfg, &self.mems, &self.batches);
        let passes = training_passes(cfg.ah.cross_group_training);
        let cells = self
            .fair
            .as_ref()
            .map(|f| self.env.fair_cells(f.spec().fairness))
            .filter(|_| weights.is_some());
        run_nets(&self.pool, &mut self.nets, |g, net| {
            let mut batch = batches[g].lock().expect("host batch");
            net.loss = LossSums::default();
            for (k, &(_, mem)) in passes.iter().filter(|&&(n, _)| n == g).enumerate() {
                net.ac.set_loss_scale(scales[g][k]);
                train_on(net, &mut batch, &mems[mem], ro, cfg, weights, cells)?;
            }
            net.ac.finish()
        })
    }

    /// Host GAE (per player, unless interleaved) and each group's memory.
    fn memories(&mut self, steps: usize, m: usize) {
        let ro = &mut self.ro;
        if !self.cfg.ah.interleaved_gae {
            let gae = GaeParams {
                steps: steps as u32,
                agents: m as u32,
                gamma: self.cfg.ppo.gamma,
                gae_lambda: self.cfg.ppo.gae_lambda,
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

    /// Fair-PPO's plan from the host's per-cell sums of every row: per network and pass the
    /// loss scale, and the shaped weights (1 everywhere and no weights for PPO).
    fn plan(&mut self) -> (Vec<Vec<f32>>, Option<Vec<[f32; 2]>>) {
        let passes = training_passes(self.cfg.ah.cross_group_training);
        let ones: Vec<Vec<f32>> = (0..GROUP_NETS)
            .map(|g| vec![1.0; passes.iter().filter(|&&(n, _)| n == g).count()])
            .collect();
        let Some(fair) = &mut self.fair else {
            return (ones, None);
        };
        let spec = fair.spec();
        let cells = self.env.fair_cells(spec.fairness);
        let mut sums = CellSums::new(cells.count() as usize);
        let ro = &self.ro;
        let slots = ro.last_values.len();
        for (row, ((&r, &v), (&grp, &pref))) in ro
            .rewards
            .iter()
            .zip(&ro.values)
            .zip(ro.groups.iter().zip(&ro.prefs))
            .enumerate()
        {
            let c = cells.cell(grp, pref, row % slots) as usize;
            sums.reward[c] += f64::from(r);
            sums.value[c] += f64::from(v);
            sums.count[c] += 1;
        }
        match spec.penalty {
            Penalty::Shaped => {
                let (w, json) = fair.group_shift(&self.env, &sums, 0.0);
                fair.set_report(Some(json));
                (ones, Some(w))
            }
            Penalty::Reference => {
                let (scales, json) = fair.reference_passes(&self.env, &sums, passes);
                fair.set_report(Some(json));
                (scales, None)
            }
        }
    }

    /// As [`crate::train_loop::Trainer::check_params`].
    pub fn check_params(&mut self) -> Result<ParamCheck, ShaderError> {
        check_params(&mut self.nets)
    }

    #[allow(clippy::type_complexity)]
    pub fn save(
        &mut self,
    ) -> Result<(TrainerState<AhState, FairState>, Vec<NetState>), ShaderError> {
        let nets = save_all(&mut self.nets)?;
        let state = TrainerState {
            iteration: self.iteration,
            env_steps: self.env_steps,
            shuffle_streams: self.nets.iter().map(|n| n.shuffle.clone()).collect(),
            env: self.env.snapshot(),
            algo: self
                .fair
                .as_ref()
                .map(crate::algo::Algorithm::<AhAdapter>::state)
                .unwrap_or_default(),
        };
        Ok((state, nets))
    }

    pub fn load(
        &mut self,
        state: TrainerState<AhState, FairState>,
        nets: &[NetState],
    ) -> Result<(), TrainError> {
        restore_streams(&mut self.nets, state.shuffle_streams)?;
        self.load_nets(nets)?;
        self.env.restore(state.env)?;
        if let Some(f) = &mut self.fair {
            crate::algo::Algorithm::<AhAdapter>::restore(f, state.algo)?;
        }
        self.iteration = state.iteration;
        self.env_steps = state.env_steps;
        Ok(())
    }

    pub fn load_nets(&mut self, nets: &[NetState]) -> Result<(), TrainError> {
        restore_all(&mut self.nets, nets)
    }

    /// What evaluation loads: the networks (Fair-PPO keeps no model state of its own).
    pub fn load_model(
        &mut self,
        _state: TrainerState<AhState, FairState>,
        nets: &[NetState],
    ) -> Result<(), TrainError> {
        self.load_nets(nets)
    }

    /// Evaluation play: as [`crate::train_loop::Trainer::play`] (the adapter misaligns the
    /// actions when the profile asks).
    pub fn play(
        &mut self,
        episodes: usize,
        mode: ActMode,
        random: bool,
        progress: &mut dyn FnMut(usize),
        watch: &mut crate::train_loop::Watch<'_>,
    ) -> Result<serde_json::Value, ShaderError> {
        let (nets, pool, iteration) = (&mut self.nets, &self.pool, self.iteration);
        let mut act = |env: &mut AhAdapter, out: Option<&_>, t: u32| -> Result<(), ShaderError> {
            if out.is_some() {
                return Ok(());
            }
            for (g, net) in nets.iter_mut().enumerate() {
                env.gather(g, &mut net.slots, &mut net.obs);
            }
            run_nets(pool, nets, |_, net| net.act(iteration, t, mode))?;
            for (g, net) in nets.iter().enumerate() {
                env.scatter(g, &net.slots, &net.actions);
            }
            Ok(())
        };
        crate::train_loop::play_loop(
            &mut self.env,
            &mut self.out,
            pool,
            episodes,
            mode,
            random,
            progress,
            &mut act,
            watch,
        )
    }
}

/// K epochs of minibatch PPO on one memory (see [`training_passes`]), with, for Fair-PPO
/// shaped, the cell weights of `cells`' rows.
fn train_on<E: Executor>(
    net: &mut PolicyNet<E>,
    b: &mut HostBatch,
    mem: &GroupMemory,
    ro: &Rollout,
    cfg: &TrainConfig,
    weights: Option<&[[f32; 2]]>,
    cells: Option<crate::env::ah::fair::FairCells>,
) -> Result<(), ShaderError> {
    let n = mem.rows.len();
    if n == 0 {
        return Ok(());
    }
    b.order.clear();
    b.order.extend(0..n as u32);
    let mb = cfg.ppo.minibatch_size as usize;
    for _ in 0..cfg.ppo.epochs {
        if cfg.ppo.shuffle_minibatches {
            net.shuffle.shuffle(&mut b.order);
        }
        let chunks = n.div_ceil(mb);
        for c in 0..chunks {
            let part = &b.order[c * mb..((c + 1) * mb).min(n)];
            let mut scratch = MinibatchRows {
                obs: &mut b.obs,
                actions: &mut b.actions,
                logp: &mut b.logp,
                values: &mut b.values,
                adv: &mut b.adv,
                ret: &mut b.ret,
            };
            fill_minibatch(mem, ro, part, cfg.ah.standardized_returns, &mut scratch);
            b.adj.resize(part.len(), 0.0);
            if let (Some(w), Some(cells)) = (weights, cells) {
                // The shaped penalty on the host path: the same twin the device runs.
                let slots = ro.last_values.len();
                b.cells.clear();
                b.cells.extend(part.iter().map(|&k| {
                    let i = mem.rows[k as usize] as usize;
                    cells.cell(ro.groups[i], ro.prefs[i], i % slots)
                }));
                let p = FairParams {
                    rows: part.len() as u32,
                    cells: w.len() as u32,
                    ..FairParams::default()
                };
                // No mix term on the host path (mix_width 0).
                fairground_shaders::cpu::fair_adjust(&p, &b.adv, &b.cells, w, &[], &mut b.adj);
            }
            net.ac.train_minibatch(&Minibatch {
                obs: &b.obs,
                group_ids: &[],
                masks: &[],
                actions: &b.actions,
                old_logp: &b.logp,
                old_values: &b.values,
                advantages: &b.adv,
                adv_adjust: &b.adj[..part.len()],
                returns: &b.ret,
            })?;
            net.transfer_bytes += (part.len() * (OBS_DIM + 8) * 4) as u64;
            if c + 1 == chunks {
                net.loss.add(&net.ac.loss_stats()?);
                net.transfer_bytes += 80;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The reference profile's AH flags on tiny hand-built data: the action concatenation
    //! order, interleaved GAE as one trajectory, standardised returns, the cross-group pass
    //! order and the stored (acting network's) log-probabilities in a minibatch.
    use super::*;
    use crate::env::ah::concat_group_actions;
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
        let mut cfg = TrainConfig {
            rollout_steps: 2,
            backend: crate::config::Backend::Cpu,
            threads: 1,
            ..reference()
        };
        cfg.ppo.hidden = vec![8];
        cfg.ah.episode_steps = 2;
        assert!(cfg.ah.action_misalignment);
        let mut t = AhReproTrainer::new(&cfg, EnvUse::Train, |p| Ok(CpuExecutor::new(p))).unwrap();
        t.env.begin_rollout();
        let groups = t.env.groups().to_vec();
        t.policy_step(0).unwrap();
        let m = groups.len();
        let own: Vec<u8> = t.ro.actions[..m].iter().map(|&a| a as u8).collect();
        let mut expected = vec![0u8; m];
        concat_group_actions(&groups, &own, t.env.agents(), &mut expected);
        t.env.step(&mut t.out, &t.pool);
        assert_eq!(
            t.env.applied_actions(),
            expected,
            "environment: the concatenation of each player's own sampled action (memory)"
        );
        // Both groups are present, so the concatenation is not the identity here.
        assert!(groups.contains(&0) && groups.contains(&1));
        assert_ne!(expected, own, "40 sampled actions, misaligned");
    }

    /// 3 steps x 3 slots; group 1 holds slots (0,1), (1,0), (1,2), (2,1) in rollout order.
    const GROUPS_3X3: [u8; 9] = [0, 1, 0, 1, 0, 1, 0, 1, 0];
    const REWARDS: [f32; 9] = [0.5, 1.0, -1.0, 2.0, 0.0, -0.5, 0.25, 3.0, 1.5];
    const VALUES: [f32; 9] = [0.1, 0.2, 0.3, -0.4, 0.5, 0.6, 0.7, 0.8, -0.9];

    #[test]
    fn interleaved_gae_is_cpu_gae_over_the_flat_group_memory() {
        let mut cfg = reference();
        (cfg.ppo.gamma, cfg.ppo.gae_lambda) = (0.9, 0.8);
        cfg.ppo.normalize_advantages = false;
        cfg.ah.standardized_returns = false;
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
        let mut off = cfg.clone();
        off.ah.interleaved_gae = false;
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
        assert!(cfg.ppo.normalize_advantages && cfg.ah.standardized_returns);
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
        let mut ro = Rollout::new(3, 3);
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
        let mut ro = Rollout::new(3, 3);
        for i in 0..9 {
            ro.logp[i] = -(i as f32) - 0.5;
            ro.values[i] = 100.0 + i as f32;
            ro.actions[i] = i as u32;
            ro.obs[i * OBS_DIM] = i as f32;
        }
        let mut cfg = reference();
        cfg.ppo.normalize_advantages = false;
        cfg.ah.standardized_returns = false;
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
}
