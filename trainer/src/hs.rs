//! PPO on HospitalSim, both profiles.
//!
//! The `reference` profile (spec §3.2) differs only in its config: `hs_pairwise_ratio` (the
//! reference's B × B importance ratio in every minibatch, computed by the `ppo_loss` kernel with
//! `LossParams::pairwise`, see [`TrainConfig::ppo_hyper`]), `normalize_advantages = false`
//! (raw advantages; returns are the raw advantage + stored value in both profiles) and
//! sequential minibatches (`shuffle_minibatches = false`).
//!
//! One actor-critic per role (router, dispatcher, manager), spec §3.2: a shared trunk
//! (`trunk`, HS default 256 → 128, leaky ReLU) feeding a linear actor head (`hidden` empty by
//! default) with the role's action components as multi-discrete logits (router 1 × 6,
//! dispatcher 20 × 50, manager `n_swing` × 7) and a linear critic head.
//!
//! Rollout: T decision rounds over N instances. Every round, the instances waiting for a role
//! go to that role's network in one batch (1..=N rows), the sampled actions are scattered into
//! [`HsActions`] and the kernel steps. Each role keeps, per instance, its own decision sequence
//! in the network's on-device rollout store (`ActorCritic::with_store`, ragged): the k-th
//! decision of instance i this rollout is store row `k * N + i` (observation, action
//! components, log-probability, value); only the actions come back. The host keeps the reward
//! of each decision, the done flag at the role's last decision of a day, and the rows in round
//! order (the minibatch order).
//!
//! GAE runs in the shaders per (role, instance) sequence with done masks (`gae_ragged`). The value after a
//! decision is the role's value of that instance's next decision of the same role in the
//! rollout; 0 after the role's last decision of a day (done); when the rollout ends first, the
//! role's value of the instance's pending observation if the instance now waits for that role,
//! else the value of the decision itself (V(s_last): the next observation of an idle role is
//! not known until it is asked again).
//!
//! Fair-PPO (docs/fair-ppo.md): decisions belong to fairness cells ([`fair_cells`]: the routed
//! patient's impairment, impairment × priority, or the hospital under `fairness = "cf"`, where
//! every hospital runs with its twin). The shaped penalty credits each router decision
//! with the standardised ledger its patient gained from the decision on ([`ledger_credit`]), and
//! its prospective gap is a ledger critic's, fitted on the router's observations; the reference
//! penalty is computed and reported but, as in the reference, has no gradient effect.

use crate::config::{Fairness, Penalty, TrainConfig};
use crate::error::TrainError;
use crate::fair::{
    Comparison, FairMetrics, FairSpec, MinMax, Shaper, csp_value, normaliser_bounds, ridge_fit,
    ridge_predict, shaped_json,
};
use crate::update::{
    ActAt, EpochScratch, LossMetrics, LossSums, act_chunks, act_into_store, actor_critic_spec,
    bootstrap_store, push_argmax, store_fair_adjust, train_stored_epochs,
};
use fairground_kernel::hash::TrajectoryHash;
use fairground_kernel::hs::{
    DISPATCH_CHOICES, DISPATCH_COMPONENTS, DISPATCHER_OBS, HsActions, HsConfig, HsDayStats, HsEnv,
    HsParams, HsRound, HsSnapshot, MANAGER_CHOICES, MANAGER_OBS, ROUTER_ACTIONS, ROUTER_OBS,
    RandomPolicy,
};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream};
use fairground_shaders::ppo::{CellStats, StoreSpec};
use fairground_shaders::{ActorCritic, ActorCriticSpec, Executor, Program, ShaderError};
use std::time::Instant;

pub use crate::ah::{ActMode, EnvUse, NetState, Timing};

/// Networks, one per role (the kernel's `PENDING_*` values).
pub const ROLES: usize = 3;
pub const ROLE_NAMES: [&str; ROLES] = ["router", "dispatcher", "manager"];
/// Impairment groups of the ledgers (`return_by_group`).
pub const IMPAIRMENT_NAMES: [&str; 3] = ["none", "low", "high"];

/// Stream path tag that keeps HS's training streams apart from AH's ("HS").
const HS_TAG: u64 = 0x4853;
/// The ledger critic's ridge per row: keeps the fit defined when symptom bits are collinear
/// (12 bits, 6 illnesses) without moving the predictions' mean.
const LEDGER_CRITIC_RIDGE: f64 = 1e-3;

/// The hospital the config describes.
pub fn hs_config(cfg: &TrainConfig, env_use: EnvUse) -> HsConfig {
    let mut c = HsConfig::new(
        cfg.instances,
        Seeds::derive(cfg.seed, env_use).env,
        cfg.profile,
    );
    c.params = HsParams {
        n_patients: cfg.hs_patients,
        sim_minutes: cfg.hs_sim_minutes,
        ..HsParams::default()
    };
    // Counterfactual fairness steps every hospital with its twin (instance 2k + 1 of 2k).
    c.twins = cfg.fairness == Fairness::Cf;
    c
}

/// Fairness cells of HS decisions. DP: 0 = a non-impaired patient, 1 = an impaired one (the
/// patient the router routes); CSP: impaired · 3 + priority of that patient; CF: the instance
/// (its world). A decision in no cell (the dispatcher's and the manager's for DP and CSP: they
/// concern several patients or none) gets `cells`.
pub fn fair_cells(fairness: Fairness, instances: usize) -> u32 {
    match fairness {
        Fairness::Dp => 2,
        Fairness::Csp => 6,
        Fairness::Cf => instances as u32,
    }
}

/// The comparisons of a notion: (level, side-a cell, side-b cell).
pub fn comparisons(fairness: Fairness, instances: usize) -> Vec<(String, u32, u32)> {
    match fairness {
        Fairness::Dp => vec![("all".into(), 0, 1)],
        Fairness::Csp => PRIORITY_NAMES
            .iter()
            .enumerate()
            .map(|(p, name)| (name.to_string(), p as u32, 3 + p as u32))
            .collect(),
        Fairness::Cf => (0..instances / 2)
            .map(|k| (format!("pair{k}"), 2 * k as u32, 2 * k as u32 + 1))
            .collect(),
    }
}

/// Whether the shaped penalty credits router decisions with their patient's ledger-to-go
/// (every notion: for CF the cell of a decision is its hospital, and hospital 2k is side a of
/// its pair, its twin side b).
pub fn ledger_credit(cfg: &TrainConfig) -> bool {
    FairSpec::of(cfg).is_some_and(|f| f.penalty == Penalty::Shaped)
}

/// Rows per segment of the router store's mix term when it carries the ledger credit, a value
/// per row at the row's cell (`fair_adjust` reads `mix[(row / segment) * cells + cell]`). DP and
/// CSP: 1, since rows of one round may share a cell (segments × cells = rows × 2 or × 6). CF:
/// the instances N, since the k-th decisions of all hospitals fill rows k·N .. k·N + N − 1 and
/// each is its hospital's cell, so every row has its own value and the mix stays rows long
/// instead of rows × N.
fn credit_segment(fairness: Fairness, instances: usize) -> u32 {
    match fairness {
        Fairness::Cf => instances as u32,
        Fairness::Dp | Fairness::Csp => 1,
    }
}

/// Patient priorities (the CSP factor).
pub const PRIORITY_NAMES: [&str; 3] = ["low", "medium", "high"];

