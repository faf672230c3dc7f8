//! Guarantees: the trainer's results are pinned. For a matrix of tiny runs (AH and HS, clean and
//! reference profiles, PPO and Fair-PPO with every fairness notion and both penalties, cpu
//! backend, 3 iterations) every `metrics.jsonl` line (all keys but the wall-clock ones) and
//! every parameter hash equals the reviewed snapshot, and so do the evaluation numbers of a PPO
//! run of each environment. A refactor of the trainer must leave these snapshots untouched; a
//! change of behaviour shows up here as a reviewable diff (`cargo insta review`), never silently.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("golden-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const AH: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nhidden = [16, 8]\n\
                  minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 7\n";
const AH_REFERENCE: &str = "profile = \"reference\"\nepisode_steps = 24\nhidden = [16, 8]\n\
                            minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 7\n";
const HS: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 300\nhs_patients = 100\n\
                  hs_sim_minutes = 240\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\n\
                  epochs = 2\nbackend = \"cpu\"\nseed = 7\n";
const HS_REFERENCE: &str = "env = \"hs\"\nprofile = \"reference\"\ninstances = 2\n\
                            rollout_steps = 300\nhs_patients = 100\nhs_sim_minutes = 240\n\
                            trunk = [16]\nminibatch_size = 32\nepochs = 2\nbackend = \"cpu\"\n\
                            seed = 7\n";

const FAIR: &str = "algo = \"fair-ppo\"\nalpha = 0.5\nbeta = 0.5\n";

/// Every run of the matrix: (name, base config, extra keys).
fn matrix() -> Vec<(&'static str, &'static str, String)> {
    let fair = |extra: &str| format!("{FAIR}{extra}");
    vec![
        ("ah-ppo", AH, String::new()),
        ("ah-dp", AH, fair("fairness = \"dp\"\n")),
        ("ah-csp", AH, fair("fairness = \"csp\"\n")),
        ("ah-cf", AH, fair("fairness = \"cf\"\n")),
        (
            "ah-dp-reference-penalty",
            AH,
            fair("penalty = \"reference\"\n"),
        ),
        ("ah-reference-ppo", AH_REFERENCE, String::new()),
        (
            "ah-reference-dp",
            AH_REFERENCE,
            fair("penalty = \"reference\"\n"),
        ),
        ("ah-reference-dp-shaped", AH_REFERENCE, fair("")),
        (
            "ah-reference-cf",
            AH_REFERENCE,
            fair("fairness = \"cf\"\npenalty = \"reference\"\n"),
        ),
        ("hs-ppo", HS, String::new()),
        ("hs-dp", HS, fair("fairness = \"dp\"\n")),
        ("hs-csp", HS, fair("fairness = \"csp\"\n")),
        ("hs-cf", HS, fair("fairness = \"cf\"\n")),
        (
            "hs-dp-reference-penalty",
            HS,
            fair("penalty = \"reference\"\n"),
        ),
        ("hs-reference-ppo", HS_REFERENCE, String::new()),
        (
            "hs-reference-csp",
            HS_REFERENCE,
            fair("fairness = \"csp\"\npenalty = \"reference\"\n"),
        ),
        (
            "hs-reference-cf",
            HS_REFERENCE,
            fair("fairness = \"cf\"\npenalty = \"reference\"\n"),
        ),
    ]
}

/// Train one run of the matrix for 3 iterations; its metrics lines as JSON text.
fn run(dir: &Path, name: &str, base: &str, extra: &str) -> Vec<String> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
    let out = dir.join(name);
    train(&cfg, &out, "3", false);
    train_cli::metrics(&out, &["param_hash"])
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

fn golden(prefix: &str) {
    let dir = scratch(prefix);
    let mut lines = Vec::new();
    for (name, base, extra) in matrix().into_iter().filter(|(n, ..)| n.starts_with(prefix)) {
        lines.push(format!("# {name}"));
        lines.extend(run(&dir, name, base, &extra));
    }
    insta::assert_snapshot!(format!("{prefix}_metrics"), lines.join("\n"));
}

#[test]
fn ah_runs_are_pinned() {
    golden("ah");
}

#[test]
fn hs_runs_are_pinned() {
    golden("hs");
}

/// The keys of eval.json that existed when these snapshots were taken (later keys are not
/// pinned here, so adding a metric does not move this snapshot).
const EVAL_KEYS: [&str; 23] = [
    "episodes",
    "mean_reward_per_agent_step",
    "return_by_group",
    "group_totals",
    "demographic_disparity",
    "dp",
    "dp_abs",
    "csp",
    "cf",
    "gini",
    "jain",
    "days",
    "patients_treated_mean",
    "patients_exited_mean",
    "swing_moves_mean",
    "routing_decisions_mean",
    "routing_outcome_fraction",
    "decisions_mean",
    "empty_dispatches_mean",
    "bounces_mean",
    "escort_wait_mean",
    "ward_wait_mean",
    "policy",
];

fn eval_pinned(dir: &Path, name: &str, base: &str, extra: &[&str]) -> String {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, base).unwrap();
    let out = dir.join(name);
    train(&cfg, &out, "2", false);
    let mut args = vec!["eval", out.to_str().unwrap(), "--episodes", "2"];
    args.extend_from_slice(extra);
    ok(&fairground(&args));
    let file = if extra.contains(&"--random") {
        "eval-random.json"
    } else if extra.contains(&"--greedy") {
        "eval-greedy.json"
    } else {
        "eval.json"
    };
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
    let kept: serde_json::Map<String, serde_json::Value> = EVAL_KEYS
        .iter()
        .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
        .collect();
    serde_json::to_string_pretty(&kept).unwrap()
}

#[test]
fn evaluations_are_pinned() {
    let dir = scratch("eval");
    let mut out = Vec::new();
    for (name, base, extra) in [
        ("ah", AH, &[][..]),
        ("ah-greedy", AH, &["--greedy"][..]),
        ("ah-random", AH, &["--random"][..]),
        ("hs", HS, &[][..]),
        ("hs-random", HS, &["--random"][..]),
    ] {
        out.push(format!("# {name}"));
        out.push(eval_pinned(&dir, name, base, extra));
    }
    insta::assert_snapshot!("evaluations", out.join("\n"));
}
