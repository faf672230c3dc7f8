//! SOTO's HospitalSim adaptation (baselines-spec §A5.7; labelled as an adaptation: SOTO's
//! welfare units are its agents, HS's three learning agents are roles, and its fairness is about
//! patients). The welfare units are the patient groups by impairment (none, low, high):
//!
//! - Each role's decision reward is split by the group of the patients it concerns, r = Σ_g r_g
//!   (the kernel's `HsRound::reward_by_group`: the router's to its patient, the dispatcher's per
//!   request or assignment, the manager's per waiting patient's share of a move's pressure, what
//!   concerns no patient split equally). Without the split SOTO-HS collapses into one scalar
//!   weight that standardisation cancels (the reference port's bug S1).
//! - A group's utility J_g is the mean ledger of its patients finished so far today (a group
//!   without any counts as the mean over all), snapshotted at every segment boundary; the GGF
//!   weights rank the three groups (the worst-off weighs most).
//! - Per role, a self stream π^I (the role's observation and its whole reward, PPO) and a team
//!   stream π^T whose input adds π^I's recommendation (each action component's probabilities,
//!   as data) and the z-scored J_g. The team stream trains on `A^T = Σ_g w_g Â_g`, where Â_g is
//!   GAE(γ, λ) of the group stream r_g with a critic of its own, V_g (one driven network per
//!   (role, group): a critic with G outputs as G parameter sets), standardised per group over
//!   the rollout's team decisions of that role.
//! - A segment is T decisions of one role in one hospital (its clock restarts every day); at
//!   each boundary the role's stream is drawn again (self with probability β). A stream change
//!   inside a day truncates the old stream's segment with V(o) of the network that acted, and
//!   the group critics' chains likewise with V_g(o).
//!
//! Evaluation uses the team stream only.

