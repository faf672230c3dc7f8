//! FEN (Jiang & Lu, NeurIPS 2019) as its authors built it (baselines-spec §A4): each agent's
//! controller picks one of M sub-policies every T steps; sub-policy 0 maximises the
//! environment's reward, sub-policies 1.. a diversity reward (the controller's probability of
//! having chosen them, seen from the next observation); the controller maximises the
//! fair-efficient reward `min(1, ū/c) / (ε + |u_i/ū − 1|)` of the utilities at the end of its
//! macro step.
//!
//! On the seam: the sub-policies are ordinary stored networks (one per share unit and z), and
//! [`Algorithm::route`] sends each slot to the sub-policy its controller chose; the controllers
//! are driven networks (no store) that act in `begin_round` at macro boundaries and train in
//! `plan` from the host memory of `controller.rs`. A macro step's end is a truncated segment:
//! its last row is marked done and its reward gets γ·V_z(o_{t+1}) of the sub-policy that acted,
//! so no GAE runs across sub-policies (§A4.4). With M = 1 there is no controller and nothing is
//! changed: FEN is PPO.
//!
//! This file is Allelopathic Harvest's FEN: an agent's utility is its mean reward per step since
//! its episode began, and ū is over the agents of its instance. `hs.rs` is the labelled
//! HospitalSim adaptation (patient groups as utility holders).

pub mod controller;
pub mod hs;
pub mod utility;

use super::eval_scope::EvalScope;
use super::segments::{self, SlotObs};
use super::{Algorithm, Phase, RoundAt};
use crate::common::ActMode;
use crate::config::{FenConfig, Share, TrainConfig};
use crate::env::ah::AhAdapter;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::net::{NetPlan, NetShape, PolicyNet};
use controller::{CtrlMemory, CtrlRow};
use fairground_shaders::{Activation, ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;
use utility::{ConsensusRule, RunningNorm, cv, deviation, diversity_reward, fair_efficient_reward};

use segments::VALUE_KEY as REWARD_KEY;

/// A network name made once per distinct text (network names are `&'static str`).
pub(crate) fn intern(name: String) -> &'static str {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().expect("names");
    if let Some(&n) = names.get(name.as_str()) {
        return n;
    }
    let n: &'static str = Box::leak(name.into_boxed_str());
    names.insert(n);
    n
}

/// What a checkpoint keeps of FEN: each slot's sub-policy, macro clock (steps since its
/// episode began) and reward sum, the controllers' open and waiting rows, and the input
/// normaliser.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FenState {
    pub z: Vec<u32>,
    pub clock: Vec<u32>,
    pub reward_sum: Vec<f64>,
    pub memory: CtrlMemory,
    pub norm: RunningNorm,
    /// `global_clock`: training steps since the run began.
    #[serde(default)]
    pub global: u64,
    /// `stale_consensus`: every slot's estimate ū (carried from step to step).
    #[serde(default)]
    pub ubar: Vec<f64>,
    /// `decision_logprob_reward`: the log-probability of each slot's last controller choice.
    #[serde(default)]
    pub zlogp: Vec<f32>,
}

/// Counts behind the metrics line's and eval.json's `fen` object.
#[derive(Clone, Debug, Default)]
struct Tally {
    /// Controller choices per z: all, by agents below the mean utility, above it.
    choices: [Vec<u64>; 3],
    ctrl_reward: (f64, u64),
    div_reward: (f64, u64),
    rows_trained: u64,
    /// Episodes ended: sums of utilisation, CV (with its count), min and max utility.
    episodes: u64,
    utilisation: f64,
    cv: (f64, u64),
    min_u: f64,
    max_u: f64,
}

/// Tests: per training round (clocks, z); per truncation (network, row, reward, added); per
/// diversity reward (the controller's input x_{t+1}, z, the reward).
#[cfg(test)]
type Trace = (
    Vec<(Vec<u32>, Vec<u32>)>,
    Vec<(usize, usize, f32, f32)>,
    Vec<(Vec<f32>, u32, f32)>,
);

/// FEN over Allelopathic Harvest.
pub struct Fen {
    cfg: FenConfig,
    gamma: f32,
    lambda: f32,
    epochs: u32,
    minibatch: usize,
    /// Sub-policies per unit, share units, environment networks.
    m: usize,
    units: usize,
    env_nets: usize,
    obs_width: usize,
    /// Slots per instance (agents), the block ū is taken over.
    block: usize,
    rule: ConsensusRule,
    state: FenState,
    /// Per slot: utility and its estimate of ū.
    u: Vec<f64>,
    ubar: Vec<f64>,
    /// Every slot's current observation and share unit.
    slot_obs: SlotObs,
    scratch: Vec<f64>,
    /// Per slot, this round's (network, store row), NONE if it did not act.
    row_of: Vec<(u32, u32)>,
    tally: Tally,
    scope: EvalScope,
    /// Tests: every training round's (clock, z) after the decisions, and every truncation as
    /// (network, row, reward before, value added).
    #[cfg(test)]
    trace: Trace,
}

