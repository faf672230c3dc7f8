//! Guarantees: ARCHITECTURE.md and README.md name only paths that exist in the repository, so
//! the code map cannot silently rot when files move. (Build output under `target/` is not a
//! repository path and is skipped.)

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
