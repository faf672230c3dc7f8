//! `fairground audit`: one verdict line per audited run on stdout (a "cannot audit" line on
//! stderr), and the exit code of the worst verdict: 0 identical, 1 divergent, 2 not audited.

use crate::cli::AuditArgs;
use fairground_trainer::audit::{Audit, AuditRequest, audit, sample_runs};

fn verdict(a: &Audit) -> (u8, String) {
    let what = format!(
        "{} iteration(s) retrained{}; {} checkpoint(s) intact, {} damaged",
        a.iterations.len(),
        if a.eval_compared {
            ", eval compared"
        } else {
            ""
        },
        a.intact_checkpoints.len(),
        a.damaged.len()
    );
    match &a.divergence {
        None => (0, format!("identical: {} ({what})", a.run_dir)),
        Some(d) => {
            let at = d
                .iteration
                .map_or("the evaluation".to_string(), |i| format!("iteration {i}"));
            if d.field == "checkpoint" {
                return (
                    1,
                    format!(
                        "DIVERGENT at {at}: {}; {} ({}; {what})",
                        d.stored, a.diagnosis, a.run_dir
                    ),
                );
            }
            (
                1,
                format!(
                    "DIVERGENT at {at}, field {}: stored {}, re-derived {}; {} ({}; {what})",
                    d.field, d.stored, d.rederived, a.diagnosis, a.run_dir
                ),
            )
        }
    }
}

/// Run the command; the exit code.
pub fn run(args: &AuditArgs) -> u8 {
    let dirs = if args.dir.join("sweep.json").exists() {
        let Some(k) = args.sample else {
            eprintln!(
                "error: {} is a sweep directory: --sample K chooses how many of its runs to audit",
                args.dir.display()
            );
            return 2;
        };
        match sample_runs(&args.dir, k, args.seed) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    } else {
        if args.sample.is_some() {
            eprintln!(
                "error: --sample: {} is not a sweep directory (no sweep.json)",
                args.dir.display()
            );
            return 2;
        }
        vec![args.dir.clone()]
    };
    let mut worst = 0;
    for dir in dirs {
        let req = AuditRequest {
            run_dir: dir,
            last: args.iterations,
            eval: args.eval,
            backend: args.backend,
            scratch: None,
        };
        match audit(&req) {
            Ok(a) => {
                let (code, line) = verdict(&a);
                println!("{line}");
                worst = worst.max(code);
            }
            Err(e) => {
                eprintln!("error: {e}");
                worst = 2;
            }
        }
    }
    worst
}
