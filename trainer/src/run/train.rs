//! `fairground train`: resolve and validate the config, open the backend, create (or resume)
//! the run directory, then iterate: one `metrics.jsonl` line per iteration, a checkpoint every
//! `checkpoint_every` iterations and at the end, progress on stderr.

use super::dir::{
    RunLock, TrainRequest, append_metrics, ignored_options, lock_run_dir, metrics_up_to, resolve,
    start_run_dir,
};
use super::{RunTrainer, make_trainer, open_backend};
use crate::common::EnvUse;
use crate::config::{EnvName, TrainConfig};
use crate::error::TrainError;
use crate::io::write_atomic;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// One line of `metrics.jsonl` (docs/schema.md). Every key but `trained_agent_steps_per_s` (HS:
/// `trained_decisions_per_s`) and `wall_s` (wall clock) is bit-identical for the same seed,
/// backend and adapter.
#[derive(Serialize)]
struct MetricsLine<'a> {
    iteration: u32,
    /// Instance-steps (AH: of both worlds; HS: decision rounds × instances), cumulative.
    env_steps: u64,
    #[serde(flatten)]
    body: &'a serde_json::Map<String, serde_json::Value>,
    /// `trained_<unit>_per_s`: trained agent-steps (AH) or decisions (HS) per second.
    #[serde(flatten)]
    rate: serde_json::Map<String, serde_json::Value>,
    wall_s: f64,
    param_hash: &'a str,
}

/// `fairground train`: returns the run directory (with `seeds` > 1, the directory holding the
/// pack's run directories).
pub fn train(req: &TrainRequest) -> Result<PathBuf, TrainError> {
    if req.seeds > 1 {
        return super::packed::train_pack(req);
    }
    let started = std::time::Instant::now();
    let (mut cfg, dir) = resolve_request(req)?;
    let (backend, ctx) = open_backend(cfg.backend, cfg.threads)?;
    cfg.backend = backend;
    let mut trainer = make_trainer(&cfg, EnvUse::Train, ctx)?;
    let mut run = Session::start(req, cfg, dir, &mut *trainer, true)?;
    while trainer.iteration() < run.cfg.iterations {
        let it = trainer.iterate()?;
        run.record(&mut *trainer, it)?;
    }
    run.finish(started, &*trainer);
    Ok(run.dir)
}

/// The request's config and run directory, with a warning for each option its algorithm
/// ignores.
pub(super) fn resolve_request(req: &TrainRequest) -> Result<(TrainConfig, PathBuf), TrainError> {
    let (cfg, dir) = resolve(req)?;
    if !req.quiet {
        for name in ignored_options(req, &cfg) {
            eprintln!("warning: {name} is ignored: it sets Fair-PPO's penalty and --algo is ppo");
        }
    }
    Ok((cfg, dir))
}

/// One run's side of a `train` invocation: the resolved config, the run directory (locked
/// while it lives) and the metrics lines so far. The trainer is passed in (a pack owns its
/// runs' trainers).
pub(super) struct Session<'a> {
    req: &'a TrainRequest,
    pub(super) cfg: TrainConfig,
    pub(super) dir: PathBuf,
    lines: Vec<String>,
    bar: Option<ProgressBar>,
    /// Prefix of this run's progress lines (a pack's `seed N: `).
    label: String,
    /// The checkpoint written last by this session.
    last_good: Option<String>,
    warned: bool,
    last_summary: String,
    _lock: RunLock,
}

impl<'a> Session<'a> {
    /// Create the run directory (or lock it and resume `trainer` from its newest checkpoint
    /// that verifies). `bar`: a progress bar on a terminal (a pack's runs print lines).
    pub(super) fn start(
        req: &'a TrainRequest,
        cfg: TrainConfig,
        dir: PathBuf,
        trainer: &mut dyn RunTrainer,
        bar: bool,
    ) -> Result<Self, TrainError> {
        let mut lines = Vec::new();
        let lock = if req.resume {
            let lock = lock_run_dir(&dir)?;
            if let Some(done) = trainer.resume(&dir)? {
                lines = metrics_up_to(&dir.join("metrics.jsonl"), done)?;
                check_resumable(&dir, done, cfg.iterations, lines.len())?;
            }
            write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
            lock
        } else {
            start_run_dir(&dir, &cfg, trainer.adapter(), trainer.seeds())?;
            lock_run_dir(&dir)?
        };
        let with_bar = bar;
        let bar = if bar {
            progress_bar(req, trainer, cfg.iterations)
        } else {
            None
        };
        let env = match cfg.env {
            EnvName::Ah => "ah",
            EnvName::Hs => "hs",
        };
        say(
            req,
            &bar,
            format!(
                "training {env} on {} ({}) into {}",
                cfg.backend.name(),
                trainer.adapter(),
                dir.display()
            ),
        );
        // A pack's runs print lines (no bar), each under its seed.
        let label = if bar.is_none() && !with_bar {
            format!("seed {}: ", cfg.seed)
        } else {
            String::new()
        };
        Ok(Self {
            req,
            cfg,
            dir,
            lines,
            bar,
            label,
            last_good: None,
            warned: false,
            last_summary: "-".into(),
            _lock: lock,
        })
    }

