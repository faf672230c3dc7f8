//! `fairground replay`, driven as a user runs it. Guarantees:
//!
//! - a recorded episode (AH) or day (HS) re-simulates from the file alone (`--check`, exit 0),
//!   and it is the episode `fairground eval --episodes 1` plays (same returns, same decisions);
//! - the replay of a fixed tiny run is pinned (insta snapshot of its identity, its outcome and
//!   digests of its actions and state digests), AH and HS;
//! - recording with 1 and with 2 kernel threads gives the same actions and digests, and a file
//!   checks on any thread count;
//! - a file that is not a replay, of another format version, truncated or with one flipped byte
//!   is refused with one line naming why (exit 1); a file whose checksum was recomputed after an
//!   action was changed re-simulates to a MISMATCH at that round, naming the columns (exit 1);
//! - `--checkpoint N` replays that checkpoint's networks; a missing one, or a directory that is
//!   not a run, is refused with one line.

#[path = "common/train_cli.rs"]
mod train_cli;

use fairground_kernel::hash::TrajectoryHash;
use fairground_trainer::replay::file::Replay;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, scratch_dir, train, write_cfg};

const TINY_AH: &str = train_cli::TINY_AH_ONE_THREAD;
const TINY_HS: &str = train_cli::TINY_HS_ONE_THREAD;

/// A tiny run of `text` trained for 2 iterations in `dir/run`.
fn tiny_run(dir: &Path, text: &str) -> PathBuf {
    let cfg = write_cfg(dir, "tiny", text);
    let run = dir.join("run");
    train(&cfg, &run, "2", false);
    run
}

