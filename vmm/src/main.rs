//! The `vmm` binary: parses the command line, sets up logging and hands
//! the command to the `vmm` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use vmm::run;

#[derive(Parser)]
#[command(
    name = "vmm",
    version,
    about = "Boot a Linux guest with the rangefault VRAM device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot the guest, run a scenario, report.
    Run(run::RunArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RANGEFAULT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
    }
}
