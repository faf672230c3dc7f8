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
                // clap's first line names the argument and the allowed values; the usage
                // lines after it are noise in logs.
                let text = e.render().to_string();
                let line = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("error: bad arguments");
                eprintln!("{line}");
                return ExitCode::from(2);
            }
        },
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Env(args)) => {
            let line = fairground::bench::env(&args)?;
            println!("{line}");
        }
        Command::Bench(BenchCommand::Shaders(args)) => {
            let line = fairground::bench::shaders::run(&args)?;
            println!("{line}");
        }
    }
    Ok(())
}
