//! Packed runs (`fairground train --seeds K`): K runs of one network shape (the seeds of one
//! config, or configs that differ only in α, β or seed) in lockstep in one process. Each run
//! keeps everything it has alone (its environment, its networks with their stores, streams and
//! checkpoints); only the epochs differ: for each network, the K runs' minibatches train as
//! the K parameter sets of one [`PackedActorCritic`], one launch per minibatch for all K.
//!
//! Bit-identity with the separate runs rests on three things:
//!
//! - `PackedActorCritic` leaves each set with the bits its own actor-critic gets alone on the
//!   same minibatches (shaders' `tests/packed_train.rs`);
//! - each set's minibatches are exactly the alone path's: its store's rows (read back once per
//!   iteration, [`ActorCritic::stored_rows`](fairground_shaders::ActorCritic::stored_rows)),
//!   in the order its own shuffle stream gives (`update::train_stored_epochs`'s loop);
//! - the run's actor-critic is the state between iterations: before the epochs its parameters
//!   and Adam state are copied into its set, after them back, so acting, checkpoints and a
//!   network that cannot pack this iteration all see what the alone run would.
//!
//! A network packs when the algorithm allows it ([`Algorithm::PACKS`]), every run's network
//! has the same spec and hyperparameters, and in this iteration every run has the same number
//! of rows for it (AH: always; HS's decisions differ per seed) and the same loss scale. Any
//! other network trains run by run, as alone.

use crate::algo::Algorithm;
use crate::config::TrainConfig;
use crate::env::EnvAdapter;
use crate::error::TrainError;
use crate::net::NetPlan;
use crate::net::PolicyNet;
use crate::train_loop::{IterStats, PendingUpdate, Trainer};
use crate::update::adjust_advantages;
use fairground_kernel::pool::Split;
use fairground_shaders::ppo::StoredRows;
use fairground_shaders::{Executor, Minibatch, PackedActorCritic, Packing, Program, ShaderError};
use std::time::Instant;

/// K runs in lockstep, with one packed actor-critic per network that packs.
pub struct Pack<A: EnvAdapter, G: Algorithm<A>, E: Executor> {
    pub runs: Vec<Trainer<A, G, E>>,
    /// Per network: the packed actor-critic of its K sets, or `None` (trained run by run).
    packed: Vec<Option<PackedNet<E>>>,
    /// Networks trained packed over the iterations so far (for the bench line).
    pub packed_updates: u64,
    /// Networks trained run by run over the iterations so far.
    pub alone_updates: u64,
    /// The packed updates' minibatches so far.
    pub minibatches: MinibatchCounts,
}

/// One network's packed actor-critic and its host scratch (allocated once).
struct PackedNet<E: Executor> {
    ac: PackedActorCritic<E>,
    /// Per run: its store's rows this iteration.
    stored: Vec<StoredRows>,
    /// Per run: its minibatch order and the gathered minibatch.
    order: Vec<Vec<u32>>,
    mb: Vec<MbRows>,
}

/// One run's minibatch gathered from its store's rows.
#[derive(Default)]
struct MbRows {
    obs: Vec<f32>,
    masks: Vec<u32>,
    actions: Vec<u32>,
    per_row: [Vec<f32>; 5],
}

impl MbRows {
    /// Store rows `rows` of `s` (`width` observation values, `comps` action components and
    /// `lw` mask words per row).
    fn gather(&mut self, s: &StoredRows, rows: &[u32], width: usize, comps: usize, lw: usize) {
        self.obs.clear();
        self.masks.clear();
        self.actions.clear();
        for v in &mut self.per_row {
            v.clear();
        }
        let per_row = [
            &s.old_logp,
            &s.old_values,
            &s.advantages,
            &s.adv_adjust,
            &s.returns,
        ];
        for &r in rows {
            let r = r as usize;
            self.obs
                .extend_from_slice(&s.obs[r * width..(r + 1) * width]);
            if !s.masks.is_empty() {
                self.masks.extend_from_slice(&s.masks[r * lw..(r + 1) * lw]);
            }
            self.actions
                .extend_from_slice(&s.actions[r * comps..(r + 1) * comps]);
            for (dst, src) in self.per_row.iter_mut().zip(per_row) {
                dst.push(src[r]);
            }
        }
    }

    fn minibatch(&self) -> Minibatch<'_> {
        let [old_logp, old_values, advantages, adv_adjust, returns] = &self.per_row;
        Minibatch {
            obs: &self.obs,
            group_ids: &[],
            masks: &self.masks,
            actions: &self.actions,
            old_logp,
            old_values,
            advantages,
            adv_adjust,
            returns,
        }
    }
}

