//! `fairground train --seeds K`: K runs of one config, seeds `seed .. seed + K`, trained in
//! lockstep in one process with their networks packed ([`crate::pack`]), each written to its
//! own run directory `OUT/seed-<seed>` exactly as `fairground train --seed <seed>` alone would
//! write it (every line and checkpoint but the wall times bit-identical).

use super::dir::{TrainRequest, default_out, resolve};
use super::train::{Session, resolve_request};
use super::{Compute, Iteration, RunTrainer, Summary, each_trainer, erase, open_backend};
use crate::algo::Algorithm;
use crate::algo::fair_ppo::FairPpo;
use crate::algo::fen::Fen;
use crate::algo::fen::hs::FenHs;
use crate::algo::ppo::Ppo;
use crate::algo::soto::Soto;
use crate::algo::soto::hs::SotoHs;
use crate::common::EnvUse;
use crate::config::{Algo, EnvName, TrainConfig};
use crate::env::EnvAdapter;
use crate::env::ah::AhAdapter;
use crate::env::hs::HsAdapter;
use crate::error::TrainError;
use crate::pack::{MinibatchCounts, Pack};
use crate::repro::{AhReproTrainer, uses_store};
use crate::train_loop::Trainer;
use fairground_shaders::{CpuExecutor, Executor, GemmExecutor, GpuExecutor, Program, ShaderError};
use std::path::{Path, PathBuf};

/// K runs iterated together, whatever their environment, algorithm and backend.
pub trait RunPack {
    /// One iteration of every run, in run order.
    fn iterate(&mut self) -> Result<Vec<Iteration>, ShaderError>;
    /// Run `r`'s trainer (its checkpoints, parameters, evaluation).
    fn run(&mut self, r: usize) -> &mut dyn RunTrainer;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Networks per run that train packed (0: every network trains run by run).
    fn packed_networks(&self) -> usize;
    /// Updates of a network trained packed, and trained run by run, so far.
    fn updates(&self) -> (u64, u64);
    /// The packed updates' minibatch launches so far: packed, and one set's alone.
    fn minibatches(&self) -> MinibatchCounts {
        MinibatchCounts::default()
    }
}

impl<A, G, E> RunPack for Pack<A, G, E>
where
    A: EnvAdapter,
    A::Metrics: Summary,
    G: Algorithm<A>,
    E: Executor + Send,
{
    fn iterate(&mut self) -> Result<Vec<Iteration>, ShaderError> {
        Ok(Pack::iterate(self)?
            .into_iter()
            .map(|s| {
                let summary = s.env.summary(s.trained as f64 / s.wall_s);
                erase(s, summary)
            })
            .collect())
    }
    fn run(&mut self, r: usize) -> &mut dyn RunTrainer {
        &mut self.runs[r]
    }
    fn len(&self) -> usize {
        self.runs.len()
    }
    fn packed_networks(&self) -> usize {
        (0..self.runs[0].nets().len())
            .filter(|&n| self.packs(n))
            .count()
    }
    fn updates(&self) -> (u64, u64) {
        (self.packed_updates, self.alone_updates)
    }
    fn minibatches(&self) -> MinibatchCounts {
        self.minibatches
    }
}

/// Runs that cannot pack (the AH reference profile's host-side trainer) iterated one after
/// another.
struct Lockstep(Vec<Box<dyn RunTrainer>>);

