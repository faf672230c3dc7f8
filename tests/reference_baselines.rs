//! Guarantees for the reference FEN and SOTO ports' named behaviours that exist so far
//! (baselines-spec tables A1.3, A2.3), as users run them (`fairground train`, cpu backend):
//! - `ppo.one_step_per_update` (F8, S7): with one minibatch per update it trains bit for bit like
//!   the plain update; with several (epochs × minibatches) every network takes exactly one Adam
//!   step per iteration and ends elsewhere; FEN's and SOTO's networks (the driven ones too) train
//!   with it and stay same-seed deterministic; on AH's reference host path it is refused with
//!   one line naming the field, before anything is written;
//! - FEN's reference flags (F1 `controller_plain_input`, F2 `stale_consensus` and
//!   `episode_end_reward`, F3 `unclipped_utilisation`, F6 `decision_logprob_reward`, F10
//!   `global_clock`, F13 `controller_tanh`, F9 `flat_gae`, F5 `maxlogit_baseline`, F7
//!   `kl_uniform`; F12
//!   `argmax_every_step` in evaluation): each trains
//!   something else than the clean FEN, deterministically, and all of them together resume bit
//!   for bit; F1 drops the controller's two extra inputs; on HS each is refused with one line
//!   (they are the FEN-AH port's);
//! - SOTO's (S1 `self_weighted_advantage`, S3 `deque_utility`, S5 `bush_fraction_input`, S6
//!   `episode_stream`, S10 `flat_gae`): likewise each changes training deterministically and all together resume bit
//!   for bit; on HS each is refused with one line;
//! - `--profile reference --algo fen` on AH is the FEN-AH port: every flag above on with its
//!   values (k = 2, T = 10, c = 1, ε = 1e-6, β_KL = 0.5, one step per update, one instance and
//!   one rollout per episode, the PPO trainer's [REPRO] flags off), and it trains
//!   deterministically; a value the user sets still wins;
//! - the FEN-HS port's behaviours (`hospital_clock`, F4 `episode_end_reward`, the HS
//!   `decision_logprob_reward` and `flat_gae`, F1, `standardized_controller`,
//!   `controller_trunk`, F14 `hs.pairwise_ratio`, `ppo.max_grad_norm`): each changes training
//!   deterministically and all together resume bit for bit; on AH the HS-only ones are refused
//!   with one line; `--profile reference --algo fen --env hs` is the port (its values, one
//!   controller choice every T rounds of the day trained at the day's end) and its test
//!   (`argmax_controller`, `eval_macro_steps`, `random_until_chosen`, each changing what the
//!   evaluation plays).

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::Path;
use train_cli::{fairground, run};

const BASE: &str = "instances = 2\nrollout_steps = 12\nbackend = \"cpu\"\nseed = 7\n\
                    [ah]\nepisode_steps = 10\n[ppo]\nhidden = [16, 8]\n";

