//! Guarantees for `bench env --env hs --stats` (the per-day statistics the HS profiles are held
//! against the reference code with, tools/refcompare/):
//! - recording changes nothing: the trajectory hash is the plain bench's, and the samples are
//!   the same for 1 and 3 threads;
//! - exactly the first `--days` days of every instance are sampled, and each sample's
//!   per-role rewards are what that instance's acting roles received during that day;
//! - the summary is computed as documented (per-day means of ratios, days without the quantity
//!   left out, standard errors over days), checked on hand-made days;
//! - the CLI line carries the statistics, and AH-only options are refused for HS.

use fairground::bench::env_hs::{DaySample, run_days, run_uniform, stats_json};
use fairground_kernel::Profile;
use fairground_kernel::hs::{HsConfig, HsDayStats};
use std::process::Command;

fn config(profile: Profile) -> HsConfig {
    let mut c = HsConfig::new(3, 5, profile);
    c.params.n_patients = 40;
    c.params.sim_minutes = 180;
    c
}

#[test]
fn recording_changes_nothing_and_is_thread_invariant() {
    for profile in Profile::ALL {
        let plain = run_uniform(config(profile), 2, 1);
        let one = run_days(config(profile), 2, 1, true);
        let three = run_days(config(profile), 2, 3, true);
        assert_eq!(plain.hash, one.hash, "{profile}");
        assert_eq!(one.hash, three.hash, "{profile}");
        assert!(plain.samples.is_empty());
        // The first two days of each of the three instances, whatever ran ahead.
        assert_eq!(one.samples.len(), 6, "{profile}");
        let days = |r: &fairground::bench::env_hs::HsBenchResult| {
            let mut v: Vec<u32> = r.samples.iter().map(|s| s.stats.day).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(days(&one), vec![0, 0, 0, 1, 1, 1], "{profile}");
        assert_eq!(
            stats_json(&one.samples).to_string(),
            stats_json(&three.samples).to_string(),
            "{profile}"
        );
        for s in &one.samples {
            // Each role that decided got a reward stream; a role that never decided got 0.
            for k in 0..3 {
                if s.stats.decisions[k] == 0 {
                    assert_eq!(s.role_reward[k], 0.0, "{profile} {s:?}");
                }
            }
            assert!(s.stats.patients_treated >= s.stats.patients_exited);
        }
    }
}

fn day(edit: impl Fn(&mut HsDayStats)) -> DaySample {
    let mut s = HsDayStats::default();
    edit(&mut s);
    DaySample {
        stats: s,
        role_reward: [0.0; 3],
    }
}

fn mean(v: &serde_json::Value) -> f64 {
    v["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("no mean in {v}"))
}

#[test]
fn the_summary_is_per_day_means_with_standard_errors() {
    let mut a = day(|s| {
        s.escort_wait_sum = 30.0;
        s.escort_waits = 3; // 10 per escort
        s.escort_travel_sum = [4.0, 8.0];
        s.escort_travels = [1, 3]; // 12 / 4 = 3
        s.routing_decisions = [6, 3, 1];
        s.finished[0][0] = 2;
        s.ledger_finished[0][0] = 100.0; // none: 50
        s.finished[2][1] = 1;
        s.ledger_finished[2][1] = 20.0; // impaired: 20; medium priority: 20
        s.patients_treated = 3;
        s.patients_exited = 1;
        s.decisions = [10, 20, 2];
        s.empty_dispatch_cap_triggers = 1;
    });
    a.role_reward = [1.0, -2.0, 3.0];
    let mut b = day(|s| {
        s.escort_wait_sum = 20.0;
        s.escort_waits = 1; // 20
        s.routing_decisions = [0, 0, 4];
        s.finished[0][2] = 1;
        s.ledger_finished[0][2] = 10.0; // none only: no DP on this day
        s.patients_treated = 1;
        s.patients_exited = 1;
    });
    b.role_reward = [3.0, 0.0, 0.0];
    let j = stats_json(&[a, b]);
    assert_eq!(j["days"], 2);
    // Per-day means: (10 + 20) / 2, not the pooled 50 / 4.
    assert_eq!(mean(&j["escort_wait_mean"]), 15.0);
    // Standard error over two days: |10 − 20| / 2.
    assert_eq!(j["escort_wait_mean"]["se"].as_f64().unwrap(), 5.0);
    // A day without a dispatch is left out, not counted as 0.
    assert_eq!(mean(&j["escort_travel_mean"]), 3.0);
    assert_eq!(j["escort_travel_mean"]["se"].as_f64().unwrap(), 0.0);
    assert!(j["ward_wait_mean"].is_null(), "{j}");
    assert_eq!(mean(&j["routing_fraction"]["perfect"]), 0.3);
    assert_eq!(mean(&j["routing_fraction"]["wrong"]), (0.1 + 1.0) / 2.0);
    assert_eq!(mean(&j["reward_per_day"]["router"]), 2.0);
    assert_eq!(mean(&j["reward_per_day"]["dispatcher"]), -1.0);
    assert_eq!(mean(&j["decisions_per_day"]["dispatcher"]), 10.0);
    assert_eq!(mean(&j["ledger_mean_by_impairment"]["none"]), 30.0);
    assert_eq!(mean(&j["ledger_mean_by_impairment"]["high"]), 20.0);
    assert!(j["ledger_mean_by_impairment"]["low"].is_null(), "{j}");
    assert_eq!(mean(&j["ledger_mean_by_priority"]["low"]), 50.0);
    assert_eq!(mean(&j["ledger_mean_by_priority"]["medium"]), 20.0);
    assert_eq!(mean(&j["ledger_mean_by_priority"]["high"]), 10.0);
    // DP only on the day with both groups: 50 − 20.
    assert_eq!(mean(&j["ledger_dp"]), 30.0);
    assert_eq!(mean(&j["ledger_dp_abs"]), 30.0);
    assert_eq!(mean(&j["patients_finished"]), 2.0);
    assert_eq!(mean(&j["patients_exited"]), 1.0);
    assert_eq!(mean(&j["patients_done_not_exited"]), 1.0);
    assert_eq!(mean(&j["empty_dispatch_cap_days"]), 0.5);
}

#[test]
fn the_stats_line() {
    let bench = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fairground"))
            .args([
                "bench",
                "env",
                "--env",
                "hs",
                "--instances",
                "2",
                "--days",
                "1",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = bench(&["--profile", "reference", "--stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &line["stats"];
    assert_eq!(s["days"], 2, "{s}");
    for key in [
        "escort_wait_mean",
        "ledger_dp",
        "patients_finished",
        "swing_moves",
    ] {
        assert!(
            s[key]["mean"].is_f64() && s[key]["se"].is_f64(),
            "{key}: {s}"
        );
    }
    for role in ["router", "dispatcher", "manager"] {
        assert!(s["reward_per_day"][role]["mean"].is_f64(), "{role}: {s}");
        assert!(mean(&s["decisions_per_day"][role]) > 0.0, "{role}: {s}");
    }
    let plain = bench(&["--profile", "reference"]);
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(plain.get("stats").is_none());
    assert_eq!(plain["trajectory_hash"], line["trajectory_hash"]);
    let out = bench(&["--episode-steps", "10"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--episode-steps"), "{err}");
}
