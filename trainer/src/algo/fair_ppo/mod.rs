//! Fair-PPO (docs/fair-ppo.md): PPO whose advantages are transformed, per fairness cell, by a
//! penalty on the group gaps of each update: a retrospective term on realised returns and a
//! prospective term on critic values.
//!
//! Written once over the environment's [`FairnessCells`]: every decision is stored with its
//! cell; after GAE each network's device store reduces its rewards and values by cell; the
//! comparisons of the notion give per level a retrospective and a prospective gap; then
//! - `shaped` ([`penalty::Shaper`]): δ = α·g_R/M_R + β·g_V/M_V per comparison, reaching the
//!   advantages as the environment's [`Credit`] says (a group shift with the partner's mean
//!   advantage, or the HS router's ledger credit, [`ledger`]);
//! - `reference` ([`reference`]): the reference code's penalty, per training pass with a loss
//!   scale (AH) or per role and reported only (HS).
//!
//! α = β = 0 gives weights (1, 0): PPO bit for bit.

pub mod ledger;
pub mod penalty;
pub mod reference;

use super::Algorithm;
use crate::config::{Fairness, Penalty, TrainConfig};
use crate::env::fairness::{CellSums, Credit, FairnessCells, ReferenceForm};
use crate::net::{NetPlan, PolicyNet, StoreExtras};
use fairground_shaders::ppo::CellStats;
use fairground_shaders::{Executor, ShaderError};
use ledger::Ledger;
use penalty::{Comparison, FairSpec, MinMax, Shaper, shaped_json, side_weights};

/// What a checkpoint keeps: the shaped penalty's running scales, the reference's normalisers
/// (per network: R then V, one per level) and the last measured retrospective gap per level
/// (environments whose gaps persist, see `FairnessCells::RETRO_PERSISTS`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FairState {
    pub shaper: Shaper,
    pub reference: Vec<Vec<MinMax>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retro: Option<Vec<Option<f64>>>,
}

/// The reference's training passes on a device store: each network on its own group's rows.
pub const OWN_PASSES: [(usize, usize); 2] = [(0, 0), (1, 1)];

/// Fair-PPO over an environment with fairness cells.
pub struct FairPpo {
    spec: FairSpec,
    credit: Credit,
    cells: u32,
    state: FairState,
    /// Per network, the fairness cell of every store row (rows no one acted: none).
    cell_ids: Vec<Vec<u32>>,
    ledger: Option<Ledger>,
    report: Option<serde_json::Value>,
}

impl FairPpo {
    /// Fair-PPO of the config on `env` for networks of `rows` store rows each.
    pub fn new<A: FairnessCells>(cfg: &TrainConfig, env: &A, rows: usize) -> Self {
        let spec = FairSpec::of(cfg).expect("Fair-PPO runs have a penalty");
        let nets = env.nets().len();
        let cells = env.cell_count(spec.fairness);
        let credit = env.credit(spec.fairness);
        let ledger = match (spec.penalty, credit) {
            (Penalty::Shaped, Credit::Ledger { net, .. }) => {
                Some(Ledger::new(net, rows, env.nets()[net].obs_width))
            }
            _ => None,
        };
        let norms = match A::REFERENCE {
            ReferenceForm::Passes => 4,
            ReferenceForm::Roles => 8,
        };
        Self {
            spec,
            credit,
            cells,
            state: FairState {
                shaper: Shaper::default(),
                reference: vec![vec![MinMax::default(); norms]; nets],
                last_retro: A::RETRO_PERSISTS.then(Vec::new),
            },
            cell_ids: vec![vec![cells; rows]; nets],
            ledger,
            report: None,
        }
    }

    pub fn spec(&self) -> FairSpec {
        self.spec
    }

    /// This update's comparisons: the environment's retrospective gaps (the latest measured
    /// where they persist) and prospective gaps (the ledger critic's under the ledger credit).
    fn comparisons<A: FairnessCells>(
        &mut self,
        env: &A,
        sums: &CellSums,
        stats: &[Option<CellStats>],
        critic: Option<Vec<Option<f64>>>,
    ) -> Vec<Comparison> {
        let f = self.spec.fairness;
        let levels = env.comparisons(f);
        let mut retro = env.retro_gaps(f, sums);
        if let Some(last) = &mut self.state.last_retro {
            last.resize(levels.len(), None);
            for (l, r) in last.iter_mut().zip(&retro) {
                if r.is_some() {
                    *l = *r;
                }
            }
            retro.clone_from(last);
        }
        let pro = match critic {
            Some(means) => levels
                .iter()
                .map(|(_, a, b)| {
                    means[*a as usize]
                        .zip(means[*b as usize])
                        .map(|(a, b)| a - b)
                })
                .collect(),
            None => env.pro_gaps(f, sums, stats),
        };
        levels
            .into_iter()
            .zip(retro.into_iter().zip(pro))
            .map(|((level, ..), (retro, pro))| Comparison { level, retro, pro })
            .collect()
    }

