//! FEN's HospitalSim adaptation (baselines-spec §A4.7; labelled as an adaptation, since FEN's
//! utility holders are its agents and HS's three learning agents are roles while its fairness
//! is about patients). The utility holders are the patient groups by impairment (none, low,
//! high): u_g is the mean ledger of group g's patients finished so far today, ū the mean over
//! all finished patients. Each role has its controller and M sub-policies; a macro step is T
//! decisions of that role in one hospital. The controller sees its observation ⊕
//! [ū/c, (u_g − ū)/ū per group] and is rewarded with
//! `min(1, ū/c) / (ε + (1/G) Σ_g |u_g/ū − 1|)` when its macro step ends (its next boundary
//! decision, or the day's end, from the day's closed statistics).
//!
//! Decisions are ragged (a role decides only when a hospital waits for it), so what AH reads
//! after the step comes here with the role's next decision: the previous decision's diversity
//! reward log π_θ(z | x_{k+1}) and, at a boundary, the previous segment's truncation with
//! V_z(o_{k+1}). The last decision of a role in a rollout keeps the reward of its own inputs,
//! log π_θ(z | x_k) (its next inputs come in the next rollout); a segment that straddles a
//! rollout is bootstrapped by the trainer with the sub-policy that acted, which is exact.

use super::controller::{CtrlMemory, CtrlRow, FlatGae};
use super::utility::{RunningNorm, diversity_reward};
use crate::algo::eval_scope::EvalScope;
use crate::algo::segments::VALUE_KEY as REWARD_KEY;
use crate::algo::{Algorithm, Phase, RoundAt, segments};
use crate::common::ActMode;
use crate::config::{FenConfig, TrainConfig};
use crate::env::hs::HsAdapter;
use crate::env::units::GroupOutcomes;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::net::{NetPlan, NetShape, PolicyNet};
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::{Activation, ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;

const GROUPS: usize = <HsAdapter as GroupOutcomes>::GROUPS;
/// Stream path tag of F12's random actions ("FENR").
const RANDOM_TAG: u64 = 0x4645_4e52;

/// What a checkpoint keeps of FEN on HS: per (role, hospital) the sub-policy, macro clock
/// (decisions of the role since the day began) and controller choices today; per hospital its
/// rounds today and its last controller choice (role, stored log-probability); the
/// controllers' rows, the input normaliser. (Checkpoints from before the FEN-HS port's flags
/// have no `pending`, `hclock`, `last`: zeros and none, which is what they were.)
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FenHsState {
    pub z: Vec<u32>,
    pub clock: Vec<u32>,
    pub memory: CtrlMemory,
    pub norm: RunningNorm,
    #[serde(default)]
    pub pending: Vec<u32>,
    #[serde(default)]
    pub hclock: Vec<u32>,
    #[serde(default)]
    pub last: Vec<Option<(u32, f32)>>,
}

/// The FEN-HS port's diversity reward of a decision by `role` on a diversity sub-policy: the
/// stored log-probability of the hospital's last controller choice `last` (role, log π) if
/// that choice was this role's, else 0.
pub fn port_diversity_reward(last: Option<(u32, f32)>, role: usize) -> f32 {
    match last {
        Some((r, logp)) if r as usize == role => logp,
        _ => 0.0,
    }
}

/// F4, the FEN-HS port's controller reward of a finished day from its per-impairment outcomes
/// (sum of ledgers, patients finished): the mean over {impaired (low, high), not impaired} of
/// (ū/c) / (ε + |u_g/ū − 1|), u_g = 0 for a group without finished patients; 0 unless
/// ū > 1e-6.
pub fn port_day_reward(o: &[(f64, u32)], c: f64, eps: f64) -> f64 {
    let (non, imp) = (o[0], (o[1].0 + o[2].0, o[1].1 + o[2].1));
    let n = non.1 + imp.1;
    if n == 0 {
        return 0.0;
    }
    let ubar = (non.0 + imp.0) / f64::from(n);
    if ubar <= 1e-6 {
        return 0.0;
    }
    let mean = |(sum, k): (f64, u32)| if k > 0 { sum / f64::from(k) } else { 0.0 };
    let score = |u: f64| (ubar / c) / (eps + (u / ubar - 1.0).abs());
    (score(mean(imp)) + score(mean(non))) / 2.0
}

/// The utilities of one hospital: ū and u_g (a group without finished patients counts as ū).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupUtilities {
    pub ubar: f64,
    pub u: [f64; GROUPS],
}

