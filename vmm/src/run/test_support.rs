//! What the run steps' tests share: parsed arguments and a finished run.

use std::time::Duration;

use clap::Parser;

use super::RunArgs;
use crate::engine::{GuestRun, HostCounters};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

/// `vmm run` parsed from `argv` (without the program and subcommand).
pub fn args(argv: &[&str]) -> RunArgs {
    Cli::parse_from(std::iter::once("vmm").chain(argv.iter().copied())).run
}

/// A run whose guest reported `exit_code` and nothing else went wrong.
pub fn run(exit_code: Option<i32>) -> GuestRun {
    let mut outcome = GuestRun {
        console: Default::default(),
        host: HostCounters::Kvm(Default::default()),
        engine_error: None,
        engine_status: Some("guest reset".into()),
        engine_log: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        timed_out: false,
        wall: Duration::from_secs(1),
    };
    outcome.console.exit_code = exit_code;
    outcome
}
