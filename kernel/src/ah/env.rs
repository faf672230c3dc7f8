//! [`AhEnv`]: N Allelopathic Harvest instances stepped together.

use super::observe::{ObsInputs, write_observations};
use super::params::{AhParams, OBS_DIM, ParamError};
use super::rules::{
    FROZEN_FOR_GOOD, StepPart, World, clear_instance, group_sums, place_bush, reset_instance,
    step_part,
};
use super::state::{AhState, BLUE, BUSH, Dims, EMPTY, GROUPS, NONE, RED};
use super::stats::{AhStats, InstanceStats};
use crate::pool::WorkerPool;
use crate::rng::{Purpose, Stream};
use serde::{Deserialize, Serialize};

/// Caller-owned outputs of one step, laid out instance-major:
/// `obs[(i * agents + a) * OBS_DIM + f]`, `rewards[i * agents + a]`, `dones[i]`.
pub struct StepOut<'a> {
    pub obs: &'a mut [f32],
    pub rewards: &'a mut [f32],
    pub dones: &'a mut [u8],
    /// Per agent (`instance * agents + agent`) after the step: 1 sensitive, 0 not; and its
    /// berry preference (0 red, 1 blue). They change only at a reset, so a trainer that routes
    /// agents by group reads them here instead of polling the state.
    pub groups: &'a mut [u8],
    pub prefs: &'a mut [u8],
}

/// N instances of one AH game. All memory is allocated here; [`AhEnv::step`] allocates nothing.
#[derive(Clone, Debug)]
pub struct AhEnv {
    params: AhParams,
    seed: u64,
    instances: usize,
    world: World,
    dims: Dims,
    state: AhState,
}

/// Everything needed to continue an environment exactly where it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AhSnapshot {
    pub params: AhParams,
    pub seed: u64,
    pub instances: u64,
    pub world: World,
    pub state: AhState,
}

impl AhEnv {
    /// `instances` factual instances; instance `i` draws its episodes from the stream
    /// `(seed, Episodes, i)`, so instance `i` is the same game whatever `instances` is.
    pub fn new(params: AhParams, instances: usize, seed: u64) -> Result<Self, ParamError> {
        Self::with_world(params, instances, seed, World::Factual)
    }

    /// Like [`AhEnv::new`], choosing the factual or the counterfactual world.
    pub fn with_world(
        params: AhParams,
        instances: usize,
        seed: u64,
        world: World,
    ) -> Result<Self, ParamError> {
        params.validate()?;
        if instances == 0 {
            return Err(ParamError {
                field: "instances",
                message: "must be at least 1, got 0".into(),
            });
        }
        let dims = Dims {
            agents: params.agents as usize,
            cells: params.padded_cells(),
            rows: params.height as usize,
        };
        let mut state = AhState::zeroed(dims, instances);
        let one_layout = params.one_layout;
        for (i, rng) in state.episode_rng.iter_mut().enumerate() {
            let stream = if one_layout { 0 } else { i as u64 };
            *rng = Stream::new(seed, Purpose::Episodes, &[stream]);
        }
        let mut env = Self {
            params,
            seed,
            instances,
            world,
            dims,
            state,
        };
        let mut view = env.state.view(dims, instances);
        for i in 0..instances {
            reset_instance(&env.params, &mut view.inst(i), world);
        }
        Ok(env)
    }

    /// The counterfactual twin of this environment as constructed: same parameters, seed and
    /// instances, every agent's sensitive attribute flipped, and the same random streams
    /// (common random numbers). Stepped in lock-step with the same actions from construction,
    /// the two worlds differ only through the attribute.
    pub fn twin(&self) -> Self {
        let world = self.world.flipped();
        Self::with_world(self.params.clone(), self.instances, self.seed, world)
            .expect("parameters were already validated")
    }

    /// Advance every instance by one step. `actions[i * agents + a]` is agent `a`'s action in
    /// instance `i` (`0..9`). Instances whose episode ends this step report `dones[i] = 1` with
    /// the final step's rewards, and are reset: their observations are the first of the next
    /// episode (AH episodes end only by the step limit, and the reference bootstraps with 0).
    pub fn step(&mut self, actions: &[u8], out: StepOut<'_>, pool: &WorkerPool) {
        self.step_into(actions, out, pool, &mut []);
    }

