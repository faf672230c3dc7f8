//! [`AhAdapter`]: Allelopathic Harvest behind the environment seam.
//!
//! Two networks, one per group (0 = non-sensitive, 1 = sensitive; spec §3.1: parameters shared
//! by the players of a group, none across groups). A slot is one agent of one instance; a
//! counterfactual run (`fairness = "cf"`) steps a twin world ([`AhEnv::twin`]: every agent's
//! sensitive attribute flipped, common random numbers) in lock-step, its slots after the
//! factual world's. Groups and berry preferences come with every step's output, since the
//! sensitive subset is redrawn every episode; a slot changes network only at a reset.
//!
//! The rollout's metrics describe the factual world: reward per agent-step, the per-agent
//! return by group, the episodes finished, and the disparities (`dp`, `csp` per berry
//! preference, and with a twin `cf`).

pub mod fair;

use crate::common::{ActMode, EnvUse, Seeds};
use crate::config::{Fairness, TrainConfig};
use crate::env::{EnvAdapter, RoundOut};
use crate::error::TrainError;
use crate::metrics::{FairMetrics, Welfare, csp_value, mean_welfare};
use crate::net::{NetShape, StoreLayout};
use fair::{FairCells, cell_gaps};
use fairground_kernel::ah::{ACTIONS, AhEnv, AhParams, AhSnapshot, OBS_DIM, StepOut, action};
use fairground_kernel::pool::WorkerPool;
use fairground_kernel::rng::{Purpose, Stream, derive_seed};

/// The path that derives the reference worlds' world-1 seed from the run's environment seed.
const WORLD1_SEED_TAG: u64 = 0x5731;

/// Group networks (not the kernel's four reward cells).
pub const GROUP_NETS: usize = 2;
pub const GROUP_NAMES: [&str; GROUP_NETS] = ["non_sensitive", "sensitive"];

/// The game the config describes.
pub fn ah_params(cfg: &TrainConfig) -> AhParams {
    let mut p = AhParams::new(cfg.profile);
    p.episode_steps = cfg.ah.episode_steps;
    p.flags.moves_never_succeed = cfg.ah.moves_never_succeed;
    p
}

/// `{"non_sensitive": v[0], "sensitive": v[1]}`.
pub fn by_group(v: [f64; GROUP_NETS]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, x) in GROUP_NAMES.iter().zip(v) {
        m.insert(name.to_string(), serde_json::json!(x));
    }
    serde_json::Value::Object(m)
}

/// `ah_action_misalignment` (spec §1.7, a [REPRO] flag): per instance (`agents` slots each),
/// the actions sampled for the non-sensitive players (`groups` 0) in player order, then those
/// for the sensitive ones, written to players 0, 1, … in order. `own[slot]` is the action
/// sampled for `slot`'s own observation.
pub fn concat_group_actions(groups: &[u8], own: &[u8], agents: usize, out: &mut [u8]) {
    for ((g, o), dst) in groups
        .chunks_exact(agents)
        .zip(own.chunks_exact(agents))
        .zip(out.chunks_exact_mut(agents))
    {
        let mut k = 0;
        for grp in 0..GROUP_NETS as u8 {
            for (&gi, &a) in g.iter().zip(o) {
                if gi == grp {
                    dst[k] = a;
                    k += 1;
                }
            }
        }
    }
}

pub use crate::metrics::EpisodeTotals;

/// What a checkpoint keeps of the game (the sidecar's `env` and `twin` fields).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AhState {
    pub env: AhSnapshot,
    /// The counterfactual twin world (runs with `fairness = "cf"`).
    #[serde(default)]
    pub twin: Option<AhSnapshot>,
}

/// The rollout's numbers in a metrics line.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AhMetrics {
    pub agent_steps: u64,
    pub mean_reward_per_agent_step: f64,
    /// Per group: the mean over its agents of the reward summed over the rollout.
    pub return_by_group: serde_json::Value,
    pub episodes_completed: u32,
    /// Per group: the mean per-agent return of the episodes completed in the rollout.
    pub episode_return_by_group: serde_json::Value,
    #[serde(flatten)]
    pub fair: FairMetrics,
}

