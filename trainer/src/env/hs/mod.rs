//! [`HsAdapter`]: HospitalSim behind the environment seam.
//!
//! Three networks, one per role (router, dispatcher, manager; spec §3.2). A slot is one
//! hospital; every round each hospital waits for exactly one role, whose network decides for
//! it (the kernel advances every instance to its next decision). Each role's decisions fill its
//! ragged store (the k-th decision of hospital i at row `k * N + i`); the value after a decision
//! is the same role's next decision in that hospital, 0 after the role's last decision of a day
//! (done), and when the rollout ends first the value of the pending observation if the hospital
//! now waits for that role, else of the decision itself.
//!
//! A counterfactual run (`fairness = "cf"`) steps every hospital with its twin (instance
//! 2k + 1 of 2k). The rollout's metrics describe the days finished in it: patients treated,
//! the mean ledger of finished patients by impairment, and the disparities of spec §6.

pub mod fair;

use crate::common::{ActMode, EnvUse, Seeds};
use crate::config::{Fairness, TrainConfig};
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
pub use crate::metrics::outcomes::{DayAgg, Outcomes};
use crate::metrics::{FairMetrics, csp_value};
use crate::net::{NetShape, StoreLayout};
use fairground_kernel::hs::{
    ArrivalPeaks, Curriculum, DISPATCH_CHOICES, DISPATCH_COMPONENTS, DISPATCHER_OBS, HsActions,
    HsConfig, HsDayStats, HsEnv, HsParams, HsRound, HsSnapshot, MANAGER_CHOICES, MANAGER_OBS,
    PairDays, ROUTER_ACTIONS, ROUTER_OBS, RandomPolicy,
};
use fairground_kernel::pool::WorkerPool;

/// Networks, one per role (the kernel's `PENDING_*` values).
pub const ROLES: usize = 3;
pub const ROLE_NAMES: [&str; ROLES] = ["router", "dispatcher", "manager"];
/// With `hs.cf_world_agents`: one agent set per world, network `w·ROLES + role` acting in the
/// hospitals of world w (0 factual, 1 twin).
pub const WORLD_NET_NAMES: [&str; 2 * ROLES] = [
    "router",
    "dispatcher",
    "manager",
    "router_twin",
    "dispatcher_twin",
    "manager_twin",
];
/// Impairment groups of the ledgers (`return_by_group`).
pub const IMPAIRMENT_NAMES: [&str; 3] = ["none", "low", "high"];
/// Patient priorities (the CSP factor).
pub const PRIORITY_NAMES: [&str; 3] = ["low", "medium", "high"];

/// Stream path tag that keeps HS's training streams apart from AH's ("HS").
pub const HS_TAG: u64 = 0x4853;

/// The hospital the config describes.
pub fn hs_config(cfg: &TrainConfig, env_use: EnvUse) -> HsConfig {
    let seeds = Seeds::derive(cfg.seed, &[HS_TAG], env_use, ROLES);
    let mut c = HsConfig::new(cfg.instances, seeds.env, cfg.profile);
    c.params = HsParams {
        n_patients: cfg.hs.patients,
        sim_minutes: cfg.hs.sim_minutes,
        ..HsParams::default()
    };
    // Counterfactual fairness steps every hospital with its twin (instance 2k + 1 of 2k).
    c.twins = cfg.fair.fairness == Fairness::Cf;
    if cfg.hs.cf_days_end_together {
        c.pair_days = PairDays::EitherEnds;
    }
    // The reference's scripts: a curriculum over a fixed pool in training, a fresh template for
    // every test day.
    if cfg.hs.arrival_curriculum {
        c.arrivals = match env_use {
            EnvUse::Train => ArrivalPeaks::Curriculum(Curriculum {
                templates: cfg.hs.curriculum_templates,
                seed: cfg.hs.curriculum_seed,
                phase_days: cfg.hs.curriculum_phase_days,
            }),
            EnvUse::Eval => ArrivalPeaks::FreshTemplate,
        };
    }
    c
}

