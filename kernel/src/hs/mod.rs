//! HospitalSim (HS): the reference's discrete-event hospital (spec §2), N instances at once.
//!
//! Module map:
//! - [`params`]: limits (`PATIENTS_MAX`, `EVENTS_MAX`, staff maxima), [`HsParams`], [`HsFlags`].
//! - [`layout`]: rooms, floors, the precomputed travel table, illnesses and the quality map.
//! - [`arrivals`]: where a day's arrival peaks come from (single random, curriculum, fresh).
//! - [`patients`]: statuses, potentials, allowed transitions, the daily schedule generator.
//! - [`events`]: the per-instance fixed-capacity event queue (a per-minute calendar).
//! - `state`: the struct-of-arrays columns and views, and the invariant checker.
//! - `tick`: one tick (spec §2.5), the journey's event handlers (§2.6) and the agents' actions.
//! - [`agents`]: the three observations and a uniform random policy.
//! - [`stats`]: per-day statistics for spec §6.
//! - [`log`]: the zero-cost event-log hook.
//!
//! Decision rounds: after construction and after every [`HsEnv::step`], every instance waits for
//! exactly one agent (router, dispatcher or manager): `advance` runs each instance until it
//! needs a decision or its day ends; a finished day is summarised in [`HsDayStats`] and the
//! instance starts its next day (seeded from its `Purpose::Episodes` stream) and advances to
//! that day's first decision. The reference's "no activity" early stop is not modelled: a day
//! always runs to `sim_minutes` (the stop needs every patient to have exited, which cannot
//! happen while arrivals continue to the last minute of the day).

mod actions;
pub mod agents;
pub mod arrivals;
pub mod events;
mod journey;
pub mod layout;
pub mod log;
pub mod params;
pub mod patients;
mod state;
pub mod stats;
mod tick;

pub use agents::RandomPolicy;
pub use arrivals::{ArrivalPeaks, ArrivalTemplate, Curriculum};
pub use log::{Cause, EventSink, LogRecord, NoLog};
pub use params::*;
pub use patients::{Status, World};
pub use state::{
    Doctor, Helper, HsState, InstanceRef, PENDING_DISPATCHER, PENDING_MANAGER, PENDING_ROUTER,
    ROLE_ESCORTING, ROLE_IDLE, ROLE_MOVING,
};
pub use stats::HsDayStats;

use crate::Profile;
use crate::hash::TrajectoryHash;
use crate::pool::{Split, WorkerPool};
use crate::rng::{Purpose, Stream};
use layout::{ROOM_NONE, Room, TravelTable};
use serde::{Deserialize, Serialize};
use state::*;
use tick::{Ctx, Hook};

/// The agent an instance waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Router = 0,
    Dispatcher = 1,
    Manager = 2,
}

impl Role {
    pub fn from_u8(r: u8) -> Role {
        [Role::Router, Role::Dispatcher, Role::Manager][r as usize]
    }
}

/// Construction-time configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HsConfig {
    pub instances: u32,
    /// Root seed of every stream.
    pub seed: u64,
    pub params: HsParams,
    pub flags: HsFlags,
    /// Counterfactual pairs: instance 2k is a factual world and 2k+1 its twin (same streams,
    /// impairment none <-> high swapped; see `HsFlags::counterfactual_schedule_lost`).
    pub twins: bool,
    /// Where each day's arrival peaks come from (the reference wrapper's single random peak
    /// unless set; snapshots made before this field existed used it).
    #[serde(default)]
    pub arrivals: ArrivalPeaks,
    /// How a counterfactual pair's days end (twins only; snapshots made before this field
    /// existed played full days).
    #[serde(default)]
    pub pair_days: PairDays,
}

/// How the two worlds of a counterfactual pair end their days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairDays {
    /// Each world plays its whole day; a pair's worlds end their days when each reaches the
    /// end of the clock (fairground's counterfactual).
    #[default]
    Full,
    /// Both worlds' days end at the decision round where either world's ends, the other's cut
    /// short where it stands (the reference's CF scripts step both worlds once per loop
    /// `while not done_w0 and not done_w1`). A cut day's statistics count what finished by
    /// then, and `HsDayStats::end_minute` says where it stopped.
    EitherEnds,
}