impl RunPack for Lockstep {
    fn iterate(&mut self) -> Result<Vec<Iteration>, ShaderError> {
        self.0.iter_mut().map(|t| t.iterate()).collect()
    }
    fn run(&mut self, r: usize) -> &mut dyn RunTrainer {
        &mut *self.0[r]
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn packed_networks(&self) -> usize {
        0
    }
    fn updates(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// One trainer as a pack of one (`bench train` without `--seeds`).
pub fn single(t: Box<dyn RunTrainer>) -> Box<dyn RunPack> {
    Box::new(Lockstep(vec![t]))
}

/// The runs of `cfgs` (one config but the seed, or α and β) as one pack on the opened backend;
/// `pack: false` trains every network run by run (the baseline packing is measured against).
pub fn make_pack(
    cfgs: &[TrainConfig],
    env_use: EnvUse,
    compute: Compute,
    pack: bool,
) -> Result<Box<dyn RunPack>, TrainError> {
    match compute {
        Compute::Gpu(ctx) => pack_with(cfgs, env_use, pack, move |p| {
            GpuExecutor::new(ctx.clone(), p)
        }),
        Compute::Gemm(pool) => pack_with(cfgs, env_use, pack, move |p| {
            Ok(GemmExecutor::new(p, pool.clone()))
        }),
        Compute::Twins => pack_with(cfgs, env_use, pack, |p| Ok(CpuExecutor::new(p))),
    }
}

fn pack_with<E: Executor + Send + 'static>(
    cfgs: &[TrainConfig],
    env_use: EnvUse,
    pack: bool,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<Box<dyn RunPack>, TrainError> {
    let cfg = &cfgs[0];
    if let Some(c) = cfgs
        .iter()
        .find(|c| (c.env, c.algo, c.profile) != (cfg.env, cfg.algo, cfg.profile))
    {
        return Err(TrainError::Config {
            field: "seeds",
            message: format!(
                "the runs of a pack share env, algo and profile; seed {} differs from seed {}",
                c.seed, cfg.seed
            ),
        });
    }
    Ok(each_trainer!(
        cfg,
        env_use,
        make,
        {
            let runs = cfgs
                .iter()
                .map(|c| AhReproTrainer::new(c, env_use, &make).map(|t| Box::new(t) as _))
                .collect::<Result<Vec<Box<dyn RunTrainer>>, _>>()?;
            Box::new(Lockstep(runs))
        },
        |new| {
            let runs = cfgs.iter().map(new).collect::<Result<Vec<_>, _>>()?;
            Box::new(Pack::new(runs, pack, &make)?)
        }
    ))
}

/// The requests of a pack's runs: fresh, seeds `seed .. seed + K` under `OUT/seed-<seed>`
/// (OUT must be unused); resumed, the `seed-*` run directories OUT holds (K of them).
fn run_requests(req: &TrainRequest) -> Result<(PathBuf, Vec<TrainRequest>), TrainError> {
    let k = req.seeds as u64;
    let one = TrainRequest {
        seeds: 1,
        ..req.clone()
    };
    if req.resume {
        let out = req.out.clone().ok_or_else(|| TrainError::Resume {
            dir: "?".into(),
            why: "--resume --seeds needs --out DIR (the directory of the pack's runs)".into(),
        })?;
        let dirs = seed_dirs(&out)?;
        if dirs.len() as u64 != k {
            return Err(TrainError::Resume {
                dir: out.display().to_string(),
                why: format!(
                    "--seeds {k} but it holds {} run directories (seed-N)",
                    dirs.len()
                ),
            });
        }
        let reqs = dirs
            .into_iter()
            .map(|d| TrainRequest {
                out: Some(d),
                overrides: crate::run::Overrides {
                    seed: None,
                    ..one.overrides.clone()
                },
                ..one.clone()
            })
            .collect();
        return Ok((out, reqs));
    }
    let (base, _) = resolve(&TrainRequest {
        out: None,
        ..one.clone()
    })?;
    let out = match &req.out {
        Some(o) => o.clone(),
        None => {
            let mut d = default_out(&base).into_os_string();
            d.push(format!("-x{k}"));
            PathBuf::from(d)
        }
    };
    if out.is_file() {
        return Err(TrainError::Io {
            path: out.display().to_string(),
            message: "--out names a file, not a directory for the pack's runs".into(),
        });
    }
    let seed0 = base.seed;
    let reqs = (0..k)
        .map(|r| {
            let seed = seed0.checked_add(r).ok_or_else(|| TrainError::Config {
                field: "seed",
                message: format!(
                    "seed {seed0} + {k} seeds overflows: allowed up to {}",
                    u64::MAX - k
                ),
            })?;
            Ok(TrainRequest {
                out: Some(out.join(format!("seed-{seed}"))),
                overrides: crate::run::Overrides {
                    seed: Some(seed),
                    ..one.overrides.clone()
                },
                ..one.clone()
            })
        })
        .collect::<Result<Vec<_>, TrainError>>()?;
    Ok((out, reqs))
}

/// OUT's `seed-N` run directories in seed order.
fn seed_dirs(out: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let entries = std::fs::read_dir(out).map_err(|e| TrainError::io(out, e))?;
    let mut dirs: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seed = name.strip_prefix("seed-")?.parse().ok()?;
            e.path().is_dir().then(|| (seed, e.path()))
        })
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, d)| d).collect())
}

