//! The MQTT Will (last will) of a session: the message the broker publishes for this
//! client when its connection ends without DISCONNECT (a killed process, a network lost
//! for 1.5 × keep-alive). An agent's Will releases its cluster's lease, so the hub learns
//! at once that the cluster is gone rather than when the lease runs out.
//!
//! The message is made anew for every connection attempt (before the first and after
//! every lost connection), so it can name the connection it belongs to: a Will published
//! late for a connection that has already been replaced must be recognisable as stale.
//! It goes out at QoS 1, not retained, without Will delay (the broker publishes it at
//! once); on MQTT 3.1.1 only its topic and payload travel.

use std::fmt;
use std::sync::Arc;

use workbus_schemas::mqtt::MqttMessage;

/// Makes the Will message for the next connection attempt.
#[derive(Clone)]
pub struct Will(Arc<dyn Fn() -> MqttMessage + Send + Sync>);

impl Will {
    /// A Will made by `make` before each connection attempt.
    pub fn new(make: impl Fn() -> MqttMessage + Send + Sync + 'static) -> Will {
        Will(Arc::new(make))
    }

    /// The same Will message for every connection.
    pub fn fixed(message: MqttMessage) -> Will {
        Will::new(move || message.clone())
    }

    /// The message for the connection about to be made (the transport calls this
    /// before each connection attempt).
    pub fn message(&self) -> MqttMessage {
        (self.0)()
    }

    /// rumqttc's MQTT 5 form.
    pub(crate) fn v5(&self) -> rumqttc::v5::mqttbytes::v5::LastWill {
        let m = self.message();
        let properties = rumqttc::v5::mqttbytes::v5::LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: m.content_type,
            response_topic: None,
            correlation_data: None,
            user_properties: m.user_properties,
        };
        rumqttc::v5::mqttbytes::v5::LastWill::new(
            m.topic,
            m.payload,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            Some(properties),
        )
    }

    /// rumqttc's MQTT 3.1.1 form (topic and payload only).
    pub(crate) fn v311(&self) -> rumqttc::LastWill {
        let m = self.message();
        rumqttc::LastWill::new(m.topic, m.payload, rumqttc::QoS::AtLeastOnce, false)
    }
}

impl fmt::Debug for Will {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Will(..)")
    }
}