impl<A: EnvAdapter, G: Algorithm<A>, E: Executor + Send> Pack<A, G, E> {
    /// Pack `runs` (at least one; every run the same networks). `pack: false` keeps every
    /// network training run by run (the lockstep baseline a bench compares with).
    pub fn new(
        runs: Vec<Trainer<A, G, E>>,
        pack: bool,
        make_executor: impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, TrainError> {
        let k = runs.len();
        let first = runs.first().ok_or_else(|| TrainError::Config {
            field: "seeds",
            message: "a pack needs at least one run: allowed 1 or more".into(),
        })?;
        if let Some(r) = runs.iter().find(|r| r.cfg.ppo != first.cfg.ppo) {
            return Err(TrainError::Config {
                field: "ppo",
                message: format!(
                    "the runs of a pack train with one [ppo] section; seed {} differs from seed {}",
                    r.cfg.seed, first.cfg.seed
                ),
            });
        }
        let nets = first.nets().len();
        let mut packed = Vec::with_capacity(nets);
        for n in 0..nets {
            let net = &first.nets()[n];
            let same = runs.iter().all(|r| {
                let o = &r.nets()[n];
                o.ac.spec() == net.ac.spec() && o.hyper == net.hyper
            });
            let stored = !net.rewards.is_empty();
            let packs = pack && G::PACKS && k > 1 && same && stored && !net.hyper.pairwise_ratio;
            packed.push(if packs {
                Some(PackedNet::new(&runs, n, &first.cfg, &make_executor)?)
            } else {
                None
            });
        }
        Ok(Self {
            runs,
            packed,
            packed_updates: 0,
            alone_updates: 0,
            minibatches: MinibatchCounts::default(),
        })
    }

    /// Whether network `net` trains packed (when its runs' rows agree).
    pub fn packs(&self, net: usize) -> bool {
        self.packed.get(net).is_some_and(Option::is_some)
    }

    /// One iteration of every run: each run's rollout, advantages and plan, then the epochs
    /// (packed where they can be), then each run's metrics. Every run's wall time is the
    /// pack's; its update time its share of the packed epochs plus its own.
    pub fn iterate(&mut self) -> Result<Vec<IterStats<A::Metrics>>, ShaderError> {
        let start = Instant::now();
        let mut pending = Vec::with_capacity(self.runs.len());
        for run in &mut self.runs {
            pending.push(run.prepare_update()?);
        }
        let t0 = Instant::now();
        let (packed, alone) = self.epochs(&pending)?;
        self.packed_updates += packed;
        self.alone_updates += alone;
        let share = t0.elapsed().as_secs_f64() / self.runs.len() as f64;
        let wall = start.elapsed().as_secs_f64();
        Ok(self
            .runs
            .iter_mut()
            .zip(pending)
            .map(|(run, p)| run.conclude(p, share, Some(wall)))
            .collect())
    }
}

impl<A: EnvAdapter, G: Algorithm<A>, E: Executor + Send> Pack<A, G, E> {
    /// Every network's epochs of every run, the networks side by side on the first run's
    /// pool as a run alone spreads its own (`train_loop::run_nets`): packed where the runs'
    /// rows agree, else run by run. Returns the networks trained packed and run by run; of
    /// several errors, the lowest network's.
    fn epochs(&mut self, pending: &[PendingUpdate]) -> Result<(u64, u64), ShaderError> {
        let (first, rest) = self.runs.split_first_mut().expect("a pack has a run");
        let (pool, cfg0, nets0) = first.pool_cfg_nets();
        let mut work: Vec<NetWork<'_, E>> = self
            .packed
            .iter_mut()
            .enumerate()
            .map(|(n, packed)| NetWork {
                packed: packed.as_mut(),
                nets: Vec::with_capacity(pending.len()),
                plans: pending.iter().map(|p| &p.plans[n]).collect(),
                packed_ran: false,
                minibatches: MinibatchCounts::default(),
                error: None,
            })
            .collect();
        for (n, net) in nets0.iter_mut().enumerate() {
            work[n].nets.push((cfg0, net));
        }
        for run in rest {
            let (_, cfg, nets) = run.pool_cfg_nets();
            for (n, net) in nets.iter_mut().enumerate() {
                work[n].nets.push((cfg, net));
            }
        }
        let job = |view: WorkView<'_, '_, E>| {
            for w in view.0 {
                if let Err(e) = w.run() {
                    w.error = Some(e);
                }
            }
        };
        pool.run_split(WorkView(&mut work), &job);
        let packed = work.iter().filter(|w| w.packed_ran).count() as u64;
        for w in &work {
            self.minibatches.packed += w.minibatches.packed;
            self.minibatches.alone += w.minibatches.alone;
        }
        let alone = work.len() as u64 - packed;
        match work.into_iter().find_map(|w| w.error) {
            Some(e) => Err(e),
            None => Ok((packed, alone)),
        }
    }
}

/// One network's epochs across the runs of a pack.
struct NetWork<'a, E: Executor> {
    packed: Option<&'a mut PackedNet<E>>,
    /// Per run: its config and its copy of this network.
    nets: Vec<(&'a TrainConfig, &'a mut PolicyNet<E>)>,
    plans: Vec<&'a NetPlan>,
    packed_ran: bool,
    minibatches: MinibatchCounts,
    error: Option<ShaderError>,
}

