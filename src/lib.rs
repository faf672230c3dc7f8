//! The `fairground` command-line tool as a library: argument types and the subcommands, so that
//! integration tests can drive exactly what users run.

pub mod audit;
pub mod bench;
pub mod cli;
pub mod replay;
pub mod sweep;
pub mod train;
pub mod view;
