//! SOTO (Zimmer, Glanois, Siddique, Weng, ICML 2021) as its authors built it (baselines-spec
//! §A5): every agent has a self-oriented stream π^I (its own observation, its own reward) and a
//! team-oriented stream π^T whose input adds the self stream's recommendation π^I(·|o) (data,
//! so no gradient reaches π^I) and the agent's standing among the instance's utilities. Every
//! T steps from an episode's reset each agent uses π^I with probability
//! β = max(1 − progress/p, 0), else π^T (drawn as the previous segment ends, with that
//! iteration's β); an agent that keeps its stream keeps one trajectory in its network, one
//! that changes ends a truncated segment. The team stream trains on the welfare gradient
//! `A^T(t) = Σ_j w_j Â_j(t)` over all agents of the instance at that step (GGF: ω by rank of
//! the utility snapshot, α-fair: (J + ε)^{−α}); the self stream on the agent's own Â.
//!
//! On the seam: the streams are routed stored networks (one pair per share unit); the team
//! stream's extra inputs come through `extra_obs`/`append_obs`; a segment's end is a truncated
//! segment (`segments.rs`); after GAE, `plan` reads every network's standardised advantages
//! (Â per network over the batch), forms A^T per (instance, step) on the host in agent order,
//! and writes the team rows' adjustment A^T − Â into their store, so the epochs train on it.
//! Evaluation uses the team stream only.
//!
//! On Allelopathic Harvest an agent's utility J is its cumulative reward in the current
//! episode; HospitalSim's labelled adaptation (welfare units = patient groups) is `hs.rs`.

pub mod hs;
pub mod welfare;

use super::eval_scope::EvalScope;
use super::segments::{self, SlotObs};
use super::{Algorithm, Phase, RoundAt};
use crate::common::ActMode;
use crate::config::{Share, SotoConfig, SotoWelfare, TrainConfig};
use crate::env::ah::AhAdapter;
use crate::env::{EnvAdapter, RoundOut};
use crate::metrics::welfare::ggf_weights;
use crate::net::{NetPlan, NetShape, PolicyNet};
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::{ActorCriticSpec, Executor, PpoHyper, ShaderError};
use std::ops::Range;
use welfare::{WelfareTally, ranks, weights, z_scores};

/// Which stream a slot uses (none drawn yet: a fresh run or evaluation).
pub(crate) const SELF: u8 = 0;
pub(crate) const TEAM: u8 = 1;
pub(crate) const UNDRAWN: u8 = 2;

/// What a checkpoint keeps of SOTO: each slot's stream, clock (steps since its episode began),
/// episode reward so far J and its last snapshot, and the stream draws' random stream.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SotoState {
    pub stream: Vec<u8>,
    pub clock: Vec<u32>,
    pub j: Vec<f64>,
    pub snapshot: Vec<f64>,
    pub rng: Option<Stream>,
    /// `deque_utility` (S3): each slot's last (up to 100) episode returns.
    #[serde(default)]
    pub returns: Vec<Vec<f64>>,
}

/// SOTO over Allelopathic Harvest.
pub struct Soto {
    cfg: SotoConfig,
    gamma: f32,
    lambda: f32,
    iterations: u32,
    units: usize,
    env_nets: usize,
    /// Logits of the environment's action head (the recommendation's width).
    choices: usize,
    /// Slots per instance (agents).
    block: usize,
    slots: usize,
    state: SotoState,
    /// Per slot, from the last snapshot: z-score, rank fraction and welfare weight.
    zj: Vec<f64>,
    rank_frac: Vec<f64>,
    weight: Vec<f64>,
    /// Per slot: the self stream's action probabilities on its current observation.
    rec: Vec<f32>,
    /// Every slot's current observation and share unit.
    slot_obs: SlotObs,
    /// Per store row (t * slots + slot): the welfare weight of the slot at step t.
    w_row: Vec<f64>,
    /// Per slot, this round's (network, store row).
    row_of: Vec<(u32, u32)>,
    ggf_w: Vec<f64>,
    tally: WelfareTally,
    scope: EvalScope,
    /// The segment-end β of the current iteration.
    beta: f64,
    /// `bush_fraction_input` (S5): per instance block, [ripe, blue, red] / live bushes.
    bushes: Vec<[f32; 3]>,
}

