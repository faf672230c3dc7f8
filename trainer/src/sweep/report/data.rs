//! What a report is made of: every planned run's identity (grid, configuration, seed, env,
//! algorithm), its `eval.json` and its learning curve from `metrics.jsonl`, read from the sweep
//! directory alone. A file that exists but does not parse is refused, never read as missing.

use super::super::{PlannedRun, Sweep, plan::run_config, state};
use crate::error::TrainError;
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
    pub seed: i64,
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

fn value_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn refused(path: &Path, why: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        message: format!("damaged, refused: {why}"),
    }
}

fn read_run(dir: &Path, r: &PlannedRun) -> Result<Run, TrainError> {
    let (cfg_path, text) = run_config(dir, r)?;
    let cfg: toml::Table = text.parse().map_err(|e| refused(&cfg_path, e))?;
    let env = match cfg.get("env").and_then(|v| v.as_str()) {
        Some("hs") => Env::Hs,
        _ => Env::Ah,
    };
    let algo = cfg
        .get("algo")
        .and_then(|v| v.as_str())
        .unwrap_or("ppo")
        .to_string();
    let profile = cfg
        .get("profile")
        .and_then(|v| v.as_str())
        .unwrap_or("clean")
        .to_string();
    let seed = cfg
        .get("seed")
        .and_then(toml::Value::as_integer)
        .unwrap_or(0);
    let run_dir = dir.join(&r.dir);
    let eval_path = run_dir.join("eval.json");
    let eval = match std::fs::read_to_string(&eval_path) {
        Ok(t) => Some(
            serde_json::from_str::<serde_json::Value>(&t).map_err(|e| refused(&eval_path, e))?,
        ),
        Err(_) => None,
    };
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut curve = Vec::new();
    if let Ok(t) = std::fs::read_to_string(&metrics_path) {
        for (n, line) in t.lines().enumerate() {
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
    }
    let key: Vec<String> = r
        .values
        .iter()
        .filter(|(k, _)| k.as_str() != "seed")
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect();
    Ok(Run {
        index: r.index,
        grid: r.grid,
        config: if key.is_empty() {
            "(all)".to_string()
        } else {
            key.join(" ")
        },
        seed,
        env,
        algo,
        profile,
        axes: r.values.clone(),
        state: state(dir, r).name(),
        values: r
            .values
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect(),
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
