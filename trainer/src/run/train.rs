//! `fairground train`: resolve and validate the config, open the backend, create (or resume)
//! the run directory, then iterate: one `metrics.jsonl` line per iteration, a checkpoint every
//! `checkpoint_every` iterations and at the end, progress on stderr.

use super::dir::{
    TrainRequest, append_metrics, ignored_options, lock_run_dir, metrics_up_to, resolve,
    start_run_dir,
};
use super::{RunTrainer, make_trainer, open_backend};
use crate::common::EnvUse;
use crate::config::EnvName;
use crate::error::TrainError;
use crate::io::write_atomic;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
    let (mut cfg, dir) = resolve(req)?;
    if !req.quiet {
        for name in ignored_options(req, &cfg) {
            eprintln!("warning: {name} is ignored: it sets Fair-PPO's penalty and --algo is ppo");
        }
    }
    let started = std::time::Instant::now();
    let (backend, ctx) = open_backend(cfg.backend)?;
    cfg.backend = backend;
    let mut trainer = make_trainer(&cfg, EnvUse::Train, ctx)?;
    let mut lines: Vec<String> = Vec::new();
    let metrics_path = dir.join("metrics.jsonl");
    let _lock = if req.resume {
        let lock = lock_run_dir(&dir)?;
        if let Some(done) = trainer.resume(&dir)? {
            lines = metrics_up_to(&metrics_path, done)?;
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
    let mut last_good = None;
    let mut warned = false;
    let mut last_summary = String::from("-");
    while trainer.iteration() < cfg.iterations {
        let it = trainer.iterate()?;
        if let Some(what) = trainer.non_finite()? {
            let last_good = last_good
                .or_else(|| latest_checkpoint_name(&dir))
                .unwrap_or_else(|| "none (start again)".into());
            return Err(TrainError::NonFinite {
                what,
                iteration: trainer.iteration(),
                last_good,
            });
        }
        if !warned
            && let Some(kl) = it.body.get("approx_kl").and_then(|v| v.as_f64())
            && kl > DIVERGENCE_KL
        {
            warned = true;
            say(
                req,
                &bar,
                format!(
                    "warning: approx_kl {kl:.3} at iteration {}: one update moved the policy \
                     far (is ppo.lr or ppo.vf_coef too large?)",
                    trainer.iteration()
                ),
            );
        }
        let hash = trainer.param_hash()?;
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
        append_metrics(&metrics_path, &mut lines, &line)?;
        let i = trainer.iteration();
        if i % cfg.checkpoint_every == 0 || i == cfg.iterations {
            trainer.save(&dir, &hash)?;
            last_good = Some(checkpoint_name(&dir, i));
        }
        match &bar {
            Some(b) => {
                b.set_message(it.summary.clone());
                b.set_position(u64::from(i));
            }
            None if !req.quiet => {
                eprintln!("iteration {i}/{}: {}", cfg.iterations, it.summary)
            }
            None => {}
        }
        last_summary = it.summary;
        let stop = req
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
        if stop && i < cfg.iterations {
            if last_good.as_deref() != Some(checkpoint_name(&dir, i).as_str()) {
                trainer.save(&dir, &hash)?;
            }
            if let Some(b) = &bar {
                b.abandon();
            }
            return Err(TrainError::Interrupted {
                dir: dir.display().to_string(),
                iteration: i,
            });
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    if !req.quiet {
        eprintln!(
            "done: {} iterations in {:.0} s, last {}; checkpoint {}",
            cfg.iterations,
            started.elapsed().as_secs_f64(),
            last_summary,
            checkpoint_name(&dir, trainer.iteration()),
        );
    }
    Ok(dir)
}

/// An approximate KL per update above which the policy is said to diverge (PPO's updates are
/// meant to stay near 0.01-0.05).
const DIVERGENCE_KL: f64 = 1.0;

fn checkpoint_name(dir: &Path, iteration: u32) -> String {
    dir.join("checkpoints")
        .join(format!("ckpt-{iteration:08}"))
        .display()
        .to_string()
}

/// The newest checkpoint's name, for a message.
fn latest_checkpoint_name(dir: &Path) -> Option<String> {
    let newest = std::fs::read_dir(dir.join("checkpoints"))
        .ok()?
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_prefix("ckpt-")?
                .strip_suffix(".json")?
                .parse::<u32>()
                .ok()
        })
        .max()?;
    Some(checkpoint_name(dir, newest))
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