impl GroupUtilities {
    pub fn from_outcomes(o: &[(f64, u32)]) -> Self {
        let (sum, n) = o.iter().fold((0.0, 0), |(s, n), &(a, b)| (s + a, n + b));
        let ubar = if n > 0 { sum / f64::from(n) } else { 0.0 };
        Self {
            ubar,
            u: std::array::from_fn(|g| {
                if o[g].1 > 0 {
                    o[g].0 / f64::from(o[g].1)
                } else {
                    ubar
                }
            }),
        }
    }

    /// (η = min(1, ū/c), δ_g = (u_g − ū)/ū per group), δ = 0 when ū = 0.
    pub fn features(&self, c: f64) -> [f64; 1 + GROUPS] {
        let mut f = [0.0; 1 + GROUPS];
        f[0] = (self.ubar / c).min(1.0);
        if self.ubar != 0.0 {
            for g in 0..GROUPS {
                f[1 + g] = (self.u[g] - self.ubar) / self.ubar;
            }
        }
        f
    }

    /// The adapted fair-efficient reward: η / (ε + mean_g |u_g/ū − 1|).
    pub fn reward(&self, c: f64, eps: f64) -> f64 {
        let f = self.features(c);
        let dev = f[1..].iter().map(|d| d.abs()).sum::<f64>() / GROUPS as f64;
        f[0] / (eps + dev)
    }
}

#[derive(Clone, Debug, Default)]
struct Tally {
    choices: Vec<u64>,
    ctrl_reward: (f64, u64),
    div_reward: (f64, u64),
    rows_trained: u64,
    days: u64,
    utilisation: f64,
    cv: (f64, u64),
    min_u: f64,
    max_u: f64,
}

/// FEN over HospitalSim.
pub struct FenHs {
    cfg: FenConfig,
    gamma: f32,
    lambda: f32,
    seed: u64,
    epochs: u32,
    minibatch: usize,
    m: usize,
    roles: usize,
    slots: usize,
    obs_width: Vec<usize>,
    state: FenHsState,
    util: Vec<GroupUtilities>,
    /// This round's decisions: per hospital, (role, the proxy diversity reward).
    proxy: Vec<Option<(usize, f32)>>,
    outcomes: Vec<(f64, u32)>,
    gather: (Vec<u32>, Vec<f32>),
    tally: Tally,
    scope: EvalScope,
}

impl FenHs {
    pub fn new(cfg: &TrainConfig, env: &HsAdapter) -> Result<Self, TrainError> {
        if cfg.fen.share != crate::config::Share::Group {
            return Err(TrainError::Config {
                field: "fen.share",
                message: "\"all\" needs environment networks of one shape (HS roles differ); \
                          use \"group\""
                    .into(),
            });
        }
        let slots = env.slots();
        let roles = env.nets().len();
        let m = cfg.fen.subpolicies as usize;
        Ok(Self {
            gamma: cfg.ppo.gamma,
            lambda: cfg.ppo.gae_lambda,
            seed: cfg.seed,
            epochs: cfg.ppo.epochs,
            minibatch: cfg.ppo.minibatch_size as usize,
            m,
            roles,
            slots,
            obs_width: env.nets().iter().map(|n| n.obs_width).collect(),
            state: FenHsState {
                z: vec![0; roles * slots],
                clock: vec![0; roles * slots],
                memory: CtrlMemory::new(roles * slots),
                norm: RunningNorm::new(1 + GROUPS),
                pending: vec![0; roles * slots],
                hclock: vec![0; slots],
                last: vec![None; slots],
            },
            util: vec![GroupUtilities::default(); slots],
            proxy: vec![None; slots],
            outcomes: vec![(0.0, 0); GROUPS],
            gather: (Vec::with_capacity(slots), Vec::new()),
            tally: Tally {
                choices: vec![0; m],
                ..Tally::default()
            },
            scope: EvalScope::default(),
            cfg: cfg.fen.clone(),
        })
    }

