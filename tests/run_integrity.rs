//! Guarantees: a damaged checkpoint is never loaded silently. Every checkpoint is verified on
//! load (the parameters against the `param_hash` both files record, the Adam state against the
//! sidecar's `optimizer_hash`, the sidecar's iteration against its file name, and both
//! files parse); `train --resume` and `eval` fall back to the newest checkpoint that verifies,
//! say so in one line and keep the damaged files in `checkpoints/damaged/` (the resumed run then
//! ends bit for bit where a straight run ends); when none verifies they refuse with one line
//! naming the file and what did not match, and write nothing.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};
use train_cli::{fairground, ok, train};

fn scratch(name: &str) -> PathBuf {
    train_cli::scratch_with_tiny(&format!("integrity-{name}"))
}

fn ckpt(run: &Path, it: u32, ext: &str) -> PathBuf {
    run.join("checkpoints").join(format!("ckpt-{it:08}.{ext}"))
}

/// Flip the lowest bit of one byte in the middle of tensor `name` of a safetensors file.
fn flip_tensor_byte(file: &Path, name: &str) {
    let mut bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let (a, b) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    let at = 8 + n + a + ((b - a) / 8) * 4;
    bytes[at] ^= 1;
    std::fs::write(file, bytes).unwrap();
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn resume(run: &Path, iterations: &str) -> std::process::Output {
    fairground(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--iterations",
        iterations,
    ])
}

#[test]
fn a_flipped_parameter_byte_falls_back_to_the_previous_checkpoint_and_resumes_exactly() {
    let dir = scratch("flip");
    let cfg = dir.join("tiny.toml");
    let (run, straight) = (dir.join("run"), dir.join("straight"));
    train(&cfg, &run, "2", false);
    train(&cfg, &straight, "4", false);
    flip_tensor_byte(&ckpt(&run, 2, "safetensors"), "g1.params");
    let out = resume(&run, "4");
    ok(&out);
    let err = stderr_of(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("ckpt-00000002") && warnings[0].contains("hash to"),
        "{err}"
    );
    // Kept, not deleted.
    assert!(
        run.join("checkpoints/damaged/ckpt-00000002.safetensors")
            .exists()
    );
    assert!(run.join("checkpoints/damaged/ckpt-00000002.json").exists());
    assert_eq!(
        train_cli::metrics(&run, &["param_hash"]),
        train_cli::metrics(&straight, &["param_hash"]),
        "resumed from iteration 1: bit for bit the straight run"
    );
}

#[test]
fn when_no_checkpoint_verifies_resume_and_eval_refuse_naming_the_file() {
    let dir = scratch("none");
    let run = dir.join("run");
    train(&dir.join("tiny.toml"), &run, "2", false);
    flip_tensor_byte(&ckpt(&run, 2, "safetensors"), "g0.params");
    flip_tensor_byte(&ckpt(&run, 1, "safetensors"), "g0.params");
    let before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for out in [
        resume(&run, "3"),
        fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]),
    ] {
        assert!(!out.status.success());
        let err = stderr_of(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("ckpt-00000002") && err.contains("param"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        before
    );
    assert!(!run.join("eval.json").exists());
    assert!(
        !run.join("checkpoints/damaged").exists(),
        "nothing moved when nothing verifies"
    );
}

#[test]
fn a_truncated_tensors_file_an_edited_sidecar_and_damaged_adam_state_are_each_caught() {
    let dir = scratch("kinds");
    let cfg = dir.join("tiny.toml");
    let fresh = dir.join("fresh");
    train(&cfg, &fresh, "2", false);
    let damage: [(&str, &Damage, &str); 3] = [
        (
            "truncated",
            &|run| {
                let f = ckpt(run, 2, "safetensors");
                let b = std::fs::read(&f).unwrap();
                std::fs::write(&f, &b[..b.len() / 2]).unwrap();
            },
            "damaged",
        ),
        (
            "sidecar",
            &|run| {
                let f = ckpt(run, 2, "json");
                let t = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, t.replacen("\"iteration\":2", "\"iteration\":3", 1)).unwrap();
            },
            "iteration 3",
        ),
        (
            "adam",
            &|run| flip_tensor_byte(&ckpt(run, 2, "safetensors"), "g0.adam_m1"),
            "Adam",
        ),
    ];
    for (name, hurt, needle) in damage {
        let run = dir.join(name);
        let _ = std::fs::remove_dir_all(&run);
        train_cli::copy_dir(&fresh, &run);
        hurt(&run);
        // eval falls back to iteration 1 and says why.
        let out = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
        ok(&out);
        let err = stderr_of(&out);
        assert!(
            err.contains("warning:") && err.contains(needle),
            "{name}: {err}"
        );
        assert!(run.join("eval.json").exists());
    }
}

/// A way to damage a run directory's newest checkpoint.
type Damage = dyn Fn(&Path);