    /// [`Self::step`], also counting what happened inside the step into `stats` (one counter
    /// set per instance, [`AhStats::new`]). The trajectory is the same as `step`'s.
    pub fn step_recording(
        &mut self,
        actions: &[u8],
        out: StepOut<'_>,
        pool: &WorkerPool,
        stats: &mut AhStats,
    ) {
        assert_eq!(
            stats.instances.len(),
            self.instances,
            "stats: expected one counter set per instance"
        );
        self.step_into(actions, out, pool, &mut stats.instances);
    }

    /// Count every instance's episode in progress (if it has begun) into `stats` as if it
    /// ended now: its movers so far and its agents frozen now. For a measurement that stops
    /// inside episodes.
    pub fn close_episodes(&self, stats: &mut AhStats) {
        use super::stats::Record;
        for (i, rec) in stats.instances.iter_mut().enumerate() {
            let inst = self.instance(i);
            if inst.step_in_episode() > 0 {
                let frozen = (0..self.dims.agents)
                    .filter(|&a| inst.agent(a).frozen_turns != Some(0))
                    .count();
                rec.episode_end(frozen as u64);
            }
        }
    }

    fn step_into(
        &mut self,
        actions: &[u8],
        out: StepOut<'_>,
        pool: &WorkerPool,
        stats: &mut [InstanceStats],
    ) {
        let n = self.instances;
        let a = self.dims.agents;
        assert_eq!(
            actions.len(),
            n * a,
            "actions: expected instances × agents = {}",
            n * a
        );
        assert_eq!(
            out.obs.len(),
            n * a * OBS_DIM,
            "obs: expected instances × agents × {OBS_DIM}"
        );
        assert_eq!(
            out.rewards.len(),
            n * a,
            "rewards: expected instances × agents"
        );
        assert_eq!(out.dones.len(), n, "dones: expected one per instance");
        assert_eq!(
            out.groups.len(),
            n * a,
            "groups: expected instances × agents"
        );
        assert_eq!(out.prefs.len(), n * a, "prefs: expected instances × agents");
        let part = StepPart {
            state: self.state.view(self.dims, n),
            actions,
            obs: out.obs,
            rewards: out.rewards,
            dones: out.dones,
            groups: out.groups,
            prefs: out.prefs,
            stats,
        };
        let params = &self.params;
        let world = self.world;
        pool.run_split(part, &|part| step_part(params, part, world));
    }

    /// Write the current observations of every instance (e.g. after construction or restore).
    pub fn observe(&self, obs: &mut [f32]) {
        let a = self.dims.agents;
        assert_eq!(
            obs.len(),
            self.instances * a * OBS_DIM,
            "obs: expected instances × agents × {OBS_DIM}"
        );
        for (i, o) in obs.chunks_exact_mut(a * OBS_DIM).enumerate() {
            write_observations(
                &self.params,
                &ObsInputs::from_state(&self.state, self.dims, i),
                o,
            );
        }
    }

    /// Write every agent's group (1 sensitive) and berry preference as [`AhEnv::step`] does
    /// (e.g. after construction or restore).
    pub fn observe_groups(&self, groups: &mut [u8], prefs: &mut [u8]) {
        let n = self.instances * self.dims.agents;
        assert_eq!(groups.len(), n, "groups: expected instances × agents");
        assert_eq!(prefs.len(), n, "prefs: expected instances × agents");
        groups.copy_from_slice(&self.state.agent_sensitive[..n]);
        prefs.copy_from_slice(&self.state.agent_pref[..n]);
    }

