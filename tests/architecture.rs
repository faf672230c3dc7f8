//! Guarantees: ARCHITECTURE.md and README.md name only paths that exist in the repository, so
//! the code map cannot silently rot when files move (build output under `target/` is not a
//! repository path and is skipped); and the trainer's dependency directions hold: nothing under
//! `trainer/src/env/` imports or names an algorithm or the run layer, `algo/` does not import
//! the run layer, `metrics/` (shared by environments and evaluation) imports neither, and
//! `io.rs` imports no trainer module; the README's example config parses.

use std::path::Path;

fn backticked_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.contains(' ') && (s.contains('/') || s.ends_with(".md") || s.ends_with(".rs"))
        })
        // `../` is outside the repository; `target/` is build output, absent from a fresh clone.
        .filter(|s| !s.starts_with("../") && !s.starts_with("target/"))
        .filter(|s| !s.contains("…") && !s.starts_with("http"))
        .map(|s| s.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn documented_paths_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = vec![];
    let mut checked = 0;
    for doc in ["ARCHITECTURE.md", "README.md", "benches/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for p in backticked_paths(&text) {
            checked += 1;
            if !root.join(&p).exists() {
                missing.push(format!("{doc}: {p}"));
            }
        }
    }
    assert!(
        checked >= 15,
        "the check found only {checked} paths; did the docs' format change?"
    );
    assert!(
        missing.is_empty(),
        "documented paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Every `.rs` file under `dir` (relative to the repository root), with its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(p: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    let mut out = vec![];
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut out);
    out
}

/// The files of `dir` that name any of `forbidden` (imports, paths or type names).
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    sources(dir)
        .into_iter()
        .flat_map(|(path, text)| {
            forbidden
                .iter()
                .filter(|f| text.contains(*f))
                .map(|f| format!("{path} names {f}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The trainer's dependency directions (ARCHITECTURE.md, "Invariants"): environments know no
/// algorithm and no run layer, and name no algorithm (Fair-PPO's needs reach them through the
/// `FairnessCells` trait defined in `env/`); algorithms know no run layer; `io.rs` knows only
/// the error and common types.
#[test]
fn trainer_dependencies_point_one_way() {
    let env = offenders(
        "trainer/src/env",
        &[
            "crate::algo",
            "crate::run",
            "crate::train_loop",
            "crate::repro",
            "FairPpo",
            "fair_ppo",
            "Fair-PPO",
        ],
    );
    assert!(env.is_empty(), "env/ reaches upward:\n{}", env.join("\n"));
    let metrics = offenders(
        "trainer/src/metrics",
        &[
            "crate::env",
            "crate::algo",
            "crate::run",
            "crate::train_loop",
        ],
    );
    assert!(
        metrics.is_empty(),
        "metrics/ reaches upward:\n{}",
        metrics.join("\n")
    );
    let algo = offenders("trainer/src/algo", &["crate::run", "crate::repro"]);
    assert!(
        algo.is_empty(),
        "algo/ reaches upward:\n{}",
        algo.join("\n")
    );
    let io =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer/src/io.rs"))
            .unwrap();
    let trainer_imports: Vec<&str> = io
        .lines()
        .filter(|l| l.trim_start().starts_with("use crate::"))
        .filter(|l| !l.contains("crate::error") && !l.contains("crate::common"))
        .collect();
    assert!(
        trainer_imports.is_empty(),
        "io.rs imports trainer modules: {trainer_imports:?}"
    );
}

/// The README's example config file is a valid config, in the sectioned layout.
#[test]
fn the_readme_config_example_parses_and_validates() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```toml block in README.md");
    let cfg = fairground_trainer::TrainConfig::from_toml(block, "README.md").unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.fair.fairness, fairground_trainer::Fairness::Dp);
    assert_eq!((cfg.hs.patients, cfg.ah.episode_steps), (300, 3000));
}