impl Soto {
    pub fn new(cfg: &TrainConfig, env: &AhAdapter) -> Self {
        let shapes = env.nets();
        let slots = env.slots();
        let block = slots / env.instances();
        let units = cfg.soto.share.units(shapes.len());
        let mut s = Self {
            gamma: cfg.ppo.gamma,
            lambda: cfg.ppo.gae_lambda,
            iterations: cfg.iterations,
            units,
            env_nets: shapes.len(),
            choices: shapes[0].action_components.iter().sum::<u32>() as usize,
            block,
            slots,
            state: SotoState {
                stream: vec![UNDRAWN; slots],
                clock: vec![0; slots],
                j: vec![0.0; slots],
                snapshot: vec![0.0; slots],
                rng: Some(Stream::new(cfg.seed, Purpose::TrainAlgo, &[0x5070])),
                returns: vec![vec![0.0]; slots],
            },
            zj: vec![0.0; slots],
            rank_frac: vec![0.0; slots],
            weight: vec![0.0; slots],
            rec: vec![0.0; slots * shapes[0].action_components.iter().sum::<u32>() as usize],
            slot_obs: SlotObs::new(slots, shapes[0].obs_width),
            w_row: vec![0.0; slots * cfg.rollout_steps as usize],
            row_of: vec![(u32::MAX, u32::MAX); slots],
            ggf_w: ggf_weights(block, f64::from(cfg.soto.ggf_base)),
            tally: WelfareTally::default(),
            scope: EvalScope::default(),
            beta: 1.0,
            bushes: vec![[0.0; 3]; slots / block],
            cfg: cfg.soto.clone(),
        };
        for b in 0..slots / block {
            s.features(b);
        }
        s
    }

    /// A segment's stream: self with probability β in training, the team stream in evaluation.
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

    fn team_net(&self, unit: usize) -> usize {
        self.units + unit
    }

    /// Instance block `b`'s snapshot features (z-scores, rank fractions, welfare weights) from
    /// its snapshot of J.
    fn features(&mut self, b: usize) {
        let r = b * self.block..(b + 1) * self.block;
        let snap = &self.state.snapshot[r.clone()];
        z_scores(snap, &mut self.zj[r.clone()]);
        let mut rk = vec![0u32; self.block];
        ranks(snap, &mut rk);
        let denom = (self.block.max(2) - 1) as f64;
        for (f, &k) in self.rank_frac[r.clone()].iter_mut().zip(&rk) {
            *f = f64::from(k) / denom;
        }
        weights(
            self.cfg.welfare,
            snap,
            f64::from(self.cfg.ggf_base),
            f64::from(self.cfg.alpha),
            f64::from(self.cfg.alpha_eps),
            &mut self.weight[r],
        );
    }

    /// Take block `b`'s snapshot of J now.
    fn snapshot(&mut self, b: usize) {
        let r = b * self.block..(b + 1) * self.block;
        self.state.snapshot[r.clone()].copy_from_slice(&self.state.j[r]);
        self.features(b);
    }

