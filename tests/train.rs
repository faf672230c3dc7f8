//! Guarantees for `fairground train` / `eval` as users run them (cpu backend, tiny sizes):
//! - same seed, same backend: identical `metrics.jsonl` (every key but the wall-clock ones,
//!   `trained_agent_steps_per_s` and `wall_s`) and parameter hashes, with 1 thread or 2 (the
//!   group networks and the kernel share the worker pool);
//! - a run made with `--iterations 2` and resumed to 4 ends exactly where a straight 4-iteration
//!   run ends (same hashes, same metrics), even after a simulated kill mid-write (stale `.tmp`
//!   files, a metrics line past the last checkpoint);
//! - the run directory holds the resolved config, the manifest and safetensors checkpoints;
//! - `eval` writes eval.json (`--greedy`: eval-greedy.json) with the documented keys; `bench
//!   train` prints one JSON line;
//! - bad input (unknown env, zero or negative iterations, a config field of the wrong type, an
//!   existing run directory without --resume) exits non-zero with one line naming the field
//!   and writes nothing.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("train-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny config: small networks, short episodes (so done masks are exercised), cpu backend.
const TINY: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nhidden = [16, 8]\n\
                    minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 7\n";

fn tiny_config(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, TINY).unwrap();
    p
}

/// Keys every AH metrics line carries.
const AH_KEYS: [&str; 11] = [
    "iteration",
    "env_steps",
    "mean_reward_per_agent_step",
    "return_by_group",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "trained_agent_steps_per_s",
    "param_hash",
];

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    train_cli::metrics(run, &AH_KEYS)
}

#[test]
fn same_seed_is_identical_and_resume_equals_a_straight_run() {
    let dir = scratch("resume");
    let cfg = tiny_config(&dir);
    let straight = dir.join("straight");
    train(&cfg, &straight, "4", false);
    let again = dir.join("again");
    train(&cfg, &again, "4", false);
    let a = metrics(&straight);
    assert_eq!(a.len(), 4);
    assert_eq!(a, metrics(&again), "same seed, same backend: same metrics");
    assert!(
        a.iter()
            .any(|l| l["episodes_completed"].as_u64().unwrap() > 0),
        "episodes end inside the run (done masks exercised)"
    );
    assert_ne!(a[0]["param_hash"], a[3]["param_hash"], "training moves");
    // The tiny config uses 2 threads; one thread gives the same bits.
    let one = dir.join("tiny-1-thread.toml");
    std::fs::write(&one, format!("{TINY}threads = 1\n")).unwrap();
    let single = dir.join("single");
    train(&one, &single, "4", false);
    assert_eq!(metrics(&single), a, "1 thread or 2: same metrics");

    let resumed = dir.join("resumed");
    train(&cfg, &resumed, "2", false);
    assert_eq!(metrics(&resumed), a[..2].to_vec());
    // A kill mid-write: stale temp files, and a metrics line written past the checkpoint.
    let ck = resumed.join("checkpoints");
    std::fs::write(ck.join("ckpt-00000003.safetensors.tmp"), b"garbage").unwrap();
    std::fs::write(ck.join("ckpt-00000003.json.tmp"), b"{\"trunc").unwrap();
    std::fs::write(resumed.join("metrics.jsonl.tmp"), b"{\"iteration\":").unwrap();
    let mut text = std::fs::read_to_string(resumed.join("metrics.jsonl")).unwrap();
    text.push_str("{\"iteration\":3,\"param_hash\":\"bogus\"}\n");
    std::fs::write(resumed.join("metrics.jsonl"), text).unwrap();
    train(&cfg, &resumed, "4", true);
    assert_eq!(metrics(&resumed), a, "resumed 2 -> 4 equals straight 4");

    for f in ["config.toml", "manifest.json", "metrics.jsonl"] {
        assert!(straight.join(f).exists(), "{f}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("manifest.json")).unwrap())
            .unwrap();
    for key in [
        "config",
        "seeds",
        "code_version",
        "backend",
        "adapter",
        "start_time",
    ] {
        assert!(manifest.get(key).is_some(), "manifest lacks {key}");
    }
    assert_eq!(manifest["backend"], "cpu");
    assert!(
        straight
            .join("checkpoints/ckpt-00000004.safetensors")
            .exists()
    );

    let out = fairground(&[
        "eval",
        straight.to_str().unwrap(),
        "--episodes",
        "2",
        "--greedy",
    ]);
    ok(&out);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("eval-greedy.json")).unwrap())
            .unwrap();
    assert!(
        !straight.join("eval.json").exists(),
        "greedy has its own file"
    );
    for key in [
        "mean_reward_per_agent_step",
        "return_by_group",
        "group_totals",
        "demographic_disparity",
        "gini",
        "jain",
    ] {
        assert!(eval.get(key).is_some(), "eval.json lacks {key}");
    }
    assert_eq!(eval["episodes"], 2);
    // Both units side by side (issue 12 item 3): the reference's DP on group totals is the
    // difference of the mean group totals; the per-agent one is that over 20 agents a side.
    let total = eval["dp_total"].as_f64().unwrap();
    let per_agent = eval["dp"].as_f64().unwrap();
    let by_totals = eval["demographic_disparity"].as_f64().unwrap();
    assert!((total - by_totals).abs() <= 1e-9 * by_totals.abs().max(1.0));
    assert!((total - 20.0 * per_agent).abs() <= 1e-9 * total.abs().max(1.0));
    assert!(eval["dp_total_abs"].as_f64().unwrap() >= total.abs() - 1e-9);
    assert!(eval["csp_total"]["sum"].as_f64().unwrap() >= 0.0);
    // A clean run's tables report the per-agent gaps.
    assert_eq!(eval["table_keys"], serde_json::json!(["dp", "csp"]));
}