impl HsConfig {
    pub fn new(instances: u32, seed: u64, profile: Profile) -> Self {
        Self {
            instances,
            seed,
            params: HsParams::default(),
            flags: HsFlags::from_profile(profile),
            twins: false,
            arrivals: ArrivalPeaks::SingleRandom,
            pair_days: PairDays::Full,
        }
    }
}

/// Caller-owned outputs of a decision round (allocated once with [`HsRound::new`]).
#[derive(Clone, Debug)]
pub struct HsRound {
    /// Pending role per instance after the call (`PENDING_*`).
    pub role: Vec<u8>,
    /// Observations per role. Only the pending role's row of an instance is written; the rows of
    /// the other roles keep stale values (the reference hands zero vectors to inactive agents;
    /// callers select the acting agent by `role`, so writing zeros would be wasted bandwidth).
    pub obs_router: Vec<f32>,
    pub obs_dispatcher: Vec<f32>,
    pub obs_manager: Vec<f32>,
    /// Reward of the action just applied (to the role that acted: `acted`).
    pub reward: Vec<f32>,
    /// The same reward split by the impairment group of the patients it concerns
    /// (`instance * IMPAIRMENTS + group`; see `actions.rs`): the router's is its patient's, the
    /// dispatcher's each request's or assignment's patient's, the manager's each waiting
    /// patient's share of a move's queue pressure, with what concerns no patient (the manager's
    /// move cost and idle penalties) split equally. The parts sum to `reward` up to rounding.
    /// Not part of the trajectory hash (it is derived from the same events).
    pub reward_by_group: Vec<f32>,
    pub acted: Vec<u8>,
    /// 1 where the action ended the day: `day_stats` then holds the finished day and `role`
    /// and observations already belong to the next day.
    pub day_done: Vec<u8>,
    pub day_stats: Vec<HsDayStats>,
    /// Where `day_done`: every patient's final ledger of the finished day
    /// (`instance * PATIENTS_MAX + patient`) and whether it finished (done or exited). Kept
    /// until the instance's next day ends; the trainer's ledger credit reads it.
    pub day_ledger: Vec<f64>,
    pub day_finished: Vec<u8>,
}

impl HsRound {
    pub fn new(instances: usize) -> Self {
        Self {
            role: vec![0; instances],
            obs_router: vec![0.0; instances * ROUTER_OBS],
            obs_dispatcher: vec![0.0; instances * DISPATCHER_OBS],
            obs_manager: vec![0.0; instances * MANAGER_OBS],
            reward: vec![0.0; instances],
            reward_by_group: vec![0.0; instances * IMPAIRMENTS],
            acted: vec![0; instances],
            day_done: vec![0; instances],
            day_stats: vec![HsDayStats::default(); instances],
            day_ledger: vec![0.0; instances * PATIENTS_MAX],
            day_finished: vec![0; instances * PATIENTS_MAX],
        }
    }

    fn view(&mut self) -> RoundMut<'_> {
        RoundMut {
            role: &mut self.role,
            obs_router: &mut self.obs_router,
            obs_dispatcher: &mut self.obs_dispatcher,
            obs_manager: &mut self.obs_manager,
            reward: &mut self.reward,
            reward_by_group: &mut self.reward_by_group,
            acted: &mut self.acted,
            day_done: &mut self.day_done,
            day_stats: &mut self.day_stats,
            day_ledger: &mut self.day_ledger,
            day_finished: &mut self.day_finished,
        }
    }
}

impl HsRound {
    /// Feed this round into a trajectory hash: instances in index order (so the digest does not
    /// depend on threads), each with its role, reward bits, acted role, day_done, the pending
    /// role's observation and, at a day's end, the day's statistics.
    pub fn hash_into(&self, h: &mut TrajectoryHash) {
        for i in 0..self.role.len() {
            h.write_u32(
                u32::from(self.role[i])
                    | u32::from(self.acted[i]) << 8
                    | u32::from(self.day_done[i]) << 16,
            );
            h.write_f32s(&self.reward[i..i + 1]);
            match self.role[i] {
                PENDING_ROUTER => {
                    h.write_f32s(&self.obs_router[i * ROUTER_OBS..(i + 1) * ROUTER_OBS])
                }
                PENDING_DISPATCHER => {
                    h.write_f32s(&self.obs_dispatcher[i * DISPATCHER_OBS..(i + 1) * DISPATCHER_OBS])
                }
                _ => h.write_f32s(&self.obs_manager[i * MANAGER_OBS..(i + 1) * MANAGER_OBS]),
            }
            if self.day_done[i] == 1 {
                self.day_stats[i].hash_into(h);
            }
        }
    }
}

