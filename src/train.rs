//! `fairground train`, `eval` and `bench train`: map the command-line arguments onto
//! fairground-trainer's requests.

use crate::cli::{
    AlgoKind, EnvKind, EvalArgs, FairnessKind, PenaltyKind, TrainArgs, TrainBackend, TrainBenchArgs,
};
use fairground_trainer::{
    Algo, Backend, EnvName, EvalRequest, Fairness, Overrides, Penalty, TrainRequest,
};
use std::path::PathBuf;

fn backend(b: TrainBackend) -> Backend {
    match b {
        TrainBackend::Auto => Backend::Auto,
        TrainBackend::Gpu => Backend::Gpu,
        TrainBackend::Cpu => Backend::Cpu,
    }
}

fn env(e: EnvKind) -> EnvName {
    match e {
        EnvKind::Ah => EnvName::Ah,
        EnvKind::Hs => EnvName::Hs,
    }
}

pub fn train(args: &TrainArgs) -> anyhow::Result<PathBuf> {
    let req = TrainRequest {
        overrides: Overrides {
            env: args.env.map(env),
            algo: args.algo.map(|a| match a {
                AlgoKind::Ppo => Algo::Ppo,
                AlgoKind::FairPpo => Algo::FairPpo,
            }),
            fairness: args.fairness.map(|f| match f {
                FairnessKind::Dp => Fairness::Dp,
                FairnessKind::Csp => Fairness::Csp,
                FairnessKind::Cf => Fairness::Cf,
            }),
            alpha: args.alpha,
            beta: args.beta,
            penalty: args.penalty.map(|p| match p {
                PenaltyKind::Shaped => Penalty::Shaped,
                PenaltyKind::Reference => Penalty::Reference,
            }),
            profile: args.profile,
            instances: args.instances,
            rollout_steps: args.rollout_steps,
            iterations: args.iterations,
            seed: args.seed,
            backend: args.backend.map(backend),
        },
        config_file: args.config.clone(),
        out: args.out.clone(),
        resume: args.resume,
        quiet: false,
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
        backend: args.backend.map(backend),
    })?)
}

pub fn bench(args: &TrainBenchArgs) -> anyhow::Result<String> {
    Ok(fairground_trainer::bench(
        env(args.env),
        args.instances,
        backend(args.backend),
        args.rollout_steps,
        args.minibatch_size,
        args.iterations,
    )?)
}
