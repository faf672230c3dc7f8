//! What a report is made of: every planned run's identity (grid, configuration, seed, env,
//! algorithm), its `eval.json` and its learning curve from `metrics.jsonl`, read from the sweep
//! directory alone. A file that exists but does not parse is refused, never read as missing.

use super::super::{PlannedRun, Sweep, plan::run_config, state};
use crate::config::EnvName;
use crate::error::TrainError;
use crate::run::dir::resolve_text;
use std::path::Path;

/// The environment a run trained on (the report's tables differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Env {
    Ah,
    Hs,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::Ah => "ah",
            Env::Hs => "hs",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Env::Ah => "Allelopathic Harvest",
            Env::Hs => "HospitalSim",
        }
    }
}

/// One point of a learning curve (one metrics line).
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    pub iteration: u32,
    pub env_steps: u64,
    /// AH: reward per agent-step; HS: reward per decision.
    pub reward: Option<f64>,
    /// The rollout's signed DP (null before any HS day finished).
    pub dp: Option<f64>,
}

/// One planned run as the report sees it.
#[derive(Clone, Debug)]
pub struct Run {
    pub index: usize,
    pub grid: usize,
    /// The axis values but the seed, `k=v` joined by spaces ("(all)" without any).
    pub config: String,
    pub seed: u64,
    pub env: Env,
    pub algo: String,
    /// `clean` or `reference`.
    pub profile: String,
    /// The axis values by name (the heat maps read α and β here).
    pub axes: serde_json::Map<String, serde_json::Value>,
    pub state: &'static str,
    pub values: Vec<String>,
    pub eval: Option<serde_json::Value>,
    pub curve: Vec<CurvePoint>,
}

pub(super) fn value_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn refused(path: &Path, why: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        message: format!("damaged, refused: {why}"),
    }
}

/// A file's text, None if it does not exist (not yet written); any other failure to read it
/// is an error, never taken for absence.
fn optional(path: &Path) -> Result<Option<String>, TrainError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(path, e)),
    }
}

fn read_run(dir: &Path, r: &PlannedRun) -> Result<Run, TrainError> {
    let (cfg_path, text) = run_config(dir, r)?;
    // The trainer's own resolution (file over the env, profile and algorithm defaults): the
    // report sees exactly what the run trained, and a config that no longer resolves is damaged.
    let cfg =
        resolve_text(&text, &cfg_path.display().to_string()).map_err(|e| refused(&cfg_path, e))?;
    let env = match cfg.env {
        EnvName::Ah => Env::Ah,
        EnvName::Hs => Env::Hs,
    };
    let run_dir = dir.join(&r.dir);
    let eval_path = run_dir.join("eval.json");
    let eval = match optional(&eval_path)? {
        Some(t) => Some(
            serde_json::from_str::<serde_json::Value>(&t).map_err(|e| refused(&eval_path, e))?,
        ),
        None => None,
    };
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut curve = Vec::new();
    for (n, line) in optional(&metrics_path)?
        .unwrap_or_default()
        .lines()
        .enumerate()
    {
        let m: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| refused(&metrics_path, format!("line {}: {e}", n + 1)))?;
        curve.push(CurvePoint {
            iteration: m["iteration"].as_u64().unwrap_or(n as u64 + 1) as u32,
            env_steps: m["env_steps"].as_u64().unwrap_or(0),
            reward: m["mean_reward_per_agent_step"]
                .as_f64()
                .or_else(|| m["mean_reward_per_decision"].as_f64()),
            dp: m["dp"].as_f64(),
        });
    }
    let values: Vec<String> = r
        .values
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect();
    let key: Vec<&str> = r
        .values
        .keys()
        .zip(&values)
        .filter(|(k, _)| k.as_str() != "seed")
        .map(|(_, kv)| kv.as_str())
        .collect();
    Ok(Run {
        index: r.index,
        grid: r.grid,
        config: if key.is_empty() {
            "(all)".to_string()
        } else {
            key.join(" ")
        },
        seed: cfg.seed,
        env,
        algo: cfg.algo.name().to_string(),
        profile: cfg.profile.to_string(),
        axes: r.values.clone(),
        state: state(dir, r).name(),
        values,
        eval,
        curve,
    })
}

/// Every planned run of the sweep in `dir`, in plan order.
pub fn read_runs(dir: &Path, sweep: &Sweep) -> Result<Vec<Run>, TrainError> {
    sweep.runs.iter().map(|r| read_run(dir, r)).collect()
}

/// A configuration: one grid's runs that differ only in their seed.
#[derive(Clone, Debug)]
pub struct Config {
    pub grid: usize,
    pub key: String,
    /// Indices into the run list, in plan order.
    pub runs: Vec<usize>,
}

/// The configurations of every grid, in plan order.
pub fn configs(runs: &[Run]) -> Vec<Config> {
    let mut out: Vec<Config> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        match out
            .iter_mut()
            .find(|c| c.grid == r.grid && c.key == r.config)
        {
            Some(c) => c.runs.push(i),
            None => out.push(Config {
                grid: r.grid,
                key: r.config.clone(),
                runs: vec![i],
            }),
        }
    }
    out
}
