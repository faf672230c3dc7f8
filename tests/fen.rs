//! Guarantees for FEN as users run it (`fairground train --algo fen`, AH, cpu backend, tiny
//! sizes):
//! - one sub-policy (no controller) with one model per group trains bit for bit like PPO of the
//!   same seed: every metrics key PPO has, and every parameter hash;
//! - with a controller: the same seed gives the same bits, 1 and 2 threads give the same bits,
//!   and a run stopped and resumed ends where a straight run ends (parameters, metrics, and the
//!   controllers' open macro steps carried in the checkpoint);
//! - every metrics line carries PPO's keys and `fen` (controller choice frequencies overall and
//!   split by agents below and above the mean utility, utilisation, CV, min and max utility);
//!   `eval.json` carries `fen` from FEN's own macro process;
//! - bad FEN values (M = 0, T = 0, ε ≤ 0, c ≤ 0) exit non-zero with one line naming the field
//!   and write nothing.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train, without, write_cfg};

fn scratch(name: &str) -> PathBuf {
    train_cli::scratch_dir(&format!("fen-{name}"))
}

/// Episodes of 10 steps in rollouts of 12, macro steps of 3: boundaries, truncated segments,
/// episode ends and rollout ends all fall at different steps.
const AH: &str = train_cli::TINY_AH;
const FEN: &str = "algo = \"fen\"\n";
const FEN_SMALL: &str = "[fen]\nsubpolicies = 3\nmacro_steps = 3\ncontroller_hidden = [8]\n";

fn run(dir: &Path, name: &str, text: &str, iterations: &str) -> Vec<serde_json::Value> {
    train_cli::run(
        dir,
        name,
        text,
        iterations,
        &["dp", "csp", "penalty", "param_hash"],
    )
}

#[test]
fn one_subpolicy_per_group_is_ppo_bit_for_bit() {
    let dir = scratch("is-ppo");
    let ppo = run(&dir, "ppo", AH, "3");
    let fen = run(
        &dir,
        "fen",
        &format!("{FEN}{AH}[fen]\nsubpolicies = 1\nshare = \"group\"\n"),
        "3",
    );
    assert!(fen.iter().all(|l| l["fen"].is_object()));
    assert_eq!(
        without(&fen, "fen"),
        ppo,
        "every key and parameter hash of PPO"
    );
}

#[test]
fn fen_is_deterministic_thread_invariant_and_resumes_bit_for_bit() {
    let dir = scratch("determinism");
    let text = format!("{FEN}{AH}{FEN_SMALL}");
    let a = run(&dir, "a", &text, "4");
    let b = run(&dir, "b", &text, "4");
    assert_eq!(a, b, "same seed, same bits");
    let one = run(
        &dir,
        "one",
        &text.replace("seed = 7", "seed = 7\nthreads = 1"),
        "4",
    );
    assert_eq!(a, one, "1 and 2 threads");
    // Two iterations, then resume to four.
    let cfg = write_cfg(&dir, "resumed", &text);
    let resumed = dir.join("resumed");
    train(&cfg, &resumed, "2", false);
    train(&cfg, &resumed, "4", true);
    assert_eq!(
        train_cli::metrics(&resumed, &["param_hash", "fen"]),
        a,
        "resumed = straight"
    );
    // The controller learned something: its choices are not all one sub-policy, and the
    // controller trained on completed macro steps.
    let last = &a[3]["fen"];
    assert!(
        last["controller_rows_trained"].as_u64().unwrap() > 0,
        "{last}"
    );
    let freq: Vec<f64> = last["choice_frequency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(freq.len(), 3);
    assert!((freq.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    for key in [
        "choice_frequency_below_mean",
        "choice_frequency_above_mean",
        "controller_reward_mean",
        "diversity_reward_mean",
        "utilisation",
        "cv",
        "min_utility",
        "max_utility",
    ] {
        assert!(last.get(key).is_some(), "fen.{key} in {last}");
    }
    assert!(
        a.iter().any(|l| l["fen"]["episodes"].as_u64().unwrap() > 0),
        "10-step episodes end inside 12-step rollouts"
    );
    // A different sub-policy count trains other networks.
    let two = run(
        &dir,
        "two",
        &text.replace("subpolicies = 3", "subpolicies = 2"),
        "4",
    );
    assert_ne!(two[3]["param_hash"], a[3]["param_hash"]);
}

#[test]
fn fen_eval_follows_the_macro_process_and_reports_fen() {
    let dir = scratch("eval");
    let text = format!("{FEN}{AH}{FEN_SMALL}");
    let cfg = write_cfg(&dir, "run", &text);
    let run_dir = dir.join("run");
    train(&cfg, &run_dir, "2", false);
    for greedy in [false, true] {
        let mut args = vec!["eval", run_dir.to_str().unwrap(), "--episodes", "2"];
        if greedy {
            args.push("--greedy");
        }
        let out = fairground(&args);
        ok(&out);
        let name = if greedy {
            "eval-greedy.json"
        } else {
            "eval.json"
        };
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join(name)).unwrap()).unwrap();
        let fen = &e["fen"];
        // The episodes the environment's numbers describe: 2 of the factual world, not its
        // counterfactual twin's too.
        assert_eq!(fen["episodes"], 2, "{fen}");
        assert_eq!(fen["episodes"], e["episodes"], "{e}");
        assert!(fen["utilisation"].as_f64().unwrap() >= 0.0);
        assert!(fen["choice_frequency"].as_array().unwrap().len() == 3);
        assert!(e["dp"].is_number() && e["gini"].is_number(), "{e}");
    }
    // 3 episodes on 2 instances end 4 together: FEN counts the 3 the environment keeps.
    ok(&fairground(&[
        "eval",
        run_dir.to_str().unwrap(),
        "--episodes",
        "3",
    ]));
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        (&e["episodes"], &e["fen"]["episodes"]),
        (&3.into(), &3.into()),
        "{e}"
    );
}

