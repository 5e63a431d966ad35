//! The hub's counters, rendered in the Prometheus text format by `/metrics`.
//!
//! Label sets are small and fixed (event type, drop reason): no per-work or
//! per-cluster labels, which is the cardinality trap Maestro fell into.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters keyed by one label value.
type Labelled = Mutex<BTreeMap<String, u64>>;

/// All counters of one hub.
#[derive(Debug, Default)]
pub struct Metrics {
    sent: Mutex<BTreeMap<String, u64>>,
    received: Mutex<BTreeMap<String, u64>>,
    dropped: Mutex<BTreeMap<String, u64>>,
    refused: Mutex<BTreeMap<String, u64>>,
    /// Failed publish attempts (each retried).
    pub publish_failures: AtomicU64,
    /// Status events accepted.
    pub statuses_accepted: AtomicU64,
    /// Deletions completed by a `Deleted` status.
    pub deletions_completed: AtomicU64,
    /// Delete events queued again for deletions still awaiting the agent's
    /// confirmation (`source::redrive`).
    pub deletions_redriven: AtomicU64,
    /// Rejected REST requests (4xx).
    pub api_rejected: AtomicU64,
    /// Group commits of the store (each one `fsync`).
    pub store_commits: AtomicU64,
    /// Writes made durable by those commits.
    pub store_writes: AtomicU64,
    /// Time spent in group commits (running the batch and `fsync`), microseconds.
    pub store_commit_micros: AtomicU64,
    /// Spec resync requests answered (answers queued, or nothing to send).
    pub spec_resyncs_answered: AtomicU64,
    /// Outbox rows parked because they can never be published (see `outbox`).
    pub outbox_parked: AtomicU64,
}

/// The outbox gauges, read from the store when `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxGauges {
    /// Events waiting to be published (parked ones excluded).
    pub pending: u64,
    /// Events parked as unpublishable, kept until a newer event of their work
    /// supersedes them.
    pub parked: u64,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key.to_string()).or_default() += 1;
    }
}

fn get(map: &Mutex<BTreeMap<String, u64>>, key: &str) -> u64 {
    map.lock()
        .map(|m| m.get(key).copied().unwrap_or(0))
        .unwrap_or(0)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts an event acknowledged by the broker, by CloudEvent type.
    pub fn sent(&self, event_type: &str) {
        bump(&self.sent, event_type);
    }
    /// Counts a received, decodable event, by CloudEvent type.
    pub fn received(&self, event_type: &str) {
        bump(&self.received, event_type);
    }
    /// Counts a dropped received event, by reason.
    pub fn dropped(&self, reason: &str) {
        bump(&self.dropped, reason);
    }
    /// Counts a received event refused by `source::admission` (not audited), by reason.
    pub fn refused(&self, reason: &str) {
        bump(&self.refused, reason);
    }
    /// Events refused for one reason so far.
    pub fn refused_count(&self, reason: &str) -> u64 {
        get(&self.refused, reason)
    }
    /// Events sent of one type so far.
    pub fn sent_count(&self, event_type: &str) -> u64 {
        get(&self.sent, event_type)
    }
    /// Events dropped for one reason so far.
    pub fn dropped_count(&self, reason: &str) -> u64 {
        get(&self.dropped, reason)
    }

    /// The Prometheus text exposition, with the outbox gauges when the store answered.
    pub fn render(&self, outbox: Option<OutboxGauges>) -> String {
        let mut out = String::new();
        let families: [(&str, &str, &str, &Labelled); 4] = [
            (
                "workbus_hub_events_sent_total",
                "Events acknowledged by the broker.",
                "type",
                &self.sent,
            ),
            (
                "workbus_hub_events_received_total",
                "Events received from agents.",
                "type",
                &self.received,
            ),
            (
                "workbus_hub_events_dropped_total",
                "Received events dropped, by reason.",
                "reason",
                &self.dropped,
            ),
            (
                "workbus_hub_events_refused_total",
                "Received events refused by the admission checks (not audited), by reason.",
                "reason",
                &self.refused,
            ),
        ];
        for (name, help, label, map) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
                }
            }
        }
        let plain = [
            (
                "workbus_hub_publish_failures_total",
                "Failed publish attempts (retried).",
                &self.publish_failures,
            ),
            (
                "workbus_hub_statuses_accepted_total",
                "Status events stored.",
                &self.statuses_accepted,
            ),
            (
                "workbus_hub_deletions_completed_total",
                "Works hard-deleted after the agent confirmed.",
                &self.deletions_completed,
            ),
            (
                "workbus_hub_deletions_redriven_total",
                "Delete events published again for deletions awaiting the agent's confirmation.",
                &self.deletions_redriven,
            ),
            (
                "workbus_hub_api_rejected_total",
                "REST requests answered with 4xx.",
                &self.api_rejected,
            ),
            (
                "workbus_hub_store_commits_total",
                "Group commits of the store (one fsync each).",
                &self.store_commits,
            ),
            (
                "workbus_hub_store_writes_total",
                "Writes made durable by group commits.",
                &self.store_writes,
            ),
            (
                "workbus_hub_store_commit_microseconds_total",
                "Time spent running and committing store batches.",
                &self.store_commit_micros,
            ),
            (
                "workbus_hub_spec_resyncs_answered_total",
                "Spec resync requests answered.",
                &self.spec_resyncs_answered,
            ),
            (
                "workbus_hub_outbox_parked_total",
                "Outbox events parked because they can never be published.",
                &self.outbox_parked,
            ),
        ];
        for (name, help, c) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        if let Some(outbox) = outbox {
            let gauges = [
                (
                    "workbus_hub_outbox_depth",
                    "Events waiting for a broker acknowledgement (parked ones excluded).",
                    outbox.pending,
                ),
                (
                    "workbus_hub_outbox_parked",
                    "Events parked as unpublishable, kept until a newer event of the same work supersedes them.",
                    outbox.parked,
                ),
            ];
            for (name, help, value) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
        }
        out
    }
}

/// How many clusters have each `(condition type, status)` among OCM's three headline
/// conditions (HubAccepted, Joined, Available), for `workbus_hub_clusters`.
pub fn cluster_condition_counts(
    clusters: &[crate::store::Cluster],
) -> BTreeMap<(String, String), u64> {
    use workbus_schemas::registration::names::condition;
    let mut counts = BTreeMap::new();
    for c in clusters {
        let mc = c.managed_cluster();
        for type_ in [
            condition::HUB_ACCEPTED,
            condition::JOINED,
            condition::AVAILABLE,
        ] {
            if let Some(status) = mc.condition_status(type_) {
                *counts
                    .entry((type_.to_string(), status.to_string()))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The `workbus_hub_clusters{condition,status}` gauge family.
pub fn render_cluster_gauges(counts: &BTreeMap<(String, String), u64>) -> String {
    let name = "workbus_hub_clusters";
    let mut out = format!(
        "# HELP {name} Clusters by condition and status (HubAccepted, Joined, Available).\n# TYPE {name} gauge\n"
    );
    for ((condition, status), n) in counts {
        let _ = writeln!(
            out,
            "{name}{{condition=\"{condition}\",status=\"{status}\"}} {n}"
        );
    }
    out
}
