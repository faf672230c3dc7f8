//! The training loop, written once: generic over the environment ([`EnvAdapter`]), the
//! algorithm ([`Algorithm`]) and the backend ([`Executor`]). One iteration reads like a
//! textbook PPO: [`Trainer::rollout`] (T rounds: every network decides for the slots waiting
//! for it, the environment steps), [`Trainer::bootstrap`], [`Trainer::advantages`] (GAE in each
//! network's store), the algorithm's plan, [`Trainer::epochs`], and the metrics.
//!
//! The networks share nothing, so they act and train side by side on the kernel's worker pool
//! (with 2+ threads) and the results do not depend on the thread count.

use crate::algo::{Algorithm, Phase, RoundAt};
use crate::common::{ACT_CHUNK_MAX, ActMode, EnvUse, NetState, Seeds, Timing};
use crate::config::TrainConfig;
use crate::env::{EnvAdapter, ReplayView, RoundOut};
use crate::error::TrainError;
use crate::net::{
    NetPlan, ParamCheck, PolicyNet, check_params, restore_all, restore_streams, save_all,
};
use crate::update::{LossMetrics, LossSums};
use fairground_kernel::pool::{Split, WorkerPool};
use fairground_kernel::rng::Stream;
use fairground_shaders::{Executor, Program, ShaderError};
use std::sync::Mutex;
use std::time::Instant;

/// What one iteration measured (deterministic except `wall_s`).
#[derive(Clone, Debug)]
pub struct IterStats<M> {
    /// The environment's numbers of the rollout.
    pub env: M,
    /// Means over the last minibatch of every epoch, then over the networks that trained.
    pub loss: LossMetrics,
    /// What the algorithm adds (Fair-PPO: its penalty's terms), under `report_key`.
    pub penalty: Option<serde_json::Value>,
    pub report_key: &'static str,
    /// Decisions trained (slots × rounds).
    pub trained: u64,
    pub wall_s: f64,
}

/// An iteration between [`Trainer::prepare_update`] and [`Trainer::conclude`]: its rounds,
/// when it began, the time of its update so far (advantages and plan), and the algorithm's
/// plan per network.
#[derive(Debug)]
pub struct PendingUpdate {
    pub rounds: u32,
    start: Instant,
    update_s: f64,
    pub plans: Vec<NetPlan>,
}

/// What a checkpoint's JSON sidecar holds besides the parameters: the counters, each network's
/// shuffle stream, the environment's snapshot (its fields flattened in, as older versions
/// wrote them) and the algorithm's state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainerState<S, F> {
    pub iteration: u32,
    pub env_steps: u64,
    pub shuffle_streams: Vec<Stream>,
    #[serde(flatten)]
    pub env: S,
    /// Checkpoints of older versions call it `fair` (Fair-PPO's state) or lack it (fresh).
    #[serde(default, alias = "fair")]
    pub algo: F,
}

impl<S: serde::Serialize + serde::de::DeserializeOwned, F> crate::io::CheckpointState
    for TrainerState<S, F>
where
    F: serde::Serialize + serde::de::DeserializeOwned + Default,
{
    fn iteration(&self) -> u32 {
        self.iteration
    }
    fn networks(&self) -> usize {
        self.shuffle_streams.len()
    }
}

/// Networks `first..first + nets.len()`: how [`WorkerPool::run_split`] hands them out.
struct NetView<'a, E: Executor> {
    nets: &'a mut [PolicyNet<E>],
    first: usize,
}

impl<E: Executor + Send> Split for NetView<'_, E> {
    fn instances(&self) -> usize {
        self.nets.len()
    }

    fn split_at(self, at: usize) -> (Self, Self) {
        let (a, b) = self.nets.split_at_mut(at);
        (
            NetView {
                nets: a,
                first: self.first,
            },
            NetView {
                nets: b,
                first: self.first + at,
            },
        )
    }
}

