//! Guarantees: a write that fails (the disk is full: here every write goes to `/dev/full`,
//! which answers ENOSPC) leaves no partial `.tmp` behind, and `eval` still prints the result it
//! computed on stdout, with one error line saying it could not be saved and a non-zero exit.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::io::Write;
use std::path::Path;
use train_cli::{fairground, train};

#[test]
fn eval_on_a_full_disk_prints_its_result_and_leaves_no_temp_file() {
    if !Path::new("/dev/full").exists() {
        // Past the harness's capture: a skip shows in every log, not only on failure.
        let _ = writeln!(std::io::stderr(), "SKIPPED: no /dev/full on this machine");
        return;
    }
    let dir = train_cli::scratch_with_tiny("full-disk");
    let cfg = dir.join("tiny.toml");
    let run = dir.join("run");
    train(&cfg, &run, "1", false);
    // eval.json's temp file is the full disk.
    std::os::unix::fs::symlink("/dev/full", run.join("eval.json.tmp")).unwrap();
    let out = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("printed on stdout"), "{err}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(printed["mean_reward_per_agent_step"].is_f64(), "{printed}");
    assert!(!run.join("eval.json").exists());
    assert!(
        std::fs::symlink_metadata(run.join("eval.json.tmp")).is_err(),
        "the failed write's temp file is gone"
    );
}