/// Realised patient outcomes of the days finished in one iteration: ledger sums and finished
/// counts by [impairment][priority], and per instance.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    pub ledger: [[f64; 3]; 3],
    pub finished: [[f64; 3]; 3],
    pub inst_ledger: Vec<f64>,
    pub inst_finished: Vec<f64>,
}

impl Outcomes {
    fn new(instances: usize) -> Self {
        Self {
            inst_ledger: vec![0.0; instances],
            inst_finished: vec![0.0; instances],
            ..Self::default()
        }
    }

    fn add(&mut self, i: usize, s: &HsDayStats) {
        for imp in 0..3 {
            for pri in 0..3 {
                self.ledger[imp][pri] += s.ledger_finished[imp][pri];
                self.finished[imp][pri] += f64::from(s.finished[imp][pri]);
                self.inst_ledger[i] += s.ledger_finished[imp][pri];
                self.inst_finished[i] += f64::from(s.finished[imp][pri]);
            }
        }
    }

    /// The outcomes of one day (one instance).
    pub fn of_day(s: &HsDayStats) -> Self {
        let mut o = Self::new(1);
        o.add(0, s);
        o
    }

    /// Mean ledger of the finished patients of impairments `imps` and priorities `pris`; None
    /// when there is none.
    pub fn mean(&self, imps: &[usize], pris: &[usize]) -> Option<f64> {
        let (mut l, mut n) = (0.0, 0.0);
        for &i in imps {
            for &p in pris {
                l += self.ledger[i][p];
                n += self.finished[i][p];
            }
        }
        (n > 0.0).then(|| l / n)
    }

    /// Mean ledger of finished non-impaired minus impaired patients, within priority `pri`
    /// (None: all priorities); None when a side has no finished patient.
    pub fn gap(&self, pri: Option<usize>) -> Option<f64> {
        let pris: &[usize] = match pri {
            Some(p) => &[p][..],
            None => &[0, 1, 2],
        };
        Some(self.mean(&[0], pris)? - self.mean(&[1, 2], pris)?)
    }

    /// Mean ledger of finished patients of instance 2k minus its twin 2k + 1.
    pub fn pair_gap(&self, k: usize) -> Option<f64> {
        let mean = |i: usize| {
            (self.inst_finished[i] > 0.0).then(|| self.inst_ledger[i] / self.inst_finished[i])
        };
        Some(mean(2 * k)? - mean(2 * k + 1)?)
    }
}

/// HS Fair-PPO state a checkpoint keeps: the shaped scales, the reference's normalisers (per
/// role: R then V, one per level), and the last measured retrospective gap per level (an
/// iteration that finishes no day keeps the latest).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HsFairState {
    pub shaper: Shaper,
    pub reference: Vec<Vec<MinMax>>,
    pub last_retro: Vec<Option<f64>>,
}

fn obs_width(role: usize) -> usize {
    [ROUTER_OBS, DISPATCHER_OBS, MANAGER_OBS][role]
}

fn components(role: usize, n_swing: usize) -> Vec<u32> {
    match role {
        0 => vec![ROUTER_ACTIONS],
        1 => vec![DISPATCH_CHOICES; DISPATCH_COMPONENTS],
        _ => vec![MANAGER_CHOICES; n_swing],
    }
}

/// The network of one role.
pub fn net_spec(cfg: &TrainConfig, role: usize, n_swing: usize, batch: u32) -> ActorCriticSpec {
    actor_critic_spec(
        cfg,
        obs_width(role) as u32,
        components(role, n_swing),
        batch,
    )
}

/// The seeds an HS run derives from its root seed (recorded in the manifest).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seeds {
    pub run: u64,
    pub env: u64,
    pub init: [u64; ROLES],
    pub sample: [u64; ROLES],
}

impl Seeds {
    pub fn derive(seed: u64, env_use: EnvUse) -> Self {
        let one = |p: Purpose, i: u64| Stream::new(seed, p, &[HS_TAG, i]).next_u64();
        Self {
            run: seed,
            env: one(Purpose::TrainEnv, env_use as u64),
            init: std::array::from_fn(|r| one(Purpose::TrainInit, r as u64)),
            sample: std::array::from_fn(|r| one(Purpose::TrainSample, r as u64)),
        }
    }
}

/// What one iteration measured (deterministic except `wall_s`).
#[derive(Clone, Debug)]
pub struct IterStats {
    pub days_completed: u32,
    /// Mean `patients_treated` over the days completed in the iteration.
    pub patients_treated_mean: Option<f64>,
    /// Mean ledger of finished patients by impairment (none, low, high) over those days.
    pub return_by_group: Option<[f64; 3]>,
    /// Decisions taken per role in the iteration.
    pub decisions_by_role: [u64; ROLES],
    pub mean_reward_per_decision: f64,
    /// Means over the last minibatch of every epoch, then over the roles that trained.
    pub loss: LossMetrics,
    /// Disparities of the days finished in the iteration and what the penalty did.
    pub fair: FairMetrics,
    pub wall_s: f64,
}

/// Aggregates over finished days.
#[derive(Clone, Debug, Default)]
pub struct DayAgg {
    pub days: u32,
    pub treated: f64,
    pub ledger: [f64; 3],
    pub finished: [f64; 3],
}

impl DayAgg {
    pub fn add(&mut self, s: &HsDayStats) {
        self.days += 1;
        self.treated += f64::from(s.patients_treated);
        for imp in 0..3 {
            for pri in 0..3 {
                self.ledger[imp] += s.ledger_finished[imp][pri];
                self.finished[imp] += f64::from(s.finished[imp][pri]);
            }
        }
    }
    pub fn treated_mean(&self) -> Option<f64> {
        (self.days > 0).then(|| self.treated / f64::from(self.days))
    }
    pub fn by_group(&self) -> Option<[f64; 3]> {
        (self.days > 0).then(|| {
            std::array::from_fn(|g| {
                if self.finished[g] > 0.0 {
                    self.ledger[g] / self.finished[g]
                } else {
                    0.0
                }
            })
        })
    }
}

/// One role's network, rollout rows and scratch.
struct RoleNet<E: Executor> {
    ac: ActorCritic<E>,
    width: usize,
    comps: usize,
    choices: u32,
    sample_seed: u64,
    shuffle: Stream,
    batch: usize,
    // Acting scratch.
    inst: Vec<u32>,
    act_obs: Vec<f32>,
    out_actions: Vec<u32>,
    out_logp: Vec<f32>,
    out_values: Vec<f32>,
    // Rollout bookkeeping; the rows themselves live in the device store.
    /// Store rows of this rollout's decisions, in round order (the minibatch order).
    rows: Vec<u32>,
    /// Per instance: its decisions this rollout (the store's ragged lengths).
    count: Vec<u32>,
    /// Per store row: the decision's reward, and 1 at the role's last decision of a day.
    rewards: Vec<f32>,
    dones: Vec<f32>,
    /// Per store row: 0 for a decision of this rollout, 1 for a row past its instance's count.
    valid: Vec<u32>,
    /// Store rows of the current act call.
    dst: Vec<u32>,
    epochs: EpochScratch,
    /// Loss statistics of the current update.
    loss: LossSums,
    /// Bytes moved to and from the executor since the last iteration's end.
    transfer_bytes: u64,
    /// Fair-PPO: the fairness cell of every store row (rows past a count: none), the cells of
    /// the current act call, and the device's per-cell reductions of this update.
    cell_ids: Vec<u32>,
    act_cells: Vec<u32>,
    cell_stats: Option<CellStats>,
    /// Ledger credit (router, shaped penalty): per store row the routed patient (or
    /// `u16::MAX`), how many days its instance had ended in this rollout when it was routed,
    /// and the patient's ledger then; the same for the current act call.
    credit: Vec<(u16, u32, f64)>,
    act_credit: Vec<(u16, u32, f64)>,
    /// Ledger critic (the same runs): every store row's observation, `width` floats a row.
    obs_rows: Vec<f32>,
}