/// Run `f` on every network, side by side on `pool` when it has 2+ threads; of several
/// errors, the lowest network's is returned.
pub fn run_nets<E: Executor + Send>(
    pool: &WorkerPool,
    nets: &mut [PolicyNet<E>],
    f: impl Fn(usize, &mut PolicyNet<E>) -> Result<(), ShaderError> + Sync,
) -> Result<(), ShaderError> {
    let errors: Vec<Mutex<Option<ShaderError>>> =
        (0..nets.len()).map(|_| Mutex::new(None)).collect();
    let work = |view: NetView<'_, E>| {
        for (k, net) in view.nets.iter_mut().enumerate() {
            let g = view.first + k;
            if let Err(e) = f(g, net) {
                *errors[g].lock().expect("error slot") = Some(e);
            }
        }
    };
    pool.run_split(NetView { nets, first: 0 }, &work);
    match errors
        .into_iter()
        .find_map(|e| e.into_inner().expect("error slot"))
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// PPO-family training of algorithm `G` on environment `A` through executor `E`.
pub struct Trainer<A: EnvAdapter, G: Algorithm<A>, E: Executor> {
    pub cfg: TrainConfig,
    pub env: A,
    pub algo: G,
    pool: WorkerPool,
    nets: Vec<PolicyNet<E>>,
    out: RoundOut,
    /// Gathering scratch of a network reading several environment networks.
    scratch: (Vec<u32>, Vec<f32>),
    seeds: Seeds,
    pub iteration: u32,
    pub env_steps: u64,
    pub timing: Timing,
    adapter: String,
}

impl<A: EnvAdapter, G: Algorithm<A>, E: Executor + Send> Trainer<A, G, E> {
    /// `make_executor` is called once per network.
    pub fn new(
        cfg: &TrainConfig,
        env: A,
        algo: G,
        make_executor: impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, TrainError> {
        let shapes = algo.nets(&env);
        let tag = env.stream_tag();
        let seeds = Seeds::derive(cfg.seed, tag, EnvUse::Train, shapes.len());
        let slots = env.slots();
        let batch = (cfg.ppo.minibatch_size as usize).max(slots.min(ACT_CHUNK_MAX));
        let mut nets = Vec::with_capacity(shapes.len());
        for (k, shape) in shapes.into_iter().enumerate() {
            let driven = algo.env_nets(k).is_empty();
            if let Some(e) = algo.env_nets(k).find(|&e| {
                env.nets()[e].obs_width + algo.extra_obs(k) != shape.obs_width
                    || env.nets()[e].layout != shape.layout
            }) {
                panic!(
                    "network {} reads environment network {e} of another shape",
                    shape.name
                );
            }
            nets.push(PolicyNet::new(
                cfg,
                shape,
                slots,
                batch,
                seeds.init[k],
                seeds.sample[k],
                Seeds::shuffle(cfg.seed, tag, k),
                (!driven).then(|| algo.store_extras(&env, k)),
                |spec, hyper| algo.tune(k, spec, hyper),
                &make_executor,
            )?);
        }
        let adapter = nets[0].ac.executor().adapter_name();
        Ok(Self {
            cfg: cfg.clone(),
            pool: WorkerPool::new(cfg.threads as usize),
            out: RoundOut::new(slots),
            scratch: (Vec::with_capacity(slots), Vec::new()),
            env,
            algo,
            nets,
            seeds,
            iteration: 0,
            env_steps: 0,
            timing: Timing::default(),
            adapter,
        })
    }

    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The networks, in the algorithm's order (tests and audits read their stores' host side).
    pub fn nets(&self) -> &[PolicyNet<E>] {
        &self.nets
    }

    /// The networks, mutable (a pack trains them; tests read their device stores).
    pub fn nets_mut(&mut self) -> &mut [PolicyNet<E>] {
        &mut self.nets
    }

    /// Its worker pool, config and networks at once (a pack spreads its networks over the
    /// first run's pool).
    pub fn pool_cfg_nets(&mut self) -> (&WorkerPool, &TrainConfig, &mut [PolicyNet<E>]) {
        (&self.pool, &self.cfg, &mut self.nets)
    }

    pub fn seeds(&self) -> &Seeds {
        &self.seeds
    }

    /// One iteration: rollout, advantages, the algorithm's plan, epochs, metrics.
    pub fn iterate(&mut self) -> Result<IterStats<A::Metrics>, ShaderError> {
        let pending = self.prepare_update()?;
        let t0 = Instant::now();
        self.epochs(&pending.plans)?;
        Ok(self.conclude(pending, t0.elapsed().as_secs_f64(), None))
    }

    /// The first half of [`Self::iterate`]: rollout, bootstrap, advantages and the algorithm's
    /// plan, ready for the epochs (a pack trains several runs' epochs together, `crate::pack`).
    pub fn prepare_update(&mut self) -> Result<PendingUpdate, ShaderError> {
        let start = Instant::now();
        let rounds = self.rollout()?;
        self.bootstrap(rounds)?;
        let t0 = Instant::now();
        self.advantages()?;
        let plans = self.algo.plan(&self.env, &self.cfg, &mut self.nets)?;
        Ok(PendingUpdate {
            rounds,
            start,
            update_s: t0.elapsed().as_secs_f64(),
            plans,
        })
    }

