//! `vmm`: boots a Linux guest with the rangefault VRAM device attached and
//! reports what the guest saw.

mod engine;
mod guest_console;
mod guest_files;
mod guest_ram;
mod hostvirt;
mod images;
mod report;
mod run;
mod size;
mod topology;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
