//! `workbus-hub serve`: runs a hub until Ctrl-C / SIGTERM. Broker settings come from
//! `--mqtt-config FILE` (sdk-go format) or `--broker HOST:PORT`; with neither, the hub
//! starts its embedded MQTT broker on `--broker-listen` (the no-setup default) and agents
//! connect there.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use workbus_schemas::config::{MqttConfig, split_host_port};

use crate::config::{BrokerSettings, HubConfig, StoreSettings};
use crate::hub::Hub;

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// REST listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the SQLite database.
    #[arg(long, default_value = "./workbus-data")]
    pub data_dir: PathBuf,
    /// Source id (`[a-z0-9-]+`).
    #[arg(long, default_value = "workbus")]
    pub source_id: String,
    /// sdk-go MQTT config file (broker, TLS, topics).
    #[arg(long, conflicts_with = "broker")]
    pub mqtt_config: Option<PathBuf>,
    /// External broker `host:port` (plain TCP, default topics).
    #[arg(long)]
    pub broker: Option<String>,
    /// Where the embedded broker listens when no external broker is given (a free port
    /// is used if this one is taken).
    #[arg(long, default_value = "0.0.0.0:1883")]
    pub broker_listen: SocketAddr,
}

impl ServeArgs {
    /// The hub config these flags describe.
    pub fn hub_config(&self) -> Result<HubConfig, String> {
        let broker = match (&self.mqtt_config, &self.broker) {
            (Some(path), _) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let cfg = MqttConfig::from_bytes(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                BrokerSettings::MqttConfig(Box::new(cfg))
            }
            (None, Some(addr)) => {
                let a = split_host_port(addr).map_err(|e| format!("--broker: {e}"))?;
                BrokerSettings::Address {
                    host: a.host,
                    port: a.port,
                }
            }
            (None, None) => HubConfig::new().broker,
        };
        Ok(HubConfig {
            store: StoreSettings::sqlite(&self.data_dir),
            listen: self.listen,
            source_id: self.source_id.clone(),
            broker,
            ..HubConfig::new()
        })
    }
}

/// Runs the hub until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = args.hub_config()?;
    let embedded = if args.mqtt_config.is_none() && args.broker.is_none() {
        let (broker, moved) = crate::embedded_broker::start(args.broker_listen)
            .await
            .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
        let addr = broker.local_addr();
        if moved {
            println!(
                "note: {} is in use; the embedded broker took {addr}",
                args.broker_listen
            );
        }
        println!("embedded MQTT broker (MQTT 5 and 3.1.1) listening on {addr}");
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        config.broker = BrokerSettings::Address {
            host,
            port: addr.port(),
        };
        Some(broker)
    } else {
        None
    };
    let hub = Hub::start(config).await.map_err(|e| e.to_string())?;
    println!("workbus hub listening on {}", hub.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    hub.shutdown().await;
    if let Some(broker) = embedded {
        broker.shutdown().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
