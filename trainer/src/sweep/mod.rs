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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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

/// A run about to train (or be evaluated): what `sweep run` resolved for it.
struct Prepared {
    index: usize,
    root: PathBuf,
    out: PathBuf,
    req: TrainRequest,
    /// The newest checkpoint it resumes from.
    resumed_from: Option<u32>,
    /// Trained to the end already (its evaluation failed): only the evaluation is left.
    complete: bool,
}

/// Run `index` of `sweep`, or `None` when it is done. A config file changed since the plan is
/// refused by its hash.
fn prepare(
    dir: &Path,
    sweep: &Sweep,
    index: usize,
    quiet: bool,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Option<Prepared>, TrainError> {
    let run = sweep.runs.get(index).ok_or_else(|| TrainError::Io {
        path: dir.display().to_string(),
        message: format!(
            "--index {index}: the sweep has runs 0..={}",
            sweep.runs.len().saturating_sub(1)
        ),
    })?;
    let (cfg_path, cfg_text) = plan::run_config(dir, run)?;
    if let RunState::Done { .. } = state(dir, run) {
        return Ok(None);
    }
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
    let planned = crate::run::dir::resolve_text(&cfg_text, &run.config)?;
    Ok(Some(Prepared {
        index,
        root: run_root(dir, run),
        out,
        req,
        resumed_from,
        complete: resumed_from == Some(planned.iterations),
    }))
}

/// After `trained` (the training's result): the evaluation and `done.json`, or on failure
/// the error line in `error.txt`.
fn finish(
    sweep: &Sweep,
    p: &Prepared,
    trained: Result<(), TrainError>,
) -> Result<RunOutcome, TrainError> {
    let evaluated = trained.and_then(|()| match &sweep.eval {
        Some(e) => crate::run::eval(&crate::run::EvalRequest {
            run_dir: p.out.clone(),
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
    match evaluated.and_then(|()| write_done(sweep, p)) {
        Ok(()) => {
            let _ = std::fs::remove_file(p.root.join("error.txt"));
            Ok(RunOutcome::Trained {
                resumed_from: p.resumed_from,
            })
        }
        // A stop asked for is not a failure: the run is partial and resumes.
        Err(e) if e.is_stop() => Err(e),
        Err(e) => {
            let _ = write_atomic(&p.root.join("error.txt"), format!("{e}\n").as_bytes());
            Err(e)
        }
    }
}

/// `runs/NNNN/done.json`, from the finished run directory's last metrics line.
fn write_done(sweep: &Sweep, p: &Prepared) -> Result<(), TrainError> {
    let cfg_path = p.out.join("config.toml");
    let cfg = crate::TrainConfig::from_toml(
        &read_to_string(&cfg_path)?,
        &cfg_path.display().to_string(),
    )?;
    let lines = crate::run::dir::metrics_up_to(&p.out.join("metrics.jsonl"), cfg.iterations)?;
    let last = lines
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|l| l["param_hash"].as_str().map(str::to_string))
        .unwrap_or_default();
    let done = Done {
        index: p.index,
        config_hash: sweep.runs[p.index].config_hash.clone(),
        param_hash: last,
        iterations: cfg.iterations,
    };
    let text = serde_json::to_string_pretty(&done).expect("json");
    write_atomic(&p.root.join("done.json"), text.as_bytes())
}

/// `sweep run DIR --index I`: train run I (resume it if partial, skip it if done). A run
/// directory that holds another config is refused by the trainer's resume check; a config
/// file changed since the plan is refused by its hash. On failure the error line is kept in
/// `error.txt` for `status`.
pub fn run_index(
    dir: &Path,
    index: usize,
    quiet: bool,
    stop: Option<Arc<AtomicBool>>,
) -> Result<RunOutcome, TrainError> {
    let sweep = load(dir)?;
    let Some(p) = prepare(dir, &sweep, index, quiet, stop)? else {
        return Ok(RunOutcome::Skipped);
    };
    let trained = if p.complete {
        Ok(())
    } else {
        train(&p.req).map(|_| ())
    };
    finish(&sweep, &p, trained)
}

/// The sweep's pack groups at `--pack K`: runs whose configs differ only in seed, `fair.alpha`
/// and `fair.beta` (one network shape, one `[ppo]`), in plan order, at most K to a group. A
/// group trains as one packed process (`fairground train --seeds`'s lockstep), each run into
/// its own directory exactly as alone, so `--pack` changes the wall time and never a result.
pub fn pack_groups(dir: &Path, sweep: &Sweep, k: usize) -> Result<Vec<Vec<usize>>, TrainError> {
    if k == 0 {
        return Err(TrainError::Config {
            field: "pack",
            message: "0 runs per pack: allowed 1..=64".into(),
        });
    }
    let mut keys: Vec<crate::TrainConfig> = Vec::new();
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    for run in &sweep.runs {
        let (_, text) = plan::run_config(dir, run)?;
        let mut key = crate::run::dir::resolve_text(&text, &run.config)?;
        key.seed = 0;
        key.fair.alpha = 0.0;
        key.fair.beta = 0.0;
        match keys.iter().position(|k| *k == key) {
            Some(b) => buckets[b].push(run.index),
            None => {
                keys.push(key);
                buckets.push(vec![run.index]);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = buckets
        .iter()
        .flat_map(|b| b.chunks(k).map(<[usize]>::to_vec))
        .collect();
    groups.sort_by_key(|g| g[0]);
    Ok(groups)
}

/// `sweep run DIR --pack K --index G`: train pack group G ([`pack_groups`]): its runs not
/// done, those at the same iteration in lockstep as one pack (a run alone at its iteration
/// trains alone), then each one's evaluation and `done.json`. Returns each run's outcome. A
/// pack that fails is retried run by run, so a faulty run fails alone and keeps its error
/// line in `error.txt`; the first error is returned after every run was tried.
pub fn run_pack(
    dir: &Path,
    k: usize,
    group: usize,
    quiet: bool,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Vec<(usize, RunOutcome)>, TrainError> {
    let sweep = load(dir)?;
    let groups = pack_groups(dir, &sweep, k)?;
    let members = groups.get(group).ok_or_else(|| TrainError::Io {
        path: dir.display().to_string(),
        message: format!(
            "--index {group}: at --pack {k} the sweep has pack groups 0..={}",
            groups.len().saturating_sub(1)
        ),
    })?;
    let mut outcomes = Vec::with_capacity(members.len());
    let mut todo: Vec<Prepared> = Vec::new();
    for &i in members {
        match prepare(dir, &sweep, i, quiet, stop.clone())? {
            None => outcomes.push((i, RunOutcome::Skipped)),
            Some(p) => todo.push(p),
        }
    }
    // Runs at one iteration train as one pack; the evaluation-only ones need no training.
    let mut first_error = None;
    let mut at: Vec<Option<u32>> = todo
        .iter()
        .filter(|p| !p.complete)
        .map(|p| p.resumed_from)
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut trained: Vec<Option<Result<(), String>>> =
        todo.iter().map(|p| p.complete.then_some(Ok(()))).collect();
    for from in at {
        let part: Vec<usize> = (0..todo.len())
            .filter(|&t| !todo[t].complete && todo[t].resumed_from == from)
            .collect();
        let reqs: Vec<TrainRequest> = part.iter().map(|&t| todo[t].req.clone()).collect();
        let result = if reqs.len() == 1 {
            train(&reqs[0]).map(|_| ())
        } else {
            let command = format!(
                "fairground sweep run {} --pack {k} --index {group}",
                dir.display()
            );
            crate::run::packed::train_runs(dir, &reqs, &|iteration| TrainError::Stopped {
                command: command.clone(),
                iteration,
            })
        };
        match result {
            Ok(()) => part.iter().for_each(|&t| trained[t] = Some(Ok(()))),
            Err(e) if e.is_stop() => {
                return Err(e);
            }
            // A pack that fails (one run's directory refused, one run's loss not finite)
            // must not fail the others: each run is retried alone, from its checkpoint if
            // the pack left one (the same bits as packed), so only the faulty one fails.
            Err(_) if part.len() > 1 => {
                for &t in &part {
                    let mut req = todo[t].req.clone();
                    req.resume = todo[t].out.join("config.toml").exists();
                    trained[t] = Some(match train(&req) {
                        Ok(_) => Ok(()),
                        Err(e) if e.is_stop() => {
                            return Err(e);
                        }
                        Err(e) => {
                            let line = e.to_string();
                            first_error.get_or_insert(e);
                            Err(line)
                        }
                    });
                }
            }
            Err(e) => {
                part.iter()
                    .for_each(|&t| trained[t] = Some(Err(e.to_string())));
                first_error.get_or_insert(e);
            }
        }
    }
    for (p, t) in todo.iter().zip(trained) {
        match t.expect("every run trained or failed") {
            Ok(()) => match finish(&sweep, p, Ok(())) {
                Ok(o) => outcomes.push((p.index, o)),
                Err(e) if e.is_stop() => {
                    return Err(e);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            },
            Err(line) => {
                let _ = write_atomic(&p.root.join("error.txt"), format!("{line}\n").as_bytes());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            outcomes.sort_by_key(|o| o.0);
            Ok(outcomes)
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
