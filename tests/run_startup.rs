//! Guarantees: starting and resuming runs cannot wedge a run directory.
//! - A run directory appears whole or not at all: `kill -9` at dozens of points in the first
//!   ~100 ms of `train` leaves either nothing, or a directory that `--resume` continues (never a
//!   half-made one that neither a fresh run nor `--resume` accepts).
//! - An empty directory made beforehand, or what an interrupted start of an older version left
//!   (an empty `checkpoints/` and `.tmp` files), takes a fresh run; `--resume` on it says to
//!   start one.
//! - One writer at a time: a second `train --resume` on a live run is refused with one line
//!   naming the holder's PID.
//! - A resume only goes forward: a finished run says "already complete (2/2)", a smaller
//!   `--iterations` is refused, and neither rewrites anything.
//! - SIGTERM (and Ctrl-C) stops a run after its iteration with a checkpoint, exit code 130 and
//!   a line saying how to resume, and the run resumes.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    train_cli::scratch_with_tiny(&format!("startup-{name}"))
}

fn spawn_train(cfg: &Path, out: &Path, iterations: &str, resume: bool) -> std::process::Child {
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--iterations",
        iterations,
    ];
    if resume {
        args.push("--resume");
    } else {
        args.extend(["--config", cfg.to_str().unwrap()]);
    }
    Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args(&args)
        .env("FAIRGROUND_BACKEND", "vulkan")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_in_the_first_100_ms_never_leaves_a_wedged_run_directory() {
    let dir = scratch("kill");
    let cfg = dir.join("tiny.toml");
    // A fixed sequence of kill points from 0 to ~100 ms (an LCG, so every run tries the same).
    let mut x: u64 = 12345;
    let (mut absent, mut resumed) = (0, 0);
    for trial in 0..30 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((x >> 33) % 100_000);
        let run = dir.join(format!("run{trial}"));
        let mut child = spawn_train(&cfg, &run, "2", false);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        if run.join("config.toml").exists() {
            // Whole: resume finishes it.
            let out = fairground(&[
                "train",
                "--out",
                run.to_str().unwrap(),
                "--resume",
                "--iterations",
                "2",
            ]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(
                out.status.success() || err.contains("already complete"),
                "trial {trial} ({delay:?}): resume failed: {err}"
            );
            assert!(
                run.join("manifest.json").exists(),
                "trial {trial}: no manifest"
            );
            resumed += 1;
        } else {
            // Not there (or unused): a fresh run takes the path.
            let out = fairground(&[
                "train",
                "--config",
                cfg.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
                "--iterations",
                "1",
            ]);
            ok(&out);
            absent += 1;
        }
    }
    eprintln!("kill points: {absent} before the run directory existed, {resumed} after");
    assert_eq!(absent + resumed, 30);
    // Hidden partial directories may remain after a kill; no command reads them.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(name.starts_with("run") || name.starts_with('.') || name == "tiny.toml");
    }
}

#[test]
fn an_empty_directory_or_an_interrupted_old_start_takes_a_fresh_run() {
    let dir = scratch("unused");
    let cfg = dir.join("tiny.toml");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let leftovers = dir.join("leftovers");
    std::fs::create_dir_all(leftovers.join("checkpoints")).unwrap();
    std::fs::write(leftovers.join("config.toml.tmp"), "instan").unwrap();
    let out = fairground(&["train", "--out", leftovers.to_str().unwrap(), "--resume"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("without --resume"), "{err}");
    for run in [&empty, &leftovers] {
        train(&cfg, run, "1", false);
        assert_eq!(train_cli::metrics(run, &["param_hash"]).len(), 1);
        assert!(!run.join("config.toml.tmp").exists());
    }
}

#[test]
fn a_second_writer_is_refused_naming_the_first_ones_pid() {
    let dir = scratch("lock");
    let cfg = dir.join("tiny.toml");
    let run = dir.join("run");
    train(&cfg, &run, "1", false);
    let mut first = spawn_train(&cfg, &run, "100000", true);
    // Wait until the first holds the lock (its PID is in the lock file).
    let start = Instant::now();
    let pid = first.id().to_string();
    while std::fs::read_to_string(run.join("lock"))
        .unwrap_or_default()
        .trim()
        != pid
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first writer never locked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fairground(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--iterations",
        "100000",
    ]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    // The lock dies with its holder: the next resume goes ahead.
    let again = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
    ok(&again);
}

#[test]
fn a_resume_only_goes_forward_and_refusals_rewrite_nothing() {
    let dir = scratch("forward");
    let run = dir.join("run");
    train(&dir.join("tiny.toml"), &run, "2", false);
    let config = std::fs::read(run.join("config.toml")).unwrap();
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    for (iterations, needle) in [
        ("2", "already complete (2/2)"),
        ("1", "past --iterations 1"),
    ] {
        let out = fairground(&[
            "train",
            "--out",
            run.to_str().unwrap(),
            "--resume",
            "--iterations",
            iterations,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{err}");
        assert_eq!(std::fs::read(run.join("config.toml")).unwrap(), config);
        assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
    }
}

#[test]
fn sigterm_stops_after_the_iteration_with_a_checkpoint_and_says_how_to_resume() {
    let dir = scratch("sigterm");
    let cfg = dir.join("tiny.toml");
    let run = dir.join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--iterations",
            "100000",
        ])
        .env("FAIRGROUND_BACKEND", "vulkan")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has trained a little, ask it to stop.
    let start = Instant::now();
    while train_cli_lines(&run) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never trained"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--resume") && err.contains("interrupted at iteration"),
        "{err}"
    );
    // The interrupted iteration's checkpoint is there: the run resumes from it.
    let lines = train_cli_lines(&run);
    assert!(
        run.join(format!("checkpoints/ckpt-{lines:08}.json"))
            .exists(),
        "checkpoint of iteration {lines}"
    );
    let more = (lines + 1).to_string();
    ok(&fairground(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--iterations",
        &more,
    ]));
}

/// Lines of a run's `metrics.jsonl` (0 before it exists).
fn train_cli_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