use super::welfare::{WelfareTally, team_advantage, weights, z_scores};
use super::{SELF, TEAM, UNDRAWN};
use crate::algo::eval_scope::EvalScope;
use crate::algo::fen::controller::{Batch, CtrlRow, train};
use crate::algo::fen::hs::GroupUtilities;
use crate::algo::{Algorithm, Phase, RoundAt, segments};
use crate::common::{ActMode, NONE};
use crate::config::{SotoConfig, SotoWelfare, TrainConfig};
use crate::env::hs::HsAdapter;
use crate::env::units::GroupOutcomes;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::metrics::welfare::ggf_weights;
use crate::net::{NetPlan, NetShape, PolicyNet};
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::{ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;

const GROUPS: usize = <HsAdapter as GroupOutcomes>::GROUPS;

/// What a checkpoint keeps of SOTO on HS: per (role, hospital) the stream, the clock (the
/// role's decisions since the day began) and the last snapshot of the groups' utilities; the
/// stream draws' random stream. (The group critics' chains live within a rollout.)
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SotoHsState {
    pub stream: Vec<u8>,
    pub clock: Vec<u32>,
    pub snapshot: Vec<f64>,
    pub rng: Option<Stream>,
}

/// One team-stream decision, for its group critics' GAE.
#[derive(Clone, Debug)]
struct TeamStep {
    slot: u32,
    /// Store row in the role's team network.
    row: u32,
    /// The team network's input.
    x: Vec<f32>,
    reward: [f32; GROUPS],
    weight: [f64; GROUPS],
    /// The day ended with it (no bootstrap).
    done: bool,
    /// The input to bootstrap from where the chain stops before the next team decision (a
    /// stream change or the rollout's end); None: the next team step of the slot follows.
    next_x: Option<Vec<f32>>,
}

/// SOTO over HospitalSim.
pub struct SotoHs {
    cfg: SotoConfig,
    gamma: f32,
    lambda: f32,
    epochs: u32,
    minibatch: usize,
    iterations: u32,
    roles: usize,
    slots: usize,
    /// Per role: its action components and their logit count.
    components: Vec<Vec<u32>>,
    choices: Vec<usize>,
    state: SotoHsState,
    /// Per (role, hospital) · group: z-scores and welfare weights of the last snapshot.
    z: Vec<f64>,
    w: Vec<f64>,
    /// Per role, per hospital: π^I's probabilities on the role's current observation.
    rec: Vec<Vec<f32>>,
    /// Per role: this rollout's team decisions, in decision order; per (role, hospital) the
    /// index of its open one (NONE: none open).
    steps: Vec<Vec<TeamStep>>,
    open: Vec<u32>,
    utilities: Vec<GroupUtilities>,
    outcomes: Vec<(f64, u32)>,
    ggf_w: Vec<f64>,
    beta: f64,
    /// The iteration of the rounds being played (keys the critics' forwards in `plan`).
    iteration: u32,
    gather: (Vec<u32>, Vec<f32>),
    tally: WelfareTally,
    scope: EvalScope,
    /// The group critics' value loss over the update (sum, count).
    critic_loss: (f64, u64),
}

impl SotoHs {
    pub fn new(cfg: &TrainConfig, env: &HsAdapter) -> Result<Self, TrainError> {
        if cfg.soto.share != crate::config::Share::Group {
            return Err(TrainError::Config {
                field: "soto.share",
                message: "\"all\" needs environment networks of one shape (HS roles differ); \
                          use \"group\""
                    .into(),
            });
        }
        if cfg.soto.full_vector {
            return Err(TrainError::Config {
                field: "soto.full_vector",
                message: "true: on hs the team input already holds every group's z-score; set \
                          it false"
                    .into(),
            });
        }
        let slots = env.slots();
        let roles = env.nets().len();
        let components: Vec<Vec<u32>> = env
            .nets()
            .iter()
            .map(|n| n.action_components.clone())
            .collect();
        let choices: Vec<usize> = components
            .iter()
            .map(|c| c.iter().sum::<u32>() as usize)
            .collect();
        let keys = roles * slots;
        let mut s = Self {
            gamma: cfg.ppo.gamma,
            lambda: cfg.ppo.gae_lambda,
            epochs: cfg.ppo.epochs,
            minibatch: cfg.ppo.minibatch_size as usize,
            iterations: cfg.iterations,
            roles,
            slots,
            rec: choices.iter().map(|&c| vec![0.0; slots * c]).collect(),
            components,
            choices,
            state: SotoHsState {
                stream: vec![UNDRAWN; keys],
                clock: vec![0; keys],
                snapshot: vec![0.0; keys * GROUPS],
                rng: Some(Stream::new(cfg.seed, Purpose::TrainAlgo, &[0x5070, 0x4853])),
            },
            z: vec![0.0; keys * GROUPS],
            w: vec![0.0; keys * GROUPS],
            steps: vec![Vec::new(); roles],
            open: vec![NONE; keys],
            utilities: vec![GroupUtilities::default(); slots],
            outcomes: vec![(0.0, 0); GROUPS],
            ggf_w: ggf_weights(GROUPS, f64::from(cfg.soto.ggf_base)),
            beta: 1.0,
            iteration: 0,
            gather: (Vec::with_capacity(slots), Vec::new()),
            tally: WelfareTally::default(),
            scope: EvalScope::default(),
            critic_loss: (0.0, 0),
            cfg: cfg.soto.clone(),
        };
        for key in 0..keys {
            s.features(key);
        }
        Ok(s)
    }

    fn team_net(&self, role: usize) -> usize {
        self.roles + role
    }

    fn critic_net(&self, role: usize, g: usize) -> usize {
        2 * self.roles + role * GROUPS + g
    }

    fn draw(&mut self, phase: Phase) -> u8 {
        match phase {
            Phase::Eval(_) => TEAM,
            Phase::Train => {
                let rng = self.state.rng.as_mut().expect("a stream-choice stream");
                if rng.unit_f64() < self.beta {
                    SELF
                } else {
                    TEAM
                }
            }
        }
    }

    /// (role, hospital) `key`'s z-scores and weights from its snapshot.
    fn features(&mut self, key: usize) {
        let r = key * GROUPS..(key + 1) * GROUPS;
        let snap = &self.state.snapshot[r.clone()];
        z_scores(snap, &mut self.z[r.clone()]);
        weights(
            self.cfg.welfare,
            snap,
            f64::from(self.cfg.ggf_base),
            f64::from(self.cfg.alpha),
            f64::from(self.cfg.alpha_eps),
            &mut self.w[r],
        );
    }

    /// The team input's extra part for `role` at hospital `s`: the recommendation and the
    /// groups' z-scores.
    fn team_inputs(&self, role: usize, s: usize, out: &mut Vec<f32>) {
        let c = self.choices[role];
        out.extend_from_slice(&self.rec[role][s * c..(s + 1) * c]);
        let key = role * self.slots + s;
        out.extend(
            self.z[key * GROUPS..(key + 1) * GROUPS]
                .iter()
                .map(|&v| v as f32),
        );
    }

    /// π^I's probabilities (a softmax per action component) on `obs` of `slots` of `role`.
    fn recommend<E: Executor>(
        &mut self,
        nets: &mut [PolicyNet<E>],
        role: usize,
        slots: &[u32],
        obs: &[f32],
        iteration: u32,
        step: u32,
    ) -> Result<(), ShaderError> {
        let net = &mut nets[role];
        net.slots.clear();
        net.slots.extend_from_slice(slots);
        net.obs.clear();
        net.obs.extend_from_slice(obs);
        net.act_logits(iteration, segments::VALUE_KEY | step, ActMode::Sample)?;
        let c = self.choices[role];
        for (j, &s) in slots.iter().enumerate() {
            let l = &net.logits[j * c..(j + 1) * c];
            let dst = &mut self.rec[role][s as usize * c..(s as usize + 1) * c];
            let mut at = 0;
            for &k in &self.components[role] {
                let k = k as usize;
                let part = &l[at..at + k];
                let max = part.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let sum: f32 = part.iter().map(|&v| (v - max).exp()).sum();
                for (d, &v) in dst[at..at + k].iter_mut().zip(part) {
                    *d = (v - max).exp() / sum;
                }
                at += k;
            }
        }
        Ok(())
    }

    fn refresh_utilities(&mut self, env: &HsAdapter) {
        for s in 0..self.slots {
            env.outcomes_by_group(s as u32, false, &mut self.outcomes);
            self.utilities[s] = GroupUtilities::from_outcomes(&self.outcomes);
        }
    }

    fn report_of(&self, train: bool) -> serde_json::Value {
        let mut v = self
            .tally
            .report(self.cfg.welfare, "min_utility", "mean_utility");
        v["units"] = "impairment groups (HS adaptation)".into();
        if train {
            let (sum, n) = self.critic_loss;
            v["beta"] = self.beta.into();
            v["group_critic_value_loss"] = (n > 0).then(|| sum / n as f64).into();
        }
        v
    }

    /// GAE(γ, λ) of every group stream of `role`'s team steps with the group critics; returns
    /// per step and group the advantage, and trains each critic on its returns.
    fn group_advantages<E: Executor>(
        &mut self,
        nets: &mut [PolicyNet<E>],
        role: usize,
        iteration: u32,
    ) -> Result<Vec<[f64; GROUPS]>, ShaderError> {
        let steps = std::mem::take(&mut self.steps[role]);
        let n = steps.len();
        // Every input the critics read: each step's, then each bootstrap input.
        let mut xs: Vec<&[f32]> = steps.iter().map(|s| s.x.as_slice()).collect();
        let mut boot_at = vec![usize::MAX; n];
        for (i, s) in steps.iter().enumerate() {
            if let Some(x) = &s.next_x {
                boot_at[i] = xs.len();
                xs.push(x);
            }
        }
        let mut values = vec![[0.0f32; GROUPS]; xs.len()];
        for g in 0..GROUPS {
            let net = &mut nets[self.critic_net(role, g)];
            net.slots.clear();
            net.slots.extend(0..xs.len() as u32);
            net.obs.clear();
            for x in &xs {
                net.obs.extend_from_slice(x);
            }
            net.act(iteration, segments::VALUE_KEY, ActMode::Sample)?;
            for (v, &nv) in values.iter_mut().zip(&net.values) {
                v[g] = nv;
            }
        }
        let rewards: Vec<[f32; GROUPS]> = steps.iter().map(|s| s.reward).collect();
        let chain: Vec<(u32, bool)> = steps.iter().map(|s| (s.slot, s.done)).collect();
        let adv = chain_advantages(
            &chain,
            &boot_at,
            &rewards,
            &values,
            (f64::from(self.gamma), f64::from(self.lambda)),
            self.slots,
        );
        // Each critic learns its returns Â_g + V_g.
        for g in 0..GROUPS {
            let batch = Batch {
                rows: steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| CtrlRow {
                        slot: s.slot,
                        unit: role as u32,
                        x: s.x.clone(),
                        z: 0,
                        logp: 0.0,
                        value: values[i][g],
                        reward: None,
                        terminal: s.done,
                        next_value: None,
                    })
                    .collect(),
                adv: vec![0.0; n],
                ret: (0..n)
                    .map(|i| (adv[i][g] + f64::from(values[i][g])) as f32)
                    .collect(),
            };
            let net = &mut nets[self.critic_net(role, g)];
            train(net, &batch, self.epochs, self.minibatch)?;
            let l = &net.loss;
            if l.count > 0 {
                self.critic_loss.0 += l.sums[1] / f64::from(l.count);
                self.critic_loss.1 += 1;
            }
        }
        self.steps[role] = steps;
        Ok(adv)
    }
}