/// `{"none": v[0], "low": v[1], "high": v[2]}`, or null.
pub fn by_impairment(v: Option<[f64; 3]>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(v) => {
            let mut m = serde_json::Map::new();
            for (name, x) in IMPAIRMENT_NAMES.iter().zip(v) {
                m.insert(name.to_string(), serde_json::json!(x));
            }
            serde_json::Value::Object(m)
        }
    }
}

/// What a checkpoint keeps of the hospitals (the sidecar's `hs_env` field).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HsState {
    pub hs_env: HsSnapshot,
}

/// The rollout's numbers in a metrics line.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HsMetrics {
    /// Decisions of this rollout by role.
    pub decisions_by_role: serde_json::Value,
    pub mean_reward_per_decision: f64,
    pub days_completed: u32,
    /// Mean patients treated over the days completed in this rollout (null if none).
    pub patients_treated_mean: Option<f64>,
    /// Mean ledger of finished patients by impairment over those days (null if none).
    pub return_by_group: serde_json::Value,
    #[serde(flatten)]
    pub fair: FairMetrics,
}

/// Days played for an evaluation: (instance, statistics), first finished first; with twins,
/// `kept` counts the factual days and `pending_twins` those whose twin has not finished yet.
#[derive(Clone, Debug, Default)]
pub struct HsPlayed {
    pub days: Vec<(usize, HsDayStats)>,
    kept: usize,
    pending_twins: usize,
}

/// HospitalSim for the trainer.
pub struct HsAdapter {
    env: HsEnv,
    shapes: Vec<NetShape>,
    round: HsRound,
    actions: HsActions,
    whole_days: bool,
    hs_patients: u16,
    hs_sim_minutes: u16,
    /// Per hospital: whether it ended a day in this rollout (`hs_whole_days`).
    day_ended: Vec<bool>,
    /// Per hospital: days it ended in this rollout.
    day_ends: Vec<u32>,
    days: DayAgg,
    outcomes: Outcomes,
    reward_sum: f64,
    decisions: [u64; ROLES],
    random: RandomPolicy,
    /// `hs.cf_world_agents`: networks per world (network `w·ROLES + role`).
    world_agents: bool,
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

impl HsAdapter {
    pub fn new(cfg: &TrainConfig, env_use: EnvUse) -> Self {
        let hc = hs_config(cfg, env_use);
        let n = hc.instances as usize;
        let n_swing = hc.params.n_swing as usize;
        let actions = HsActions::new(n, &hc.params);
        let random = RandomPolicy::new(hc.seed, n, hc.twins);
        let world_agents = cfg.hs.cf_world_agents;
        let nets = if world_agents { 2 * ROLES } else { ROLES };
        let shapes = (0..nets)
            .map(|net| NetShape {
                name: WORLD_NET_NAMES[net],
                obs_width: obs_width(net % ROLES),
                action_components: components(net % ROLES, n_swing),
                layout: StoreLayout::Ragged,
            })
            .collect();
        Self {
            env: HsEnv::new(hc),
            shapes,
            round: HsRound::new(n),
            actions,
            whole_days: cfg.hs.whole_days,
            hs_patients: cfg.hs.patients,
            hs_sim_minutes: cfg.hs.sim_minutes,
            day_ended: vec![false; n],
            day_ends: vec![0; n],
            days: DayAgg::default(),
            outcomes: Outcomes::new(n),
            reward_sum: 0.0,
            decisions: [0; ROLES],
            random,
            world_agents,
        }
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

    /// The disparities of the days finished this rollout: dp = mean ledger of finished
    /// non-impaired minus impaired patients; csp per priority; cf (with twins) the mean over
    /// pairs of |factual − twin|.
    fn measure(&self) -> FairMetrics {
        let o = &self.outcomes;
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
        }
    }
}

impl EnvAdapter for HsAdapter {
    type Snapshot = HsState;
    type Metrics = HsMetrics;
    type Played = HsPlayed;

    fn nets(&self) -> &[NetShape] {
        &self.shapes
    }

    fn slots(&self) -> usize {
        self.round.role.len()
    }

    fn stream_tag(&self) -> &'static [u64] {
        &[HS_TAG]
    }