    fn controller(&self, role: usize) -> usize {
        self.roles * self.m + role
    }

    /// The controller's inputs beyond the observation: (η, δ_g), none with F1.
    fn extra_inputs(&self) -> usize {
        if self.cfg.controller_plain_input {
            0
        } else {
            1 + GROUPS
        }
    }

    /// Whether (role, hospital) `key` of hospital `s` is at a macro boundary.
    fn at_boundary(&self, key: usize, s: usize, phase: Phase) -> bool {
        let t = match phase {
            Phase::Eval(_) if self.cfg.eval_macro_steps > 0 => self.cfg.eval_macro_steps,
            _ => self.cfg.macro_steps,
        };
        if self.cfg.hospital_clock {
            self.state.hclock[s].is_multiple_of(t)
        } else {
            self.state.clock[key].is_multiple_of(t)
        }
    }

    /// Whether `key`'s controller has chosen before today (so a macro step is open).
    fn has_chosen(&self, key: usize) -> bool {
        if self.cfg.hospital_clock {
            self.state.pending[key] > 0
        } else {
            self.state.clock[key] > 0
        }
    }

    fn diversity(&self, logits: &[f32], z: usize) -> f32 {
        diversity_reward(self.cfg.diversity_reward, self.cfg.log_floor, logits, z)
    }

    fn refresh_utilities(&mut self, env: &HsAdapter) {
        for s in 0..self.slots {
            env.outcomes_by_group(s as u32, false, &mut self.outcomes);
            self.util[s] = GroupUtilities::from_outcomes(&self.outcomes);
        }
    }

    fn features(&self, s: usize) -> [f64; 1 + GROUPS] {
        self.util[s].features(f64::from(self.cfg.c))
    }

    fn report_of(&self, t: &Tally) -> serde_json::Value {
        let n: u64 = t.choices.iter().sum();
        let freq: Option<Vec<f64>> =
            (n > 0).then(|| t.choices.iter().map(|&c| c as f64 / n as f64).collect());
        let mean = |(s, n): (f64, u64)| (n > 0).then(|| s / n as f64);
        let per_day = |v: f64| (t.days > 0).then(|| v / t.days as f64);
        serde_json::json!({
            "units": if self.cfg.episode_end_reward {
                "impaired and not impaired patients (the FEN-HS port's reward, F4)"
            } else {
                "impairment groups (HS adaptation)"
            },
            "choice_frequency": freq,
            "controller_reward_mean": mean(t.ctrl_reward),
            "diversity_reward_mean": mean(t.div_reward),
            "controller_rows_trained": t.rows_trained,
            "episodes": t.days,
            "utilisation": per_day(t.utilisation),
            "cv": mean(t.cv),
            "min_utility": per_day(t.min_u),
            "max_utility": per_day(t.max_u),
        })
    }
}

impl Algorithm<HsAdapter> for FenHs {
    type State = FenHsState;
    const ROUTES: bool = true;
    const REPORT_KEY: &'static str = "fen";

    fn begin_eval(&mut self, episodes: usize) {
        self.scope = EvalScope::eval(episodes);
    }

    fn nets(&self, env: &HsAdapter) -> Vec<NetShape> {
        let shapes = env.nets();
        let mut out = Vec::new();
        for base in shapes {
            for z in 0..self.m {
                out.push(NetShape {
                    name: super::intern(format!("{}.sub{z}", base.name)),
                    ..base.clone()
                });
            }
        }
        if self.m > 1 {
            for base in shapes {
                out.push(NetShape {
                    name: super::intern(format!("{}.controller", base.name)),
                    obs_width: base.obs_width + self.extra_inputs(),
                    action_components: vec![self.m as u32],
                    layout: base.layout,
                });
            }
        }
        out
    }

    fn env_nets(&self, net: usize) -> Range<usize> {
        if net >= self.roles * self.m {
            return 0..0;
        }
        let r = net / self.m;
        r..r + 1
    }

    fn route(&self, _env: &HsAdapter, env_net: usize, slot: u32) -> usize {
        env_net * self.m + self.state.z[env_net * self.slots + slot as usize] as usize
    }

