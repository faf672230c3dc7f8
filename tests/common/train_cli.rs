//! Helpers for the tests that drive `fairground train` / `eval` as a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the binary (`FAIRGROUND_BACKEND=vulkan`, so an `auto` backend never probes Metal/DX12).
pub fn fairground(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args(args)
        .env("FAIRGROUND_BACKEND", "vulkan")
        .output()
        .expect("run fairground")
}

pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fairground train --config CFG --out RUN --iterations N [--resume]`; asserts success and that
/// the run directory is what it prints on stdout.
pub fn train(cfg: &Path, run: &Path, iterations: &str, resume: bool) {
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--iterations",
        iterations,
    ];
    if resume {
        args.push("--resume");
    }
    let out = fairground(&args);
    ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim(), run.to_str().unwrap(), "prints the run dir");
}

/// metrics.jsonl, each line checked for `keys`, without the wall-clock keys
/// (`trained_agent_steps_per_s` or, HS, `trained_decisions_per_s`, and `wall_s`), so that two
/// runs compare equal.
pub fn metrics(run: &Path, keys: &[&str]) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            for key in keys {
                assert!(m.contains_key(*key), "missing {key} in {l}");
            }
            m.remove("trained_agent_steps_per_s");
            m.remove("trained_decisions_per_s");
            m.remove("wall_s");
            v
        })
        .collect()
}

/// AH's tiny test config: cpu backend, small networks, episodes short enough to end in a run.
pub const TINY_AH: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\n\
                           hidden = [16, 8]\nminibatch_size = 64\nepochs = 2\n\
                           backend = \"cpu\"\nseed = 7\n";

/// [`TINY_AH`] on one kernel thread (the replay and audit tests' run).
pub const TINY_AH_ONE_THREAD: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\n\
                                      hidden = [16, 8]\nminibatch_size = 64\nepochs = 2\n\
                                      backend = \"cpu\"\nseed = 7\nthreads = 1\n";

/// HS's tiny test config on one kernel thread: 12 patients, 40 minutes, a small shared trunk.
pub const TINY_HS_ONE_THREAD: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 40\n\
                                      hs_patients = 12\nhs_sim_minutes = 40\ntrunk = [16, 8]\n\
                                      hidden = []\nminibatch_size = 32\nepochs = 2\n\
                                      backend = \"cpu\"\nseed = 7\nthreads = 1\n";

/// A fresh, empty scratch directory `<target tmp>/<name>`.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh scratch directory `<target tmp>/<name>` holding `tiny.toml` ([`TINY_AH`]).
pub fn scratch_with_tiny(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    std::fs::write(dir.join("tiny.toml"), TINY_AH).unwrap();
    dir
}

/// Write `text` as `dir/<name>.toml`.
pub fn write_cfg(dir: &Path, name: &str, text: &str) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Train config `text` for `iterations` into `dir/<name>`; its metrics lines, each checked for
/// `keys` ([`metrics`]).
pub fn run(
    dir: &Path,
    name: &str,
    text: &str,
    iterations: &str,
    keys: &[&str],
) -> Vec<serde_json::Value> {
    let cfg = write_cfg(dir, name, text);
    let out = dir.join(name);
    train(&cfg, &out, iterations, false);
    metrics(&out, keys)
}

/// The lines without `key` (what another algorithm has no counterpart for).
pub fn without(lines: &[serde_json::Value], key: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove(key);
            l
        })
        .collect()
}

/// Copy the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A run killed after iteration `kept`: a copy of `dir/<name>` without the checkpoints after
/// `kept` (as a kill would leave it), resumed with config `text` up to `iterations`; its
/// metrics lines, each checked for `keys`.
pub fn resume_killed(
    dir: &Path,
    name: &str,
    text: &str,
    kept: u32,
    iterations: u32,
    keys: &[&str],
) -> Vec<serde_json::Value> {
    let resumed = dir.join(format!("{name}-resumed"));
    copy_dir(&dir.join(name), &resumed);
    for k in kept + 1..=iterations {
        for ext in ["json", "safetensors"] {
            let f = resumed.join(format!("checkpoints/ckpt-{k:08}.{ext}"));
            std::fs::remove_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }
    let cfg = write_cfg(dir, &format!("{name}-resumed"), text);
    train(&cfg, &resumed, &iterations.to_string(), true);
    metrics(&resumed, keys)
}

/// Train with config `text` (written as `dir/<name>.toml`) into `dir/<name>-run`, which must be
/// refused: a non-zero exit, one line naming `field`, nothing written. Returns that line.
pub fn refused(dir: &Path, name: &str, text: &str, field: &str) -> String {
    let cfg = write_cfg(dir, name, text);
    let out_dir = dir.join(format!("{name}-run"));
    let out = fairground(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{name}: accepted");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
    assert!(err.contains(field), "{name}: {err}");
    assert!(!out_dir.exists(), "{name}: nothing written");
    err
}

/// [`TINY_HS_ONE_THREAD`] with a day long enough that patients are treated (the viewer tests
/// compare treated counts and ledger means).
pub const TINY_HS_TREATING: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 40\n\
                                    hs_patients = 12\nhs_sim_minutes = 150\ntrunk = [16, 8]\n\
                                    hidden = []\nminibatch_size = 32\nepochs = 2\n\
                                    backend = \"cpu\"\nseed = 7\nthreads = 1\n";

/// A tiny run of `text` trained for 2 iterations in `dir/run`, and its first episode (AH) or
/// day (HS) recorded into `dir/episode.fgr` (the viewer tests' input).
pub fn tiny_replay(dir: &Path, text: &str) -> PathBuf {
    let cfg = write_cfg(dir, "tiny", text);
    let run = dir.join("run");
    train(&cfg, &run, "2", false);
    let file = dir.join("episode.fgr");
    let out = fairground(&[
        "replay",
        run.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    ok(&out);
    file
}