    fn instances(&self) -> usize {
        self.round.role.len()
    }

    fn begin_rollout(&mut self) {
        let n = self.slots();
        self.day_ended.fill(false);
        self.env.observe(&mut self.round);
        self.outcomes = Outcomes::new(n);
        self.day_ends.fill(0);
        self.days = DayAgg::default();
        self.reward_sum = 0.0;
        self.decisions = [0; ROLES];
    }

    fn gather(&self, net: usize, slots: &mut Vec<u32>, obs: &mut Vec<f32>) {
        slots.clear();
        obs.clear();
        let role = net % ROLES;
        // With one agent set per world, network w·ROLES + role acts in world w's hospitals.
        let world = |i: usize| !self.world_agents || i % 2 == net / ROLES;
        for i in 0..self.round.role.len() {
            if self.round.role[i] as usize == role && world(i) {
                slots.push(i as u32);
                obs.extend_from_slice(self.obs_row(role, i));
            }
        }
    }

    fn scatter(&mut self, net: usize, slots: &[u32], actions: &[u32]) {
        let n_swing = self.actions.n_swing;
        let comps = self.shapes[net].action_components.len();
        let net = net % ROLES;
        self.decisions[net] += slots.len() as u64;
        for (k, &i) in slots.iter().enumerate() {
            let i = i as usize;
            let a = &actions[k * comps..(k + 1) * comps];
            let dst = match net {
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

    fn step(&mut self, out: &mut RoundOut, pool: &WorkerPool) {
        self.env.step(&self.actions, &mut self.round, pool);
        for i in 0..self.round.role.len() {
            let reward = self.round.reward[i];
            out.reward[i] = reward;
            self.reward_sum += f64::from(reward);
            out.done[i] = self.round.day_done[i] != 0;
            if out.done[i] {
                self.day_ended[i] = true;
                self.day_ends[i] += 1;
                self.days.add(&self.round.day_stats[i]);
                self.outcomes.add(i, &self.round.day_stats[i]);
            }
        }
    }

    fn rollout_complete(&self) -> bool {
        self.whole_days && self.day_ended.iter().all(|&e| e)
    }

    fn end_rollout(&mut self, rounds: u32, _env_steps: u64) -> HsMetrics {
        let mut roles = serde_json::Map::new();
        for (name, d) in ROLE_NAMES.iter().zip(self.decisions) {
            roles.insert(name.to_string(), serde_json::json!(d));
        }
        HsMetrics {
            decisions_by_role: serde_json::Value::Object(roles),
            mean_reward_per_decision: self.reward_sum / (self.slots() * rounds as usize) as f64,
            days_completed: self.days.days,
            patients_treated_mean: self.days.treated_mean(),
            return_by_group: by_impairment(self.days.by_group()),
            fair: self.measure(),
        }
    }

    fn snapshot(&self) -> HsState {
        HsState {
            hs_env: self.env.snapshot(),
        }
    }

    fn restore(&mut self, s: HsState) -> Result<(), TrainError> {
        if s.hs_env.config != *self.env.config() {
            return Err(TrainError::Checkpoint {
                why: "the checkpoint's hospital differs from the config's".into(),
            });
        }
        self.env = HsEnv::restore(s.hs_env);
        Ok(())
    }

    fn replay_view(&self) -> crate::env::ReplayView<'_> {
        crate::env::ReplayView::Hs {
            env: &self.env,
            actions: &self.actions,
            round: &self.round,
        }
    }

    fn random_actions(&mut self) {
        self.random.fill(&self.round, &mut self.actions);
    }

    fn played(&self, days: usize) -> HsPlayed {
        HsPlayed {
            days: Vec::with_capacity(2 * days),
            ..HsPlayed::default()
        }
    }

    fn played_count(&self, p: &HsPlayed) -> usize {
        p.kept
    }

    /// Days count the factual hospitals' days (even instances with twins); play goes on until
    /// the twin of each kept day has finished the same day too, and both are kept.
    fn collect(&mut self, days: usize, p: &mut HsPlayed) -> bool {
        let twins = self.env.config().twins;
        let factual = |i: usize| !twins || i.is_multiple_of(2);
        for i in 0..self.round.role.len() {
            if self.round.day_done[i] == 0 {
                continue;
            }
            let s = self.round.day_stats[i];
            if factual(i) {
                if p.kept < days {
                    p.kept += 1;
                    p.days.push((i, s));
                    if twins {
                        // Its twin may have finished this day already.
                        let done = p.days.iter().any(|(j, x)| *j == i + 1 && x.day == s.day);
                        p.pending_twins += usize::from(!done);
                    }
                }
            } else if p.days.iter().any(|(j, x)| *j == i - 1 && x.day == s.day) {
                p.days.push((i, s));
                p.pending_twins -= 1;
            } else if p.kept < days {
                // The twin finished first; its factual day will be kept.
                p.days.push((i, s));
            }
        }
        p.kept >= days && p.pending_twins == 0
    }

    fn eval_report(&self, p: &HsPlayed, _mode: ActMode) -> serde_json::Value {
        eval_report(self, &p.days)
    }

    fn factual(&self, slot: u32) -> bool {
        !self.env.config().twins || slot.is_multiple_of(2)
    }
}

/// `eval.json`'s HS numbers from the days played (spec §6).
fn eval_report(a: &HsAdapter, days: &[(usize, HsDayStats)]) -> serde_json::Value {
    let fair = crate::metrics::hs_eval_disparities(days);
    // Everything else describes the factual hospitals (even instances).
    let stats: Vec<HsDayStats> = days
        .iter()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, s)| *s)
        .collect();
    let mut agg = DayAgg::default();
    for s in &stats {
        agg.add(s);
    }
    let e = stats.len() as f64;
    let mean = |f: &dyn Fn(&HsDayStats) -> f64| stats.iter().map(f).sum::<f64>() / e;
    let routing: f64 = mean(&|s| f64::from(s.routing_decisions.iter().sum::<u32>()));
    let frac = |k: usize| {
        mean(&|s| f64::from(s.routing_decisions[k])) / if routing > 0.0 { routing } else { 1.0 }
    };
    serde_json::json!({
        "env": "hs",
        "days": stats.len(),
        "patients_per_day": a.hs_patients,
        "sim_minutes": a.hs_sim_minutes,
        "patients_treated_mean": agg.treated_mean(),
        "patients_exited_mean": mean(&|s| f64::from(s.patients_exited)),
        "return_by_group": by_impairment(agg.by_group()),
        "dp": fair["dp"],
        "dp_abs": fair["dp_abs"],
        "csp": fair["csp"],
        "cf": fair["cf"],
        "cf_total": fair["cf_total"],
        "welfare": fair["welfare"],
        "swing_moves_mean": mean(&|s| f64::from(s.swing_moves)),
        "routing_decisions_mean": routing,
        "routing_outcome_fraction": {
            "perfect": frac(0),
            "backup": frac(1),
            "wrong": frac(2),
        },
        "decisions_mean": {
            "router": mean(&|s| f64::from(s.decisions[0])),
            "dispatcher": mean(&|s| f64::from(s.decisions[1])),
            "manager": mean(&|s| f64::from(s.decisions[2])),
        },
        "empty_dispatches_mean": mean(&|s| f64::from(s.empty_dispatches)),
        "bounces_mean": mean(&|s| f64::from(s.bounces)),
        "escort_wait_mean": mean(&|s| s.escort_wait_sum) / mean(&|s| f64::from(s.escort_waits)).max(1.0),
        "escort_travel_mean": pooled(&stats, &|s| s.escort_travel_sum.iter().sum(), &|s| s.escort_travels.iter().sum()),
        "escort_travel_mean_by_helper": {
            "nurse": pooled(&stats, &|s| s.escort_travel_sum[0], &|s| s.escort_travels[0]),
            "robot": pooled(&stats, &|s| s.escort_travel_sum[1], &|s| s.escort_travels[1]),
        },
        "ward_wait_mean": mean(&|s| s.ward_wait_sum) / mean(&|s| f64::from(s.ward_waits)).max(1.0),
        "empty_dispatch_cap_days": stats.iter().filter(|s| s.empty_dispatch_cap_triggers > 0).count(),
        "empty_dispatch_cap_triggers_mean": mean(&|s| f64::from(s.empty_dispatch_cap_triggers)),
        "per_day": per_day_means(&stats),
        "by_priority": by_priority(&stats),
        "arrivals": arrivals_report(a.env.config().arrivals, &stats),
        "pair_days": pair_days_report(a.env.config().pair_days, days, a.hs_sim_minutes),
    })
}

