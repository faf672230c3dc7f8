//! `fairground replay`: record one episode (AH) or day (HS) of a run's policy into a `.fgr`
//! file, and check such a file by re-simulating it.
//!
//! Recording plays the run's policy exactly as `fairground eval --episodes 1` does (the same
//! environment streams, the same counterfactual twin, the same networks) and watches the
//! environment seam's scatter/step boundary ([`crate::train_loop::Watch`]): every round it keeps
//! the actions the factual kernel received and a digest of each column of the kernel's state
//! after the step. Episode 0 of a replay is therefore the episode `eval --episodes 1` plays.
//!
//! Checking needs no networks and no GPU: the kernel is restored from the recorded start
//! snapshot and stepped with the recorded actions; every round's digests must match. The first
//! round that differs is reported with the columns that differ.

pub mod file;
pub mod sim;

use crate::common::{ActMode, EnvUse};
use crate::config::{EnvName, Fairness, TrainConfig};
use crate::env::{ReplayView, RoundOut};
use crate::error::TrainError;
use crate::io::{latest_checkpoint, read_to_string, write_atomic};
use crate::run::{make_trainer, open_backend};
use file::{Header, Replay};
use sha2::{Digest, Sha256};
use sim::{Digester, Kernel};
use std::path::{Path, PathBuf};

/// What `fairground replay RUN_DIR --out FILE` was asked to record.
#[derive(Clone, Debug)]
pub struct RecordRequest {
    pub run_dir: PathBuf,
    pub out: PathBuf,
    /// The checkpoint whose networks play [default: the newest].
    pub checkpoint: Option<u32>,
    /// Which episode (AH) or day (HS) of factual instance 0, from 0.
    pub episode: u32,
    pub greedy: bool,
    /// Worker threads [default: the run's].
    pub threads: Option<u32>,
}

/// What a recording wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    pub replay: String,
    pub env: String,
    pub checkpoint_iteration: u32,
    pub episode: u32,
    pub rounds: u32,
    pub bytes: usize,
    pub outcome: serde_json::Value,
}