impl Algorithm<HsAdapter> for SotoHs {
    type State = SotoHsState;
    const ROUTES: bool = true;
    const REPORT_KEY: &'static str = "soto";

    fn begin_eval(&mut self, episodes: usize) {
        self.scope = EvalScope::eval(episodes);
    }

    fn nets(&self, env: &HsAdapter) -> Vec<NetShape> {
        let shapes = env.nets();
        let mut out = Vec::new();
        for base in shapes {
            out.push(NetShape {
                name: crate::algo::fen::intern(format!("{}.self", base.name)),
                ..base.clone()
            });
        }
        for (r, base) in shapes.iter().enumerate() {
            out.push(NetShape {
                name: crate::algo::fen::intern(format!("{}.team", base.name)),
                obs_width: base.obs_width + self.extra_obs(self.team_net(r)),
                ..base.clone()
            });
        }
        for (r, base) in shapes.iter().enumerate() {
            for g in crate::env::hs::IMPAIRMENT_NAMES {
                out.push(NetShape {
                    name: crate::algo::fen::intern(format!("{}.critic.{g}", base.name)),
                    obs_width: base.obs_width + self.extra_obs(self.team_net(r)),
                    action_components: vec![1],
                    layout: base.layout,
                });
            }
        }
        out
    }

    fn env_nets(&self, net: usize) -> Range<usize> {
        if net >= 2 * self.roles {
            return 0..0;
        }
        let r = net % self.roles;
        r..r + 1
    }