    /// The self stream's action probabilities on the current observations of `slots`.
    fn recommend<E: Executor>(
        &mut self,
        nets: &mut [PolicyNet<E>],
        slots: &[u32],
        iteration: u32,
        round: u32,
    ) -> Result<(), ShaderError> {
        let c = self.choices;
        for (unit, net) in nets.iter_mut().enumerate().take(self.units) {
            let mine: Vec<u32> = slots
                .iter()
                .copied()
                .filter(|&s| self.slot_obs.unit[s as usize] as usize == unit)
                .collect();
            if mine.is_empty() {
                continue;
            }
            net.slots.clear();
            net.obs.clear();
            for &s in &mine {
                let s = s as usize;
                net.slots.push(s as u32);
                net.obs.extend_from_slice(self.slot_obs.row(s));
            }
            net.act_logits(iteration, segments::VALUE_KEY | round, ActMode::Sample)?;
            for (j, &s) in mine.iter().enumerate() {
                let l = &net.logits[j * c..(j + 1) * c];
                let max = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let sum: f32 = l.iter().map(|&v| (v - max).exp()).sum();
                let dst = &mut self.rec[s as usize * c..(s as usize + 1) * c];
                for (d, &v) in dst.iter_mut().zip(l) {
                    *d = (v - max).exp() / sum;
                }
            }
        }
        Ok(())
    }

    fn team_inputs(&self, slot: usize, out: &mut Vec<f32>) {
        if self.cfg.bush_fraction_input {
            out.extend_from_slice(&self.bushes[slot / self.block]);
            return;
        }
        let c = self.choices;
        out.extend_from_slice(&self.rec[slot * c..(slot + 1) * c]);
        out.push(self.zj[slot] as f32);
        out.push(self.rank_frac[slot] as f32);
        if self.cfg.full_vector {
            let b = slot / self.block;
            out.extend(
                self.zj[b * self.block..(b + 1) * self.block]
                    .iter()
                    .map(|&v| v as f32),
            );
        }
    }

    /// S5: every instance's bush statistics as the port's `global_features`.
    fn refresh_bushes(&mut self, env: &AhAdapter) {
        for (b, f) in self.bushes.iter_mut().enumerate() {
            let inst = env.block_instance(b);
            let (mut n, mut ripe, mut blue, mut red) = (0u32, 0u32, 0u32, 0u32);
            for bush in inst.bushes() {
                n += 1;
                ripe += u32::from(bush.ripe);
                blue += u32::from(bush.colour == 1);
                red += u32::from(bush.colour == 0);
            }
            *f = if n == 0 {
                [0.0; 3]
            } else {
                let n = n as f32;
                [ripe as f32 / n, blue as f32 / n, red as f32 / n]
            };
        }
    }

    /// An instance block whose episode ended: its returns' welfare.
    fn tally_episode(&mut self, b: usize) {
        let ret = &self.state.j[b * self.block..(b + 1) * self.block];
        self.tally
            .add_episode(ret, &self.ggf_w, f64::from(self.cfg.alpha));
    }

    fn report_of(&self, with_beta: bool) -> serde_json::Value {
        let mut v = self
            .tally
            .report(self.cfg.welfare, "min_return", "mean_return");
        if with_beta {
            v["beta"] = self.beta.into();
        }
        v
    }
}

impl Algorithm<AhAdapter> for Soto {
    type State = SotoState;
    const ROUTES: bool = true;
    const REPORT_KEY: &'static str = "soto";

    fn begin_eval(&mut self, episodes: usize) {
        self.scope = EvalScope::eval(episodes);
    }

    fn nets(&self, env: &AhAdapter) -> Vec<NetShape> {
        let shapes = env.nets();
        let mut out = Vec::new();
        for (kind, extra) in [("self", 0), ("team", self.extra_obs(self.units))] {
            for base in &shapes[..self.units] {
                let name = match self.cfg.share {
                    Share::All => kind.to_string(),
                    Share::Group => format!("{}.{kind}", base.name),
                };
                out.push(NetShape {
                    name: super::fen::intern(name),
                    obs_width: base.obs_width + extra,
                    ..base.clone()
                });
            }
        }
        out
    }

    fn env_nets(&self, net: usize) -> Range<usize> {
        self.cfg.share.env_nets(net % self.units, self.env_nets)
    }

    fn route(&self, _env: &AhAdapter, env_net: usize, slot: u32) -> usize {
        let unit = self.cfg.share.unit(env_net);
        match self.state.stream[slot as usize] {
            TEAM => self.team_net(unit),
            _ => unit,
        }
    }