/// This rollout's tallies of the factual world (and per slot of both worlds).
#[derive(Clone, Debug, Default)]
struct Tally {
    rounds: u32,
    reward: [f64; GROUP_NETS],
    rows: [u64; GROUP_NETS],
    episodes: u32,
    episode_sums: [f64; GROUP_NETS],
    /// Reward sums by (group, preference) cell of the factual world.
    csp: crate::env::fairness::CellSums,
    /// Reward sums per slot of both worlds.
    per_slot: Vec<f64>,
}

/// Allelopathic Harvest for the trainer.
pub struct AhAdapter {
    env: AhEnv,
    twin: Option<AhEnv>,
    shapes: Vec<NetShape>,
    rollout_steps: u32,
    episode_steps: u32,
    /// `ah_action_misalignment` ([REPRO], the reference profile): see [`concat_group_actions`].
    misaligned: bool,
    /// The round's actions are the baseline's uniform random ones (never misaligned).
    random_round: bool,
    obs: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<u8>,
    actions: Vec<u8>,
    own_actions: Vec<u8>,
    /// Per slot, the group (1 sensitive) and berry preference of its next decision; the step
    /// writes the following ones into `next_*` (swapped in after the step's tallies).
    groups: Vec<u8>,
    prefs: Vec<u8>,
    next_groups: Vec<u8>,
    next_prefs: Vec<u8>,
    tally: Tally,
    /// Per factual instance, the actions chosen this episode by group (copied into its
    /// `EpisodeTotals` when it ends; not part of a checkpoint, since only evaluation, which
    /// starts episodes afresh, reports them).
    episode_actions: Vec<[[u32; ACTIONS as usize]; 2]>,
    /// Episodes finished by the last step (factual world, instance order).
    finished: Vec<EpisodeTotals>,
    random: Stream,
    /// `ah.cf_reference_worlds`: the second world is the all-sensitive one, not the twin.
    reference_worlds: bool,
}

impl AhAdapter {
    pub fn new(cfg: &TrainConfig, env_use: EnvUse) -> Result<Self, TrainError> {
        let seeds = Seeds::derive(cfg.seed, &[], env_use, GROUP_NETS);
        let cf = cfg.fair.fairness == Fairness::Cf;
        let mut params = ah_params(cfg);
        // Every test game from one seed (`eval --one-layout`, the reference's CF test).
        params.one_layout = cf && env_use == EnvUse::Eval && cfg.ah.cf_test_one_layout;
        let reference_worlds = cf && cfg.ah.cf_reference_worlds;
        if reference_worlds {
            // World 0 all able (played by network 0, since every agent is of group 0); world 1
            // all sensitive: the all-able world's twin (network 1's).
            params.sensitive_fraction = 0.0;
        }
        let n = cfg.instances as usize;
        let env = AhEnv::new(params.clone(), n, seeds.env)?;
        let twin = match (cf, reference_worlds && !params.one_layout) {
            (false, _) => None,
            // The reference's worlds are built apart, so their layouts are independent.
            (true, true) => {
                Some(AhEnv::new(params, n, derive_seed(seeds.env, &[WORLD1_SEED_TAG]))?.twin())
            }
            (true, false) => Some(env.twin()),
        };
        let worlds = 1 + usize::from(twin.is_some());
        let slots = worlds * env.instances() * env.agents();
        let shape = |name| NetShape {
            name,
            obs_width: OBS_DIM,
            action_components: vec![ACTIONS],
            layout: StoreLayout::Dense,
        };
        Ok(Self {
            shapes: GROUP_NAMES.iter().map(|&n| shape(n)).collect(),
            rollout_steps: cfg.rollout_steps,
            episode_steps: cfg.ah.episode_steps,
            misaligned: cfg.ah.action_misalignment,
            random_round: false,
            obs: vec![0.0; worlds * env.obs_len()],
            rewards: vec![0.0; slots],
            dones: vec![0; worlds * env.instances()],
            actions: vec![0; slots],
            own_actions: vec![0; slots],
            groups: vec![0; slots],
            prefs: vec![0; slots],
            next_groups: vec![0; slots],
            next_prefs: vec![0; slots],
            tally: Tally::default(),
            episode_actions: vec![[[0; ACTIONS as usize]; 2]; n],
            finished: Vec::new(),
            random: Stream::new(env.seed(), Purpose::RandomActions, &[]),
            env,
            twin,
            reference_worlds,
        })
    }