/// HS Table 2's cells: per priority, the finished patients per day and their mean ledger by
/// impairment, and the gap (mean ledger of non-impaired minus impaired, null without both).
fn by_priority(stats: &[HsDayStats]) -> serde_json::Value {
    let mut o = Outcomes::new(1);
    for s in stats {
        o.add(0, s);
    }
    let days = (stats.len() as f64).max(1.0);
    let mut out = serde_json::Map::new();
    for (p, pri) in PRIORITY_NAMES.iter().enumerate() {
        let mut finished = serde_json::Map::new();
        let mut ledger = serde_json::Map::new();
        for (i, imp) in IMPAIRMENT_NAMES.iter().enumerate() {
            finished.insert(imp.to_string(), (o.finished[i][p] / days).into());
            ledger.insert(imp.to_string(), serde_json::json!(o.mean(&[i], &[p])));
        }
        out.insert(
            pri.to_string(),
            serde_json::json!({
                "finished_per_day": finished,
                "ledger_mean": ledger,
                "gap": o.gap(Some(p)),
            }),
        );
    }
    out.into()
}

/// How the counterfactual pairs' days ended: the mode, and over every day played (factual and
/// twin) the days cut short by their twin's end and the mean minute they stopped at.
fn pair_days_report(
    mode: PairDays,
    days: &[(usize, HsDayStats)],
    sim_minutes: u16,
) -> serde_json::Value {
    let cut: Vec<f64> = days
        .iter()
        .filter(|(_, s)| s.end_minute < sim_minutes)
        .map(|(_, s)| f64::from(s.end_minute))
        .collect();
    let mode = match mode {
        PairDays::Full => "full",
        PairDays::EitherEnds => "either_ends",
    };
    serde_json::json!({
        "mode": mode,
        "days_played": days.len(),
        "days_cut_short": cut.len(),
        "cut_short_end_minute_mean": (!cut.is_empty()).then(|| cut.iter().sum::<f64>() / cut.len() as f64),
    })
}