    /// The shaped penalty's group-shift weights per cell for the update's sums (side a
    /// (1 − δ, mix·δ), side b (1 + δ, −mix·δ); with δ = 0 exactly PPO's (1, 0)), and its
    /// metrics. `mix` is 1 with the partner term, else 0. The reference profile's host path
    /// uses this too.
    pub fn group_shift<A: FairnessCells>(
        &mut self,
        env: &A,
        sums: &CellSums,
        mix: f64,
    ) -> (Vec<[f32; 2]>, serde_json::Value) {
        let comps = self.comparisons(env, sums, &[], None);
        let terms = self
            .state
            .shaper
            .update(&comps, self.spec.alpha, self.spec.beta);
        let mut w = vec![[1.0f32, 0.0]; self.cells as usize];
        for ((_, a, b), &d) in env.comparisons(self.spec.fairness).iter().zip(&terms.delta) {
            let [wa, wb] = side_weights(d);
            w[*a as usize] = [wa, (mix * d) as f32];
            w[*b as usize] = [wb, (-mix * d) as f32];
        }
        let mut json = shaped_json(&comps, &terms);
        // Counterfactual cells are every agent of both worlds: too many to list.
        if self.spec.fairness != Fairness::Cf {
            json["weights"] = serde_json::json!(w);
        }
        (w, json)
    }

    /// The reference penalty's loss scale per network and pass (spec §4.2–4.4) and its metrics.
    pub fn reference_passes<A: FairnessCells>(
        &mut self,
        env: &A,
        sums: &CellSums,
        passes: &[(usize, usize)],
    ) -> (Vec<Vec<f32>>, serde_json::Value) {
        let levels = env.reference_levels(self.spec.fairness);
        reference::passes(&mut self.state.reference, &self.spec, &levels, sums, passes)
    }

    /// What the next metrics line reports (the reference profile's host path plans itself).
    pub fn set_report(&mut self, report: Option<serde_json::Value>) {
        self.report = report;
    }

    /// The shaped penalty with the ledger credit (`Credit::Ledger`): the credited network's
    /// weights (1, ∓δ·scale) per cell and its ledger mix, and the metrics.
    #[allow(clippy::too_many_arguments)]
    fn ledger_plan<A: FairnessCells, E: Executor>(
        &mut self,
        env: &A,
        cfg: &TrainConfig,
        nets: &[PolicyNet<E>],
        sums: &CellSums,
        stats: &[Option<CellStats>],
        net: usize,
        segment: usize,
    ) -> (Vec<[f32; 2]>, Vec<f32>, serde_json::Value) {
        let cells = self.cells as usize;
        let ledger = self.ledger.as_mut().expect("shaped ledger credit");
        ledger.compute_to_go(env, &nets[net], &self.cell_ids[net], cells);
        let critic = ledger.critic(&nets[net].rows, &self.cell_ids[net], cells);
        let comps = self.comparisons(env, sums, stats, Some(critic));
        let terms = self
            .state
            .shaper
            .update(&comps, self.spec.alpha, self.spec.beta);
        let scale = ledger::credit_scale(cfg, &nets[net]);
        let mut w = vec![[1.0f32, 0.0]; cells];
        for ((_, a, b), &d) in env.comparisons(self.spec.fairness).iter().zip(&terms.delta) {
            // The credited network's own advantage keeps weight 1 and each decision gains −δ
            // (side a) or +δ (side b) times its patient's standardised ledger-to-go
            // (docs/fair-ppo.md).
            w[*a as usize] = [1.0, (-d * scale) as f32];
            w[*b as usize] = [1.0, (d * scale) as f32];
        }
        let mut json = shaped_json(&comps, &terms);
        json["weights"] = serde_json::json!(w);
        let ledger = self.ledger.as_ref().expect("shaped ledger credit");
        let mix = ledger.mix(&nets[net].rows, &self.cell_ids[net], cells, segment);
        (w, mix, json)
    }

