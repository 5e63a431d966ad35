//! `workbus-hub`: the hub server (`serve`) and its kubectl-like client commands in one
//! binary. All logic lives in the library (`workbus_hub::cli`).

use std::process::ExitCode;

use clap::Parser;
use workbus_hub::cli::{Cli, Command, run_client, serve};
#[cfg(feature = "quickstart")]
use workbus_hub::quickstart;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => run_async("info", serve::serve(args)),
        // Quiet logs: the quickstart prints its own progress.
        #[cfg(feature = "quickstart")]
        Command::Quickstart(args) => run_async("warn", quickstart::quickstart(args)),
        command => match run_client(&cli.server, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a server command on a multi-threaded runtime with logs at `level` (overridable
/// with `RUST_LOG`).
fn run_async(level: &str, job: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
