//! Guarantees for SOTO as users run it (`fairground train --algo soto`, AH, cpu backend, tiny
//! sizes):
//! - the self stream only (β ≡ 1: `beta_proportion` so large that β never leaves 1 at this
//!   length) with one network pair per group trains bit for bit like PPO of the same seed:
//!   every metrics key PPO has, and every parameter hash;
//! - with both streams: same seed, same bits; 1 and 2 threads, the same bits; stopped and
//!   resumed, the run ends where a straight run ends; GGF and α-fair welfare train different
//!   networks;
//! - every metrics line carries `soto` (β, the team stream's share of decisions, the episodes'
//!   GGF and α-fair welfare, min and mean return, CV); evaluation plays the team stream only;
//! - bad SOTO values (ggf_base ≤ 1, α < 0, T = 0, p ≤ 0) exit non-zero with one line naming
//!   the field and write nothing;
//! - on HS (the labelled adaptation: patient groups as welfare units, per-group rewards and
//!   critics): the self stream only is PPO bit for bit in the self networks; with both streams
//!   same seed same bits, 1 and 2 threads, resumed = straight, the group critics train, GGF and
//!   α-fair differ; evaluation plays the team stream and reports `soto`.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train, without, write_cfg};

fn scratch(name: &str) -> PathBuf {
    train_cli::scratch_dir(&format!("soto-{name}"))
}

const AH: &str = train_cli::TINY_AH;
const SOTO: &str = "algo = \"soto\"\n";
const SOTO_SMALL: &str = "[soto]\nsegment = 4\nteam_hidden = [8]\nbeta_proportion = 0.5\n";

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
fn self_stream_only_is_ppo_bit_for_bit() {
    let dir = scratch("is-ppo");
    let ppo = run(&dir, "ppo", AH, "3");
    let soto = run(
        &dir,
        "soto",
        &format!("{SOTO}{AH}[soto]\nshare = \"group\"\nbeta_proportion = 1e9\nsegment = 4\n"),
        "3",
    );
    assert!(soto.iter().all(|l| l["soto"]["team_fraction"] == 0.0));
    // `param_hash` also covers the two team networks, which PPO does not have: compare the
    // self networks' tensors (parameters and Adam moments) in the last checkpoints instead.
    assert_eq!(
        without(&without(&soto, "soto"), "param_hash"),
        without(&ppo, "param_hash"),
        "every other key of PPO"
    );
    let ppo_t = tensors(&dir.join("ppo/checkpoints/ckpt-00000003.safetensors"));
    let soto_t = tensors(&dir.join("soto/checkpoints/ckpt-00000003.safetensors"));
    for g in 0..2 {
        for t in ["params", "adam_m1", "adam_m2"] {
            let name = format!("g{g}.{t}");
            assert_eq!(
                soto_t[&name], ppo_t[&name],
                "{name}: the self network is PPO's"
            );
        }
    }
    assert!(soto_t.contains_key("g3.params") && !ppo_t.contains_key("g2.params"));
}

/// A checkpoint's tensors by name (raw little-endian bytes).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
fn soto_is_deterministic_thread_invariant_and_resumes_bit_for_bit() {
    let dir = scratch("determinism");
    let text = format!("{SOTO}{AH}{SOTO_SMALL}");
    let a = run(&dir, "a", &text, "4");
    assert_eq!(a, run(&dir, "b", &text, "4"), "same seed, same bits");
    let one = run(
        &dir,
        "one",
        &text.replace("seed = 7", "seed = 7\nthreads = 1"),
        "4",
    );
    assert_eq!(a, one, "1 and 2 threads");
    // β's schedule is over the run's iterations, so an interrupted run (not an extended
    // one) must resume bit for bit: drop the checkpoints after iteration 2, as a kill would.
    assert_eq!(
        train_cli::resume_killed(&dir, "a", &text, 2, 4, &["param_hash", "soto"]),
        a,
        "resumed = straight"
    );
    // β falls from 1 to 0 over the first half of the run; the team stream takes over.
    let beta: Vec<f64> = a
        .iter()
        .map(|l| l["soto"]["beta"].as_f64().unwrap())
        .collect();
    assert_eq!(beta, [1.0, 0.5, 0.0, 0.0]);
    assert_eq!(a[0]["soto"]["team_fraction"], 0.0);
    assert_eq!(a[3]["soto"]["team_fraction"], 1.0);
    assert!(
        a.iter().any(|l| l["soto"]["episodes"].as_u64().unwrap() > 0
            && l["soto"]["ggf"].is_number()
            && l["soto"]["min_return"].is_number()),
        "episodes end inside the rollouts and report their welfare"
    );
    let alpha = run(&dir, "alpha", &format!("{text}welfare = \"alpha\"\n"), "4");
    assert_eq!(
        alpha[0]["param_hash"], a[0]["param_hash"],
        "β = 1: no team rows yet"
    );
    assert_ne!(
        alpha[3]["param_hash"], a[3]["param_hash"],
        "the welfare weights matter"
    );
}

