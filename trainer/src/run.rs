//! Run directories: `fairground train`, `fairground eval` and `fairground bench train`.
//!
//! A run directory holds `config.toml` (resolved), `manifest.json`, `metrics.jsonl` (one line
//! per iteration) and `checkpoints/`. Every file is written atomically (see [`crate::io`]).
//! Everything is validated, and the backend opened, before the directory is created: bad input
//! writes nothing.

use crate::ah::{ActMode, AhTrainer, EnvUse, EpisodeTotals, GROUP_NAMES, GROUPS, IterStats, Seeds};
use crate::config::{Backend, EnvName, TrainConfig};
use crate::error::TrainError;
use crate::hs::{HsTrainer, HsTrainerState, IMPAIRMENT_NAMES};
use crate::io::{load_latest_checkpoint, read_to_string, save_checkpoint, write_atomic};
use crate::update::LossMetrics;
use fairground_shaders::{CpuExecutor, Executor, GpuContext, GpuExecutor, Program, ShaderError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            ($($f:ident),*) => {$(if let Some(v) = self.$f { cfg.$f = v; })*};
        }
        set!(
            env,
            algo,
            fairness,
            alpha,
            beta,
            penalty,
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
}

/// One line of `metrics.jsonl`. Every key but `trained_agent_steps_per_s` and `wall_s` (wall
/// clock) is bit-identical for the same seed, backend and adapter.
#[derive(Serialize)]
struct MetricsLine<'a> {
    iteration: u32,
    env_steps: u64,
    agent_steps: u64,
    mean_reward_per_agent_step: f64,
    return_by_group: serde_json::Value,
    episodes_completed: u32,
    episode_return_by_group: serde_json::Value,
    #[serde(flatten)]
    loss: LossMetrics,
    #[serde(flatten)]
    fair: crate::fair::FairMetrics,
    trained_agent_steps_per_s: f64,
    wall_s: f64,
    param_hash: &'a str,
}

fn by_group(v: [f64; GROUPS]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, x) in GROUP_NAMES.iter().zip(v) {
        m.insert(name.to_string(), serde_json::json!(x));
    }
    serde_json::Value::Object(m)
}

/// The backend to use: `auto` becomes `gpu` when an adapter exists, else `cpu`.
fn open_backend(backend: Backend) -> Result<(Backend, Option<Arc<GpuContext>>), TrainError> {
    match backend {
        Backend::Cpu => Ok((Backend::Cpu, None)),
        Backend::Gpu => Ok((Backend::Gpu, Some(Arc::new(GpuContext::from_env()?)))),
        // A software adapter (lavapipe) is slower than the CPU twins at the reference's
        // 256-row minibatches, so `auto` takes the gpu backend only on a hardware adapter.
        Backend::Auto => match GpuContext::from_env() {
            Ok(ctx) if ctx.info.device_type != wgpu::DeviceType::Cpu => {
                Ok((Backend::Gpu, Some(Arc::new(ctx))))
            }
            Ok(_) => Ok((Backend::Cpu, None)),
            Err(ShaderError::NoAdapter { .. }) => Ok((Backend::Cpu, None)),
            Err(e) => Err(e.into()),
        },
    }
}

