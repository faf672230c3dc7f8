//! Guarantees for `fairground train --profile reference` (cpu backend, tiny sizes):
//! - `--env ah --profile reference` and `--env hs --profile reference` run and write a run
//!   directory whose `config.toml` and `manifest.json` show the profile and every [REPRO] flag
//!   on (`ah.action_misalignment`, `ah.interleaved_gae`, `ah.standardized_returns`,
//!   `ah.cross_group_training`, `hs.pairwise_ratio`, `hs.whole_days`), sequential minibatches,
//!   and for AH one instance whose whole episode is one rollout;
//! - HS reference with its defaults trains one instance for exactly one whole day per iteration
//!   (one update per episode), however many decision rounds the day takes;
//! - the same seed gives an identical `metrics.jsonl` (every key but the wall-clock ones);
//! - a flag overridden in the config file is saved as given and changes the training (HS
//!   without the pairwise ratio ends with other parameters);
//! - HS counterfactual runs (PPO, Fair-PPO) follow the reference's CF script: standardised
//!   advantages and the value regressed on standardised advantage + V (`hs.standardized_returns`),
//!   where DP keeps raw advantages; a file's value is kept and the target changes training; FEN
//!   refuses the key in one line;
//! - HS reference runs train on the arrival-template curriculum and evaluate on fresh templates
//!   (`eval.json` says so and lists each day's peaks), except counterfactual runs; the key
//!   changes training, a file's value is kept, and unordered phases are refused in one line.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, refused};

/// No env or profile here: the command line brings them.
const TINY_AH: &str = "episode_steps = 20\nhidden = [16, 8]\nminibatch_size = 64\nepochs = 2\n\
                       backend = \"cpu\"\nseed = 3\n";
const TINY_HS: &str = "instances = 2\nrollout_steps = 40\nhs_patients = 12\nhs_sim_minutes = 40\n\
                       hidden = [16, 8]\nminibatch_size = 32\nepochs = 2\nbackend = \"cpu\"\n\
                       seed = 7\n";

const FLAGS: [&str; 6] = [
    "ah.action_misalignment",
    "ah.interleaved_gae",
    "ah.standardized_returns",
    "ah.cross_group_training",
    "hs.pairwise_ratio",
    "hs.whole_days",
];

fn setup(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

fn train(env: &str, cfg: &Path, run: &Path) {
    train_with(env, cfg, run, &[]);
}

fn train_with(env: &str, cfg: &Path, run: &Path, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--env",
        env,
        "--profile",
        "reference",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--iterations",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = fairground(&args);
    ok(&out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        run.to_str().unwrap(),
        "prints the run dir"
    );
}

/// `config.toml`'s `key = value` lines (values as written), keyed `section.key` inside a
/// `[section]` and `key` above the first.
fn saved_config(run: &Path) -> std::collections::HashMap<String, String> {
    let mut section = String::new();
    let mut out = std::collections::HashMap::new();
    for l in std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .lines()
    {
        let l = l.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((k, v)) = l.split_once(" = ") {
            out.insert(format!("{section}{}", k.trim()), v.trim().to_string());
        }
    }
    out
}

/// A dotted `section.key` of a JSON object.
fn dotted<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    key.split('.').fold(v, |v, k| &v[k])
}

fn manifest_config(run: &Path) -> serde_json::Value {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    m["config"].clone()
}

/// `fairground eval RUN --episodes E`, then its `eval.json`.
fn eval_json(run: &Path, episodes: &str) -> serde_json::Value {
    ok(&fairground(&[
        "eval",
        run.to_str().unwrap(),
        "--episodes",
        episodes,
    ]));
    serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap()
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    train_cli::metrics(run, &["iteration", "policy_loss", "param_hash"])
}

fn check_flags_on(run: &Path) {
    let cfg = saved_config(run);
    let manifest = manifest_config(run);
    assert_eq!(cfg["profile"], "\"reference\"");
    assert_eq!(manifest["profile"], "reference");
    for flag in FLAGS {
        assert_eq!(cfg[flag], "true", "config.toml: {flag}");
        assert_eq!(dotted(&manifest, flag), true, "manifest.json: {flag}");
    }
    assert_eq!(cfg["ppo.shuffle_minibatches"], "false");
}