    fn route(&self, _env: &HsAdapter, env_net: usize, slot: u32) -> usize {
        match self.state.stream[env_net * self.slots + slot as usize] {
            TEAM => self.team_net(env_net),
            _ => env_net,
        }
    }

    fn extra_obs(&self, net: usize) -> usize {
        if (self.roles..2 * self.roles).contains(&net) {
            self.choices[net - self.roles] + GROUPS
        } else {
            0
        }
    }

    fn append_obs(&self, net: usize, slot: u32, out: &mut Vec<f32>) {
        if (self.roles..2 * self.roles).contains(&net) {
            self.team_inputs(net - self.roles, slot as usize, out);
        }
    }

    fn tune(&self, net: usize, spec: &mut ActorCriticSpec, hyper: &mut PpoHyper) {
        if net >= self.roles {
            spec.trunk = vec![];
            spec.hidden = self.cfg.team_hidden.clone();
        }
        if net >= 2 * self.roles {
            hyper.ent_coef = 0.0;
        }
    }

    fn begin_rollout(&mut self, _env: &HsAdapter) {
        self.tally = WelfareTally::default();
        self.critic_loss = (0.0, 0);
        for s in &mut self.steps {
            s.clear();
        }
        self.open.fill(NONE);
    }

    fn begin_round<E: Executor>(
        &mut self,
        env: &HsAdapter,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let train = at.phase == Phase::Train;
        self.iteration = at.iteration;
        self.beta = match at.phase {
            Phase::Train => {
                let progress = f64::from(at.iteration) / f64::from(self.iterations.max(1));
                (1.0 - progress / f64::from(self.cfg.beta_proportion)).max(0.0)
            }
            Phase::Eval(_) => 0.0,
        };
        self.refresh_utilities(env);
        let t = self.cfg.segment;
        let (mut slots, mut obs) = std::mem::take(&mut self.gather);
        for role in 0..self.roles {
            env.gather(role, &mut slots, &mut obs);
            if slots.is_empty() {
                continue;
            }
            let w = env.nets()[role].obs_width;
            self.recommend(nets, role, &slots, &obs, at.iteration, at.round)?;
            // Segment boundaries: a new draw and snapshot; a change truncates the old stream.
            let mut cuts: Vec<(usize, u32, u32, Vec<f32>)> = Vec::new();
            for (j, &s) in slots.iter().enumerate() {
                let key = role * self.slots + s as usize;
                let counts = self.scope.decision(env, s);
                self.tally.decisions += u64::from(counts);
                if self.state.clock[key].is_multiple_of(t) {
                    let old = self.state.stream[key];
                    let new = self.draw(at.phase);
                    if train && old != UNDRAWN && new != old {
                        let k = if old == TEAM {
                            self.team_net(role)
                        } else {
                            role
                        };
                        let mut x = obs[j * w..(j + 1) * w].to_vec();
                        if old == TEAM {
                            self.team_inputs(role, s as usize, &mut x);
                            let open = self.open[key];
                            if open != NONE {
                                self.steps[role][open as usize].next_x = Some(x.clone());
                                self.open[key] = NONE;
                            }
                        }
                        if let Some(row) = nets[k].last_row(s as usize) {
                            cuts.push((k, s, row, x));
                        }
                    }
                    self.state.stream[key] = new;
                    self.state.snapshot[key * GROUPS..(key + 1) * GROUPS]
                        .copy_from_slice(&self.utilities[s as usize].u);
                    self.features(key);
                }
                if self.state.stream[key] == TEAM && counts {
                    self.tally.team += 1;
                }
            }
            for k in [role, self.team_net(role)] {
                let mine: Vec<&(usize, u32, u32, Vec<f32>)> =
                    cuts.iter().filter(|c| c.0 == k).collect();
                if mine.is_empty() {
                    continue;
                }
                let s: Vec<u32> = mine.iter().map(|c| c.1).collect();
                let rows: Vec<u32> = mine.iter().map(|c| c.2).collect();
                let o: Vec<f32> = mine.iter().flat_map(|c| c.3.iter().copied()).collect();
                segments::truncate(
                    &mut nets[k],
                    &s,
                    &rows,
                    &o,
                    self.gamma,
                    at.iteration,
                    at.round,
                )?;
            }
        }
        self.gather = (slots, obs);
        Ok(())
    }