    pub fn env(&self) -> &AhEnv {
        &self.env
    }

    /// The instance of slot block `b` (blocks of `agents()` slots: the factual world's
    /// instances, then the twin world's).
    pub fn block_instance(&self, b: usize) -> fairground_kernel::ah::InstanceRef<'_> {
        let n = self.env.instances();
        match (&self.twin, b >= n) {
            (Some(t), true) => t.instance(b - n),
            _ => self.env.instance(b),
        }
    }

    pub fn agents(&self) -> usize {
        self.env.agents()
    }

    /// Slots of the factual world (the twin's follow).
    pub fn world_slots(&self) -> usize {
        self.env.instances() * self.env.agents()
    }

    /// Every slot's current observation, group and berry preference (0 red, 1 blue).
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }
    pub fn groups(&self) -> &[u8] {
        &self.groups
    }
    pub fn prefs(&self) -> &[u8] {
        &self.prefs
    }

    /// The actions the environment received at the last step (after any misalignment).
    pub fn applied_actions(&self) -> &[u8] {
        &self.actions
    }

    /// The fairness cells of a notion in this game.
    pub fn fair_cells(&self, fairness: Fairness) -> FairCells {
        FairCells {
            fairness,
            world_slots: self.world_slots() as u32,
        }
    }

    fn observe_all(&mut self) {
        let (half, slots) = (self.env.obs_len(), self.world_slots());
        self.env.observe(&mut self.obs[..half]);
        self.env
            .observe_groups(&mut self.groups[..slots], &mut self.prefs[..slots]);
        if let Some(twin) = &mut self.twin {
            twin.observe(&mut self.obs[half..]);
            twin.observe_groups(&mut self.groups[slots..], &mut self.prefs[slots..]);
        }
    }

    fn kernel_step(&mut self, pool: &WorkerPool) {
        let (n, slots, obs) = (self.env.instances(), self.world_slots(), self.env.obs_len());
        let random = std::mem::take(&mut self.random_round);
        if self.misaligned && !random {
            concat_group_actions(
                &self.groups,
                &self.own_actions,
                self.env.agents(),
                &mut self.actions,
            );
        } else {
            self.actions.copy_from_slice(&self.own_actions);
        }
        self.env.step(
            &self.actions[..slots],
            StepOut {
                obs: &mut self.obs[..obs],
                rewards: &mut self.rewards[..slots],
                dones: &mut self.dones[..n],
                groups: &mut self.next_groups[..slots],
                prefs: &mut self.next_prefs[..slots],
            },
            pool,
        );
        if let Some(twin) = &mut self.twin {
            twin.step(
                &self.actions[slots..],
                StepOut {
                    obs: &mut self.obs[obs..],
                    rewards: &mut self.rewards[slots..],
                    dones: &mut self.dones[n..],
                    groups: &mut self.next_groups[slots..],
                    prefs: &mut self.next_prefs[slots..],
                },
                pool,
            );
        }
    }

    /// The finished episode of factual instance `i` (`groups` and `prefs`: the episode's).
    fn episode_of(&self, i: usize, groups: &[u8], prefs: &[u8]) -> EpisodeTotals {
        let agents = self.env.agents();
        let mut counts = [0u32; 4];
        for slot in i * agents..(i + 1) * agents {
            counts[2 * usize::from(groups[slot]) + usize::from(prefs[slot])] += 1;
        }
        let inst = self.env.instance(i);
        let cf = self.twin.as_ref().map(|twin| {
            let twin = twin.instance(i);
            let (a, b) = (inst.last_episode_returns(), twin.last_episode_returns());
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum::<f64>()
                / agents as f64
        });
        let world_totals = self.twin.as_ref().map(|twin| {
            let total = |r: &[f32]| r.iter().map(|&x| f64::from(x)).sum::<f64>();
            [
                total(inst.last_episode_returns()),
                total(twin.instance(i).last_episode_returns()),
            ]
        });
        EpisodeTotals {
            totals: inst.last_episode_group_returns(),
            counts,
            returns: inst.last_episode_returns().to_vec(),
            cf,
            world_totals,
            actions: [[0; ACTIONS as usize]; 2],
        }
    }

    /// The rollout's disparities in the factual world: dp = per-agent return over the rollout
    /// of the non-sensitive group minus the sensitive group; csp per berry preference; cf (with
    /// a twin) the mean over agents of |return − twin's return|.
    fn measure(&self) -> FairMetrics {
        let t = &self.tally;
        let csp_cells = self.fair_cells(Fairness::Csp);
        let mut dp_sums = crate::env::fairness::CellSums::new(2);
        for c in 0..4 {
            dp_sums.reward[c / 2] += t.csp.reward[c];
            dp_sums.count[c / 2] += t.csp.count[c];
        }
        let dp_cells = self.fair_cells(Fairness::Dp);
        let dp = cell_gaps(dp_cells, &dp_sums, self.rollout_steps)[0].0;
        let csp: Vec<(String, Option<f64>)> = csp_cells
            .comparisons()
            .into_iter()
            .zip(cell_gaps(csp_cells, &t.csp, self.rollout_steps))
            .map(|((level, ..), (retro, _))| (level, retro))
            .collect();
        let levels: Vec<(&str, Option<f64>)> = csp.iter().map(|(l, g)| (l.as_str(), *g)).collect();
        let world = self.world_slots();
        let cf = self.twin.is_some().then(|| {
            (0..world)
                .map(|s| (t.per_slot[s] - t.per_slot[world + s]).abs())
                .sum::<f64>()
                / world as f64
        });
        FairMetrics {
            dp,
            csp: csp_value(&levels),
            cf,
        }
    }
}