    /// The second half of [`Self::iterate`], after the epochs: the metrics. `epochs_s`: the
    /// time of this run's epochs (in a pack, its share of the pack's);
    /// `wall_s`: the iteration's wall time when it is not this run's own (a pack's).
    pub fn conclude(
        &mut self,
        p: PendingUpdate,
        epochs_s: f64,
        wall_s: Option<f64>,
    ) -> IterStats<A::Metrics> {
        self.timing.update_s += p.update_s + epochs_s;
        let mut stats = self.finish(p.rounds, p.start);
        if let Some(w) = wall_s {
            stats.wall_s = w;
        }
        stats
    }

    /// Up to T rounds (fewer when the environment has what it needs): every network decides
    /// for its waiting slots into its store, then the environment steps.
    fn rollout(&mut self) -> Result<u32, ShaderError> {
        self.env.begin_rollout();
        self.algo.begin_rollout(&self.env);
        for net in &mut self.nets {
            net.begin_rollout();
        }
        let mut rounds = 0;
        while rounds < self.cfg.rollout_steps {
            self.decide(rounds)?;
            self.step_env();
            let (at, h0) = (self.round_at(rounds, Phase::Train), Instant::now());
            self.algo
                .end_round(&self.env, &self.out, at, &mut self.nets)?;
            self.timing.host_s += h0.elapsed().as_secs_f64();
            rounds += 1;
            if self.env.rollout_complete() {
                break;
            }
        }
        Ok(rounds)
    }

    /// Every network's waiting slots and their observations.
    fn gather(&mut self) {
        for (k, net) in self.nets.iter_mut().enumerate() {
            gather_net(&self.env, &self.algo, k, net, &mut self.scratch);
        }
    }

    /// Round `t`: every network decides for its slots, into its store; actions to the env.
    fn decide(&mut self, t: u32) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        let at = self.round_at(t, Phase::Train);
        self.algo.begin_round(&self.env, at, &mut self.nets)?;
        self.gather();
        for (k, net) in self.nets.iter_mut().enumerate() {
            net.assign_rows(t);
            self.algo
                .on_decision(&self.env, k, &net.slots, &net.dst, &net.obs);
        }
        let iteration = self.iteration;
        run_nets(&self.pool, &mut self.nets, |_, net| {
            net.act_stored(iteration, t)
        })?;
        // Apart, so that the GPU gets every network's step as one submission.
        run_nets(&self.pool, &mut self.nets, |_, net| net.collect_actions())?;
        for net in &self.nets {
            scatter_net(&mut self.env, net);
        }
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn round_at(&self, round: u32, phase: Phase) -> RoundAt {
        RoundAt {
            iteration: self.iteration,
            round,
            phase,
        }
    }

    /// Step the environment; each decision of the round gets its reward, and a slot whose
    /// episode ended has its sequences' last rows marked done.
    fn step_env(&mut self) {
        let k0 = Instant::now();
        self.env.step(&mut self.out, &self.pool);
        self.timing.kernel_s += k0.elapsed().as_secs_f64();
        let h0 = Instant::now();
        for net in &mut self.nets {
            net.record_rewards(&self.out.reward);
        }
        for (slot, &done) in self.out.done.iter().enumerate() {
            if done {
                for net in &mut self.nets {
                    net.end_episode(slot);
                }
            }
        }
        self.timing.host_s += h0.elapsed().as_secs_f64();
    }