    fn extra_obs(&self, net: usize) -> usize {
        if net < self.units {
            return 0;
        }
        if self.cfg.bush_fraction_input {
            return 3;
        }
        self.choices + 2 + if self.cfg.full_vector { self.block } else { 0 }
    }

    fn append_obs(&self, net: usize, slot: u32, out: &mut Vec<f32>) {
        if net >= self.units {
            self.team_inputs(slot as usize, out);
        }
    }

    fn tune(&self, net: usize, spec: &mut ActorCriticSpec, _hyper: &mut PpoHyper) {
        if net >= self.units {
            spec.trunk = vec![];
            spec.hidden = self.cfg.team_hidden.clone();
        }
    }

    fn begin_rollout(&mut self, _env: &AhAdapter) {
        self.tally = WelfareTally::default();
    }

    fn begin_round<E: Executor>(
        &mut self,
        env: &AhAdapter,
        at: RoundAt,
        nets: &mut [PolicyNet<E>],
    ) -> Result<(), ShaderError> {
        self.slot_obs.refresh(env, self.cfg.share);
        self.beta = match at.phase {
            Phase::Train => {
                let progress = f64::from(at.iteration) / f64::from(self.iterations.max(1));
                (1.0 - progress / f64::from(self.cfg.beta_proportion)).max(0.0)
            }
            Phase::Eval(_) => 0.0,
        };
        for s in 0..self.slots {
            if self.state.stream[s] == UNDRAWN {
                if self.cfg.episode_stream {
                    // S6: one draw for the instance's agents together.
                    if s % self.block == 0 {
                        let st = self.draw(at.phase);
                        self.state.stream[s..s + self.block].fill(st);
                    }
                } else {
                    self.state.stream[s] = self.draw(at.phase);
                }
            }
        }
        let team: Vec<u32> = (0..self.slots as u32)
            .filter(|&s| self.state.stream[s as usize] == TEAM)
            .collect();
        // Evaluation counts the factual world's decisions.
        let scope = self.scope;
        self.tally.decisions += (0..self.slots as u32)
            .filter(|&s| scope.decision(env, s))
            .count() as u64;
        self.tally.team += team.iter().filter(|&&s| scope.decision(env, s)).count() as u64;
        if self.cfg.bush_fraction_input {
            self.refresh_bushes(env);
        } else if !team.is_empty() {
            self.recommend(nets, &team, at.iteration, at.round)?;
        }
        if at.phase == Phase::Train {
            let base = at.round as usize * self.slots;
            self.w_row[base..base + self.slots].copy_from_slice(&self.weight);
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
        if train {
            segments::acted_rows(nets, &mut self.row_of);
        }
        for (s, &r) in out.reward.iter().enumerate() {
            self.state.clock[s] += 1;
            self.state.j[s] += f64::from(r);
        }
        let t = self.cfg.segment;
        let blocks = self.slots / self.block;
        let mut ended = Vec::new();
        // A segment ends (or an episode): snapshot J and draw each agent's next stream; an
        // agent that changes stream inside its episode ends a truncated segment.
        for b in 0..blocks {
            let first = b * self.block;
            let done = out.done[first];
            if done {
                if self.scope.episode(env, first as u32, self.tally.episodes) {
                    self.tally_episode(b);
                }
                for s in first..first + self.block {
                    if self.cfg.deque_utility {
                        let q = &mut self.state.returns[s];
                        q.push(self.state.j[s]);
                        if q.len() > 100 {
                            q.remove(0);
                        }
                    }
                    self.state.clock[s] = 0;
                    self.state.j[s] = 0.0;
                }
            } else if self.cfg.episode_stream || !self.state.clock[first].is_multiple_of(t) {
                continue;
            }
            self.snapshot(b);
            if self.cfg.episode_stream {
                // S6: the next episode's one stream for all the instance's agents.
                let st = self.draw(at.phase);
                self.state.stream[first..first + self.block].fill(st);
                continue;
            }
            for s in first..first + self.block {
                let old = self.state.stream[s];
                self.state.stream[s] = self.draw(at.phase);
                if !done && self.state.stream[s] != old {
                    ended.push(s as u32);
                }
            }
        }
        if train && !ended.is_empty() && !self.cfg.flat_gae {
            self.slot_obs.refresh(env, self.cfg.share);
            // The team stream's critic needs the recommendation at o_{t+1}.
            let team: Vec<u32> = ended
                .iter()
                .copied()
                .filter(|&s| self.state.stream[s as usize] == SELF)
                .collect();
            if self.cfg.bush_fraction_input {
                self.refresh_bushes(env);
            } else if !team.is_empty() {
                self.recommend(nets, &team, at.iteration, at.round)?;
            }
            for (k, net) in nets.iter_mut().enumerate().take(2 * self.units) {
                let slots: Vec<u32> = ended
                    .iter()
                    .copied()
                    .filter(|&s| self.row_of[s as usize].0 == k as u32)
                    .collect();
                let rows: Vec<u32> = slots.iter().map(|&s| self.row_of[s as usize].1).collect();
                let mut obs = Vec::with_capacity(slots.len() * net.shape.obs_width);
                for &s in &slots {
                    let s = s as usize;
                    obs.extend_from_slice(self.slot_obs.row(s));
                    if k >= self.units {
                        self.team_inputs(s, &mut obs);
                    }
                }
                segments::truncate(net, &slots, &rows, &obs, self.gamma, at.iteration, at.round)?;
            }
        }
        Ok(())
    }

    fn plan<E: Executor>(
        &mut self,
        _env: &AhAdapter,
        _cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        let plans = vec![NetPlan::default(); nets.len()];
        if nets[self.units..].iter().all(|n| n.rows.is_empty()) {
            return Ok(plans);
        }
        // S10: every stream's advantages by the port's flat GAE first (team values kept for the
        // returns).
        let mut team_values: Vec<(Vec<u32>, Vec<f32>)> = Vec::new();
        if self.cfg.flat_gae {
            for (k, net) in nets.iter_mut().enumerate() {
                let rv = segments::flat_store_advantages(
                    net,
                    self.gamma,
                    self.lambda,
                    crate::algo::fen::controller::FlatGae::Ah,
                )?;
                if k >= self.units {
                    team_values.push(rv);
                }
            }
        }
        // S3: every row weighted by its agent's mean of past returns at update time.
        if self.cfg.deque_utility {
            let mut j = vec![0.0f64; self.slots];
            for (v, q) in j.iter_mut().zip(&self.state.returns) {
                *v = q.iter().sum::<f64>() / q.len().max(1) as f64;
            }
            let mut w = vec![0.0f64; self.slots];
            for b in 0..self.slots / self.block {
                let r = b * self.block..(b + 1) * self.block;
                weights(
                    self.cfg.welfare,
                    &j[r.clone()],
                    f64::from(self.cfg.ggf_base),
                    f64::from(self.cfg.alpha),
                    f64::from(self.cfg.alpha_eps),
                    &mut w[r],
                );
            }
            for (k, x) in self.w_row.iter_mut().enumerate() {
                *x = w[k % self.slots];
            }
        }
        // Â per (step, slot) from the network that acted there (rows align: t * slots + s).
        let rows = self.w_row.len();
        let mut ahat = vec![0.0f64; rows];
        let mut acted = vec![false; rows];
        let mut team_adv: Vec<Vec<f32>> = Vec::with_capacity(self.units);
        for (k, net) in nets.iter_mut().enumerate() {
            if net.rows.is_empty() {
                if k >= self.units {
                    team_adv.push(Vec::new());
                }
                continue;
            }
            let (adv, _) = net.ac.stored_advantages()?;
            net.transfer_bytes += (adv.len() * 8) as u64;
            for &r in &net.rows {
                ahat[r as usize] = f64::from(adv[r as usize]);
                acted[r as usize] = true;
            }
            if k >= self.units {
                team_adv.push(adv);
            }
        }
        // A^T per (step, instance), summed over the agents in agent order.
        let blocks = self.slots / self.block;
        let steps = rows / self.slots;
        let mut at = vec![0.0f64; steps * blocks];
        for t in 0..steps {
            for b in 0..blocks {
                let mut sum = 0.0;
                for s in b * self.block..(b + 1) * self.block {
                    let r = t * self.slots + s;
                    if acted[r] {
                        sum += self.w_row[r] * ahat[r];
                    }
                }
                at[t * blocks + b] = sum;
            }
        }
        let own = self.cfg.self_weighted_advantage;
        let target = |r: usize| {
            if own {
                // S1: the agent's own advantage times its own weight.
                self.w_row[r] * ahat[r]
            } else {
                at[(r / self.slots) * blocks + (r % self.slots) / self.block]
            }
        };
        // α-fair (and S1, as the port): the targets standardised over the team rows.
        let (mut mean, mut sd) = (0.0, 1.0);
        if self.cfg.welfare == SotoWelfare::Alpha || own {
            let vals: Vec<f64> = nets[self.units..]
                .iter()
                .flat_map(|n| n.rows.iter().map(|&r| target(r as usize)))
                .collect();
            let n = vals.len() as f64;
            mean = vals.iter().sum::<f64>() / n;
            let var = if vals.len() > 1 {
                vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            sd = var.sqrt() + 1e-8;
        }
        for (u, adv) in team_adv.into_iter().enumerate() {
            let net = &mut nets[self.units + u];
            if net.rows.is_empty() {
                continue;
            }
            if self.cfg.flat_gae {
                // S10: the port's returns are the advantage trained on + V.
                let (rows, values) = &team_values[u];
                let (mut a, mut ret) = (vec![0.0f32; adv.len()], vec![0.0f32; adv.len()]);
                for (&r, &v) in rows.iter().zip(values) {
                    let t = ((target(r as usize) - mean) / sd) as f32;
                    a[r as usize] = t;
                    ret[r as usize] = t + v;
                }
                net.ac.store_set_advantages(&a, &ret)?;
                net.transfer_bytes += (adv.len() * 8) as u64;
                continue;
            }
            let mut adj = vec![0.0f32; adv.len()];
            for &r in &net.rows {
                let r = r as usize;
                adj[r] = ((target(r) - mean) / sd - f64::from(adv[r])) as f32;
            }
            net.ac.store_set_adjustments(&adj)?;
            net.transfer_bytes += (adj.len() * 4) as u64;
        }
        Ok(plans)
    }

    fn report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(true))
    }