/// Caller-owned actions: router `Discrete(6)` per instance, dispatcher 20 × `Discrete(50)`,
/// manager `n_swing` × `Discrete(7)`. Only the pending role's slots are read.
#[derive(Clone, Debug)]
pub struct HsActions {
    pub router: Vec<u8>,
    pub dispatcher: Vec<u8>,
    pub manager: Vec<u8>,
    pub n_swing: usize,
}

impl HsActions {
    pub fn new(instances: usize, params: &HsParams) -> Self {
        let n_swing = params.n_swing as usize;
        Self {
            router: vec![0; instances],
            dispatcher: vec![0; instances * DISPATCH_COMPONENTS],
            manager: vec![6; instances * n_swing],
            n_swing,
        }
    }
}

struct RoundMut<'a> {
    role: &'a mut [u8],
    obs_router: &'a mut [f32],
    obs_dispatcher: &'a mut [f32],
    obs_manager: &'a mut [f32],
    reward: &'a mut [f32],
    reward_by_group: &'a mut [f32],
    acted: &'a mut [u8],
    day_done: &'a mut [u8],
    day_stats: &'a mut [HsDayStats],
    day_ledger: &'a mut [f64],
    day_finished: &'a mut [u8],
}

impl<'a> RoundMut<'a> {
    fn split_at(self, at: usize) -> (Self, Self) {
        let role = self.role.split_at_mut(at);
        let obs_router = self.obs_router.split_at_mut(at * ROUTER_OBS);
        let obs_dispatcher = self.obs_dispatcher.split_at_mut(at * DISPATCHER_OBS);
        let obs_manager = self.obs_manager.split_at_mut(at * MANAGER_OBS);
        let reward = self.reward.split_at_mut(at);
        let reward_by_group = self.reward_by_group.split_at_mut(at * IMPAIRMENTS);
        let acted = self.acted.split_at_mut(at);
        let day_done = self.day_done.split_at_mut(at);
        let day_stats = self.day_stats.split_at_mut(at);
        let day_ledger = self.day_ledger.split_at_mut(at * PATIENTS_MAX);
        let day_finished = self.day_finished.split_at_mut(at * PATIENTS_MAX);
        (
            RoundMut {
                role: role.0,
                obs_router: obs_router.0,
                obs_dispatcher: obs_dispatcher.0,
                obs_manager: obs_manager.0,
                reward: reward.0,
                reward_by_group: reward_by_group.0,
                acted: acted.0,
                day_done: day_done.0,
                day_stats: day_stats.0,
                day_ledger: day_ledger.0,
                day_finished: day_finished.0,
            },
            RoundMut {
                role: role.1,
                obs_router: obs_router.1,
                obs_dispatcher: obs_dispatcher.1,
                obs_manager: obs_manager.1,
                reward: reward.1,
                reward_by_group: reward_by_group.1,
                acted: acted.1,
                day_done: day_done.1,
                day_stats: day_stats.1,
                day_ledger: day_ledger.1,
                day_finished: day_finished.1,
            },
        )
    }
}

/// A range of instances with their outputs and actions: what one worker processes.
struct Part<'a> {
    /// Global index of the first instance.
    base: usize,
    cols: Cols<'a>,
    out: RoundMut<'a>,
    router: &'a [u8],
    dispatcher: &'a [u8],
    manager: &'a [u8],
    n_swing: usize,
}

