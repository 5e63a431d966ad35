//! The broker's counters ([`BrokerStats`]) as Prometheus metrics: connections,
//! messages in and out, drops, queue depths, refusals (ACL, connect, limits) and forced
//! disconnects (abuse, revoked certificates, slow consumers, protocol violations).
//!
//! Read from the router's atomics at scrape time (a [`Collector`]): routing pays
//! nothing for being observed. The standalone binary serves them on `--metrics-listen`;
//! the hub adds them to its `/metrics` when it runs this broker embedded.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::BrokerStats;
use crate::router::Router;

/// The collector of one broker ([`crate::BrokerHandle::metrics`]).
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    router: Weak<Router>,
}

impl BrokerMetrics {
    pub(crate) fn new(router: Weak<Router>) -> Self {
        Self { router }
    }
}

/// A counter family with one label: its name (without `_total`), help, label key, and
/// the `(label value, count)` pairs.
type LabelledCounters<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, u64)>);

impl Collector for BrokerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(router) = self.router.upgrade() else {
            return Ok(());
        };
        let s = BrokerStats::of(&router);
        let gauges = [
            (
                "workbus_broker_connections",
                "Clients connected now (CONNACK sent, not yet disconnected).",
                s.connected_clients as u64,
            ),
            (
                "workbus_broker_queued_messages",
                "Messages queued for delivery now, over all connections.",
                s.queued_messages,
            ),
            (
                "workbus_broker_queued_bytes",
                "Bytes of the messages queued for delivery now.",
                s.queued_bytes,
            ),
            (
                "workbus_broker_deepest_queue_messages",
                "Messages queued for the connection that has the most (a slow consumer shows here first).",
                s.deepest_queue,
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
                .encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters = [
            (
                "workbus_broker_messages_received",
                "PUBLISH packets accepted and routed (wills included).",
                s.published,
            ),
            (
                "workbus_broker_messages_delivered",
                "Message copies queued to subscribers.",
                s.delivered,
            ),
            (
                "workbus_broker_messages_dropped",
                "Message copies not delivered: a subscriber's queue overflowed, or the message exceeded its maximum packet size.",
                s.dropped,
            ),
            (
                "workbus_broker_tls_handshake_failures",
                "TLS handshakes that failed or timed out.",
                s.tls_handshake_failures,
            ),
            (
                "workbus_broker_accept_errors",
                "Failed accept calls (typically out of file descriptors).",
                s.accept_errors,
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
        let labelled: [LabelledCounters; 3] = [
            (
                "workbus_broker_acl_denied",
                "Operations the authorizer (topic ACL) refused, by operation.",
                "operation",
                vec![
                    ("publish", s.denied_publishes),
                    ("subscribe", s.denied_subscriptions),
                ],
            ),
            (
                "workbus_broker_refused",
                "Connections and subscriptions refused, by reason: bad or missing credentials or identity at CONNECT, the per-address or total connection cap at accept, a subscription limit.",
                "reason",
                vec![
                    ("connect", s.refused_connections),
                    ("per_address", s.refused_per_address),
                    ("capacity", s.refused_at_capacity),
                    ("subscription_limit", s.refused_subscriptions),
                ],
            ),
            (
                "workbus_broker_disconnects",
                "Connections the broker closed, by reason: too many refused operations, a revoked certificate, a queue overflow, a protocol violation.",
                "reason",
                vec![
                    ("abuse", s.abuse_disconnects),
                    ("revoked", s.revoked_disconnects),
                    ("slow_consumer", s.slow_consumer_disconnects),
                    ("protocol_violation", s.protocol_violations),
                ],
            ),
        ];
        for (name, help, key, values) in labelled {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (value, count) in values {
                ConstCounter::new(count).encode(family.encode_family(&[(key, value)])?)?;
            }
        }
        Ok(())
    }
}
