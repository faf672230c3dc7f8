//! Guarantees for `bench env --env ah --stats` (the counters a profile is held against the
//! reference code with):
//! - recording changes nothing: the trajectory hash is the one of the plain step, for any
//!   thread count, and the counters are the same for 1 and 3 threads;
//! - every agent-step is accounted for exactly once: the executed (by action), exhausted,
//!   frozen and resting turns add up to the agent-steps; no more turns are exhausted than
//!   substituted; the paying outcomes' rewards add up to the rollout's reward;
//! - the reference's agents never move (spec §1.5 corrected), the clean profile's do;
//! - a world without sensitive agents has no resting turns and no sensitive reward; the line
//!   carries the statistics with their standard errors, and a bad fraction is refused; in a
//!   world of sensitive agents only, they rest on every even step they are not frozen.

use fairground::bench::env_ah::{random_rollout, rollout};
use fairground_kernel::Profile;
use fairground_kernel::ah::AhParams;
use std::process::Command;

fn params(profile: Profile) -> AhParams {
    let mut p = AhParams::new(profile);
    p.episode_steps = 120;
    p
}

#[test]
fn recording_changes_nothing_and_is_thread_invariant() {
    for profile in Profile::ALL {
        let plain = random_rollout(params(profile), 6, 300, 9, 1).unwrap();
        let one = rollout(params(profile), 6, 300, 9, 1, true).unwrap();
        let three = rollout(params(profile), 6, 300, 9, 3, true).unwrap();
        assert_eq!(plain.trajectory_hash, one.trajectory_hash, "{profile}");
        assert_eq!(one.trajectory_hash, three.trajectory_hash, "{profile}");
        assert_eq!(
            one.stats, three.stats,
            "{profile}: counters for 1 and 3 threads"
        );
    }
}

#[test]
fn every_agent_step_is_counted_once_and_reference_agents_never_move() {
    for profile in Profile::ALL {
        let r = rollout(params(profile), 4, 300, 3, 2, true).unwrap();
        let (st, _) = r.stats.unwrap();
        let t = st.total();
        assert_eq!(t.agent_steps, 4 * 300 * 40);
        let executed: u64 = t.executed.iter().sum();
        assert_eq!(
            executed + t.exhausted + t.frozen_turns + t.resting_turns,
            t.agent_steps,
            "{profile}: {t:?}"
        );
        assert!(
            t.substituted > 0 && t.exhausted <= t.substituted,
            "{profile}: {t:?}"
        );
        // 300 steps of 120-step episodes: 2 ended and the third closed at the end, per instance.
        assert_eq!(t.episodes, 4 * 3, "{profile}");
        let moves: u64 = t.executed[1..=4].iter().sum();
        if profile == Profile::Reference {
            assert_eq!(
                (moves, t.moved_agents),
                (0, 0),
                "reference agents never move"
            );
        } else {
            assert!(moves > 0 && t.moved_agents > 0, "clean agents move: {t:?}");
        }
        // The paying outcomes' rewards add up to the rollout's reward.
        let paid: u64 = t
            .outcomes
            .iter()
            .zip(fairground_kernel::ah::stats::OUTCOME_REWARD)
            .map(|(n, r)| n * r)
            .sum();
        assert_eq!(paid as f64, r.reward_sum, "{profile}");
    }
}

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args([
            "bench",
            "env",
            "--env",
            "ah",
            "--instances",
            "4",
            "--steps",
            "60",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_stats_line_and_the_sensitive_fraction() {
    let out = bench(&[
        "--profile",
        "reference",
        "--stats",
        "--sensitive-fraction",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &line["stats"];
    assert_eq!(line["sensitive_fraction"], 0.0);
    assert_eq!(s["resting_turn_fraction"]["mean"], 0.0, "{s}");
    assert_eq!(s["sensitive_reward_share"]["mean"], 0.0, "{s}");
    assert_eq!(s["players_moved_mean"]["mean"], 0.0, "{s}");
    for key in [
        "substituted_fraction",
        "exhausted_fraction",
        "ripe_fraction_mean",
    ] {
        assert!(
            s[key]["mean"].is_number() && s[key]["se"].is_number(),
            "{key}: {s}"
        );
    }
    assert_eq!(s["executed_fraction"].as_object().unwrap().len(), 9);
    assert_eq!(
        s["reward_per_agent_step_by_outcome"]
            .as_object()
            .unwrap()
            .len(),
        6
    );
    // All sensitive: every agent rests on even steps, and all reward is theirs.
    let out = bench(&[
        "--profile",
        "reference",
        "--stats",
        "--sensitive-fraction",
        "1",
    ]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &line["stats"];
    // (a frozen agent's turn counts as frozen, so resting is 0.5 less the frozen even steps)
    let (rest, frozen) = (
        s["resting_turn_fraction"]["mean"].as_f64().unwrap(),
        s["frozen_turn_fraction"]["mean"].as_f64().unwrap(),
    );
    assert!(rest <= 0.5 && rest + frozen >= 0.5 && rest > 0.3, "{s}");
    assert_eq!(s["sensitive_reward_share"]["mean"], 1.0, "{s}");
    // Without --stats the line is the plain bench's.
    let out = bench(&["--profile", "reference"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line.get("stats").is_none());
    let out = bench(&["--sensitive-fraction", "1.5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("sensitive_fraction"), "{err}");
    // AH's options are refused for HS, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args(["bench", "env", "--env", "hs", "--sensitive-fraction", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sensitive-fraction"));
}
