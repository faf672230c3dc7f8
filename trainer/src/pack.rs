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
use crate::train_loop::{IterStats, Trainer};
use crate::update::adjust_advantages;
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
        for n in 0..self.packed.len() {
            let plans: Vec<&NetPlan> = pending.iter().map(|p| &p.plans[n]).collect();
            let rows = self.runs[0].nets()[n].rows.len();
            let uniform = self.runs.iter().all(|r| r.nets()[n].rows.len() == rows)
                && plans.iter().all(|p| p.loss_scale == plans[0].loss_scale);
            match &mut self.packed[n] {
                Some(pn) if uniform && rows > 0 => {
                    pn.epochs(&mut self.runs, n, &plans)?;
                    self.packed_updates += 1;
                }
                _ => {
                    for (run, plan) in self.runs.iter_mut().zip(&plans) {
                        run.net_epochs(n, plan)?;
                    }
                    self.alone_updates += 1;
                }
            }
        }
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

    /// Network `n`'s epochs of every run (each with its plan), as
    /// `update::train_stored_epochs` runs them alone: the state in, the advantage transform,
    /// the store rows, K epochs of minibatches in each run's own order, the state out.
    fn epochs<A: EnvAdapter, G: Algorithm<A>>(
        &mut self,
        runs: &mut [Trainer<A, G, E>],
        n: usize,
        plans: &[&NetPlan],
    ) -> Result<(), ShaderError> {
        let ppo = runs[0].cfg.ppo.clone();
        for (set, (run, plan)) in runs.iter_mut().zip(plans).enumerate() {
            let net = &mut run.nets_mut()[n];
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
        let rows = runs[0].nets()[n].rows.len();
        let mb = ppo.minibatch_size as usize;
        for order in &mut self.order {
            order.clear();
            order.extend(0..rows as u32);
        }
        let chunks = rows.div_ceil(mb);
        let mut minibatches = 0u32;
        let mut picked = Vec::with_capacity(mb);
        for _ in 0..ppo.epochs {
            if ppo.shuffle_minibatches {
                for (run, order) in runs.iter_mut().zip(&mut self.order) {
                    run.nets_mut()[n].shuffle.shuffle(order);
                }
            }
            for c in 0..chunks {
                for (set, run) in runs.iter().enumerate() {
                    let net = &run.nets()[n];
                    let part = &self.order[set][c * mb..((c + 1) * mb).min(rows)];
                    picked.clear();
                    picked.extend(part.iter().map(|&i| net.rows[i as usize]));
                    self.mb[set].gather(&self.stored[set], &picked, width, comps, lw);
                }
                let batches: Vec<Minibatch<'_>> = self.mb.iter().map(MbRows::minibatch).collect();
                self.ac.train(&batches)?;
                minibatches += 1;
                if c + 1 == chunks {
                    for (set, run) in runs.iter_mut().enumerate() {
                        let stats = self.ac.loss_stats(set as u32)?;
                        run.nets_mut()[n].loss.add(&stats);
                    }
                }
            }
        }
        if runs[0].nets()[n].ac.accumulates() && minibatches > 0 {
            self.ac.apply_accumulated(minibatches)?;
        }
        for (run, (params, optimizer)) in runs.iter_mut().zip(self.ac.save_sets()?) {
            let net = &mut run.nets_mut()[n];
            net.restore(&crate::common::NetState { params, optimizer })?;
            // What the alone path moves: the minibatches' rows and their statistics.
            net.transfer_bytes += (ppo.epochs as usize * (rows * 4 + chunks * 80)) as u64;
            net.ac.finish()?;
        }
        Ok(())
    }
}
