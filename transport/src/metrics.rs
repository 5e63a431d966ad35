//! The transport's [`TransportStats`] as Prometheus metrics, for whichever process owns
//! the session (hub or agent): connection state, reconnects under sdk-go's name
//! `cloudevents_client_reconnected_total`, message and byte counts, lost publishes,
//! session take-overs, and the publish-to-acknowledgement latency histogram.
//!
//! Read at scrape time from the same atomics the transport always kept (a
//! [`Collector`]), so the session's hot path gains only the histogram observation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::TransportStats;

/// Bounds (seconds) of the publish-to-acknowledgement histogram: a PUBACK on a healthy
/// local link takes well under a millisecond, the transport gives up at its ack
/// timeout (tens of seconds).
pub const ACK_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// The publish-to-acknowledgement latency histogram ([`ACK_BUCKETS`]).
#[derive(Debug)]
pub struct AckLatency(Histogram);

impl Default for AckLatency {
    fn default() -> Self {
        Self(Histogram::new(ACK_BUCKETS))
    }
}

impl AckLatency {
    /// Records one acknowledged publish.
    pub fn observe(&self, latency: Duration) {
        self.0.observe(latency.as_secs_f64());
    }
}

/// Exposes one transport's stats; register it in the owner's registry.
#[derive(Debug)]
pub struct TransportCollector {
    stats: Arc<TransportStats>,
    client_id: String,
}

impl TransportCollector {
    /// The collector of the session with `client_id` (a label of the reconnect counter,
    /// as sdk-go labels it).
    pub fn new(stats: Arc<TransportStats>, client_id: impl Into<String>) -> Self {
        Self {
            stats,
            client_id: client_id.into(),
        }
    }
}

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        {
            let mut family = encoder.encode_descriptor(
                "cloudevents_client_reconnected",
                "Times the MQTT client connected again after a lost connection.",
                None,
                MetricType::Counter,
            )?;
            let labels = [("client_id", self.client_id.as_str())];
            ConstCounter::new(load(&s.reconnects)).encode(family.encode_family(&labels)?)?;
        }
        let flags = [
            (
                "workbus_mqtt_connected",
                "1 while the MQTT session is connected to the broker.",
                s.connected.load(Ordering::Relaxed),
            ),
            (
                "workbus_mqtt_subscribed",
                "1 while the MQTT session is connected and holds all its subscriptions.",
                s.subscribed.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, on) in flags {
            ConstGauge::new(i64::from(on)).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        let counters = [
            (
                "workbus_mqtt_connects",
                "Successful MQTT connections, the first included.",
                load(&s.connects),
            ),
            (
                "workbus_mqtt_messages_received",
                "MQTT messages received.",
                load(&s.received),
            ),
            (
                "workbus_mqtt_messages_published",
                "MQTT messages published and acknowledged by the broker.",
                load(&s.published),
            ),
            (
                "workbus_mqtt_message_bytes_received",
                "Bytes of whole messages received (topic, properties, payload).",
                load(&s.message_bytes_received),
            ),
            (
                "workbus_mqtt_message_bytes_published",
                "Bytes of whole messages published and acknowledged.",
                load(&s.message_bytes_published),
            ),
            (
                "workbus_mqtt_publishes_lost",
                "Publishes failed because the connection was lost before their acknowledgement (published again by their owner).",
                load(&s.publishes_lost),
            ),
            (
                "workbus_mqtt_session_taken_over",
                "Connections the broker closed because another client connected with the same client id.",
                load(&s.taken_over),
            ),
            (
                "workbus_mqtt_tls_errors",
                "Connection attempts skipped because the TLS files were unusable.",
                load(&s.tls_errors),
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        s.publish_ack_seconds.0.encode(encoder.encode_descriptor(
            "workbus_mqtt_publish_ack_duration_seconds",
            "Time from handing a message to the MQTT session to the broker's acknowledgement.",
            None,
            MetricType::Histogram,
        )?)
    }
}