    /// The values of the observations waiting after the last round (each slot's bootstrap).
    fn bootstrap(&mut self, rounds: u32) -> Result<(), ShaderError> {
        let t0 = Instant::now();
        self.gather();
        let iteration = self.iteration;
        run_nets(&self.pool, &mut self.nets, |_, net| {
            net.bootstrap(iteration, rounds)
        })?;
        self.timing.act_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// The algorithm's rewards, then GAE over every network's store.
    fn advantages(&mut self) -> Result<(), ShaderError> {
        for (k, net) in self.nets.iter_mut().enumerate() {
            self.algo.rewards(&self.env, k, &net.rows, &mut net.rewards);
        }
        let cfg = &self.cfg;
        run_nets(&self.pool, &mut self.nets, |_, net| net.advantages(cfg))
    }

    /// Network `net`'s epochs alone, with `plan` (a pack's network that cannot pack).
    pub fn net_epochs(&mut self, net: usize, plan: &NetPlan) -> Result<(), ShaderError> {
        self.nets[net].epochs(&self.cfg, plan)
    }

    /// K epochs of minibatch PPO per network, with its plan.
    fn epochs(&mut self, plans: &[NetPlan]) -> Result<(), ShaderError> {
        let cfg = &self.cfg;
        run_nets(&self.pool, &mut self.nets, |k, net| {
            net.epochs(cfg, &plans[k])
        })
    }

    fn finish(&mut self, rounds: u32, start: Instant) -> IterStats<A::Metrics> {
        let loss = LossSums::mean_over(self.nets.iter().map(|n| &n.loss));
        for net in &mut self.nets {
            self.timing.transfer_bytes += std::mem::take(&mut net.transfer_bytes);
        }
        self.iteration += 1;
        self.env_steps += (self.env.instances() * rounds as usize) as u64;
        IterStats {
            env: self.env.end_rollout(rounds, self.env_steps),
            loss,
            penalty: self.algo.report(),
            report_key: G::REPORT_KEY,
            trained: (self.env.slots() * rounds as usize) as u64,
            wall_s: start.elapsed().as_secs_f64(),
        }
    }

    /// The networks' digest and finiteness after the last update, from one read.
    pub fn check_params(&mut self) -> Result<ParamCheck, ShaderError> {
        check_params(&mut self.nets)
    }

    /// Everything needed to continue exactly here.
    #[allow(clippy::type_complexity)]
    pub fn save(
        &mut self,
    ) -> Result<(TrainerState<A::Snapshot, G::State>, Vec<NetState>), ShaderError> {
        let nets = save_all(&mut self.nets)?;
        let state = TrainerState {
            iteration: self.iteration,
            env_steps: self.env_steps,
            shuffle_streams: self.nets.iter().map(|n| n.shuffle.clone()).collect(),
            env: self.env.snapshot(),
            algo: self.algo.state(),
        };
        Ok((state, nets))
    }

    /// Continue from [`Self::save`]'s output.
    pub fn load(
        &mut self,
        state: TrainerState<A::Snapshot, G::State>,
        nets: &[NetState],
    ) -> Result<(), TrainError> {
        restore_streams(&mut self.nets, state.shuffle_streams)?;
        self.load_nets(nets)?;
        self.env.restore(state.env)?;
        self.algo.restore(state.algo)?;
        self.iteration = state.iteration;
        self.env_steps = state.env_steps;
        Ok(())
    }

    /// Load only the networks' parameters and optimizer state (evaluation).
    pub fn load_nets(&mut self, nets: &[NetState]) -> Result<(), TrainError> {
        restore_all(&mut self.nets, nets)
    }

    /// Load what evaluation needs of a checkpoint: the networks and the algorithm's model
    /// state ([`Algorithm::restore_model`]).
    pub fn load_model(
        &mut self,
        state: TrainerState<A::Snapshot, G::State>,
        nets: &[NetState],
    ) -> Result<(), TrainError> {
        self.load_nets(nets)?;
        self.algo.restore_model(state.algo);
        Ok(())
    }

    /// Play until `episodes` episodes (AH) or days (HS) have finished, from the environment as
    /// it is (a fresh one for evaluation), and return the environment's evaluation numbers.
    /// `random`: the environment's uniform random baseline instead of the networks.
    pub fn play(
        &mut self,
        episodes: usize,
        mode: ActMode,
        random: bool,
        progress: &mut dyn FnMut(usize),
        watch: &mut Watch<'_>,
    ) -> Result<serde_json::Value, ShaderError> {
        self.algo.begin_eval(episodes);
        let (nets, algo, pool, iteration) =
            (&mut self.nets, &mut self.algo, &self.pool, self.iteration);
        let scratch = &mut self.scratch;
        let mut act = |env: &mut A, out: Option<&RoundOut>, t: u32| -> Result<(), ShaderError> {
            let at = RoundAt {
                iteration,
                round: t,
                phase: Phase::Eval(mode),
            };
            if let Some(out) = out {
                let last = RoundAt {
                    round: t.wrapping_sub(1),
                    ..at
                };
                return algo.end_round(env, out, last, nets);
            }
            algo.begin_round(env, at, nets)?;
            for (k, net) in nets.iter_mut().enumerate() {
                gather_net(env, &*algo, k, net, scratch);
            }
            run_nets(pool, nets, |_, net| net.act(iteration, t, mode))?;
            for (k, net) in nets.iter_mut().enumerate() {
                algo.eval_actions(at, k, net);
            }
            for net in nets.iter() {
                scatter_net(env, net);
            }
            Ok(())
        };
        let mut report = play_loop(
            &mut self.env,
            &mut self.out,
            pool,
            episodes,
            mode,
            random,
            progress,
            &mut act,
            watch,
        )?;
        if let (Some(extra), Some(o)) = (self.algo.eval_report(), report.as_object_mut())
            && !random
        {
            o.insert(G::REPORT_KEY.to_string(), extra);
        }
        Ok(report)
    }
}

/// Network `k`'s waiting slots and their observations: those of its environment networks
/// routed to it, in environment-network then slot order (`net.runs` says how many came from
/// which). `scratch` holds one environment network's gather while it is filtered.
fn gather_net<A: EnvAdapter, G: Algorithm<A>, E: Executor>(
    env: &A,
    algo: &G,
    k: usize,
    net: &mut PolicyNet<E>,
    scratch: &mut (Vec<u32>, Vec<f32>),
) {
    let sources = algo.env_nets(k);
    let extra = algo.extra_obs(k);
    net.runs.clear();
    if !G::ROUTES && sources.len() == 1 && extra == 0 {
        env.gather(sources.start, &mut net.slots, &mut net.obs);
        net.runs.push((sources.start, net.slots.len()));
        return;
    }
    net.slots.clear();
    net.obs.clear();
    let w = net.shape.obs_width - extra;
    for e in sources {
        let (slots, obs) = scratch;
        env.gather(e, slots, obs);
        let before = net.slots.len();
        for (j, &slot) in slots.iter().enumerate() {
            if !G::ROUTES || algo.route(env, e, slot) == k {
                net.slots.push(slot);
                net.obs.extend_from_slice(&obs[j * w..(j + 1) * w]);
                if extra > 0 {
                    algo.append_obs(k, slot, &mut net.obs);
                }
            }
        }
        net.runs.push((e, net.slots.len() - before));
    }
}

/// Network `net`'s actions to the environment networks its slots came from.
fn scatter_net<A: EnvAdapter, E: Executor>(env: &mut A, net: &PolicyNet<E>) {
    let comps = net.components();
    let mut start = 0;
    for &(e, n) in &net.runs {
        env.scatter(
            e,
            &net.slots[start..start + n],
            &net.actions[start * comps..(start + n) * comps],
        );
        start += n;
    }
}

/// What [`play_loop`] calls each round: with `None` the networks act (their choices scattered
/// into the environment), with `Some(out)` the round's step is done.
pub type PlayAct<'a, A> = dyn FnMut(&mut A, Option<&RoundOut>, u32) -> Result<(), ShaderError> + 'a;

/// What [`play_loop`] shows a watcher (a replay's recorder) at the scatter/step boundary:
/// the environment before the first round (`None`) and after every step (`Some`: what the
/// step produced). Returning true ends the play after that round.
pub type Watch<'a> = dyn FnMut(ReplayView<'_>, Option<&RoundOut>) -> bool + 'a;

