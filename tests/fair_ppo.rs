//! Guarantees for Fair-PPO as users run it (`fairground train --algo fair-ppo`, cpu backend,
//! tiny sizes):
//! - alpha = beta = 0 reproduces the PPO run of the same seed bit for bit (every metrics key
//!   but the penalty's own, and every parameter hash) on AH (device store, clean) and on the
//!   AH reference profile's host path, and on HS; with alpha = beta = 0.5 the shaped penalty
//!   changes the parameters;
//! - `--penalty reference` on HS trains exactly like PPO (spec §4.5–4.7: the reference's λ is
//!   detached there, so its penalty has no gradient effect), and on AH it scales each pass's
//!   loss by exactly 1 or 2 (spec §4.1);
//! - every metrics line carries `dp`, `csp` (levels and sum) and `cf`, and Fair-PPO lines the
//!   penalty's terms; eval.json carries `dp`, `csp` and `cf` for PPO runs too (every eval
//!   plays the twin world or twin hospitals alongside); an HS counterfactual run pairs each
//!   hospital with its twin;
//! - an AH counterfactual run steps a twin world in lock-step: alpha = beta = 0 and the
//!   reference penalty (λ detached, spec §4.4) are PPO-with-twin bit for bit, metrics and
//!   eval.json carry `cf`;
//! - an HS counterfactual run whose instances are left at the reference profile's default of
//!   one runs one pair (hospital and twin);
//! - bad penalty input (alpha or beta out of range, cf with an odd number of HS instances)
//!   exits non-zero with one line naming the field and writes nothing.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fair-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const AH: &str = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nhidden = [16, 8]\n\
                  minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 7\n";
const AH_REFERENCE: &str = "profile = \"reference\"\nepisode_steps = 24\nhidden = [16, 8]\n\
                            minibatch_size = 64\nepochs = 2\nbackend = \"cpu\"\nseed = 7\n";
const HS: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 300\nhs_patients = 100\n\
                  hs_sim_minutes = 240\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\nepochs = 2\n\
                  backend = \"cpu\"\nseed = 7\n";

/// Train `base` + `extra` for 3 iterations into `dir/name`; return the metrics lines.
fn run(dir: &Path, name: &str, base: &str, extra: &str) -> Vec<serde_json::Value> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
    let out = dir.join(name);
    train(&cfg, &out, "3", false);
    train_cli::metrics(&out, &["dp", "csp", "cf", "penalty", "param_hash"])
}

/// The lines without the penalty's own key (what PPO has no counterpart for).
fn without_penalty(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("penalty");
            l
        })
        .collect()
}

/// `fairground eval RUN --episodes 2`; the eval.json it wrote.
fn eval_of(run: &Path) -> serde_json::Value {
    ok(&fairground(&[
        "eval",
        run.to_str().unwrap(),
        "--episodes",
        "2",
    ]));
    serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap()
}

