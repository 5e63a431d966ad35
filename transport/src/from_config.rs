//! The sdk-go MQTT config file: [`load_mqtt_config`] reads and parses it (the one place
//! hub and agent do), and [`TransportConfig::from_mqtt_config`] turns it into a
//! transport. The PEM files the config names are not read here but by the transport, on
//! every connection attempt (so rotated files are picked up on reconnect; the schemas
//! crate does no I/O).

use std::path::{Path, PathBuf};
use std::time::Duration;

use workbus_schemas::config::{ConfigError, MqttConfig, TlsMode};

use super::{Endpoints, TlsSettings, TransportConfig};

/// Why a config file cannot become a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportConfigError {
    /// `brokerHost` or a `brokerHosts` entry is not `host:port`.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why an sdk-go MQTT config file cannot be loaded; both name the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid sdk-go MQTT config.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ConfigError,
    },
}

impl LoadConfigError {
    /// The file that failed.
    pub fn path(&self) -> &Path {
        match self {
            LoadConfigError::Read { path, .. } | LoadConfigError::Invalid { path, .. } => path,
        }
    }
}

/// Reads and parses the sdk-go MQTT config file at `path` (YAML or JSON, §1.8); each
/// key sdk-go does not know is logged as a warning (and ignored, as in Go).
pub fn load_mqtt_config(path: &Path) -> Result<MqttConfig, LoadConfigError> {
    let bytes = std::fs::read(path).map_err(|source| LoadConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = MqttConfig::from_bytes(&bytes).map_err(|source| LoadConfigError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    for key in MqttConfig::unknown_keys(&bytes) {
        tracing::warn!(
            file = %path.display(),
            key = %key,
            "unknown key in the MQTT config file, ignored (sdk-go's keys: brokerHost, \
             username, password, keepAlive, dialTimeout, pubQoS, subQoS, topics.*, caFile, \
             caData, clientCertFile, clientCertData, clientKeyFile, clientKeyData)"
        );
    }
    Ok(config)
}

impl TransportConfig {
    /// A transport for `client_id` subscribing to `subscriptions`, with broker addresses
    /// (`brokerHost`, then `brokerHosts`), credentials, keep-alive, QoS and TLS material
    /// from `config`.
    pub fn from_mqtt_config(
        config: &MqttConfig,
        client_id: impl Into<String>,
        subscriptions: Vec<String>,
    ) -> Result<TransportConfig, TransportConfigError> {
        let first = config.broker_addr()?;
        let mut t = TransportConfig::new(String::new(), 0, client_id);
        t.endpoints = Endpoints::starting_with(first, config.broker_addrs()?);
        t.subscriptions = subscriptions;
        t.keep_alive = Duration::from_secs(u64::from(config.keep_alive.max(1)));
        t.pub_qos = config.pub_qos.as_u8();
        t.sub_qos = config.sub_qos.as_u8();
        if let Some(user) = &config.username {
            t.credentials = Some((user.clone(), config.password.clone().unwrap_or_default()));
        }
        t.tls = match &config.tls {
            TlsMode::Plain => None,
            TlsMode::ServerAuth { ca } => Some(TlsSettings {
                ca_pem: Some(ca.clone()),
                ..TlsSettings::default()
            }),
            TlsMode::Mutual { ca, cert, key } => Some(TlsSettings {
                ca_pem: ca.clone(),
                client_cert_pem: Some(cert.clone()),
                client_key_pem: Some(key.clone()),
            }),
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_mqtt_config_names_the_file_it_could_not_use() {
        let dir = std::env::temp_dir().join(format!("workbus-load-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.yaml");
        let e = load_mqtt_config(&missing).unwrap_err();
        assert!(matches!(e, LoadConfigError::Read { .. }), "{e:?}");
        assert_eq!(e.path(), missing);
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display()))
        );

        let invalid = dir.join("invalid.yaml");
        std::fs::write(&invalid, "topics: 7\n").unwrap();
        let e = load_mqtt_config(&invalid).unwrap_err();
        assert!(matches!(e, LoadConfigError::Invalid { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", invalid.display())),
            "{e}"
        );

        let valid = dir.join("valid.yaml");
        std::fs::write(
            &valid,
            "brokerHost: broker:1883\ntopics:\n  sourceEvents: sources/s/consumers/+/sourceevents\n  agentEvents: sources/s/consumers/+/agentevents\n",
        )
        .unwrap();
        assert_eq!(load_mqtt_config(&valid).unwrap().broker_host, "broker:1883");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