/// Where the evaluated days' arrival peaks came from, and each day's `[start, end)` intervals
/// in the order the days were kept (an empty interval, start >= end, is no peak).
fn arrivals_report(source: ArrivalPeaks, stats: &[HsDayStats]) -> serde_json::Value {
    let source = match source {
        ArrivalPeaks::SingleRandom => "single_random",
        ArrivalPeaks::Curriculum(_) => "curriculum",
        ArrivalPeaks::FreshTemplate => "fresh_template",
    };
    let peaks: Vec<_> = stats.iter().map(|s| s.peaks.peaks).collect();
    serde_json::json!({ "source": source, "peaks_by_day": peaks })
}

/// Σ numerator / Σ count over the days (0 without a sample): a pooled mean.
fn pooled(
    stats: &[HsDayStats],
    sum: &dyn Fn(&HsDayStats) -> f64,
    count: &dyn Fn(&HsDayStats) -> u32,
) -> f64 {
    let n: u64 = stats.iter().map(|s| u64::from(count(s))).sum();
    let total: f64 = stats.iter().map(sum).sum();
    if n == 0 { 0.0 } else { total / n as f64 }
}

/// The ratios as the reference's test scripts and tables average them: each day's own mean
/// (a day without a sample counts 0, as their `np.mean(x) if x else 0.0`), then the mean over
/// the days. Beside the pooled means above, which weight a day by its sample count.
fn per_day_means(stats: &[HsDayStats]) -> serde_json::Value {
    let ratio = |num: f64, n: u32| if n == 0 { 0.0 } else { num / f64::from(n) };
    let over_days = |f: &dyn Fn(&HsDayStats) -> f64| {
        if stats.is_empty() {
            0.0
        } else {
            stats.iter().map(f).sum::<f64>() / stats.len() as f64
        }
    };
    let routed = |s: &HsDayStats| s.routing_decisions.iter().sum::<u32>();
    let outcome = |k: usize| over_days(&|s| ratio(f64::from(s.routing_decisions[k]), routed(s)));
    serde_json::json!({
        "escort_wait_mean": over_days(&|s| ratio(s.escort_wait_sum, s.escort_waits)),
        "escort_travel_mean": over_days(&|s| {
            ratio(s.escort_travel_sum.iter().sum(), s.escort_travels.iter().sum())
        }),
        "ward_wait_mean": over_days(&|s| ratio(s.ward_wait_sum, s.ward_waits)),
        "routing_outcome_fraction": {
            "perfect": outcome(0),
            "backup": outcome(1),
            "wrong": outcome(2),
        },
    })
}