    /// The partner term: each network's rows get the partner cell's mean (standardised)
    /// advantage of the partner network over the same segment.
    fn partner_mix<A: FairnessCells, E: Executor>(
        &self,
        env: &A,
        nets: &mut [PolicyNet<E>],
        plans: &mut [NetPlan],
    ) -> Result<(), ShaderError> {
        let cells = self.cells as usize;
        let mut segs = Vec::with_capacity(nets.len());
        for net in nets.iter_mut() {
            let s = net.ac.store_segment_means()?;
            net.transfer_bytes += (s.len() * 8) as u64;
            segs.push(s);
        }
        for (g, plan) in plans.iter_mut().enumerate() {
            let other = &segs[env.partner_net(g)];
            let mix: Vec<f32> = (0..other.len())
                .map(|i| {
                    let (k, c) = (i / cells, i % cells);
                    let s = other[k * cells + env.partner_cell(self.spec.fairness, c)];
                    if s.count > 0 {
                        s.sum / s.count as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            plan.mix = Some(mix);
        }
        Ok(())
    }
}

impl<A: FairnessCells> Algorithm<A> for FairPpo {
    type State = FairState;
    const PACKS: bool = true;

    fn store_extras(&self, _env: &A, net: usize) -> StoreExtras {
        let segment = match (self.spec.penalty, self.credit) {
            (Penalty::Shaped, Credit::GroupShift { mix_segment }) => mix_segment,
            (Penalty::Shaped, Credit::Ledger { net: n, segment }) if n == net => segment,
            _ => 0,
        };
        StoreExtras {
            cells: self.cells,
            segment,
        }
    }

    fn begin_rollout(&mut self, _env: &A) {
        for ids in &mut self.cell_ids {
            ids.fill(self.cells);
        }
        if let Some(l) = &mut self.ledger {
            l.begin_rollout();
        }
    }

    fn on_decision(&mut self, env: &A, net: usize, slots: &[u32], rows: &[u32], obs: &[f32]) {
        let f = self.spec.fairness;
        for (&slot, &row) in slots.iter().zip(rows) {
            self.cell_ids[net][row as usize] = env.cell(f, net, slot);
        }
        if let Some(l) = &mut self.ledger
            && l.net == net
        {
            l.on_decision(env, slots, rows, obs);
        }
    }

    fn plan<E: Executor>(
        &mut self,
        env: &A,
        cfg: &TrainConfig,
        nets: &mut [PolicyNet<E>],
    ) -> Result<Vec<NetPlan>, ShaderError> {
        // Each network's rows reduced by cell on the device.
        let mut stats = Vec::with_capacity(nets.len());
        for (net, ids) in nets.iter_mut().zip(&self.cell_ids) {
            stats.push(if net.rows.is_empty() {
                None
            } else {
                let s = net.ac.store_cell_stats(ids)?;
                net.transfer_bytes += (ids.len() * 4 + self.cells as usize * 32) as u64;
                Some(s)
            });
        }
        let mut sums = CellSums::new(self.cells as usize);
        for s in stats.iter().flatten() {
            sums.add_device(s);
        }
        let mut plans = vec![NetPlan::default(); nets.len()];
        match (self.spec.penalty, self.credit) {
            (Penalty::Shaped, Credit::GroupShift { mix_segment }) => {
                let mix = if mix_segment > 0 { 1.0 } else { 0.0 };
                let (w, json) = self.group_shift(env, &sums, mix);
                for plan in &mut plans {
                    plan.weights = Some(w.clone());
                }
                if mix_segment > 0 {
                    self.partner_mix(env, nets, &mut plans)?;
                }
                self.report = Some(json);
            }
            (Penalty::Shaped, Credit::Ledger { net, segment }) => {
                let (w, mix, json) =
                    self.ledger_plan(env, cfg, nets, &sums, &stats, net, segment as usize);
                plans[net].weights = Some(w);
                plans[net].mix = Some(mix);
                self.report = Some(json);
            }
            (Penalty::Reference, _) => match A::REFERENCE {
                ReferenceForm::Passes => {
                    let (scales, json) = self.reference_passes(env, &sums, &OWN_PASSES);
                    for (plan, s) in plans.iter_mut().zip(scales) {
                        plan.loss_scale = s[0];
                    }
                    self.report = Some(json);
                }
                ReferenceForm::Roles => {
                    let comps = self.comparisons(env, &sums, &stats, None);
                    let names: Vec<&str> = env.nets().iter().map(|n| n.name).collect();
                    let partner: Vec<usize> =
                        (0..names.len()).map(|n| env.partner_net(n)).collect();
                    let json = reference::roles(
                        &mut self.state.reference,
                        &self.spec,
                        &comps,
                        &stats,
                        &names,
                        &partner,
                    );
                    self.report = Some(json);
                }
            },
        }
        Ok(plans)
    }

    fn report(&self) -> Option<serde_json::Value> {
        self.report.clone()
    }

    fn state(&self) -> FairState {
        self.state.clone()
    }

    /// A checkpoint of an older version without Fair-PPO's state keeps the fresh one.
    /// Checkpoints of older versions without the state (an empty one) keep the fresh state.
    fn restore(&mut self, state: FairState) -> Result<(), crate::error::TrainError> {
        if !state.reference.is_empty() {
            let persists = self.state.last_retro.is_some();
            self.state = state;
            if persists && self.state.last_retro.is_none() {
                self.state.last_retro = Some(Vec::new());
            }
        }
        Ok(())
    }
}
