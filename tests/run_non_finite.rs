//! Guarantees: a run whose networks go non-finite stops, never trains or evaluates on NaN in
//! silence: the iteration that produced a non-finite loss or parameters writes no metrics line
//! and no checkpoint, the process exits with code 3 and one line
//! `non-finite <what> (network <name>) at iteration K; last good checkpoint: <path>`, and the
//! run stays resumable from that checkpoint; `eval` refuses a checkpoint holding non-finite
//! parameters.

#[path = "common/train_cli.rs"]
mod train_cli;

use fairground_trainer::io::{CheckpointState, params_hash, read_checkpoint, save_checkpoint};
use train_cli::{fairground, train};

/// A checkpoint sidecar as JSON, whatever the run (the trait the checkpoint files need).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Sidecar(serde_json::Value);

impl CheckpointState for Sidecar {
    fn iteration(&self) -> u32 {
        self.0["iteration"].as_u64().unwrap() as u32
    }
    fn networks(&self) -> usize {
        self.0["shuffle_streams"].as_array().unwrap().len()
    }
}

#[test]
fn nan_parameters_stop_the_run_with_exit_code_3_and_keep_it_resumable() {
    let dir = train_cli::scratch_with_tiny("non-finite");
    let cfg = dir.join("tiny.toml");
    let run = dir.join("run");
    train(&cfg, &run, "1", false);
    // A checkpoint whose (correctly hashed) parameters hold a NaN: what a diverged update
    // leaves, and what integrity checks cannot refuse.
    let (state, mut nets) = read_checkpoint::<Sidecar>(&run, 1).unwrap();
    nets[1].params[3] = f32::NAN;
    let hash = params_hash(&nets);
    save_checkpoint(&run, &state, &nets, &hash).unwrap();
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();

    let out = fairground(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--iterations",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("non-finite") && last.contains("at iteration 2"),
        "{err}"
    );
    assert!(last.contains("network sensitive"), "{err}");
    assert!(last.contains("ckpt-00000001"), "{err}");
    assert_eq!(
        std::fs::read(run.join("metrics.jsonl")).unwrap(),
        metrics,
        "no line for the non-finite iteration"
    );
    assert!(!run.join("checkpoints/ckpt-00000002.json").exists());
    // eval refuses to play it.
    let e = fairground(&["eval", run.to_str().unwrap(), "--episodes", "1"]);
    let err = String::from_utf8(e.stderr).unwrap();
    assert!(
        !e.status.success() && err.contains("non-finite parameters"),
        "{err}"
    );
    assert!(!run.join("eval.json").exists());
    // Still a run directory that resumes (and stops the same way, deterministically).
    let again = fairground(&[
        "train",
        "--out",
        run.to_str().unwrap(),
        "--resume",
        "--iterations",
        "3",
    ]);
    assert_eq!(again.status.code(), Some(3));
}
