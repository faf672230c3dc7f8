//! Guarantees for `fairground train --env hs` / `eval` on an HS run (cpu backend, tiny
//! hospital: 12 patients, 40-minute days, so days end inside the run and done masks apply):
//! - same seed, same backend: identical `metrics.jsonl` (every key but the wall-clock ones) and
//!   parameter hashes; training moves the parameters;
//! - a run made with `--iterations 2` and resumed to 4 ends exactly where a straight 4-iteration
//!   run ends (same hashes, same metrics), from a checkpoint holding three role networks;
//! - the same holds after a simulated kill mid-write during iteration 3: torn temp files of
//!   the checkpoint (`.safetensors.tmp`, `.json.tmp`) and of `metrics.jsonl`, a complete
//!   safetensors file whose sidecar was never written, a metrics line written past the last
//!   checkpoint and a half-written line after it; the resumed run equals the straight one;
//! - a config file with `env = "hs"` takes the HS defaults (lr 1e-5, value coefficient 0.5)
//!   for the keys it does not set;
//! - metrics lines carry the documented keys; `eval` (policy and `--random`) writes
//!   `patients_treated_mean`, `return_by_group` and the environment statistics;
//! - an out-of-range HS field (`hs.patients`, `trunk` widths, no layer at all) is refused with
//!   one line naming it and its allowed range, and nothing is written;
//! - `bench train --env hs` prints one JSON line: decisions trained per second and the split
//!   between kernel, policy acting, PPO update, host and transfers, with HS's default networks
//!   (shared trunk 256 → 128, linear heads).

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

const TINY: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 40\nhs_patients = 12\n\
                    hs_sim_minutes = 40\ntrunk = [16, 8]\nhidden = []\nminibatch_size = 32\nepochs = 2\n\
                    backend = \"cpu\"\nseed = 7\n";

fn setup() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-hs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    (dir, cfg)
}

/// Keys every HS metrics line carries.
const HS_KEYS: [&str; 11] = [
    "iteration",
    "env_steps",
    "patients_treated_mean",
    "return_by_group",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "trained_decisions_per_s",
    "param_hash",
];

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    train_cli::metrics(run, &HS_KEYS)
}

#[test]
fn hs_same_seed_is_identical_resume_equals_straight_and_eval_reports() {
    let (dir, cfg) = setup();
    let straight = dir.join("straight");
    train(&cfg, &straight, "4", false);
    let again = dir.join("again");
    train(&cfg, &again, "4", false);
    let a = metrics(&straight);
    assert_eq!(a.len(), 4);
    assert_eq!(a, metrics(&again), "same seed, same backend: same metrics");
    assert_eq!(a[0]["env_steps"], 80, "rounds x instances");
    assert!(
        a.iter().all(|l| l["days_completed"].as_u64().unwrap() > 0),
        "days end inside every iteration"
    );
    assert!(a[0]["return_by_group"].get("high").is_some());
    assert_ne!(a[0]["param_hash"], a[3]["param_hash"], "training moves");

    let resumed = dir.join("resumed");
    train(&cfg, &resumed, "2", false);
    assert_eq!(metrics(&resumed), a[..2].to_vec());
    train(&cfg, &resumed, "4", true);
    assert_eq!(metrics(&resumed), a, "resumed 2 -> 4 equals straight 4");

    let saved = std::fs::read_to_string(straight.join("config.toml")).unwrap();
    assert!(saved.contains("lr = 0.0003"), "HS default lr: {saved}");
    assert!(
        saved.contains("vf_coef = 0.5"),
        "HS default vf_coef: {saved}"
    );
    assert!(saved.contains("epochs = 2"), "the file's own value wins");

    for (flag, file) in [(None, "eval.json"), (Some("--random"), "eval-random.json")] {
        let mut args = vec!["eval", straight.to_str().unwrap(), "--episodes", "3"];
        args.extend(flag);
        ok(&fairground(&args));
        let eval: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(straight.join(file)).unwrap()).unwrap();
        for key in [
            "patients_treated_mean",
            "return_by_group",
            "swing_moves_mean",
            "routing_outcome_fraction",
            "decisions_mean",
        ] {
            assert!(eval.get(key).is_some(), "{file} lacks {key}");
        }
        assert_eq!(eval["days"], 3);
    }
}