impl Fen {
    pub fn new(cfg: &TrainConfig, env: &AhAdapter) -> Result<Self, TrainError> {
        let shapes = env.nets();
        if cfg.fen.share == Share::All
            && shapes.windows(2).any(|w| {
                w[0].obs_width != w[1].obs_width || w[0].action_components != w[1].action_components
            })
        {
            return Err(TrainError::Config {
                field: "fen.share",
                message: "\"all\" needs environment networks of one shape; use \"group\"".into(),
            });
        }
        let slots = env.slots();
        let m = cfg.fen.subpolicies as usize;
        let units = cfg.fen.share.units(shapes.len());
        Ok(Self {
            gamma: cfg.ppo.gamma,
            lambda: cfg.ppo.gae_lambda,
            epochs: cfg.ppo.epochs,
            minibatch: cfg.ppo.minibatch_size as usize,
            m,
            units,
            env_nets: shapes.len(),
            obs_width: shapes[0].obs_width,
            block: slots / env.instances(),
            rule: ConsensusRule {
                kind: cfg.fen.consensus,
                rounds: cfg.fen.gossip_rounds,
                ring: cfg.fen.gossip_ring,
            },
            state: FenState {
                z: vec![0; slots],
                clock: vec![0; slots],
                reward_sum: vec![0.0; slots],
                memory: CtrlMemory::new(slots),
                norm: RunningNorm::new(2),
                global: 0,
                ubar: vec![0.0; slots],
                zlogp: vec![0.0; slots],
            },
            u: vec![0.0; slots],
            ubar: vec![0.0; slots],
            slot_obs: SlotObs::new(slots, shapes[0].obs_width),
            scratch: vec![0.0; slots],
            row_of: vec![(u32::MAX, u32::MAX); slots],
            tally: Tally::default(),
            scope: EvalScope::default(),
            #[cfg(test)]
            trace: Default::default(),
            cfg: cfg.fen.clone(),
        })
        .map(|mut f| {
            f.tally = f.fresh_tally();
            f
        })
    }

    fn fresh_tally(&self) -> Tally {
        Tally {
            choices: std::array::from_fn(|_| vec![0; self.m]),
            ..Tally::default()
        }
    }

    fn has_controller(&self) -> bool {
        self.m > 1
    }

    /// The controller's inputs beyond the observation: (δ, η), or none (F1).
    fn ctrl_extra(&self) -> usize {
        if self.cfg.controller_plain_input {
            0
        } else {
            2
        }
    }

    /// Whether `slot` is at a macro boundary (its steps since the episode began, or with
    /// `global_clock` the run's, a multiple of T).
    fn at_boundary(&self, slot: usize) -> bool {
        let t = self.cfg.macro_steps;
        if self.cfg.global_clock {
            self.state.global.is_multiple_of(u64::from(t))
        } else {
            self.state.clock[slot].is_multiple_of(t)
        }
    }

    /// Network index of controller `unit`.
    fn controller(&self, unit: usize) -> usize {
        self.units * self.m + unit
    }

    /// Each slot's utility and estimate of ū from the clocks and reward sums.
    fn refresh_utilities(&mut self) {
        let st = &self.state;
        for (s, u) in self.u.iter_mut().enumerate() {
            *u = if st.clock[s] > 0 {
                st.reward_sum[s] / f64::from(st.clock[s])
            } else {
                0.0
            };
        }
        if self.cfg.stale_consensus {
            self.ubar.copy_from_slice(&st.ubar);
            return;
        }
        for ((u, ubar), scratch) in self
            .u
            .chunks(self.block)
            .zip(self.ubar.chunks_mut(self.block))
            .zip(self.scratch.chunks_mut(self.block))
        {
            self.rule.estimate(u, ubar, scratch);
        }
    }

    /// The controller's input features (δ, η) of `slot`, raw.
    fn features(&self, slot: usize) -> [f64; 2] {
        let (d, e) = deviation(self.u[slot], self.ubar[slot], f64::from(self.cfg.c));
        [d, e]
    }

