//! `workbus-hub`: the hub server (`serve`) and its kubectl-like client commands in one
//! binary. All logic lives in the library (`workbus_hub::cli`).

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use workbus_hub::cli::{Cli, Command, run_client, serve};
#[cfg(feature = "quickstart")]
use workbus_hub::quickstart;
use workbus_process::{LogFormat, defaults, init_logging};

fn main() -> ExitCode {
    let Cli {
        client,
        log,
        log_format,
        command,
    } = Cli::parse();
    match command {
        Command::Serve(args) => run_async(
            log.as_deref(),
            log_format,
            defaults::LOG,
            serve::serve(args),
        ),
        #[cfg(feature = "quickstart")]
        Command::Quickstart(args) => {
            run_async(log.as_deref(), log_format, quickstart::LOG, async {
                quickstart::quickstart(args).await.map(|_| ())
            })
        }
        command => match run_client(&client, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a server command on a multi-threaded runtime with logs filtered by `--log`,
/// else `RUST_LOG`, else `default_log`, written as `log_format`; prints its error and exits non-zero if it fails.
fn run_async<E: Display>(
    log: Option<&str>,
    log_format: LogFormat,
    default_log: &str,
    job: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    if let Err(e) = init_logging(log, default_log, log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
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
