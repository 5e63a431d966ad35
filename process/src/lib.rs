//! `workbus-process`: what every workbus executable shares — `workbus-hub`,
//! `workbus-agent` and `workbus-broker` (and the test harness's process nodes) — written
//! once:
//!
//! - [`shutdown_signal`]: SIGINT/SIGTERM (Ctrl-C elsewhere), installed eagerly;
//! - [`init_logging`]: `--log FILTER`, else `RUST_LOG`, else the executable's default;
//!   `--log-format text|json` ([`LogFormat`]); logs go to standard error, coloured only
//!   when it is a terminal;
//! - [`flags_without_env`]: the command-line rule (every flag has an environment
//!   variable) as a check each binary's tests run over its `clap::Command`;
//! - [`defaults`]: the defaults the executables must agree on for the no-setup path to
//!   connect (MQTT port, loopback broker, source id);
//! - [`private_fs`]: directories `0700` and files `0600`, created so and tightened;
//! - [`probe`]: the containers' health check (`probe ADDR`: a TCP connection in time);
//! - [`metrics`]: the Prometheus metrics every executable exposes (process, build info)
//!   and their text encoding; [`status_endpoint`]: `/metrics`, `/healthz`, `/readyz` for
//!   the executables without a REST server.
//!
//! It depends on no workspace crate, so the broker (which must not link the protocol or
//! client crates) can use it as well as hub and agent.

pub mod metrics;
pub mod private_fs;
pub mod probe;
pub mod status_endpoint;

use std::future::Future;

use clap::{ArgAction, Command};
use tracing_subscriber::EnvFilter;

/// The defaults hub, agent and broker must agree on, so that each started with no flags
/// finds the others.
pub mod defaults {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    /// The MQTT port (IANA-registered, plain TCP): where the broker listens and where hub
    /// and agent look for it.
    pub const MQTT_PORT: u16 = 1883;

    /// The broker a hub or agent connects to when none is named: this machine's.
    pub const LOCAL_BROKER: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, MQTT_PORT));

    /// The hub's source id, and the source whose topics an agent uses when no sdk-go
    /// config file names them.
    pub const SOURCE_ID: &str = "workbus";

    /// The log filter of a server process when neither `--log` nor `RUST_LOG` is given.
    pub const LOG: &str = "info";
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what systemd and container runtimes send);
/// elsewhere on Ctrl-C.
///
/// The handlers are installed when this is *called*, not when the future is first
/// awaited: call it at the start of `main`, so a signal that arrives while the process
/// is still starting is not lost to the default action (which would kill the process
/// without its shutdown). Must be called within a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A `--log` filter that `tracing_subscriber` cannot read.
#[derive(Debug, thiserror::Error)]
#[error("--log {filter:?} is not a log filter (e.g. info or workbus_hub=debug): {source}")]
pub struct LogFilterError {
    /// The filter as given.
    pub filter: String,
    /// Why it was refused.
    pub source: tracing_subscriber::filter::ParseError,
}

/// The MQTT protocol version a hub or an agent speaks (`--mqtt-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MqttVersion {
    /// MQTT 5 (binary-mode events, as sdk-go).
    #[default]
    #[value(name = "5")]
    V5,
    /// MQTT 3.1.1 (structured-mode events only: it has no user properties; for small
    /// brokers, clustered brokers such as NATS, and devices).
    #[value(name = "3.1.1")]
    V311,
}

impl std::fmt::Display for MqttVersion {
    /// As it is spelled on the command line (clap shows defaults this way).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        })
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (time, level, target, message and fields), for log
    /// collectors.
    Json,
}

/// Logs to standard error (standard output stays for what a command prints) through
/// `tracing_subscriber`, filtered by `filter` (the `--log` flag) if given, else by
/// `RUST_LOG`, else by `default` (e.g. `info`), in `format`. Text is coloured only when
/// standard error is a terminal (and `NO_COLOR` is unset): escape codes in a journal or
/// a file are noise. A bad `--log` is an error; a bad `RUST_LOG` falls back to
/// `default`. A second call keeps the first subscriber.
pub fn init_logging(
    filter: Option<&str>,
    default: &str,
    format: LogFormat,
) -> Result<(), LogFilterError> {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|source| LogFilterError {
            filter: f.to_string(),
            source,
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour_stderr()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Whether log text on standard error may carry colour codes.
fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The flags of `command` and its subcommands that have no environment variable, as
/// `<command path> --<flag>` (positional arguments, `--help` and `--version` aside).
///
/// The command-line rule of every workbus executable is that each flag can also come
/// from the environment (`WORKBUS_<EXECUTABLE>_<FLAG>`); each binary's tests check its
/// `clap::Command` with this. Meant for tests: it first builds `command`, which panics
/// on a misconfigured one as clap's `Command::debug_assert` does.
pub fn flags_without_env(mut command: Command) -> Vec<String> {
    fn walk(command: &Command, path: &str, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(
                arg.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            );
            if arg.is_positional() || builtin || arg.get_env().is_some() {
                continue;
            }
            let name = arg.get_long().unwrap_or(arg.get_id().as_str());
            out.push(format!("{path} --{name}"));
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    command.build();
    let mut out = Vec::new();
    walk(&command, command.get_name(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use clap::Arg;

    use super::*;

    #[test]
    fn flags_without_env_walks_subcommands() {
        let command = Command::new("tool")
            .version("1")
            .arg(Arg::new("file"))
            .arg(Arg::new("log").long("log").env("TOOL_LOG"))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
            .subcommand(
                Command::new("run")
                    .arg(Arg::new("port").long("port"))
                    .arg(Arg::new("dir").long("dir").env("TOOL_DIR")),
            );
        assert_eq!(
            flags_without_env(command),
            ["tool --quiet", "tool run --port"]
        );
    }

    #[test]
    fn bad_log_filter_is_refused_with_the_flag() {
        let e = init_logging(Some("workbus=notalevel"), "info", LogFormat::Text).unwrap_err();
        assert!(
            e.to_string().starts_with("--log \"workbus=notalevel\""),
            "{e}"
        );
    }

    #[test]
    fn local_broker_is_the_mqtt_port_on_loopback() {
        assert_eq!(defaults::LOCAL_BROKER.to_string(), "127.0.0.1:1883");
    }

    /// The agent's property (agent/tests/agent_process.rs): a SIGTERM that arrives after the
    /// call but before the first poll is caught, not left to the default action.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_signal_before_the_first_poll_is_caught() {
        let stop = shutdown_signal();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the signal resolves the future");
    }
}