#[test]
fn soto_eval_plays_the_team_stream() {
    let dir = scratch("eval");
    let cfg = write_cfg(&dir, "run", &format!("{SOTO}{AH}{SOTO_SMALL}"));
    let run_dir = dir.join("run");
    train(&cfg, &run_dir, "3", false);
    let out = fairground(&["eval", run_dir.to_str().unwrap(), "--episodes", "2"]);
    ok(&out);
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
    let s = &e["soto"];
    assert_eq!(s["team_fraction"], 1.0, "{s}");
    // The episodes the environment's numbers describe: 2 of the factual world, not its
    // counterfactual twin's too.
    assert_eq!(s["episodes"], 2, "{s}");
    assert_eq!(s["episodes"], e["episodes"], "{e}");
    assert!(s["ggf"].is_number() && s.get("beta").is_none(), "{s}");
    assert!(e["gini"].is_number() && e["dp"].is_number());
}

#[test]
fn bad_soto_values_are_refused_with_one_line() {
    let dir = scratch("bad");
    for (key, value) in [
        ("ggf_base", "1.0"),
        ("ggf_base", "0.5"),
        ("alpha", "-0.1"),
        ("segment", "0"),
        ("beta_proportion", "0.0"),
    ] {
        let cfg = write_cfg(&dir, "bad", &format!("{SOTO}{AH}[soto]\n{key} = {value}\n"));
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
            err.contains(&format!("soto.{key}")),
            "names the field: {err}"
        );
        assert!(!out_dir.exists(), "nothing written for {key} = {value}");
    }
}

/// Every documented option trains (three iterations, finite, its own parameters): FEN's
/// gossip consensus on a ring (and on the complete graph, where one round is the exact mean), the probability diversity reward, γ_c > 0,
/// no input normaliser, one model per group; SOTO's α-fair welfare, the full utility vector,
/// one pair per group.
#[test]
fn every_baseline_option_trains() {
    let dir = scratch("options");
    let fen = "algo = \"fen\"\n";
    let base_fen = "[fen]\nsubpolicies = 3\nmacro_steps = 3\ncontroller_hidden = [8]\n";
    let cases = [
        ("fen-base", format!("{fen}{AH}{base_fen}")),
        (
            "fen-gossip-ring",
            format!(
                "{fen}{AH}{base_fen}consensus = \"gossip\"\ngossip_ring = 1\ngossip_rounds = 3\n"
            ),
        ),
        (
            "fen-prob",
            format!("{fen}{AH}{base_fen}diversity_reward = \"prob\"\n"),
        ),
        (
            "fen-gamma",
            format!("{fen}{AH}{base_fen}controller_gamma = 0.9\ncontroller_lambda = 0.5\n"),
        ),
        (
            "fen-no-norm",
            format!("{fen}{AH}{base_fen}extra_obs_norm = false\n"),
        ),
        (
            "fen-group",
            format!("{fen}{AH}{base_fen}share = \"group\"\n"),
        ),
        ("soto-base", format!("{SOTO}{AH}{SOTO_SMALL}")),
        (
            "soto-alpha",
            format!("{SOTO}{AH}{SOTO_SMALL}welfare = \"alpha\"\nalpha = 2.0\n"),
        ),
        (
            "soto-full",
            format!("{SOTO}{AH}{SOTO_SMALL}full_vector = true\n"),
        ),
        (
            "soto-group",
            format!("{SOTO}{AH}{SOTO_SMALL}share = \"group\"\n"),
        ),
    ];
    let mut hashes = std::collections::BTreeMap::new();
    for (name, text) in &cases {
        let lines = run(&dir, name, text, "3");
        let last = &lines[2];
        assert!(
            last["policy_loss"].as_f64().unwrap().is_finite(),
            "{name}: {last}"
        );
        let h = last["param_hash"].as_str().unwrap().to_string();
        if let Some(other) = hashes.insert(h.clone(), *name) {
            panic!("{name} trained the same parameters as {other}");
        }
    }
    // The complete graph's one gossip round is the exact mean: the same run as `exact`.
    let exact = run(&dir, "fen-exact", &format!("{fen}{AH}{base_fen}"), "3");
    let complete = run(
        &dir,
        "fen-complete-1",
        &format!("{fen}{AH}{base_fen}consensus = \"gossip\"\ngossip_ring = 0\ngossip_rounds = 1\n"),
        "3",
    );
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a["fen"]["controller_reward_mean"].as_f64().unwrap()
            - b["fen"]["controller_reward_mean"].as_f64().unwrap())
        .abs()
            < 1e-6
    };
    assert!(
        close(&exact[0], &complete[0]),
        "{} vs {}",
        exact[0]["fen"],
        complete[0]["fen"]
    );
}

