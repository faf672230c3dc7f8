//! Sweeps: a planned list of runs ([`plan`]) executed one index at a time ([`run_index`]),
//! on one machine or as an array job, with a shared filesystem as the only coordination.
//!
//! The layout of a sweep directory:
//! - `sweep.json`: the plan (axes, and per run its axis values, config path and content hash);
//! - `runs/NNNN/config.toml`: run N's config file (base + its axis values);
//! - `runs/NNNN/run/`: its run directory, as `fairground train --config … --out …` makes it;
//! - `runs/NNNN/done.json`: written last, after the run finished (its final parameter hash)
//!   and, with an `[eval]` table, was evaluated (`eval.json` in its run directory);
//! - `runs/NNNN/error.txt`: the error line of its last failed attempt (removed on success).
//!
//! A run's state is read from those files alone, so any process on any machine that sees the
//! directory agrees on it.

pub mod plan;
pub mod report;

pub use plan::{PlannedRun, Sweep, load, plan};

use crate::error::TrainError;
use crate::io::{read_to_string, write_atomic};
use crate::run::{TrainRequest, train};
use std::path::Path;

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Nothing started.
    Pending,
    /// A run directory with at least one checkpoint and no `done.json`: it resumes.
    Partial { iterations: u32 },
    /// Finished (`done.json`).
    Done { param_hash: String },
    /// The last attempt failed with this line (`error.txt`).
    Failed { error: String },
}

impl RunState {
    pub fn name(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Partial { .. } => "partial",
            RunState::Done { .. } => "done",
            RunState::Failed { .. } => "failed",
        }
    }
}

/// `runs/NNNN/done.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Done {
    pub index: usize,
    pub config_hash: String,
    pub param_hash: String,
    pub iterations: u32,
}

fn run_root(dir: &Path, run: &PlannedRun) -> std::path::PathBuf {
    dir.join(&run.config)
        .parent()
        .expect("runs/NNNN/config.toml")
        .to_path_buf()
}

/// The state of planned run `run` of the sweep in `dir`.
pub fn state(dir: &Path, run: &PlannedRun) -> RunState {
    let root = run_root(dir, run);
    if let Ok(text) = std::fs::read_to_string(root.join("done.json"))
        && let Ok(d) = serde_json::from_str::<Done>(&text)
        && d.config_hash == run.config_hash
    {
        return RunState::Done {
            param_hash: d.param_hash,
        };
    }
    if let Ok(e) = std::fs::read_to_string(root.join("error.txt")) {
        return RunState::Failed {
            error: e.trim().to_string(),
        };
    }
    match crate::io::latest_checkpoint(&dir.join(&run.dir)) {
        Some(k) => RunState::Partial { iterations: k },
        None => RunState::Pending,
    }
}

/// What [`run_index`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Already finished: nothing was trained.
    Skipped,
    /// Trained from scratch, or resumed from iteration k.
    Trained { resumed_from: Option<u32> },
}

/// `sweep run DIR --index I`: train run I (resume it if partial, skip it if done). A run
/// directory that holds another config is refused by the trainer's resume check; a config
/// file changed since the plan is refused by its hash. On failure the error line is kept in
/// `error.txt` for `status`.
pub fn run_index(
    dir: &Path,
    index: usize,
    quiet: bool,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<RunOutcome, TrainError> {
    let sweep = load(dir)?;
    let run = sweep.runs.get(index).ok_or_else(|| TrainError::Io {
        path: dir.display().to_string(),
        message: format!(
            "--index {index}: the sweep has runs 0..={}",
            sweep.runs.len().saturating_sub(1)
        ),
    })?;
    let (cfg_path, cfg_text) = plan::run_config(dir, run)?;
    let st = state(dir, run);
    if let RunState::Done { .. } = st {
        return Ok(RunOutcome::Skipped);
    }
    let root = run_root(dir, run);
    let out = dir.join(&run.dir);
    // Partial, or failed after some checkpoints: it resumes from the newest.
    let resumed_from = crate::io::latest_checkpoint(&out);
    let req = TrainRequest {
        config_file: Some(cfg_path),
        out: Some(out.clone()),
        resume: out.join("config.toml").exists(),
        quiet,
        stop,
        ..TrainRequest::default()
    };
    // A run trained to the end whose evaluation failed: only the evaluation is left.
    let planned = crate::run::dir::resolve_text(&cfg_text, &run.config)?;
    let complete = resumed_from == Some(planned.iterations);
    let trained = (if complete {
        Ok(())
    } else {
        train(&req).map(|_| ())
    })
    .and_then(|()| match &sweep.eval {
        Some(e) => crate::run::eval(&crate::run::EvalRequest {
            run_dir: out.clone(),
            episodes: e.episodes,
            greedy: e.greedy,
            random: false,
            episode_steps: None,
            backend: None,
            one_layout: false,
        })
        .map(|_| ()),
        None => Ok(()),
    });
    match trained {
        Ok(()) => {
            let _ = std::fs::remove_file(root.join("error.txt"));
            let cfg = crate::TrainConfig::from_toml(
                &read_to_string(&out.join("config.toml"))?,
                &out.join("config.toml").display().to_string(),
            )?;
            let lines = crate::run::dir::metrics_up_to(&out.join("metrics.jsonl"), cfg.iterations)?;
            let last = lines
                .last()
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|l| l["param_hash"].as_str().map(str::to_string))
                .unwrap_or_default();
            let done = Done {
                index,
                config_hash: run.config_hash.clone(),
                param_hash: last,
                iterations: cfg.iterations,
            };
            let text = serde_json::to_string_pretty(&done).expect("json");
            write_atomic(&root.join("done.json"), text.as_bytes())?;
            Ok(RunOutcome::Trained { resumed_from })
        }
        // A stop asked for is not a failure: the run is partial and resumes.
        Err(e @ TrainError::Interrupted { .. }) => Err(e),
        Err(e) => {
            let _ = write_atomic(&root.join("error.txt"), format!("{e}\n").as_bytes());
            Err(e)
        }
    }
}

/// The sweep's array index from the environment: Slurm's `SLURM_ARRAY_TASK_ID`, else
/// Kubernetes' `JOB_COMPLETION_INDEX`.
pub fn index_from_env() -> Option<usize> {
    ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
}

/// `sweep status DIR` as JSON: per run its index, axis values, state and (failed) error line.
pub fn status_json(dir: &Path) -> Result<serde_json::Value, TrainError> {
    let sweep = load(dir)?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let runs: Vec<serde_json::Value> = sweep
        .runs
        .iter()
        .map(|r| {
            let st = state(dir, r);
            *counts.entry(st.name()).or_default() += 1;
            let mut j = serde_json::json!({
                "index": r.index,
                "grid": sweep.grids.get(r.grid).map(|g| g.name.as_str()),
                "state": st.name(),
                "values": r.values,
                "dir": r.dir,
            });
            match st {
                RunState::Done { param_hash } => j["param_hash"] = param_hash.into(),
                RunState::Failed { error } => j["error"] = error.into(),
                RunState::Partial { iterations } => j["iterations_done"] = iterations.into(),
                RunState::Pending => {}
            }
            j
        })
        .collect();
    Ok(serde_json::json!({ "runs": runs.len(), "counts": counts, "by_run": runs }))
}