fn replay_error(path: &Path, why: impl Into<String>) -> TrainError {
    TrainError::Replay {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// The config a replay plays: the run's, as `eval --episodes 1` changes it.
fn replay_config(
    run_dir: &Path,
    threads: Option<u32>,
) -> Result<(TrainConfig, String), TrainError> {
    let cfg_path = run_dir.join("config.toml");
    if !cfg_path.exists() {
        return Err(replay_error(
            run_dir,
            "no config.toml there (not a run directory)",
        ));
    }
    let text = read_to_string(&cfg_path)?;
    let mut cfg = TrainConfig::from_toml(&text, &cfg_path.display().to_string())?;
    // As `eval --episodes 1`: one factual instance (HS: with its twin hospital), every world
    // played with its counterfactual twin.
    cfg.instances = 1;
    cfg.fair.fairness = Fairness::Cf;
    if cfg.env == EnvName::Hs {
        cfg.instances = 2;
    }
    if let Some(t) = threads {
        cfg.threads = t;
    }
    cfg.validate()?;
    Ok((cfg, format!("{:x}", Sha256::digest(text.as_bytes()))))
}

/// The recorder the play loop calls at every step.
struct Recorder {
    episode: u32,
    /// Episodes of factual instance 0 finished before the recorded one started.
    finished: u32,
    recording: bool,
    done: bool,
    digester: Digester,
    columns: Vec<String>,
    names: Vec<String>,
    start: serde_json::Value,
    start_digests: Vec<u32>,
    action_bytes: usize,
    actions: Vec<u8>,
    digests: Vec<u32>,
    rounds: u32,
    outcome: serde_json::Value,
}

impl Recorder {
    fn begin(&mut self, view: &ReplayView<'_>) {
        self.recording = true;
        self.start = sim::snapshot(view);
        self.start_digests.clear();
        self.digester
            .digest(view, &mut self.columns, &mut self.start_digests);
        self.action_bytes = sim::action_bytes(view);
    }

    /// One call of the play loop's watch: true once the episode is recorded.
    fn watch(&mut self, view: ReplayView<'_>, out: Option<&RoundOut>) -> bool {
        let Some(out) = out else {
            if self.episode == 0 {
                self.begin(&view);
            }
            return false;
        };
        if self.recording {
            sim::push_actions(&view, &mut self.actions);
            self.digester
                .digest(&view, &mut self.names, &mut self.digests);
            debug_assert_eq!(self.names, self.columns, "the state's columns are fixed");
            self.rounds += 1;
        }
        if sim::episode_ended(&view, out.done[0]) {
            if self.recording {
                self.outcome = sim::outcome(&view);
                self.done = true;
                return true;
            }
            self.finished += 1;
            if self.finished == self.episode {
                self.begin(&view);
            }
        }
        false
    }
}

/// `fairground replay RUN_DIR --out FILE`: record, write the file atomically, say what it holds.
pub fn record(req: &RecordRequest) -> Result<Recorded, TrainError> {
    let (cfg, config_sha256) = replay_config(&req.run_dir, req.threads)?;
    let iteration = match req.checkpoint {
        Some(it) => it,
        None => latest_checkpoint(&req.run_dir)
            .ok_or_else(|| replay_error(&req.run_dir, "no checkpoint to replay"))?,
    };
    let (_, ctx) = open_backend(cfg.backend, cfg.threads)?;
    let mut trainer = make_trainer(&cfg, EnvUse::Eval, ctx)?;
    let param_hash = trainer.load_nets_at(&req.run_dir, iteration)?;
    if let Some(what) = trainer.check_params()?.non_finite {
        return Err(replay_error(
            &req.run_dir,
            format!("checkpoint {iteration} holds non-finite {what}"),
        ));
    }
    let mode = if req.greedy {
        ActMode::Greedy
    } else {
        ActMode::Sample
    };
    let mut rec = Recorder {
        episode: req.episode,
        finished: 0,
        recording: false,
        done: false,
        digester: Digester::default(),
        columns: Vec::new(),
        names: Vec::new(),
        start: serde_json::Value::Null,
        start_digests: Vec::new(),
        action_bytes: 0,
        actions: Vec::new(),
        digests: Vec::new(),
        rounds: 0,
        outcome: serde_json::Value::Null,
    };
    trainer.play(
        req.episode as usize + 1,
        mode,
        false,
        &mut |_| {},
        &mut |view, out| rec.watch(view, out),
    )?;
    if !rec.done {
        return Err(replay_error(
            &req.run_dir,
            format!("episode {} did not finish", req.episode),
        ));
    }
    let replay = Replay {
        header: Header {
            env: cfg.env.name().to_string(),
            run_dir: req.run_dir.display().to_string(),
            config_sha256,
            code_version: crate::run::dir::code_version(),
            checkpoint_iteration: iteration,
            param_hash,
            seed: cfg.seed,
            episode: req.episode,
            policy: if req.greedy { "greedy" } else { "stochastic" }.into(),
            threads: cfg.threads,
            rounds: rec.rounds,
            action_bytes: rec.action_bytes as u32,
            columns: rec.columns,
            start_digests: rec.start_digests,
            start: rec.start,
            outcome: rec.outcome.clone(),
        },
        actions: rec.actions,
        digests: rec.digests,
    };
    let bytes = replay.to_bytes();
    write_atomic(&req.out, &bytes)?;
    Ok(Recorded {
        replay: req.out.display().to_string(),
        env: replay.header.env,
        checkpoint_iteration: iteration,
        episode: req.episode,
        rounds: replay.header.rounds,
        bytes: bytes.len(),
        outcome: rec.outcome,
    })
}

/// Where a re-simulation first differed from its recording.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Mismatch {
    /// The round (0-based) after which the state differed; None: the start state itself.
    pub round: Option<u32>,
    /// The state columns whose digests differ (empty when the difference is elsewhere).
    pub columns: Vec<String>,
    pub what: String,
}

/// What `fairground replay --check FILE` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Checked {
    pub env: String,
    pub rounds: u32,
    pub mismatch: Option<Mismatch>,
}

