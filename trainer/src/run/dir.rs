//! Run directories: resolving a request's config, creating the directory's files
//! (`config.toml`, `manifest.json`, `checkpoints/`), and appending and recovering
//! `metrics.jsonl`. Everything is validated before the directory is created: bad input writes
//! nothing.

use crate::config::{Backend, EnvName, TrainConfig};
use crate::error::TrainError;
use crate::io::{read_to_string, write_atomic};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Values given on the command line; `Some` overrides the config file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub env: Option<crate::config::EnvName>,
    pub algo: Option<crate::config::Algo>,
    pub fairness: Option<crate::config::Fairness>,
    pub alpha: Option<f32>,
    pub beta: Option<f32>,
    pub penalty: Option<crate::config::Penalty>,
    pub profile: Option<fairground_kernel::Profile>,
    pub instances: Option<u32>,
    pub rollout_steps: Option<u32>,
    pub iterations: Option<u32>,
    pub seed: Option<u64>,
    pub backend: Option<Backend>,
}

impl Overrides {
    fn apply(&self, cfg: &mut TrainConfig) {
        macro_rules! set {
            ($($f:ident $(.$s:ident)?),*) => {
                $(if let Some(v) = self.$f { cfg$(.$s)?.$f = v; })*
            };
        }
        set!(
            env,
            algo,
            fairness.fair,
            alpha.fair,
            beta.fair,
            penalty.fair,
            profile,
            instances,
            rollout_steps,
            iterations,
            seed,
            backend
        );
    }
}

/// What `fairground train` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    pub overrides: Overrides,
    pub config_file: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub resume: bool,
    /// Print nothing but errors (tests).
    pub quiet: bool,
    /// Runs of seeds `seed .. seed + seeds` trained together as one pack (0 and 1: one run;
    /// see `run::packed`).
    pub seeds: u32,
    /// A pack's networks train run by run instead of packed (the baseline of a comparison).
    pub no_pack: bool,
    /// Set (by a signal handler) to stop after the running iteration: the run saves a
    /// checkpoint, says how to resume, and ends with [`crate::TrainError::Interrupted`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The metrics lines of iterations `1..=done` (a resumed run redoes any line written after its
/// last checkpoint: a kill between the metrics write and the checkpoint leaves one). A torn
/// last line (a kill mid-append where renames are not atomic, or a truncated copy) is dropped
/// when the lines of `1..=done` are all intact before it; any other unreadable line is an error.
pub fn metrics_up_to(path: &Path, done: u32) -> Result<Vec<String>, TrainError> {
    let mut kept = Vec::new();
    if path.exists() {
        let text = read_to_string(path)?;
        let lines: Vec<&str> = text.lines().collect();
        for (k, l) in lines.iter().enumerate() {
            let v: serde_json::Value = match serde_json::from_str(l) {
                Ok(v) => v,
                Err(_) if k + 1 == lines.len() && kept.len() == done as usize => continue,
                Err(e) => return Err(TrainError::io(path, format!("line {}: {e}", k + 1))),
            };
            if v["iteration"]
                .as_u64()
                .is_some_and(|i| i <= u64::from(done))
            {
                kept.push(l.to_string());
            }
        }
    }
    Ok(kept)
}

/// Create a new run directory's files: `checkpoints/`, `config.toml`, `manifest.json`.
///
/// Atomic: the files are written into a hidden sibling `.NAME.partial-PID` that is renamed to
/// `dir` once complete, so a kill or a full disk at start leaves no half-made run directory
/// (only the hidden sibling, which no command reads). An unused `dir` ([`unused_dir`]) is
/// replaced.
pub fn start_run_dir(
    dir: &Path,
    cfg: &TrainConfig,
    adapter: &str,
    seeds: serde_json::Value,
) -> Result<(), TrainError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let partial = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let made = fill_run_dir(&partial, cfg, adapter, seeds).and_then(|()| {
        if dir.exists() {
            // Unused (checked by `resolve`): an empty directory or a pre-atomic crash's leftovers.
            std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
        std::fs::rename(&partial, dir).map_err(|e| TrainError::io(dir, e))
    });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    made
}

/// Whether `dir` holds no run: an empty directory, or only what a start interrupted before
/// runs were created atomically left (an empty `checkpoints/`, `.tmp` files).
pub fn unused_dir(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|e| {
        let Ok(e) = e else { return false };
        let path = e.path();
        if path.is_dir() {
            e.file_name() == "checkpoints"
                && std::fs::read_dir(&path).is_ok_and(|mut r| r.next().is_none())
        } else {
            e.file_name().to_string_lossy().ends_with(".tmp")
        }
    })
}