/// Runs `train` with `args`, expects failure with one stderr line containing every `needle`,
/// and that `out` was not created.
fn refused(args: &[&str], out: &Path, needles: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let o = fairground(&all);
    assert!(!o.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {stderr:?} should name {n:?}");
    }
    assert!(o.stdout.is_empty());
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = scratch("bad");
    let out = dir.join("run");
    refused(&["train", "--env", "chess"], &out, &["--env", "ah"]);
    refused(&["train", "--iterations", "-3"], &out, &["--iterations"]);
    refused(&["train", "--iterations", "0"], &out, &["--iterations"]);
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, "instances = 2\niterations = \"many\"\n").unwrap();
    refused(
        &["train", "--config", wrong.to_str().unwrap()],
        &out,
        &["iterations", "line 2"],
    );
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "learning_rate = 0.1\n").unwrap();
    refused(
        &["train", "--config", unknown.to_str().unwrap()],
        &out,
        &["learning_rate", "lr"],
    );
    let gamma = dir.join("gamma.toml");
    std::fs::write(&gamma, "gamma = 1.5\n").unwrap();
    refused(
        &["train", "--config", gamma.to_str().unwrap()],
        &out,
        &["gamma", "0..=1"],
    );
    // An existing run directory without --resume: refused, and left untouched.
    let existing = dir.join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), "mine").unwrap();
    let o = fairground(&["train", "--out", existing.to_str().unwrap()]);
    assert!(!o.status.success());
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 1);
    // `--out` naming a file is refused as such, not as a run to resume.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = fairground(&["train", "--out", file.to_str().unwrap()]);
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success() && stderr.contains("a file"), "{stderr}");
    assert!(!stderr.contains("--resume"), "{stderr}");
}

#[test]
fn bench_train_prints_one_json_line_with_the_split() {
    let out = fairground(&[
        "bench",
        "train",
        "--env",
        "ah",
        "--instances",
        "1",
        "--rollout-steps",
        "4",
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
        "trained_agent_steps_per_s",
        "kernel_s",
        "policy_act_s",
        "ppo_update_s",
        "host_s",
        "transfer_mib",
        "model_gflop_per_s",
        "peak_gflop_per_s",
        "peak_fraction",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["trained_agent_steps"], 160);
    // The model FLOPs counted from the shapes: policy 10-256-128-64-9 and value 10-256-128-64-1
    // hold W = 87,680 weights; a trained agent-step costs one acting forward (2W) plus 5 epochs
    // of forward (2W), weight gradient (2W) and input gradient (2W less the first layers',
    // 2 x 5,120): 2,754,560 FLOPs, plus the bootstrap value forward per rollout (2 x 43,584 /
    // 4 steps here). The "about 2.8 MFLOP" is this.
    let per = v["model_mflop_per_trained"].as_f64().unwrap();
    let expected = (2.0 * 87_680.0 + 5.0 * (6.0 * 87_680.0 - 2.0 * 5_120.0) + 87_168.0 / 4.0) / 1e6;
    assert!(
        (per - expected).abs() < 0.01 * expected,
        "{per} vs {expected}: {v}"
    );
    let (model, peak) = (
        v["model_gflop_per_s"].as_f64().unwrap(),
        v["peak_gflop_per_s"].as_f64().unwrap(),
    );
    assert!(model > 0.0 && peak > 0.0, "{v}");
    let fraction = v["peak_fraction"].as_f64().unwrap();
    assert!(
        (fraction - model / peak).abs() < 1e-3 * fraction.max(1.0),
        "{v}"
    );
    assert_eq!(v["peak_shape"], "256x256@256x128");
}

#[test]
fn messages_name_what_is_wrong() {
    let dir = scratch("messages");
    let out = dir.join("run");
    refused(&["train", "--beta", "-inf"], &out, &["--beta", "0..=10"]);
    let lr = dir.join("lr.toml");
    std::fs::write(&lr, "[ppo]\nlr = 0.0\n").unwrap();
    refused(
        &["train", "--config", lr.to_str().unwrap()],
        &out,
        &["ppo.lr", "(0, 1]"],
    );
    // eval of a directory that is no run says it cannot evaluate (not "cannot resume").
    let o = fairground(&["eval", dir.to_str().unwrap()]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        !o.status.success() && err.contains("cannot evaluate"),
        "{err}"
    );
    // A refused resume names the field that differs and both values.
    let cfg = tiny_config(&dir);
    train(&cfg, &out, "1", false);
    let o = fairground(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--resume",
        "--rollout-steps",
        "13",
        "--iterations",
        "2",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("`rollout_steps` is 12 there, 13 here"),
        "{err}"
    );
    // An option the algorithm ignores is accepted with a warning.
    let o = fairground(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--algo",
        "ppo",
        "--alpha",
        "3",
        "--iterations",
        "1",
        "--out",
        dir.join("warned").to_str().unwrap(),
    ]);
    ok(&o);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("warning: --alpha is ignored"), "{err}");
    assert!(
        err.contains("done: 1 iterations"),
        "a closing summary: {err}"
    );
}
