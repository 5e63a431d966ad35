//! The agent's Prometheus metrics, served by `--metrics-listen` with `/healthz` and
//! `/readyz` (`workbus_process::status_endpoint`).
//!
//! [`AgentStats`] stays the agent's counter set (the library's API; tests and
//! benchmarks read it); this module shows it under the names OCM users chart —
//! `manifestworks_processed_total`, `cloudevents_sent_total` /
//! `cloudevents_received_total` with sdk-go's labels — and under `workbus_agent_*`,
//! together with the MQTT session's metrics ([`workbus_transport::metrics`]) and the
//! process's ([`workbus_process::metrics`]). Every name is in `docs/metrics.md`.
//!
//! Ready (`/readyz`) means connected, subscribed and resynced: the spec resync request
//! sent after the latest subscribe was acknowledged, and — when it was the digest-only
//! form — its source's reply arrived, so what the agent holds is what its hub wants.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use workbus_process::metrics::Listed;
use workbus_process::metrics::cloudevents::CloudEventLabels;
use workbus_process::status_endpoint::StatusSource;
use workbus_schemas::event_type::label_parts;
use workbus_transport::TransportStats;
use workbus_transport::metrics::TransportCollector;

use crate::runtime::AgentStats;

/// Distinct `source` label values an agent keeps (its hub, a few more at most); events
/// from further sources are counted under [`OTHER_SOURCES`].
pub const SOURCE_LABEL_LIMIT: usize = 16;
/// The `source` label beyond [`SOURCE_LABEL_LIMIT`].
pub const OTHER_SOURCES: &str = "_other";

/// CloudEvents counted by sdk-go's labels, with a bounded set of sources.
#[derive(Debug, Default)]
pub struct CloudEventCounts {
    family: Family<CloudEventLabels, Counter>,
    sources: Mutex<HashSet<String>>,
}

impl CloudEventCounts {
    /// Counts one event of `event_type` between `source` and `consumer`.
    pub fn count(&self, source: &str, consumer: &str, event_type: &str) {
        let (data_type, subresource, action) = label_parts(event_type);
        let source = {
            let mut seen = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.contains(source) || seen.len() < SOURCE_LABEL_LIMIT {
                seen.insert(source.to_string());
                source.to_string()
            } else {
                OTHER_SOURCES.to_string()
            }
        };
        self.family
            .get_or_create(&CloudEventLabels {
                source,
                consumer: consumer.to_string(),
                data_type,
                subresource,
                action,
            })
            .inc();
    }

    /// Events counted with exactly these labels (tests).
    pub fn get(&self, labels: &CloudEventLabels) -> u64 {
        self.family.get(labels).map_or(0, |c| c.get())
    }
}

