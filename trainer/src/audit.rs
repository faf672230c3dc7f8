//! `fairground audit`: re-derive a run from its own files and compare.
//!
//! A run directory claims that its config, seed and backend produce its `metrics.jsonl`, its
//! checkpoints and its `eval.json`. An audit checks the claim: it retrains from the stored
//! `config.toml` into a scratch directory (from scratch, or from the checkpoint before each
//! audited iteration), and compares every deterministic field of every metrics line, every
//! parameter hash and, on request, `eval.json`.
//!
//! A divergence alone does not say who is wrong, so the audit also verifies the stored files
//! against their own hashes (each checkpoint's parameters against the `param_hash` both of its
//! files record, its Adam state against the sidecar). A re-derived run that reproduces every
//! intact checkpoint while one stored metrics line differs says the line was edited after it
//! was written; a damaged checkpoint is named as such; a divergence with every stored file
//! intact is a nondeterministic (or differently built) run.

use crate::common::EnvUse;
use crate::config::{Backend, TrainConfig};
use crate::error::TrainError;
use crate::io::read_to_string;
use crate::run::dir::{Overrides, TrainRequest, metrics_up_to};
use crate::run::{EvalRequest, make_trainer, open_backend};
use std::path::{Path, PathBuf};

/// What `fairground audit RUN_DIR` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct AuditRequest {
    pub run_dir: PathBuf,
    /// Audit only the last `k` iterations, each retrained from the checkpoint before it;
    /// `None`: retrain every iteration from scratch.
    pub last: Option<u32>,
    /// Also re-run the evaluation and compare `eval.json`.
    pub eval: bool,
    /// Audit on this backend instead of the run's (refused unless it is the run's).
    pub backend: Option<Backend>,
    /// Where the re-derived run is written [default: a fresh directory under the system's
    /// temporary directory, removed afterwards].
    pub scratch: Option<PathBuf>,
}

/// The first thing that differs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Divergence {
    /// The metrics iteration, or `None` for `eval.json`.
    pub iteration: Option<u32>,
    /// The field (dotted path into the JSON line), or `param_hash`, or `checkpoint`.
    pub field: String,
    pub stored: String,
    pub rederived: String,
}

/// The outcome of an audit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Audit {
    pub run_dir: String,
    /// The iterations retrained and compared.
    pub iterations: Vec<u32>,
    pub eval_compared: bool,
    /// `None`: identical.
    pub divergence: Option<Divergence>,
    /// The stored checkpoints that failed their own hashes (iteration, why).
    pub damaged: Vec<(u32, String)>,
    /// The stored checkpoints that verified (their iterations).
    pub intact_checkpoints: Vec<u32>,
    /// What the evidence says about the divergence, in one sentence.
    pub diagnosis: String,
}

/// Why an audit could not be done (exit 2).
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot audit {dir}: {why}")]
pub struct CannotAudit {
    pub dir: String,
    pub why: String,
}

/// Fields of a metrics line that measure the machine, not the run.
fn is_timing(key: &str) -> bool {
    key == "wall_s" || (key.starts_with("trained_") && key.ends_with("_per_s"))
}

/// The first differing leaf of two JSON values: (dotted path, stored, re-derived).
fn first_difference(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                if path.is_empty() && is_timing(k) {
                    continue;
                }
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(&join(k), va, vb) {
                            return Some(d);
                        }
                    }
                    None => return Some((join(k), va.to_string(), "(absent)".into())),
                }
            }
            y.keys()
                .find(|k| !(x.contains_key(*k) || path.is_empty() && is_timing(k)))
                .map(|k| (join(k), "(absent)".into(), y[k].to_string()))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&join(&i.to_string()), va, vb)),
        _ if a == b => None,
        _ => Some((
            if path.is_empty() {
                "(line)".into()
            } else {
                path.to_string()
            },
            a.to_string(),
            b.to_string(),
        )),
    }
}

fn parse_lines(lines: &[String], what: &Path) -> Result<Vec<serde_json::Value>, CannotAudit> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).map_err(|e| CannotAudit {
                dir: what.display().to_string(),
                why: format!("metrics.jsonl does not parse: {e}"),
            })
        })
        .collect()
}

/// The stored checkpoints, each verified against its own hashes: (intact iterations with their
/// parameter hash, damaged iterations with why).
type Verified = (Vec<(u32, String)>, Vec<(u32, String)>);