fn hashes(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["param_hash"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ah_zero_weights_are_ppo_bit_for_bit_and_half_weights_are_not() {
    let dir = scratch("ah");
    let ppo = run(&dir, "ppo", AH, "");
    let zero = run(
        &dir,
        "zero",
        AH,
        "algo = \"fair-ppo\"\nalpha = 0.0\nbeta = 0.0\n",
    );
    let half = run(&dir, "half", AH, "algo = \"fair-ppo\"\n");
    let csp = run(&dir, "csp", AH, "algo = \"fair-ppo\"\nfairness = \"csp\"\n");
    assert_eq!(without_penalty(&zero), without_penalty(&ppo));
    assert!(ppo.iter().all(|l| l["penalty"].is_null()));
    assert_eq!(
        zero[0]["penalty"]["weights"],
        serde_json::json!([[1.0, 0.0], [1.0, 0.0]])
    );
    assert_ne!(
        hashes(&half)[2],
        hashes(&ppo)[2],
        "the penalty moves training"
    );
    for l in &half {
        // Side a: (1 − δ)·A + δ·Ā_partner; side b: (1 + δ)·A − δ·Ā_partner.
        let d = l["penalty"]["delta"][0].as_f64().unwrap();
        let w = &l["penalty"]["weights"];
        let close = |v: &serde_json::Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-6;
        assert!(close(&w[0][0], 1.0 - d) && close(&w[0][1], d));
        assert!(close(&w[1][0], 1.0 + d) && close(&w[1][1], -d));
        assert!(
            d.abs() <= 1.0 + 1e-9,
            "alpha + beta = 1 bounds |delta| by 1"
        );
    }
    // Same rollout in the first iteration: the same measured disparities.
    assert_eq!(half[0]["dp"], ppo[0]["dp"]);
    let c = &csp[0]["csp"];
    let sum = c["red"].as_f64().unwrap().abs() + c["blue"].as_f64().unwrap().abs();
    assert!((c["sum"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert_eq!(
        csp[0]["penalty"]["levels"],
        serde_json::json!(["red", "blue"])
    );
    assert_eq!(csp[0]["penalty"]["weights"].as_array().unwrap().len(), 4);

    // eval.json has the disparities for PPO runs too.
    let e = eval_of(&dir.join("ppo"));
    for key in ["dp", "dp_abs", "csp", "cf"] {
        assert!(e.get(key).is_some(), "eval.json lacks {key}");
    }
    assert!(e["dp"].is_f64() && e["csp"]["sum"].is_f64());
    // Every eval plays the twin world too: cf is measured for PPO runs as well.
    assert!(e["cf"].as_f64().unwrap() >= 0.0, "{e}");
}

#[test]
fn ah_reference_profile_zero_weights_are_ppo_and_the_reference_penalty_scales_by_1_or_2() {
    let dir = scratch("ah-reference");
    let ppo = run(&dir, "ppo", AH_REFERENCE, "");
    let zero = run(
        &dir,
        "zero",
        AH_REFERENCE,
        "algo = \"fair-ppo\"\nalpha = 0.0\nbeta = 0.0\n",
    );
    assert_eq!(without_penalty(&zero), without_penalty(&ppo));
    let reference = run(
        &dir,
        "reference",
        AH_REFERENCE,
        "algo = \"fair-ppo\"\npenalty = \"reference\"\n",
    );
    let mut doubled = 0;
    for l in &reference {
        let p = &l["penalty"];
        assert_eq!(p["mode"], "reference");
        // Cross-group passes: (0,0), (0,1), (1,1), (1,0).
        assert_eq!(p["loss_scale"].as_array().unwrap().len(), 4);
        for (s, pv) in p["loss_scale"]
            .as_array()
            .unwrap()
            .iter()
            .zip(p["p"].as_array().unwrap())
        {
            let (s, pv) = (s.as_f64().unwrap(), pv.as_f64().unwrap());
            if pv > 1e-6 {
                assert!((s - 2.0).abs() < 1e-6, "P > 0 doubles the pass: {s}");
                doubled += 1;
            } else if pv == 0.0 {
                assert_eq!(s, 1.0);
            }
        }
    }
    assert!(doubled > 0, "some pass had a penalty");
    assert_ne!(hashes(&reference)[2], hashes(&ppo)[2]);
}

#[test]
fn hs_zero_weights_and_the_reference_penalty_are_ppo_bit_for_bit() {
    let dir = scratch("hs");
    let ppo = run(&dir, "ppo", HS, "");
    let zero = run(
        &dir,
        "zero",
        HS,
        "algo = \"fair-ppo\"\nalpha = 0.0\nbeta = 0.0\n",
    );
    let half = run(
        &dir,
        "half",
        HS,
        "algo = \"fair-ppo\"\nfairness = \"csp\"\n",
    );
    let reference = run(
        &dir,
        "reference",
        HS,
        "algo = \"fair-ppo\"\npenalty = \"reference\"\n",
    );
    assert_eq!(without_penalty(&zero), without_penalty(&ppo));
    assert_eq!(
        without_penalty(&reference),
        without_penalty(&ppo),
        "λ detached: no gradient effect"
    );
    for l in &reference {
        assert_eq!(
            l["penalty"]["loss_scale"],
            serde_json::json!([1.0, 1.0, 1.0])
        );
        assert_eq!(l["penalty"]["p"].as_array().unwrap().len(), 3);
    }
    assert_eq!(
        half[0]["penalty"]["levels"],
        serde_json::json!(["low", "medium", "high"])
    );
    assert_ne!(
        hashes(&half)[2],
        hashes(&ppo)[2],
        "the penalty moves training"
    );
    // DP: the prospective gap is the ledger critic's, defined once patients finish inside a
    // rollout (240-minute days, 300 rounds a rollout).
    let dp = run(&dir, "dp", HS, "algo = \"fair-ppo\"\n");
    let pro: Vec<f64> = dp
        .iter()
        .filter_map(|l| l["penalty"]["pro"][0].as_f64())
        .collect();
    assert!(!pro.is_empty(), "no ledger-critic gap in {dp:?}");
    assert!(pro.iter().all(|g| g.is_finite()), "{pro:?}");
    assert_ne!(
        hashes(&dp)[2],
        hashes(&ppo)[2],
        "the DP credit moves training"
    );
    // A PPO run's eval plays every hospital with its twin: `days` factual days, cf measured.
    let e = eval_of(&dir.join("ppo"));
    assert_eq!(e["days"], 2);
    for key in ["dp", "dp_abs", "csp", "cf", "cf_total"] {
        assert!(e.get(key).is_some(), "eval.json lacks {key}");
    }
    // The reference's CF test metric, on sums of the pair's finished ledgers, is measured.
    assert!(e["cf_total"].as_f64().unwrap() >= 0.0, "{e}");
    // Escort travel, the empty-dispatch cap and the per-day means (issue 12, HS-5).
    let travel = e["escort_travel_mean"].as_f64().unwrap();
    assert!(travel > 0.0 && travel.is_finite(), "{e}");
    let by = &e["escort_travel_mean_by_helper"];
    let (nurse, robot) = (by["nurse"].as_f64().unwrap(), by["robot"].as_f64().unwrap());
    assert!(
        travel >= nurse.min(robot) && travel <= nurse.max(robot),
        "{e}"
    );
    assert!(e["empty_dispatch_cap_days"].as_u64().unwrap() <= 2, "{e}");
    assert!(e["empty_dispatch_cap_triggers_mean"].as_f64().unwrap() >= 0.0);
    let pd = &e["per_day"];
    let frac: f64 = ["perfect", "backup", "wrong"]
        .iter()
        .map(|k| pd["routing_outcome_fraction"][k].as_f64().unwrap())
        .sum();
    assert!(
        (frac - 1.0).abs() < 1e-9,
        "per-day outcome fractions sum to 1: {e}"
    );
    for key in ["escort_wait_mean", "escort_travel_mean", "ward_wait_mean"] {
        assert!(pd[key].as_f64().unwrap() >= 0.0, "per_day.{key}: {e}");
    }
}

#[test]
fn hs_counterfactual_runs_pair_every_hospital_with_its_twin() {
    let dir = scratch("hs-cf");
    let base = HS.replace("hs_sim_minutes = 240", "hs_sim_minutes = 20");
    let cf = run(
        &dir,
        "cf",
        &base,
        "algo = \"fair-ppo\"\nfairness = \"cf\"\n",
    );
    let p = &cf[2]["penalty"];
    assert_eq!(p["levels"], serde_json::json!(["pair0"]));
    // The ledger credit with the hospital as the cell: own weight 1, opposite credit weights.
    let w: Vec<Vec<f64>> = serde_json::from_value(p["weights"].clone()).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!((w[0][0], w[1][0]), (1.0, 1.0), "{w:?}");
    assert_eq!(w[0][1], -w[1][1], "{w:?}");
    let e = eval_of(&dir.join("cf"));
    assert!(e.get("cf").is_some() && e.get("dp").is_some() && e.get("csp").is_some());
}

#[test]
fn ah_counterfactual_runs_step_a_twin_world() {
    let dir = scratch("ah-cf");
    let ppo = run(&dir, "ppo", AH, "fairness = \"cf\"\n");
    let zero = run(
        &dir,
        "zero",
        AH,
        "fairness = \"cf\"\nalgo = \"fair-ppo\"\nalpha = 0.0\nbeta = 0.0\n",
    );
    let reference = run(
        &dir,
        "reference",
        AH,
        "fairness = \"cf\"\nalgo = \"fair-ppo\"\npenalty = \"reference\"\n",
    );
    let half = run(&dir, "half", AH, "fairness = \"cf\"\nalgo = \"fair-ppo\"\n");
    assert_eq!(without_penalty(&zero), without_penalty(&ppo));
    assert_eq!(without_penalty(&reference), without_penalty(&ppo));
    assert_ne!(
        hashes(&half)[2],
        hashes(&ppo)[2],
        "the penalty moves training"
    );
    for l in &ppo {
        assert!(l["cf"].as_f64().unwrap() >= 0.0, "cf is measured: {l}");
    }
    // Two instances of 40 agents: one comparison per agent.
    assert_eq!(half[0]["penalty"]["levels"], 80);
    let out = fairground(&[
        "eval",
        dir.join("half").to_str().unwrap(),
        "--episodes",
        "2",
    ]);
    ok(&out);
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("half/eval.json")).unwrap())
            .unwrap();
    assert!(e["cf"].as_f64().unwrap() >= 0.0);
}

#[test]
fn an_hs_reference_counterfactual_run_defaults_to_one_pair_of_hospitals() {
    let dir = scratch("hs-ref-cf");
    let cfg = dir.join("cf.toml");
    std::fs::write(
        &cfg,
        "env = \"hs\"\nprofile = \"reference\"\nhs_patients = 12\nhs_sim_minutes = 20\n\
         trunk = [16, 8]\nminibatch_size = 32\nepochs = 2\nbackend = \"cpu\"\n\
         fairness = \"cf\"\n",
    )
    .unwrap();
    let run = dir.join("run");
    train(&cfg, &run, "1", false);
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("instances = 2"), "{saved}");
}

#[test]
fn bad_penalty_input_names_the_field_and_writes_nothing() {
    let dir = scratch("bad");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--env", "ah", "--algo", "fair-ppo", "--alpha", "11"],
            "alpha",
        ),
        (
            &["--env", "ah", "--algo", "fair-ppo", "--beta", "-0.5"],
            "beta",
        ),
        (
            &["--env", "hs", "--fairness", "cf", "--instances", "3"],
            "instances",
        ),
    ];
    for (k, (args, field)) in cases.iter().enumerate() {
        let out_dir = dir.join(format!("run{k}"));
        let mut all = vec![
            "train",
            "--out",
            out_dir.to_str().unwrap(),
            "--backend",
            "cpu",
        ];
        all.extend_from_slice(args);
        let out = fairground(&all);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(field), "{err} names {field}");
        assert!(!out_dir.exists(), "nothing written for {args:?}");
    }
}