impl Split for Part<'_> {
    fn instances(&self) -> usize {
        self.cols.len()
    }
    fn split_at(self, at: usize) -> (Self, Self) {
        let (c0, c1) = self.cols.split_at(at);
        let (o0, o1) = self.out.split_at(at);
        let (r0, r1) = self.router.split_at(at);
        let (d0, d1) = self.dispatcher.split_at(at * DISPATCH_COMPONENTS);
        let (m0, m1) = self.manager.split_at(at * self.n_swing);
        (
            Part {
                base: self.base,
                cols: c0,
                out: o0,
                router: r0,
                dispatcher: d0,
                manager: m0,
                n_swing: self.n_swing,
            },
            Part {
                base: self.base + at,
                cols: c1,
                out: o1,
                router: r1,
                dispatcher: d1,
                manager: m1,
                n_swing: self.n_swing,
            },
        )
    }
}

/// A full snapshot: configuration and state (serde).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HsSnapshot {
    pub config: HsConfig,
    pub state: HsState,
}

/// N HospitalSim instances.
pub struct HsEnv {
    config: HsConfig,
    travel: TravelTable,
    arrivals: arrivals::ArrivalPlan,
    state: HsState,
}

impl HsEnv {
    /// Build every instance and run it to its first decision of day 0.
    pub fn new(config: HsConfig) -> Self {
        config.params.validate();
        let n = config.instances as usize;
        assert!(n >= 1, "at least one instance");
        assert!(
            !config.twins || n.is_multiple_of(2),
            "twins need an even number of instances, got {n}"
        );
        assert!(
            config.twins || config.pair_days == PairDays::Full,
            "pair_days {:?} needs twins",
            config.pair_days
        );
        let mut env = Self {
            travel: TravelTable::new(),
            arrivals: arrivals::ArrivalPlan::new(config.arrivals, config.params.sim_minutes),
            state: HsState::zeroed(n),
            config,
        };
        let (twins, seed) = (env.config.twins, env.config.seed);
        let (ctx, mut cols) = env.ctx_cols();
        for i in 0..n {
            let mut v = cols.instance(i);
            let (stream_index, world) = if twins {
                (i / 2, (i % 2) as u8)
            } else {
                (i, 0)
            };
            v.sc[0].episodes = Stream::new(seed, Purpose::Episodes, &[stream_index as u64]);
            v.sc[0].world = world;
            v.start_day(&ctx, i);
            v.advance(&ctx, &mut NoLog, i as u32);
        }
        env
    }

    pub fn config(&self) -> &HsConfig {
        &self.config
    }

    pub fn instances(&self) -> usize {
        self.state.n as usize
    }

