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
//!   deterministically; a value the user sets still wins.

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
        ("fen", "flat_gae"),
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