impl EnvAdapter for AhAdapter {
    type Snapshot = AhState;
    type Metrics = AhMetrics;
    type Played = Vec<EpisodeTotals>;

    fn nets(&self) -> &[NetShape] {
        &self.shapes
    }

    fn slots(&self) -> usize {
        self.actions.len()
    }

    fn stream_tag(&self) -> &'static [u64] {
        &[]
    }

    fn instances(&self) -> usize {
        self.env.instances() * (1 + usize::from(self.twin.is_some()))
    }

    fn begin_rollout(&mut self) {
        self.observe_all();
        self.tally = Tally {
            csp: crate::env::fairness::CellSums::new(4),
            per_slot: vec![0.0; self.slots()],
            ..Tally::default()
        };
    }

    fn gather(&self, net: usize, slots: &mut Vec<u32>, obs: &mut Vec<f32>) {
        slots.clear();
        obs.clear();
        for (slot, &grp) in self.groups.iter().enumerate() {
            if usize::from(grp) == net {
                slots.push(slot as u32);
                obs.extend_from_slice(&self.obs[slot * OBS_DIM..(slot + 1) * OBS_DIM]);
            }
        }
    }

    fn scatter(&mut self, _net: usize, slots: &[u32], actions: &[u32]) {
        for (&slot, &a) in slots.iter().zip(actions) {
            self.own_actions[slot as usize] = a as u8;
        }
    }

    fn step(&mut self, out: &mut RoundOut, pool: &WorkerPool) {
        self.kernel_step(pool);
        let agents = self.env.agents();
        let world = self.world_slots();
        let t = &mut self.tally;
        t.rounds += 1;
        for (slot, &r) in self.rewards.iter().enumerate() {
            out.reward[slot] = r;
            out.done[slot] = self.dones[slot / agents] != 0;
            t.per_slot[slot] += f64::from(r);
            if slot < world {
                let g = usize::from(self.groups[slot]);
                t.reward[g] += f64::from(r);
                t.rows[g] += 1;
                let c = 2 * g + usize::from(self.prefs[slot]);
                t.csp.reward[c] += f64::from(r);
                t.csp.count[c] += 1;
                self.episode_actions[slot / agents][g][usize::from(self.actions[slot])] += 1;
            }
        }
        self.finished.clear();
        for i in 0..self.env.instances() {
            if self.dones[i] != 0 {
                let r = self.env.instance(i).last_episode_group_returns();
                let t = &mut self.tally;
                t.episodes += 1;
                t.episode_sums[0] += f64::from(r[0]) + f64::from(r[1]);
                t.episode_sums[1] += f64::from(r[2]) + f64::from(r[3]);
                let mut e = self.episode_of(i, &self.groups, &self.prefs);
                e.actions = std::mem::take(&mut self.episode_actions[i]);
                self.finished.push(e);
            }
        }
        // The groups of the next decisions, as the kernel wrote them.
        std::mem::swap(&mut self.groups, &mut self.next_groups);
        std::mem::swap(&mut self.prefs, &mut self.next_prefs);
    }

    fn end_rollout(&mut self, rounds: u32, env_steps: u64) -> AhMetrics {
        let t = &self.tally;
        let steps = f64::from(rounds);
        let sensitive = f64::from(self.env.params().sensitive_agents());
        let group_agents = [self.agents() as f64 - sensitive, sensitive];
        let total_rows = self.world_slots() as f64 * steps;
        let episodes = t.episodes;
        AhMetrics {
            agent_steps: env_steps * self.agents() as u64,
            mean_reward_per_agent_step: t.reward.iter().sum::<f64>() / total_rows,
            return_by_group: by_group(std::array::from_fn(|g| {
                t.reward[g] * steps / (t.rows[g].max(1) as f64)
            })),
            episodes_completed: episodes,
            episode_return_by_group: if episodes > 0 {
                by_group(std::array::from_fn(|g| {
                    t.episode_sums[g] / (f64::from(episodes) * group_agents[g].max(1.0))
                }))
            } else {
                serde_json::Value::Null
            },
            fair: self.measure(),
        }
    }

    fn snapshot(&self) -> AhState {
        AhState {
            env: self.env.snapshot(),
            twin: self.twin.as_ref().map(AhEnv::snapshot),
        }
    }

    fn restore(&mut self, s: AhState) -> Result<(), TrainError> {
        if s.twin.is_some() != self.twin.is_some() {
            return Err(TrainError::Checkpoint {
                why: "the checkpoint's twin world does not match the config's fairness".into(),
            });
        }
        self.env = AhEnv::restore(s.env)?;
        if let Some(t) = s.twin {
            self.twin = Some(AhEnv::restore(t)?);
        }
        Ok(())
    }

    fn replay_view(&self) -> crate::env::ReplayView<'_> {
        crate::env::ReplayView::Ah {
            env: &self.env,
            actions: &self.actions[..self.world_slots()],
        }
    }

    fn random_actions(&mut self) {
        // The twin world (if any) replays the factual world's random actions: common random
        // numbers, so that `cf` measures the attribute alone.
        let world = self.world_slots();
        self.random_round = true;
        for a in &mut self.own_actions[..world] {
            *a = self.random.below(ACTIONS) as u8;
        }
        if self.own_actions.len() > world {
            self.own_actions.copy_within(..world, world);
        }
    }

    fn played(&self, episodes: usize) -> Vec<EpisodeTotals> {
        Vec::with_capacity(episodes)
    }

    fn played_count(&self, played: &Vec<EpisodeTotals>) -> usize {
        played.len()
    }

    fn collect(&mut self, episodes: usize, played: &mut Vec<EpisodeTotals>) -> bool {
        for e in self.finished.drain(..) {
            if played.len() < episodes {
                played.push(e);
            }
        }
        played.len() >= episodes
    }

    fn eval_report(&self, played: &Vec<EpisodeTotals>, _mode: ActMode) -> serde_json::Value {
        eval_report(self, played)
    }

    fn factual(&self, slot: u32) -> bool {
        (slot as usize) < self.world_slots()
    }
}