    fn tune(&self, net: usize, spec: &mut ActorCriticSpec, hyper: &mut PpoHyper) {
        if net >= self.roles * self.m {
            // With a trunk the controller keeps the role networks' activation (leaky ReLU).
            spec.trunk = self.cfg.controller_trunk.clone();
            spec.hidden = self.cfg.controller_hidden.clone();
            if self.cfg.controller_trunk.is_empty() {
                spec.hidden_activation = Activation::Relu;
            }
            hyper.ent_coef = self.cfg.controller_ent_coef;
        } else if net % self.m >= 1 {
            hyper.ent_coef = self.cfg.diversity_entropy;
        }
    }

    /// F12 (`random_until_chosen`): a role without a sub-policy today acts uniformly at
    /// random, each component from its own counter-based draw (round, hospital, component).
    fn eval_actions<E: Executor>(&mut self, at: RoundAt, net: usize, policy: &mut PolicyNet<E>) {
        if !self.cfg.random_until_chosen || self.m == 1 || net >= self.roles * self.m {
            return;
        }
        let role = net / self.m;
        let comps = policy.shape.action_components.clone();
        for (j, &s) in policy.slots.iter().enumerate() {
            if self.state.pending[role * self.slots + s as usize] > 0 {
                continue;
            }
            for (c, &n) in comps.iter().enumerate() {
                let path = [
                    RANDOM_TAG,
                    u64::from(at.round) << 32 | u64::from(s),
                    c as u64,
                ];
                policy.actions[j * comps.len() + c] =
                    Stream::new(self.seed, Purpose::TrainAlgo, &path).below(n);
            }
        }
    }

    fn begin_rollout(&mut self, _env: &HsAdapter) {
        self.tally = Tally {
            choices: vec![0; self.m],
            ..Tally::default()
        };
    }

