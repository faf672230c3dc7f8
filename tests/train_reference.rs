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
//!   changes training, a file's value is kept, and unordered phases are refused in one line;
//! - HS counterfactual reference runs play the CF scripts' protocol: one agent set per world
//!   (six networks, `hs.cf_world_agents`; not with the shaped penalty, whose credit trains one
//!   router) and both worlds' days ending when either's does (`hs.cf_days_end_together`), in
//!   training and eval; deterministic, resumable bit for bit; the clean profile keeps shared
//!   networks and whole days; the keys are refused outside HS CF runs in one line;
//! - AH counterfactual reference runs play the reference's worlds (`ah.cf_reference_worlds`:
//!   all able by network 0, all sensitive by network 1): deterministic, resumable, `eval.json`
//!   reports world-0 − world-1 totals (`cf_total`), `eval --one-layout` the one-layout test;
//!   the file's value and the clean profile keep the twin; refusals in one line.

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

#[test]
fn hs_reference_counterfactual_runs_play_the_cf_scripts_protocol() {
    // fair-PPO-HS/CF/train.py and test.py: one agent set per world, both worlds stepped until
    // EITHER world's day is done (the slower one cut short).
    let base = format!(
        "env = \"hs\"\nprofile = \"reference\"\nalgo = \"fair-ppo\"\nfairness = \"cf\"\n\
         penalty = \"reference\"\n{TINY_HS}"
    );
    let dir = train_cli::scratch_dir("train-ref-hs-cf-protocol");
    let keys = ["iteration", "param_hash", "penalty"];
    let a = train_cli::run(&dir, "a", &base, "3", &keys);
    let b = train_cli::run(&dir, "b", &base, "3", &keys);
    assert_eq!(a, b, "same seed: identical metrics.jsonl");
    let saved = saved_config(&dir.join("a"));
    assert_eq!(saved["hs.cf_days_end_together"], "true");
    assert_eq!(saved["hs.cf_world_agents"], "true");
    // Six networks: the reference penalty reports P for each world's three roles.
    let roles = a[0]["penalty"]["roles"].as_array().unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "router",
            "dispatcher",
            "manager",
            "router_twin",
            "dispatcher_twin",
            "manager_twin"
        ]
    );
    assert_eq!(a[0]["penalty"]["p"].as_array().unwrap().len(), 6);
    // A killed run resumes bit for bit with its six networks.
    let resumed = train_cli::resume_killed(&dir, "a", &base, 1, 3, &keys);
    assert_eq!(resumed, a, "resume after iteration 1");
    // The eval plays the same protocol: every pair-day ends together, one world cut short.
    let eval = eval_json(&dir.join("a"), "4");
    let pd = &eval["pair_days"];
    assert_eq!(pd["mode"], "either_ends", "{pd}");
    assert_eq!(pd["days_played"], 8, "{pd}");
    let cut = pd["days_cut_short"].as_u64().unwrap();
    assert!(
        (1..=4).contains(&cut),
        "at most one world of a pair is cut: {pd}"
    );
    assert!(
        pd["cut_short_end_minute_mean"].as_f64().unwrap() < 40.0,
        "{pd}"
    );
    assert!(
        eval["cf_total"].is_f64(),
        "the reference's CF gap on the cut days"
    );
    // Shared networks (the file's value) train otherwise.
    let shared = format!("{base}[hs]\ncf_world_agents = false\n");
    let c = train_cli::run(&dir, "c", &shared, "3", &keys);
    assert_eq!(saved_config(&dir.join("c"))["hs.cf_world_agents"], "false");
    assert_eq!(c[0]["penalty"]["p"].as_array().unwrap().len(), 3);
    assert_ne!(a[2]["param_hash"], c[2]["param_hash"]);
    // Fair-PPO's shaped penalty credits one router: shared networks, days still end together.
    let shaped = base.replace("penalty = \"reference\"\n", "");
    train_cli::run(&dir, "d", &shaped, "1", &["param_hash"]);
    let saved = saved_config(&dir.join("d"));
    assert_eq!(saved["hs.cf_world_agents"], "false");
    assert_eq!(saved["hs.cf_days_end_together"], "true");
    // The clean profile keeps fairground's counterfactual: shared networks, whole days.
    let clean = base.replace("profile = \"reference\"\n", "");
    train_cli::run(&dir, "e", &clean, "1", &["param_hash"]);
    let saved = saved_config(&dir.join("e"));
    assert_eq!(saved["hs.cf_world_agents"], "false");
    assert_eq!(saved["hs.cf_days_end_together"], "false");
    let pd = eval_json(&dir.join("e"), "2")["pair_days"].clone();
    assert_eq!(
        (pd["mode"].as_str(), pd["days_cut_short"].as_u64()),
        (Some("full"), Some(0))
    );
    // Refused in one line, nothing written: the keys outside HS counterfactual runs, world
    // agents with the shaped penalty or with FEN.
    let dp = base.replace("fairness = \"cf\"\n", "");
    refused(
        &dir,
        "dp",
        &format!("{dp}[hs]\ncf_world_agents = true\n"),
        "hs.cf_world_agents",
    );
    refused(
        &dir,
        "ah",
        "profile = \"reference\"\nfairness = \"cf\"\n[hs]\ncf_days_end_together = true\n",
        "hs.cf_days_end_together",
    );
    refused(
        &dir,
        "shaped",
        &format!("{shaped}[hs]\ncf_world_agents = true\n"),
        "hs.cf_world_agents",
    );
}