    fn eval_report(&self) -> Option<serde_json::Value> {
        Some(self.report_of(false))
    }

    fn state(&self) -> SotoState {
        self.state.clone()
    }

    fn restore(&mut self, state: SotoState) -> Result<(), crate::error::TrainError> {
        let fits = [
            state.stream.len(),
            state.clock.len(),
            state.j.len(),
            state.snapshot.len(),
        ]
        .iter()
        .all(|&n| n == self.slots)
            && state.rng.is_some()
            && (state.returns.is_empty() || state.returns.len() == self.slots);
        if !fits {
            return Err(super::foreign_state(
                "soto",
                format!("not {} slots' SOTO state with its stream", self.slots),
            ));
        }
        let mut state = state;
        if state.returns.is_empty() {
            state.returns = vec![vec![0.0]; self.slots];
        }
        self.state = state;
        for b in 0..self.slots / self.block {
            self.features(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The team loss never moves the self stream: a rollout played by the team stream alone
    //! leaves the self network's parameters and Adam state exactly as they were (its
    //! recommendation enters the team network as data; stop-gradient by construction), while
    //! the team network's change; a checkpoint state that is not this run's is refused.
    use super::*;
    use crate::common::EnvUse;
    use crate::train_loop::Trainer;
    use fairground_shaders::CpuExecutor;

    /// S6: one stream per instance (all its agents) at every point of the run; S3: each
    /// agent's deque holds the 0 it starts with and one return per episode ended; S5: the team
    /// input's three bush fractions.
    #[test]
    fn the_episode_stream_is_one_per_instance_and_the_deque_keeps_episode_returns() {
        let mut cfg = TrainConfig {
            instances: 2,
            rollout_steps: 12,
            iterations: 4,
            seed: 5,
            ..TrainConfig::default()
        };
        cfg.algo = crate::config::Algo::Soto;
        cfg.ah.episode_steps = 10;
        cfg.ppo.hidden = vec![16, 8];
        cfg.ppo.minibatch_size = 64;
        cfg.ppo.epochs = 1;
        cfg.soto.team_hidden = vec![8];
        cfg.soto.episode_stream = true;
        cfg.soto.deque_utility = true;
        cfg.soto.bush_fraction_input = true;
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let soto = Soto::new(&cfg, &env);
        let mut t = Trainer::new(&cfg, env, soto, |p| Ok(CpuExecutor::new(p))).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            t.iterate().unwrap();
            for block in t.algo.state.stream.chunks(40) {
                assert!(block.iter().all(|&x| x == block[0]), "{block:?}");
                seen.insert(block[0]);
            }
        }
        assert!(seen.contains(&TEAM), "β reaches 0 halfway: {seen:?}");
        // 48 steps: episodes ended at steps 10, 20, 30, 40.
        for q in &t.algo.state.returns {
            assert_eq!(q.len(), 5);
            assert_eq!(q[0], 0.0);
        }
        assert!(
            t.algo
                .state
                .returns
                .iter()
                .any(|q| q[1..].iter().any(|&r| r > 0.0))
        );
        // S5: fractions of the live bushes, the team network's three extra inputs.
        for f in &t.algo.bushes {
            assert!(f.iter().all(|v| (0.0..=1.0).contains(v)) && f[1] + f[2] <= 1.0 + 1e-6);
            assert!(f[1] + f[2] > 0.0, "{f:?}");
        }
        assert_eq!(t.nets()[1].shape.obs_width, t.nets()[0].shape.obs_width + 3);
    }

    #[test]
    fn no_gradient_of_the_team_loss_reaches_the_self_stream() {
        let mut cfg = TrainConfig {
            instances: 2,
            rollout_steps: 12,
            iterations: 4,
            seed: 5,
            ..TrainConfig::default()
        };
        cfg.algo = crate::config::Algo::Soto;
        cfg.ah.episode_steps = 10;
        cfg.ppo.hidden = vec![16, 8];
        cfg.ppo.minibatch_size = 64;
        cfg.ppo.epochs = 2;
        // β = 1 in iteration 0 (progress 0), 0 from iteration 1; a new stream every step, each
        // drawn as the step before ends, so iteration 2 is played by the team stream alone.
        cfg.soto.beta_proportion = 1e-6;
        cfg.soto.segment = 1;
        cfg.soto.team_hidden = vec![8];
        let env = AhAdapter::new(&cfg, EnvUse::Train).unwrap();
        let soto = Soto::new(&cfg, &env);
        let mut t = Trainer::new(&cfg, env, soto, |p| Ok(CpuExecutor::new(p))).unwrap();
        t.iterate().unwrap();
        t.iterate().unwrap();
        let (_, before) = t.save().unwrap();
        t.iterate().unwrap();
        assert!(t.nets()[0].rows.is_empty() && !t.nets()[1].rows.is_empty());
        let (_, after) = t.save().unwrap();
        assert_eq!(
            after[0].params, before[0].params,
            "the self network did not move"
        );
        assert_eq!(after[0].optimizer, before[0].optimizer);
        assert_ne!(
            after[1].params, before[1].params,
            "the team network trained"
        );
    }
}