/// Adam's step counter of every network in a checkpoint (`g<k>.adam_state`: β1^t, β2^t, t).
fn adam_steps(ckpt: &Path) -> Vec<f32> {
    let bytes = std::fs::read(ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out = Vec::new();
    for k in 0.. {
        let Ok(v) = st.tensor(&format!("g{k}.adam_state")) else {
            break;
        };
        let d = v.data();
        out.push(f32::from_le_bytes(d[8..12].try_into().unwrap()));
    }
    out
}

#[test]
fn one_step_per_update_is_one_adam_step_on_the_mean_gradient() {
    let dir = train_cli::scratch_dir("ref-one-step");
    let keys = ["param_hash"];
    // 2 instances × 40 agents × 12 steps = 480 rows per group network at most: one minibatch.
    let single = format!("{BASE}epochs = 1\nminibatch_size = 1024\n");
    let plain = run(&dir, "plain", &single, "2", &keys);
    let one = run(
        &dir,
        "one",
        &format!("{single}one_step_per_update = true\n"),
        "2",
        &keys,
    );
    assert_eq!(plain, one, "one minibatch: the same update, bit for bit");

    let several = format!("{BASE}epochs = 3\nminibatch_size = 64\n");
    let plain = run(&dir, "plain3", &several, "3", &keys);
    let text = format!("{several}one_step_per_update = true\n");
    let one = run(&dir, "one3", &text, "3", &keys);
    assert_ne!(plain[2]["param_hash"], one[2]["param_hash"]);
    assert_eq!(
        one,
        run(&dir, "one3b", &text, "3", &keys),
        "same seed, same bits"
    );
    assert_eq!(
        adam_steps(&dir.join("one3/checkpoints/ckpt-00000003.safetensors")),
        [3.0, 3.0],
        "one step per network per iteration"
    );
    assert!(
        adam_steps(&dir.join("plain3/checkpoints/ckpt-00000003.safetensors"))[0] > 3.0,
        "the plain update steps per minibatch"
    );

    // The baselines: FEN's sub-policies and controller, SOTO's streams.
    for (algo, extra, nets) in [
        (
            "fen",
            "[fen]\nsubpolicies = 2\nmacro_steps = 3\ncontroller_hidden = [8]\n",
            3,
        ),
        ("soto", "[soto]\nsegment = 4\nteam_hidden = [8]\n", 2),
    ] {
        let text = format!("algo = \"{algo}\"\n{text}{extra}");
        let a = run(&dir, algo, &text, "3", &keys);
        assert_eq!(
            a,
            run(&dir, &format!("{algo}-b"), &text, "3", &keys),
            "{algo}"
        );
        let steps = adam_steps(&dir.join(format!("{algo}/checkpoints/ckpt-00000003.safetensors")));
        assert!(
            steps.iter().all(|&s| s <= 3.0) && steps.iter().filter(|&&s| s > 0.0).count() >= nets,
            "{algo}: at most one step per network per iteration: {steps:?}"
        );
    }
}

#[test]
fn one_step_per_update_is_refused_on_the_ah_reference_host_path() {
    let dir = train_cli::scratch_dir("ref-one-step-refused");
    train_cli::refused(
        &dir,
        "cfg",
        "profile = \"reference\"\nbackend = \"cpu\"\n[ppo]\none_step_per_update = true\n",
        "ppo.one_step_per_update",
    );
}

const FEN: &str = "algo = \"fen\"\n";
const FEN_SMALL: &str = "[fen]\nsubpolicies = 2\nmacro_steps = 3\ncontroller_hidden = [8]\n";

#[test]
fn every_fen_reference_flag_changes_training_and_all_resume_bit_for_bit() {
    let dir = train_cli::scratch_dir("ref-fen-flags");
    let keys = ["param_hash", "fen"];
    let text = format!("{FEN}{BASE}epochs = 2\nminibatch_size = 64\n{FEN_SMALL}");
    let clean = run(&dir, "clean", &text, "3", &keys);
    let flags = [
        "controller_plain_input",
        "stale_consensus",
        "episode_end_reward",
        "unclipped_utilisation",
        "decision_logprob_reward",
        "global_clock",
        "controller_tanh",
        "flat_gae",
        "maxlogit_baseline",
        "kl_uniform",
    ];
    let set = |flag: &str| {
        if flag == "kl_uniform" {
            format!("{flag} = 0.5\n")
        } else {
            format!("{flag} = true\n")
        }
    };
    for flag in flags {
        let t = format!("{text}{}", set(flag));
        let a = run(&dir, flag, &t, "3", &keys);
        assert_ne!(
            a[2]["param_hash"], clean[2]["param_hash"],
            "{flag} changes nothing"
        );
        assert_eq!(
            a,
            run(&dir, &format!("{flag}-b"), &t, "3", &keys),
            "{flag}: same bits"
        );
    }
    // F1: the controller's input is the observation alone (10 floats, no δ, η): its first
    // layer has 10 inputs.
    let bytes =
        std::fs::read(dir.join("controller_plain_input/checkpoints/ckpt-00000003.safetensors"))
            .unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plain = st.tensor("g2.params").unwrap().shape()[0];
    let bytes = std::fs::read(dir.join("clean/checkpoints/ckpt-00000003.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let full = st.tensor("g2.params").unwrap().shape()[0];
    assert_eq!(
        full - plain,
        2 * 2 * 8,
        "two inputs fewer into the policy and value MLPs' 8 hidden units"
    );

    // All of them at once, interrupted after iteration 2 and resumed.
    let all: String = flags.iter().map(|f| set(f)).collect();
    let t = format!("{text}{all}argmax_every_step = true\n");
    let a = run(&dir, "all", &t, "4", &keys);
    assert_eq!(
        train_cli::resume_killed(&dir, "all", &t, 2, 4, &keys),
        a,
        "resumed = straight"
    );
    // F12: evaluation with the controller's argmax at every step runs and reports FEN.
    let out = fairground(&["eval", dir.join("all").to_str().unwrap(), "--episodes", "2"]);
    train_cli::ok(&out);
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("all/eval.json")).unwrap()).unwrap();
    assert!(
        eval["fen"]["choice_frequency"].is_array(),
        "{}",
        eval["fen"]
    );
}

#[test]
fn fen_ah_reference_flags_are_refused_on_hs() {
    let dir = train_cli::scratch_dir("ref-fen-hs");
    for (algo, flag) in [
        ("fen", "stale_consensus"),
        ("fen", "global_clock"),
        ("fen", "maxlogit_baseline"),
        ("soto", "self_weighted_advantage"),
        ("soto", "episode_stream"),
    ] {
        train_cli::refused(
            &dir,
            &format!("{algo}-{flag}"),
            &format!(
                "algo = \"{algo}\"\nenv = \"hs\"\nbackend = \"cpu\"\n[{algo}]\n{flag} = true\n"
            ),
            &format!("{algo}.{flag}"),
        );
    }
    // And the other way round: the FEN-HS port's macro process and test on AH; SOTO-HS with
    // the B × B ratio (S11's router is not built).
    for flag in [
        "hospital_clock = true",
        "random_until_chosen = true",
        "eval_macro_steps = 5",
    ] {
        let field = format!("fen.{}", flag.split(' ').next().unwrap());
        train_cli::refused(
            &dir,
            &field,
            &format!("algo = \"fen\"\nbackend = \"cpu\"\n[fen]\n{flag}\n"),
            &field,
        );
    }
    train_cli::refused(
        &dir,
        "soto-pairwise",
        "algo = \"soto\"\nenv = \"hs\"\nbackend = \"cpu\"\n[hs]\npairwise_ratio = true\n",
        "hs.pairwise_ratio",
    );
}

/// A small hospital (30 patients, 2 hours; one day per iteration under the port's whole days)
/// with FEN and the given lines of the top level and of each section.
fn hs_cfg(top: &str, ppo: &str, hs: &str, fen: &str) -> String {
    format!(
        "env = \"hs\"\nalgo = \"fen\"\nbackend = \"cpu\"\nseed = 7\n{top}\n[ppo]\n{ppo}\n\
         [hs]\npatients = 30\nsim_minutes = 120\n{hs}\n[fen]\n{fen}\n"
    )
}

#[test]
fn every_fen_hs_reference_flag_changes_training_and_all_resume_bit_for_bit() {
    let dir = train_cli::scratch_dir("ref-fen-hs-flags");
    let keys = ["param_hash", "fen"];
    let top = "instances = 2\nrollout_steps = 40";
    let ppo = "hidden = [16]\nepochs = 2\nminibatch_size = 32";
    let fen = "subpolicies = 3\nmacro_steps = 4";
    let clean = run(
        &dir,
        "clean",
        &hs_cfg(top, ppo, "", &format!("{fen}\ncontroller_hidden = [8]")),
        "3",
        &keys,
    );
    // (name, [ppo] line, [hs] line, [fen] lines)
    let flags = [
        ("hospital_clock", "", "", "hospital_clock = true"),
        ("episode_end_reward", "", "", "episode_end_reward = true"),
        (
            "decision_logprob_reward",
            "",
            "",
            "decision_logprob_reward = true\ndecision_entropy = 0.0",
        ),
        ("flat_gae", "", "", "flat_gae = true"),
        (
            "controller_plain_input",
            "",
            "",
            "controller_plain_input = true",
        ),
        (
            "standardized_controller",
            "",
            "",
            "standardized_controller = true",
        ),
        ("controller_trunk", "", "", "controller_trunk = [8]"),
        ("pairwise_ratio", "", "pairwise_ratio = true", ""),
        ("max_grad_norm", "max_grad_norm = 0.05", "", ""),
    ];
    for (name, p, h, f) in flags {
        // The controller trunk replaces the controller's hidden layers.
        let hidden = if name == "controller_trunk" {
            "controller_hidden = []"
        } else {
            "controller_hidden = [8]"
        };
        let t = hs_cfg(
            top,
            &format!("{ppo}\n{p}"),
            h,
            &format!("{fen}\n{hidden}\n{f}"),
        );
        let a = run(&dir, name, &t, "3", &keys);
        assert_ne!(
            a[2]["param_hash"], clean[2]["param_hash"],
            "{name} changes nothing"
        );
        assert_eq!(
            a,
            run(&dir, &format!("{name}-b"), &t, "3", &keys),
            "{name}: same bits"
        );
    }
    // All of them at once, interrupted after iteration 2 and resumed: the hospital clock, the
    // day's pending choices and the last choice are in the checkpoint.
    let t = hs_cfg(
        top,
        &format!("{ppo}\nmax_grad_norm = 0.05"),
        "pairwise_ratio = true",
        &format!(
            "{fen}\ncontroller_hidden = []\ncontroller_trunk = [8]\nhospital_clock = true\n\
             episode_end_reward = true\ndecision_logprob_reward = true\n\
             decision_entropy = 0.5\nflat_gae = true\ncontroller_plain_input = true\n\
             standardized_controller = true"
        ),
    );
    let a = run(&dir, "all", &t, "4", &keys);
    assert_eq!(
        train_cli::resume_killed(&dir, "all", &t, 2, 4, &keys),
        a,
        "resumed = straight"
    );
    assert!(
        a.iter()
            .any(|l| l["fen"]["diversity_reward_mean"].is_number())
    );
}

#[test]
fn the_fen_hs_reference_profile_is_the_ports_process() {
    let dir = train_cli::scratch_dir("ref-fen-hs-profile");
    let text = hs_cfg("profile = \"reference\"", "", "", "macro_steps = 7");
    let keys = ["param_hash", "fen", "decisions_by_role", "days_completed"];
    let a = run(&dir, "a", &text, "2", &keys);
    assert_eq!(a, run(&dir, "b", &text, "2", &keys), "same seed, same bits");
    let saved: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("a/config.toml")).unwrap()).unwrap();
    let (ppo, fen, hs) = (&saved["ppo"], &saved["fen"], &saved["hs"]);
    assert_eq!(saved["instances"].as_integer(), Some(1));
    assert_eq!(hs["pairwise_ratio"].as_bool(), Some(true), "F14");
    assert_eq!(hs["whole_days"].as_bool(), Some(true));
    assert_eq!(ppo["lr"].as_float(), Some(1e-5));
    assert_eq!(ppo["clip_coef"].as_float(), Some(0.1));
    assert_eq!(ppo["epochs"].as_integer(), Some(10));
    assert_eq!(ppo["minibatch_size"].as_integer(), Some(64));
    assert_eq!(ppo["max_grad_norm"].as_float(), Some(0.5));
    assert_eq!(ppo["shuffle_minibatches"].as_bool(), Some(false));
    assert_eq!(fen["subpolicies"].as_integer(), Some(4));
    assert_eq!(
        fen["macro_steps"].as_integer(),
        Some(7),
        "the user's value wins"
    );
    assert_eq!(fen["eval_macro_steps"].as_integer(), Some(25));
    assert_eq!(fen["c"].as_float(), Some(100.0));
    assert_eq!(fen["controller_gamma"].as_float(), Some(0.99));
    for flag in [
        "controller_plain_input",
        "episode_end_reward",
        "decision_logprob_reward",
        "flat_gae",
        "hospital_clock",
        "standardized_controller",
        "argmax_controller",
        "random_until_chosen",
    ] {
        assert_eq!(fen[flag].as_bool(), Some(true), "{flag}");
    }
    // The hospital clock: one controller choice every 7 rounds of the day, by the role deciding
    // then, all rewarded at the day's end and trained in its iteration (one day each).
    for line in &a {
        assert_eq!(line["days_completed"], 1, "{line}");
        let rounds: u64 = line["decisions_by_role"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            line["fen"]["controller_rows_trained"].as_u64(),
            Some(rounds.div_ceil(7)),
            "{line}"
        );
        assert_eq!(line["fen"]["episodes"], 1);
    }
    // The port's test: argmax at every 25th round, random actions until a role has chosen.
    let out = fairground(&["eval", dir.join("a").to_str().unwrap(), "--episodes", "2"]);
    train_cli::ok(&out);
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("a/eval.json")).unwrap()).unwrap();
    let fen = &eval["fen"];
    assert!(fen["units"].as_str().unwrap().contains("F4"), "{fen}");
    assert_eq!(fen["episodes"], 2, "the kept days, not the twins': {fen}");
    assert_eq!(fen["episodes"], eval["days"]);
    let freq = fen["choice_frequency"].as_array().unwrap();
    assert_eq!(freq.len(), 4);
    // Each eval flag alone changes what the evaluation plays.
    let base = std::fs::read(dir.join("a/eval.json")).unwrap();
    for flag in ["argmax_controller", "random_until_chosen"] {
        let t = hs_cfg(
            "profile = \"reference\"",
            "",
            "",
            &format!("macro_steps = 7\n{flag} = false"),
        );
        run(&dir, flag, &t, "2", &keys);
        let out = fairground(&["eval", dir.join(flag).to_str().unwrap(), "--episodes", "2"]);
        train_cli::ok(&out);
        let other = std::fs::read(dir.join(flag).join("eval.json")).unwrap();
        let strip = |b: &[u8]| {
            let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v.as_object_mut().unwrap().remove("run_dir");
            v
        };
        assert_ne!(
            strip(&base),
            strip(&other),
            "{flag} changes nothing in evaluation"
        );
    }
}

