//! Guarantees for the `cpu-gemm` backend as users run it (`fairground train`, AH, tiny sizes
//! with layers wide and minibatches tall enough that every product spans several of the
//! executor's fixed 128 × 256 output tiles):
//! - the same seed gives the same bits, and 1, 2 and 3 threads give the same bits: every metrics
//!   line, every parameter hash (tiles are fixed, threads only decide who computes one);
//! - a run stopped and resumed ends where a straight run ends;
//! - the manifest names the backend `cpu-gemm`, and its runs are not the twins' bits (`cpu`),
//!   which is why `cpu` stays the backend of goldens and audits;
//! - `bench train --backend cpu-gemm --threads 1` and `--threads 2` count the same model FLOPs;
//! - `bench shaders --backend cpu-gemm` prints its line with positive rates.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::PathBuf;
use train_cli::{fairground, ok, train, write_cfg};

fn scratch(name: &str) -> PathBuf {
    train_cli::scratch_dir(&format!("cpu-gemm-{name}"))
}

/// 320-row minibatches (three row tiles) through a 272-wide first layer (two column tiles); the
/// weight gradient of the second layer is 272 × 16 (three row tiles).
const WIDE: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\n\
                    hidden = [272, 16]\nminibatch_size = 320\nepochs = 2\n\
                    backend = \"cpu-gemm\"\nseed = 7\n";

fn run(dir: &std::path::Path, name: &str, text: &str, iterations: &str) -> Vec<serde_json::Value> {
    train_cli::run(dir, name, text, iterations, &["param_hash", "dp"])
}

#[test]
fn cpu_gemm_is_deterministic_thread_invariant_and_resumes_bit_for_bit() {
    let dir = scratch("determinism");
    let two = run(&dir, "two", &format!("{WIDE}threads = 2\n"), "3");
    let again = run(&dir, "again", &format!("{WIDE}threads = 2\n"), "3");
    assert_eq!(two, again, "same seed, same bits");
    for threads in [1, 3] {
        let other = run(
            &dir,
            &format!("t{threads}"),
            &format!("{WIDE}threads = {threads}\n"),
            "3",
        );
        assert_eq!(two, other, "{threads} threads against 2");
    }
    let hashes: Vec<&serde_json::Value> = two.iter().map(|l| &l["param_hash"]).collect();
    assert!(
        hashes.windows(2).all(|w| w[0] != w[1]),
        "the parameters moved: {hashes:?}"
    );

    let cfg = write_cfg(&dir, "resumed", &format!("{WIDE}threads = 2\n"));
    let resumed = dir.join("resumed");
    train(&cfg, &resumed, "1", false);
    train(&cfg, &resumed, "3", true);
    assert_eq!(
        train_cli::metrics(&resumed, &["param_hash"]),
        two,
        "resumed = straight"
    );

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("two").join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["backend"], "cpu-gemm", "{manifest}");

    // The twins sum in the shaders' order, the tuned GEMM in its own: close, not the same bits.
    let twins = run(&dir, "twins", &WIDE.replace("cpu-gemm", "cpu"), "3");
    assert_ne!(twins[2]["param_hash"], two[2]["param_hash"]);
}

#[test]
fn bench_counts_the_same_flops_on_any_thread_count() {
    let gflop = |threads: &str| {
        let out = fairground(&[
            "bench",
            "train",
            "--env",
            "ah",
            "--instances",
            "1",
            "--rollout-steps",
            "8",
            "--iterations",
            "1",
            "--backend",
            "cpu-gemm",
            "--threads",
            threads,
        ]);
        ok(&out);
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        assert_eq!(v["backend"], "cpu-gemm", "{v}");
        assert_eq!(v["threads"].as_u64(), Some(threads.parse().unwrap()), "{v}");
        assert!(v["peak_gflop_per_s"].as_f64().unwrap() > 0.0, "{v}");
        v["model_gflop"].as_f64().unwrap()
    };
    assert_eq!(gflop("1"), gflop("2"));
}

#[test]
fn bench_shaders_runs_on_cpu_gemm() {
    let out = fairground(&[
        "bench",
        "shaders",
        "--backend",
        "cpu-gemm",
        "--batch",
        "300",
        "--hidden",
        "64,32",
    ]);
    ok(&out);
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(v["backend"], "cpu-gemm", "{v}");
    assert_eq!(v["batch"], 300, "{v}");
    for key in ["forward_samples_per_s", "train_samples_per_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
}
