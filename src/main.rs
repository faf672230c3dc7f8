//! The `fairground` binary: parse, dispatch, and turn every error into one line and a non-zero
//! exit code.

use clap::Parser;
use clap::error::ErrorKind;
use fairground::cli::{BenchCommand, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                eprintln!("{}", one_line(&e.render().to_string()));
                return ExitCode::from(2);
            }
        },
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let trainer = e.downcast_ref::<fairground_trainer::TrainError>();
            if let Some(fairground_trainer::TrainError::EvalNotSaved { text, .. }) = trainer {
                println!("{text}");
            }
            eprintln!("error: {e:#}");
            ExitCode::from(trainer.map_or(1, fairground_trainer::TrainError::exit_code))
        }
    }
}

/// The exit code of a command that ran: 0, or 1 where its verdict was negative (a replay that
/// does not re-simulate).
fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Bench(BenchCommand::Env(args)) => {
            let line = fairground::bench::env(&args)?;
            println!("{line}");
        }
        Command::Bench(BenchCommand::Shaders(args)) => {
            let line = fairground::bench::shaders::run(&args)?;
            println!("{line}");
        }
        Command::Bench(BenchCommand::Train(args)) => {
            let line = fairground::train::bench(&args)?;
            println!("{line}");
        }
        Command::Train(args) => {
            let dir = fairground::train::train(&args)?;
            println!("{}", dir.display());
        }
        Command::Eval(args) => {
            let text = fairground::train::eval(&args)?;
            println!("{text}");
        }
        Command::Replay(args) => {
            if !fairground::replay::run(&args)? {
                return Ok(1);
            }
        }
        Command::Audit(args) => return Ok(fairground::audit::run(&args)),
        Command::View(args) => fairground::view::run(&args)?,
        Command::Sweep(cmd) => fairground::sweep::run(cmd)?,
        Command::Report {
            dir,
            out,
            select,
            selection_seeds,
        } => {
            use fairground_trainer::sweep::report::{Options, Select, report};
            let out = out.unwrap_or_else(|| dir.join("report"));
            let select = match select {
                fairground::cli::ReportSelect::AbsDp => Select::AbsDp,
                fairground::cli::ReportSelect::Reward => Select::Reward,
            };
            let opts = Options {
                select,
                selection_seeds,
            };
            report(&dir, &out, &opts)?;
            println!("{}", out.display());
        }
    }
    Ok(0)
}

/// clap's message folded into one line: the error and its "[possible values: …]" / tip lines,
/// without the usage and "--help" hints (noise in logs, and users asked for one line).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