#[test]
fn every_soto_reference_flag_changes_training_and_all_resume_bit_for_bit() {
    let dir = train_cli::scratch_dir("ref-soto-flags");
    let keys = ["param_hash", "soto"];
    let text = format!(
        "algo = \"soto\"\n{BASE}epochs = 2\nminibatch_size = 64\n\
         [soto]\nsegment = 4\nteam_hidden = [8]\n"
    );
    let clean = run(&dir, "clean", &text, "4", &keys);
    let flags = [
        "self_weighted_advantage",
        "deque_utility",
        "episode_stream",
        "flat_gae",
        "bush_fraction_input",
    ];
    for flag in flags {
        let t = format!("{text}{flag} = true\n");
        let a = run(&dir, flag, &t, "4", &keys);
        assert_ne!(
            a[3]["param_hash"], clean[3]["param_hash"],
            "{flag} changes nothing"
        );
        assert_eq!(
            a,
            run(&dir, &format!("{flag}-b"), &t, "4", &keys),
            "{flag}: same bits"
        );
    }
    let all: String = flags.iter().map(|f| format!("{f} = true\n")).collect();
    let t = format!("{text}{all}welfare = \"alpha\"\nalpha = 2.0\n");
    let a = run(&dir, "all", &t, "4", &keys);
    assert_eq!(
        train_cli::resume_killed(&dir, "all", &t, 2, 4, &keys),
        a,
        "resumed = straight"
    );
}