    pub fn params(&self) -> &AhParams {
        &self.params
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn world(&self) -> World {
        self.world
    }
    pub fn instances(&self) -> usize {
        self.instances
    }
    pub fn agents(&self) -> usize {
        self.dims.agents
    }
    /// Length of the observation buffer `step` writes.
    pub fn obs_len(&self) -> usize {
        self.instances * self.dims.agents * OBS_DIM
    }

    /// Save the complete state.
    pub fn snapshot(&self) -> AhSnapshot {
        AhSnapshot {
            params: self.params.clone(),
            seed: self.seed,
            instances: self.instances as u64,
            world: self.world,
            state: self.state.clone(),
        }
    }

    /// Continue from a snapshot; stepping it gives exactly what the snapshotted env would have.
    pub fn restore(snapshot: AhSnapshot) -> Result<Self, ParamError> {
        let AhSnapshot {
            params,
            seed,
            instances,
            world,
            state,
        } = snapshot;
        params.validate()?;
        let instances = instances as usize;
        let dims = Dims {
            agents: params.agents as usize,
            cells: params.padded_cells(),
            rows: params.height as usize,
        };
        state
            .check_lengths(dims, instances)
            .map_err(|column| ParamError {
                field: "state",
                message: format!("column {column} does not match the snapshot's parameters"),
            })?;
        Ok(Self {
            params,
            seed,
            instances,
            world,
            dims,
            state,
        })
    }

    /// Replace instance `i`'s current episode with a hand-made layout (tests, tutorials, custom
    /// maps). The episode's clock and returns restart at 0; the instance's random streams are
    /// kept. Panics with a message if an entity is off the grid, two share a cell, or the number
    /// of agents differs from the parameters.
    pub fn set_layout(&mut self, i: usize, agents: &[AgentSpec], bushes: &[BushSpec]) {
        let p = &self.params;
        assert!(
            i < self.instances,
            "instance {i} out of range 0..{}",
            self.instances
        );
        assert_eq!(
            agents.len(),
            self.dims.agents,
            "layout must place exactly params.agents agents"
        );
        assert!(
            bushes.len() <= self.dims.cells - agents.len(),
            "more bushes than free cells"
        );
        let mut view = self.state.view(self.dims, self.instances);
        let mut s = view.inst(i);
        clear_instance(p, &mut s);
        for (a, spec) in agents.iter().enumerate() {
            assert!(
                spec.x < p.width && spec.y < p.height,
                "agent {a} at ({}, {}) is off the grid",
                spec.x,
                spec.y
            );
            let c = p.cell_index(spec.x, spec.y);
            assert_eq!(
                s.cell[c], EMPTY,
                "agent {a}: cell ({}, {}) is taken",
                spec.x, spec.y
            );
            s.cell[c] = a as u8;
            s.agent_x[a] = spec.x as u8;
            s.agent_y[a] = spec.y as u8;
            s.agent_rows[spec.y as usize] |= 1 << spec.x;
            s.agent_sensitive[a] = spec.sensitive as u8;
            assert!(
                spec.pref == RED || spec.pref == BLUE,
                "agent {a}: pref must be 0 (red) or 1 (blue)"
            );
            s.agent_pref[a] = spec.pref;
        }
        for (b, spec) in bushes.iter().enumerate() {
            assert!(
                spec.x < p.width && spec.y < p.height,
                "bush {b} at ({}, {}) is off the grid",
                spec.x,
                spec.y
            );
            assert!(
                spec.colour <= NONE,
                "bush {b}: colour must be 0 (red), 1 (blue) or 2 (none)"
            );
            let c = p.cell_index(spec.x, spec.y);
            assert_eq!(
                s.cell[c], EMPTY,
                "bush {b}: cell ({}, {}) is taken",
                spec.x, spec.y
            );
            place_bush(p, &mut s, c, spec.colour, p.lifespan_steps - 1, 0);
            if spec.ripe {
                s.bush_ripe_at[c] = 0;
            }
        }
    }

    /// Read-only view of instance `i`.
    pub fn instance(&self, i: usize) -> InstanceRef<'_> {
        assert!(
            i < self.instances,
            "instance {i} out of range 0..{}",
            self.instances
        );
        InstanceRef { env: self, i }
    }
}

/// An agent in a hand-made layout ([`AhEnv::set_layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentSpec {
    pub x: u32,
    pub y: u32,
    pub sensitive: bool,
    /// 0 red, 1 blue.
    pub pref: u8,
}

/// A bush in a hand-made layout; it dies after step `lifespan_steps - 1` like an initial bush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BushSpec {
    pub x: u32,
    pub y: u32,
    /// 0 red, 1 blue, 2 none.
    pub colour: u8,
    pub ripe: bool,
}

/// Read-only access to one instance: positions, attributes, bushes and episode bookkeeping.
#[derive(Clone, Copy)]
pub struct InstanceRef<'a> {
    env: &'a AhEnv,
    i: usize,
}

/// A live bush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bush {
    pub x: u32,
    pub y: u32,
    /// 0 red, 1 blue, 2 none (grown when no coloured bush was alive).
    pub colour: u8,
    pub ripe: bool,
}

/// An agent's public state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agent {
    pub x: u32,
    pub y: u32,
    pub sensitive: bool,
    /// Preference colour: 0 red, 1 blue.
    pub pref: u8,
    /// Turns still to sit out (`None` = frozen for the rest of the episode).
    pub frozen_turns: Option<u8>,
    pub last_reward: f32,
    pub episode_return: f32,
}

