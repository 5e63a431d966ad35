//! The embedded MQTT broker the hub starts when no external broker is configured: the
//! "no setup" default. It binds the requested address and, when that port is taken (for
//! example by a Mosquitto already running on 1883), falls back to a free port and says
//! so, so that a newcomer's first command never fails on a busy port.

use std::net::SocketAddr;

use workbus_broker::{Broker, BrokerConfig, BrokerError, BrokerHandle};

/// Starts the embedded broker on `preferred`, or on a free port of the same interface
/// if that one is in use. Returns the handle and whether the fallback was used.
pub async fn start(preferred: SocketAddr) -> Result<(BrokerHandle, bool), BrokerError> {
    match Broker::new(BrokerConfig::with_listen(preferred))
        .start()
        .await
    {
        Ok(h) => Ok((h, false)),
        Err(BrokerError::Bind { .. }) if preferred.port() != 0 => {
            let mut any = preferred;
            any.set_port(0);
            let h = Broker::new(BrokerConfig::with_listen(any)).start().await?;
            Ok((h, true))
        }
        Err(e) => Err(e),
    }
}