    /// Controller `unit`'s inputs for `slots` into its network's gather scratch.
    fn controller_inputs<E: Executor>(&self, net: &mut PolicyNet<E>, slots: &[u32]) {
        net.slots.clear();
        net.obs.clear();
        for &s in slots {
            let s = s as usize;
            net.slots.push(s as u32);
            net.obs.extend_from_slice(self.slot_obs.row(s));
            if self.cfg.controller_plain_input {
                continue;
            }
            let mut f = self.features(s);
            if self.cfg.extra_obs_norm {
                self.state.norm.apply(&mut f);
            }
            net.obs.extend(f.map(|v| v as f32));
        }
    }

    /// Slots of `unit` that satisfy `pick`.
    fn unit_slots(&self, unit: usize, pick: impl Fn(usize) -> bool) -> Vec<u32> {
        (0..self.u.len())
            .filter(|&s| self.slot_obs.unit[s] as usize == unit && pick(s))
            .map(|s| s as u32)
            .collect()
    }

    /// Macro boundaries: every slot whose clock is a multiple of T gets a new sub-policy from
    /// its controller (training: recorded as an open controller row).
    fn decide<E: Executor>(
        &mut self,
        env: &AhAdapter,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        // F12: evaluation asks for the controller's argmax at every step.
        let every = matches!(at.phase, Phase::Eval(_)) && self.cfg.argmax_every_step;
        let boundary: Vec<bool> = (0..self.state.clock.len())
            .map(|s| every || self.at_boundary(s))
            .collect();
        if !boundary.iter().any(|&b| b) {
            return Ok(());
        }
        // Only a round with a decision reads the observations here (end_round refreshes them
        // every round for the diversity rewards).
        self.slot_obs.refresh(env, self.cfg.share);
        if at.phase == Phase::Train && self.cfg.extra_obs_norm && !self.cfg.controller_plain_input {
            for s in (0..boundary.len()).filter(|&s| boundary[s]) {
                let f = self.features(s);
                self.state.norm.update(&f);
            }
        }
        let mode = match at.phase {
            Phase::Train => ActMode::Sample,
            Phase::Eval(_) if every || self.cfg.argmax_controller => ActMode::Greedy,
            Phase::Eval(m) => m,
        };
        for unit in 0..self.units {
            let slots = self.unit_slots(unit, |s| boundary[s]);
            if slots.is_empty() {
                continue;
            }
            let net = &mut nets[self.controller(unit)];
            self.controller_inputs(net, &slots);
            if self.cfg.maxlogit_baseline {
                // F5: the baseline is the largest logit.
                net.act_logits(at.iteration, at.round, mode)?;
                let m = self.m;
                for j in 0..slots.len() {
                    let l = &net.logits[j * m..(j + 1) * m];
                    net.values[j] = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                }
            } else {
                net.act(at.iteration, at.round, mode)?;
            }
            let w = net.shape.obs_width;
            for (j, &s) in slots.iter().enumerate() {
                let z = net.actions[j];
                let si = s as usize;
                self.state.z[si] = z;
                self.state.zlogp[si] = net.logp[j];
                if self.scope.decision(env, s) {
                    self.tally.choices[0][z as usize] += 1;
                    if self.u[si] < self.ubar[si] {
                        self.tally.choices[1][z as usize] += 1;
                    } else if self.u[si] > self.ubar[si] {
                        self.tally.choices[2][z as usize] += 1;
                    }
                }
                if at.phase == Phase::Train {
                    self.state.memory.decide(CtrlRow {
                        slot: s,
                        unit: unit as u32,
                        x: net.obs[j * w..(j + 1) * w].to_vec(),
                        z,
                        logp: net.logp[j],
                        value: net.values[j],
                        reward: None,
                        terminal: false,
                        next_value: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Training: the diversity sub-policies' rewards of this round, from the controller's
    /// probabilities of their z on the next inputs x_{t+1}.
    fn diversity_rewards<E: Executor>(
        &mut self,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        if self.cfg.decision_logprob_reward {
            return self.decision_logprob_rewards(at, nets);
        }
        let m = self.m;
        for unit in 0..self.units {
            let slots = self.unit_slots(unit, |s| {
                self.state.z[s] >= 1 && self.row_of[s].0 != u32::MAX
            });
            if slots.is_empty() {
                continue;
            }
            let c = self.controller(unit);
            self.controller_inputs(&mut nets[c], &slots);
            nets[c].act_logits(at.iteration, REWARD_KEY | at.round, ActMode::Sample)?;
            for (j, &s) in slots.iter().enumerate() {
                let s = s as usize;
                let logits = &nets[c].logits[j * m..(j + 1) * m];
                let z = self.state.z[s] as usize;
                let r = diversity_reward(self.cfg.diversity_reward, self.cfg.log_floor, logits, z);
                let (k, row) = self.row_of[s];
                nets[k as usize].rewards[row as usize] = r;
                #[cfg(test)]
                {
                    let w = nets[c].shape.obs_width;
                    let x = nets[c].obs[j * w..(j + 1) * w].to_vec();
                    self.trace.2.push((x, z as u32, r));
                }
                self.tally.div_reward.0 += f64::from(r);
                self.tally.div_reward.1 += 1;
            }
        }
        Ok(())
    }

    /// Training, F6: each diversity sub-policy's reward is the stored log-probability of its
    /// slot's last controller choice plus α_H times its own entropy on the observation it acted
    /// on (a forward of the sub-policy over the round's rows).
    fn decision_logprob_rewards<E: Executor>(
        &mut self,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let alpha = self.cfg.decision_entropy;
        for k in (0..self.units * self.m).filter(|k| k % self.m >= 1) {
            let net = &mut nets[k];
            if net.slots.is_empty() {
                continue;
            }
            net.act_logits(at.iteration, REWARD_KEY | at.round, ActMode::Sample)?;
            let c = net.shape.action_components[0] as usize;
            for j in 0..net.slots.len() {
                let s = net.slots[j] as usize;
                let h = utility::entropy(&net.logits[j * c..(j + 1) * c]);
                let r = self.state.zlogp[s] + alpha * h;
                net.rewards[net.dst[j] as usize] = r;
                self.tally.div_reward.0 += f64::from(r);
                self.tally.div_reward.1 += 1;
            }
        }
        Ok(())
    }

    /// F2: ū starts at each agent's first reward of its episode, then one gossip round on the
    /// instance's complete graph after every T-th step.
    fn stale_consensus(&mut self, rewards: &[f32]) {
        for (s, &r) in rewards.iter().enumerate() {
            if self.state.clock[s] == 1 {
                self.state.ubar[s] = f64::from(r);
            }
        }
        for first in (0..rewards.len()).step_by(self.block) {
            if self.at_boundary(first) {
                let r = first..first + self.block;
                utility::stale_gossip_round(&mut self.state.ubar[r.clone()], &mut self.scratch[r]);
            }
        }
    }

    /// Training: macro steps that ended without their episode are truncated segments: the last
    /// row is done and its reward gets γ·V_z(o_{t+1}) of the sub-policy that acted.
    fn truncate<E: Executor>(
        &mut self,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
        ended: &[u32],
    ) -> Result<(), ShaderError> {
        let w = self.obs_width;
        for (k, net) in nets.iter_mut().enumerate().take(self.units * self.m) {
            let slots: Vec<u32> = ended
                .iter()
                .copied()
                .filter(|&s| self.row_of[s as usize].0 == k as u32)
                .collect();
            let rows: Vec<u32> = slots.iter().map(|&s| self.row_of[s as usize].1).collect();
            let mut obs = Vec::with_capacity(slots.len() * w);
            for &s in &slots {
                let s = s as usize;
                obs.extend_from_slice(self.slot_obs.row(s));
            }
            #[cfg(test)]
            let before: Vec<f32> = rows.iter().map(|&r| net.rewards[r as usize]).collect();
            let added =
                segments::truncate(net, &slots, &rows, &obs, self.gamma, at.iteration, at.round)?;
            #[cfg(test)]
            for ((&r, b), a) in rows.iter().zip(before).zip(added) {
                self.trace.1.push((k, r as usize, b, a));
            }
            #[cfg(not(test))]
            let _ = added;
        }
        Ok(())
    }

    /// An instance block whose episode ended: its utilities' FEN measures.
    fn tally_episode(&mut self, first: usize) {
        let u = &self.u[first..first + self.block];
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        let t = &mut self.tally;
        t.episodes += 1;
        t.utilisation += (mean / f64::from(self.cfg.c)).min(1.0);
        if let Some(c) = cv(u) {
            t.cv.0 += c;
            t.cv.1 += 1;
        }
        t.min_u += u.iter().copied().fold(f64::INFINITY, f64::min);
        t.max_u += u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    }

    fn report_of(&self, t: &Tally) -> serde_json::Value {
        let frac = |v: &[u64]| -> serde_json::Value {
            let n: u64 = v.iter().sum();
            if n == 0 {
                return serde_json::Value::Null;
            }
            v.iter()
                .map(|&c| c as f64 / n as f64)
                .collect::<Vec<_>>()
                .into()
        };
        let mean = |(s, n): (f64, u64)| (n > 0).then(|| s / n as f64);
        let ep = t.episodes as f64;
        let per_episode = |v: f64| (t.episodes > 0).then(|| v / ep);
        // The utilities as they stand (every instance's episode so far).
        let mut now = (0.0, (0.0, 0u64), 0.0, 0.0);
        let blocks = self.u.len() / self.block;
        for u in self.u.chunks(self.block) {
            let mean_u = u.iter().sum::<f64>() / u.len() as f64;
            now.0 += (mean_u / f64::from(self.cfg.c)).min(1.0);
            if let Some(c) = cv(u) {
                now.1.0 += c;
                now.1.1 += 1;
            }
            now.2 += u.iter().copied().fold(f64::INFINITY, f64::min);
            now.3 += u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        }
        let b = blocks as f64;
        serde_json::json!({
            "choice_frequency": frac(&t.choices[0]),
            "choice_frequency_below_mean": frac(&t.choices[1]),
            "choice_frequency_above_mean": frac(&t.choices[2]),
            "controller_reward_mean": mean(t.ctrl_reward),
            "diversity_reward_mean": mean(t.div_reward),
            "controller_rows_trained": t.rows_trained,
            "episodes": t.episodes,
            "utilisation": per_episode(t.utilisation),
            "cv": mean(t.cv),
            "min_utility": per_episode(t.min_u),
            "max_utility": per_episode(t.max_u),
            "now": {
                "utilisation": now.0 / b,
                "cv": mean(now.1),
                "min_utility": now.2 / b,
                "max_utility": now.3 / b,
            },
        })
    }
}

impl Algorithm<AhAdapter> for Fen {
    fn begin_eval(&mut self, episodes: usize) {
        self.scope = EvalScope::eval(episodes);
    }

    type State = FenState;
    const ROUTES: bool = true;
    const REPORT_KEY: &'static str = "fen";

    fn nets(&self, env: &AhAdapter) -> Vec<NetShape> {
        let shapes = env.nets();
        let mut out = Vec::new();
        for base in &shapes[..self.units] {
            let prefix = match self.cfg.share {
                Share::All => String::new(),
                Share::Group => format!("{}.", base.name),
            };
            for z in 0..self.m {
                out.push(NetShape {
                    name: intern(format!("{prefix}sub{z}")),
                    ..base.clone()
                });
            }
        }
        if self.has_controller() {
            for shape in &shapes[..self.units] {
                let prefix = match self.cfg.share {
                    Share::All => String::new(),
                    Share::Group => format!("{}.", shape.name),
                };
                out.push(NetShape {
                    name: intern(format!("{prefix}controller")),
                    obs_width: self.obs_width + self.ctrl_extra(),
                    action_components: vec![self.m as u32],
                    layout: shapes[0].layout,
                });
            }
        }
        out
    }

    fn env_nets(&self, net: usize) -> Range<usize> {
        if net >= self.units * self.m {
            return 0..0;
        }
        self.cfg.share.env_nets(net / self.m, self.env_nets)
    }

    fn route(&self, _env: &AhAdapter, env_net: usize, slot: u32) -> usize {
        self.cfg.share.unit(env_net) * self.m + self.state.z[slot as usize] as usize
    }

    fn tune(&self, net: usize, spec: &mut ActorCriticSpec, hyper: &mut PpoHyper) {
        if net >= self.units * self.m {
            // With a trunk the controller keeps the environment networks' activation.
            spec.trunk = self.cfg.controller_trunk.clone();
            spec.hidden = self.cfg.controller_hidden.clone();
            if self.cfg.controller_trunk.is_empty() {
                spec.hidden_activation = if self.cfg.controller_tanh {
                    Activation::Tanh
                } else {
                    Activation::Relu
                };
            }
            hyper.ent_coef = self.cfg.controller_ent_coef;
            if self.cfg.maxlogit_baseline {
                hyper.vf_coef = 0.0;
            }
        } else if net % self.m >= 1 {
            hyper.ent_coef = self.cfg.diversity_entropy;
        }
    }

    fn begin_rollout(&mut self, _env: &AhAdapter) {
        self.tally = self.fresh_tally();
    }

    fn begin_round<E: Executor>(
        &mut self,
        env: &AhAdapter,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        if !self.has_controller() {
            return Ok(());
        }
        self.decide(env, at, nets)?;
        #[cfg(test)]
        if at.phase == Phase::Train {
            self.trace
                .0
                .push((self.state.clock.clone(), self.state.z.clone()));
        }
        Ok(())
    }

    fn end_round<E: Executor>(
        &mut self,
        env: &AhAdapter,
        out: &RoundOut,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let train = at.phase == Phase::Train;
        for (s, &r) in out.reward.iter().enumerate() {
            self.state.clock[s] += 1;
            self.state.reward_sum[s] += f64::from(r);
        }
        self.state.global += 1;
        if self.cfg.stale_consensus {
            self.stale_consensus(&out.reward);
        }
        self.refresh_utilities();
        if self.has_controller() {
            if train {
                segments::acted_rows(&nets[..self.units * self.m], &mut self.row_of);
            }
            self.slot_obs.refresh(env, self.cfg.share);
            if train {
                self.diversity_rewards(at, nets)?;
            }
            let mut ended = Vec::new();
            for s in 0..out.done.len() {
                let done = out.done[s];
                if !(done || self.at_boundary(s)) {
                    continue;
                }
                let reward = if self.cfg.unclipped_utilisation {
                    utility::reference_fair_efficient_reward
                } else {
                    fair_efficient_reward
                };
                let r = reward(
                    self.u[s],
                    self.ubar[s],
                    f64::from(self.cfg.c),
                    f64::from(self.cfg.eps),
                ) as f32;
                let counts = self.scope.decision(env, s as u32);
                if self.cfg.episode_end_reward {
                    // F2: one reward per episode, given to all its macro steps at its end.
                    if done {
                        let n = if train {
                            self.state.memory.settle_episode(s as u32, r)
                        } else {
                            1
                        };
                        if counts {
                            self.tally.ctrl_reward.0 += f64::from(r) * n as f64;
                            self.tally.ctrl_reward.1 += n;
                        }
                    } else if train {
                        self.state.memory.complete_pending(s as u32);
                    }
                } else {
                    if counts {
                        self.tally.ctrl_reward.0 += f64::from(r);
                        self.tally.ctrl_reward.1 += 1;
                    }
                    if train {
                        self.state.memory.complete(s as u32, r, done);
                    }
                }
                if train && !done && self.row_of[s].0 != u32::MAX {
                    ended.push(s as u32);
                }
            }
            // F9's flat GAE knows no segments: nothing to truncate.
            if train && !self.cfg.flat_gae {
                self.truncate(at, nets, &ended)?;
            }
        }
        for first in (0..out.done.len()).step_by(self.block) {
            if out.done[first] && self.scope.episode(env, first as u32, self.tally.episodes) {
                self.tally_episode(first);
            }
        }
        for s in 0..out.done.len() {
            if out.done[s] {
                self.state.clock[s] = 0;
                self.state.reward_sum[s] = 0.0;
            }
        }
        self.refresh_utilities();
        Ok(())
    }

    fn plan<E: Executor>(
        &mut self,
        _env: &AhAdapter,
        cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        if self.has_controller() {
            self.tally.rows_trained += self.state.memory.train_controllers(
                &mut nets[self.controller(0)..],
                &self.cfg,
                self.epochs,
                self.minibatch,
                (self.gamma, self.lambda),
                cfg.ppo.shuffle_minibatches,
            )?;
        }
        if self.cfg.flat_gae {
            for net in &mut nets[..self.units * self.m] {
                segments::flat_store_advantages(
                    net,
                    self.gamma,
                    self.lambda,
                    controller::FlatGae::Ah,
                )?;
            }
        }
        Ok(vec![NetPlan::default(); nets.len()])
    }

    fn report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(&self.tally))
    }

    fn eval_report(&self) -> Option<serde_json::Value> {
        // The episodes evaluated: nothing trained, no diversity reward, no episode in progress.
        let mut r = self.report_of(&self.tally);
        if let Some(o) = r.as_object_mut() {
            for key in ["controller_rows_trained", "diversity_reward_mean", "now"] {
                o.remove(key);
            }
        }
        Some(r)
    }

    fn state(&self) -> FenState {
        self.state.clone()
    }

    fn restore(&mut self, state: FenState) -> Result<(), TrainError> {
        let slots = self.state.z.len();
        let mut state = state;
        // Checkpoints from before the reference flags: fresh estimates.
        if state.ubar.is_empty() {
            state.ubar = vec![0.0; slots];
        }
        if state.zlogp.is_empty() {
            state.zlogp = vec![0.0; slots];
        }
        let fits = [
            state.z.len(),
            state.clock.len(),
            state.reward_sum.len(),
            state.ubar.len(),
            state.zlogp.len(),
        ]
        .iter()
        .chain([&state.memory.open.len()])
        .all(|&n| n == slots)
            && state.norm.mean.len() == 2;
        if !fits {
            return Err(super::foreign_state(
                "fen",
                format!("not {slots} slots' FEN state"),
            ));
        }
        self.state = state;
        self.refresh_utilities();
        Ok(())
    }

    fn restore_model(&mut self, state: FenState) {
        self.state.norm = state.norm;
    }
}

#[cfg(test)]
mod tests {
    //! The macro process on a real rollout (AH, cpu twins): z changes only at clocks that are
    //! multiples of T, the clock restarts at every episode end (so every episode opens with a
    //! decision), and every macro step that ends inside an episode is a truncated segment: its
    //! last row is done and its reward gained γ·V_z(o_{t+1}), a non-zero bootstrap; every
    //! diversity reward is the controller's log-probability of the acting z on the next inputs
    //! x_{t+1}, under the parameters the rollout acted with, by a naive MLP oracle; a
    //! checkpoint state that is not this run's is refused.
    use super::*;
    use crate::common::EnvUse;
    use crate::train_loop::Trainer;
    use fairground_shaders::CpuExecutor;

    fn tiny() -> TrainConfig {
        let mut cfg = TrainConfig {
            instances: 2,
            rollout_steps: 12,
            seed: 3,
            ..TrainConfig::default()
        };
        cfg.ah.episode_steps = 10;
        cfg.ppo.hidden = vec![16, 8];
        cfg.ppo.minibatch_size = 64;
        cfg.ppo.epochs = 1;
        cfg.fen.subpolicies = 3;
        cfg.fen.macro_steps = 3;
        cfg.fen.controller_hidden = vec![8];
        cfg
    }

    #[test]
    fn sub_policies_change_only_at_macro_boundaries_and_segments_are_truncated() {
        let cfg = tiny();
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let fen = Fen::new(&cfg, &env).unwrap();
        let mut t = Trainer::new(&cfg, env, fen, |p| Ok(CpuExecutor::new(p))).unwrap();
        let mut truncations = 0;
        for _ in 0..3 {
            t.iterate().unwrap();
            let (rounds, cuts, _) = std::mem::take(&mut t.algo.trace);
            for w in rounds.windows(2) {
                let ((c0, z0), (c1, z1)) = (&w[0], &w[1]);
                for s in 0..c0.len() {
                    assert!(c1[s] == c0[s] + 1 || c1[s] == 0, "the clock counts steps");
                    if c1[s] % 3 != 0 {
                        assert_eq!(z1[s], z0[s], "z changed inside a macro step");
                    }
                    if c1[s] == 0 {
                        assert_eq!(c0[s], 9, "episodes of 10 steps");
                    }
                }
            }
            for (k, row, before, added) in cuts {
                truncations += 1;
                let net = &t.nets()[k];
                assert_eq!(
                    net.dones[row], 1.0,
                    "a truncated segment's last row is done"
                );
                assert!(added != 0.0, "bootstrapped with the critic, not 0");
                assert_eq!(net.rewards[row], before + added);
            }
        }
        // Macro steps end at clocks 3, 6, 9 of every 10-step episode.
        assert!(truncations > 0);
    }

    /// The naive definition of the controller's policy network (ReLU hidden layers, linear
    /// output; weights row-major per output, then biases): an oracle independent of the
    /// shader core and its CPU twins.
    fn naive_logits(params: &[f32], widths: &[u32], x: &[f32]) -> Vec<f32> {
        let spec = fairground_shaders::MlpSpec {
            widths: widths.to_vec(),
            hidden_activation: Activation::Relu,
            output_activation: Activation::Identity,
            group_count: 1,
        };
        let mut h = x.to_vec();
        let layers = spec.layers();
        for (l, layer) in layers.iter().enumerate() {
            let (n_in, n_out) = (layer.in_width as usize, layer.out_width as usize);
            let w = &params[layer.weight_offset as usize..][..n_in * n_out];
            let b = &params[layer.bias_offset as usize..][..n_out];
            let mut y: Vec<f32> = (0..n_out)
                .map(|o| {
                    let mut acc = b[o];
                    for i in 0..n_in {
                        acc += w[o * n_in + i] * h[i];
                    }
                    acc
                })
                .collect();
            if l + 1 < layers.len() {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            h = y;
        }
        h
    }

    /// F10: with the global clock, z changes only on the run's steps that are multiples of T,
    /// also across an episode's reset (episodes of 10 steps, T = 3: no new choice at step 10);
    /// F2: the stale estimate ū is carried, not recomputed from the utilities.
    #[test]
    fn the_global_clock_ignores_episode_resets_and_the_stale_estimate_is_carried() {
        let mut cfg = tiny();
        cfg.fen.global_clock = true;
        cfg.fen.stale_consensus = true;
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let fen = Fen::new(&cfg, &env).unwrap();
        let mut t = Trainer::new(&cfg, env, fen, |p| Ok(CpuExecutor::new(p))).unwrap();
        t.iterate().unwrap();
        t.iterate().unwrap();
        let (rounds, _, _) = std::mem::take(&mut t.algo.trace);
        assert_eq!(rounds.len(), 24);
        let mut changes_at = std::collections::BTreeSet::new();
        for (k, w) in rounds.windows(2).enumerate() {
            let global = k + 1;
            if w[1].1 != w[0].1 {
                changes_at.insert(global);
            }
            if global % 3 != 0 {
                assert_eq!(w[1].1, w[0].1, "z changed at global step {global}");
            }
        }
        assert!(!changes_at.is_empty());
        assert_eq!(t.algo.state.global, 24);
        // The estimate is the carried state (F2), not the instance's mean utility.
        assert_eq!(t.algo.ubar, t.algo.state.ubar);
        let mean: f64 = t.algo.u[..40].iter().sum::<f64>() / 40.0;
        assert!(t.algo.ubar[..40].iter().any(|&b| (b - mean).abs() > 1e-9));
    }

    /// F9: after the update, each sub-policy's store holds GAE over its rows flattened in row
    /// order, standardised, and returns = advantage + V; F5: the controller rows' baseline is
    /// their largest logit.
    #[test]
    fn flat_gae_and_the_maxlogit_baseline_are_the_reference_ports() {
        let mut cfg = tiny();
        cfg.fen.flat_gae = true;
        cfg.fen.maxlogit_baseline = true;
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let fen = Fen::new(&cfg, &env).unwrap();
        let mut t = Trainer::new(&cfg, env, fen, |p| Ok(CpuExecutor::new(p))).unwrap();
        let (_, before) = t.save().unwrap();
        t.iterate().unwrap();
        let mut checked = 0;
        for k in 0..3 {
            let net = &mut t.nets_mut()[k];
            if net.rows.len() < 2 {
                continue;
            }
            let mut rows = net.rows.clone();
            rows.sort_unstable();
            let values = net.ac.stored_values().unwrap();
            let r: Vec<f32> = rows.iter().map(|&k| net.rewards[k as usize]).collect();
            let v: Vec<f32> = rows.iter().map(|&k| values[k as usize]).collect();
            let want = controller::flat_gae(&r, &v, cfg.ppo.gamma, cfg.ppo.gae_lambda);
            let (adv, ret) = net.ac.stored_advantages().unwrap();
            for (j, &row) in rows.iter().enumerate() {
                assert_eq!(adv[row as usize], want[j]);
                assert_eq!(ret[row as usize], want[j] + v[j]);
            }
            checked += 1;
        }
        assert!(checked > 0);
        // The controller rows still waiting (open) carry their largest logit as value; the
        // controller network's logits on the same input, with the parameters it acted with
        // (before this update), give it back.
        let open: Vec<CtrlRow> = t.algo.state.memory.open.iter().flatten().cloned().collect();
        assert!(!open.is_empty());
        let c = &mut t.nets_mut()[3];
        c.ac.restore(&before[3].params, &before[3].optimizer)
            .unwrap();
        let row = &open[0];
        c.slots.clear();
        c.slots.push(row.slot);
        c.obs.clear();
        c.obs.extend_from_slice(&row.x);
        c.act_logits(0, 0, ActMode::Sample).unwrap();
        let max = c.logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        assert_eq!(row.value, max);
    }

    #[test]
    fn a_state_of_another_run_is_refused_not_dropped() {
        let cfg = tiny();
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let mut fen = Fen::new(&cfg, &env).unwrap();
        let mut state = fen.state();
        state.clock[0] = 5;
        fen.restore(state.clone()).unwrap();
        assert_eq!(fen.state().clock[0], 5, "a fitting state is taken");
        state.z.pop();
        let err = fen.restore(state).unwrap_err().to_string();
        assert!(err.contains("fen state does not fit"), "{err}");
        let err = fen.restore(FenState::default()).unwrap_err().to_string();
        assert!(
            err.contains("80 slots"),
            "a missing state is refused too: {err}"
        );
    }

    #[test]
    fn the_diversity_reward_is_the_controllers_log_probability_on_the_next_inputs() {
        let cfg = tiny();
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let fen = Fen::new(&cfg, &env).unwrap();
        let mut t = Trainer::new(&cfg, env, fen, |p| Ok(CpuExecutor::new(p))).unwrap();
        let controller = 3; // sub0, sub1, sub2, then the controller (share = "all")
        let mut checked = 0;
        for _ in 0..2 {
            // The rollout acts with the parameters the previous update left.
            let (_, nets) = t.save().unwrap();
            let params = nets[controller].params.clone();
            t.iterate().unwrap();
            let rewards = std::mem::take(&mut t.algo.trace.2);
            for (x, z, r) in rewards {
                assert!(z >= 1, "only the diversity sub-policies");
                let logits = naive_logits(&params, &[12, 8, 3], &x);
                let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
                let want = (logits[z as usize] - lse).max(cfg.fen.log_floor);
                assert!((r - want).abs() < 1e-5, "{r} vs {want}");
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked} rewards checked");
    }
}
