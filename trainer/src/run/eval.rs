//! `fairground eval`: play a run's policy (or the uniform random baseline) from a fresh
//! environment and write `eval.json` (`eval-random.json` for the baseline, `eval-greedy.json`
//! for the greedy policy; docs/schema.md lists every key) into the run
//! directory. Every evaluation measures counterfactual fairness: each world is played in
//! lock-step with its twin (AH: a twin world; HS: every factual hospital with its twin),
//! whatever the run trained on; the reported episodes are the factual world's.

use super::{make_trainer, open_backend};
use crate::common::{ActMode, EnvUse};
use crate::config::{Backend, EnvName, Fairness, TrainConfig};
use crate::error::TrainError;
use crate::io::{read_to_string, write_atomic};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

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
    /// AH: every test game of both worlds from one seed (`ah.cf_test_one_layout`).
    pub one_layout: bool,
}

/// `fairground eval`: writes `eval.json` into the run directory and returns its text.
pub fn eval(req: &EvalRequest) -> Result<String, TrainError> {
    let cfg_path = req.run_dir.join("config.toml");
    if !cfg_path.exists() {
        return Err(TrainError::Eval {
            dir: req.run_dir.display().to_string(),
            why: "no config.toml there (not a run directory)".into(),
        });
    }
    let mut cfg =
        TrainConfig::from_toml(&read_to_string(&cfg_path)?, &cfg_path.display().to_string())?;
    if let Some(s) = req.episode_steps {
        cfg.ah.episode_steps = s;
    }
    if let Some(b) = req.backend {
        cfg.backend = b;
    }
    if req.one_layout {
        if cfg.env != EnvName::Ah {
            return Err(TrainError::Eval {
                dir: req.run_dir.display().to_string(),
                why: "--one-layout: an AH option (the reference's CF test); this is an HS run"
                    .into(),
            });
        }
        cfg.ah.cf_test_one_layout = true;
    }
    cfg.instances = cfg.instances.min(req.episodes.max(1));
    cfg.fair.fairness = Fairness::Cf;
    if cfg.env == EnvName::Hs {
        cfg.instances = cfg.instances.max(2).next_multiple_of(2);
    }
    cfg.validate()?;
    let (backend, ctx) = open_backend(cfg.backend, cfg.threads)?;
    let mode = if req.greedy {
        ActMode::Greedy
    } else {
        ActMode::Sample
    };
    let mut trainer = make_trainer(&cfg, EnvUse::Eval, ctx)?;
    trainer.load_latest_nets(&req.run_dir)?;
    // A checkpoint can verify and still hold what a diverged update left: never play NaN.
    if let Some(what) = trainer.check_params()?.non_finite {
        return Err(TrainError::Eval {
            dir: req.run_dir.display().to_string(),
            why: format!("its newest checkpoint holds non-finite {what}"),
        });
    }
    let episodes = req.episodes.max(1) as usize;
    let bar = progress_bar(episodes);
    let mut progress = |n: usize| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
            b.tick();
        }
    };
    let played = trainer.play(
        episodes,
        mode,
        req.random,
        &mut progress,
        &mut crate::train_loop::no_watch,
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let policy = if req.random {
        "uniform_random"
    } else if req.greedy {
        "greedy"
    } else {
        "stochastic"
    };
    let mut out = serde_json::json!({
        "run_dir": req.run_dir.display().to_string(),
        "policy": policy,
        "backend": backend.name(),
    });
    if let (Some(o), serde_json::Value::Object(env)) = (out.as_object_mut(), played) {
        o.extend(env);
    }
    let text = serde_json::to_string_pretty(&out).expect("json");
    let name = if req.random {
        "eval-random.json"
    } else if req.greedy {
        "eval-greedy.json"
    } else {
        "eval.json"
    };
    let path = req.run_dir.join(name);
    match write_atomic(&path, text.as_bytes()) {
        Ok(()) => Ok(text),
        Err(e) => Err(TrainError::EvalNotSaved {
            path: path.display().to_string(),
            message: e.to_string(),
            text,
        }),
    }
}

/// Progress on a terminal: episodes (HS: days) finished, with the elapsed time.
fn progress_bar(episodes: usize) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(episodes as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} evaluating: {pos}/{len} episodes {elapsed}")
                .expect("template"),
        );
        b
    })
}