    fn end_round<E: Executor>(
        &mut self,
        env: &HsAdapter,
        out: &RoundOut,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        let train = at.phase == Phase::Train;
        for role in 0..self.roles {
            for k in [role, self.team_net(role)] {
                for j in 0..nets[k].slots.len() {
                    let s = nets[k].slots[j] as usize;
                    let key = role * self.slots + s;
                    self.state.clock[key] += 1;
                    if !(train && k == self.team_net(role)) {
                        continue;
                    }
                    let net = &nets[k];
                    let w = net.shape.obs_width;
                    let mut reward = [0.0f32; GROUPS];
                    env.reward_by_group(s as u32, &mut reward);
                    let mut weight = [0.0f64; GROUPS];
                    weight.copy_from_slice(&self.w[key * GROUPS..(key + 1) * GROUPS]);
                    self.open[key] = self.steps[role].len() as u32;
                    self.steps[role].push(TeamStep {
                        slot: s as u32,
                        row: net.dst[j],
                        x: net.obs[j * w..(j + 1) * w].to_vec(),
                        reward,
                        weight,
                        done: false,
                        next_x: None,
                    });
                }
            }
        }
        for (s, &done) in out.done.iter().enumerate() {
            if !done {
                continue;
            }
            for role in 0..self.roles {
                let key = role * self.slots + s;
                self.state.clock[key] = 0;
                let open = self.open[key];
                if open != NONE {
                    self.steps[role][open as usize].done = true;
                    self.open[key] = NONE;
                }
            }
            // Evaluation counts the days the environment keeps.
            if !self.scope.episode(env, s as u32, self.tally.episodes) {
                continue;
            }
            env.outcomes_by_group(s as u32, true, &mut self.outcomes);
            let u = GroupUtilities::from_outcomes(&self.outcomes).u;
            self.tally
                .add_episode(&u, &self.ggf_w, f64::from(self.cfg.alpha));
        }
        Ok(())
    }

