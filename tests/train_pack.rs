//! Guarantees for `fairground train --seeds K` (packed runs, cpu backends, tiny sizes):
//! - every run directory `OUT/seed-<s>` of a pack holds what `fairground train --seed s` alone
//!   writes: the same metrics lines (every key but the wall-clock ones), the same checkpoint
//!   bytes, the same config and manifest (but the start time); for AH PPO and Fair-PPO, whose
//!   networks train packed (the stderr says so), on the `cpu` twins and on `cpu-gemm` with 2
//!   threads, and for HS, whose ragged stores train run by run when their rows differ;
//! - `--no-pack` gives the same bits again;
//! - a pack stopped after 2 iterations and resumed to 4 equals a straight 4-iteration pack;
//!   resuming with another `--seeds` is refused with one line naming it;
//! - `bench train --seeds 2` prints one line counting both runs and the packed networks.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{TINY_AH, fairground, ok};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pack-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    train_cli::metrics(run, &["iteration", "param_hash"])
}

fn manifest(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("manifest.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("start_time");
    m.remove("start_time_unix_s");
    v
}

/// Every file a run directory's consumers read, compared between `a` and `b`; `resumed`: `b`
/// was resumed, so its manifest keeps the iterations it was started with.
fn assert_same_run(a: &Path, b: &Path, what: &str, resumed: bool) {
    assert_eq!(metrics(a), metrics(b), "{what}: metrics.jsonl");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(a, "config.toml"),
        read(b, "config.toml"),
        "{what}: config.toml"
    );
    if !resumed {
        assert_eq!(manifest(a), manifest(b), "{what}: manifest.json");
    }
    let ckpts = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ckpts(a), ckpts(b), "{what}: checkpoint files");
    assert!(!ckpts(a).is_empty(), "{what}: no checkpoint");
    for f in ckpts(a) {
        let f = Path::new("checkpoints").join(f);
        let f = f.to_str().unwrap();
        assert_eq!(read(a, f), read(b, f), "{what}: {f}");
    }
}

/// `fairground train --config CFG EXTRA...`; asserts success, returns stdout and stderr.
fn train(cfg: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["train", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = fairground(&args);
    ok(&out);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A pack of seeds 7, 8, 9 against the three runs made alone; returns the pack's stderr.
fn pack_equals_alone(name: &str, config: &str, flags: &[&str]) -> String {
    let dir = scratch(name);
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, config).unwrap();
    let pack = dir.join("pack");
    let mut args = vec!["--out", pack.to_str().unwrap(), "--seeds", "3"];
    args.extend_from_slice(flags);
    let (stdout, stderr) = train(&cfg, &args);
    assert_eq!(
        stdout.trim(),
        pack.to_str().unwrap(),
        "prints the pack's dir"
    );
    for seed in ["7", "8", "9"] {
        let alone = dir.join(format!("alone-{seed}"));
        let mut args = vec!["--out", alone.to_str().unwrap(), "--seed", seed];
        args.extend_from_slice(flags);
        train(&cfg, &args);
        assert_same_run(&pack.join(format!("seed-{seed}")), &alone, name, false);
    }
    stderr
}

const ITER3: &str = "iterations = 3\n";

#[test]
fn ah_ppo_pack_equals_separate_runs() {
    let cfg = format!("{TINY_AH}{ITER3}");
    let stderr = pack_equals_alone("ah-ppo", &cfg, &[]);
    assert!(
        stderr.contains("packing 3 runs: 2 network(s) per run train as one packed program"),
        "both group networks pack: {stderr}"
    );
    assert!(stderr.contains("seed 8: iteration 3/3"), "{stderr}");
}

#[test]
fn ah_fair_ppo_pack_equals_separate_runs_on_cpu_gemm() {
    let cfg = format!("{TINY_AH}{ITER3}")
        .replace("backend = \"cpu\"", "backend = \"cpu-gemm\"\nthreads = 2");
    let stderr = pack_equals_alone(
        "ah-fair",
        &cfg,
        &["--algo", "fair-ppo", "--alpha", "0.75", "--beta", "0.25"],
    );
    assert!(stderr.contains("2 network(s) per run"), "{stderr}");
}

#[test]
fn hs_pack_equals_separate_runs() {
    let cfg = format!("{}{ITER3}", train_cli::TINY_HS_ONE_THREAD);
    let stderr = pack_equals_alone("hs", &cfg, &[]);
    assert!(stderr.contains("packing 3 runs"), "{stderr}");
    // HS's runs act on different decisions, so their stores differ in rows: every update
    // still trains packed, the minibatches that are not common to all runs on their own run.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("packed updates:"))
        .unwrap_or_else(|| panic!("no packed-updates line: {stderr}"));
    assert!(
        line.contains(" run by run") && !line.starts_with("packed updates: 0 "),
        "{line}"
    );
    assert!(
        line.contains(", 0 run by run"),
        "every HS update packed: {line}"
    );
}

#[test]
fn no_pack_and_resume_give_the_same_bits() {
    let dir = scratch("resume");
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, TINY_AH).unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let straight = dir.join("straight");
    train(
        &cfg,
        &[
            "--out",
            &arg(&straight),
            "--seeds",
            "2",
            "--iterations",
            "4",
        ],
    );
    let unpacked = dir.join("unpacked");
    let (_, stderr) = train(
        &cfg,
        &[
            "--out",
            &arg(&unpacked),
            "--seeds",
            "2",
            "--iterations",
            "4",
            "--no-pack",
        ],
    );
    assert!(stderr.contains("0 network(s) per run"), "{stderr}");
    let resumed = dir.join("resumed");
    train(
        &cfg,
        &["--out", &arg(&resumed), "--seeds", "2", "--iterations", "2"],
    );
    let out = fairground(&[
        "train",
        "--out",
        &arg(&resumed),
        "--seeds",
        "3",
        "--iterations",
        "4",
        "--resume",
    ]);
    assert!(!out.status.success(), "another --seeds is refused");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("--seeds 3 but it holds 2 run directories"),
        "{err}"
    );
    let (_, _) = train_resume(&resumed);
    for seed in ["seed-7", "seed-8"] {
        assert_same_run(
            &straight.join(seed),
            &unpacked.join(seed),
            "--no-pack",
            false,
        );
        assert_same_run(&straight.join(seed), &resumed.join(seed), "resumed", true);
    }
}

fn train_resume(pack: &Path) -> (String, String) {
    let out = fairground(&[
        "train",
        "--out",
        pack.to_str().unwrap(),
        "--seeds",
        "2",
        "--iterations",
        "4",
        "--resume",
    ]);
    ok(&out);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn bench_counts_every_run_of_a_pack() {
    let line = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "bench",
            "train",
            "--backend",
            "cpu",
            "--instances",
            "1",
            "--rollout-steps",
            "8",
            "--iterations",
            "1",
            "--seeds",
            "2",
        ];
        args.extend_from_slice(extra);
        let out = fairground(&args);
        ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let packed = line(&[]);
    assert_eq!(packed["seeds"], 2);
    assert_eq!(packed["packed_networks"], 2);
    // 2 runs × 40 agents × 8 steps.
    assert_eq!(packed["trained_agent_steps"], 640);
    let alone = line(&["--no-pack"]);
    assert_eq!(alone["packed_networks"], 0);
    assert_eq!(alone["trained_agent_steps"], 640);
}
