//! `workbus-broker` binary: runs the broker until Ctrl-C or SIGTERM, then stops gracefully.
//!
//! Every flag can also come from a `WORKBUS_BROKER_*` environment variable; the defaults
//! are [`BrokerConfig::default`]'s.

use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Parser;
use workbus_broker::{Broker, BrokerConfig};
use workbus_process::{defaults, init_logging, shutdown_signal};

/// `workbus-broker`: the workbus MQTT broker.
#[derive(Debug, Parser)]
#[command(
    name = "workbus-broker",
    version,
    about = "The workbus MQTT 5 and 3.1.1 broker: runs until Ctrl-C or SIGTERM, then stops gracefully"
)]
struct Args {
    /// Listen address for MQTT 5 and 3.1.1 (repeatable; comma-separated in the
    /// environment).
    #[arg(
        long,
        value_name = "ADDR",
        env = "WORKBUS_BROKER_LISTEN",
        value_delimiter = ',',
        default_values_t = BrokerConfig::default().listen
    )]
    listen: Vec<SocketAddr>,
    /// Largest packet accepted, in bytes or with a KiB or MiB suffix.
    #[arg(
        long,
        value_name = "SIZE",
        env = "WORKBUS_BROKER_MAX_PACKET_SIZE",
        default_value_t = Size(BrokerConfig::default().max_packet_size)
    )]
    max_packet_size: Size,
    /// Most concurrent client connections.
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_CONNECTIONS",
        default_value_t = BrokerConfig::default().max_connections
    )]
    max_connections: usize,
    /// Largest keep-alive honoured, in seconds; 0 = no limit.
    #[arg(
        long,
        value_name = "SECS",
        env = "WORKBUS_BROKER_MAX_KEEPALIVE",
        default_value_t = BrokerConfig::default().max_keepalive
    )]
    max_keepalive: u16,
    /// Log filter, e.g. info or workbus_broker=debug (without it: RUST_LOG, else info).
    #[arg(long, value_name = "FILTER", env = "WORKBUS_BROKER_LOG")]
    log: Option<String>,
}

impl Args {
    /// The broker configuration these flags describe.
    fn config(&self) -> BrokerConfig {
        BrokerConfig {
            listen: self.listen.clone(),
            max_packet_size: self.max_packet_size.0,
            max_connections: self.max_connections,
            max_keepalive: self.max_keepalive,
            ..BrokerConfig::default()
        }
    }
}

/// A size in bytes, written as bytes or with a `KiB` or `MiB` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(u32);

const KIB: u32 = 1024;
const MIB: u32 = 1024 * KIB;

/// A `--max-packet-size` that is not a size.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a size in bytes (a number up to 4 GiB, optionally with KiB or MiB)")]
struct NotASize(String);

impl FromStr for Size {
    type Err = NotASize;

    fn from_str(s: &str) -> Result<Size, NotASize> {
        let (digits, unit) = if let Some(d) = s.strip_suffix("MiB") {
            (d, MIB)
        } else if let Some(d) = s.strip_suffix("KiB") {
            (d, KIB)
        } else {
            (s, 1)
        };
        digits
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .map(Size)
            .ok_or_else(|| NotASize(s.to_string()))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n != 0 && n % MIB == 0 => write!(f, "{}MiB", n / MIB),
            n if n != 0 && n % KIB == 0 => write!(f, "{}KiB", n / KIB),
            n => write!(f, "{n}"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let stop = shutdown_signal();
    if let Err(e) = init_logging(args.log.as_deref(), defaults::LOG) {
        eprintln!("workbus-broker: {e}");
        return ExitCode::from(2);
    }
    let handle = match Broker::new(args.config()).start().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("workbus-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in handle.local_addrs() {
        println!("workbus-broker listening on {addr} (MQTT 5 and 3.1.1)");
    }
    stop.await;
    println!("workbus-broker shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workbus-broker").chain(list.iter().copied()))
    }

    #[test]
    fn every_flag_has_an_env_var() {
        let missing = workbus_process::flags_without_env(Args::command());
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let config = args(&[]).expect("no flags needed").config();
        let default = BrokerConfig::default();
        assert_eq!(config.listen, default.listen);
        assert_eq!(config.max_packet_size, default.max_packet_size);
        assert_eq!(config.max_connections, default.max_connections);
        assert_eq!(config.max_keepalive, default.max_keepalive);
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
            "--max-connections",
            "7",
            "--max-keepalive",
            "0",
            "--log",
            "debug",
        ])
        .expect("valid");
        let config = a.config();
        assert_eq!(
            config.listen,
            [
                "127.0.0.1:0".parse().unwrap(),
                "[::1]:1884".parse().unwrap()
            ] as [SocketAddr; 2]
        );
        assert_eq!(config.max_packet_size, 2 * 1024 * 1024);
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.max_keepalive, 0);
        assert_eq!(a.log.as_deref(), Some("debug"));
        let e = |list: &[&str]| args(list).expect_err("refused").kind();
        assert_eq!(e(&["--help"]), ErrorKind::DisplayHelp);
        assert_eq!(e(&["--listen"]), ErrorKind::InvalidValue);
        assert_eq!(e(&["--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(e(&["--listen", "nope"]), ErrorKind::ValueValidation);
        assert_eq!(
            e(&["--max-packet-size", "9999999MiB"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn sizes() {
        let size = |s: &str| s.parse::<Size>().ok().map(|s| s.0);
        assert_eq!(size("600KiB"), Some(600 * 1024));
        assert_eq!(size("1MiB"), Some(1024 * 1024));
        assert_eq!(size("12"), Some(12));
        assert_eq!(size("9999999MiB"), None);
        assert_eq!(size("MiB"), None);
        assert_eq!(size("-1"), None);
        for n in [0, 12, 1024, 1536, 600 * 1024, 1024 * 1024, u32::MAX] {
            assert_eq!(size(&Size(n).to_string()), Some(n), "{n} round-trips");
        }
        assert_eq!(Size(1024 * 1024).to_string(), "1MiB");
    }
}
