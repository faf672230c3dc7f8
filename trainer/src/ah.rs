//! PPO on Allelopathic Harvest, clean profile.
//!
//! One actor-critic per group (0 = non-sensitive, 1 = sensitive; spec §3.1: parameters shared
//! by the players of a group, none across groups). Every step, each agent's observation goes to
//! its group's network, and the sampled action goes back to exactly that agent. Groups are
//! re-read after every step because the sensitive subset is redrawn every episode.
//!
//! After T steps: GAE per agent trajectory (time-major, agent-minor, done masks: an episode's
//! last step bootstraps with 0), advantages standardised per group, then K epochs of
//! minibatch PPO per network. The two networks run side by side on two threads.
//!
//! Where the data lives: the rollout buffers are host-side (filled by the kernel on the CPU);
//! the networks' forward passes, sampling, losses, backward passes and Adam run through the
//! [`Executor`] interface (WGSL on the GPU, or the CPU twins). GAE runs on the host with
//! [`fairground_shaders::cpu::gae`], the CPU twin that the GAE shader is tested against.

use crate::config::TrainConfig;
use fairground_kernel::ah::{ACTIONS, AhEnv, AhParams, AhSnapshot, OBS_DIM, StepOut};
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::layout::GaeParams;
use fairground_shaders::{
    Activation, ActorCritic, ActorCriticSpec, Executor, Minibatch, OptimizerState, Program,
    SampleKey, ShaderError,
};
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