#[test]
fn hs_bad_field_is_one_line_and_writes_nothing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-hs-bad");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (text, needles) in [
        ("hs_patients = 400\n", ["hs.patients", "1..=320"]),
        ("trunk = [256, 0]\n", ["trunk", "1..=4096"]),
        ("trunk = []\nhidden = []\n", ["hidden", "1..=4096"]),
    ] {
        let cfg = dir.join("bad.toml");
        std::fs::write(&cfg, format!("env = \"hs\"\n{text}")).unwrap();
        let out = dir.join("run");
        let o = fairground(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{text}");
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{text}: {stderr:?} should name {n:?}");
        }
        assert!(!out.exists());
    }
}

#[test]
fn hs_bench_train_prints_one_json_line_with_the_split() {
    let out = fairground(&[
        "bench",
        "train",
        "--env",
        "hs",
        "--instances",
        "2",
        "--rollout-steps",
        "4",
        "--minibatch-size",
        "8",
        "--iterations",
        "1",
        "--backend",
        "cpu",
    ]);
    ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    for key in [
        "trained_decisions_per_s",
        "wall_s",
        "kernel_s",
        "policy_act_s",
        "ppo_update_s",
        "host_s",
        "transfer_mib",
        "model_gflop_per_s",
        "peak_gflop_per_s",
        "peak_fraction",
    ] {
        let x = v.get(key).and_then(|x| x.as_f64());
        assert!(x.is_some_and(|x| x >= 0.0), "{key} in {v}");
    }
    assert_eq!(v["env"], "hs");
    assert_eq!(v["backend"], "cpu");
    // 2 instances x 4 decision rounds x 1 timed iteration.
    assert_eq!(v["trained_decisions"], 8);
    assert!(v["trained_decisions_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["transfer_mib"].as_f64().unwrap() > 0.0, "{v}");
    // The clean networks: separate policy and value MLPs (the reference's trunk is a profile).
    assert_eq!(v["trunk"], serde_json::json!([]), "no shared trunk");
    assert_eq!(v["hidden"], serde_json::json!([256, 128]), "separate MLPs");
}

#[test]
fn hs_resume_after_a_kill_mid_write_equals_a_straight_run() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-hs-kill");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let straight = dir.join("straight");
    train(&cfg, &straight, "4", false);
    let a = metrics(&straight);
    assert_eq!(a.len(), 4);

    let resumed = dir.join("resumed");
    train(&cfg, &resumed, "2", false);
    assert_eq!(metrics(&resumed), a[..2].to_vec());
    // The kill, during iteration 3's writes.
    let ck = resumed.join("checkpoints");
    let good = std::fs::read(ck.join("ckpt-00000002.safetensors")).unwrap();
    // Torn temp files: half a safetensors file, a truncated sidecar and metrics file.
    std::fs::write(
        ck.join("ckpt-00000003.safetensors.tmp"),
        &good[..good.len() / 2],
    )
    .unwrap();
    std::fs::write(
        ck.join("ckpt-00000003.json.tmp"),
        b"{\"iteration\":3,\"env_st",
    )
    .unwrap();
    std::fs::write(resumed.join("metrics.jsonl.tmp"), b"{\"iteration\":").unwrap();
    // Tensors renamed into place but the sidecar never written: not a checkpoint.
    std::fs::write(ck.join("ckpt-00000003.safetensors"), &good).unwrap();
    // A metrics line past the checkpoint, then a half-written one.
    let mut text = std::fs::read_to_string(resumed.join("metrics.jsonl")).unwrap();
    text.push_str("{\"iteration\":3,\"param_hash\":\"bogus\"}\n{\"iteration\":4,\"env_ste");
    std::fs::write(resumed.join("metrics.jsonl"), text).unwrap();

    train(&cfg, &resumed, "4", true);
    assert_eq!(
        metrics(&resumed),
        a,
        "resumed 2 -> 4 after a kill equals straight 4"
    );
    let last = |run: &Path| {
        std::fs::read(run.join("checkpoints/ckpt-00000004.safetensors")).expect("checkpoint 4")
    };
    assert_eq!(
        last(&resumed),
        last(&straight),
        "the final checkpoints (parameters, Adam state) are byte-identical"
    );
    // The resumed run's own writes replaced every stale temp file.
    for stale in [
        ck.join("ckpt-00000003.safetensors.tmp"),
        ck.join("ckpt-00000003.json.tmp"),
        resumed.join("metrics.jsonl.tmp"),
    ] {
        assert!(!stale.exists(), "{} is left", stale.display());
    }
}