fn verify_checkpoints(dir: &Path, cfg: &TrainConfig) -> Result<Verified, TrainError> {
    let mut iters: Vec<u32> = std::fs::read_dir(dir.join("checkpoints"))
        .map_err(|e| TrainError::io(&dir.join("checkpoints"), e))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("ckpt-")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    iters.sort_unstable();
    let (_, ctx) = open_backend(cfg.backend, cfg.threads)?;
    let mut trainer = make_trainer(cfg, EnvUse::Eval, ctx)?;
    let (mut intact, mut damaged) = (Vec::new(), Vec::new());
    for i in iters {
        match trainer.load_nets_at(dir, i) {
            Ok(hash) => intact.push((i, hash)),
            Err(e) => damaged.push((i, e.to_string())),
        }
    }
    Ok((intact, damaged))
}

/// Copy the files a resume from checkpoint `k` needs into `to`.
fn seed_scratch(from: &Path, to: &Path, k: u32, lines: &[String]) -> Result<(), TrainError> {
    std::fs::create_dir_all(to.join("checkpoints")).map_err(|e| TrainError::io(to, e))?;
    for f in ["config.toml", "manifest.json"] {
        std::fs::copy(from.join(f), to.join(f)).map_err(|e| TrainError::io(&from.join(f), e))?;
    }
    let stem = crate::io::ckpt_stem(from, k);
    for ext in ["json", "safetensors"] {
        let src = stem.with_extension(ext);
        let dst = to
            .join("checkpoints")
            .join(src.file_name().expect("a checkpoint file"));
        std::fs::copy(&src, &dst).map_err(|e| TrainError::io(&src, e))?;
    }
    let mut text = lines[..k as usize].join("\n");
    if k > 0 {
        text.push('\n');
    }
    std::fs::write(to.join("metrics.jsonl"), text).map_err(|e| TrainError::io(to, e))
}

