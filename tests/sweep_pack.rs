//! Guarantees for a sweep's packed runs (`--pack K` on `sweep run|local|slurm|k8s`, issue 16):
//! - runs whose configs differ only in seed, `fair.alpha` and `fair.beta` form pack groups of
//!   up to K in plan order; each group trains in one process as one pack (its log says so);
//! - every run of a packed sweep ends with the parameters, per-iteration hashes and
//!   evaluation of the same run in an unpacked sweep;
//! - a group whose runs stand at different iterations (one partial) packs the runs that
//!   agree and trains the other alone, still bit-identical; a done group is skipped;
//! - a faulty run fails alone: its group is retried run by run, the others finish with the
//!   unpacked sweep's bits and `status` names only the faulty one;
//! - the Slurm script's and the Indexed Job's tasks are the pack groups (`--pack K` on every
//!   `sweep run`); a group index out of range is one line.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use std::process::Command;
use train_cli::{fairground, ok};

/// Eight runs: PPO and Fair-PPO × α ∈ {0.25, 0.75} × seeds {0, 1}. At `--pack 4` the groups
/// are PPO's four runs (α is a Fair-PPO key, but it is in PPO's config too) and Fair-PPO's.
const SWEEP: &str = r#"
[base]
env = "ah"
backend = "cpu"
instances = 2
rollout_steps = 12
iterations = 2
threads = 1

[base.ah]
episode_steps = 10

[base.ppo]
hidden = [16, 8]
minibatch_size = 64
epochs = 2

[base.fair]
beta = 0.5

[axes]
algo = ["ppo", "fair-ppo"]
"fair.alpha" = [0.25, 0.75]
seed = [0, 1]

[eval]
episodes = 2
"#;

fn planned(name: &str) -> PathBuf {
    let dir = train_cli::scratch_dir(name);
    std::fs::remove_dir_all(&dir).unwrap();
    let file = dir.with_extension("toml");
    std::fs::write(&file, SWEEP).unwrap();
    ok(&fairground(&[
        "sweep",
        "plan",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]));
    dir
}

/// Per run: every iteration's parameter hash, its eval.json (but the run directory it names),
/// and its done.json hash.
fn results(dir: &Path) -> Vec<(Vec<serde_json::Value>, serde_json::Value, serde_json::Value)> {
    let out = fairground(&["sweep", "status", dir.to_str().unwrap(), "--json"]);
    ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["counts"], serde_json::json!({"done": 8}), "{s}");
    (0..8)
        .map(|i| {
            let run = dir.join(format!("runs/{i:04}/run"));
            let hashes = train_cli::metrics(&run, &["param_hash"])
                .iter()
                .map(|m| m["param_hash"].clone())
                .collect();
            let mut eval: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap())
                    .unwrap();
            eval.as_object_mut().unwrap().remove("run_dir");
            (hashes, eval, s["by_run"][i]["param_hash"].clone())
        })
        .collect()
}

/// Run by run, so a failure names the run rather than printing every evaluation.
fn same(
    got: &[(Vec<serde_json::Value>, serde_json::Value, serde_json::Value)],
    want: &[(Vec<serde_json::Value>, serde_json::Value, serde_json::Value)],
) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.0, w.0, "run {i}: per-iteration parameter hashes");
        assert_eq!(g.2, w.2, "run {i}: done.json's parameter hash");
        assert!(g.1 == w.1, "run {i}: eval.json differs");
    }
    assert_eq!(got.len(), want.len());
}

fn log(dir: &Path, i: usize) -> String {
    std::fs::read_to_string(dir.join(format!("runs/{i:04}/log.txt"))).unwrap_or_default()
}