    fn plan<E: Executor>(
        &mut self,
        env: &HsAdapter,
        _cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        let plans = vec![NetPlan::default(); nets.len()];
        let iteration = self.iteration;
        let (mut slots, mut obs) = std::mem::take(&mut self.gather);
        for role in 0..self.roles {
            if self.steps[role].is_empty() {
                continue;
            }
            // Chains still open bootstrap from the pending decision if the hospital waits for
            // this role, else from the step itself (the ragged store's convention).
            env.gather(role, &mut slots, &mut obs);
            let w = env.nets()[role].obs_width;
            if !slots.is_empty() {
                self.recommend(nets, role, &slots, &obs, iteration, u32::MAX >> 1)?;
            }
            for s in 0..self.slots {
                let key = role * self.slots + s;
                let open = self.open[key];
                if open == NONE {
                    continue;
                }
                let x = match slots.iter().position(|&p| p as usize == s) {
                    Some(j) => {
                        let mut x = obs[j * w..(j + 1) * w].to_vec();
                        self.team_inputs(role, s, &mut x);
                        x
                    }
                    None => self.steps[role][open as usize].x.clone(),
                };
                self.steps[role][open as usize].next_x = Some(x);
                self.open[key] = NONE;
            }
            let adv = self.group_advantages(nets, role, iteration)?;
            // Â_g standardised per group over the role's team steps, then A^T = Σ_g w_g Â_g.
            let n = adv.len() as f64;
            let mut stats = [(0.0f64, 1.0f64); GROUPS];
            for (g, st) in stats.iter_mut().enumerate() {
                let mean = adv.iter().map(|a| a[g]).sum::<f64>() / n;
                let var = if adv.len() > 1 {
                    adv.iter().map(|a| (a[g] - mean).powi(2)).sum::<f64>() / (n - 1.0)
                } else {
                    0.0
                };
                *st = (mean, var.sqrt() + 1e-8);
            }
            let steps = &self.steps[role];
            let mut target: Vec<f64> = steps
                .iter()
                .zip(&adv)
                .map(|(s, a)| {
                    let std: [f64; GROUPS] =
                        std::array::from_fn(|g| (a[g] - stats[g].0) / stats[g].1);
                    team_advantage(&s.weight, &std)
                })
                .collect();
            if self.cfg.welfare == SotoWelfare::Alpha {
                let mean = target.iter().sum::<f64>() / n;
                let var = if target.len() > 1 {
                    target.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
                } else {
                    0.0
                };
                let sd = var.sqrt() + 1e-8;
                for v in &mut target {
                    *v = (*v - mean) / sd;
                }
            }
            let net = &mut nets[self.team_net(role)];
            let (stored, _) = net.ac.stored_advantages()?;
            net.transfer_bytes += (stored.len() * 8) as u64;
            let mut adj = vec![0.0f32; stored.len()];
            for (s, &t) in steps.iter().zip(&target) {
                adj[s.row as usize] = (t - f64::from(stored[s.row as usize])) as f32;
            }
            net.ac.store_set_adjustments(&adj)?;
            net.transfer_bytes += (adj.len() * 4) as u64;
            self.steps[role].clear();
        }
        self.gather = (slots, obs);
        Ok(plans)
    }

