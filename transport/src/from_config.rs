//! Turns an sdk-go MQTT config file ([`MqttConfig`]) into a [`TransportConfig`]: the
//! only place that reads the PEM files the config names (the schemas crate does no I/O).

use std::time::Duration;

use workbus_schemas::config::{ConfigError, MqttConfig, PemSource, TlsMode};

use super::{TlsSettings, TransportConfig};

/// Why a config file cannot become a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportConfigError {
    /// `brokerHost` is not `host:port`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `...File` could not be read.
    #[error("cannot read {path}: {source}")]
    ReadPem {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn load(source: &PemSource) -> Result<Vec<u8>, TransportConfigError> {
    match source {
        PemSource::Inline(bytes) => Ok(bytes.clone()),
        PemSource::File(path) => std::fs::read(path).map_err(|e| TransportConfigError::ReadPem {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

impl TransportConfig {
    /// A transport for `client_id` subscribing to `subscriptions`, with broker address,
    /// credentials, keep-alive, QoS and TLS material from `config`.
    pub fn from_mqtt_config(
        config: &MqttConfig,
        client_id: impl Into<String>,
        subscriptions: Vec<String>,
    ) -> Result<TransportConfig, TransportConfigError> {
        let addr = config.broker_addr()?;
        let mut t = TransportConfig::new(addr.host, addr.port, client_id);
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
                ca_pem: Some(load(ca)?),
                ..TlsSettings::default()
            }),
            TlsMode::Mutual { ca, cert, key } => Some(TlsSettings {
                ca_pem: ca.as_ref().map(load).transpose()?,
                client_cert_pem: Some(load(cert)?),
                client_key_pem: Some(load(key)?),
            }),
        };
        Ok(t)
    }
}
