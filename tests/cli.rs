//! Guarantees for the `fairground` binary as users run it:
//! - `bench env --env ah` prints exactly one JSON line with the documented keys, and its
//!   `trajectory_hash` depends on (seed, instances, steps, profile) but not on `--threads`;
//! - bad arguments exit non-zero with one line on stderr that names the argument and what is
//!   allowed, and print nothing on stdout.

use std::process::Command;

fn fairground(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fairground"))
        .args(args)
        .output()
        .expect("run fairground")
}

fn bench_line(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "env",
        "--env",
        "ah",
        "--instances",
        "8",
        "--steps",
        "50",
    ];
    args.extend_from_slice(extra);
    let out = fairground(&args);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout}");
    serde_json::from_str(lines[0]).expect("a JSON object")
}

#[test]
fn bench_env_ah_prints_one_json_line_with_a_thread_independent_hash() {
    let one = bench_line(&["--threads", "1", "--profile", "reference"]);
    for key in [
        "env",
        "profile",
        "instances",
        "steps",
        "threads",
        "agent_steps_per_s",
        "env_steps_per_s",
        "mean_reward_per_agent_step",
        "trajectory_hash",
    ] {
        assert!(one.get(key).is_some(), "missing key {key} in {one}");
    }
    assert_eq!(one["env"], "ah");
    assert_eq!(one["profile"], "reference");
    assert!(one["agent_steps_per_s"].as_f64().unwrap() > 0.0);
    let two = bench_line(&["--threads", "2", "--profile", "reference"]);
    assert_eq!(one["trajectory_hash"], two["trajectory_hash"]);
    assert_eq!(
        one["mean_reward_per_agent_step"],
        two["mean_reward_per_agent_step"]
    );
    let clean = bench_line(&["--threads", "1", "--profile", "clean"]);
    assert_ne!(
        one["trajectory_hash"], clean["trajectory_hash"],
        "the profile matters"
    );
    let other_seed = bench_line(&["--threads", "1", "--profile", "reference", "--seed", "1"]);
    assert_ne!(
        one["trajectory_hash"], other_seed["trajectory_hash"],
        "the seed matters"
    );
}

#[test]
fn bad_arguments_fail_with_one_line_naming_the_argument() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["bench", "env", "--env", "ah", "--instances", "0"],
            "--instances",
        ),
        (
            &["bench", "env", "--env", "ah", "--profile", "fast"],
            "allowed: clean, reference",
        ),
        (
            &["bench", "env", "--env", "ah", "--threads", "65"],
            "--threads",
        ),
        (
            &["bench", "env", "--env", "xx"],
            "[possible values: ah, hs]",
        ),
        (&["bench", "env", "--env", "ah", "--steps", "-3"], "--steps"),
    ];
    for (args, needle) in cases {
        let out = fairground(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {stderr:?}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} should mention {needle}"
        );
    }
}