    fn report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(true))
    }

    fn eval_report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(false))
    }

    fn state(&self) -> SotoHsState {
        self.state.clone()
    }

    fn restore(&mut self, state: SotoHsState) -> Result<(), TrainError> {
        let keys = self.roles * self.slots;
        let fits = state.stream.len() == keys
            && state.clock.len() == keys
            && state.snapshot.len() == keys * GROUPS
            && state.rng.is_some();
        if !fits {
            return Err(crate::algo::foreign_state(
                "soto",
                format!("not {keys} (role, hospital) pairs' SOTO state with its stream"),
            ));
        }
        self.state = state;
        for key in 0..keys {
            self.features(key);
        }
        Ok(())
    }
}

/// GAE(γ, λ) per group along each slot's chain of team steps (in decision order): a step's
/// successor is its slot's next step, unless the day ended with it (`done`: no bootstrap) or
/// its chain stopped (`boot[i]` indexes the bootstrap input's values; `usize::MAX`: none).
/// `values` holds V_g of every step, then of every bootstrap input.
fn chain_advantages(
    chain: &[(u32, bool)],
    boot: &[usize],
    rewards: &[[f32; GROUPS]],
    values: &[[f32; GROUPS]],
    (gamma, lambda): (f64, f64),
    slots: usize,
) -> Vec<[f64; GROUPS]> {
    let n = chain.len();
    let mut adv = vec![[0.0f64; GROUPS]; n];
    let mut next = vec![usize::MAX; slots];
    for i in (0..n).rev() {
        let (slot, done) = chain[i];
        let succ = next[slot as usize];
        for g in 0..GROUPS {
            let v = f64::from(values[i][g]);
            let r = f64::from(rewards[i][g]);
            adv[i][g] = if done {
                r - v
            } else if boot[i] != usize::MAX {
                r + gamma * f64::from(values[boot[i]][g]) - v
            } else {
                assert!(
                    succ != usize::MAX,
                    "a team step without successor or bootstrap"
                );
                r + gamma * f64::from(values[succ][g]) - v + gamma * lambda * adv[succ][g]
            };
        }
        next[slot as usize] = i;
    }
    adv
}

#[cfg(test)]
mod tests {
    //! The group critics' GAE by hand: chains of two hospitals interleaved, one ending its day
    //! (no bootstrap), one stopped by a stream change (bootstrapped from its next input), one
    //! carried to its successor.
    use super::*;

    #[test]
    fn group_gae_follows_each_chain_by_hand() {
        let (gamma, lambda) = (0.5, 0.5);
        // Steps: 0 (slot 0) -> 2 (slot 0, done); 1 (slot 1, stopped: bootstrap values[3]).
        let chain = [(0, false), (1, false), (0, true)];
        let boot = [usize::MAX, 3, usize::MAX];
        let rewards = [[1.0, 0.0, 2.0], [0.0, 4.0, 0.0], [3.0, 1.0, 0.0]];
        let values = [
            [0.5, 0.0, 1.0],
            [1.0, 2.0, 0.0],
            [2.0, 0.0, 0.0],
            [4.0, 8.0, -2.0],
        ];
        let adv = chain_advantages(&chain, &boot, &rewards, &values, (gamma, lambda), 2);
        // Step 2 (done): r − V.
        assert_eq!(adv[2], [1.0, 1.0, 0.0]);
        // Step 1 (stopped): r + γ V(boot) − V.
        assert_eq!(adv[1], [0.0 + 2.0 - 1.0, 4.0 + 4.0 - 2.0, -1.0]);
        // Step 0: δ = r + γ V(step 2) − V, plus γλ · A(step 2).
        assert_eq!(
            adv[0],
            [
                1.0 + 1.0 - 0.5 + 0.25 * 1.0,
                0.0 + 0.0 - 0.0 + 0.25 * 1.0,
                2.0 + 0.0 - 1.0 + 0.0
            ]
        );
    }
}