#[test]
fn ah_reference_runs_shows_its_flags_and_is_deterministic() {
    let dir = setup("train-ref-ah", &[("tiny.toml", TINY_AH)]);
    let cfg = dir.join("tiny.toml");
    let (a, b) = (dir.join("a"), dir.join("b"));
    train("ah", &cfg, &a);
    train("ah", &cfg, &b);
    check_flags_on(&a);
    let saved = saved_config(&a);
    assert_eq!(saved["instances"], "1");
    assert_eq!(
        saved["rollout_steps"], "20",
        "one whole episode per rollout"
    );
    let ma = metrics(&a);
    assert_eq!(ma.len(), 2);
    assert_eq!(ma, metrics(&b), "same seed: identical metrics.jsonl");
    // Every rollout is exactly one episode.
    for line in &ma {
        assert_eq!(line["episodes_completed"], 1, "{line}");
        assert!(line["policy_loss"].as_f64().unwrap().is_finite());
    }
    assert_ne!(ma[0]["param_hash"], ma[1]["param_hash"], "training moves");
}

#[test]
fn hs_reference_runs_shows_its_flags_is_deterministic_and_the_flag_matters() {
    let off = format!("{TINY_HS}hs_pairwise_ratio = false\n");
    let dir = setup(
        "train-ref-hs",
        &[("tiny.toml", TINY_HS), ("off.toml", off.as_str())],
    );
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    train("hs", &dir.join("tiny.toml"), &a);
    train("hs", &dir.join("tiny.toml"), &b);
    check_flags_on(&a);
    assert_eq!(
        saved_config(&a)["ppo.normalize_advantages"],
        "false",
        "HS reference: raw advantages"
    );
    let ma = metrics(&a);
    assert_eq!(ma.len(), 2);
    assert_eq!(ma, metrics(&b), "same seed: identical metrics.jsonl");
    for line in &ma {
        assert!(line["policy_loss"].as_f64().unwrap().is_finite(), "{line}");
    }
    // Overridden in the file: saved as given, and the surrogate is another one.
    train("hs", &dir.join("off.toml"), &c);
    let saved = saved_config(&c);
    assert_eq!(saved["hs.pairwise_ratio"], "false");
    assert_eq!(saved["ah.interleaved_gae"], "true");
    let mc = metrics(&c);
    assert_ne!(
        ma[1]["param_hash"], mc[1]["param_hash"],
        "the pairwise ratio changes the updates"
    );
}