/// Reads [`AgentStats`] at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<AgentStats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // OCM's work agent counts the spec events it processed by action and result.
        let processed = [
            ("apply", "ok", load(&s.applied)),
            ("apply", "store_error", load(&s.not_applied_unstored)),
            ("delete", "ok", load(&s.deleted)),
            ("ignore", "stale", load(&s.stale)),
            ("ignore", "duplicate", load(&s.duplicates)),
            ("reject", "unverified", load(&s.unverified)),
        ];
        {
            let mut family = encoder.encode_descriptor(
                "manifestworks_processed",
                "Spec events processed, by action (apply, delete, ignore, reject) and code.",
                None,
                MetricType::Counter,
            )?;
            for (action, code, n) in processed {
                ConstCounter::new(n)
                    .encode(family.encode_family(&[("action", action), ("code", code)])?)?;
            }
        }
        let counters = [
            (
                "workbus_agent_events_other_cluster",
                "Events for other clusters, ignored.",
                load(&s.other_cluster),
            ),
            (
                "workbus_agent_events_malformed",
                "Messages that are not valid events, or events that fail to decode.",
                load(&s.malformed),
            ),
            (
                "workbus_agent_status_queued",
                "Status events queued for publishing.",
                load(&s.status_queued),
            ),
            (
                "workbus_agent_status_sent",
                "Status events acknowledged by the broker.",
                load(&s.status_sent),
            ),
            (
                "workbus_agent_spec_resync_requests",
                "Spec resync requests sent.",
                load(&s.resync_requests),
            ),
            (
                "workbus_agent_spec_resync_digest_requests",
                "Spec resync requests sent in the digest-only form.",
                load(&s.digest_requests),
            ),
            (
                "workbus_agent_spec_resyncs_in_sync",
                "Spec resyncs completed by an in-sync reply.",
                load(&s.spec_resyncs_in_sync),
            ),
            (
                "workbus_agent_spec_resyncs_done",
                "Spec resyncs completed by a done reply after the source's answers.",
                load(&s.spec_resyncs_done),
            ),
            (
                "workbus_agent_spec_resync_fallbacks",
                "Digest resyncs the source answered with full: asked again upstream-style.",
                load(&s.spec_resync_fallbacks),
            ),
            (
                "workbus_agent_status_resyncs",
                "Status resync requests answered.",
                load(&s.status_resyncs),
            ),
            (
                "workbus_agent_status_resyncs_unchanged",
                "Status resync requests whose digest matched (answered with nothing).",
                load(&s.status_resyncs_unchanged),
            ),
            (
                "workbus_agent_store_errors",
                "Local store failures (the event is dropped; resync repairs it).",
                load(&s.store_errors),
            ),
            (
                "workbus_agent_feedback_watch_fallbacks",
                "Watched resources beyond --max-feedback-watch, polled instead.",
                load(&s.feedback_watch_fallbacks),
            ),
            (
                "workbus_agent_watch_refreshes",
                "Status refreshes brought forward by a change of a watched object.",
                load(&s.watch_refreshes),
            ),
            (
                "workbus_agent_outbox_compacted",
                "Statuses the full outbox dropped (intermediate or first transitions).",
                load(&s.outbox_compacted),
            ),
            (
                "workbus_agent_outbox_compacted_finals",
                "Final states the full outbox dropped (re-sent from the store once it drains).",
                load(&s.outbox_compacted_finals),
            ),
        ];
        for (name, help, n) in counters {
            ConstCounter::new(n).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "workbus_agent_feedback_watches",
                "Feedback watches open now.",
                load(&s.feedback_watches),
            ),
            (
                "workbus_agent_outbox_statuses",
                "Statuses waiting in the outbox for the broker's acknowledgement.",
                load(&s.outbox_statuses),
            ),
            (
                "workbus_agent_resynced",
                "1 once the spec resync after the latest subscribe is complete.",
                u64::from(s.resynced.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, n) in gauges {
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

/// What the agent's `--metrics-listen` endpoint shows.
#[derive(Debug)]
pub struct AgentStatus {
    registry: Registry,
    stats: Arc<AgentStats>,
    transport: Arc<TransportStats>,
}

impl AgentStatus {
    /// The endpoint's view of a running agent (`AgentHandle::stats`,
    /// `AgentHandle::transport_stats`) whose MQTT client id is `client_id`.
    pub fn new(stats: Arc<AgentStats>, transport: Arc<TransportStats>, client_id: &str) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "cloudevents_sent",
            "CloudEvents sent and acknowledged by the broker (sdk-go's name and labels)",
            Listed(stats.events_sent.family.clone()),
        );
        registry.register(
            "cloudevents_received",
            "CloudEvents received (sdk-go's name and labels)",
            Listed(stats.events_received.family.clone()),
        );
        registry.register_collector(Box::new(StatsCollector(stats.clone())));
        registry.register_collector(Box::new(TransportCollector::new(
            transport.clone(),
            client_id,
        )));
        workbus_process::metrics::register_process_metrics(&mut registry, "agent");
        Self {
            registry,
            stats,
            transport,
        }
    }
}

impl StatusSource for AgentStatus {
    fn metrics(&self) -> String {
        workbus_process::metrics::encode(&self.registry)
    }

    fn readiness(&self) -> Result<(), String> {
        if !self.transport.connected.load(Ordering::Relaxed) {
            return Err("not connected to the MQTT broker".into());
        }
        if !self.transport.subscribed.load(Ordering::Relaxed) {
            return Err("connected, not subscribed yet".into());
        }
        if !self.stats.resynced.load(Ordering::Relaxed) {
            return Err("subscribed, spec resync not complete yet".into());
        }
        Ok(())
    }
}