/// The metrics lines of iterations `1..=done` (a resumed run redoes any line written after its
/// last checkpoint: a kill between the metrics write and the checkpoint leaves one). A torn
/// last line (a kill mid-append where renames are not atomic, or a truncated copy) is dropped
/// when the lines of `1..=done` are all intact before it; any other unreadable line is an error.
fn metrics_up_to(path: &Path, done: u32) -> Result<Vec<String>, TrainError> {
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
fn start_run_dir(
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
fn append_metrics(
    path: &Path,
    lines: &mut Vec<String>,
    line: &impl Serialize,
) -> Result<(), TrainError> {
    lines.push(serde_json::to_string(line).expect("json"));
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

fn code_version() -> String {
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

fn default_out(cfg: &TrainConfig) -> PathBuf {
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

/// Resolve the config of a request (file, then flags; on resume, the saved config).
fn resolve(req: &TrainRequest) -> Result<(TrainConfig, PathBuf), TrainError> {
    if req.resume {
        let dir = req.out.clone().ok_or_else(|| TrainError::Resume {
            dir: "?".into(),
            why: "--resume needs --out DIR (the run directory to continue)".into(),
        })?;
        let saved_path = dir.join("config.toml");
        if !saved_path.exists() {
            return Err(TrainError::Resume {
                dir: dir.display().to_string(),
                why: "no config.toml there (not a run directory)".into(),
            });
        }
        let saved = TrainConfig::from_toml(
            &read_to_string(&saved_path)?,
            &saved_path.display().to_string(),
        )?;
        let mut cfg = saved.clone();
        if let Some(file) = &req.config_file {
            cfg = TrainConfig::from_toml_for(
                &read_to_string(file)?,
                &file.display().to_string(),
                req.overrides.env,
                req.overrides.profile,
            )?;
        }
        req.overrides.apply(&mut cfg);
        if cfg.backend == Backend::Auto {
            cfg.backend = saved.backend;
        }
        let mut cmp = cfg.clone();
        cmp.iterations = saved.iterations;
        cmp.threads = saved.threads;
        if cmp != saved {
            return Err(TrainError::Resume {
                dir: dir.display().to_string(),
                why: "a resumed run keeps its saved config (only --iterations may change)".into(),
            });
        }
        cfg.validate()?;
        Ok((cfg, dir))
    } else {
        let mut cfg = match &req.config_file {
            Some(file) => TrainConfig::from_toml_for(
                &read_to_string(file)?,
                &file.display().to_string(),
                req.overrides.env,
                req.overrides.profile,
            )?,
            None => TrainConfig::defaults(
                req.overrides.env.unwrap_or_default(),
                req.overrides.profile.unwrap_or_default(),
            ),
        };
        req.overrides.apply(&mut cfg);
        // HS counterfactual runs pair every hospital with its twin: a default of one instance
        // (the reference profile's) becomes one pair. A value the user gave is kept (and
        // validated).
        let file_sets_instances = match &req.config_file {
            Some(file) => toml::from_str::<toml::Table>(&read_to_string(file)?)
                .is_ok_and(|t| t.contains_key("instances")),
            None => false,
        };
        if cfg.env == EnvName::Hs
            && cfg.fairness == crate::config::Fairness::Cf
            && cfg.instances == 1
            && req.overrides.instances.is_none()
            && !file_sets_instances
        {
            cfg.instances = 2;
        }
        cfg.validate()?;
        let dir = req.out.clone().unwrap_or_else(|| default_out(&cfg));
        if dir.exists() {
            return Err(TrainError::RunDirExists(dir.display().to_string()));
        }
        Ok((cfg, dir))
    }
}

/// `fairground train`: returns the run directory.
pub fn train(req: &TrainRequest) -> Result<PathBuf, TrainError> {
    let (mut cfg, dir) = resolve(req)?;
    let (backend, ctx) = open_backend(cfg.backend)?;
    cfg.backend = backend;
    match (cfg.env, ctx) {
        (EnvName::Ah, Some(ctx)) => {
            train_with(&cfg, &dir, req, |p| GpuExecutor::new(ctx.clone(), p))
        }
        (EnvName::Ah, None) => train_with(&cfg, &dir, req, |p| Ok(CpuExecutor::new(p))),
        (EnvName::Hs, Some(ctx)) => {
            train_hs_with(&cfg, &dir, req, |p| GpuExecutor::new(ctx.clone(), p))
        }
        (EnvName::Hs, None) => train_hs_with(&cfg, &dir, req, |p| Ok(CpuExecutor::new(p))),
    }?;
    Ok(dir)
}

fn train_with<E: Executor + Send>(
    cfg: &TrainConfig,
    dir: &Path,
    req: &TrainRequest,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<(), TrainError> {
    let mut trainer = AhTrainer::new(cfg, EnvUse::Train, make)?;
    let mut lines: Vec<String> = Vec::new();
    let metrics_path = dir.join("metrics.jsonl");
    if req.resume {
        if let Some((state, nets)) = load_latest_checkpoint::<crate::ah::TrainerState>(dir)? {
            let done = state.iteration;
            trainer.load(state, &nets)?;
            lines = metrics_up_to(&metrics_path, done)?;
        }
        write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    } else {
        let seeds = serde_json::to_value(Seeds::derive(cfg.seed, EnvUse::Train)).expect("json");
        start_run_dir(dir, cfg, trainer.adapter(), seeds)?;
    }

    let total = u64::from(cfg.iterations);
    let terminal = std::io::stderr().is_terminal() && !req.quiet;
    let bar = if terminal {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} iteration {pos}/{len} [{bar:30}] {msg} ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        b.set_position(u64::from(trainer.iteration));
        Some(b)
    } else {
        None
    };
    if !req.quiet {
        let msg = format!(
            "training {} on {} ({}) into {}",
            "ah",
            cfg.backend.name(),
            trainer.adapter(),
            dir.display()
        );
        match &bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
    while trainer.iteration < cfg.iterations {
        let s: IterStats = trainer.iterate()?;
        let hash = trainer.param_hash()?;
        let rate = trainer.agent_steps_per_iteration() as f64 / s.wall_s;
        let line = MetricsLine {
            iteration: trainer.iteration,
            env_steps: trainer.env_steps,
            agent_steps: trainer.env_steps * trainer.agents() as u64,
            mean_reward_per_agent_step: s.mean_reward_per_agent_step,
            return_by_group: by_group(s.return_by_group),
            episodes_completed: s.episodes_completed,
            episode_return_by_group: s
                .episode_return_by_group
                .map_or(serde_json::Value::Null, by_group),
            loss: s.loss,
            fair: s.fair,
            trained_agent_steps_per_s: rate.round(),
            wall_s: s.wall_s,
            param_hash: &hash,
        };
        append_metrics(&metrics_path, &mut lines, &line)?;
        if trainer.iteration % cfg.checkpoint_every == 0 || trainer.iteration == cfg.iterations {
            let (state, nets) = trainer.save()?;
            save_checkpoint(dir, &state, &nets, &hash)?;
        }
        let msg = format!(
            "reward/agent-step {:.5}, {:.0} trained agent-steps/s",
            s.mean_reward_per_agent_step, rate
        );
        match &bar {
            Some(b) => {
                b.set_message(msg);
                b.set_position(u64::from(trainer.iteration));
            }
            None if !req.quiet => {
                eprintln!("iteration {}/{}: {msg}", trainer.iteration, cfg.iterations)
            }
            None => {}
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    Ok(())
}

/// What `fairground eval` was asked to do.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    pub run_dir: PathBuf,
    pub episodes: u32,
    pub greedy: bool,
    /// Uniform random actions instead of the trained policy (the baseline).
    pub random: bool,
    /// Override the run's episode length.
    pub episode_steps: Option<u32>,
    /// Override the run's backend.
    pub backend: Option<Backend>,
}

/// `fairground eval`: writes `eval.json` into the run directory and returns its text.
pub fn eval(req: &EvalRequest) -> Result<String, TrainError> {
    let cfg_path = req.run_dir.join("config.toml");
    if !cfg_path.exists() {
        return Err(TrainError::Resume {
            dir: req.run_dir.display().to_string(),
            why: "no config.toml there (not a run directory)".into(),
        });
    }
    let mut cfg =
        TrainConfig::from_toml(&read_to_string(&cfg_path)?, &cfg_path.display().to_string())?;
    if let Some(s) = req.episode_steps {
        cfg.episode_steps = s;
    }
    if let Some(b) = req.backend {
        cfg.backend = b;
    }
    cfg.instances = cfg.instances.min(req.episodes.max(1));
    // Every evaluation measures counterfactual fairness: each world is played in lock-step with
    // its twin (AH: a twin world; HS: every factual hospital with its twin), whatever the run
    // trained on. The reported episodes are the factual world's.
    cfg.fairness = crate::config::Fairness::Cf;
    if cfg.env == EnvName::Hs {
        cfg.instances = cfg.instances.max(2).next_multiple_of(2);
    }
    cfg.validate()?;
    if cfg.env == EnvName::Hs {
        return eval_hs(req, &cfg);
    }
    let (nets, backend, ctx, mode) = eval_setup::<crate::ah::TrainerState>(req, &cfg)?;
    let totals = match ctx {
        Some(ctx) => {
            let mut t = AhTrainer::new(&cfg, EnvUse::Eval, |p| GpuExecutor::new(ctx.clone(), p))?;
            t.load_nets(&nets)?;
            t.play_episodes(req.episodes as usize, mode, req.random)?
        }
        None => {
            let mut t = AhTrainer::new(&cfg, EnvUse::Eval, |p| Ok(CpuExecutor::new(p)))?;
            t.load_nets(&nets)?;
            t.play_episodes(req.episodes as usize, mode, req.random)?
        }
    };
    let params = crate::ah::ah_params(&cfg);
    let sensitive = f64::from(params.sensitive_agents());
    let group_agents = [f64::from(params.agents) - sensitive, sensitive];
    let e = totals.len() as f64;
    let fair = ah_eval_disparities(&totals);
    let cf: Vec<f64> = totals.iter().filter_map(|e| e.cf).collect();
    let cf = (!cf.is_empty()).then(|| cf.iter().sum::<f64>() / cf.len() as f64);
    let totals: Vec<[f32; 4]> = totals.iter().map(|e| e.totals).collect();
    let mean = |f: &dyn Fn(&[f32; 4]) -> f64| totals.iter().map(f).sum::<f64>() / e;
    let total = mean(&|t| t.iter().map(|&x| f64::from(x)).sum());
    let ns = mean(&|t| f64::from(t[0]) + f64::from(t[1]));
    let s = mean(&|t| f64::from(t[2]) + f64::from(t[3]));
    // Gini and Jain on [NSr, NSb, Sr, Sb] per episode (spec §6), then averaged.
    let gini = mean(&|t| {
        let mut x: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
        x.sort_by(f64::total_cmp);
        let sum: f64 = x.iter().sum();
        if sum == 0.0 {
            return 0.0;
        }
        let n = x.len() as f64;
        2.0 * x
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 1.0) * v)
            .sum::<f64>()
            / (n * sum)
            - (n + 1.0) / n
    });
    let jain = mean(&|t| {
        let sum: f64 = t.iter().map(|&v| f64::from(v)).sum();
        let sq: f64 = t.iter().map(|&v| f64::from(v).powi(2)).sum();
        if sq == 0.0 {
            0.0
        } else {
            sum * sum / (4.0 * sq)
        }
    });
    let policy = if req.random {
        "uniform_random"
    } else if req.greedy {
        "greedy"
    } else {
        "stochastic"
    };
    let out = serde_json::json!({
        "run_dir": req.run_dir.display().to_string(),
        "policy": policy,
        "backend": backend.name(),
        "episodes": totals.len(),
        "episode_steps": cfg.episode_steps,
        "mean_reward_per_agent_step":
            total / (f64::from(params.agents) * f64::from(cfg.episode_steps)),
        "return_by_group": by_group([ns / group_agents[0], s / group_agents[1]]),
        "group_totals": {
            "NSr": mean(&|t| f64::from(t[0])),
            "NSb": mean(&|t| f64::from(t[1])),
            "Sr": mean(&|t| f64::from(t[2])),
            "Sb": mean(&|t| f64::from(t[3])),
        },
        "demographic_disparity": ns - s,
        "demographic_disparity_normalised": (ns - s) / total.max(1.0),
        "dp": fair["dp"],
        "dp_abs": fair["dp_abs"],
        "csp": fair["csp"],
        "cf": cf,
        "gini": gini,
        "jain": jain,
    });
    let text = serde_json::to_string_pretty(&out).expect("json");
    let name = if req.random {
        "eval-random.json"
    } else {
        "eval.json"
    };
    write_atomic(&req.run_dir.join(name), text.as_bytes())?;
    Ok(text)
}

/// AH eval disparities in per-agent return units (spec §6's group gaps, divided by each
/// cell's agents): `dp` = mean over episodes of (non-sensitive mean return − sensitive),
/// `dp_abs` = mean of its |·|; `csp` per berry preference c the mean of (NS_c mean − S_c mean),
/// and `sum` = mean over episodes of Σ_c |·| (the paper's Eq. 4).
fn ah_eval_disparities(episodes: &[EpisodeTotals]) -> serde_json::Value {
    let e = episodes.len().max(1) as f64;
    let per_agent = |t: &[f32; 4], n: &[u32; 4], cells: &[usize]| {
        let total: f64 = cells.iter().map(|&c| f64::from(t[c])).sum();
        let count: u32 = cells.iter().map(|&c| n[c]).sum();
        if count > 0 {
            total / f64::from(count)
        } else {
            0.0
        }
    };
    let (mut dp, mut dp_abs, mut csp_sum) = (0.0, 0.0, 0.0);
    let mut colour = [0.0; 2];
    for EpisodeTotals {
        totals: t,
        counts: n,
        ..
    } in episodes
    {
        let g = per_agent(t, n, &[0, 1]) - per_agent(t, n, &[2, 3]);
        dp += g / e;
        dp_abs += g.abs() / e;
        for (c, acc) in colour.iter_mut().enumerate() {
            let gc = per_agent(t, n, &[c]) - per_agent(t, n, &[2 + c]);
            *acc += gc / e;
            csp_sum += gc.abs() / e;
        }
    }
    serde_json::json!({
        "dp": dp,
        "dp_abs": dp_abs,
        "csp": {"red": colour[0], "blue": colour[1], "sum": csp_sum},
    })
}

/// HS eval disparities (spec §6) of the factual hospitals' days (even instances): per day
/// `dp` = |mean ledger of finished non-impaired − impaired| (`dp_signed` without |·|); `csp` per priority the same within the priority (an
/// empty cell's mean counts as 0, as the reference's tables) and their sum; `cf` (twin runs)
/// per pair of days of the same number |mean ledger of the factual hospital − its twin|. Each
/// is the mean over the days (pairs) that have it.
fn hs_eval_disparities(days: &[(usize, fairground_kernel::hs::HsDayStats)]) -> serde_json::Value {
    let mean_of = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let cell = |s: &fairground_kernel::hs::HsDayStats, imps: &[usize], pris: &[usize]| {
        crate::hs::Outcomes::of_day(s).mean(imps, pris)
    };
    let (mut dp, mut dp_signed) = (Vec::new(), Vec::new());
    let mut pri: [Vec<f64>; 3] = Default::default();
    for (_, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        if let (Some(a), Some(b)) = (cell(s, &[0], &[0, 1, 2]), cell(s, &[1, 2], &[0, 1, 2])) {
            dp.push((a - b).abs());
            dp_signed.push(a - b);
        }
        for (p, acc) in pri.iter_mut().enumerate() {
            let a = cell(s, &[0], &[p]).unwrap_or(0.0);
            let b = cell(s, &[1, 2], &[p]).unwrap_or(0.0);
            acc.push((a - b).abs());
        }
    }
    let mut cf = Vec::new();
    for (i, s) in days.iter().filter(|(i, _)| i % 2 == 0) {
        let twin = days.iter().find(|(j, t)| *j == i + 1 && t.day == s.day);
        if let Some((_, t)) = twin {
            let all = |x: &fairground_kernel::hs::HsDayStats| cell(x, &[0, 1, 2], &[0, 1, 2]);
            if let (Some(a), Some(b)) = (all(s), all(t)) {
                cf.push((a - b).abs());
            }
        }
    }
    let csp: Vec<Option<f64>> = pri.iter().map(|v| mean_of(v)).collect();
    serde_json::json!({
        "dp": mean_of(&dp),
        "dp_signed": mean_of(&dp_signed),
        "csp": {
            "low": csp[0],
            "medium": csp[1],
            "high": csp[2],
            "sum": csp.iter().flatten().sum::<f64>(),
        },
        "cf": mean_of(&cf),
    })
}

/// `fairground bench train`: one JSON line. The environment's default config (AH's or HS's,
/// networks included) with these sizes; `rollout_steps` counts decision rounds for HS.
pub fn bench(
    env: EnvName,
    instances: u32,
    backend: Backend,
    rollout_steps: u32,
    minibatch_size: u32,
    iterations: u32,
) -> Result<String, TrainError> {
    let cfg = TrainConfig {
        instances,
        rollout_steps,
        minibatch_size,
        iterations,
        backend,
        ..TrainConfig::default_for(env)
    };
    cfg.validate()?;
    let (backend, ctx) = open_backend(backend)?;
    match (env, ctx) {
        (EnvName::Ah, Some(ctx)) => bench_with(&cfg, backend, |p| GpuExecutor::new(ctx.clone(), p)),
        (EnvName::Ah, None) => bench_with(&cfg, backend, |p| Ok(CpuExecutor::new(p))),
        (EnvName::Hs, Some(ctx)) => {
            bench_hs_with(&cfg, backend, |p| GpuExecutor::new(ctx.clone(), p))
        }
        (EnvName::Hs, None) => bench_hs_with(&cfg, backend, |p| Ok(CpuExecutor::new(p))),
    }
}

/// `bench train --env hs`: decisions trained per second (rollout + update), split by phase.
fn bench_hs_with<E: Executor>(
    cfg: &TrainConfig,
    backend: Backend,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<String, TrainError> {
    let mut t = HsTrainer::new(cfg, EnvUse::Train, make)?;
    // One warm-up iteration (pipelines, first allocations), then the timed ones.
    t.iterate()?;
    let before = t.timing;
    let (mut wall, mut days, mut decisions) = (0.0, 0u32, 0u64);
    for _ in 0..cfg.iterations {
        let s = t.iterate()?;
        wall += s.wall_s;
        days += s.days_completed;
        decisions += t.decisions_per_iteration();
    }
    let after = t.timing;
    fn js(v: &impl Serialize) -> String {
        serde_json::to_string(v).expect("json")
    }
    // Keys in the order of the AH line (serde_json's maps would sort them).
    Ok(format!(
        "{{\"bench\":\"train\",\"env\":\"hs\",\"backend\":{},\"adapter\":{},\"instances\":{},\"rollout_steps\":{},\"minibatch_size\":{},\"iterations\":{},\"trunk\":{},\"hidden\":{},\"hs_patients\":{},\"hs_sim_minutes\":{},\"days_completed\":{},\"trained_decisions\":{},\"trained_decisions_per_s\":{},\"wall_s\":{:.3},\"kernel_s\":{:.3},\"policy_act_s\":{:.3},\"ppo_update_s\":{:.3},\"host_s\":{:.3},\"transfer_mib\":{:.3}}}",
        js(&backend.name()),
        js(&t.adapter()),
        cfg.instances,
        cfg.rollout_steps,
        cfg.minibatch_size,
        cfg.iterations,
        js(&cfg.trunk),
        js(&cfg.hidden),
        cfg.hs_patients,
        cfg.hs_sim_minutes,
        days,
        decisions,
        (decisions as f64 / wall).round(),
        wall,
        after.kernel_s - before.kernel_s,
        after.act_s - before.act_s,
        after.update_s - before.update_s,
        after.host_s - before.host_s,
        (after.transfer_bytes - before.transfer_bytes) as f64 / (1024.0 * 1024.0),
    ))
}

fn bench_with<E: Executor + Send>(
    cfg: &TrainConfig,
    backend: Backend,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<String, TrainError> {
    let mut t = AhTrainer::new(cfg, EnvUse::Train, make)?;
    // One warm-up iteration (pipelines, first allocations), then the timed ones.
    t.iterate()?;
    let before = t.timing;
    let mut wall = 0.0;
    for _ in 0..cfg.iterations {
        wall += t.iterate()?.wall_s;
    }
    let after = t.timing;
    let steps = t.agent_steps_per_iteration() * u64::from(cfg.iterations);
    let kernel = after.kernel_s - before.kernel_s;
    let act = after.act_s - before.act_s;
    let update = after.update_s - before.update_s;
    let host = after.host_s - before.host_s;
    Ok(format!(
        "{{\"bench\":\"train\",\"env\":\"ah\",\"backend\":{},\"adapter\":{},\"instances\":{},\"rollout_steps\":{},\"minibatch_size\":{},\"iterations\":{},\"trained_agent_steps\":{},\"trained_agent_steps_per_s\":{},\"wall_s\":{:.3},\"kernel_s\":{:.3},\"policy_act_s\":{:.3},\"ppo_update_s\":{:.3},\"host_s\":{:.3},\"transfer_mib\":{:.1}}}",
        serde_json::to_string(backend.name()).expect("json"),
        serde_json::to_string(t.adapter()).expect("json"),
        cfg.instances,
        cfg.rollout_steps,
        cfg.minibatch_size,
        cfg.iterations,
        steps,
        (steps as f64 / wall).round(),
        wall,
        kernel,
        act,
        update,
        host,
        (after.transfer_bytes - before.transfer_bytes) as f64 / (1024.0 * 1024.0),
    ))
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

/// One line of an HS run's `metrics.jsonl`. Every key but `trained_agent_steps_per_s` and
/// `wall_s` is bit-identical for the same seed, backend and adapter.
#[derive(Serialize)]
struct HsMetricsLine<'a> {
    iteration: u32,
    /// Decision rounds × instances, cumulative.
    env_steps: u64,
    /// Decisions of this iteration by role.
    decisions_by_role: serde_json::Value,
    mean_reward_per_decision: f64,
    days_completed: u32,
    /// Mean patients treated over the days completed in this iteration (null if none).
    patients_treated_mean: Option<f64>,
    /// Mean ledger of finished patients by impairment over those days (null if none).
    return_by_group: serde_json::Value,
    #[serde(flatten)]
    loss: LossMetrics,
    #[serde(flatten)]
    fair: crate::fair::FairMetrics,
    trained_agent_steps_per_s: f64,
    wall_s: f64,
    param_hash: &'a str,
}

fn by_impairment(v: Option<[f64; 3]>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(v) => {
            let mut m = serde_json::Map::new();
            for (name, x) in IMPAIRMENT_NAMES.iter().zip(v) {
                m.insert(name.to_string(), serde_json::json!(x));
            }
            serde_json::Value::Object(m)
        }
    }
}

fn train_hs_with<E: Executor>(
    cfg: &TrainConfig,
    dir: &Path,
    req: &TrainRequest,
    make: impl Fn(Program) -> Result<E, ShaderError>,
) -> Result<(), TrainError> {
    let mut trainer = HsTrainer::new(cfg, EnvUse::Train, make)?;
    let mut lines: Vec<String> = Vec::new();
    let metrics_path = dir.join("metrics.jsonl");
    if req.resume {
        if let Some((state, nets)) = load_latest_checkpoint::<HsTrainerState>(dir)? {
            let done = state.iteration;
            trainer.load(state, &nets)?;
            lines = metrics_up_to(&metrics_path, done)?;
        }
        write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    } else {
        let seeds =
            serde_json::to_value(crate::hs::Seeds::derive(cfg.seed, EnvUse::Train)).expect("json");
        start_run_dir(dir, cfg, trainer.adapter(), seeds)?;
    }
    if !req.quiet {
        eprintln!(
            "training hs on {} ({}) into {}",
            cfg.backend.name(),
            trainer.adapter(),
            dir.display()
        );
    }
    while trainer.iteration < cfg.iterations {
        let s = trainer.iterate()?;
        let hash = trainer.param_hash()?;
        let rate = trainer.decisions_per_iteration() as f64 / s.wall_s;
        let mut roles = serde_json::Map::new();
        for (name, d) in crate::hs::ROLE_NAMES.iter().zip(s.decisions_by_role) {
            roles.insert(name.to_string(), serde_json::json!(d));
        }
        let line = HsMetricsLine {
            iteration: trainer.iteration,
            env_steps: trainer.env_steps,
            decisions_by_role: serde_json::Value::Object(roles),
            mean_reward_per_decision: s.mean_reward_per_decision,
            days_completed: s.days_completed,
            patients_treated_mean: s.patients_treated_mean,
            return_by_group: by_impairment(s.return_by_group),
            loss: s.loss,
            fair: s.fair,
            trained_agent_steps_per_s: rate.round(),
            wall_s: s.wall_s,
            param_hash: &hash,
        };
        append_metrics(&metrics_path, &mut lines, &line)?;
        if trainer.iteration % cfg.checkpoint_every == 0 || trainer.iteration == cfg.iterations {
            let (state, nets) = trainer.save()?;
            save_checkpoint(dir, &state, &nets, &hash)?;
        }
        if !req.quiet {
            eprintln!(
                "iteration {}/{}: {} days, patients treated {}, {:.0} decisions/s",
                trainer.iteration,
                cfg.iterations,
                s.days_completed,
                s.patients_treated_mean
                    .map_or("-".to_string(), |m| format!("{m:.1}")),
                rate
            );
        }
    }
    Ok(())
}

/// What every eval starts from: the run's last checkpoint, the backend, and how to act.
#[allow(clippy::type_complexity)]
fn eval_setup<S: crate::io::CheckpointState>(
    req: &EvalRequest,
    cfg: &TrainConfig,
) -> Result<
    (
        Vec<crate::ah::NetState>,
        Backend,
        Option<Arc<GpuContext>>,
        ActMode,
    ),
    TrainError,
> {
    let Some((_, nets)) = load_latest_checkpoint::<S>(&req.run_dir)? else {
        return Err(TrainError::Resume {
            dir: req.run_dir.display().to_string(),
            why: "no checkpoint to evaluate".into(),
        });
    };
    let (backend, ctx) = open_backend(cfg.backend)?;
    let mode = if req.greedy {
        ActMode::Greedy
    } else {
        ActMode::Sample
    };
    Ok((nets, backend, ctx, mode))
}

/// `fairground eval` of an HS run: `episodes` whole days from a fresh hospital.
fn eval_hs(req: &EvalRequest, cfg: &TrainConfig) -> Result<String, TrainError> {
    let (nets, backend, ctx, mode) = eval_setup::<HsTrainerState>(req, cfg)?;
    let days = req.episodes.max(1) as usize;
    let stats = match ctx {
        Some(ctx) => {
            let mut t = HsTrainer::new(cfg, EnvUse::Eval, |p| GpuExecutor::new(ctx.clone(), p))?;
            t.load_nets(&nets)?;
            t.play_days(days, mode, req.random)?
        }
        None => {
            let mut t = HsTrainer::new(cfg, EnvUse::Eval, |p| Ok(CpuExecutor::new(p)))?;
            t.load_nets(&nets)?;
            t.play_days(days, mode, req.random)?
        }
    };
    let fair = hs_eval_disparities(&stats);
    // Everything else describes the factual hospitals (even instances).
    let stats: Vec<fairground_kernel::hs::HsDayStats> = stats
        .into_iter()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, s)| s)
        .collect();
    let mut agg = crate::hs::DayAgg::default();
    for s in &stats {
        agg.add(s);
    }
    let e = stats.len() as f64;
    let mean = |f: &dyn Fn(&fairground_kernel::hs::HsDayStats) -> f64| {
        stats.iter().map(f).sum::<f64>() / e
    };
    let routing: f64 = mean(&|s| f64::from(s.routing_decisions.iter().sum::<u32>()));
    let frac = |k: usize| {
        mean(&|s| f64::from(s.routing_decisions[k])) / if routing > 0.0 { routing } else { 1.0 }
    };
    let policy = if req.random {
        "uniform_random"
    } else if req.greedy {
        "greedy"
    } else {
        "stochastic"
    };
    let out = serde_json::json!({
        "run_dir": req.run_dir.display().to_string(),
        "env": "hs",
        "policy": policy,
        "backend": backend.name(),
        "days": stats.len(),
        "patients_per_day": cfg.hs_patients,
        "sim_minutes": cfg.hs_sim_minutes,
        "patients_treated_mean": agg.treated_mean(),
        "patients_exited_mean": mean(&|s| f64::from(s.patients_exited)),
        "return_by_group": by_impairment(agg.by_group()),
        "dp": fair["dp"],
        "dp_signed": fair["dp_signed"],
        "csp": fair["csp"],
        "cf": fair["cf"],
        "swing_moves_mean": mean(&|s| f64::from(s.swing_moves)),
        "routing_decisions_mean": routing,
        "routing_outcome_fraction": {
            "perfect": frac(0),
            "backup": frac(1),
            "wrong": frac(2),
        },
        "decisions_mean": {
            "router": mean(&|s| f64::from(s.decisions[0])),
            "dispatcher": mean(&|s| f64::from(s.decisions[1])),
            "manager": mean(&|s| f64::from(s.decisions[2])),
        },
        "empty_dispatches_mean": mean(&|s| f64::from(s.empty_dispatches)),
        "bounces_mean": mean(&|s| f64::from(s.bounces)),
        "escort_wait_mean": mean(&|s| s.escort_wait_sum) / mean(&|s| f64::from(s.escort_waits)).max(1.0),
        "ward_wait_mean": mean(&|s| s.ward_wait_sum) / mean(&|s| f64::from(s.ward_waits)).max(1.0),
    });
    let text = serde_json::to_string_pretty(&out).expect("json");
    let name = if req.random {
        "eval-random.json"
    } else {
        "eval.json"
    };
    write_atomic(&req.run_dir.join(name), text.as_bytes())?;
    Ok(text)
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