/// A packed network's minibatch launches: packed (one for all sets), and one set's alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinibatchCounts {
    pub packed: u64,
    pub alone: u64,
}

impl<E: Executor + Send> NetWork<'_, E> {
    fn run(&mut self) -> Result<(), ShaderError> {
        let rows = self.nets[0].1.rows.len();
        let same_rows = self.nets.iter().all(|(_, n)| n.rows.len() == rows);
        let any_rows = self.nets.iter().any(|(_, n)| !n.rows.is_empty());
        // Accumulated gradients live where the minibatches ran: a ragged update in
        // accumulate mode would split them between the packed program and the runs'.
        let accumulates = self.nets[0].1.ac.accumulates();
        let packs = any_rows
            && (same_rows || !accumulates)
            && self
                .plans
                .iter()
                .all(|p| p.loss_scale == self.plans[0].loss_scale);
        match &mut self.packed {
            Some(pn) if packs => {
                self.packed_ran = true;
                self.minibatches = pn.epochs(&mut self.nets, &self.plans)?;
                Ok(())
            }
            _ => {
                for ((cfg, net), plan) in self.nets.iter_mut().zip(&self.plans) {
                    net.epochs(cfg, plan)?;
                }
                Ok(())
            }
        }
    }
}

/// Networks handed out to the pool's threads.
struct WorkView<'v, 'a, E: Executor>(&'v mut [NetWork<'a, E>]);

impl<E: Executor + Send> Split for WorkView<'_, '_, E> {
    fn instances(&self) -> usize {
        self.0.len()
    }
    fn split_at(self, at: usize) -> (Self, Self) {
        let (a, b) = self.0.split_at_mut(at);
        (WorkView(a), WorkView(b))
    }
}

impl<E: Executor + Send> PackedNet<E> {
    /// Network `n` of every run as one packed actor-critic (its parameters are copied in
    /// before every update, so the initial ones do not matter).
    fn new<A: EnvAdapter, G: Algorithm<A>>(
        runs: &[Trainer<A, G, E>],
        n: usize,
        cfg: &TrainConfig,
        make_executor: &impl Fn(Program) -> Result<E, ShaderError>,
    ) -> Result<Self, TrainError> {
        let net = &runs[0].nets()[n];
        let spec = net.ac.spec().clone();
        let k = runs.len();
        let packing = Packing {
            sets: k as u32,
            set_rows: cfg.ppo.minibatch_size.min(spec.batch),
        };
        let params = vec![0.0; spec.param_len() as usize * k];
        let ac = PackedActorCritic::new(spec, net.hyper, packing, &params, make_executor)?;
        Ok(Self {
            ac,
            stored: vec![StoredRows::default(); k],
            order: vec![Vec::new(); k],
            mb: (0..k).map(|_| MbRows::default()).collect(),
        })
    }