/// "No next row" in [`Sequences::next`].
pub const NONE: u32 = u32::MAX;

/// The definition of HS's GAE, on rows in round order. Interleaved decision sequences: row `k`'s successor in its own sequence is `next[k]`
/// (greater than `k`, or [`NONE`]); `dones[k]` ends the sequence after row `k` (value 0
/// follows); a row without successor and not done bootstraps from `boot[k]`.
pub struct Sequences<'a> {
    pub rewards: &'a [f32],
    pub values: &'a [f32],
    pub dones: &'a [u8],
    pub next: &'a [u32],
    pub boot: &'a [f32],
}
// The trainer computes this GAE in the shaders over its ragged store (`gae_ragged`, row
// `k * N + i` for the k-th decision of instance i); the test
// `the_ragged_store_layout_computes_the_interleaved_sequences` pins that the two agree bit for bit.

impl Sequences<'_> {
    /// GAE(γ, λ) of every row; visiting rows in reverse order reaches every row after its
    /// successor.
    pub fn gae(&self, gamma: f32, lambda: f32, adv: &mut [f32], ret: &mut [f32]) {
        for k in (0..self.values.len()).rev() {
            let (nv, na) = if self.dones[k] != 0 {
                (0.0, 0.0)
            } else if self.next[k] != NONE {
                let j = self.next[k] as usize;
                (self.values[j], adv[j])
            } else {
                (self.boot[k], 0.0)
            };
            let nd = 1.0 - f32::from(self.dones[k]);
            let delta = self.rewards[k] + gamma * nv * nd - self.values[k];
            adv[k] = delta + gamma * lambda * nd * na;
            ret[k] = adv[k] + self.values[k];
        }
    }
}

impl<E: Executor> RoleNet<E> {
    fn clear_rollout(&mut self, no_cell: u32) {
        self.rows.clear();
        self.count.fill(0);
        self.rewards.fill(0.0);
        self.dones.fill(0.0);
        self.cell_ids.fill(no_cell);
        self.credit.fill((u16::MAX, 0, 0.0));
    }

    /// Rollout round `step`: act on the gathered rows (`inst`, `act_obs`), keeping everything
    /// but the actions in the store (the k-th decision of instance i goes to row `k * N + i`).
    fn act_stored(&mut self, iteration: u32, step: u32) -> Result<(), ShaderError> {
        let slots = self.count.len() as u32;
        self.dst.clear();
        for &i in &self.inst {
            let row = self.count[i as usize] * slots + i;
            self.count[i as usize] += 1;
            self.dst.push(row);
        }
        self.rows.extend_from_slice(&self.dst);
        if !self.cell_ids.is_empty() {
            for (&row, &c) in self.dst.iter().zip(&self.act_cells) {
                self.cell_ids[row as usize] = c;
            }
        }
        if !self.credit.is_empty() {
            for (&row, &c) in self.dst.iter().zip(&self.act_credit) {
                self.credit[row as usize] = c;
            }
        }
        if !self.obs_rows.is_empty() {
            let w = self.width;
            for (k, &row) in self.dst.iter().enumerate() {
                self.obs_rows[row as usize * w..(row as usize + 1) * w]
                    .copy_from_slice(&self.act_obs[k * w..(k + 1) * w]);
            }
        }
        self.out_actions.clear();
        let at = self.act_at(iteration, step);
        act_into_store(
            &mut self.ac,
            at,
            &self.act_obs,
            self.width,
            &self.dst,
            &mut self.out_actions,
        )?;
        // Observations and store rows up, actions down.
        self.transfer_bytes += (self.dst.len() * (self.width + 1 + self.comps) * 4) as u64;
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

    /// After the last round: each instance's sequence length, then the value of the pending
    /// observation of the instances now waiting for this role (gathered in `inst`, `act_obs`)
    /// as their bootstrap; the others bootstrap from their last decision's own value.
    fn bootstrap_stored(&mut self, iteration: u32, step: u32) -> Result<(), ShaderError> {
        self.ac.store_lengths(&self.count)?;
        let at = self.act_at(iteration, step);
        bootstrap_store(&mut self.ac, at, &self.act_obs, self.width, &self.inst)?;
        self.transfer_bytes += (self.inst.len() * (self.width + 1) * 4) as u64;
        self.transfer_bytes += (self.count.len() * 8) as u64;
        Ok(())
    }

    /// Act on the gathered rows (`inst`, `act_obs`).
    fn act(&mut self, iteration: u32, step: u32, mode: ActMode) -> Result<(), ShaderError> {
        self.out_actions.clear();
        self.out_logp.clear();
        self.out_values.clear();
        let n = self.inst.len();
        let w = self.width;
        act_chunks(
            n,
            self.batch,
            self.sample_seed,
            iteration,
            step,
            |start, end, key| {
                let out = self
                    .ac
                    .act(&self.act_obs[start * w..end * w], &[], &[], key)?;
                // Observations up; actions, log-probabilities, entropies and values back.
                self.transfer_bytes +=
                    ((end - start) * w * 4 + self.batch * (self.comps + 3) * 4) as u64;
                match mode {
                    ActMode::Sample => self.out_actions.extend_from_slice(&out.actions),
                    ActMode::Greedy => {
                        let logits = self.ac.logits()?;
                        self.transfer_bytes += (logits.len() * 4) as u64;
                        let (c, rows) = (self.choices as usize, (end - start) * self.comps);
                        push_argmax(&logits, c, rows, &mut self.out_actions);
                    }
                }
                self.out_logp.extend_from_slice(&out.logp);
                self.out_values.extend_from_slice(&out.values);
                Ok(())
            },
        )?;
        Ok(())
    }

    /// GAE over the store (and, for Fair-PPO, the per-cell reductions), then K epochs of
    /// minibatch PPO over this rollout's rows, gathered on the device.
    fn advantages(&mut self, cfg: &TrainConfig) -> Result<(), ShaderError> {
        self.loss = LossSums::default();
        self.cell_stats = None;
        let n = self.rows.len();
        if n == 0 {
            return Ok(());
        }
        let slots = self.count.len();
        for (row, v) in self.valid.iter_mut().enumerate() {
            *v = u32::from(row / slots >= self.count[row % slots] as usize);
        }
        self.ac.store_advantages(
            &self.rewards,
            &self.dones,
            &self.valid,
            cfg.gamma,
            cfg.gae_lambda,
            cfg.normalize_advantages && n > 1,
        )?;
        self.transfer_bytes += (self.rewards.len() * 12) as u64;
        if !self.cell_ids.is_empty() {
            self.cell_stats = Some(self.ac.store_cell_stats(&self.cell_ids)?);
            self.transfer_bytes += (self.cell_ids.len() * 4) as u64;
        }
        Ok(())
    }

    /// K epochs of minibatch PPO (after [`Self::advantages`]), with the shaped penalty's cell
    /// weights when given.
    fn epochs(
        &mut self,
        cfg: &TrainConfig,
        weights: Option<&[[f32; 2]]>,
        mix: Option<&[f32]>,
    ) -> Result<(), ShaderError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        if let Some(w) = weights {
            self.transfer_bytes += store_fair_adjust(&mut self.ac, w, mix)?;
        }
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
}

/// Everything an HS checkpoint holds besides the parameters' bytes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HsTrainerState {
    pub iteration: u32,
    pub env_steps: u64,
    pub shuffle_streams: Vec<Stream>,
    pub hs_env: HsSnapshot,
    /// Fair-PPO's running state (absent in checkpoints of older versions: fresh).
    #[serde(default)]
    pub fair: HsFairState,
}

