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

/// `fairground train`: returns the run directory.
pub fn train(req: &TrainRequest) -> Result<PathBuf, TrainError> {
    let started = std::time::Instant::now();
    let mut run = Session::open(req)?;
    while run.trainer.iteration() < run.cfg.iterations {
        run.iteration()?;
    }
    run.finish(started);
    Ok(run.dir)
}

/// One `train` invocation: the resolved config, the run directory (locked while it lives),
/// the trainer and the metrics lines so far.
struct Session<'a> {
    req: &'a TrainRequest,
    cfg: TrainConfig,
    dir: PathBuf,
    trainer: Box<dyn RunTrainer>,
    lines: Vec<String>,
    bar: Option<ProgressBar>,
    /// The checkpoint written last by this session.
    last_good: Option<String>,
    warned: bool,
    last_summary: String,
    _lock: RunLock,
}

impl<'a> Session<'a> {
    /// Resolve and validate, open the backend, then create the run directory (or lock it and
    /// resume from its newest checkpoint that verifies).
    fn open(req: &'a TrainRequest) -> Result<Self, TrainError> {
        let (mut cfg, dir) = resolve(req)?;
        if !req.quiet {
            for name in ignored_options(req, &cfg) {
                eprintln!(
                    "warning: {name} is ignored: it sets Fair-PPO's penalty and --algo is ppo"
                );
            }
        }
        let (backend, ctx) = open_backend(cfg.backend, cfg.threads)?;
        cfg.backend = backend;
        let mut trainer = make_trainer(&cfg, EnvUse::Train, ctx)?;
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
        let bar = progress_bar(req, &*trainer, cfg.iterations);
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
        Ok(Self {
            req,
            cfg,
            dir,
            trainer,
            lines,
            bar,
            last_good: None,
            warned: false,
            last_summary: "-".into(),
            _lock: lock,
        })
    }

    /// One iteration: train, check, write its metrics line and (on the cadence) checkpoint,
    /// report progress; stop when non-finite or asked to.
    fn iteration(&mut self) -> Result<(), TrainError> {
        let it = self.trainer.iterate()?;
        let checked = self.trainer.check_params()?;
        if let Some(what) = checked.non_finite {
            return Err(TrainError::NonFinite {
                what,
                iteration: self.trainer.iteration(),
                last_good: self
                    .last_good
                    .clone()
                    .or_else(|| latest_checkpoint_name(&self.dir))
                    .unwrap_or_else(|| "none (start again)".into()),
            });
        }
        self.warn_on_divergence(&it);
        let hash = checked.hash;
        let rate = it.trained as f64 / it.wall_s;
        let line = MetricsLine {
            iteration: self.trainer.iteration(),
            env_steps: self.trainer.env_steps(),
            body: &it.body,
            rate: [(
                format!("trained_{}_per_s", self.trainer.trained_unit()),
                rate.round().into(),
            )]
            .into_iter()
            .collect(),
            wall_s: it.wall_s,
            param_hash: &hash,
        };
        append_metrics(&self.dir.join("metrics.jsonl"), &mut self.lines, &line)?;
        let (i, n) = (self.trainer.iteration(), self.cfg.iterations);
        if i % self.cfg.checkpoint_every == 0 || i == n {
            self.save(&hash)?;
        }
        match &self.bar {
            Some(b) => {
                b.set_message(it.summary.clone());
                b.set_position(u64::from(i));
            }
            None if !self.req.quiet => eprintln!("iteration {i}/{n}: {}", it.summary),
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
                self.save(&hash)?;
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

    fn save(&mut self, hash: &str) -> Result<(), TrainError> {
        self.trainer.save(&self.dir, hash)?;
        self.last_good = Some(checkpoint_name(&self.dir, self.trainer.iteration()));
        Ok(())
    }

    /// Say once when an update moved the policy far (lr = 1, vf_coef = 1e6 collapse it).
    fn warn_on_divergence(&mut self, it: &super::Iteration) {
        let kl = it.body.get("approx_kl").and_then(serde_json::Value::as_f64);
        if let Some(kl) = kl.filter(|&kl| !self.warned && kl > DIVERGENCE_KL) {
            self.warned = true;
            say(
                self.req,
                &self.bar,
                format!(
                    "warning: approx_kl {kl:.3} at iteration {}: one update moved the policy \
                     far (is ppo.lr or ppo.vf_coef too large?)",
                    self.trainer.iteration()
                ),
            );
        }
    }

    /// The closing summary line.
    fn finish(&self, started: std::time::Instant) {
        if let Some(b) = &self.bar {
            b.finish();
        }
        if !self.req.quiet {
            eprintln!(
                "done: {} iterations in {:.0} s, last {}; checkpoint {}",
                self.cfg.iterations,
                started.elapsed().as_secs_f64(),
                self.last_summary,
                checkpoint_name(&self.dir, self.trainer.iteration()),
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
