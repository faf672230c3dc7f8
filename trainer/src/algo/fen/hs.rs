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

use super::controller::{CtrlMemory, CtrlRow};
use super::utility::{RunningNorm, diversity_reward};
use crate::algo::{Algorithm, Phase, RoundAt, segments};
use crate::common::ActMode;
use crate::config::{FenConfig, TrainConfig};
use crate::env::hs::HsAdapter;
use crate::env::units::GroupOutcomes;
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::net::{NetPlan, NetShape, PolicyNet};
use fairground_shaders::{Activation, ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;

const GROUPS: usize = <HsAdapter as GroupOutcomes>::GROUPS;

/// What a checkpoint keeps of FEN on HS: per (role, hospital) the sub-policy and macro clock
/// (decisions of the role since the day began), the controllers' rows, the input normaliser.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FenHsState {
    pub z: Vec<u32>,
    pub clock: Vec<u32>,
    pub memory: CtrlMemory,
    pub norm: RunningNorm,
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
            },
            util: vec![GroupUtilities::default(); slots],
            proxy: vec![None; slots],
            outcomes: vec![(0.0, 0); GROUPS],
            gather: (Vec::with_capacity(slots), Vec::new()),
            tally: Tally {
                choices: vec![0; m],
                ..Tally::default()
            },
            cfg: cfg.fen.clone(),
        })
    }

    fn controller(&self, role: usize) -> usize {
        self.roles * self.m + role
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
            "units": "impairment groups (HS adaptation)",
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
                    obs_width: base.obs_width + 1 + GROUPS,
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
            spec.trunk = vec![];
            spec.hidden = self.cfg.controller_hidden.clone();
            spec.hidden_activation = Activation::Relu;
            hyper.ent_coef = self.cfg.controller_ent_coef;
        } else if net % self.m >= 1 {
            hyper.ent_coef = self.cfg.diversity_entropy;
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
            Phase::Eval(m) => m,
        };
        self.refresh_utilities(env);
        let t = self.cfg.macro_steps;
        // The gathering scratch leaves `self` for the loop (which borrows `self` throughout).
        let (mut slots, mut obs) = std::mem::take(&mut self.gather);
        for role in 0..self.roles {
            env.gather(role, &mut slots, &mut obs);
            if slots.is_empty() {
                continue;
            }
            let w = self.obs_width[role];
            if train && self.cfg.extra_obs_norm {
                for &s in &slots {
                    if self.state.clock[role * self.slots + s as usize].is_multiple_of(t) {
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
                    let mut f = self.features(s as usize);
                    if self.cfg.extra_obs_norm {
                        self.state.norm.apply(&mut f);
                    }
                    net.obs.extend(f.map(|v| v as f32));
                }
                net.act_logits(at.iteration, at.round, mode)?;
            }
            let (cw, m) = (w + 1 + GROUPS, self.m);
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
                // The previous decision's diversity reward, now that its next inputs are here.
                if let (Some(row), true) = (prev, z_old >= 1) {
                    let r = self.diversity(&logits, z_old);
                    nets[k_old].rewards[row as usize] = r;
                    self.tally.div_reward.0 += f64::from(r);
                    self.tally.div_reward.1 += 1;
                }
                if self.state.clock[key].is_multiple_of(t) {
                    if let Some(row) = prev {
                        cuts.push((k_old, s, row, j));
                    }
                    if self.state.clock[key] > 0 {
                        let r = self.util[s as usize]
                            .reward(f64::from(self.cfg.c), f64::from(self.cfg.eps))
                            as f32;
                        if train {
                            self.state.memory.complete(key as u32, r, false);
                        }
                        self.tally.ctrl_reward.0 += f64::from(r);
                        self.tally.ctrl_reward.1 += 1;
                    }
                    let z = nets[c].actions[j];
                    self.state.z[key] = z;
                    self.tally.choices[z as usize] += 1;
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
                    self.proxy[s as usize] = Some((role, self.diversity(&logits, z_now)));
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
            for role in 0..self.roles {
                for z in 1..self.m {
                    let k = role * self.m + z;
                    let pairs: Vec<(u32, u32)> = nets[k]
                        .slots
                        .iter()
                        .copied()
                        .zip(nets[k].dst.iter().copied())
                        .collect();
                    for (s, row) in pairs {
                        if let Some((_, p)) = self.proxy[s as usize] {
                            nets[k].rewards[row as usize] = p;
                        }
                    }
                }
            }
        }
        for (s, &role) in decided.iter().enumerate() {
            if role != usize::MAX {
                self.state.clock[role * self.slots + s] += 1;
            }
            if out.done[s] {
                env.outcomes_by_group(s as u32, true, &mut self.outcomes);
                let u = GroupUtilities::from_outcomes(&self.outcomes);
                let r = u.reward(f64::from(self.cfg.c), f64::from(self.cfg.eps)) as f32;
                for role in 0..self.roles {
                    let key = role * self.slots + s;
                    if self.state.clock[key] > 0 {
                        if train {
                            self.state.memory.complete(key as u32, r, true);
                        }
                        self.tally.ctrl_reward.0 += f64::from(r);
                        self.tally.ctrl_reward.1 += 1;
                    }
                    self.state.clock[key] = 0;
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
        _cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        if self.m > 1 {
            self.tally.rows_trained += self.state.memory.train_controllers(
                &mut nets[self.controller(0)..],
                &self.cfg,
                self.epochs,
                self.minibatch,
                (self.gamma, 0.95),
            )?;
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

    fn restore(&mut self, state: FenHsState) -> Result<(), TrainError> {
        let keys = self.state.z.len();
        let fits = [state.z.len(), state.clock.len(), state.memory.open.len()]
            .iter()
            .all(|&n| n == keys)
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
}