/// `eval.json`'s AH numbers from the episodes played (spec §6; metrics.rs for the welfare
/// definitions).
fn eval_report(a: &AhAdapter, played: &[EpisodeTotals]) -> serde_json::Value {
    let params = a.env.params();
    let sensitive = f64::from(params.sensitive_agents());
    let group_agents = [f64::from(params.agents) - sensitive, sensitive];
    let e = played.len() as f64;
    let fair = crate::metrics::ah_eval_disparities(played);
    let cf: Vec<f64> = played.iter().filter_map(|e| e.cf).collect();
    let cf = (!cf.is_empty()).then(|| cf.iter().sum::<f64>() / cf.len() as f64);
    let totals: Vec<[f32; 4]> = played.iter().map(|e| e.totals).collect();
    let mean = |f: &dyn Fn(&[f32; 4]) -> f64| totals.iter().map(f).sum::<f64>() / e;
    let total = mean(&|t| t.iter().map(|&x| f64::from(x)).sum());
    let ns = mean(&|t| f64::from(t[0]) + f64::from(t[1]));
    let s = mean(&|t| f64::from(t[2]) + f64::from(t[3]));
    let group_vectors: Vec<Vec<f64>> = totals
        .iter()
        .map(|t| t.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let player_vectors: Vec<Vec<f64>> = played
        .iter()
        .map(|e| e.returns.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let cf_worlds = cf_worlds_report(a, played);
    // Gini and Jain on [NSr, NSb, Sr, Sb] per episode (spec §6), then averaged.
    let groups: Welfare = mean_welfare(&group_vectors);
    serde_json::json!({
        "episodes": played.len(),
        "episode_steps": a.episode_steps,
        // What a table of this profile reports as DP and CSP: the reference's are differences
        // of group totals (spec §6, §9 item 29), the clean profile's per-agent means.
        "table_keys": if params.profile == fairground_kernel::Profile::Reference {
            ["dp_total", "csp_total"]
        } else {
            ["dp", "csp"]
        },
        "mean_reward_per_agent_step":
            total / (f64::from(params.agents) * f64::from(a.episode_steps)),
        "return_by_group": by_group([ns / group_agents[0], s / group_agents[1]]),
        "group_totals": {
            "NSr": mean(&|t| f64::from(t[0])),
            "NSb": mean(&|t| f64::from(t[1])),
            "Sr": mean(&|t| f64::from(t[2])),
            "Sb": mean(&|t| f64::from(t[3])),
        },
        "demographic_disparity": ns - s,
        "demographic_disparity_normalised": (ns - s) / total.max(1.0),
        "dp": fair["dp"],
        "dp_abs": fair["dp_abs"],
        "csp": fair["csp"],
        "dp_total": fair["dp_total"],
        "dp_total_abs": fair["dp_total_abs"],
        "csp_total": fair["csp_total"],
        "cf": cf,
        "cf_total": cf_worlds["cf_total"],
        "cf_total_abs": cf_worlds["cf_total_abs"],
        "cf_worlds": cf_worlds["worlds"],
        "gini": groups.gini,
        "jain": groups.jain,
        "welfare": {
            "groups": groups,
            "players": mean_welfare(&player_vectors),
        },
        "action_profile": action_profile(played),
        "per_episode": per_episode(a, played),
    })
}

/// Each episode's own disparities and reward, in the order played: what a protocol needs to
/// measure the evaluation's noise (the spread over episodes) against the spread over seeds.
fn per_episode(a: &AhAdapter, played: &[EpisodeTotals]) -> serde_json::Value {
    let agents = f64::from(a.env.params().agents);
    let steps = f64::from(a.episode_steps);
    played
        .iter()
        .map(|ep| {
            let fair = crate::metrics::ah_eval_disparities(std::slice::from_ref(ep));
            let total: f64 = ep.totals.iter().map(|&x| f64::from(x)).sum();
            serde_json::json!({
                "dp": fair["dp"],
                "dp_total": fair["dp_total"],
                "csp_sum": fair["csp"]["sum"],
                "cf": ep.cf,
                "reward_per_agent_step": total / (agents * steps),
            })
        })
        .collect::<Vec<_>>()
        .into()
}

/// Per group, the fraction of its agents' turns spent on each action over the episodes played
/// (chosen actions; in the reference profile moves are chosen but never executed).
fn action_profile(played: &[EpisodeTotals]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (g, name) in GROUP_NAMES.iter().enumerate() {
        let mut counts = [0u64; ACTIONS as usize];
        for e in played {
            for (c, &x) in counts.iter_mut().zip(&e.actions[g]) {
                *c += u64::from(x);
            }
        }
        let turns: u64 = counts.iter().sum();
        let fractions: serde_json::Map<String, serde_json::Value> = action::NAMES
            .iter()
            .zip(counts)
            .map(|(n, c)| {
                let f = (turns > 0).then(|| c as f64 / turns as f64);
                (n.to_string(), serde_json::json!(f))
            })
            .collect();
        out.insert(name.to_string(), fractions.into());
    }
    out.into()
}

/// Counterfactual runs: the reference's CF test metric (spec §4.4) beside `cf`: per episode
/// the factual world's total reward minus the counterfactual world's (`cf_total`, its mean;
/// `cf_total_abs`, the mean of its size), and what the worlds were (`twin`: the 50/50 world's
/// attribute-flipped twin; `reference`: all able vs all sensitive, `ah.cf_reference_worlds`)
/// with each world's mean total and whether every game started from one layout. All null
/// without a counterfactual world.
fn cf_worlds_report(a: &AhAdapter, played: &[EpisodeTotals]) -> serde_json::Value {
    let worlds: Vec<[f64; 2]> = played.iter().filter_map(|e| e.world_totals).collect();
    if a.twin.is_none() || worlds.is_empty() {
        return serde_json::json!({ "cf_total": null, "cf_total_abs": null, "worlds": null });
    }
    let e = worlds.len() as f64;
    let mean = |f: &dyn Fn(&[f64; 2]) -> f64| worlds.iter().map(f).sum::<f64>() / e;
    serde_json::json!({
        "cf_total": mean(&|w| w[0] - w[1]),
        "cf_total_abs": mean(&|w| (w[0] - w[1]).abs()),
        "worlds": {
            "kind": if a.reference_worlds { "reference" } else { "twin" },
            "one_layout": a.env.params().one_layout,
            "world_totals": [mean(&|w| w[0]), mean(&|w| w[1])],
        },
    })
}

#[cfg(test)]
mod tests {
    //! The reference's counterfactual worlds (`ah.cf_reference_worlds`): world 0 all able,
    //! world 1 all sensitive, each network playing one whole world; independent layouts in
    //! training, one layout shared by both worlds with `cf_test_one_layout` in evaluation.
    use super::*;
    use crate::config::{Algo, EnvName};
    use fairground_kernel::Profile;

    fn cfg(one_layout: bool) -> TrainConfig {
        let mut c = TrainConfig::defaults_for_algo(EnvName::Ah, Profile::Reference, Algo::Ppo);
        c.fair.fairness = Fairness::Cf;
        c.ah.cf_reference_worlds = true;
        c.ah.cf_test_one_layout = one_layout;
        c.instances = 2;
        c
    }

    fn cells(a: &AhAdapter, b: usize) -> Vec<(u32, u32)> {
        let inst = a.block_instance(b);
        (0..a.agents())
            .map(|k| (inst.agent(k).x, inst.agent(k).y))
            .collect()
    }

    #[test]
    fn each_network_plays_one_whole_world() {
        let mut a = AhAdapter::new(&cfg(false), EnvUse::Train).unwrap();
        a.begin_rollout();
        let world = a.world_slots();
        assert!(
            a.groups()[..world].iter().all(|&g| g == 0),
            "world 0: all able"
        );
        assert!(
            a.groups()[world..].iter().all(|&g| g == 1),
            "world 1: all sensitive"
        );
        let (mut slots, mut obs) = (Vec::new(), Vec::new());
        for net in 0..GROUP_NETS {
            a.gather(net, &mut slots, &mut obs);
            let expected: Vec<u32> = (net * world..(net + 1) * world).map(|s| s as u32).collect();
            assert_eq!(slots, expected, "network {net} acts for all of world {net}");
        }
        // Training layouts are independent (the reference builds its worlds apart).
        for i in 0..2 {
            assert_ne!(cells(&a, i), cells(&a, 2 + i), "instance {i}");
        }
        // The eval option: both worlds (and every game) from one layout.
        let mut e = AhAdapter::new(&cfg(true), EnvUse::Eval).unwrap();
        e.begin_rollout();
        assert_eq!(cells(&e, 0), cells(&e, 2));
        assert_eq!(cells(&e, 0), cells(&e, 1), "every instance the same layout");
        assert!(e.groups()[e.world_slots()..].iter().all(|&g| g == 1));
        // The option changes evaluation only.
        let t = AhAdapter::new(&cfg(true), EnvUse::Train).unwrap();
        assert_ne!(cells(&t, 0), cells(&t, 2));
    }
}
