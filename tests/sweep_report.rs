//! Guarantees for `fairground report DIR`, end to end on the smoke sweep: from the runs'
//! `eval.json` it writes `runs.csv` (one row per run, the measures as eval.json has them)
//! and `report.md` (per configuration the mean over seeds and a bootstrap interval that holds
//! it); the means equal those recomputed from the runs; a run without `eval.json` is listed as
//! missing and its configuration's `n` says how many seeds are averaged; a damaged or unreadable `eval.json` is
//! refused; report.html is self-contained; the layout of report.md is pinned by a snapshot. (The
//! statistics' own hand values: the unit tests of `trainer/src/sweep/report/stats.rs`.)

#[path = "common/train_cli.rs"]
mod train_cli;

use train_cli::{fairground, ok};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sweeps/smoke.toml");

fn eval(dir: &std::path::Path, i: usize) -> serde_json::Value {
    let p = dir.join(format!("runs/{i:04}/run/eval.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The smoke sweep planned, run and reported in a fresh scratch directory `name`.
fn reported_smoke(name: &str) -> std::path::PathBuf {
    let dir = train_cli::scratch_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    ok(&fairground(&["sweep", "plan", SMOKE, "--out", d]));
    ok(&fairground(&["sweep", "local", d, "--jobs", "2"]));
    ok(&fairground(&["report", d]));
    dir
}

#[test]
fn the_report_is_the_runs_numbers() {
    let dir = reported_smoke("sweep-report");
    let d = dir.to_str().unwrap();
    let csv = std::fs::read_to_string(dir.join("report/runs.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[0].starts_with("index,grid,state,values,reward,dp,"));
    for i in 0..4 {
        let e = eval(&dir, i);
        let fields: Vec<&str> = rows[i + 1].split(',').collect();
        assert_eq!(
            fields[4].parse::<f64>().unwrap(),
            e["mean_reward_per_agent_step"].as_f64().unwrap()
        );
        assert_eq!(
            fields[5].parse::<f64>().unwrap(),
            e["dp"].as_f64().unwrap(),
            "clean: per agent"
        );
    }
    // Runs 0, 1 are PPO's seeds; the report's PPO reward mean is their mean.
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    let ppo = md.lines().find(|l| l.starts_with("| algo=ppo |")).unwrap();
    let r: Vec<f64> = (0..2)
        .map(|i| {
            eval(&dir, i)["mean_reward_per_agent_step"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let want = format!("| algo=ppo | 2 | {:.4} [", (r[0] + r[1]) / 2.0);
    assert!(ppo.starts_with(&want), "{ppo} vs {want}");
    // A run without eval.json: listed, and its configuration averages the seed that exists.
    std::fs::remove_file(dir.join("runs/0003/run/eval.json")).unwrap();
    ok(&fairground(&["report", d]));
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(md.contains("runs [3]"), "{md}");
    // The HTML page carries its figures inline and reaches for nothing outside itself.
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    assert!(html.contains("<svg"), "figures inline");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for f in [
        "pareto-ah.svg",
        "curves-ah.svg",
        "radar-ah.svg",
        "marl-eval.json",
    ] {
        assert!(dir.join("report").join(f).is_file(), "{f}");
    }
    let fair = md
        .lines()
        .find(|l| l.starts_with("| algo=fair-ppo |"))
        .unwrap();
    let r2 = eval(&dir, 2)["mean_reward_per_agent_step"]
        .as_f64()
        .unwrap();
    assert!(
        fair.starts_with(&format!("| algo=fair-ppo | 1 | {r2:.4} [{r2:.4}, {r2:.4}]")),
        "{fair}"
    );
    // A damaged eval.json is refused in one line naming the file, never averaged.
    std::fs::write(dir.join("runs/0002/run/eval.json"), r#"{"dp": 0.1"#).unwrap();
    let out = fairground(&["report", d]);
    assert!(!out.status.success(), "damaged eval.json accepted");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("0002") && err.contains("damaged, refused"),
        "{err}"
    );
    // An eval.json that exists but cannot be read is an error, never taken for a missing run.
    let unreadable = dir.join("runs/0001/run/eval.json");
    std::fs::remove_file(&unreadable).unwrap();
    std::fs::create_dir(&unreadable).unwrap();
    let out = fairground(&["report", d]);
    assert!(
        !out.status.success(),
        "unreadable eval.json taken for missing"
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("0001/run/eval.json"), "{err}");
}

/// The report's layout (headings, every table's header and the rows' shape) is pinned; the
/// numbers are masked (digit → 9) so that only a deliberate change of layout moves it.
#[test]
fn the_report_layout_is_pinned() {
    let dir = reported_smoke("sweep-report-layout");
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    let layout: Vec<String> = md
        .lines()
        .filter(|l| l.starts_with('#') || l.starts_with('|'))
        .map(|l| {
            l.chars()
                .map(|c| if c.is_ascii_digit() { '9' } else { c })
                .collect()
        })
        .collect();
    insta::assert_snapshot!("report_layout", layout.join("\n"));
}

/// The paired table's numbers on hand-written `eval.json` files (no training): with
/// `--selection-seeds 0` every seed reports, each Fair-PPO seed is paired with PPO's, and the
/// sign-flip p-value is the hand count of sign patterns. A grid of several configurations
/// refuses `--selection-seeds 0` in one line.
#[test]
fn the_paired_table_tests_each_seed_against_ppo() {
    let dir = train_cli::scratch_dir("sweep-report-paired");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = dir.join("paired.toml");
    std::fs::write(
        &sweep,
        r#"
[base]
env = "ah"
backend = "cpu"
instances = 1
iterations = 1

[[grid]]
name = "ppo"
base = { algo = "ppo" }
axes = { seed = [1, 2, 3] }

[[grid]]
name = "fair"
base = { algo = "fair-ppo", fair = { fairness = "dp", alpha = 0.5, beta = 0.5 } }
axes = { seed = [1, 2, 3] }
"#,
    )
    .unwrap();
    let out = dir.join("sweep");
    let d = out.to_str().unwrap();
    ok(&fairground(&[
        "sweep",
        "plan",
        sweep.to_str().unwrap(),
        "--out",
        d,
    ]));
    // PPO's |DP| per episode 10, 20, 30; Fair-PPO's 4, 15, 31: differences -6, -5, +1, sum
    // -10. Of the 8 sums ±6 ±5 ±1 (12, 10, 2, 0, 0, -2, -10, -12) two are at most -10.
    let dp_abs = [10.0, 20.0, 30.0, 4.0, 15.0, 31.0];
    let reward = [1.0, 1.0, 1.0, 0.9, 0.8, 1.1];
    for i in 0..6 {
        let run = out.join(format!("runs/{i:04}/run"));
        std::fs::create_dir_all(&run).unwrap();
        let e = serde_json::json!({
            "dp": dp_abs[i], "dp_abs": dp_abs[i], "mean_reward_per_agent_step": reward[i],
        });
        std::fs::write(run.join("eval.json"), e.to_string()).unwrap();
    }
    ok(&fairground(&["report", d, "--selection-seeds", "0"]));
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| fair |") && l.contains(r"mean \|DP\| per episode"))
        .unwrap_or_else(|| panic!("no paired row: {md}"));
    // Cells split on " | " (the measure's own bars are escaped, without spaces).
    let cells: Vec<&str> = row.trim_matches(['|', ' ']).split(" | ").collect();
    // fair | configuration | measure | pairs | PPO | value | Δ | lower | p
    assert_eq!(
        cells[3..],
        ["3", "20.00", "16.67", "-3.3333", "2 of 3", "0.2500"],
        "{row}"
    );
    // Reward: differences -0.1, -0.2, +0.1; sums of ±.1 ±.2 ±.1 at most -0.2: (-.1-.2+.1),
    // (+.1-.2-.1), (-.1-.2-.1): 3 of 8.
    let row = md
        .lines()
        .find(|l| l.starts_with("| fair |") && l.contains("| reward |"))
        .unwrap();
    assert!(row.ends_with("| 2 of 3 | 0.3750 |"), "{row}");
    assert!(md.contains("### Per seed"), "{md}");
    assert!(md.contains("nothing is selected"), "{md}");
    // Without the split every seed reports; with it, seed 1 would select and 2, 3 report.
    ok(&fairground(&["report", d, "--selection-seeds", "1"]));
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(
        md.contains("| 2 of 2 |") || md.contains("| 1 of 2 |"),
        "{md}"
    );
    // Several configurations in one grid: no selection is refused, in one line.
    let smoke = train_cli::scratch_dir("sweep-report-paired-smoke");
    let _ = std::fs::remove_dir_all(&smoke);
    let s = smoke.to_str().unwrap();
    ok(&fairground(&["sweep", "plan", SMOKE, "--out", s]));
    let out = fairground(&["report", s, "--selection-seeds", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--selection-seeds") && err.contains("one configuration"),
        "{err}"
    );
}