    /// One network's epochs of every run (each with its plan), as
    /// `update::train_stored_epochs` runs them alone: the advantage transform, the store rows,
    /// the epochs' minibatches in each run's own order, the state out. A minibatch that every
    /// set has, at one size, trains packed; otherwise (HS's ragged stores: one run's last,
    /// shorter minibatch, or a run with more of them) each set that has one trains it on its
    /// run's own actor-critic, the set's state moved there and back only when it changes side.
    fn epochs(
        &mut self,
        nets: &mut [(&TrainConfig, &mut PolicyNet<E>)],
        plans: &[&NetPlan],
    ) -> Result<MinibatchCounts, ShaderError> {
        let ppo = nets[0].0.ppo.clone();
        let mut counts = MinibatchCounts::default();
        for (set, ((_, net), plan)) in nets.iter_mut().zip(plans).enumerate() {
            if let Some(w) = &plan.weights {
                net.transfer_bytes += adjust_advantages(&mut net.ac, w, plan.mix.as_deref())?;
            }
            net.ac.set_loss_scale(plan.loss_scale);
            let state = net.save()?;
            self.ac
                .restore(set as u32, &state.params, &state.optimizer)?;
            self.stored[set] = net.ac.stored_rows()?;
        }
        self.ac.set_loss_scale(plans[0].loss_scale);
        let spec = self.ac.spec();
        let (width, comps, lw) = (
            spec.obs_width as usize,
            spec.action_components.len(),
            spec.logit_width() as usize,
        );
        let mb = ppo.minibatch_size as usize;
        let rows: Vec<usize> = nets.iter().map(|(_, n)| n.rows.len()).collect();
        let chunks: Vec<usize> = rows.iter().map(|r| r.div_ceil(mb)).collect();
        let most = chunks.iter().copied().max().unwrap_or(0);
        for (order, &n) in self.order.iter_mut().zip(&rows) {
            order.clear();
            order.extend(0..n as u32);
        }
        // Where each set's current state is: its packed set, or its run's actor-critic.
        let mut in_run = vec![false; nets.len()];
        let mut minibatches = 0u32;
        let mut picked = Vec::with_capacity(mb);
        for _ in 0..ppo.epochs {
            if ppo.shuffle_minibatches {
                for ((_, net), order) in nets.iter_mut().zip(&mut self.order) {
                    net.shuffle.shuffle(order);
                }
            }
            for c in 0..most {
                let part = |set: usize| {
                    let n = rows[set];
                    (c * mb).min(n)..((c + 1) * mb).min(n)
                };
                let len0 = part(0).len();
                if len0 > 0 && (1..nets.len()).all(|s| part(s).len() == len0) {
                    for (set, (_, net)) in nets.iter_mut().enumerate() {
                        if std::mem::take(&mut in_run[set]) {
                            let state = net.save()?;
                            self.ac
                                .restore(set as u32, &state.params, &state.optimizer)?;
                        }
                        picked.clear();
                        picked.extend(
                            self.order[set][part(set)]
                                .iter()
                                .map(|&i| net.rows[i as usize]),
                        );
                        self.mb[set].gather(&self.stored[set], &picked, width, comps, lw);
                    }
                    let batches: Vec<Minibatch<'_>> =
                        self.mb.iter().map(MbRows::minibatch).collect();
                    self.ac.train(&batches)?;
                    minibatches += 1;
                    counts.packed += 1;
                    for (set, (_, net)) in nets.iter_mut().enumerate() {
                        if c + 1 == chunks[set] {
                            net.loss.add(&self.ac.loss_stats(set as u32)?);
                        }
                    }
                    continue;
                }
                for (set, (_, net)) in nets.iter_mut().enumerate() {
                    if part(set).is_empty() {
                        continue;
                    }
                    if !std::mem::replace(&mut in_run[set], true) {
                        let params = self.ac.params(set as u32)?;
                        let optimizer = self.ac.optimizer_state(set as u32)?;
                        net.restore(&crate::common::NetState { params, optimizer })?;
                    }
                    picked.clear();
                    picked.extend(
                        self.order[set][part(set)]
                            .iter()
                            .map(|&i| net.rows[i as usize]),
                    );
                    net.ac.train_stored(&picked)?;
                    counts.alone += 1;
                    if c + 1 == chunks[set] {
                        let stats = net.ac.loss_stats()?;
                        net.loss.add(&stats);
                    }
                }
            }
        }
        if nets[0].1.ac.accumulates() && minibatches > 0 {
            self.ac.apply_accumulated(minibatches)?;
        }
        let sets = self.ac.save_sets()?;
        for (set, ((_, net), (params, optimizer))) in nets.iter_mut().zip(sets).enumerate() {
            if !in_run[set] {
                net.restore(&crate::common::NetState { params, optimizer })?;
            }
            // What the alone path moves: the minibatches' rows and their statistics.
            net.transfer_bytes += (ppo.epochs as usize * (rows[set] * 4 + 80)) as u64;
            net.ac.finish()?;
        }
        Ok(counts)
    }
}
