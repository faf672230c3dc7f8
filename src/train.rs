//! `fairground train`, `eval` and `bench train`: map the command-line arguments onto
//! fairground-trainer's requests (the enums are the trainer's own, parsed by their names).

use crate::cli::{EvalArgs, TrainArgs, TrainBenchArgs};
use fairground_trainer::{EvalRequest, Overrides, TrainRequest};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ctrl-C or SIGTERM: the first asks the run to stop after its iteration (it saves a
/// checkpoint and says how to resume); a second stops at once, pointing at the last checkpoint.
pub(crate) fn stop_on_signal(out: Option<PathBuf>) -> Option<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let dir = out.map_or("<the run directory>".into(), |d| d.display().to_string());
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!(
                "stopped; resume from the last checkpoint with `fairground train --out {dir} \
                 --resume`"
            );
            std::process::exit(130);
        }
        eprintln!("stopping after this iteration (again to stop now)");
    })
    .ok()?;
    Some(stop)
}

pub fn train(args: &TrainArgs) -> anyhow::Result<PathBuf> {
    let req = TrainRequest {
        overrides: Overrides {
            env: args.env,
            algo: args.algo,
            fairness: args.fairness,
            alpha: args.alpha,
            beta: args.beta,
            penalty: args.penalty,
            profile: args.profile,
            instances: args.instances,
            rollout_steps: args.rollout_steps,
            iterations: args.iterations,
            seed: args.seed,
            backend: args.backend,
        },
        config_file: args.config.clone(),
        out: args.out.clone(),
        resume: args.resume,
        quiet: false,
        seeds: args.seeds,
        no_pack: args.no_pack,
        stop: stop_on_signal(args.out.clone()),
    };
    Ok(fairground_trainer::train(&req)?)
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<String> {
    Ok(fairground_trainer::eval(&EvalRequest {
        run_dir: args.run_dir.clone(),
        episodes: args.episodes,
        greedy: args.greedy,
        random: args.random,
        episode_steps: args.episode_steps,
        backend: args.backend,
        one_layout: args.one_layout,
    })?)
}

pub fn bench(args: &TrainBenchArgs) -> anyhow::Result<String> {
    Ok(fairground_trainer::bench(
        &fairground_trainer::BenchRequest {
            env: args.env,
            instances: args.instances,
            backend: args.backend,
            rollout_steps: args.rollout_steps,
            minibatch_size: args.minibatch_size,
            iterations: args.iterations,
            algo: args.algo,
            profile: args.profile,
            threads: args.threads,
            seeds: args.seeds,
            no_pack: args.no_pack,
        },
    )?)
}