/// `fairground replay RUN --out FILE [extra]`: the JSON line it printed.
fn record(run: &Path, file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "replay",
        run.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = fairground(&args);
    ok(&out);
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// `fairground replay --check FILE [extra]`: (exit code, stdout, stderr).
fn check(file: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["replay", "--check", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = fairground(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn parse(file: &Path) -> Replay {
    Replay::from_bytes(&std::fs::read(file).unwrap()).expect("a valid replay")
}

/// The pinned face of a replay: what does not depend on where or by which build it was made.
fn pinned(r: &Replay) -> String {
    let h = &r.header;
    let mut actions = TrajectoryHash::new();
    actions.write_bytes(&r.actions);
    let mut digests = TrajectoryHash::new();
    for &d in &r.digests {
        digests.write_u32(d);
    }
    format!(
        "env {}\ncheckpoint {} param_hash {}\nseed {} episode {} policy {}\nrounds {} action_bytes \
         {}\ncolumns {}\nstart_digests {:08x?}\nactions {}\ndigests {}\noutcome {}\n",
        h.env,
        h.checkpoint_iteration,
        h.param_hash,
        h.seed,
        h.episode,
        h.policy,
        h.rounds,
        h.action_bytes,
        h.columns.join(" "),
        h.start_digests,
        actions.hex(),
        digests.hex(),
        h.outcome
    )
}

/// Record, check, compare with eval, and pin one environment's replay.
fn round_trip(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(&format!("replay-{name}"));
    let run = tiny_run(&dir, text);
    let file = dir.join("episode.fgr");
    let printed = record(&run, &file, &[]);
    let r = parse(&file);
    assert_eq!(printed["rounds"], r.header.rounds);
    assert_eq!(printed["bytes"], std::fs::metadata(&file).unwrap().len());
    assert!(r.header.rounds > 0);
    let (code, stdout, stderr) = check(&file, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    insta::assert_snapshot!(format!("replay_{name}"), pinned(&r));
    (run, file)
}

#[test]
fn an_ah_episode_replays_and_is_the_episode_eval_plays() {
    let (run, file) = round_trip("ah", TINY_AH);
    let r = parse(&file);
    let out = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
    ok(&out);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Group totals [NS red, NS blue, S red, S blue] against eval's per-agent group returns.
    let g: Vec<f64> = serde_json::from_value(r.header.outcome["group_returns"].clone()).unwrap();
    let agents = r.header.outcome["returns"].as_array().unwrap().len() as f64;
    // The default sensitive fraction: half of the agents.
    let sensitive_agents = agents / 2.0;
    let by_group = &eval["return_by_group"];
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        close(
            (g[0] + g[1]) / (agents - sensitive_agents),
            by_group["non_sensitive"].as_f64().unwrap()
        ),
        "{g:?} vs {by_group}"
    );
    assert!(
        close(
            (g[2] + g[3]) / sensitive_agents,
            by_group["sensitive"].as_f64().unwrap()
        ),
        "{g:?} vs {by_group}"
    );
}

#[test]
fn an_hs_day_replays_and_is_the_day_eval_plays() {
    let (run, file) = round_trip("hs", TINY_HS);
    let r = parse(&file);
    let out = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
    ok(&out);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decisions = &r.header.outcome["decisions"];
    for (k, role) in ["router", "dispatcher", "manager"].iter().enumerate() {
        assert_eq!(
            decisions[k].as_f64().unwrap(),
            eval["decisions_mean"][role].as_f64().unwrap(),
            "{role}"
        );
    }
    assert_eq!(
        r.header.outcome["patients_treated"].as_f64().unwrap(),
        eval["patients_treated_mean"].as_f64().unwrap_or(0.0)
    );
}

#[test]
fn threads_change_nothing_recorded() {
    let dir = scratch_dir("replay-threads");
    let run = tiny_run(&dir, TINY_AH);
    let (one, two) = (dir.join("t1.fgr"), dir.join("t2.fgr"));
    record(&run, &one, &["--threads", "1", "--episode", "1"]);
    record(&run, &two, &["--threads", "2", "--episode", "1"]);
    let (a, b) = (parse(&one), parse(&two));
    assert_eq!((a.header.threads, b.header.threads), (1, 2));
    assert_eq!(a.actions, b.actions);
    assert_eq!(a.digests, b.digests);
    assert_eq!(a.header.start, b.header.start);
    assert_eq!(a.header.outcome, b.header.outcome);
    let (code, stdout, _) = check(&one, &["--threads", "2"]);
    assert_eq!(code, 0, "{stdout}");
}

/// `bytes` with its trailing SHA-256 recomputed (an edit that the checksum cannot catch).
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 32;
    let sum = Sha256::digest(&bytes[..n]);
    bytes[n..].copy_from_slice(&sum);
    bytes
}

#[test]
fn damaged_and_tampered_files_are_told_apart() {
    let dir = scratch_dir("replay-damaged");
    let run = tiny_run(&dir, TINY_AH);
    let file = dir.join("episode.fgr");
    record(&run, &file, &[]);
    let bytes = std::fs::read(&file).unwrap();
    let refused = |name: &str, b: &[u8], needle: &str| {
        let f = dir.join(name);
        std::fs::write(&f, b).unwrap();
        let (code, stdout, stderr) = check(&f, &[]);
        assert_eq!(code, 1, "{name}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
    };
    let mut flipped = bytes.clone();
    let mid = bytes.len() / 2;
    flipped[mid] ^= 0x10;
    refused("flipped.fgr", &flipped, "checksum mismatch");
    refused(
        "truncated.fgr",
        &bytes[..bytes.len() - 100],
        "checksum mismatch",
    );
    let mut version = bytes.clone();
    version[8..12].copy_from_slice(&99u32.to_le_bytes());
    refused("version.fgr", &version, "version 99");
    refused("other.fgr", b"{\"not\": \"a replay\"}", "magic");

    // Change every agent's action of round 3 to another one and reseal the checksum: the file
    // reads, and the re-simulation names round 3 and what differs.
    let r = parse(&file);
    let w = r.header.action_bytes as usize;
    let body_start = bytes.len() - 32 - r.header.rounds as usize * (w + 4 * r.header.columns.len());
    let round = body_start + 3 * (w + 4 * r.header.columns.len());
    let mut tampered = bytes.clone();
    for a in &mut tampered[round..round + w] {
        *a = (*a + 1) % fairground_kernel::ah::ACTIONS as u8;
    }
    let f = dir.join("tampered.fgr");
    std::fs::write(&f, resealed(tampered)).unwrap();
    let (code, stdout, stderr) = check(&f, &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("MISMATCH at round 3 of "),
        "the first differing round: {stdout}"
    );
    assert!(stdout.contains("columns differing: "), "{stdout}");
}

#[test]
fn a_chosen_checkpoint_plays_and_bad_requests_are_one_line() {
    let dir = scratch_dir("replay-checkpoint");
    let run = tiny_run(&dir, TINY_AH);
    let (newest, older) = (dir.join("newest.fgr"), dir.join("older.fgr"));
    record(&run, &newest, &[]);
    record(&run, &older, &["--checkpoint", "1"]);
    let (a, b) = (parse(&newest), parse(&older));
    assert_eq!(
        (a.header.checkpoint_iteration, b.header.checkpoint_iteration),
        (2, 1)
    );
    assert_ne!(a.header.param_hash, b.header.param_hash);
    assert_eq!(check(&older, &[]).0, 0);

    let refused = |args: &[&str], needle: &str| {
        let out = fairground(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    let out = dir.join("x.fgr");
    let (run_s, out_s) = (run.to_str().unwrap(), out.to_str().unwrap());
    refused(
        &["replay", run_s, "--out", out_s, "--checkpoint", "7"],
        "ckpt-00000007",
    );
    refused(
        &["replay", dir.to_str().unwrap(), "--out", out_s],
        "not a run directory",
    );
    refused(&["replay", run_s], "--out");
    refused(&["replay", "--check", out_s, run_s], "cannot be used with");
    assert!(!out.exists(), "nothing written by a refused request");
}