impl InstanceRef<'_> {
    fn agents_range(&self) -> std::ops::Range<usize> {
        let a = self.env.dims.agents;
        self.i * a..(self.i + 1) * a
    }

    /// Steps taken in the current episode.
    pub fn step_in_episode(&self) -> u32 {
        self.env.state.step[self.i]
    }

    /// Completed episodes.
    pub fn episodes_done(&self) -> u32 {
        self.env.state.episodes_done[self.i]
    }

    pub fn agent(&self, a: usize) -> Agent {
        let s = &self.env.state;
        let k = self.agents_range().start + a;
        assert!(a < self.env.dims.agents);
        let frozen = s.agent_frozen[k];
        Agent {
            x: s.agent_x[k] as u32,
            y: s.agent_y[k] as u32,
            sensitive: s.agent_sensitive[k] == 1,
            pref: s.agent_pref[k],
            frozen_turns: if frozen == FROZEN_FOR_GOOD {
                None
            } else {
                Some(frozen)
            },
            last_reward: s.agent_last_reward[k],
            episode_return: s.agent_return[k],
        }
    }

    /// Live bushes in cell order (`y * width + x`).
    pub fn bushes(&self) -> impl Iterator<Item = Bush> + '_ {
        let c = self.env.dims.cells;
        let p = &self.env.params;
        let s = &self.env.state;
        (self.i * c..(self.i + 1) * c)
            .filter(move |&k| s.cell[k] == BUSH)
            .map(move |k| {
                let (x, y) = p.cell_xy(k % c);
                Bush {
                    x,
                    y,
                    colour: s.bush_colour[k],
                    ripe: s.step[self.i] >= s.bush_ripe_at[k],
                }
            })
    }

    /// What stands on cell (x, y): `None` if empty, `Some(Ok(agent))` or `Some(Err(bush))`.
    pub fn cell(&self, x: u32, y: u32) -> Option<Result<usize, Bush>> {
        let p = &self.env.params;
        assert!(x < p.width && y < p.height);
        let k = self.i * self.env.dims.cells + p.cell_index(x, y);
        let s = &self.env.state;
        match s.cell[k] {
            EMPTY => None,
            BUSH => Some(Err(Bush {
                x,
                y,
                colour: s.bush_colour[k],
                ripe: s.step[self.i] >= s.bush_ripe_at[k],
            })),
            a => Some(Ok(a as usize)),
        }
    }

    /// Live bushes by colour `[red, blue, none]` as the kernel counts them.
    pub fn bush_counts(&self) -> [u16; 3] {
        self.env.state.bush_count[self.i]
    }

    /// Reward sums of the current episode by group `[NSr, NSb, Sr, Sb]`.
    pub fn group_returns(&self) -> [f32; GROUPS] {
        let s = &self.env.state;
        let r = self.agents_range();
        group_sums(
            &s.agent_return[r.clone()],
            &s.agent_sensitive[r.clone()],
            &s.agent_pref[r],
        )
    }

    /// Reward sums of the last completed episode by group `[NSr, NSb, Sr, Sb]`.
    pub fn last_episode_group_returns(&self) -> [f32; GROUPS] {
        self.env.state.last_group_return[self.i]
    }

    /// Per-agent returns of the last completed episode.
    pub fn last_episode_returns(&self) -> &[f32] {
        &self.env.state.agent_last_return[self.agents_range()]
    }

    /// ASCII picture of the grid, one line per row (y = 0 first). Legend: `.` empty;
    /// agents `R`/`B` (red/blue preference), lower case if sensitive, `#` if frozen;
    /// bushes `x`/`o`/`?` unripe red/blue/uncoloured, `X`/`O`/`!` ripe.
    pub fn render(&self) -> String {
        let p = &self.env.params;
        let mut out = String::with_capacity(((p.width + 1) * p.height) as usize);
        for y in 0..p.height {
            for x in 0..p.width {
                let ch = match self.cell(x, y) {
                    None => '.',
                    Some(Ok(a)) => {
                        let ag = self.agent(a);
                        if ag.frozen_turns != Some(0) {
                            '#'
                        } else {
                            match (ag.pref == RED, ag.sensitive) {
                                (true, false) => 'R',
                                (true, true) => 'r',
                                (false, false) => 'B',
                                (false, true) => 'b',
                            }
                        }
                    }
                    Some(Err(b)) => match (b.colour, b.ripe) {
                        (RED, false) => 'x',
                        (RED, true) => 'X',
                        (BLUE, false) => 'o',
                        (BLUE, true) => 'O',
                        (NONE, false) => '?',
                        _ => '!',
                    },
                };
                out.push(ch);
            }
            out.push('\n');
        }
        out
    }
}