    /// Read-only view of instance `i` (clock, patients, today's statistics, invariants).
    pub fn instance(&self, i: usize) -> InstanceRef<'_> {
        self.state.instance(i)
    }

    /// The whole state, e.g. for a snapshot.
    pub fn snapshot(&self) -> HsSnapshot {
        HsSnapshot {
            config: self.config.clone(),
            state: self.state.clone(),
        }
    }

    pub fn restore(snapshot: HsSnapshot) -> Self {
        snapshot.config.params.validate();
        assert_eq!(
            snapshot.state.n, snapshot.config.instances,
            "snapshot instance count"
        );
        let state = snapshot.state;
        Self {
            arrivals: arrivals::ArrivalPlan::new(
                snapshot.config.arrivals,
                snapshot.config.params.sim_minutes,
            ),
            config: snapshot.config,
            travel: TravelTable::new(),
            state,
        }
    }

    /// The curriculum's template pool, easiest first (empty unless the config sets one).
    pub fn arrival_pool(&self) -> &[ArrivalTemplate] {
        self.arrivals.pool()
    }

    /// What a tick reads besides the state, and the state's columns (borrowed apart).
    fn ctx_cols(&mut self) -> (Ctx<'_>, Cols<'_>) {
        let ctx = Ctx {
            params: &self.config.params,
            flags: self.config.flags,
            travel: &self.travel,
            arrivals: &self.arrivals,
            twins: self.config.twins,
            instances: self.config.instances,
        };
        (ctx, self.state.cols())
    }

    /// Write every instance's pending role and observation (no stepping; reward, acted and
    /// day_done are zeroed).
    pub fn observe(&mut self, round: &mut HsRound) {
        self.check_round(round);
        let (ctx, mut cols) = self.ctx_cols();
        let mut out = round.view();
        for i in 0..cols.len() {
            let mut v = cols.instance(i);
            out.reward[i] = 0.0;
            out.reward_by_group[i * IMPAIRMENTS..(i + 1) * IMPAIRMENTS].fill(0.0);
            out.acted[i] = 0;
            out.day_done[i] = 0;
            v.write_observation(&ctx, &mut out, i);
        }
    }

    /// Apply every instance's pending action, advance each to its next decision (starting the
    /// next day where one ends) and write rewards and observations into `round`. Results are
    /// identical for any number of pool threads.
    pub fn step(&mut self, actions: &HsActions, round: &mut HsRound, pool: &WorkerPool) {
        self.check_round(round);
        assert_eq!(
            actions.n_swing, self.config.params.n_swing as usize,
            "HsActions n_swing"
        );
        let pair_days = self.config.pair_days;
        let (ctx, cols) = self.ctx_cols();
        let part = Part {
            base: 0,
            cols,
            out: round.view(),
            router: &actions.router,
            dispatcher: &actions.dispatcher,
            manager: &actions.manager,
            n_swing: actions.n_swing,
        };
        match pair_days {
            PairDays::Full => pool.run_split(part, &|mut part: Part| part.step(&ctx, &mut NoLog)),
            // A pair's worlds decide together, so a worker never gets half a pair.
            PairDays::EitherEnds => pool.run_split(Pairs(part), &|mut p: Pairs| {
                p.0.step_pairs(&ctx, &mut NoLog)
            }),
        }
    }

    /// [`HsEnv::step`] on the calling thread, reporting every status change and action to `log`
    /// and calling `log.tick_end` after every tick.
    pub fn step_logged<L: EventSink>(
        &mut self,
        actions: &HsActions,
        round: &mut HsRound,
        log: &mut L,
    ) {
        self.check_round(round);
        let pair_days = self.config.pair_days;
        let (ctx, cols) = self.ctx_cols();
        let mut part = Part {
            base: 0,
            cols,
            out: round.view(),
            router: &actions.router,
            dispatcher: &actions.dispatcher,
            manager: &actions.manager,
            n_swing: actions.n_swing,
        };
        match pair_days {
            PairDays::Full => part.step(&ctx, log),
            PairDays::EitherEnds => part.step_pairs(&ctx, log),
        }
    }

    fn check_round(&self, round: &HsRound) {
        assert_eq!(
            round.role.len(),
            self.instances(),
            "HsRound built for another instance count"
        );
    }
}

impl Part<'_> {
    /// Every instance on its own: act, and where the day ends start the next one.
    fn step<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L) {
        for i in 0..self.cols.len() {
            if self.act(ctx, log, i) {
                self.next_day(ctx, log, i);
            }
            self.cols
                .instance(i)
                .write_observation(ctx, &mut self.out, i);
        }
    }

    /// Pairs (2k, 2k + 1) together (`PairDays::EitherEnds`): both act, and where either's
    /// day ended the other's is cut short there, so both start their next day together.
    fn step_pairs<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L) {
        debug_assert!(self.cols.len().is_multiple_of(2));
        for a in (0..self.cols.len()).step_by(2) {
            let ended = [self.act(ctx, log, a), self.act(ctx, log, a + 1)];
            if ended[0] || ended[1] {
                for (i, e) in [a, a + 1].into_iter().zip(ended) {
                    if !e {
                        self.cols.instance(i).finish_day(ctx);
                    }
                    self.next_day(ctx, log, i);
                }
            }
            for i in [a, a + 1] {
                self.cols
                    .instance(i)
                    .write_observation(ctx, &mut self.out, i);
            }
        }
    }

    /// Apply instance `i`'s pending action, write its reward and advance it to its next
    /// decision; true when its day ended (its statistics are then final).
    fn act<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, i: usize) -> bool {
        let inst = (self.base + i) as u32;
        let mut v = self.cols.instance(i);
        let role = v.sc[0].pending;
        let mut parts = [0.0f64; IMPAIRMENTS];
        let reward = match role {
            PENDING_ROUTER => v.apply_routing(ctx, log, inst, self.router[i], &mut parts),
            PENDING_DISPATCHER => v.apply_dispatch(
                ctx,
                log,
                inst,
                &self.dispatcher[i * DISPATCH_COMPONENTS..(i + 1) * DISPATCH_COMPONENTS],
                &mut parts,
            ),
            _ => v.apply_manager(
                ctx,
                log,
                inst,
                &self.manager[i * self.n_swing..(i + 1) * self.n_swing],
                &mut parts,
            ),
        };
        self.out.reward[i] = reward as f32;
        for (d, &p) in self.out.reward_by_group[i * IMPAIRMENTS..(i + 1) * IMPAIRMENTS]
            .iter_mut()
            .zip(&parts)
        {
            *d = p as f32;
        }
        self.out.acted[i] = role;
        self.out.day_done[i] = 0;
        v.advance(ctx, log, inst)
    }

    /// Instance `i`'s day has finished: publish its statistics and ledgers, start its next day
    /// and advance to that day's first decision.
    fn next_day<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, i: usize) {
        let inst = (self.base + i) as u32;
        let mut v = self.cols.instance(i);
        self.out.day_done[i] = 1;
        self.out.day_stats[i] = v.sc[0].stats;
        v.write_day_ledgers(
            ctx,
            &mut self.out.day_ledger[i * PATIENTS_MAX..(i + 1) * PATIENTS_MAX],
            &mut self.out.day_finished[i * PATIENTS_MAX..(i + 1) * PATIENTS_MAX],
        );
        v.start_day(ctx, self.base + i);
        v.advance(ctx, log, inst);
    }
}

