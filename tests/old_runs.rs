//! Guarantees: run directories written by the trainer before its redesign (commit b0df782: the
//! flat config layout, the pre-seam checkpoint sidecars, HS snapshots with the previous day's
//! ledger columns) still resume, and continue bit for bit where a straight run of this version
//! ends: same metrics (every key but the wall-clock ones) and parameter hashes. The fixtures in
//! `tests/fixtures/old-runs/` were made by that version's binary with
//! `fairground train --config CFG --out DIR --iterations 2` (CFG is each fixture's
//! `config.toml` as first written, kept as `made-with.toml`).

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("old-runs-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Resume the fixture `name` to 4 iterations and compare with a straight 4-iteration run of
/// the config it was made with (plus `rules`: the environment rules it was made with where
/// this version's profile has changed them since; its run directory keeps them).
fn resumes_bit_for_bit(name: &str, rules: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/old-runs")
        .join(name);
    let dir = scratch(name);
    let resumed = dir.join("resumed");
    train_cli::copy_dir(&fixture, &resumed);
    let old = train_cli::metrics(&resumed, &["param_hash"]);
    assert_eq!(old.len(), 2, "the fixture holds 2 iterations");
    let out = fairground(&[
        "train",
        "--out",
        resumed.to_str().unwrap(),
        "--resume",
        "--iterations",
        "4",
    ]);
    ok(&out);
    let straight = dir.join("straight");
    let made_with = std::fs::read_to_string(fixture.join("made-with.toml")).unwrap();
    let cfg = dir.join("made-with.toml");
    std::fs::write(&cfg, format!("{made_with}{rules}")).unwrap();
    train(&cfg, &straight, "4", false);
    let (a, b) = (
        train_cli::metrics(&resumed, &["param_hash"]),
        train_cli::metrics(&straight, &["param_hash"]),
    );
    assert_eq!(a.len(), 4);
    assert_eq!(
        a, b,
        "{name}: the old run resumed equals a straight run of this version"
    );
    // The old version's own lines are kept as they were.
    for (o, n) in old.iter().zip(&a) {
        assert_eq!(o["param_hash"], n["param_hash"]);
    }
    // The resumed run's config is rewritten in the sectioned layout.
    let saved = std::fs::read_to_string(resumed.join("config.toml")).unwrap();
    assert!(saved.contains("[ppo]"), "{saved}");
}

#[test]
fn an_old_ah_ppo_run_resumes_bit_for_bit() {
    resumes_bit_for_bit("ah-ppo", "");
}

#[test]
fn an_old_ah_fair_ppo_run_resumes_bit_for_bit() {
    resumes_bit_for_bit("ah-fair-dp", "");
}

/// Made before `ah.moves_never_succeed` (the reference's moves, spec §1.5 corrected): its
/// agents moved, its config has no such key, and it resumes moving.
#[test]
fn an_old_ah_reference_run_resumes_bit_for_bit() {
    resumes_bit_for_bit("ah-reference", "\n[ah]\nmoves_never_succeed = false\n");
}

#[test]
fn an_old_hs_fair_ppo_run_resumes_bit_for_bit() {
    resumes_bit_for_bit("hs-fair-dp", "");
}
