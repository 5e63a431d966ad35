//! `workbus-broker` binary: runs the broker until Ctrl-C or SIGTERM, then stops gracefully.
//!
//! Flags are parsed by hand: five flags do not justify a command-line parser dependency.

use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use workbus_broker::{Broker, BrokerConfig};

const USAGE: &str = "\
usage: workbus-broker [options]

  --listen ADDR           listen address for MQTT 5 and 3.1.1 (repeatable; default 0.0.0.0:1883)
  --max-packet-size SIZE  largest packet accepted, bytes or with KiB/MiB suffix (default 1MiB)
  --max-connections N     most concurrent client connections (default 100000)
  --max-keepalive SECS    largest keep-alive honoured, 0 = no limit (default 600)
  --log FILTER            tracing filter, e.g. info or workbus_broker=debug (default info;
                          RUST_LOG is used when --log is absent)
  -h, --help              this text
";

/// What the command line asked for.
struct Args {
    config: BrokerConfig,
    log: Option<String>,
}

fn parse_size(s: &str) -> Option<u32> {
    let (digits, mult) = if let Some(d) = s.strip_suffix("MiB") {
        (d, 1024 * 1024)
    } else if let Some(d) = s.strip_suffix("KiB") {
        (d, 1024)
    } else {
        (s, 1)
    };
    digits.trim().parse::<u32>().ok()?.checked_mul(mult)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut config = BrokerConfig::default();
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut log = None;
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value("--listen")?;
                listen.push(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--max-packet-size" => {
                let v = value("--max-packet-size")?;
                config.max_packet_size =
                    parse_size(&v).ok_or_else(|| format!("--max-packet-size {v}: not a size"))?;
            }
            "--max-connections" => {
                let v = value("--max-connections")?;
                config.max_connections = v
                    .parse()
                    .map_err(|e| format!("--max-connections {v}: {e}"))?;
            }
            "--max-keepalive" => {
                let v = value("--max-keepalive")?;
                config.max_keepalive =
                    v.parse().map_err(|e| format!("--max-keepalive {v}: {e}"))?;
            }
            "--log" => log = Some(value("--log")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !listen.is_empty() {
        config.listen = listen;
    }
    Ok(Some(Args { config, log }))
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM, the signal container runtimes send.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("workbus-broker: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = match &args.log {
        Some(f) => EnvFilter::try_new(f),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("workbus-broker: bad --log filter: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let handle = match Broker::new(args.config).start().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("workbus-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in handle.local_addrs() {
        println!("workbus-broker listening on {addr} (MQTT 5 and 3.1.1)");
    }
    stop_signal().await;
    println!("workbus-broker shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags() {
        let a = args(&[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:1884",
            "--max-packet-size",
            "2MiB",
        ])
        .expect("valid")
        .expect("not help");
        assert_eq!(a.config.listen.len(), 2);
        assert_eq!(a.config.max_packet_size, 2 * 1024 * 1024);
        assert_eq!(parse_size("600KiB"), Some(600 * 1024));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("9999999MiB"), None);
        assert!(args(&["--help"]).expect("valid").is_none());
        assert!(args(&["--listen"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--listen", "nope"]).is_err());
    }
}
