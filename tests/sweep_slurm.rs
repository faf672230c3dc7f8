//! Guarantees with a real Slurm cluster (`.ci/slurm-up` starts a single-node one; `.ci/run`
//! does so and sets `FAIRGROUND_REQUIRE_SLURM=1`): `sweep slurm --submit` runs every run of
//! `sweeps/smoke.toml` as an array task, every run completes, and each run's parameters equal
//! those of the same run made by `sweep local`; with `--pack 2` the array's tasks are the pack
//! groups and the runs are the same again. Without a cluster the test says it skips, and
//! fails where `FAIRGROUND_REQUIRE_SLURM=1`.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use train_cli::{fairground, ok};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sweeps/smoke.toml");

fn cluster_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

fn hashes(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = fairground(&["sweep", "status", dir.to_str().unwrap(), "--json"]);
    ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    s["by_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["state"], "done", "{r}");
            r["param_hash"].clone()
        })
        .collect()
}

#[test]
fn a_sweep_through_slurm_equals_the_local_pool() {
    if !cluster_up() {
        let msg = "sweep_slurm: SKIPPED: no Slurm cluster answers `sinfo` (start one with \
                   .ci/slurm-up)";
        if std::env::var("FAIRGROUND_REQUIRE_SLURM").as_deref() == Ok("1") {
            panic!("{msg}, and FAIRGROUND_REQUIRE_SLURM=1");
        }
        // Past the harness's capture: a skip shows in every log, not only on failure.
        let _ = writeln!(std::io::stderr(), "{msg}");
        return;
    }
    let (local, slurm, packed) = (
        train_cli::scratch_dir("sweep-slurm-local"),
        train_cli::scratch_dir("sweep-slurm-array"),
        train_cli::scratch_dir("sweep-slurm-packed"),
    );
    for d in [&local, &slurm, &packed] {
        let _ = std::fs::remove_dir_all(d);
        ok(&fairground(&[
            "sweep",
            "plan",
            SMOKE,
            "--out",
            d.to_str().unwrap(),
        ]));
    }
    ok(&fairground(&[
        "sweep",
        "local",
        local.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    // One array task per run, then one per pack group (the smoke sweep's two seeds of each
    // algorithm pack: 2 tasks).
    for (dir, extra, tasks) in [(&slurm, None, 4), (&packed, Some("2"), 2)] {
        submit_and_wait(dir, extra, tasks);
        assert_eq!(
            hashes(dir),
            hashes(&local),
            "Slurm ({extra:?} runs per pack) and the local pool agree"
        );
    }
}

/// `sweep slurm DIR [--pack K] --submit`, then wait for the array job to leave the queue.
fn submit_and_wait(dir: &std::path::Path, pack: Option<&str>, tasks: usize) {
    let t0 = Instant::now();
    let mut args = vec![
        "sweep",
        "slurm",
        dir.to_str().unwrap(),
        "--cpus-per-task",
        "1",
        "--submit",
    ];
    if let Some(k) = pack {
        args.extend(["--pack", k]);
    }
    let out = fairground(&args);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("({tasks} array tasks")), "{err}");
    let job = err
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap_or_else(|| panic!("no job id in {err}"))
        .to_string();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &job])
            .output()
            .unwrap();
        if q.stdout.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "job {job} still queued after 300 s: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "sweep_slurm: job {job}: {tasks} array tasks in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