    fn begin_round<E: Executor>(
        &mut self,
        env: &HsAdapter,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        self.proxy.fill(None);
        if self.m == 1 {
            return Ok(());
        }
        let train = at.phase == Phase::Train;
        let mode = match at.phase {
            Phase::Train => ActMode::Sample,
            Phase::Eval(_) if self.cfg.argmax_controller => ActMode::Greedy,
            Phase::Eval(m) => m,
        };
        self.refresh_utilities(env);
        let plain = self.cfg.controller_plain_input;
        let port_div = self.cfg.decision_logprob_reward;
        // The gathering scratch leaves `self` for the loop (which borrows `self` throughout).
        let (mut slots, mut obs) = std::mem::take(&mut self.gather);
        for role in 0..self.roles {
            env.gather(role, &mut slots, &mut obs);
            if slots.is_empty() {
                continue;
            }
            let w = self.obs_width[role];
            if train && self.cfg.extra_obs_norm && !plain {
                for &s in &slots {
                    if self.at_boundary(role * self.slots + s as usize, s as usize, at.phase) {
                        let f = self.features(s as usize);
                        self.state.norm.update(&f);
                    }
                }
            }
            let c = self.controller(role);
            {
                let net = &mut nets[c];
                net.slots.clear();
                net.obs.clear();
                for (j, &s) in slots.iter().enumerate() {
                    net.slots.push(s);
                    net.obs.extend_from_slice(&obs[j * w..(j + 1) * w]);
                    if plain {
                        continue;
                    }
                    let mut f = self.features(s as usize);
                    if self.cfg.extra_obs_norm {
                        self.state.norm.apply(&mut f);
                    }
                    net.obs.extend(f.map(|v| v as f32));
                }
                net.act_logits(at.iteration, at.round, mode)?;
            }
            let (cw, m) = (w + self.extra_inputs(), self.m);
            let mut cuts: Vec<(usize, u32, u32, usize)> = Vec::new();
            for (j, &s) in slots.iter().enumerate() {
                let key = role * self.slots + s as usize;
                let z_old = self.state.z[key] as usize;
                let k_old = role * m + z_old;
                let logits = nets[c].logits[j * m..(j + 1) * m].to_vec();
                let prev = if train {
                    nets[k_old].last_row(s as usize)
                } else {
                    None
                };
                // The previous decision's diversity reward, now that its next inputs are here
                // (the port's is its own decision's, set in `end_round`).
                if let (Some(row), true, false) = (prev, z_old >= 1, port_div) {
                    let r = self.diversity(&logits, z_old);
                    nets[k_old].rewards[row as usize] = r;
                    self.tally.div_reward.0 += f64::from(r);
                    self.tally.div_reward.1 += 1;
                }
                if self.at_boundary(key, s as usize, at.phase) {
                    // Flat GAE knows no segments: nothing to truncate.
                    if let (Some(row), false) = (prev, self.cfg.flat_gae) {
                        cuts.push((k_old, s, row, j));
                    }
                    if self.cfg.episode_end_reward {
                        // F4: the reward comes with the day's end.
                        if train {
                            self.state.memory.complete_pending(key as u32);
                        }
                    } else if self.has_chosen(key) {
                        let r = self.util[s as usize]
                            .reward(f64::from(self.cfg.c), f64::from(self.cfg.eps))
                            as f32;
                        if train {
                            self.state.memory.complete(key as u32, r, false);
                        }
                        if self.scope.decision(env, s) {
                            self.tally.ctrl_reward.0 += f64::from(r);
                            self.tally.ctrl_reward.1 += 1;
                        }
                    }
                    let z = nets[c].actions[j];
                    self.state.z[key] = z;
                    self.state.pending[key] += 1;
                    self.state.last[s as usize] = Some((role as u32, nets[c].logp[j]));
                    if self.scope.decision(env, s) {
                        self.tally.choices[z as usize] += 1;
                    }
                    if train {
                        self.state.memory.decide(CtrlRow {
                            slot: key as u32,
                            unit: role as u32,
                            x: nets[c].obs[j * cw..(j + 1) * cw].to_vec(),
                            z,
                            logp: nets[c].logp[j],
                            value: nets[c].values[j],
                            reward: None,
                            terminal: false,
                            next_value: None,
                        });
                    }
                }
                let z_now = self.state.z[key] as usize;
                if z_now >= 1 {
                    let r = if port_div {
                        port_diversity_reward(self.state.last[s as usize], role)
                    } else {
                        self.diversity(&logits, z_now)
                    };
                    self.proxy[s as usize] = Some((role, r));
                }
            }
            // Segments that ended with this decision: truncated with the old sub-policy's critic.
            for (k, net) in nets.iter_mut().enumerate().skip(role * m).take(m) {
                let mine: Vec<&(usize, u32, u32, usize)> =
                    cuts.iter().filter(|c| c.0 == k).collect();
                if mine.is_empty() {
                    continue;
                }
                let s: Vec<u32> = mine.iter().map(|c| c.1).collect();
                let rows: Vec<u32> = mine.iter().map(|c| c.2).collect();
                let mut o = Vec::with_capacity(mine.len() * w);
                for c in &mine {
                    o.extend_from_slice(&obs[c.3 * w..(c.3 + 1) * w]);
                }
                segments::truncate(net, &s, &rows, &o, self.gamma, at.iteration, at.round)?;
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
        if self.m == 1 {
            return Ok(());
        }
        let train = at.phase == Phase::Train;
        // This round's decisions: the proxy diversity reward (replaced by the next decision's
        // within the rollout), and each role's clock.
        let mut decided = vec![usize::MAX; self.slots];
        for role in 0..self.roles {
            for net in &nets[role * self.m..(role + 1) * self.m] {
                for &s in &net.slots {
                    decided[s as usize] = role;
                }
            }
        }
        if train {
            let alpha = self.cfg.decision_entropy;
            for role in 0..self.roles {
                for z in 1..self.m {
                    let k = role * self.m + z;
                    // The port's diversity reward adds α_H times the sub-policy's entropy at
                    // the step (a forward over the round's rows).
                    let entropy = if self.cfg.decision_logprob_reward
                        && alpha > 0.0
                        && !nets[k].slots.is_empty()
                    {
                        nets[k].act_logits(at.iteration, REWARD_KEY | at.round, ActMode::Sample)?;
                        let comps = nets[k].shape.action_components.clone();
                        let width: usize = comps.iter().map(|&c| c as usize).sum();
                        (0..nets[k].slots.len())
                            .map(|j| {
                                let mut at = j * width;
                                comps
                                    .iter()
                                    .map(|&c| {
                                        let l = &nets[k].logits[at..at + c as usize];
                                        at += c as usize;
                                        super::utility::entropy(l)
                                    })
                                    .sum::<f32>()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let pairs: Vec<(u32, u32)> = nets[k]
                        .slots
                        .iter()
                        .copied()
                        .zip(nets[k].dst.iter().copied())
                        .collect();
                    for (j, (s, row)) in pairs.into_iter().enumerate() {
                        if let Some((_, p)) = self.proxy[s as usize] {
                            let r = p + entropy.get(j).map_or(0.0, |h| alpha * h);
                            nets[k].rewards[row as usize] = r;
                            if self.cfg.decision_logprob_reward {
                                self.tally.div_reward.0 += f64::from(r);
                                self.tally.div_reward.1 += 1;
                            }
                        }
                    }
                }
            }
        }
        for (s, &role) in decided.iter().enumerate() {
            if role != usize::MAX {
                self.state.clock[role * self.slots + s] += 1;
                self.state.hclock[s] += 1;
            }
            if out.done[s] {
                env.outcomes_by_group(s as u32, true, &mut self.outcomes);
                let u = GroupUtilities::from_outcomes(&self.outcomes);
                let (c, eps) = (f64::from(self.cfg.c), f64::from(self.cfg.eps));
                let r = if self.cfg.episode_end_reward {
                    port_day_reward(&self.outcomes, c, eps) as f32
                } else {
                    u.reward(c, eps) as f32
                };
                // Evaluation counts the days the environment keeps (not the twins', nor any
                // past the ones asked for).
                let counts = self.scope.episode(env, s as u32, self.tally.days);
                for role in 0..self.roles {
                    let key = role * self.slots + s;
                    if self.cfg.episode_end_reward {
                        // F4: every choice of the day gets the day's one reward.
                        if train {
                            self.state.memory.settle_episode(key as u32, r);
                        }
                        let n = self.state.pending[key];
                        if counts {
                            self.tally.ctrl_reward.0 += f64::from(r) * f64::from(n);
                            self.tally.ctrl_reward.1 += u64::from(n);
                        }
                    } else if self.has_chosen(key) {
                        if train {
                            self.state.memory.complete(key as u32, r, true);
                        }
                        if counts {
                            self.tally.ctrl_reward.0 += f64::from(r);
                            self.tally.ctrl_reward.1 += 1;
                        }
                    }
                    self.state.clock[key] = 0;
                    self.state.pending[key] = 0;
                    if self.cfg.hospital_clock {
                        self.state.z[key] = 0;
                    }
                }
                self.state.hclock[s] = 0;
                self.state.last[s] = None;
                if !counts {
                    continue;
                }
                let t = &mut self.tally;
                t.days += 1;
                t.utilisation += (u.ubar / f64::from(self.cfg.c)).min(1.0);
                if let Some(c) = super::utility::cv(&u.u) {
                    t.cv.0 += c;
                    t.cv.1 += 1;
                }
                t.min_u += u.u.iter().copied().fold(f64::INFINITY, f64::min);
                t.max_u += u.u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            }
        }
        Ok(())
    }

    fn plan<E: Executor>(
        &mut self,
        _env: &HsAdapter,
        cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        if self.m > 1 {
            self.tally.rows_trained += self.state.memory.train_controllers(
                &mut nets[self.controller(0)..],
                &self.cfg,
                self.epochs,
                self.minibatch,
                (self.gamma, 0.95),
                cfg.ppo.shuffle_minibatches,
            )?;
        }
        if self.cfg.flat_gae {
            for net in &mut nets[..self.roles * self.m] {
                segments::flat_store_advantages(net, self.gamma, self.lambda, FlatGae::Hs)?;
            }
        }
        Ok(vec![NetPlan::default(); nets.len()])
    }

    fn report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(&self.tally))
    }

    fn eval_report(&self) -> Option<serde_json::Value> {
        let mut r = self.report_of(&self.tally);
        if let Some(o) = r.as_object_mut() {
            o.remove("controller_rows_trained");
            o.remove("diversity_reward_mean");
        }
        Some(r)
    }

    fn state(&self) -> FenHsState {
        self.state.clone()
    }

    fn restore(&mut self, mut state: FenHsState) -> Result<(), TrainError> {
        let keys = self.state.z.len();
        // Checkpoints from before the FEN-HS port's flags: no choices counted, no clock.
        if state.pending.is_empty() && state.hclock.is_empty() && state.last.is_empty() {
            state.pending = vec![0; keys];
            state.hclock = vec![0; self.slots];
            state.last = vec![None; self.slots];
        }
        let fits = [
            state.z.len(),
            state.clock.len(),
            state.memory.open.len(),
            state.pending.len(),
        ]
        .iter()
        .all(|&n| n == keys)
            && state.hclock.len() == self.slots
            && state.last.len() == self.slots
            && state.norm.mean.len() == 1 + GROUPS;
        if !fits {
            return Err(crate::algo::foreign_state(
                "fen",
                format!("not {keys} (role, hospital) pairs' FEN state"),
            ));
        }
        self.state = state;
        Ok(())
    }

    fn restore_model(&mut self, state: FenHsState) {
        self.state.norm = state.norm;
    }
}

#[cfg(test)]
mod tests {
    //! The HS adaptation's utilities and reward by hand: a group without finished patients
    //! counts as the mean; the reward is utilisation over ε plus the mean absolute deviation.
    use super::*;

    #[test]
    fn group_utilities_and_the_adapted_reward_by_hand() {
        let u = GroupUtilities::from_outcomes(&[(300.0, 3), (100.0, 1), (0.0, 0)]);
        assert_eq!(u.ubar, 100.0);
        assert_eq!(u.u, [100.0, 100.0, 100.0]);
        assert!(
            (u.reward(100.0, 0.1) - 10.0).abs() < 1e-12,
            "equal groups: η/ε"
        );
        let u = GroupUtilities::from_outcomes(&[(150.0, 1), (50.0, 1), (100.0, 1)]);
        let f = u.features(200.0);
        assert_eq!(f, [0.5, 0.5, -0.5, 0.0]);
        assert!((u.reward(200.0, 0.1) - 0.5 / (0.1 + 1.0 / 3.0)).abs() < 1e-12);
        let none = GroupUtilities::from_outcomes(&[(0.0, 0); 3]);
        assert_eq!((none.ubar, none.reward(100.0, 0.1)), (0.0, 0.0));
    }

    /// F4 by hand: impaired = low + high; the two groups' scores averaged; an empty group
    /// counts as 0 (not as ū); nothing when ū ≤ 1e-6.
    #[test]
    fn the_ports_day_reward_by_hand() {
        // Not impaired: 2 patients, 300 in all (u = 150); impaired: 1 low (50) + 1 high (50),
        // u = 50; ū = 400 / 4 = 100. Scores: (1)/(0.1 + 0.5) for both groups.
        let r = port_day_reward(&[(300.0, 2), (50.0, 1), (50.0, 1)], 100.0, 0.1);
        assert!((r - 1.0 / 0.6).abs() < 1e-12, "{r}");
        // No impaired patient finished: u_imp = 0, |0/ū − 1| = 1; u_non = ū.
        let r = port_day_reward(&[(200.0, 2), (0.0, 0), (0.0, 0)], 100.0, 0.1);
        assert!((r - (1.0 / 1.1 + 1.0 / 0.1) / 2.0).abs() < 1e-12, "{r}");
        assert_eq!(port_day_reward(&[(0.0, 0); 3], 100.0, 0.1), 0.0);
        assert_eq!(
            port_day_reward(&[(-5.0, 2), (1.0, 1), (0.0, 0)], 100.0, 0.1),
            0.0,
            "ū ≤ 1e-6"
        );
    }

    /// The port's diversity reward: the hospital's last choice's log-probability, only when
    /// that choice was the deciding role's.
    #[test]
    fn the_ports_diversity_reward_is_the_last_choice_of_the_same_role() {
        assert_eq!(port_diversity_reward(Some((2, -1.25)), 2), -1.25);
        assert_eq!(port_diversity_reward(Some((0, -1.25)), 2), 0.0);
        assert_eq!(port_diversity_reward(None, 1), 0.0);
    }
}