#[cfg(test)]
mod tests {
    //! HS's GAE: two interleaved decision sequences give, row for row, the advantages of the
    //! CPU twin `cpu::gae` run on each sequence alone (done masks and bootstrap included), and
    //! the ragged store layout the trainer uses (`gae_ragged`, the k-th decision of instance i at
    //! row k·N + i) computes exactly those sequences.
    use fairground_shaders::layout::GaeParams;

    /// "No next row" in [`Sequences::next`].
    const NONE: u32 = u32::MAX;

    /// The definition of HS's GAE, on rows in round order. Interleaved decision sequences: row `k`'s successor in its own sequence is `next[k]`
    /// (greater than `k`, or [`NONE`]); `dones[k]` ends the sequence after row `k` (value 0
    /// follows); a row without successor and not done bootstraps from `boot[k]`.
    struct Sequences<'a> {
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
        fn gae(&self, gamma: f32, lambda: f32, adv: &mut [f32], ret: &mut [f32]) {
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

    #[test]
    fn per_day_means_weight_days_equally_where_pooled_means_weight_samples() {
        // Day A: 1 escort waiting 10 min, 3 travels of 2 min, routing 1 perfect of 1.
        // Day B: 3 escorts waiting 2 min each, no travel, routing 1 perfect, 1 backup, 2 wrong.
        use fairground_kernel::hs::HsDayStats;
        let a = HsDayStats {
            escort_wait_sum: 10.0,
            escort_waits: 1,
            escort_travel_sum: [4.0, 2.0],
            escort_travels: [2, 1],
            routing_decisions: [1, 0, 0],
            ..HsDayStats::default()
        };
        let b = HsDayStats {
            escort_wait_sum: 6.0,
            escort_waits: 3,
            routing_decisions: [1, 1, 2],
            empty_dispatch_cap_triggers: 2,
            ..HsDayStats::default()
        };
        let days = [a, b];
        // Pooled: 16 / 4 = 4 min; per day: (10 + 2) / 2 = 6.
        let w = super::pooled(&days, &|s| s.escort_wait_sum, &|s| s.escort_waits);
        assert_eq!(w, 4.0);
        let d = super::per_day_means(&days);
        assert_eq!(d["escort_wait_mean"], 6.0);
        // Travel: pooled 6 / 3 = 2; per day (2 + 0) / 2 = 1 (a day without a sample counts 0).
        let t = super::pooled(&days, &|s| s.escort_travel_sum.iter().sum(), &|s| {
            s.escort_travels.iter().sum()
        });
        assert_eq!(t, 2.0);
        assert_eq!(d["escort_travel_mean"], 1.0);
        // Perfect: pooled 2 / 5 = 0.4; per day (1 + 1/4) / 2 = 0.625.
        assert_eq!(d["routing_outcome_fraction"]["perfect"], 0.625);
        assert_eq!(d["routing_outcome_fraction"]["wrong"], 0.25);
        assert_eq!(d["ward_wait_mean"], 0.0);
    }
}