#[test]
fn ah_reference_counterfactual_runs_play_the_reference_worlds() {
    // Spec §4.4: an all-able world played by network 0 and an all-sensitive world by network
    // 1, independent layouts, own-world memories; the test metric is world-0 total − world-1
    // total, optionally with every test game from one layout.
    let base = "profile = \"reference\"\nalgo = \"fair-ppo\"\nfairness = \"cf\"\n\
                penalty = \"reference\"\nepisode_steps = 20\nhidden = [16, 8]\n\
                minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 3\n";
    let dir = train_cli::scratch_dir("train-ref-ah-cf-worlds");
    let keys = ["iteration", "param_hash", "penalty"];
    let a = train_cli::run(&dir, "a", base, "2", &keys);
    assert_eq!(
        a,
        train_cli::run(&dir, "b", base, "2", &keys),
        "same seed, same lines"
    );
    assert_eq!(
        saved_config(&dir.join("a"))["ah.cf_reference_worlds"],
        "true"
    );
    // The all-able world has no sensitive agents: its per-group return says so.
    assert!(
        a[0]["return_by_group"]["sensitive"].as_f64().unwrap_or(0.0) == 0.0,
        "{}",
        a[0]
    );
    let resumed = train_cli::resume_killed(&dir, "a", base, 1, 2, &keys);
    assert_eq!(resumed, a, "resume after iteration 1");
    let eval = eval_json(&dir.join("a"), "3");
    let w = &eval["cf_worlds"];
    assert_eq!(w["kind"], "reference", "{w}");
    assert_eq!(w["one_layout"], false, "{w}");
    let totals: Vec<f64> = w["world_totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let cf_total = eval["cf_total"].as_f64().unwrap();
    assert!((cf_total - (totals[0] - totals[1])).abs() < 1e-9, "{eval}");
    assert!(eval["cf_total_abs"].as_f64().unwrap() >= cf_total.abs() - 1e-9);
    assert!(
        eval["dp"].is_null(),
        "no disparity inside an all-able world: {}",
        eval["dp"]
    );
    // The reference profile's tables report group totals (spec §9 item 29).
    assert_eq!(
        eval["table_keys"],
        serde_json::json!(["dp_total", "csp_total"])
    );
    // The one-layout test.
    ok(&fairground(&[
        "eval",
        dir.join("a").to_str().unwrap(),
        "--episodes",
        "2",
        "--one-layout",
    ]));
    let one: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("a/eval.json")).unwrap()).unwrap();
    assert_eq!(one["cf_worlds"]["one_layout"], true);
    // The file's value is kept: the twin, as the clean profile's counterfactual.
    let twin = format!("{base}[ah]\ncf_reference_worlds = false\n");
    let c = train_cli::run(&dir, "c", &twin, "2", &keys);
    assert_ne!(a[1]["param_hash"], c[1]["param_hash"]);
    assert_eq!(eval_json(&dir.join("c"), "2")["cf_worlds"]["kind"], "twin");
    let clean = base.replace("profile = \"reference\"\n", "");
    train_cli::run(&dir, "d", &clean, "1", &["param_hash"]);
    assert_eq!(
        saved_config(&dir.join("d"))["ah.cf_reference_worlds"],
        "false"
    );
    // Refused in one line: outside AH counterfactual runs; --one-layout on HS.
    let dp = base.replace("fairness = \"cf\"\n", "");
    refused(
        &dir,
        "dp",
        &format!("{dp}[ah]\ncf_reference_worlds = true\n"),
        "ah.cf_reference_worlds",
    );
    let hs = format!("env = \"hs\"\n{TINY_HS}");
    let h = dir.join("hs");
    train_cli::train(&train_cli::write_cfg(&dir, "hs", &hs), &h, "1", false);
    let out = fairground(&[
        "eval",
        h.to_str().unwrap(),
        "--episodes",
        "1",
        "--one-layout",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--one-layout"), "{err}");
}