/// The network of each group (spec §3.1: separate policy and value MLPs, leaky ReLU).
pub fn net_spec(cfg: &TrainConfig, batch: u32) -> ActorCriticSpec {
    ActorCriticSpec {
        obs_width: OBS_DIM as u32,
        trunk: cfg.trunk.clone(),
        hidden: cfg.hidden.clone(),
        action_components: vec![ACTIONS],
        group_count: 1,
        hidden_activation: Activation::LeakyRelu,
        batch,
        use_masks: false,
    }
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
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
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
    rows: Vec<u32>,
    adv: Vec<f32>,
    order: Vec<u32>,
    mb_obs: Vec<f32>,
    mb_actions: Vec<u32>,
    mb_logp: Vec<f32>,
    mb_values: Vec<f32>,
    mb_adv: Vec<f32>,
    mb_adj: Vec<f32>,
    mb_ret: Vec<f32>,
    stats: [f64; 5],
    stats_count: u32,
    transfer_bytes: u64,
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
        self.slots.clear();
        self.act_obs.clear();
        for (slot, &grp) in groups.iter().enumerate() {
            if grp == g {
                self.slots.push(slot as u32);
                self.act_obs
                    .extend_from_slice(&obs[slot * OBS_DIM..(slot + 1) * OBS_DIM]);
            }
        }
        self.out_actions.clear();
        self.out_logp.clear();
        self.out_values.clear();
        let n = self.slots.len();
        let mut start = 0;
        while start < n {
            let end = (start + self.batch).min(n);
            let key = SampleKey {
                seed: self.sample_seed,
                iteration,
                step,
                agent_offset: start as u32,
            };
            let out = self
                .ac
                .act(&self.act_obs[start * OBS_DIM..end * OBS_DIM], &[], &[], key)?;
            self.transfer_bytes += ((end - start) * OBS_DIM * 4 + self.batch * 16) as u64;
            match mode {
                ActMode::Sample => self.out_actions.extend_from_slice(&out.actions),
                ActMode::Greedy => {
                    let logits = self.ac.logits()?;
                    self.transfer_bytes += (logits.len() * 4) as u64;
                    for row in logits.chunks_exact(ACTIONS as usize) {
                        let mut best = 0;
                        for (k, &l) in row.iter().enumerate() {
                            if l > row[best] {
                                best = k;
                            }
                        }
                        self.out_actions.push(best as u32);
                    }
                }
            }
            self.out_logp.extend_from_slice(&out.logp);
            self.out_values.extend_from_slice(&out.values);
            start = end;
        }
        Ok(())
    }

    /// K epochs of minibatch PPO on this group's rows of the rollout.
    fn train(&mut self, g: u8, ro: &Rollout, cfg: &TrainConfig) -> Result<(), ShaderError> {
        self.rows.clear();
        for (idx, &grp) in ro.groups.iter().enumerate() {
            if grp == g {
                self.rows.push(idx as u32);
            }
        }
        self.stats = [0.0; 5];
        self.stats_count = 0;
        let n = self.rows.len();
        if n == 0 {
            return Ok(());
        }
        self.adv.clear();
        self.adv
            .extend(self.rows.iter().map(|&i| ro.advantages[i as usize]));
        if cfg.normalize_advantages && n > 1 {
            let mean = self.adv.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64;
            let var = self
                .adv
                .iter()
                .map(|&a| (f64::from(a) - mean).powi(2))
                .sum::<f64>()
                / (n - 1) as f64;
            let std = var.sqrt() + 1e-8;
            for a in &mut self.adv {
                *a = ((f64::from(*a) - mean) / std) as f32;
            }
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
                self.mb_obs.clear();
                self.mb_actions.clear();
                self.mb_logp.clear();
                self.mb_values.clear();
                self.mb_adv.clear();
                self.mb_ret.clear();
                for &k in part {
                    let i = self.rows[k as usize] as usize;
                    self.mb_obs
                        .extend_from_slice(&ro.obs[i * OBS_DIM..(i + 1) * OBS_DIM]);
                    self.mb_actions.push(ro.actions[i]);
                    self.mb_logp.push(ro.logp[i]);
                    self.mb_values.push(ro.values[i]);
                    self.mb_adv.push(self.adv[k as usize]);
                    self.mb_ret.push(ro.returns[i]);
                }
                self.mb_adj.resize(part.len(), 0.0);
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
                    let s = self.ac.loss_stats()?;
                    self.transfer_bytes += 80;
                    for (acc, v) in self.stats.iter_mut().zip([
                        s.policy_loss,
                        s.value_loss,
                        s.entropy,
                        s.approx_kl,
                        s.clip_fraction,
                    ]) {
                        *acc += f64::from(v);
                    }
                    self.stats_count += 1;
                }
            }
        }
        self.ac.finish()
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
    pool: WorkerPool,
    nets: Vec<GroupNet<E>>,
    obs: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<u8>,
    actions: Vec<u8>,
    groups: Vec<u8>,
    ro: Rollout,
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
        let slots = env.instances() * env.agents();
        let batch = (cfg.minibatch_size as usize).max(slots.min(ACT_CHUNK_MAX));
        let spec = net_spec(cfg, batch as u32);
        let mut nets = Vec::with_capacity(GROUPS);
        for g in 0..GROUPS {
            let init = spec.init_params(seeds.init[g]);
            let ac = ActorCritic::new(spec.clone(), cfg.ppo_hyper(), &init, &make_executor)?;
            let steps = cfg.rollout_steps as usize;
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
                rows: Vec::with_capacity(slots * steps),
                adv: Vec::with_capacity(slots * steps),
                order: Vec::with_capacity(slots * steps),
                mb_obs: Vec::with_capacity(cfg.minibatch_size as usize * OBS_DIM),
                mb_actions: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_logp: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_values: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_adv: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_adj: Vec::with_capacity(cfg.minibatch_size as usize),
                mb_ret: Vec::with_capacity(cfg.minibatch_size as usize),
                stats: [0.0; 5],
                stats_count: 0,
                transfer_bytes: 0,
            });
        }
        let adapter = nets[0].ac.executor().adapter_name();
        Ok(Self {
            cfg: cfg.clone(),
            obs: vec![0.0; env.obs_len()],
            rewards: vec![0.0; slots],
            dones: vec![0; env.instances()],
            actions: vec![0; slots],
            groups: vec![0; slots],
            ro: Rollout::new(cfg.rollout_steps as usize, slots),
            pool: WorkerPool::new(cfg.threads as usize),
            env,
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

    fn refresh_groups(&mut self) {
        let agents = self.env.agents();
        for i in 0..self.env.instances() {
            let inst = self.env.instance(i);
            for a in 0..agents {
                self.groups[i * agents + a] = u8::from(inst.agent(a).sensitive);
            }
        }
    }

    /// Run both networks on the current observations (in parallel with 2+ threads).
    fn act_all(&mut self, step: u32, mode: ActMode) -> Result<(), ShaderError> {
        let (obs, groups, iteration) = (&self.obs, &self.groups, self.iteration);
        if self.cfg.threads > 1 {
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .nets
                    .iter_mut()
                    .enumerate()
                    .map(|(g, net)| {
                        s.spawn(move || net.act(g as u8, obs, groups, iteration, step, mode))
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("a network thread panicked"))
            })
        } else {
            for (g, net) in self.nets.iter_mut().enumerate() {
                net.act(g as u8, obs, groups, iteration, step, mode)?;
            }
            Ok(())
        }
    }

    /// Sample actions for the current observations into `self.actions` (and, with `record`,
    /// the rollout's step `t`).
    fn policy_step(&mut self, t: usize, mode: ActMode, record: bool) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        self.act_all(t as u32, mode)?;
        let m = self.actions.len();
        for net in &self.nets {
            for (k, &slot) in net.slots.iter().enumerate() {
                let slot = slot as usize;
                self.actions[slot] = net.out_actions[k] as u8;
                if record {
                    let i = t * m + slot;
                    self.ro.actions[i] = net.out_actions[k];
                    self.ro.logp[i] = net.out_logp[k];
                    self.ro.values[i] = net.out_values[k];
                }
            }
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn kernel_step(&mut self) {
        let t0 = Instant::now();
        self.env.step(
            &self.actions,
            StepOut {
                obs: &mut self.obs,
                rewards: &mut self.rewards,
                dones: &mut self.dones,
            },
            &self.pool,
        );
        self.timing.kernel_s += t0.elapsed().as_secs_f64();
    }

    /// One iteration: T steps of every instance, GAE, K epochs of PPO per network.
    pub fn iterate(&mut self) -> Result<IterStats, ShaderError> {
        let start = Instant::now();
        let steps = self.cfg.rollout_steps as usize;
        let agents = self.env.agents();
        let m = self.actions.len();
        self.env.observe(&mut self.obs);
        self.refresh_groups();
        let mut episodes = 0u32;
        let mut episode_sums = [0.0f64; GROUPS];
        let sensitive = self.env.params().sensitive_agents() as f64;
        let group_agents = [agents as f64 - sensitive, sensitive];
        for t in 0..steps {
            let h0 = Instant::now();
            self.ro.obs[t * m * OBS_DIM..(t + 1) * m * OBS_DIM].copy_from_slice(&self.obs);
            self.ro.groups[t * m..(t + 1) * m].copy_from_slice(&self.groups);
            self.timing.host_s += h0.elapsed().as_secs_f64();
            self.policy_step(t, ActMode::Sample, true)?;
            self.kernel_step();
            let h0 = Instant::now();
            self.ro.rewards[t * m..(t + 1) * m].copy_from_slice(&self.rewards);
            for (slot, d) in self.ro.dones[t * m..(t + 1) * m].iter_mut().enumerate() {
                *d = f32::from(self.dones[slot / agents]);
            }
            for (i, &d) in self.dones.iter().enumerate() {
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
        // Bootstrap values of the observations after the last step.
        let t0 = Instant::now();
        self.act_all(steps as u32, ActMode::Sample)?;
        for net in &self.nets {
            for (k, &slot) in net.slots.iter().enumerate() {
                self.ro.last_values[slot as usize] = net.out_values[k];
            }
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();

        let h0 = Instant::now();
        let gae = GaeParams {
            steps: steps as u32,
            agents: m as u32,
            gamma: self.cfg.gamma,
            gae_lambda: self.cfg.gae_lambda,
            carry: 0,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        };
        let ro = &mut self.ro;
        fairground_shaders::cpu::gae(
            &gae,
            &ro.rewards,
            &ro.values,
            &ro.dones,
            &ro.last_values,
            &mut ro.advantages,
            &mut ro.returns,
        );
        let mut reward_sum = [0.0f64; GROUPS];
        let mut rows = [0u64; GROUPS];
        for (&r, &g) in ro.rewards.iter().zip(&ro.groups) {
            reward_sum[g as usize] += f64::from(r);
            rows[g as usize] += 1;
        }
        self.timing.host_s += h0.elapsed().as_secs_f64();

        let t0 = Instant::now();
        let (ro, cfg) = (&self.ro, &self.cfg);
        if cfg.threads > 1 {
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .nets
                    .iter_mut()
                    .enumerate()
                    .map(|(g, net)| s.spawn(move || net.train(g as u8, ro, cfg)))
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("a network thread panicked"))
            })?;
        } else {
            for (g, net) in self.nets.iter_mut().enumerate() {
                net.train(g as u8, ro, cfg)?;
            }
        }
        self.timing.update_s += t0.elapsed().as_secs_f64();

        let mut loss = [0.0f64; 5];
        let mut counted = 0.0;
        for net in &mut self.nets {
            if net.stats_count > 0 {
                for (l, s) in loss.iter_mut().zip(net.stats) {
                    *l += s / f64::from(net.stats_count);
                }
                counted += 1.0;
            }
            self.timing.transfer_bytes += std::mem::take(&mut net.transfer_bytes);
        }
        if counted > 0.0 {
            for l in &mut loss {
                *l /= counted;
            }
        }
        self.iteration += 1;
        self.env_steps += (self.env.instances() * steps) as u64;
        let total_rows = (m * steps) as f64;
        let return_by_group =
            std::array::from_fn(|g| reward_sum[g] * steps as f64 / (rows[g].max(1) as f64));
        Ok(IterStats {
            mean_reward_per_agent_step: reward_sum.iter().sum::<f64>() / total_rows,
            return_by_group,
            episodes_completed: episodes,
            episode_return_by_group: (episodes > 0).then(|| {
                std::array::from_fn(|g| {
                    episode_sums[g] / (f64::from(episodes) * group_agents[g].max(1.0))
                })
            }),
            policy_loss: loss[0],
            value_loss: loss[1],
            entropy: loss[2],
            approx_kl: loss[3],
            clip_fraction: loss[4],
            wall_s: start.elapsed().as_secs_f64(),
        })
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
        self.env = AhEnv::restore(state.env)
            .map_err(|e| crate::TrainError::Env(format!("{}: {}", e.field, e.message)))?;
        self.iteration = state.iteration;
        self.env_steps = state.env_steps;
        Ok(())
    }

    /// Load only the networks' parameters and optimizer state (evaluation).
    pub fn load_nets(&mut self, nets: &[NetState]) -> Result<(), ShaderError> {
        for (net, s) in self.nets.iter_mut().zip(nets) {
            net.ac.restore(&s.params, &s.optimizer)?;
        }
        Ok(())
    }

    /// Play `episodes` whole episodes from a fresh environment and return per-episode group
    /// totals `[NSr, NSb, Sr, Sb]` (first `episodes` completed, in instance order).
    /// `random`: uniform random actions from the `RandomActions` stream instead of the policy.
    pub fn play_episodes(
        &mut self,
        episodes: usize,
        mode: ActMode,
        random: bool,
    ) -> Result<Vec<[f32; 4]>, ShaderError> {
        let mut out = Vec::with_capacity(episodes);
        let mut rng = Stream::new(self.env.seed(), Purpose::RandomActions, &[]);
        self.env.observe(&mut self.obs);
        self.refresh_groups();
        let mut t = 0u32;
        while out.len() < episodes {
            if random {
                for a in &mut self.actions {
                    *a = rng.below(ACTIONS) as u8;
                }
            } else {
                self.policy_step(t as usize, mode, false)?;
            }
            self.kernel_step();
            for (i, &d) in self.dones.iter().enumerate() {
                if d != 0 && out.len() < episodes {
                    out.push(self.env.instance(i).last_episode_group_returns());
                }
            }
            self.refresh_groups();
            t += 1;
        }
        Ok(out)
    }
}