/// Audit a run directory.
pub fn audit(req: &AuditRequest) -> Result<Audit, CannotAudit> {
    let dir = &req.run_dir;
    let cannot = |why: String| CannotAudit {
        dir: dir.display().to_string(),
        why,
    };
    let from_train = |e: TrainError| cannot(e.to_string());
    let cfg_path = dir.join("config.toml");
    if !cfg_path.exists() || !dir.join("manifest.json").exists() {
        return Err(cannot(
            "no config.toml and manifest.json there (not a run directory)".into(),
        ));
    }
    let cfg_text = read_to_string(&cfg_path).map_err(from_train)?;
    let cfg =
        TrainConfig::from_toml(&cfg_text, &cfg_path.display().to_string()).map_err(from_train)?;
    let manifest: serde_json::Value =
        serde_json::from_str(&read_to_string(&dir.join("manifest.json")).map_err(from_train)?)
            .map_err(|e| cannot(format!("manifest.json does not parse: {e}")))?;
    let (stored_backend, stored_adapter) = (
        manifest["backend"].as_str().unwrap_or("?").to_string(),
        manifest["adapter"].as_str().unwrap_or("?").to_string(),
    );
    if let Some(b) = req.backend
        && b.name() != stored_backend
    {
        return Err(cannot(format!(
            "--backend {}: the run was trained on the {stored_backend} backend \
                 ({stored_adapter}); results are bit-identical only on the backend and adapter \
                 that made them",
            b.name()
        )));
    }

    // The adapter this machine would train on must be the run's.
    let (_, ctx) = open_backend(cfg.backend, cfg.threads).map_err(from_train)?;
    let probe = make_trainer(&cfg, EnvUse::Train, ctx).map_err(from_train)?;
    if probe.adapter() != stored_adapter {
        return Err(cannot(format!(
            "the run was trained on adapter {stored_adapter:?}, this machine offers {:?}",
            probe.adapter()
        )));
    }
    drop(probe);

    let stored_text = read_to_string(&dir.join("metrics.jsonl")).map_err(from_train)?;
    let stored_lines: Vec<String> = stored_text.lines().map(str::to_string).collect();
    let stored = parse_lines(&stored_lines, dir)?;
    let done = stored.len() as u32;
    if done == 0 {
        return Err(cannot("metrics.jsonl holds no iteration".into()));
    }
    let (intact, damaged) = verify_checkpoints(dir, &cfg).map_err(from_train)?;

    let scratch_root = match &req.scratch {
        Some(s) => s.clone(),
        None => std::env::temp_dir().join(format!("fairground-audit-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&scratch_root);
    let cleanup = Cleanup(scratch_root.clone(), req.scratch.is_none());

    // The iterations to retrain, and from which checkpoint.
    let (starts, iterations): (Vec<u32>, Vec<u32>) = match req.last {
        None => (vec![0], (1..=done).collect()),
        Some(k) => {
            let k = k.min(done);
            let first = done - k + 1;
            for i in first..=done {
                let prev = i - 1;
                if prev > 0
                    && !crate::io::ckpt_stem(dir, prev)
                        .with_extension("json")
                        .exists()
                {
                    return Err(cannot(format!(
                        "--iterations {k}: iteration {i} needs checkpoint {} and the run did not keep \
                         it (audit from scratch instead)",
                        crate::io::ckpt_stem(dir, prev).display()
                    )));
                }
            }
            ((first - 1..done).collect(), (first..=done).collect())
        }
    };

    let mut rederived: Vec<Option<serde_json::Value>> = vec![None; done as usize];
    let mut last_dir = None;
    // A damaged checkpoint cannot be a starting point: it is the finding.
    let starts = if req.last.is_some() && !damaged.is_empty() {
        Vec::new()
    } else {
        starts
    };
    for &start in &starts {
        let to = scratch_root.join(format!("from-{start}"));
        let until = if req.last.is_none() { done } else { start + 1 };
        let resume = start > 0;
        if resume {
            seed_scratch(dir, &to, start, &stored_lines).map_err(from_train)?;
        } else {
            std::fs::create_dir_all(&scratch_root).map_err(|e| cannot(e.to_string()))?;
        }
        crate::run::train(&TrainRequest {
            overrides: Overrides {
                iterations: Some(until),
                ..Overrides::default()
            },
            config_file: if resume { None } else { Some(cfg_path.clone()) },
            out: Some(to.clone()),
            resume,
            quiet: true,
            ..TrainRequest::default()
        })
        .map_err(|e| cannot(format!("retraining from iteration {start}: {e}")))?;
        let lines = metrics_up_to(&to.join("metrics.jsonl"), until).map_err(from_train)?;
        for v in parse_lines(&lines, &to)? {
            let i = v["iteration"].as_u64().unwrap_or(0) as u32;
            if i > start && i <= until {
                rederived[i as usize - 1] = Some(v);
            }
        }
        last_dir = Some(to);
    }

    let mut divergence = None;
    for &i in iterations.iter().filter(|_| !starts.is_empty()) {
        let (a, b) = (&stored[i as usize - 1], &rederived[i as usize - 1]);
        let Some(b) = b else {
            divergence = Some(Divergence {
                iteration: Some(i),
                field: "(line)".into(),
                stored: "a line".into(),
                rederived: "(absent)".into(),
            });
            break;
        };
        if let Some((field, s, r)) = first_difference("", a, b) {
            divergence = Some(Divergence {
                iteration: Some(i),
                field,
                stored: s,
                rederived: r,
            });
            break;
        }
    }
    // A stored checkpoint must carry the parameters its metrics line says.
    if divergence.is_none() {
        for (i, hash) in &intact {
            let line_hash = stored
                .get(*i as usize - 1)
                .and_then(|v| v["param_hash"].as_str())
                .unwrap_or("");
            if line_hash != hash {
                divergence = Some(Divergence {
                    iteration: Some(*i),
                    field: "checkpoint param_hash".into(),
                    stored: hash.clone(),
                    rederived: line_hash.to_string(),
                });
                break;
            }
        }
    }
    if divergence.is_none()
        && let Some((i, why)) = damaged.first()
    {
        divergence = Some(Divergence {
            iteration: Some(*i),
            field: "checkpoint".into(),
            stored: why.clone(),
            rederived: String::new(),
        });
    }

    let mut eval_compared = false;
    if req.eval && divergence.is_none() && last_dir.is_some() {
        let (name, stored_eval) = ["eval.json", "eval-greedy.json"]
            .iter()
            .find_map(|n| Some((*n, read_to_string(&dir.join(n)).ok()?)))
            .ok_or_else(|| cannot("--eval: the run has no eval.json or eval-greedy.json".into()))?;
        let stored_eval: serde_json::Value = serde_json::from_str(&stored_eval)
            .map_err(|e| cannot(format!("{name} does not parse: {e}")))?;
        let out = last_dir.clone().expect("a retrained directory");
        // A run audited from its last iterations has the newest checkpoint in `out` too.
        let text = crate::run::eval(&EvalRequest {
            run_dir: out,
            // AH records its episodes, HS its days.
            episodes: stored_eval["episodes"]
                .as_u64()
                .or_else(|| stored_eval["days"].as_u64())
                .unwrap_or(1) as u32,
            greedy: name == "eval-greedy.json",
            random: false,
            episode_steps: None,
            backend: None,
            one_layout: cfg.ah.cf_test_one_layout,
        })
        .map_err(|e| cannot(format!("re-running the evaluation: {e}")))?;
        let mut re: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| cannot(e.to_string()))?;
        re["run_dir"] = stored_eval["run_dir"].clone();
        if let Some((field, s, r)) = first_difference("", &stored_eval, &re) {
            divergence = Some(Divergence {
                iteration: None,
                field: format!("{name}: {field}"),
                stored: s,
                rederived: r,
            });
        }
        eval_compared = true;
    }
    drop(cleanup);

    let diagnosis = match (&divergence, damaged.is_empty()) {
        (None, _) => "identical: every compared field and parameter hash re-derives".into(),
        (Some(_), false) => format!(
            "stored files damaged: {} checkpoint(s) fail their own hashes",
            damaged.len()
        ),
        (Some(d), true) if d.field == "checkpoint param_hash" => {
            "tampered: an intact checkpoint disagrees with its metrics line".into()
        }
        (Some(d), true) => {
            // The re-derived run reproduced every intact checkpoint it reached?
            let reproduced = intact.iter().all(|(i, h)| {
                rederived
                    .get(*i as usize - 1)
                    .and_then(|v| v.as_ref())
                    .and_then(|v| v["param_hash"].as_str())
                    .is_none_or(|r| r == h)
            });
            if reproduced && d.iteration.is_some() && !intact.is_empty() {
                "tampered: the stored metrics line differs while the re-derived run reproduces \
                 every intact checkpoint (the line was changed after it was written)"
                    .into()
            } else {
                "nondeterministic: every stored file is intact and the re-derived run differs \
                 (another build, machine or a determinism bug)"
                    .into()
            }
        }
    };
    Ok(Audit {
        run_dir: dir.display().to_string(),
        iterations: if starts.is_empty() {
            Vec::new()
        } else {
            iterations
        },
        eval_compared,
        divergence,
        damaged,
        intact_checkpoints: intact.iter().map(|(i, _)| *i).collect(),
        diagnosis,
    })
}

/// `k` run directories of the sweep in `dir`, chosen by `seed` (the same seed, the same runs):
/// a partial Fisher-Yates shuffle of the runs that have trained at least one iteration, driven
/// by SplitMix64 (a fixed, documented stream: the choice must not change with a library).
pub fn sample_runs(dir: &Path, k: u32, seed: u64) -> Result<Vec<PathBuf>, CannotAudit> {
    let cannot = |why: String| CannotAudit {
        dir: dir.display().to_string(),
        why,
    };
    let sweep = crate::sweep::plan::load(dir).map_err(|e| cannot(e.to_string()))?;
    let mut runs: Vec<PathBuf> = sweep
        .runs
        .iter()
        .map(|r| dir.join(&r.dir))
        .filter(|d| d.join("metrics.jsonl").exists())
        .collect();
    if runs.is_empty() {
        return Err(cannot("no run of the sweep has trained yet".into()));
    }
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let k = (k as usize).min(runs.len());
    for i in 0..k {
        let j = i + (next() % (runs.len() - i) as u64) as usize;
        runs.swap(i, j);
    }
    runs.truncate(k);
    Ok(runs)
}

/// Removes the scratch directory on every path out of [`audit`] (when it made it).
struct Cleanup(PathBuf, bool);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timing_fields_are_ignored_and_the_first_leaf_is_named() {
        let a = json!({"iteration": 3, "wall_s": 1.0, "trained_agent_steps_per_s": 9.0,
                       "csp": {"red": 1.0, "blue": 2.0}, "param_hash": "ab"});
        let mut b = a.clone();
        b["wall_s"] = json!(7.5);
        b["trained_agent_steps_per_s"] = json!(1.0);
        assert_eq!(first_difference("", &a, &b), None);
        b["csp"]["blue"] = json!(2.5);
        assert_eq!(
            first_difference("", &a, &b),
            Some(("csp.blue".into(), "2.0".into(), "2.5".into()))
        );
        let mut c = a.clone();
        c.as_object_mut().unwrap().remove("param_hash");
        assert_eq!(
            first_difference("", &a, &c).map(|d| d.0),
            Some("param_hash".into())
        );
    }
}