/// The files of a new run directory, written into `dir`.
fn fill_run_dir(
    dir: &Path,
    cfg: &TrainConfig,
    adapter: &str,
    seeds: serde_json::Value,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir.join("checkpoints")).map_err(|e| TrainError::io(dir, e))?;
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    let start = now_unix();
    // A typed struct, not `json!`: `json!` widens the config's f32 fields to f64 first and
    // prints `0.20000000298023224` for 0.2.
    let manifest = Manifest {
        config: cfg,
        seeds,
        code_version: code_version(),
        backend: cfg.backend.name(),
        adapter,
        start_time: utc(start),
        start_time_unix_s: start,
        threads: cfg.threads,
    };
    write_atomic(
        &dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)
            .expect("json")
            .as_bytes(),
    )
}

/// Add one metrics line and rewrite `metrics.jsonl` atomically.
pub fn append_metrics(
    path: &Path,
    lines: &mut Vec<String>,
    line: &impl Serialize,
) -> Result<(), TrainError> {
    lines.push(serde_json::to_string(line).expect("json"));
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

pub fn code_version() -> String {
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .stderr(std::process::Stdio::null())
        .output();
    match git {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        }
        _ => format!("fairground-trainer {}", env!("CARGO_PKG_VERSION")),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn default_out(cfg: &TrainConfig) -> PathBuf {
    let stamp = utc(now_unix()).replace([':', '-'], "");
    let base = format!(
        "runs/{}-{}-s{}-{}",
        match cfg.env {
            crate::config::EnvName::Ah => "ah",
            crate::config::EnvName::Hs => "hs",
        },
        cfg.profile,
        cfg.seed,
        stamp.trim_end_matches('Z')
    );
    let mut p = PathBuf::from(&base);
    let mut k = 1;
    while p.exists() {
        k += 1;
        p = PathBuf::from(format!("{base}-{k}"));
    }
    p
}

/// The first field (as `section.key`) where `b` differs from the saved `a`, with both values.
fn first_difference(a: &TrainConfig, b: &TrainConfig) -> String {
    fn walk(prefix: &str, a: &toml::Table, b: &toml::Table) -> Option<String> {
        for (k, va) in a {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match (va, b.get(k)) {
                (toml::Value::Table(ta), Some(toml::Value::Table(tb))) => {
                    if let Some(d) = walk(&key, ta, tb) {
                        return Some(d);
                    }
                }
                (va, Some(vb)) if va != vb => {
                    return Some(format!("`{key}` is {va} there, {vb} here"));
                }
                _ => {}
            }
        }
        None
    }
    let (ta, tb) = (
        toml::Table::try_from(a).expect("config table"),
        toml::Table::try_from(b).expect("config table"),
    );
    walk("", &ta, &tb).unwrap_or_else(|| "a field differs".into())
}

/// Options the config's algorithm does not use, given on the command line (a warning each).
pub fn ignored_options(req: &TrainRequest, cfg: &TrainConfig) -> Vec<&'static str> {
    let o = &req.overrides;
    if cfg.algo.is_fair() {
        return vec![];
    }
    [
        ("--alpha", o.alpha.is_some()),
        ("--beta", o.beta.is_some()),
        ("--penalty", o.penalty.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect()
}

/// Resolve the config of a request (file, then flags; on resume, the saved config).
pub fn resolve(req: &TrainRequest) -> Result<(TrainConfig, PathBuf), TrainError> {
    if req.resume {
        resolve_resume(req)
    } else {
        resolve_fresh(req)
    }
}

/// A resumed run's config: the saved one, with only `--iterations` allowed to change.
fn resolve_resume(req: &TrainRequest) -> Result<(TrainConfig, PathBuf), TrainError> {
    let dir = req.out.clone().ok_or_else(|| TrainError::Resume {
        dir: "?".into(),
        why: "--resume needs --out DIR (the run directory to continue)".into(),
    })?;
    let saved_path = dir.join("config.toml");
    if !saved_path.exists() {
        let why = if unused_dir(&dir) {
            "it holds no run yet (a start that was interrupted, or an empty directory): run \
             without --resume to start one there"
        } else {
            "no config.toml there (not a run directory)"
        };
        return Err(TrainError::Resume {
            dir: dir.display().to_string(),
            why: why.into(),
        });
    }
    let saved = TrainConfig::from_toml(
        &read_to_string(&saved_path)?,
        &saved_path.display().to_string(),
    )?;
    let mut cfg = saved.clone();
    if let Some(file) = &req.config_file {
        cfg = TrainConfig::from_toml_for_algo(
            &read_to_string(file)?,
            &file.display().to_string(),
            req.overrides.env,
            req.overrides.profile,
            req.overrides.algo,
        )?;
    }
    req.overrides.apply(&mut cfg);
    if req.config_file.is_some() {
        // The file means what it meant when the run was made: the same notion defaults.
        let file = file_table(req)?;
        notion_defaults(&mut cfg, req.overrides.instances.is_some(), &|s, k, f| {
            file_sets(&file, s, k, f)
        });
    }
    if cfg.backend == Backend::Auto {
        cfg.backend = saved.backend;
    }
    let mut cmp = cfg.clone();
    cmp.iterations = saved.iterations;
    cmp.threads = saved.threads;
    if cmp != saved {
        return Err(TrainError::Resume {
            dir: dir.display().to_string(),
            why: format!(
                "a resumed run keeps its saved config (only --iterations may change): {}",
                first_difference(&saved, &cmp)
            ),
        });
    }
    cfg.validate()?;
    Ok((cfg, dir))
}

/// A new run's config (file, then flags) and its directory, which must be unused.
fn resolve_fresh(req: &TrainRequest) -> Result<(TrainConfig, PathBuf), TrainError> {
    let mut cfg = match &req.config_file {
        Some(file) => TrainConfig::from_toml_for_algo(
            &read_to_string(file)?,
            &file.display().to_string(),
            req.overrides.env,
            req.overrides.profile,
            req.overrides.algo,
        )?,
        None => TrainConfig::defaults_for_algo(
            req.overrides.env.unwrap_or_default(),
            req.overrides.profile.unwrap_or_default(),
            req.overrides.algo.unwrap_or_default(),
        ),
    };
    req.overrides.apply(&mut cfg);
    let file = file_table(req)?;
    notion_defaults(&mut cfg, req.overrides.instances.is_some(), &|s, k, f| {
        file_sets(&file, s, k, f)
    });
    cfg.validate()?;
    let dir = req.out.clone().unwrap_or_else(|| default_out(&cfg));
    if dir.is_file() {
        return Err(TrainError::Io {
            path: dir.display().to_string(),
            message: "--out names a file, not a run directory".into(),
        });
    }
    if dir.exists() && !unused_dir(&dir) {
        return Err(TrainError::RunDirExists(dir.display().to_string()));
    }
    Ok((cfg, dir))
}

/// What `fairground train --config FILE` with no other flag would train from a file holding
/// `text` (`path` names it in errors): the file over its env, profile and algorithm's
/// defaults, the notion defaults, validated. A sweep's plan checks every run with it.
pub fn resolve_text(text: &str, path: &str) -> Result<TrainConfig, TrainError> {
    let mut cfg = TrainConfig::from_toml_for_algo(text, path, None, None, None)?;
    let file = toml::from_str::<toml::Table>(text).ok();
    notion_defaults(&mut cfg, false, &|s, k, f| file_sets(&file, s, k, f));
    cfg.validate()?;
    Ok(cfg)
}

/// The request's config file as a table (None without a file).
fn file_table(req: &TrainRequest) -> Result<Option<toml::Table>, TrainError> {
    Ok(match &req.config_file {
        Some(f) => toml::from_str::<toml::Table>(&read_to_string(f)?).ok(),
        None => None,
    })
}

/// Whether the config file sets `section.key` (or its flat legacy key `flat`).
fn file_sets(file: &Option<toml::Table>, section: &str, key: &str, flat: &str) -> bool {
    file.as_ref().is_some_and(|t| {
        t.contains_key(flat)
            || t.get(section)
                .and_then(toml::Value::as_table)
                .is_some_and(|s| s.contains_key(key))
    })
}

/// Defaults that follow the fairness notion, applied to a fresh run after the file and the
/// command line; a value the user gave (`user_instances`, or a key `file_sets(section, key,
/// flat key)`) is kept, and validated. The config records the result, so a resume trains as
/// the run was made.
/// - HS counterfactual runs pair every hospital with its twin: a default of one instance (the
///   reference profile's) becomes one pair.
/// - The reference's HS counterfactual script (`fair-PPO-HS/CF`) standardises the advantages
///   over each role's day memory and regresses the value on standardised advantage + V, where
///   its DP and CSP scripts use raw advantages: the reference profile's PPO and Fair-PPO CF
///   runs on HS get `ppo.normalize_advantages` and `hs.standardized_returns`.
/// - The reference's HS counterfactual scripts never apply their arrival templates: the
///   reference profile's CF runs keep the single random peak (`hs.arrival_curriculum` off).
/// - The reference's AH counterfactual scripts play two whole worlds (all able, all
///   sensitive), each by one network: the reference profile's PPO and Fair-PPO CF runs on AH
///   get `ah.cf_reference_worlds`.
/// - The HS counterfactual scripts step the two worlds together until either's day ends, with one agent set per
///   world: the reference profile's PPO and Fair-PPO CF runs get `hs.cf_days_end_together`,
///   and `hs.cf_world_agents` unless Fair-PPO's penalty is fairground's shaped one (whose
///   ledger credit trains one router network; the reference penalty only reports P on HS).
fn notion_defaults(
    cfg: &mut TrainConfig,
    user_instances: bool,
    file_sets: &dyn Fn(&str, &str, &str) -> bool,
) {
    use crate::config::{Algo, Fairness, Penalty};
    let reference_ppo = cfg.profile == fairground_kernel::Profile::Reference
        && matches!(cfg.algo, Algo::Ppo | Algo::FairPpo);
    if cfg.env == EnvName::Ah && cfg.fair.fairness == Fairness::Cf {
        if reference_ppo && !file_sets("ah", "cf_reference_worlds", "") {
            cfg.ah.cf_reference_worlds = true;
        }
        return;
    }
    if cfg.env != EnvName::Hs || cfg.fair.fairness != Fairness::Cf {
        return;
    }
    if cfg.instances == 1 && !user_instances && !file_sets("", "", "instances") {
        cfg.instances = 2;
    }
    if !file_sets("hs", "arrival_curriculum", "") {
        // Only the reference profile turns it on; this keeps it off for CF.
        cfg.hs.arrival_curriculum = false;
    }
    if cfg.profile == fairground_kernel::Profile::Reference
        && matches!(cfg.algo, Algo::Ppo | Algo::FairPpo)
    {
        if !file_sets("ppo", "normalize_advantages", "normalize_advantages") {
            cfg.ppo.normalize_advantages = true;
        }
        if !file_sets("hs", "standardized_returns", "hs_standardized_returns") {
            cfg.hs.standardized_returns = true;
        }
        if !file_sets("hs", "cf_days_end_together", "") {
            cfg.hs.cf_days_end_together = true;
        }
        let shaped = cfg.algo == Algo::FairPpo && cfg.fair.penalty == Penalty::Shaped;
        if !file_sets("hs", "cf_world_agents", "") && !shaped {
            cfg.hs.cf_world_agents = true;
        }
    }
}

/// `manifest.json`: what a run directory was made from.
#[derive(Serialize)]
struct Manifest<'a> {
    config: &'a TrainConfig,
    seeds: serde_json::Value,
    code_version: String,
    backend: &'a str,
    adapter: &'a str,
    start_time: String,
    start_time_unix_s: u64,
    threads: u32,
}

/// An exclusive lock on a run directory (`DIR/lock`, holding the owner's PID), held while a
/// `train` writes into it; released when dropped or when the process ends, however it ends.
pub struct RunLock {
    _file: std::fs::File,
}

/// Lock run directory `dir` for writing, or refuse with one line naming the holder's PID.
pub fn lock_run_dir(dir: &Path) -> Result<RunLock, TrainError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| TrainError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(TrainError::Resume {
                dir: dir.display().to_string(),
                why: format!(
                    "another fairground process (pid {}) is writing it",
                    holder.trim()
                ),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    written.map_err(|e| TrainError::io(&path, e))?;
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    //! `metrics_up_to` keeps the lines up to the checkpoint, drops a torn last line only when
    //! those are all intact before it, and refuses any other unreadable line.
    use super::*;

    fn lines_of(text: &str, done: u32) -> Result<Vec<String>, TrainError> {
        let dir = std::env::temp_dir().join(format!(
            "fairground-metrics-up-to-{}-{done}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, text).unwrap();
        let out = metrics_up_to(&path, done);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn torn_last_line_is_dropped_only_after_every_kept_line() {
        let l1 = "{\"iteration\":1}";
        let l2 = "{\"iteration\":2}";
        let l3 = "{\"iteration\":3}";
        let torn = "{\"iteration\":4,\"env";
        assert_eq!(
            lines_of(&format!("{l1}\n{l2}\n{l3}\n{torn}"), 2).unwrap(),
            [l1, l2]
        );
        assert_eq!(lines_of(&format!("{l1}\n{l2}\n"), 2).unwrap(), [l1, l2]);
        // A torn line inside the file, or one that stands where a kept line should be.
        assert!(lines_of(&format!("{l1}\n{torn}\n{l3}\n"), 1).is_err());
        assert!(lines_of(&format!("{l1}\n{torn}"), 2).is_err());
    }
}