#[test]
fn the_fen_reference_profile_is_the_ports_flags_and_values() {
    let dir = train_cli::scratch_dir("ref-fen-profile");
    let text = "algo = \"fen\"\nprofile = \"reference\"\nbackend = \"cpu\"\nseed = 3\n\
                [ah]\nepisode_steps = 20\n[ppo]\nhidden = [16, 8]\n[fen]\nmacro_steps = 5\n";
    let keys = ["param_hash", "fen"];
    let a = run(&dir, "a", text, "2", &keys);
    assert_eq!(a, run(&dir, "b", text, "2", &keys), "same seed, same bits");
    let saved: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("a/config.toml")).unwrap()).unwrap();
    let (ppo, fen, ah) = (&saved["ppo"], &saved["fen"], &saved["ah"]);
    assert_eq!(saved["instances"].as_integer(), Some(1));
    assert_eq!(
        saved["rollout_steps"].as_integer(),
        Some(20),
        "one rollout per episode"
    );
    assert_eq!(ppo["one_step_per_update"].as_bool(), Some(true));
    assert_eq!(ppo["clip_coef"].as_float(), Some(0.1));
    assert_eq!(ah["action_misalignment"].as_bool(), Some(false));
    assert_eq!(fen["subpolicies"].as_integer(), Some(2));
    assert_eq!(
        fen["macro_steps"].as_integer(),
        Some(5),
        "the user's value wins"
    );
    for flag in [
        "controller_tanh",
        "controller_plain_input",
        "unclipped_utilisation",
        "stale_consensus",
        "episode_end_reward",
        "decision_logprob_reward",
        "flat_gae",
        "maxlogit_baseline",
        "global_clock",
        "argmax_every_step",
    ] {
        assert_eq!(fen[flag].as_bool(), Some(true), "{flag}");
    }
    assert_eq!(fen["kl_uniform"].as_float(), Some(0.5));
    // One episode per iteration: every controller row of it trains at its end.
    assert_eq!(a[0]["fen"]["episodes"], 1);
    assert_eq!(a[0]["fen"]["controller_rows_trained"], 40 * 4);
}