/// A watcher that watches nothing (evaluation).
pub fn no_watch(_: ReplayView<'_>, _: Option<&RoundOut>) -> bool {
    false
}

/// The evaluation loop shared by every trainer: each round the baseline's random actions or
/// `act(env, None, round)` (the networks' choices scattered into `env`), a step, `watch`,
/// then `act(env, Some(out), round + 1)` (what the round produced, for the algorithm), and
/// the round's finished episodes, until `episodes` are in or `watch` asks to stop.
#[allow(clippy::too_many_arguments)]
pub fn play_loop<A: EnvAdapter>(
    env: &mut A,
    out: &mut RoundOut,
    pool: &WorkerPool,
    episodes: usize,
    mode: ActMode,
    random: bool,
    progress: &mut dyn FnMut(usize),
    act: &mut PlayAct<'_, A>,
    watch: &mut Watch<'_>,
) -> Result<serde_json::Value, ShaderError> {
    let mut played = env.played(episodes);
    env.begin_rollout();
    let mut stop = watch(env.replay_view(), None);
    let mut t = 0u32;
    while !stop {
        if random {
            env.random_actions();
        } else {
            act(env, None, t)?;
        }
        env.step(out, pool);
        stop = watch(env.replay_view(), Some(out));
        if !random {
            act(env, Some(out), t.wrapping_add(1))?;
        }
        let done = env.collect(episodes, &mut played);
        progress(env.played_count(&played));
        stop |= done;
        t = t.wrapping_add(1);
    }
    Ok(env.eval_report(&played, mode))
}