#[test]
fn bad_fen_values_are_refused_with_one_line() {
    let dir = scratch("bad");
    for (key, value) in [
        ("subpolicies", "0"),
        ("macro_steps", "0"),
        ("eps", "0.0"),
        ("eps", "-1.0"),
        ("c", "0.0"),
    ] {
        let cfg = write_cfg(&dir, "bad", &format!("{FEN}{AH}[fen]\n{key} = {value}\n"));
        let out_dir = dir.join("bad-run");
        let out = fairground(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{key} = {value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("fen.{key}")),
            "names the field: {err}"
        );
        assert!(!out_dir.exists(), "nothing written for {key} = {value}");
    }
}

/// What is not implemented yet is refused before anything is written, never trained as
/// something else: SOTO on HS, FEN and SOTO on AH's reference trainer path (its [REPRO] PPO
/// flags) and FEN with HS's reference ratio; with those flags off they train on the reference
/// environment.
#[test]
fn baselines_refuse_what_they_do_not_implement_yet() {
    let dir = scratch("not-yet");
    // (FEN's HS reference profile is the FEN-HS port: tests/reference_baselines.rs.)
    let cases: [(&str, &[&str], &str); 2] = [
        ("soto", &["--profile", "reference"], "profile"),
        (
            "soto",
            &["--env", "hs", "--profile", "reference"],
            "hs.pairwise_ratio",
        ),
    ];
    for (algo, args, field) in cases {
        let out_dir = dir.join(format!("{algo}-{}", field.replace('.', "-")));
        let mut argv = vec!["train", "--algo", algo, "--backend", "cpu"];
        argv.extend(args.iter().copied());
        argv.extend(["--out", out_dir.to_str().unwrap()]);
        let out = fairground(&argv);
        assert!(!out.status.success(), "{argv:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(field) && err.contains("not implemented"),
            "{err}"
        );
        assert!(!out_dir.exists(), "nothing written for {argv:?}");
    }
    // The PPO reference trainer's flags are refused for a baseline, one line naming the first.
    train_cli::refused(
        &dir,
        "soto-repro",
        "algo = \"soto\"\nbackend = \"cpu\"\n[ah]\naction_misalignment = true\n",
        "ah.action_misalignment",
    );
}

/// HS's tiny config (days of 40 minutes, 12 patients, so days end inside the runs).
const HS: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 30\nbackend = \"cpu\"\nseed = 7\n\
                  [ppo]\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\nepochs = 2\n\
                  [hs]\npatients = 12\nsim_minutes = 40\n";

/// FEN's HS adaptation (patient groups as utility holders, a controller per role): one
/// sub-policy is PPO bit for bit; with a controller, same seed same bits, 1 and 2 threads,
/// and an interrupted run resumes bit for bit (the controllers' open macro steps and the
/// rows waiting for their next decision are in the checkpoint).
#[test]
fn fen_on_hs_is_ppo_with_one_subpolicy_and_resumes_bit_for_bit() {
    let dir = scratch("hs");
    let ppo = run_hs(&dir, "ppo", HS, "3");
    let fen1 = run_hs(
        &dir,
        "fen1",
        &format!("algo = \"fen\"\n{HS}[fen]\nsubpolicies = 1\n"),
        "3",
    );
    assert_eq!(
        without(&fen1, "fen"),
        ppo,
        "every key and parameter hash of PPO"
    );
    let text = format!(
        "algo = \"fen\"\n{HS}[fen]\nsubpolicies = 2\nmacro_steps = 4\ncontroller_hidden = [8]\n"
    );
    let a = run_hs(&dir, "a", &text, "4");
    assert_eq!(a, run_hs(&dir, "b", &text, "4"), "same seed, same bits");
    let one = run_hs(
        &dir,
        "one",
        &text.replace("seed = 7", "seed = 7\nthreads = 1"),
        "4",
    );
    assert_eq!(a, one, "1 and 2 threads");
    assert_eq!(
        train_cli::resume_killed(&dir, "a", &text, 2, 4, &["fen"]),
        a,
        "resumed = straight"
    );
    let last = &a[3]["fen"];
    assert!(
        last["controller_rows_trained"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert!(
        a.iter()
            .any(|l| l["fen"]["episodes"].as_u64().unwrap() > 0
                && l["fen"]["utilisation"].is_number()),
        "days end inside the runs: {a:?}"
    );
}

fn run_hs(dir: &Path, name: &str, text: &str, iterations: &str) -> Vec<serde_json::Value> {
    train_cli::run(
        dir,
        name,
        text,
        iterations,
        &["dp", "penalty", "param_hash"],
    )
}
