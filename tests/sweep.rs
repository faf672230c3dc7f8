//! Guarantees for `fairground sweep plan|run|local|status` (issue 16's sweep, on one machine):
//! - a plan depends only on the sweep file: two plans are byte-identical, the runs are the
//!   axes' product in the documented order, each config's hash is the SHA-256 of its bytes,
//!   replanning the same file into its directory is accepted and another plan there refused;
//! - bad sweep files (unknown axis, empty axis, a value out of range, a scalar axis, an unknown
//!   table) are refused with one line naming the axis or value, and nothing is written;
//! - `sweep run --index I` trains run I exactly as `train --config` would (same parameter
//!   hashes), skips it when done, resumes a partial run bit for bit, takes its index from
//!   `SLURM_ARRAY_TASK_ID`, and refuses a config changed since the plan, a run directory
//!   holding another config, and an index out of range;
//! - `sweep local` runs everything, a failing run does not stop the others, `status` names it
//!   with its error, and a rerun retries only what is not done;
//! - with an `[eval]` table every run is evaluated after training; a run whose evaluation
//!   failed is evaluated again by a rerun, not trained again;
//! - the shipped paper grids plan (237 runs each, grid by grid, each with its grid's base);
//!   [axes] with [[grid]], or a grid without axes, is refused in one line;
//! - `sweep slurm` writes (and prints) an array script whose task I runs `sweep run` for run I,
//!   `sweep k8s` an Indexed Job; `--submit` without Slurm is one clear line.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use std::process::Command;
use train_cli::{fairground, ok};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sweeps/smoke.toml");

fn plan(dir: &Path, file: &str) -> std::process::Output {
    fairground(&["sweep", "plan", file, "--out", dir.to_str().unwrap()])
}