/// Read and verify a replay file (magic, version, checksum): one line when it is refused.
pub fn read(path: &Path) -> Result<Replay, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    Replay::from_bytes(&bytes).map_err(|why| replay_error(path, why))
}

fn differing(columns: &[String], recorded: &[u32], now: &[u32]) -> Vec<String> {
    columns
        .iter()
        .zip(recorded.iter().zip(now))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, _)| c.clone())
        .collect()
}

/// `fairground replay --check FILE`: re-simulate from the recorded start and actions.
pub fn check(path: &Path, threads: Option<u32>) -> Result<Checked, TrainError> {
    let replay = read(path)?;
    resimulate(path, &replay, threads, |_, _| {})
}

/// Re-simulate a replay read from `path` and verify every digest, calling `frame` with the
/// restored start state (round None) and with the kernel after each verified round. It stops
/// at the first mismatch (the verdict names it): what `frame` saw up to then is all verified.
pub fn resimulate(
    path: &Path,
    replay: &Replay,
    threads: Option<u32>,
    mut frame: impl FnMut(Option<u32>, &Kernel),
) -> Result<Checked, TrainError> {
    let h = &replay.header;
    let mut kernel = Kernel::restore(&h.env, &h.start).map_err(|why| replay_error(path, why))?;
    if kernel.action_bytes() != h.action_bytes as usize {
        return Err(replay_error(
            path,
            format!(
                "{} action bytes per round, its start state takes {}",
                h.action_bytes,
                kernel.action_bytes()
            ),
        ));
    }
    let pool =
        fairground_kernel::pool::WorkerPool::new(threads.unwrap_or(h.threads).max(1) as usize);
    let mut digester = Digester::default();
    let (mut names, mut now) = (Vec::new(), Vec::new());
    let verdict = |mismatch| Checked {
        env: h.env.clone(),
        rounds: h.rounds,
        mismatch,
    };
    digester.digest(&kernel.view(), &mut names, &mut now);
    if names != h.columns {
        return Err(replay_error(
            path,
            "its state columns are not this kernel's (recorded by another version)",
        ));
    }
    if now != h.start_digests {
        return Ok(verdict(Some(Mismatch {
            round: None,
            columns: differing(&names, &h.start_digests, &now),
            what: "the restored start state differs from the recorded one".into(),
        })));
    }
    frame(None, &kernel);
    for r in 0..h.rounds {
        kernel
            .step(replay.round_actions(r as usize), &pool)
            .map_err(|why| replay_error(path, format!("round {r}: {why}")))?;
        now.clear();
        digester.digest(&kernel.view(), &mut names, &mut now);
        let recorded = replay.round_digests(r as usize);
        if now != recorded {
            return Ok(verdict(Some(Mismatch {
                round: Some(r),
                columns: differing(&names, recorded, &now),
                what: "the state after this round differs from the recording".into(),
            })));
        }
        let last = r + 1 == h.rounds;
        frame(Some(r), &kernel);
        if kernel.episode_ended() != last {
            return Ok(verdict(Some(Mismatch {
                round: Some(r),
                columns: vec![],
                what: if last {
                    "the recorded episode ended here; the re-simulated one goes on".into()
                } else {
                    "the re-simulated episode ended here, before the recording's".into()
                },
            })));
        }
    }
    let outcome = sim::outcome(&kernel.view());
    if outcome != h.outcome {
        return Ok(verdict(Some(Mismatch {
            round: h.rounds.checked_sub(1),
            columns: vec![],
            what: format!(
                "the episode's outcome {outcome} differs from the recorded {}",
                h.outcome
            ),
        })));
    }
    Ok(verdict(None))
}