/// `fairground train --seeds K`: returns the directory holding the runs.
pub fn train_pack(req: &TrainRequest) -> Result<PathBuf, TrainError> {
    let (out, reqs) = run_requests(req)?;
    let dir = format!("{} --seeds {}", out.display(), reqs.len());
    train_runs(&out, &reqs, &|iteration| TrainError::Interrupted {
        dir: dir.clone(),
        iteration,
    })?;
    Ok(out)
}

/// Train the runs of `reqs` (each names its run directory, fresh or resumed; every run the
/// same env, algo and profile) in lockstep as one pack, each written as it would be alone.
/// `out` names the pack in errors; `interrupted` is the error of a stop asked for at an
/// iteration (it says how to continue). `no_pack` and `quiet` are the first request's.
pub fn train_runs(
    out: &Path,
    reqs: &[TrainRequest],
    interrupted: &dyn Fn(u32) -> TrainError,
) -> Result<(), TrainError> {
    let started = std::time::Instant::now();
    let first = reqs.first().ok_or_else(|| TrainError::Config {
        field: "seeds",
        message: "a pack needs at least one run: allowed 1 or more".into(),
    })?;
    let mut cfgs = Vec::with_capacity(reqs.len());
    let mut dirs = Vec::with_capacity(reqs.len());
    for r in reqs {
        let (cfg, dir) = resolve_request(r)?;
        cfgs.push(cfg);
        dirs.push(dir);
    }
    let (backend, ctx) = open_backend(cfgs[0].backend, cfgs[0].threads)?;
    for c in &mut cfgs {
        c.backend = backend;
    }
    let mut pack = make_pack(&cfgs, EnvUse::Train, ctx, !first.no_pack)?;
    let mut sessions = Vec::with_capacity(reqs.len());
    for (r, ((sub, cfg), dir)) in reqs.iter().zip(cfgs).zip(dirs).enumerate() {
        sessions.push(Session::start(sub, cfg, dir, pack.run(r), false)?);
    }
    let at = pack.run(0).iteration();
    if let Some(r) = (1..pack.len()).find(|&r| pack.run(r).iteration() != at) {
        return Err(TrainError::Resume {
            dir: out.display().to_string(),
            why: format!(
                "its runs resume from different iterations ({} at {at}, {} at {}): resume \
                 them one by one",
                sessions[0].dir.display(),
                sessions[r].dir.display(),
                pack.run(r).iteration()
            ),
        });
    }
    if !first.quiet {
        eprintln!(
            "packing {} runs: {} network(s) per run train as one packed program{}",
            pack.len(),
            pack.packed_networks(),
            if first.no_pack { " (--no-pack)" } else { "" }
        );
    }
    let iterations = sessions[0].cfg.iterations;
    if let Some(s) = sessions.iter().find(|s| s.cfg.iterations != iterations) {
        return Err(TrainError::Config {
            field: "iterations",
            message: format!(
                "the runs of a pack train the same number of iterations; {} has {}, {} has \
                 {iterations}",
                s.dir.display(),
                s.cfg.iterations,
                sessions[0].dir.display()
            ),
        });
    }
    while pack.run(0).iteration() < iterations {
        let its = pack.iterate()?;
        let mut first_error = None;
        for (r, (session, it)) in sessions.iter_mut().zip(its).enumerate() {
            if let Err(e) = session.record(pack.run(r), it) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(TrainError::Interrupted { iteration, .. }) => return Err(interrupted(iteration)),
            Some(e) => return Err(e),
            None => {}
        }
    }
    for (r, s) in sessions.iter().enumerate() {
        s.finish(started, pack.run(r));
    }
    if !first.quiet {
        let (packed, alone) = pack.updates();
        let mb = pack.minibatches();
        eprintln!(
            "packed updates: {packed} of {} network updates trained packed, {alone} run by run; \
             their minibatches: {} launched packed, {} on their own run",
            packed + alone,
            mb.packed,
            mb.alone
        );
    }
    Ok(())
}
