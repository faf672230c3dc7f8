//! Guarantees for `fairground train --backend gpu` (tiny sizes, a few seconds per run): on one
//! device, training is bit-reproducible end to end for AH and for HS (shared-trunk role
//! networks). Two runs with the same seed write identical `metrics.jsonl` files (every key but
//! the wall-clock ones, `trained_agent_steps_per_s` and `wall_s`) with identical parameter hashes,
//! their manifests record the gpu backend, and training moves the parameters. The same holds
//! for Fair-PPO (AH DP with the cross-group mix term, HS DP with the ledger credit): the
//! penalty's reductions and adjustments run in the shaders without breaking reproducibility;
//! and for the baselines (FEN's controllers and routed sub-policies, SOTO's two streams with
//! the team stream's welfare-sum advantages).
//! Without a GPU adapter each test prints a loud `SKIPPED` line; with
//! `FAIRGROUND_REQUIRE_GPU=1` a missing adapter fails it instead.

#[path = "common/train_cli.rs"]
mod train_cli;

use fairground_shaders::{BackendChoice, GpuContext};
use std::io::Write;
use std::path::{Path, PathBuf};
use train_cli::train;

/// True when a Vulkan adapter exists (the binary runs with `FAIRGROUND_BACKEND=vulkan`); else a
/// loud skip line, or a failure under `FAIRGROUND_REQUIRE_GPU=1`.
fn have_gpu(test: &str) -> bool {
    let probe = BackendChoice::parse("FAIRGROUND_BACKEND", "vulkan").and_then(GpuContext::new);
    match probe {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("FAIRGROUND_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("FAIRGROUND_REQUIRE_GPU=1 but: {e}");
            }
            // Past the harness's capture: a skip shows in every log, not only on failure.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no GPU adapter): {test} — install mesa-vulkan-drivers or set \
                 FAIRGROUND_REQUIRE_GPU=1 to fail ({e})"
            );
            false
        }
    }
}

fn scratch(name: &str, config: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("train-gpu-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, config).unwrap();
    (dir, cfg)
}

/// Two runs of `iterations` from `config`: identical metrics, recorded as gpu runs, moving.
fn two_gpu_runs_agree(name: &str, config: &str, keys: &[&str], iterations: u32) {
    let (dir, cfg) = scratch(name, config);
    let runs: Vec<Vec<serde_json::Value>> = ["a", "b"]
        .iter()
        .map(|r| {
            let run = dir.join(r);
            train(&cfg, &run, &iterations.to_string(), false);
            let manifest: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap())
                    .unwrap();
            assert_eq!(manifest["backend"], "gpu", "{name}: {manifest}");
            train_cli::metrics(&run, keys)
        })
        .collect();
    assert_eq!(runs[0].len(), iterations as usize, "{name}");
    assert_eq!(
        runs[0], runs[1],
        "{name}: same seed, gpu backend: same metrics"
    );
    let first = &runs[0][0]["param_hash"];
    let last = &runs[0][iterations as usize - 1]["param_hash"];
    assert!(first.is_string(), "{name}: {first}");
    assert_ne!(first, last, "{name}: training moves the parameters");
}

#[test]
fn ah_gpu_training_is_bit_reproducible() {
    if !have_gpu("ah_gpu_training_is_bit_reproducible") {
        return;
    }
    two_gpu_runs_agree(
        "ah",
        "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nhidden = [16, 8]\n\
         minibatch_size = 64\nepochs = 2\nbackend = \"gpu\"\nseed = 7\n",
        &[
            "iteration",
            "mean_reward_per_agent_step",
            "policy_loss",
            "param_hash",
        ],
        3,
    );
}