/// HS's tiny config (days of 40 minutes, 12 patients, so days end inside the runs).
const HS: &str = "env = \"hs\"\ninstances = 2\nrollout_steps = 30\nbackend = \"cpu\"\nseed = 7\n\
                  [ppo]\ntrunk = []\nhidden = [16, 8]\nminibatch_size = 32\nepochs = 2\n\
                  [hs]\npatients = 12\nsim_minutes = 40\n";

fn run_hs(dir: &Path, name: &str, text: &str, iterations: &str) -> Vec<serde_json::Value> {
    train_cli::run(
        dir,
        name,
        text,
        iterations,
        &["dp", "penalty", "param_hash"],
    )
}

#[test]
fn soto_on_hs_self_stream_is_ppo_and_both_streams_resume_bit_for_bit() {
    let dir = scratch("hs");
    let ppo = run_hs(&dir, "ppo", HS, "3");
    let only_self = run_hs(
        &dir,
        "self",
        &format!("{SOTO}{HS}[soto]\nbeta_proportion = 1e9\nsegment = 4\nteam_hidden = [8]\n"),
        "3",
    );
    assert!(only_self.iter().all(|l| l["soto"]["team_fraction"] == 0.0));
    assert_eq!(
        without(&without(&only_self, "soto"), "param_hash"),
        without(&ppo, "param_hash"),
        "every other key of PPO"
    );
    let ppo_t = tensors(&dir.join("ppo/checkpoints/ckpt-00000003.safetensors"));
    let self_t = tensors(&dir.join("self/checkpoints/ckpt-00000003.safetensors"));
    for role in 0..3 {
        for t in ["params", "adam_m1", "adam_m2"] {
            let name = format!("g{role}.{t}");
            assert_eq!(
                self_t[&name], ppo_t[&name],
                "{name}: the self network is PPO's"
            );
        }
    }
    // Three team networks and nine group critics beside the self networks.
    assert!(self_t.contains_key("g14.params") && !self_t.contains_key("g15.params"));

    let text = format!("{SOTO}{HS}[soto]\nsegment = 4\nteam_hidden = [8]\n");
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
        train_cli::resume_killed(&dir, "a", &text, 2, 4, &["dp", "penalty", "param_hash"]),
        a,
        "resumed = straight"
    );
    let beta: Vec<f64> = a
        .iter()
        .map(|l| l["soto"]["beta"].as_f64().unwrap())
        .collect();
    assert_eq!(beta, [1.0, 0.5, 0.0, 0.0]);
    assert_eq!(a[3]["soto"]["team_fraction"], 1.0);
    assert!(
        a[3]["soto"]["group_critic_value_loss"].is_number(),
        "{}",
        a[3]
    );
    assert!(
        a.iter().any(|l| l["soto"]["episodes"].as_u64().unwrap() > 0
            && l["soto"]["ggf"].is_number()
            && l["soto"]["min_utility"].is_number()),
        "days end inside the runs and report their groups' welfare: {a:?}"
    );
    let alpha = run_hs(&dir, "alpha", &format!("{text}welfare = \"alpha\"\n"), "4");
    assert_eq!(
        alpha[0]["param_hash"], a[0]["param_hash"],
        "β = 1: no team rows yet"
    );
    assert_ne!(
        alpha[3]["param_hash"], a[3]["param_hash"],
        "the welfare weights matter"
    );

    let out = fairground(&["eval", dir.join("a").to_str().unwrap(), "--episodes", "2"]);
    ok(&out);
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("a/eval.json")).unwrap()).unwrap();
    assert_eq!(eval["soto"]["team_fraction"], 1.0, "{}", eval["soto"]);
    assert!(eval["soto"]["ggf"].is_number(), "{eval}");
    assert_eq!(
        eval["soto"]["episodes"], eval["days"],
        "the kept days only: {eval}"
    );
}