/// The HS PPO trainer over any executor.
pub struct HsTrainer<E: Executor> {
    pub cfg: TrainConfig,
    env: HsEnv,
    pool: WorkerPool,
    nets: Vec<RoleNet<E>>,
    round: HsRound,
    actions: HsActions,
    /// Per role and instance: the last row of its decision sequence in this rollout.
    last_row: [Vec<u32>; ROLES],
    /// Per instance: (role, row) of the decision taken this round.
    cur: Vec<(u8, u32)>,
    /// Per instance: whether it ended a day in this iteration (`hs_whole_days`).
    day_ended: Vec<bool>,
    /// Per instance: days it ended in this rollout (the ledger credit's clock).
    day_ends: Vec<u32>,
    /// Per router store row: the ledger its patient gained from the decision on (NaN: not
    /// credited), this update's (see [`Self::ledger_to_go`]).
    to_go: Vec<f64>,
    /// Decision rounds of the last iteration (`rollout_steps`, or fewer with `hs_whole_days`).
    last_rounds: u32,
    fair: HsFairState,
    pub iteration: u32,
    pub env_steps: u64,
    /// Wall time by phase, cumulative (`fairground bench train --env hs`).
    pub timing: Timing,
    adapter: String,
}

impl<E: Executor> HsTrainer<E> {
    pub fn new(
        cfg: &TrainConfig,
        env_use: EnvUse,
        make_executor: impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, TrainError> {
        let seeds = Seeds::derive(cfg.seed, env_use);
        let hc = hs_config(cfg, env_use);
        let n = hc.instances as usize;
        let n_swing = hc.params.n_swing as usize;
        let actions = HsActions::new(n, &hc.params);
        let env = HsEnv::new(hc);
        let batch = (cfg.minibatch_size as usize).max(n.min(8192));
        let mut nets = Vec::with_capacity(ROLES);
        for r in 0..ROLES {
            let spec = net_spec(cfg, r, n_swing, batch as u32);
            let init = spec.init_params(seeds.init[r]);
            let comps = spec.action_components.len();
            let choices = spec.action_components[0];
            let cells = FairSpec::of(cfg).map_or(0, |f| fair_cells(f.fairness, n));
            let store = StoreSpec {
                steps: cfg.rollout_steps,
                slots: n as u32,
                ragged: true,
                cells,
                // The ledger credit is a per-row term (see `credit_segment`).
                segment: if r == 0 && ledger_credit(cfg) {
                    credit_segment(cfg.fairness, n)
                } else {
                    0
                },
            };
            let ac = ActorCritic::with_store(spec, cfg.ppo_hyper(), &init, store, &make_executor)?;
            let rows = n * cfg.rollout_steps as usize;
            nets.push(RoleNet {
                ac,
                width: obs_width(r),
                comps,
                choices,
                sample_seed: seeds.sample[r],
                shuffle: Stream::new(cfg.seed, Purpose::TrainShuffle, &[HS_TAG, r as u64]),
                batch,
                inst: Vec::new(),
                act_obs: Vec::new(),
                out_actions: Vec::new(),
                out_logp: Vec::new(),
                out_values: Vec::new(),
                rows: Vec::with_capacity(rows),
                count: vec![0; n],
                rewards: vec![0.0; rows],
                dones: vec![0.0; rows],
                valid: vec![0; rows],
                dst: Vec::with_capacity(n),
                epochs: EpochScratch::default(),
                loss: LossSums::default(),
                transfer_bytes: 0,
                cell_ids: if cells > 0 {
                    vec![cells; rows]
                } else {
                    Vec::new()
                },
                act_cells: Vec::with_capacity(n),
                cell_stats: None,
                credit: if r == 0 && ledger_credit(cfg) {
                    vec![(u16::MAX, 0, 0.0); rows]
                } else {
                    Vec::new()
                },
                act_credit: Vec::with_capacity(n),
                obs_rows: if r == 0 && ledger_credit(cfg) {
                    vec![0.0; rows * obs_width(r)]
                } else {
                    Vec::new()
                },
            });
        }
        let adapter = nets[0].ac.executor().adapter_name();
        Ok(Self {
            cfg: cfg.clone(),
            pool: WorkerPool::new(cfg.threads as usize),
            round: HsRound::new(n),
            actions,
            last_row: std::array::from_fn(|_| vec![NONE; n]),
            cur: vec![(0, 0); n],
            day_ended: vec![false; n],
            day_ends: vec![0; n],
            to_go: Vec::new(),
            last_rounds: cfg.rollout_steps,
            fair: HsFairState {
                shaper: Shaper::default(),
                reference: vec![vec![MinMax::default(); 8]; ROLES],
                last_retro: Vec::new(),
            },
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

    pub fn env(&self) -> &HsEnv {
        &self.env
    }

    fn obs_row(&self, role: usize, i: usize) -> &[f32] {
        let w = obs_width(role);
        let src = match role {
            0 => &self.round.obs_router,
            1 => &self.round.obs_dispatcher,
            _ => &self.round.obs_manager,
        };
        &src[i * w..(i + 1) * w]
    }

    /// Gather the instances waiting for role `r` and their observations into its network.
    fn gather(&mut self, r: usize) {
        let mut inst = std::mem::take(&mut self.nets[r].inst);
        let mut obs = std::mem::take(&mut self.nets[r].act_obs);
        inst.clear();
        obs.clear();
        for i in 0..self.round.role.len() {
            if self.round.role[i] as usize == r {
                inst.push(i as u32);
                obs.extend_from_slice(self.obs_row(r, i));
            }
        }
        let net = &mut self.nets[r];
        net.inst = inst;
        net.act_obs = obs;
    }

    /// The fairness cell of role `r`'s pending decision in instance `i` (see [`fair_cells`]).
    fn decision_cell(&self, fairness: Fairness, r: usize, i: usize) -> u32 {
        let n = self.round.role.len();
        let none = fair_cells(fairness, n);
        let inst = self.env.instance(i);
        let patient = inst.pending_patient();
        match (fairness, r) {
            (Fairness::Cf, _) => i as u32,
            (Fairness::Dp, 0) => patient.map_or(none, |p| u32::from(inst.impairment(p) > 0)),
            (Fairness::Csp, 0) => patient.map_or(none, |p| {
                3 * u32::from(inst.impairment(p) > 0) + u32::from(inst.priority(p))
            }),
            _ => none,
        }
    }

    /// Gather the instances waiting for each role and run the role's network on them.
    fn act_all(&mut self, step: u32, mode: ActMode) -> Result<(), ShaderError> {
        for r in 0..ROLES {
            self.gather(r);
            self.nets[r].act(self.iteration, step, mode)?;
        }
        Ok(())
    }

    /// Write the sampled actions into `self.actions`.
    fn scatter(&mut self) {
        let n_swing = self.actions.n_swing;
        for (r, net) in self.nets.iter().enumerate() {
            for (k, &i) in net.inst.iter().enumerate() {
                let i = i as usize;
                let a = &net.out_actions[k * net.comps..(k + 1) * net.comps];
                let dst = match r {
                    0 => &mut self.actions.router[i..i + 1],
                    1 => {
                        &mut self.actions.dispatcher
                            [i * DISPATCH_COMPONENTS..(i + 1) * DISPATCH_COMPONENTS]
                    }
                    _ => &mut self.actions.manager[i * n_swing..(i + 1) * n_swing],
                };
                for (d, &s) in dst.iter_mut().zip(a) {
                    *d = s as u8;
                }
            }
        }
    }

    /// One iteration: T decision rounds of every instance, GAE, K epochs of PPO per role.
    pub fn iterate(&mut self) -> Result<IterStats, ShaderError> {
        let start = Instant::now();
        let cap = self.cfg.rollout_steps as usize;
        let whole_days = self.cfg.hs_whole_days;
        self.day_ended.fill(false);
        let n = self.round.role.len();
        self.env.observe(&mut self.round);
        let fair = FairSpec::of(&self.cfg);
        let no_cell = fair.map_or(0, |f| fair_cells(f.fairness, n));
        for net in &mut self.nets {
            net.clear_rollout(no_cell);
        }
        let mut outcomes = Outcomes::new(n);
        self.day_ends.fill(0);
        for l in &mut self.last_row {
            l.fill(NONE);
        }
        let mut days = DayAgg::default();
        let mut reward_sum = 0.0f64;
        let mut steps = 0;
        while steps < cap {
            let t = steps;
            let t0 = Instant::now();
            for r in 0..ROLES {
                self.gather(r);
                if let Some(f) = fair {
                    let mut cells = std::mem::take(&mut self.nets[r].act_cells);
                    cells.clear();
                    for &i in &self.nets[r].inst {
                        cells.push(self.decision_cell(f.fairness, r, i as usize));
                    }
                    self.nets[r].act_cells = cells;
                    if r == 0 && ledger_credit(&self.cfg) {
                        let mut credit = std::mem::take(&mut self.nets[0].act_credit);
                        credit.clear();
                        for &i in &self.nets[0].inst {
                            let i = i as usize;
                            let inst = self.env.instance(i);
                            credit.push(match inst.pending_patient() {
                                Some(p) => (p as u16, self.day_ends[i], inst.ledger(p)),
                                None => (u16::MAX, self.day_ends[i], 0.0),
                            });
                        }
                        self.nets[0].act_credit = credit;
                    }
                }
                self.nets[r].act_stored(self.iteration, t as u32)?;
            }
            self.timing.act_s += t0.elapsed().as_secs_f64();
            // Where each decision went.
            let h0 = Instant::now();
            for r in 0..ROLES {
                let net = &self.nets[r];
                for (&i, &row) in net.inst.iter().zip(&net.dst) {
                    self.last_row[r][i as usize] = row;
                    self.cur[i as usize] = (r as u8, row);
                }
            }
            self.scatter();
            self.timing.host_s += h0.elapsed().as_secs_f64();
            let k0 = Instant::now();
            self.env.step(&self.pool, &self.actions, &mut self.round);
            self.timing.kernel_s += k0.elapsed().as_secs_f64();
            let h0 = Instant::now();
            for i in 0..n {
                let (r, row) = self.cur[i];
                let reward = self.round.reward[i];
                self.nets[r as usize].rewards[row as usize] = reward;
                reward_sum += f64::from(reward);
                if self.round.day_done[i] != 0 {
                    self.day_ended[i] = true;
                    self.day_ends[i] += 1;
                    days.add(&self.round.day_stats[i]);
                    outcomes.add(i, &self.round.day_stats[i]);
                    for (r, net) in self.nets.iter_mut().enumerate() {
                        let last = &mut self.last_row[r][i];
                        if *last != NONE {
                            net.dones[*last as usize] = 1.0;
                            *last = NONE;
                        }
                    }
                }
            }
            self.timing.host_s += h0.elapsed().as_secs_f64();
            steps += 1;
            if whole_days && self.day_ended.iter().all(|&e| e) {
                break;
            }
        }
        self.last_rounds = steps as u32;
        // Bootstrap: the pending role's value of its current observation (a sequence whose last
        // decision ended a day has done = 1 there, so its bootstrap is never read).
        let t0 = Instant::now();
        for r in 0..ROLES {
            self.gather(r);
            self.nets[r].bootstrap_stored(self.iteration, steps as u32)?;
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        let decisions: [u64; ROLES] = std::array::from_fn(|r| self.nets[r].rows.len() as u64);
        // GAE runs inside each role's update, over its store.
        let t0 = Instant::now();
        for net in &mut self.nets {
            net.advantages(&self.cfg)?;
        }
        if ledger_credit(&self.cfg) {
            self.to_go = self.ledger_to_go();
        }
        let (weights, penalty) = self.plan(&outcomes);
        // Weights come only from the shaped penalty, whose ledger credit reaches the router
        // only (docs/fair-ppo.md).
        let mix = weights.as_ref().map(|_| self.ledger_credit_mix());
        for (r, net) in self.nets.iter_mut().enumerate() {
            let (w, m) = match (&weights, r) {
                (Some(w), 0) => (Some(w.as_slice()), mix.as_deref()),
                _ => (None, None),
            };
            net.epochs(&self.cfg, w, m)?;
        }
        self.timing.update_s += t0.elapsed().as_secs_f64();
        let fair_metrics = self.measure(&outcomes, penalty);
        for net in &mut self.nets {
            self.timing.transfer_bytes += std::mem::take(&mut net.transfer_bytes);
        }
        let loss = LossSums::mean_over(self.nets.iter().map(|n| &n.loss));
        self.iteration += 1;
        self.env_steps += (n * steps) as u64;
        Ok(IterStats {
            days_completed: days.days,
            patients_treated_mean: days.treated_mean(),
            return_by_group: days.by_group(),
            decisions_by_role: decisions,
            mean_reward_per_decision: reward_sum / (n * steps) as f64,
            loss,
            fair: fair_metrics,
            wall_s: start.elapsed().as_secs_f64(),
        })
    }

    /// The comparisons of this update: retro from the patients of the days finished in it
    /// (the latest measured when none finished); pro from the ledger critic (shaped) or the
    /// router's stored values by cell (reference).
    fn comparisons(&mut self, f: &FairSpec, outcomes: &Outcomes) -> Vec<Comparison> {
        let n = self.round.role.len();
        let levels = comparisons(f.fairness, n);
        self.fair.last_retro.resize(levels.len(), None);
        let router = self.nets[0].cell_stats.as_ref();
        // The shaped penalty's prospective gap is the ledger critic's (docs/fair-ppo.md); the
        // reference's is the router critic's, by cell (spec §4.5–4.6).
        let critic = ledger_credit(&self.cfg).then(|| self.ledger_critic());
        levels
            .iter()
            .enumerate()
            .map(|(k, (level, a, b))| {
                let retro = match f.fairness {
                    Fairness::Dp => outcomes.gap(None),
                    Fairness::Csp => outcomes.gap(Some(k)),
                    Fairness::Cf => outcomes.pair_gap(k),
                };
                if retro.is_some() {
                    self.fair.last_retro[k] = retro;
                }
                let pro = match &critic {
                    Some(means) => means[*a as usize]
                        .zip(means[*b as usize])
                        .map(|(a, b)| a - b),
                    None => router.and_then(|s| {
                        let (va, vb) = (s.values[*a as usize], s.values[*b as usize]);
                        (va.count > 0 && vb.count > 0)
                            .then(|| f64::from(va.mean) - f64::from(vb.mean))
                    }),
                };
                Comparison {
                    level: level.clone(),
                    retro: self.fair.last_retro[k],
                    pro,
                }
            })
            .collect()
    }

    /// The unit of the ledger credit: 1 on standardised advantages, else the standard deviation
    /// of the router's rewards this rollout (raw advantages are on that scale).
    fn credit_scale(&self) -> f64 {
        if self.cfg.normalize_advantages {
            return 1.0;
        }
        let net = &self.nets[0];
        let r: Vec<f64> = net
            .rows
            .iter()
            .map(|&k| f64::from(net.rewards[k as usize]))
            .collect();
        if r.len() < 2 {
            return 1.0;
        }
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (r.len() - 1) as f64).sqrt()
    }

    /// Per router store row, the ledger its patient gained from the decision on: the
    /// reward-to-go of the patient ledger, so a decision is never credited with what happened
    /// before it. Only patients that finished (done or exited) are credited, since only they
    /// enter the disparity: a row whose patient is still in its day when the rollout ends, or
    /// whose day ended unfinished, gets NaN, as do rows without a patient and rows whose day
    /// ended twice since.
    fn ledger_to_go(&self) -> Vec<f64> {
        let net = &self.nets[0];
        let cells = fair_cells(self.cfg.fairness, self.round.role.len()) as usize;
        let slots = net.count.len();
        let mut to_go = vec![f64::NAN; net.credit.len()];
        for &row in &net.rows {
            let (p, ends_then, then) = net.credit[row as usize];
            let c = net.cell_ids[row as usize] as usize;
            if p == u16::MAX || c >= cells {
                continue;
            }
            let (i, p) = (row as usize % slots, p as usize);
            let inst = self.env.instance(i);
            let last = match self.day_ends[i] - ends_then {
                0 => inst.status(p).is_finished().then(|| inst.ledger(p)),
                1 => match inst.last_day_ledger(p) {
                    (l, true) => Some(l),
                    _ => None,
                },
                _ => None,
            };
            to_go[row as usize] = last.map_or(f64::NAN, |l| l - then);
        }
        to_go
    }

    /// The ledger critic: per cell, a ridge fit of the ledger-to-go of this rollout's credited
    /// router rows on their observations, and its mean prediction over all of the cell's rows
    /// with a patient, finished or not (None: fewer than 2 credited rows). The prospective gap
    /// of a comparison is the difference of its cells' means.
    fn ledger_critic(&self) -> Vec<Option<f64>> {
        let net = &self.nets[0];
        let cells = fair_cells(self.cfg.fairness, self.round.role.len()) as usize;
        let w = net.width;
        let obs = |row: u32| {
            net.obs_rows[row as usize * w..(row as usize + 1) * w]
                .iter()
                .map(|&v| f64::from(v))
        };
        (0..cells)
            .map(|c| {
                let in_cell = |row: &&u32| {
                    net.cell_ids[**row as usize] as usize == c
                        && net.credit[**row as usize].0 != u16::MAX
                };
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for &row in net.rows.iter().filter(in_cell) {
                    let l = self.to_go[row as usize];
                    if !l.is_nan() {
                        x.extend(obs(row));
                        y.push(l);
                    }
                }
                let fit = ridge_fit(&x, &y, w, LEDGER_CRITIC_RIDGE)?;
                let (mut sum, mut n) = (0.0, 0usize);
                let mut feat = vec![0.0; w];
                for &row in net.rows.iter().filter(in_cell) {
                    for (f, v) in feat.iter_mut().zip(obs(row)) {
                        *f = v;
                    }
                    sum += ridge_predict(&fit, &feat);
                    n += 1;
                }
                Some(sum / n as f64)
            })
            .collect()
    }

    /// The ledger credit of every router store row (segments × cells, a row's value at its own
    /// cell in its segment, see [`credit_segment`]): its ledger-to-go ([`Self::ledger_to_go`])
    /// standardised within the row's cell over this rollout's credited rows; 0 where not
    /// credited.
    fn ledger_credit_mix(&self) -> Vec<f32> {
        let net = &self.nets[0];
        let n = self.round.role.len();
        let cells = fair_cells(self.cfg.fairness, n) as usize;
        let segment = credit_segment(self.cfg.fairness, n) as usize;
        let ledger = &self.to_go;
        let mut sum = vec![0.0f64; cells];
        let mut sq = vec![0.0f64; cells];
        let mut cnt = vec![0u32; cells];
        for &row in &net.rows {
            let (l, c) = (ledger[row as usize], net.cell_ids[row as usize] as usize);
            if !l.is_nan() {
                sum[c] += l;
                sq[c] += l * l;
                cnt[c] += 1;
            }
        }
        let mut mix = vec![0.0f32; net.credit.len().div_ceil(segment) * cells];
        for &row in &net.rows {
            let (l, c) = (ledger[row as usize], net.cell_ids[row as usize] as usize);
            if l.is_nan() || cnt[c] < 2 {
                continue;
            }
            let n = f64::from(cnt[c]);
            let mean = sum[c] / n;
            let std = ((sq[c] - n * mean * mean).max(0.0) / (n - 1.0)).sqrt();
            mix[row as usize / segment * cells + c] = ((l - mean) / (std + 1e-8)) as f32;
        }
        mix
    }

    /// The penalty of this update: shaped cell weights, or the reference's P per role (spec
    /// §4.5–4.7; λ is detached in every HS variant, so the gradient factor is 1 and training
    /// is PPO's: P is only reported).
    fn plan(&mut self, outcomes: &Outcomes) -> (Option<Vec<[f32; 2]>>, Option<serde_json::Value>) {
        let Some(f) = FairSpec::of(&self.cfg) else {
            return (None, None);
        };
        let n = self.round.role.len();
        let comps = self.comparisons(&f, outcomes);
        match f.penalty {
            Penalty::Shaped => {
                let terms = self.fair.shaper.update(&comps, f.alpha, f.beta);
                let mut w = vec![[1.0f32, 0.0]; fair_cells(f.fairness, n) as usize];
                let scale = self.credit_scale();
                for ((_, a, b), &d) in comparisons(f.fairness, n).iter().zip(&terms.delta) {
                    // The router's own advantage keeps weight 1 and each decision gains −δ
                    // (side a) or +δ (side b) times its patient's standardised ledger-to-go
                    // (docs/fair-ppo.md).
                    w[*a as usize] = [1.0, (-d * scale) as f32];
                    w[*b as usize] = [1.0, (d * scale) as f32];
                }
                let mut json = shaped_json(&comps, &terms);
                json["weights"] = serde_json::json!(w);
                (Some(w), Some(json))
            }
            Penalty::Reference => {
                let (alpha, beta) = (f64::from(f.alpha), f64::from(f.beta));
                let mut p = Vec::with_capacity(ROLES);
                for r in 0..ROLES {
                    let norms = &mut self.fair.reference[r];
                    let value = match f.fairness {
                        // §4.5: |gaps|, β term 0 without values of both groups.
                        Fairness::Dp => {
                            let c = &comps[0];
                            let mut v =
                                alpha * norms[0].update_normalise(c.retro.unwrap_or(0.0).abs());
                            if let Some(pro) = c.pro {
                                v += beta * norms[4].update_normalise(pro.abs());
                            }
                            v
                        }
                        // §4.6: normalisers updated with max(d, 0), applied to the signed d;
                        // the β part is always 0 in the reference.
                        Fairness::Csp => {
                            let mut retro = 0.0;
                            for (k, c) in comps.iter().enumerate() {
                                let d = c.retro.unwrap_or(0.0);
                                norms[k].update(d.max(0.0));
                                retro += norms[k].normalise(d);
                            }
                            (alpha * retro).max(0.0)
                        }
                        // §4.7: per role, |Σ rewards of world 0 − of world 1| and |mean V|.
                        Fairness::Cf => {
                            let s = self.nets[r].cell_stats.as_ref();
                            let (mut r0, mut r1, mut v0, mut v1, mut n0, mut n1) =
                                (0.0, 0.0, 0.0, 0.0, 0u32, 0u32);
                            if let Some(s) = s {
                                for (c, (rw, vl)) in s.rewards.iter().zip(&s.values).enumerate() {
                                    if c % 2 == 0 {
                                        (r0, v0, n0) = (
                                            r0 + f64::from(rw.sum),
                                            v0 + f64::from(vl.sum),
                                            n0 + vl.count,
                                        );
                                    } else {
                                        (r1, v1, n1) = (
                                            r1 + f64::from(rw.sum),
                                            v1 + f64::from(vl.sum),
                                            n1 + vl.count,
                                        );
                                    }
                                }
                            }
                            let mean = |v: f64, k: u32| if k > 0 { v / f64::from(k) } else { 0.0 };
                            let retro = norms[0].update_normalise((r0 - r1).abs());
                            let pro =
                                norms[4].update_normalise((mean(v0, n0) - mean(v1, n1)).abs());
                            (alpha * retro + beta * pro).max(0.0)
                        }
                    };
                    p.push(value);
                }
                let json = serde_json::json!({
                    "mode": "reference",
                    "roles": ROLE_NAMES,
                    "p": p,
                    "retro": comps.iter().map(|c| c.retro).collect::<Vec<_>>(),
                    "pro": comps.iter().map(|c| c.pro).collect::<Vec<_>>(),
                    "normalisers": normaliser_bounds(&self.fair.reference),
                    "loss_scale": vec![1.0; ROLES],
                });
                (None, Some(json))
            }
        }
    }

    /// The disparities of the days finished this iteration (every algorithm): dp = mean ledger
    /// of finished non-impaired minus impaired patients; csp per priority; cf (with twins) the
    /// mean over pairs of |factual − twin|.
    fn measure(&self, o: &Outcomes, penalty: Option<serde_json::Value>) -> FairMetrics {
        let levels: Vec<(&str, Option<f64>)> = PRIORITY_NAMES
            .iter()
            .enumerate()
            .map(|(p, name)| (*name, o.gap(Some(p))))
            .collect();
        let cf = self.env.config().twins.then(|| {
            let gaps: Vec<f64> = (0..o.inst_ledger.len() / 2)
                .filter_map(|k| o.pair_gap(k))
                .map(f64::abs)
                .collect();
            (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64)
        });
        FairMetrics {
            dp: o.gap(None),
            csp: csp_value(&levels),
            cf: cf.flatten(),
            penalty,
        }
    }

    /// Decisions trained per iteration (rounds × instances).
    pub fn decisions_per_iteration(&self) -> u64 {
        (self.round.role.len() * self.last_rounds as usize) as u64
    }

    /// Hex digest of the three networks' parameters (router, dispatcher, manager).
    pub fn param_hash(&mut self) -> Result<String, ShaderError> {
        let mut h = TrajectoryHash::new();
        for net in &mut self.nets {
            h.write_f32s(&net.ac.params()?);
        }
        Ok(h.hex())
    }

    pub fn save(&mut self) -> Result<(HsTrainerState, Vec<NetState>), ShaderError> {
        let mut nets = Vec::with_capacity(ROLES);
        for net in &mut self.nets {
            nets.push(NetState {
                params: net.ac.params()?,
                optimizer: net.ac.optimizer_state()?,
            });
        }
        Ok((
            HsTrainerState {
                iteration: self.iteration,
                env_steps: self.env_steps,
                shuffle_streams: self.nets.iter().map(|n| n.shuffle.clone()).collect(),
                hs_env: self.env.snapshot(),
                fair: self.fair.clone(),
            },
            nets,
        ))
    }

    pub fn load(&mut self, state: HsTrainerState, nets: &[NetState]) -> Result<(), TrainError> {
        if nets.len() != ROLES || state.shuffle_streams.len() != ROLES {
            return Err(TrainError::Env(format!(
                "a checkpoint holds {} networks, HS needs {ROLES}",
                nets.len()
            )));
        }
        if state.hs_env.config != *self.env.config() {
            return Err(TrainError::Env(
                "the checkpoint's hospital differs from the config's".into(),
            ));
        }
        for ((net, s), shuffle) in self.nets.iter_mut().zip(nets).zip(state.shuffle_streams) {
            net.ac.restore(&s.params, &s.optimizer)?;
            net.shuffle = shuffle;
        }
        self.env = HsEnv::restore(state.hs_env);
        if !state.fair.reference.is_empty() {
            self.fair = state.fair;
        }
        self.iteration = state.iteration;
        self.env_steps = state.env_steps;
        Ok(())
    }

    pub fn load_nets(&mut self, nets: &[NetState]) -> Result<(), TrainError> {
        if nets.len() != ROLES {
            return Err(TrainError::Env(format!(
                "a checkpoint holds {} networks, HS needs {ROLES}",
                nets.len()
            )));
        }
        for (net, s) in self.nets.iter_mut().zip(nets) {
            net.ac.restore(&s.params, &s.optimizer)?;
        }
        Ok(())
    }

    /// Play until `days` days have finished (from the environment as it is: a fresh one for
    /// evaluation) and return (instance, statistics) of each, first finished first (instance
    /// order within a round). With twins, `days` counts the factual hospitals' days (even
    /// instances) and play goes on until the twin of each of them has finished the same day
    /// too; both are returned. `random`: the kernel's uniform [`RandomPolicy`] instead of the
    /// networks (twins draw the same random actions).
    pub fn play_days(
        &mut self,
        days: usize,
        mode: ActMode,
        random: bool,
    ) -> Result<Vec<(usize, HsDayStats)>, ShaderError> {
        let n = self.round.role.len();
        let twins = self.env.config().twins;
        let factual = |i: usize| !twins || i.is_multiple_of(2);
        let mut out: Vec<(usize, HsDayStats)> = Vec::with_capacity(2 * days);
        let mut rp = RandomPolicy::new(self.env.config().seed, n, twins);
        self.env.observe(&mut self.round);
        let mut t = 0u32;
        let (mut kept, mut pending_twins) = (0usize, 0usize);
        while kept < days || pending_twins > 0 {
            if random {
                rp.fill(&self.round, &mut self.actions);
            } else {
                self.act_all(t, mode)?;
                self.scatter();
            }
            self.env.step(&self.pool, &self.actions, &mut self.round);
            for i in 0..n {
                if self.round.day_done[i] == 0 {
                    continue;
                }
                let s = self.round.day_stats[i];
                if factual(i) {
                    if kept < days {
                        kept += 1;
                        out.push((i, s));
                        if twins {
                            // Its twin may have finished this day already.
                            let done = out.iter().any(|(j, x)| *j == i + 1 && x.day == s.day);
                            pending_twins += usize::from(!done);
                        }
                    }
                } else if out.iter().any(|(j, x)| *j == i - 1 && x.day == s.day) {
                    out.push((i, s));
                    pending_twins -= 1;
                } else if kept < days {
                    // The twin finished first; its factual day will be kept.
                    out.push((i, s));
                }
            }
            t = t.wrapping_add(1);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! Two interleaved decision sequences give, row for row, the advantages of the CPU twin
    //! `cpu::gae` run on each sequence alone (done masks and bootstrap included); the ledger
    //! credit's mix layout gives every router row its own value.
    use super::*;
    use fairground_shaders::layout::GaeParams;

    #[test]
    fn the_credit_mix_gives_every_row_its_own_value_and_cf_one_per_row() {
        let n = 5;
        for fairness in [Fairness::Dp, Fairness::Csp, Fairness::Cf] {
            let (cells, seg) = (
                fair_cells(fairness, n) as usize,
                credit_segment(fairness, n) as usize,
            );
            // Store row k·N + i is instance i's k-th decision; CF's cell is the instance, and
            // DP/CSP rows may take any cell.
            let rows = 7 * n;
            let mut seen = std::collections::HashSet::new();
            for row in 0..rows {
                let cell_choices: Vec<usize> = match fairness {
                    Fairness::Cf => vec![row % n],
                    _ => (0..cells).collect(),
                };
                for c in cell_choices {
                    assert!(seen.insert((row, row / seg * cells + c)));
                }
            }
            let slots: std::collections::HashSet<usize> = seen.iter().map(|&(_, k)| k).collect();
            assert_eq!(
                slots.len(),
                seen.len(),
                "{fairness:?}: two rows share a value"
            );
            let len = rows.div_ceil(seg) * cells;
            assert!(slots.iter().all(|&k| k < len));
            if fairness == Fairness::Cf {
                assert_eq!(len, rows, "CF: one value per row, not rows × N");
            }
        }
    }

    #[test]
    fn interleaved_sequences_match_the_cpu_twin_per_sequence() {
        // Sequence A: rows 0, 2, 3 (done after 2, then 3 bootstraps from 0.7);
        // sequence B: rows 1, 4 (4 bootstraps from -0.2).
        let rewards = [1.0, -0.5, 2.0, 0.25, 3.0];
        let values = [0.1, 0.2, -0.3, 0.4, 0.5];
        let dones = [0, 0, 1, 0, 0];
        let next = [2, 4, 3, NONE, NONE];
        let boot = [0.0, 0.0, 0.0, 0.7, -0.2];
        let seqs = Sequences {
            rewards: &rewards,
            values: &values,
            dones: &dones,
            next: &next,
            boot: &boot,
        };
        let (mut adv, mut ret) = ([0.0f32; 5], [0.0f32; 5]);
        seqs.gae(0.9, 0.8, &mut adv, &mut ret);
        for (rows, last) in [(&[0usize, 2, 3][..], 0.7f32), (&[1, 4][..], -0.2)] {
            let p = GaeParams {
                steps: rows.len() as u32,
                agents: 1,
                gamma: 0.9,
                gae_lambda: 0.8,
                carry: 0,
                pad0: 0,
                pad1: 0,
                pad2: 0,
            };
            let r: Vec<f32> = rows.iter().map(|&k| rewards[k]).collect();
            let v: Vec<f32> = rows.iter().map(|&k| values[k]).collect();
            let d: Vec<f32> = rows.iter().map(|&k| f32::from(dones[k])).collect();
            let (mut a, mut rt) = (vec![0.0; rows.len()], vec![0.0; rows.len()]);
            fairground_shaders::cpu::gae(&p, &r, &v, &d, &[last], &mut a, &mut rt);
            for (j, &k) in rows.iter().enumerate() {
                assert!(
                    (a[j] - adv[k]).abs() < 1e-6,
                    "row {k}: {} vs {}",
                    a[j],
                    adv[k]
                );
                assert!((rt[j] - ret[k]).abs() < 1e-6, "row {k}");
            }
        }
    }

    #[test]
    fn the_ragged_store_layout_computes_the_interleaved_sequences() {
        // 3 instances, 6 rounds; instance i decides for this role in round t when
        // (i + t) % 3 != 0; the 4th round-order row ends a day; instances 0 and 2 are pending
        // for this role at the end (bootstrap from their pending value), instance 1 is not (its
        // last decision bootstraps from its own value).
        let (n, rounds) = (3usize, 6usize);
        let pending = [Some(0.35f32), None, Some(-0.6)];
        let (mut rewards, mut values, mut dones, mut inst) = (vec![], vec![], vec![], vec![]);
        for t in 0..rounds {
            for i in 0..n {
                if (i + t) % 3 != 0 {
                    let j = rewards.len();
                    rewards.push(((j * 37 % 11) as f32 - 5.0) / 4.0);
                    values.push(((j * 53 % 13) as f32 - 6.0) / 7.0);
                    dones.push(u8::from(j == 3));
                    inst.push(i);
                }
            }
        }
        let rows = rewards.len();
        let (mut next, mut boot) = (vec![NONE; rows], values.clone());
        let mut last = vec![NONE; n];
        for j in 0..rows {
            let i = inst[j];
            if last[i] != NONE {
                next[last[i] as usize] = j as u32;
            }
            last[i] = if dones[j] != 0 { NONE } else { j as u32 };
        }
        for i in 0..n {
            if let (Some(v), true) = (pending[i], last[i] != NONE) {
                boot[last[i] as usize] = v;
            }
        }
        let seqs = Sequences {
            rewards: &rewards,
            values: &values,
            dones: &dones,
            next: &next,
            boot: &boot,
        };
        let (mut adv, mut ret) = (vec![0.0; rows], vec![0.0; rows]);
        seqs.gae(0.9, 0.8, &mut adv, &mut ret);

        // The store: the k-th decision of instance i at row k * n + i.
        let cells = rounds * n;
        let (mut sr, mut sv, mut sd) = (vec![0.0; cells], vec![0.0; cells], vec![0.0; cells]);
        let (mut count, mut at) = (vec![0u32; n], vec![0usize; rows]);
        for j in 0..rows {
            let i = inst[j];
            let row = count[i] as usize * n + i;
            count[i] += 1;
            at[j] = row;
            sr[row] = rewards[j];
            sv[row] = values[j];
            sd[row] = f32::from(dones[j]);
        }
        let last_values: Vec<f32> = (0..n)
            .map(|i| match (pending[i], count[i]) {
                (Some(v), _) => v,
                (None, 0) => 0.0,
                (None, c) => sv[(c as usize - 1) * n + i],
            })
            .collect();
        let p = GaeParams {
            steps: rounds as u32,
            agents: n as u32,
            gamma: 0.9,
            gae_lambda: 0.8,
            ..GaeParams::default()
        };
        let (mut sa, mut st) = (vec![0.0; cells], vec![0.0; cells]);
        fairground_shaders::cpu::gae_ragged(
            &p,
            &sr,
            &sv,
            &sd,
            &last_values,
            &mut sa,
            &mut st,
            &count,
        );
        for j in 0..rows {
            assert_eq!(sa[at[j]], adv[j], "advantage of round-order row {j}");
            assert_eq!(st[at[j]], ret[j], "return of round-order row {j}");
        }
        assert!(dones.iter().any(|&d| d != 0) && pending.iter().any(Option::is_none));
    }
}