#[test]
fn hs_gpu_training_is_bit_reproducible() {
    if !have_gpu("hs_gpu_training_is_bit_reproducible") {
        return;
    }
    two_gpu_runs_agree(
        "hs",
        "env = \"hs\"\ninstances = 2\nrollout_steps = 30\nhs_patients = 12\n\
         hs_sim_minutes = 40\ntrunk = [16, 8]\nhidden = []\nminibatch_size = 32\nepochs = 2\n\
         backend = \"gpu\"\nseed = 7\n",
        &[
            "iteration",
            "patients_treated_mean",
            "mean_reward_per_decision",
            "policy_loss",
            "param_hash",
        ],
        3,
    );
}

#[test]
fn fair_ppo_gpu_training_is_bit_reproducible() {
    if !have_gpu("fair_ppo_gpu_training_is_bit_reproducible") {
        return;
    }
    let keys = ["iteration", "dp", "penalty", "policy_loss", "param_hash"];
    two_gpu_runs_agree(
        "ah-fair",
        "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nhidden = [16, 8]\n\
         minibatch_size = 64\nepochs = 2\nbackend = \"gpu\"\nseed = 7\n\
         algo = \"fair-ppo\"\nfairness = \"csp\"\n",
        &keys,
        3,
    );
    two_gpu_runs_agree(
        "hs-fair",
        "env = \"hs\"\ninstances = 2\nrollout_steps = 30\nhs_patients = 12\n\
         hs_sim_minutes = 40\ntrunk = [16, 8]\nhidden = []\nminibatch_size = 32\nepochs = 2\n\
         backend = \"gpu\"\nseed = 7\nalgo = \"fair-ppo\"\n",
        &keys,
        3,
    );
}

#[test]
fn baselines_gpu_training_is_bit_reproducible() {
    if !have_gpu("baselines_gpu_training_is_bit_reproducible") {
        return;
    }
    let base = "instances = 2\nrollout_steps = 12\nepisode_steps = 10\nminibatch_size = 64\n\
                epochs = 2\nbackend = \"gpu\"\nseed = 7\n";
    // FEN: the controllers act and train through the shaders' host-batch path, the
    // sub-policies through their stores, with truncated segments every 3 steps.
    two_gpu_runs_agree(
        "ah-fen",
        &format!(
            "algo = \"fen\"\n{base}[ppo]\nhidden = [16, 8]\n[fen]\nsubpolicies = 3\n\
             macro_steps = 3\ncontroller_hidden = [8]\n"
        ),
        &["iteration", "fen", "policy_loss", "param_hash"],
        3,
    );
    // SOTO: from the second iteration the team stream acts and trains on the welfare sum
    // written into its store.
    two_gpu_runs_agree(
        "ah-soto",
        &format!(
            "algo = \"soto\"\n{base}[ppo]\nhidden = [16, 8]\n[soto]\nsegment = 4\n\
             team_hidden = [8]\n"
        ),
        &["iteration", "soto", "policy_loss", "param_hash"],
        4,
    );
    // FEN on HS: ragged stores, a controller per role.
    two_gpu_runs_agree(
        "hs-fen",
        "algo = \"fen\"\nenv = \"hs\"\ninstances = 2\nrollout_steps = 30\nbackend = \"gpu\"\n\
         seed = 7\n[ppo]\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\nepochs = 2\n\
         [hs]\npatients = 12\nsim_minutes = 40\n[fen]\nsubpolicies = 2\nmacro_steps = 4\n\
         controller_hidden = [8]\n",
        &["iteration", "fen", "policy_loss", "param_hash"],
        3,
    );
    // SOTO on HS: team streams with their group critics (driven networks trained through the
    // host-batch path) and the welfare sum written into the team stores.
    two_gpu_runs_agree(
        "hs-soto",
        "algo = \"soto\"\nenv = \"hs\"\ninstances = 2\nrollout_steps = 30\nbackend = \"gpu\"\n\
         seed = 7\n[ppo]\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\nepochs = 2\n\
         [hs]\npatients = 12\nsim_minutes = 40\n[soto]\nsegment = 4\nteam_hidden = [8]\n",
        &["iteration", "soto", "policy_loss", "param_hash"],
        4,
    );
}