#[test]
fn hs_reference_counterfactual_runs_regress_on_standardised_advantages_as_the_cf_script() {
    // fair-PPO-HS/CF standardises each role's advantages and regresses the value on the
    // standardised advantage + V; the DP and CSP scripts keep raw advantages. A file that sets
    // either key keeps it, and the target changes the training.
    let raw = format!("{TINY_HS}[hs]\nstandardized_returns = false\n");
    let fen = format!("{TINY_HS}[hs]\nstandardized_returns = true\n");
    let dir = setup(
        "train-ref-hs-cf",
        &[
            ("tiny.toml", TINY_HS),
            ("raw.toml", raw.as_str()),
            ("fen.toml", fen.as_str()),
        ],
    );
    let cf = ["--algo", "fair-ppo", "--fairness", "cf"];
    let (a, b, c, d) = (dir.join("a"), dir.join("b"), dir.join("c"), dir.join("d"));
    train_with("hs", &dir.join("tiny.toml"), &a, &cf);
    train_with("hs", &dir.join("tiny.toml"), &b, &cf);
    let saved = saved_config(&a);
    assert_eq!(
        saved["ppo.normalize_advantages"], "true",
        "CF: standardised"
    );
    assert_eq!(
        saved["hs.standardized_returns"], "true",
        "CF: its value target"
    );
    assert_eq!(
        dotted(&manifest_config(&a), "hs.standardized_returns"),
        true
    );
    assert_eq!(
        metrics(&a),
        metrics(&b),
        "same seed: identical metrics.jsonl"
    );
    train_with("hs", &dir.join("raw.toml"), &c, &cf);
    let saved = saved_config(&c);
    assert_eq!(
        saved["hs.standardized_returns"], "false",
        "the file's value"
    );
    assert_eq!(saved["ppo.normalize_advantages"], "true");
    let (ma, mc) = (metrics(&a), metrics(&c));
    assert_ne!(
        ma[1]["param_hash"], mc[1]["param_hash"],
        "the value target changes the updates"
    );
    // DP keeps the raw advantages and returns.
    train_with("hs", &dir.join("tiny.toml"), &d, &["--algo", "fair-ppo"]);
    let saved = saved_config(&d);
    assert_eq!(saved["ppo.normalize_advantages"], "false");
    assert_eq!(saved["hs.standardized_returns"], "false");
    // FEN keeps its own returns: one line naming the key.
    let out = fairground(&[
        "train",
        "--env",
        "hs",
        "--algo",
        "fen",
        "--config",
        dir.join("fen.toml").to_str().unwrap(),
        "--out",
        dir.join("e").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("hs.standardized_returns"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!dir.join("e").exists(), "nothing written");
}

#[test]
fn hs_reference_trains_on_the_arrival_curriculum_and_tests_on_fresh_templates() {
    // The DP, CSP, FEN and SOTO scripts set a template from a pool of five every training day
    // and build a fresh one for every test day; the CF scripts never apply theirs.
    let off = format!("{TINY_HS}[hs]\narrival_curriculum = false\n");
    let on = format!("{TINY_HS}[hs]\narrival_curriculum = true\n");
    let bad = format!("{TINY_HS}[hs]\ncurriculum_phase_days = [600, 300]\n");
    let dir = setup(
        "train-ref-hs-curriculum",
        &[
            ("tiny.toml", TINY_HS),
            ("off.toml", off.as_str()),
            ("on.toml", on.as_str()),
        ],
    );
    let (a, b, c, d) = (dir.join("a"), dir.join("b"), dir.join("c"), dir.join("d"));
    train("hs", &dir.join("tiny.toml"), &a);
    let saved = saved_config(&a);
    assert_eq!(saved["hs.arrival_curriculum"], "true");
    assert_eq!(saved["hs.curriculum_templates"], "5");
    assert_eq!(saved["hs.curriculum_seed"], "42");
    assert_eq!(saved["hs.curriculum_phase_days"], "[300, 600]");
    let eval = eval_json(&a, "2");
    assert_eq!(eval["arrivals"]["source"], "fresh_template");
    let peaks = eval["arrivals"]["peaks_by_day"].as_array().unwrap();
    assert_eq!(peaks.len(), 2, "{peaks:?}");
    for day in peaks {
        assert_eq!(day.as_array().unwrap().len(), 2, "two peaks a day: {day}");
    }
    // The key changes training; the file's value is kept.
    train("hs", &dir.join("off.toml"), &b);
    assert_eq!(saved_config(&b)["hs.arrival_curriculum"], "false");
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_ne!(
        ma.last().unwrap()["param_hash"],
        mb.last().unwrap()["param_hash"],
        "the peaks change the days, hence the updates"
    );
    assert_eq!(eval_json(&b, "1")["arrivals"]["source"], "single_random");
    // Counterfactual runs keep the single random peak unless the file says otherwise.
    let cf = ["--fairness", "cf"];
    train_with("hs", &dir.join("tiny.toml"), &c, &cf);
    assert_eq!(saved_config(&c)["hs.arrival_curriculum"], "false");
    train_with("hs", &dir.join("on.toml"), &d, &cf);
    assert_eq!(saved_config(&d)["hs.arrival_curriculum"], "true");
    // Unordered phases: one line naming the key, nothing written.
    let bad = format!("env = \"hs\"\nprofile = \"reference\"\n{bad}");
    refused(&dir, "bad", &bad, "hs.curriculum_phase_days");
}

#[test]
fn hs_reference_trains_one_whole_day_per_iteration() {
    let tiny = "hs_patients = 12\nhs_sim_minutes = 40\ntrunk = [16, 8]\nhidden = []\n\
                minibatch_size = 32\nepochs = 1\nbackend = \"cpu\"\nseed = 5\n";
    let dir = setup("train-ref-hs-days", &[("tiny.toml", tiny)]);
    let run = dir.join("run");
    train("hs", &dir.join("tiny.toml"), &run);
    let saved = saved_config(&run);
    assert_eq!(saved["instances"], "1");
    assert_eq!(saved["hs.whole_days"], "true");
    let m = metrics(&run);
    assert_eq!(m.len(), 2);
    let mut before = 0;
    let mut rounds = Vec::new();
    for line in &m {
        assert_eq!(line["days_completed"], 1, "one day per iteration: {line}");
        let steps = line["env_steps"].as_u64().unwrap();
        rounds.push(steps - before);
        before = steps;
    }
    assert!(
        rounds.iter().all(|&r| r > 1 && r < 16_384),
        "each iteration took the rounds of one day: {rounds:?}"
    );
}