/// A [`Part`] split only between pairs (`PairDays::EitherEnds`): its instances are pairs.
struct Pairs<'a>(Part<'a>);

impl Split for Pairs<'_> {
    fn instances(&self) -> usize {
        self.0.cols.len() / 2
    }
    fn split_at(self, at: usize) -> (Self, Self) {
        let (a, b) = self.0.split_at(2 * at);
        (Pairs(a), Pairs(b))
    }
}

impl Inst<'_> {
    /// Run ticks until a hook or the end of the day; returns true when the day ended (its
    /// statistics are then final in `sc.stats`).
    fn advance<L: EventSink>(&mut self, ctx: &Ctx, log: &mut L, inst: u32) -> bool {
        loop {
            let hook = self.tick(ctx, log, inst);
            if self.clock() >= ctx.params.sim_minutes {
                self.finish_day(ctx);
                return true;
            }
            if hook != Hook::None {
                return false;
            }
        }
    }

    /// The finished day's per-patient ledgers and finished flags (a day-end output).
    fn write_day_ledgers(&self, ctx: &Ctx, ledger: &mut [f64], finished: &mut [u8]) {
        for p in 0..ctx.params.n_patients as usize {
            ledger[p] = self.p_ledger[p];
            finished[p] = u8::from(patients::Status::from_u8(self.p_status[p]).is_finished());
        }
    }

    fn finish_day(&mut self, ctx: &Ctx) {
        let n = ctx.params.n_patients as usize;
        let clock = self.clock();
        let st = &mut self.sc[0].stats;
        st.end_minute = clock;
        for p in 0..n {
            let s = patients::Status::from_u8(self.p_status[p]);
            let (imp, pri) = (self.p_impairment[p] as usize, self.p_priority[p] as usize);
            st.patients_by_group[imp][pri] += 1;
            st.ledger_all[imp][pri] += self.p_ledger[p];
            if s.is_finished() {
                st.patients_treated += 1;
                st.finished[imp][pri] += 1;
                st.ledger_finished[imp][pri] += self.p_ledger[p];
            }
            if s == patients::Status::Exited {
                st.patients_exited += 1;
            }
        }
    }

    /// Reset instance `inst` to the start of its next day, in place.
    fn start_day(&mut self, ctx: &Ctx, inst: usize) {
        let p = ctx.params;
        let flags = ctx.flags;
        let n = p.n_patients as usize;
        let sc = &mut self.sc[0];
        let day = sc.days_started;
        sc.days_started += 1;
        let day_seed = sc.episodes.next_u64();
        let world = sc.world;
        let cf = world == World::Counterfactual as u8;
        // The day's place in the run's days played one after another (day d of stream k of
        // K: d·K + k), the curriculum's clock; twins share their factual world's day.
        let (stream, streams) = if ctx.twins {
            (inst / 2, ctx.instances as usize / 2)
        } else {
            (inst, ctx.instances as usize)
        };
        let global_day = u64::from(day) * streams as u64 + stream as u64;
        let template = ctx.arrivals.template(day_seed, global_day);
        let mut attrs = Stream::new(day_seed, Purpose::HsPatients, &[]);
        // The reference's lost counterfactual schedule: the twin's arrival times come from an
        // independent stream and its attributes are not swapped.
        let arrival_world = u64::from(cf && flags.counterfactual_schedule_lost);
        let mut gaps = Stream::new(day_seed, Purpose::HsArrivals, &[arrival_world]);
        let peaks = patients::generate(
            n,
            p.sim_minutes,
            template,
            &mut attrs,
            &mut gaps,
            cf && !flags.counterfactual_schedule_lost,
            patients::Schedule {
                impairment: &mut self.p_impairment[..n],
                priority: &mut self.p_priority[..n],
                illness: &mut self.p_illness[..n],
                arrival: &mut self.p_arrival[..n],
            },
        );
        self.p_status[..n].fill(patients::Status::Waiting as u8);
        self.p_room[..n].fill(ROOM_NONE);
        self.p_ward[..n].fill(ROOM_NONE);
        self.p_room_time[..n].fill(TIME_NONE);
        self.p_triage_time[..n].fill(TIME_NONE);
        self.p_request_time[..n].fill(0);
        self.p_routings[..n].fill(0);
        self.p_ledger[..n].fill(0.0);
        self.clerk_busy.fill(0);
        self.triage_busy.fill(0);
        self.queue().clear();
        let sc = &mut self.sc[0];
        sc.clock = 0;
        sc.ev_counter = 0;
        sc.req_len = 0;
        sc.tq_head = [0; 3];
        sc.tq_len = [0; 3];
        sc.next_arrival = 0;
        sc.entrance_head = 0;
        sc.ward_pat_len = [0; WARDS];
        sc.ward_doc_len = [0; WARDS];
        sc.ward_triaged = [0; WARDS];
        sc.pending = PENDING_MANAGER;
        sc.pending_patient = PATIENT_NONE;
        sc.manager_penalty = 0.0;
        sc.dispatch_run = 0;
        sc.dispatch_run_minute = -1;
        sc.dispatch_blocked_minute = -1;
        sc.stats = HsDayStats::start(day, p.n_patients, peaks);
        sc.helper_idle = [0; 2];
        // Doctors: fixed ones ward by ward in creation (= dict) order, then swing doctors.
        self.doc_busy.fill(0);
        self.doc_room.fill(ROOM_NONE);
        self.sc[0].doctor_counts_at = TIME_STALE;
        self.doc_target.fill(ROOM_NONE);
        let fixed = p.fixed_doctors_per_ward as usize;
        for slot in 0..WARDS {
            for k in 0..fixed {
                self.doc_enter_room(slot * fixed + k, Room::Resuscitation as u8 + slot as u8);
            }
        }
        let start = if flags.swing_doctors_start_in_prompt_care {
            Room::PromptCare
        } else {
            Room::StaffArea
        };
        for k in 0..p.n_swing as usize {
            self.doc_enter_room(WARDS * fixed + k, start as u8);
        }
        for h in 0..p.n_helpers() {
            self.h_role[h] = ROLE_IDLE;
            self.h_room[h] = Room::StaffArea as u8;
            self.h_target[h] = ROOM_NONE;
            self.h_patient[h] = PATIENT_NONE;
            self.set_idle(h, true);
        }
    }

    fn write_observation(&mut self, ctx: &Ctx, out: &mut RoundMut<'_>, i: usize) {
        let role = self.sc[0].pending;
        out.role[i] = role;
        let r = &mut out.obs_router[i * ROUTER_OBS..(i + 1) * ROUTER_OBS];
        let d = &mut out.obs_dispatcher[i * DISPATCHER_OBS..(i + 1) * DISPATCHER_OBS];
        let m = &mut out.obs_manager[i * MANAGER_OBS..(i + 1) * MANAGER_OBS];
        match role {
            PENDING_ROUTER => self.router_obs(ctx, r),
            PENDING_DISPATCHER => self.dispatcher_obs(ctx, d),
            _ => self.manager_obs(ctx, m),
        }
    }
}