    /// After one iteration of `trainer`: check it, write its metrics line and (on the cadence) checkpoint,
    /// report progress; stop when non-finite or asked to.
    pub(super) fn record(
        &mut self,
        trainer: &mut dyn RunTrainer,
        it: super::Iteration,
    ) -> Result<(), TrainError> {
        let checked = trainer.check_params()?;
        if let Some(what) = checked.non_finite {
            return Err(TrainError::NonFinite {
                what,
                iteration: trainer.iteration(),
                last_good: self
                    .last_good
                    .clone()
                    .or_else(|| latest_checkpoint_name(&self.dir))
                    .unwrap_or_else(|| "none (start again)".into()),
            });
        }
        self.warn_on_divergence(&it, trainer.iteration());
        let hash = checked.hash;
        let rate = it.trained as f64 / it.wall_s;
        let line = MetricsLine {
            iteration: trainer.iteration(),
            env_steps: trainer.env_steps(),
            body: &it.body,
            rate: [(
                format!("trained_{}_per_s", trainer.trained_unit()),
                rate.round().into(),
            )]
            .into_iter()
            .collect(),
            wall_s: it.wall_s,
            param_hash: &hash,
        };
        append_metrics(&self.dir.join("metrics.jsonl"), &mut self.lines, &line)?;
        let (i, n) = (trainer.iteration(), self.cfg.iterations);
        if i % self.cfg.checkpoint_every == 0 || i == n {
            self.save(trainer, &hash)?;
        }
        match &self.bar {
            Some(b) => {
                b.set_message(it.summary.clone());
                b.set_position(u64::from(i));
            }
            None if !self.req.quiet => eprintln!("{}iteration {i}/{n}: {}", self.label, it.summary),
            None => {}
        }
        self.last_summary = it.summary;
        let stop = self
            .req
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst));
        if stop && i < n {
            if self.last_good.as_deref() != Some(checkpoint_name(&self.dir, i).as_str()) {
                self.save(trainer, &hash)?;
            }
            if let Some(b) = &self.bar {
                b.abandon();
            }
            return Err(TrainError::Interrupted {
                dir: self.dir.display().to_string(),
                iteration: i,
            });
        }
        Ok(())
    }

    fn save(&mut self, trainer: &mut dyn RunTrainer, hash: &str) -> Result<(), TrainError> {
        trainer.save(&self.dir, hash)?;
        self.last_good = Some(checkpoint_name(&self.dir, trainer.iteration()));
        Ok(())
    }

    /// Say once when an update moved the policy far (lr = 1, vf_coef = 1e6 collapse it).
    fn warn_on_divergence(&mut self, it: &super::Iteration, iteration: u32) {
        let kl = it.body.get("approx_kl").and_then(serde_json::Value::as_f64);
        if let Some(kl) = kl.filter(|&kl| !self.warned && kl > DIVERGENCE_KL) {
            self.warned = true;
            say(
                self.req,
                &self.bar,
                format!(
                    "warning: approx_kl {kl:.3} at iteration {}: one update moved the policy \
                     far (is ppo.lr or ppo.vf_coef too large?)",
                    iteration
                ),
            );
        }
    }

    /// The closing summary line.
    pub(super) fn finish(&self, started: std::time::Instant, trainer: &dyn RunTrainer) {
        if let Some(b) = &self.bar {
            b.finish();
        }
        if !self.req.quiet {
            eprintln!(
                "{}done: {} iterations in {:.0} s, last {}; checkpoint {}",
                self.label,
                self.cfg.iterations,
                started.elapsed().as_secs_f64(),
                self.last_summary,
                checkpoint_name(&self.dir, trainer.iteration()),
            );
        }
    }
}

/// An approximate KL per update above which the policy is said to diverge (PPO's updates are
/// meant to stay near 0.01-0.05).
const DIVERGENCE_KL: f64 = 1.0;

fn checkpoint_name(dir: &Path, iteration: u32) -> String {
    crate::io::ckpt_stem(dir, iteration).display().to_string()
}

/// The newest checkpoint's name, for a message.
fn latest_checkpoint_name(dir: &Path) -> Option<String> {
    crate::io::latest_checkpoint(dir).map(|i| checkpoint_name(dir, i))
}

/// A resumed run continues only forward, from a checkpoint its metrics agree with.
fn check_resumable(dir: &Path, done: u32, iterations: u32, lines: usize) -> Result<(), TrainError> {
    let refuse = |why: String| {
        Err(TrainError::Resume {
            dir: dir.display().to_string(),
            why,
        })
    };
    if done == iterations {
        return refuse(format!(
            "already complete ({done}/{iterations}): pass a larger --iterations to continue it"
        ));
    }
    if done > iterations {
        return refuse(format!(
            "its checkpoint is at iteration {done}, past --iterations {iterations}"
        ));
    }
    if lines != done as usize {
        return refuse(format!(
            "its checkpoint is at iteration {done} but metrics.jsonl holds {lines} lines up to it"
        ));
    }
    Ok(())
}

/// A progress bar on a terminal (none for tests, pipes and `quiet`).
fn progress_bar(req: &TrainRequest, t: &dyn RunTrainer, total: u32) -> Option<ProgressBar> {
    if req.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = ProgressBar::new(u64::from(total));
    b.set_style(
        ProgressStyle::with_template("{spinner} iteration {pos}/{len} [{bar:30}] {msg} ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    b.set_position(u64::from(t.iteration()));
    Some(b)
}

fn say(req: &TrainRequest, bar: &Option<ProgressBar>, msg: String) {
    if req.quiet {
        return;
    }
    match bar {
        Some(b) => b.println(msg),
        None => eprintln!("{msg}"),
    }
}