#[test]
fn a_packed_sweep_equals_the_unpacked_one() {
    let (plain, packed) = (planned("sweep-pack-plain"), planned("sweep-pack-packed"));
    ok(&fairground(&[
        "sweep",
        "local",
        plain.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    let out = fairground(&[
        "sweep",
        "local",
        packed.to_str().unwrap(),
        "--jobs",
        "1",
        "--pack",
        "4",
    ]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 pack groups of up to 4 runs (2 to train)"),
        "{err}"
    );
    // Each group is one process whose log (its first run's) says it packed 4 runs.
    for first in [0, 4] {
        let l = log(&packed, first);
        assert!(
            l.contains("packing 4 runs: 2 network(s) per run train as one packed program"),
            "run {first}'s log: {l}"
        );
    }
    same(&results(&packed), &results(&plain));
    // Done groups are skipped.
    let out = fairground(&[
        "sweep",
        "run",
        packed.to_str().unwrap(),
        "--pack",
        "4",
        "--index",
        "1",
    ]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("already done").count(), 4, "{err}");
}

#[test]
fn a_group_at_mixed_iterations_packs_what_agrees_and_still_matches() {
    let (plain, mixed) = (planned("sweep-pack-plain-b"), planned("sweep-pack-mixed"));
    ok(&fairground(&[
        "sweep",
        "local",
        plain.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    // Run 5 (Fair-PPO, α 0.25, seed 1) is partial: one of its two iterations.
    let run5 = mixed.join("runs/0005/run");
    train_cli::train(&mixed.join("runs/0005/config.toml"), &run5, "1", false);
    let d = mixed.to_str().unwrap();
    let out = fairground(&["sweep", "run", d, "--pack", "4", "--index", "1"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("packing 3 runs"), "{err}");
    assert!(
        err.contains("run 5: done (resumed from iteration 1)"),
        "{err}"
    );
    ok(&fairground(&[
        "sweep", "run", d, "--pack", "4", "--index", "0",
    ]));
    same(&results(&mixed), &results(&plain));
    // Out of range: one line naming the groups there are.
    let out = fairground(&["sweep", "run", d, "--pack", "4", "--index", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("pack groups 0..=1"), "{err}");
}

#[test]
fn a_faulty_run_fails_alone_and_its_group_still_finishes() {
    let (plain, faulty) = (planned("sweep-pack-plain-c"), planned("sweep-pack-faulty"));
    ok(&fairground(&[
        "sweep",
        "local",
        plain.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    // Run 6's run directory is a file: that run fails, the rest of its group must not.
    std::fs::write(faulty.join("runs/0006/run"), "in the way").unwrap();
    let d = faulty.to_str().unwrap();
    let out = fairground(&["sweep", "local", d, "--jobs", "2", "--pack", "4"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 of 8 runs failed ([6])"), "{err}");
    let out = fairground(&["sweep", "status", d, "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s["counts"],
        serde_json::json!({"done": 7, "failed": 1}),
        "{s}"
    );
    assert!(
        s["by_run"][6]["error"]
            .as_str()
            .unwrap()
            .contains("names a file"),
        "{}",
        s["by_run"][6]
    );
    // The rerun packs what is left (run 6 alone) and every run equals the unpacked sweep's.
    std::fs::remove_file(faulty.join("runs/0006/run")).unwrap();
    ok(&fairground(&[
        "sweep", "local", d, "--jobs", "2", "--pack", "4",
    ]));
    same(&results(&faulty), &results(&plain));
}

#[test]
fn the_array_tasks_are_the_pack_groups() {
    let dir = planned("sweep-pack-scripts");
    let d = dir.to_str().unwrap();
    let out = fairground(&["sweep", "slurm", d, "--pack", "4"]);
    ok(&out);
    let script = std::fs::read_to_string(dir.join("slurm.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-1%2"), "{script}");
    assert!(script.contains(" --pack 4\n"), "{script}");
    let task = Command::new("bash")
        .arg(dir.join("slurm.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "0")
        .output()
        .unwrap();
    ok(&task);
    let out = fairground(&["sweep", "status", d, "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s["counts"],
        serde_json::json!({"done": 4, "pending": 4}),
        "task 0 trained PPO's group: {s}"
    );
    let out = fairground(&["sweep", "k8s", d, "--pack", "4"]);
    ok(&out);
    let job = std::fs::read_to_string(dir.join("k8s-job.yaml")).unwrap();
    assert!(job.contains("completions: 2"), "{job}");
    assert!(job.contains(r#""--pack", "4"]"#), "{job}");
}