fn scratch(name: &str) -> PathBuf {
    let d = train_cli::scratch_dir(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn sweep_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap()
}

fn status(dir: &Path) -> serde_json::Value {
    let out = fairground(&["sweep", "status", dir.to_str().unwrap(), "--json"]);
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn last_hash(run: &Path) -> String {
    train_cli::metrics(run, &["param_hash"]).last().unwrap()["param_hash"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_plan_depends_only_on_the_file() {
    let (a, b) = (scratch("sweep-plan-a"), scratch("sweep-plan-b"));
    ok(&plan(&a, SMOKE));
    ok(&plan(&b, SMOKE));
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&a, "sweep.json"), read(&b, "sweep.json"));
    let s = sweep_json(&a);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // Alphabetical axes (algo, seed), the last fastest.
    let values: Vec<(String, u64)> = runs
        .iter()
        .map(|r| {
            let v = &r["values"];
            (
                v["algo"].as_str().unwrap().to_string(),
                v["seed"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [("ppo", 0), ("ppo", 1), ("fair-ppo", 0), ("fair-ppo", 1)];
    assert_eq!(
        values,
        want.map(|(a, s)| (a.to_string(), s)).to_vec(),
        "{values:?}"
    );
    for r in runs {
        let cfg = r["config"].as_str().unwrap();
        assert_eq!(read(&a, cfg), read(&b, cfg));
        let text = String::from_utf8(read(&a, cfg)).unwrap();
        let out = Command::new("sha256sum")
            .arg(a.join(cfg))
            .output()
            .expect("sha256sum");
        let sum = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            sum.split_whitespace().next(),
            r["config_hash"].as_str(),
            "{text}"
        );
    }
    // The same plan again is accepted; another sweep's plan into the directory is refused.
    ok(&plan(&a, SMOKE));
    let other = a.join("other.toml");
    std::fs::write(&other, "[base]\nenv = \"ah\"\n[axes]\nseed = [5]\n").unwrap();
    let out = plan(&a, other.to_str().unwrap());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another sweep"));
    assert_eq!(read(&a, "sweep.json"), read(&b, "sweep.json"), "untouched");
}

#[test]
fn bad_sweep_files_are_refused_in_one_line_and_write_nothing() {
    let base = "[base]\nenv = \"ah\"\n";
    let cases = [
        (format!("{base}[axes]\nbogus = [1]\n"), "bogus"),
        (format!("{base}[axes]\nseed = []\n"), "seed"),
        (
            format!("{base}[axes]\n\"fair.alpha\" = [0.5, 11.0]\n"),
            "fair.alpha = 11.0",
        ),
        (format!("{base}[axes]\nseed = 3\n"), "seed"),
        (
            format!("{base}[axes]\nseed = [1]\n[extra]\nx = 1\n"),
            "extra",
        ),
        (base.to_string(), "[axes]"),
    ];
    for (k, (text, needle)) in cases.iter().enumerate() {
        let dir = scratch(&format!("sweep-bad-{k}"));
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let file = dir.with_extension("toml");
        std::fs::write(
            &file,
            format!("[base]\nenv = \"ah\"\n{text}").replace(
                "[base]\nenv = \"ah\"\n[base]\nenv = \"ah\"\n",
                "[base]\nenv = \"ah\"\n",
            ),
        )
        .unwrap();
        let out = plan(&dir, file.to_str().unwrap());
        assert!(!out.status.success(), "case {k} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "case {k}: {err}");
        assert!(err.contains(needle), "case {k}: {err}");
        assert!(!dir.exists(), "case {k}: wrote {}", dir.display());
    }
}

#[test]
fn a_run_trains_as_train_would_skips_when_done_and_resumes_when_partial() {
    let dir = scratch("sweep-run");
    ok(&plan(&dir, SMOKE));
    let d = dir.to_str().unwrap();
    ok(&fairground(&["sweep", "run", d, "--index", "2"]));
    // The same config through `train`: the same parameters.
    let direct = dir.join("direct");
    train_cli::train(&dir.join("runs/0002/config.toml"), &direct, "2", false);
    assert_eq!(last_hash(&dir.join("runs/0002/run")), last_hash(&direct));
    let out = fairground(&["sweep", "run", d, "--index", "2"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already done"));
    // A partial run (one iteration of two, as a kill would leave it) resumes bit for bit.
    let run1 = dir.join("runs/0001/run");
    train_cli::train(&dir.join("runs/0001/config.toml"), &run1, "1", false);
    assert_eq!(status(&dir)["by_run"][1]["state"], "partial");
    let out = Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args(["sweep", "run", d])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed from iteration 1"));
    let whole = dir.join("whole");
    train_cli::train(&dir.join("runs/0001/config.toml"), &whole, "2", false);
    assert_eq!(
        train_cli::metrics(&run1, &["param_hash"]),
        train_cli::metrics(&whole, &["param_hash"])
    );
    // A config changed after the plan, and an index out of range: one line each.
    let cfg0 = dir.join("runs/0000/config.toml");
    let text = std::fs::read_to_string(&cfg0).unwrap();
    std::fs::write(&cfg0, text.replace("seed = 0", "seed = 9")).unwrap();
    for (index, needle) in [("0", "content hash"), ("4", "0..=3")] {
        let out = fairground(&["sweep", "run", d, "--index", index]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert!(!dir.join("runs/0000/run").exists(), "nothing trained");
    // A run directory holding another run's config is refused, not continued.
    let run3 = dir.join("runs/0003/run");
    train_cli::train(&dir.join("runs/0002/config.toml"), &run3, "1", false);
    let out = fairground(&["sweep", "run", d, "--index", "3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("keeps its saved config"), "{err}");
    assert_eq!(train_cli::metrics(&run3, &[]).len(), 1, "left as it was");
}

#[test]
fn the_local_pool_survives_a_failing_run_and_a_rerun_retries_only_it() {
    let dir = scratch("sweep-local");
    ok(&plan(&dir, SMOKE));
    let d = dir.to_str().unwrap();
    // Run 3's run directory is a file: that run fails, the others must not.
    std::fs::write(dir.join("runs/0003/run"), "in the way").unwrap();
    let out = fairground(&["sweep", "local", d, "--jobs", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 of 4 runs failed ([3])"), "{err}");
    let s = status(&dir);
    assert_eq!(
        s["counts"],
        serde_json::json!({"done": 3, "failed": 1}),
        "{s}"
    );
    let failed = &s["by_run"][3];
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("names a file"),
        "{failed}"
    );
    let text = fairground(&["sweep", "status", d]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("0003 failed") && text.contains("error:"),
        "{text}"
    );
    let hashes: Vec<_> = (0..3)
        .map(|i| s["by_run"][i]["param_hash"].clone())
        .collect();
    let log = |i: usize| std::fs::read(dir.join(format!("runs/{i:04}/log.txt"))).unwrap();
    let logs: Vec<_> = (0..3).map(log).collect();
    std::fs::remove_file(dir.join("runs/0003/run")).unwrap();
    ok(&fairground(&["sweep", "local", d, "--jobs", "2"]));
    let s = status(&dir);
    assert_eq!(s["counts"], serde_json::json!({"done": 4}), "{s}");
    let again: Vec<_> = (0..3)
        .map(|i| s["by_run"][i]["param_hash"].clone())
        .collect();
    assert_eq!(hashes, again);
    assert_eq!(
        logs,
        (0..3).map(log).collect::<Vec<_>>(),
        "done runs were not run again"
    );
    assert!(s["by_run"][3]["error"].is_null());
}

#[test]
fn the_shipped_paper_grids_plan_grid_by_grid() {
    for env in ["ah", "hs"] {
        let dir = scratch(&format!("sweep-paper-{env}"));
        let file = format!("{}/sweeps/paper-{env}.toml", env!("CARGO_MANIFEST_DIR"));
        ok(&plan(&dir, &file));
        let s = sweep_json(&dir);
        let grids: Vec<&str> = s["grids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(grids, ["fair-ppo", "ppo", "fen", "soto"]);
        let runs = s["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 225 + 3 + 3 + 6, "{env}");
        // Grid by grid, in file order; each run's config carries its grid's base.
        let per_grid = |g: u64| runs.iter().filter(|r| r["grid"] == g).count();
        assert_eq!(
            (per_grid(0), per_grid(1), per_grid(2), per_grid(3)),
            (225, 3, 3, 6)
        );
        assert!(
            runs.windows(2)
                .all(|w| w[0]["grid"].as_u64() <= w[1]["grid"].as_u64())
        );
        let cfg = |i: usize| {
            let text = std::fs::read_to_string(dir.join(runs[i]["config"].as_str().unwrap()));
            text.unwrap().parse::<toml::Table>().unwrap()
        };
        assert_eq!(cfg(0)["algo"].as_str(), Some("fair-ppo"));
        assert_eq!(cfg(0)["env"].as_str(), Some(env));
        assert_eq!(cfg(225)["algo"].as_str(), Some("ppo"));
        assert_eq!(cfg(236)["soto"]["welfare"].as_str(), Some("alpha"));
    }
    // [axes] and [[grid]] together, or a grid without axes: one line, nothing written.
    let dir = scratch("sweep-grid-bad");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    for (k, text) in [
        "[axes]\nseed = [0]\n[[grid]]\nname = \"a\"\naxes = { seed = [1] }\n",
        "[[grid]]\nname = \"a\"\nbase = { algo = \"ppo\" }\n",
    ]
    .iter()
    .enumerate()
    {
        let file = dir.with_extension(format!("{k}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = plan(&dir, file.to_str().unwrap());
        assert!(!out.status.success(), "case {k}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("grid") || err.contains("axes"), "{err}");
        assert!(!dir.exists());
    }
}

#[test]
fn the_slurm_script_and_the_k8s_job_call_sweep_run_per_index() {
    let dir = scratch("sweep-scripts");
    ok(&plan(&dir, SMOKE));
    let d = dir.to_str().unwrap();
    let out = fairground(&[
        "sweep",
        "slurm",
        d,
        "--max-parallel",
        "2",
        "--time",
        "00:10:00",
    ]);
    ok(&out);
    let script = std::fs::read_to_string(dir.join("slurm.sbatch")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        script,
        "printed as written"
    );
    for line in [
        "#SBATCH --array=0-3%2",
        "#SBATCH --time=00:10:00",
        "sweep run",
    ] {
        assert!(script.contains(line), "{line}: {script}");
    }
    // The script is what an array task runs: task 1 trains run 1.
    let task = Command::new("bash")
        .arg(dir.join("slurm.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    ok(&task);
    assert_eq!(status(&dir)["by_run"][1]["state"], "done");
    assert_eq!(status(&dir)["counts"]["done"], 1);
    let out = fairground(&["sweep", "k8s", d, "--pvc", "shared", "--max-parallel", "3"]);
    ok(&out);
    let job = std::fs::read_to_string(dir.join("k8s-job.yaml")).unwrap();
    for line in [
        "completionMode: Indexed",
        "completions: 4",
        "parallelism: 3",
        "claimName: shared",
    ] {
        assert!(job.contains(line), "{line}: {job}");
    }
    // Without Slurm, --submit says so in one line.
    let has_sbatch = Command::new("sbatch").arg("--version").output().is_ok();
    if !has_sbatch {
        let out = fairground(&["sweep", "slurm", d, "--submit"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("sbatch"), "{err}");
    }
}

#[test]
fn every_run_is_evaluated_and_a_failed_evaluation_is_all_a_rerun_redoes() {
    let dir = scratch("sweep-eval");
    ok(&plan(&dir, SMOKE));
    let d = dir.to_str().unwrap();
    // Run 0 trained to the end (as an attempt killed during its evaluation leaves it), and its
    // eval.json cannot be written (a directory is in the way).
    let run0 = dir.join("runs/0000/run");
    train_cli::train(&dir.join("runs/0000/config.toml"), &run0, "2", false);
    std::fs::create_dir_all(run0.join("eval.json")).unwrap();
    let out = fairground(&["sweep", "run", d, "--index", "0"]);
    assert!(!out.status.success(), "the evaluation could not be saved");
    let s = status(&dir);
    assert_eq!(s["by_run"][0]["state"], "failed", "{s}");
    let trained = train_cli::metrics(&dir.join("runs/0000/run"), &["param_hash"]);
    assert_eq!(trained.len(), 2);
    std::fs::remove_dir(dir.join("runs/0000/run/eval.json")).unwrap();
    let out = fairground(&["sweep", "run", d, "--index", "0"]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("training"), "not trained again: {err}");
    let eval: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("runs/0000/run/eval.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(eval["episodes"], 2);
    assert_eq!(status(&dir)["by_run"][0]["state"], "done");
    assert_eq!(
        train_cli::metrics(&dir.join("runs/0000/run"), &["param_hash"]),
        trained
    );
}
