//! `fairground replay`: record a run's episode into a `.fgr` file (one JSON line on stdout
//! saying what it holds), or check a file (one verdict line; false: it does not re-simulate).

use crate::cli::ReplayArgs;
use fairground_trainer::replay::{RecordRequest, check, record};

/// Run the command; Ok(false) when a checked replay does not re-simulate (exit 1).
pub fn run(args: &ReplayArgs) -> anyhow::Result<bool> {
    if let Some(file) = &args.check {
        let c = check(file, args.threads)?;
        match &c.mismatch {
            None => println!(
                "ok: {} {} rounds re-simulated, every state digest matches ({})",
                c.env,
                c.rounds,
                file.display()
            ),
            Some(m) => {
                let at = m.round.map_or("the start state".to_string(), |r| {
                    format!("round {r} of {}", c.rounds)
                });
                let cols = if m.columns.is_empty() {
                    String::new()
                } else {
                    format!(" (columns differing: {})", m.columns.join(", "))
                };
                println!("MISMATCH at {at}: {}{cols} ({})", m.what, file.display());
            }
        }
        return Ok(c.mismatch.is_none());
    }
    let (Some(run_dir), Some(out)) = (&args.run_dir, &args.out) else {
        unreachable!("clap requires RUN_DIR and --out without --check")
    };
    let r = record(&RecordRequest {
        run_dir: run_dir.clone(),
        out: out.clone(),
        checkpoint: args.checkpoint,
        episode: args.episode,
        greedy: args.greedy,
        threads: args.threads,
    })?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(true)
}
