//! The hub's Prometheus metrics (`prometheus_client`), served by `/metrics`.
//!
//! What is counted where: the outbox (events sent, publish failures, parked rows), the
//! source loop (events received, dropped, refused; statuses accepted; deletions), the
//! store's committer (commits, writes, their time), the REST layer (requests by route
//! template, method and code, and their latency), plus the spec-to-first-status latency,
//! the MQTT session ([`workbus_transport::metrics`]), the embedded broker when this
//! process runs one ([`workbus_broker::metrics`]), and the process itself
//! ([`workbus_process::metrics`]). Every name, type and label is in `docs/metrics.md`.
//!
//! Names follow what OCM and Maestro users already chart where one exists:
//! `cloudevents_sent_total` / `cloudevents_received_total` (sdk-go's labels `source`,
//! `consumer`, `type`, `subresource`, `action`), `rest_api_inbound_request_count` and
//! `rest_api_inbound_request_duration` (Maestro's, `path` with ids as `-`),
//! `resource_first_status_latency_seconds`, `resources_spec_resync_duration_seconds`;
//! the earlier `workbus_hub_*` names stay as they were (tests, benchmarks and the
//! README read them).
//!
//! **Cardinality is bounded.** No label holds a work's id or name (Maestro's per-id
//! latency series are the trap this avoids). Event types and actions outside the
//! protocol's are counted as `other`, so a client sending made-up types cannot grow a
//! family. `consumer` names the cluster for the first [`CONSUMER_LABEL_LIMIT`] clusters
//! seen; later ones are counted under [`OTHER_CONSUMERS`], so a 10,000-cluster fleet
//! costs a bounded number of series.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use workbus_process::metrics::cloudevents::CloudEventLabels;
use workbus_process::metrics::{LATENCY_BUCKETS, Listed};
use workbus_schemas::event_type::{Action, EventType, OTHER, SubResource, label_parts};

/// Distinct clusters named in the `consumer` label; later ones are [`OTHER_CONSUMERS`].
pub const CONSUMER_LABEL_LIMIT: usize = 1_000;
/// The `consumer` label of clusters beyond [`CONSUMER_LABEL_LIMIT`].
pub const OTHER_CONSUMERS: &str = "_other";
/// Spec events awaiting their first status that the spec-to-status clock follows at
/// once; beyond it, entries older than [`SPEC_CLOCK_MAX_AGE`] are forgotten, and if
/// none is, the new one is not timed.
pub const SPEC_CLOCK_CAPACITY: usize = 100_000;
/// How long the spec-to-status clock waits for a first status (an agent that is gone
/// must not hold its entries forever).
pub const SPEC_CLOCK_MAX_AGE: Duration = Duration::from_secs(3600);

/// Buckets (seconds) of the spec-to-first-status latency: Maestro's 5, 30, 120 and
/// 600 s bounds, plus the sub-second ones our round trips take.
const FIRST_STATUS_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0,
];

/// Buckets (seconds) of the store's group commits (each one `fsync`).
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One label, `type` or `reason`, of the `workbus_hub_events_*` families.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OneLabel {
    key: &'static str,
    value: String,
}

impl EncodeLabelSet for OneLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [(self.key, self.value.as_str())].encode(encoder)
    }
}

/// Maestro's REST labels: `code`, `method`, `path` (the route with ids as `-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RestLabels {
    code: u16,
    method: &'static str,
    path: String,
}

impl EncodeLabelSet for RestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let code = self.code.to_string();
        [
            ("code", code.as_str()),
            ("method", self.method),
            ("path", self.path.as_str()),
        ]
        .encode(encoder)
    }
}

/// A counter written under its own name, as Maestro's Go server writes
/// `rest_api_inbound_request_count` (client_golang keeps a counter's name in the text
/// format; `prometheus_client` would append `_total`). Declared `untyped`: the series
/// users query keeps its name, and PromQL's `rate` works on it the same.
#[derive(Debug, Clone, Default)]
struct NamedCounter(Counter);

impl TypedMetric for NamedCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for NamedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

fn rest_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
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

/// When each work's latest spec event was acknowledged, until its first status.
#[derive(Debug, Default)]
struct SpecClock {
    published: HashMap<String, Instant>,
}

impl SpecClock {
    fn start(&mut self, uid: &str, now: Instant) {
        if self.published.len() >= SPEC_CLOCK_CAPACITY && !self.published.contains_key(uid) {
            self.published
                .retain(|_, t| now.duration_since(*t) < SPEC_CLOCK_MAX_AGE);
            if self.published.len() >= SPEC_CLOCK_CAPACITY {
                return;
            }
        }
        self.published.insert(uid.to_string(), now);
    }

    fn stop(&mut self, uid: &str) -> Option<Instant> {
        self.published.remove(uid)
    }
}

/// All metrics of one hub.
#[derive(Debug)]
pub struct Metrics {
    registry: RwLock<Registry>,
    source_id: String,
    sent: Family<OneLabel, Counter>,
    received: Family<OneLabel, Counter>,
    dropped: Family<OneLabel, Counter>,
    refused: Family<OneLabel, Counter>,
    cloudevents_sent: Family<CloudEventLabels, Counter>,
    cloudevents_received: Family<CloudEventLabels, Counter>,
    consumers: Mutex<HashSet<String>>,
    rest_requests: Family<RestLabels, NamedCounter>,
    rest_duration: Family<RestLabels, Histogram, fn() -> Histogram>,
    first_status: Histogram,
    spec_clock: Mutex<SpecClock>,
    outbox_depth: Gauge,
    outbox_parked_now: Gauge,
    clusters: Family<Vec<(&'static str, String)>, Gauge>,
    /// Serialises "set the scrape-time gauges, then encode" between concurrent scrapes.
    scrape: Mutex<()>,
    broker: OnceLock<()>,
    /// Failed publish attempts (each retried).
    pub publish_failures: Counter,
    /// Status events accepted.
    pub statuses_accepted: Counter,
    /// Deletions completed by a `Deleted` status.
    pub deletions_completed: Counter,
    /// Delete events queued again for deletions still awaiting the agent's
    /// confirmation (`source::redrive`).
    pub deletions_redriven: Counter,
    /// Rejected REST requests (4xx).
    pub api_rejected: Counter,
    /// Group commits of the store (each one `fsync`).
    pub store_commits: Counter,
    /// Writes made durable by those commits.
    pub store_writes: Counter,
    /// Time spent in group commits (running the batch and `fsync`), microseconds.
    pub store_commit_micros: Counter,
    /// The same commits' durations, as a histogram (seconds).
    pub store_commit_seconds: Histogram,
    /// Spec resync requests answered (answers queued, or nothing to send).
    pub spec_resyncs_answered: Counter,
    /// Time from a spec resync request's arrival to its answers being queued (seconds).
    pub spec_resync_seconds: Histogram,
    /// Outbox rows parked because they can never be published (see `outbox`).
    pub outbox_parked: Counter,
    /// Partitions whose outbox rows this replica publishes (several hubs, issue 16;
    /// all of them on a single hub).
    pub partitions_owned: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(workbus_process::defaults::SOURCE_ID)
    }
}

impl Metrics {
    /// The metrics of a hub with source id `source_id` (the `source` label).
    pub fn new(source_id: &str) -> Self {
        let m = Metrics {
            registry: RwLock::new(Registry::default()),
            source_id: source_id.to_string(),
            sent: Family::default(),
            received: Family::default(),
            dropped: Family::default(),
            refused: Family::default(),
            cloudevents_sent: Family::default(),
            cloudevents_received: Family::default(),
            consumers: Mutex::default(),
            rest_requests: Family::default(),
            rest_duration: Family::new_with_constructor(rest_histogram),
            first_status: Histogram::new(FIRST_STATUS_BUCKETS),
            spec_clock: Mutex::default(),
            outbox_depth: Gauge::default(),
            outbox_parked_now: Gauge::default(),
            clusters: Family::default(),
            scrape: Mutex::new(()),
            broker: OnceLock::new(),
            publish_failures: Counter::default(),
            statuses_accepted: Counter::default(),
            deletions_completed: Counter::default(),
            deletions_redriven: Counter::default(),
            api_rejected: Counter::default(),
            store_commits: Counter::default(),
            store_writes: Counter::default(),
            store_commit_micros: Counter::default(),
            store_commit_seconds: Histogram::new(COMMIT_BUCKETS),
            spec_resyncs_answered: Counter::default(),
            spec_resync_seconds: Histogram::new(LATENCY_BUCKETS),
            outbox_parked: Counter::default(),
            partitions_owned: Gauge::default(),
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let mut r = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Counters are registered without `_total`: the encoder appends it.
        let events: [(&str, &str, &Family<OneLabel, Counter>); 4] = [
            (
                "workbus_hub_events_sent",
                "Events acknowledged by the broker, by CloudEvent type",
                &self.sent,
            ),
            (
                "workbus_hub_events_received",
                "Events received from agents, by CloudEvent type",
                &self.received,
            ),
            (
                "workbus_hub_events_dropped",
                "Received events dropped, by reason",
                &self.dropped,
            ),
            (
                "workbus_hub_events_refused",
                "Received events refused by the admission checks (not audited), by reason",
                &self.refused,
            ),
        ];
        for (name, help, family) in events {
            r.register(name, help, Listed(family.clone()));
        }
        let plain: [(&str, &str, &Counter); 10] = [
            (
                "workbus_hub_publish_failures",
                "Failed publish attempts (retried)",
                &self.publish_failures,
            ),
            (
                "workbus_hub_statuses_accepted",
                "Status events stored",
                &self.statuses_accepted,
            ),
            (
                "workbus_hub_deletions_completed",
                "Works hard-deleted after the agent confirmed",
                &self.deletions_completed,
            ),
            (
                "workbus_hub_deletions_redriven",
                "Delete events published again for deletions awaiting the agent's confirmation",
                &self.deletions_redriven,
            ),
            (
                "workbus_hub_api_rejected",
                "REST requests answered with 4xx",
                &self.api_rejected,
            ),
            (
                "workbus_hub_store_commits",
                "Group commits of the store (one fsync each)",
                &self.store_commits,
            ),
            (
                "workbus_hub_store_writes",
                "Writes made durable by group commits",
                &self.store_writes,
            ),
            (
                "workbus_hub_store_commit_microseconds",
                "Time spent running and committing store batches, in microseconds",
                &self.store_commit_micros,
            ),
            (
                "workbus_hub_spec_resyncs_answered",
                "Spec resync requests answered",
                &self.spec_resyncs_answered,
            ),
            (
                "workbus_hub_outbox_parked",
                "Outbox events parked because they can never be published",
                &self.outbox_parked,
            ),
        ];
        for (name, help, counter) in plain {
            r.register(name, help, counter.clone());
        }
        r.register(
            "workbus_hub_outbox_depth",
            "Events waiting for a broker acknowledgement (parked ones excluded)",
            self.outbox_depth.clone(),
        );
        // A gauge may carry the name the parked counter has without `_total`.
        r.register(
            "workbus_hub_outbox_parked",
            "Events parked as unpublishable, kept until a newer event of the same work supersedes them",
            self.outbox_parked_now.clone(),
        );
        r.register(
            "workbus_hub_partitions_owned",
            "Cluster partitions whose events this hub replica publishes (of 64)",
            self.partitions_owned.clone(),
        );
        r.register(
            "workbus_hub_clusters",
            "Clusters by condition and status (HubAccepted, Joined, Available)",
            Listed(self.clusters.clone()),
        );
        r.register(
            "cloudevents_sent",
            "CloudEvents sent and acknowledged by the broker (sdk-go's name and labels)",
            Listed(self.cloudevents_sent.clone()),
        );
        r.register(
            "cloudevents_received",
            "CloudEvents received (sdk-go's name and labels)",
            Listed(self.cloudevents_received.clone()),
        );
        r.register(
            "rest_api_inbound_request_count",
            "REST requests by code, method and route (Maestro's name; ids in the path are -)",
            Listed(self.rest_requests.clone()),
        );
        r.register(
            "rest_api_inbound_request_duration",
            "REST request latency in seconds, to the response head (Maestro's name)",
            Listed(self.rest_duration.clone()),
        );
        r.register(
            "resource_first_status_latency_seconds",
            "Time from a work's spec event being acknowledged by the broker to the first status accepted after it",
            self.first_status.clone(),
        );
        r.register(
            "resources_spec_resync_duration_seconds",
            "Time from a spec resync request's arrival to its answers being queued",
            self.spec_resync_seconds.clone(),
        );
        r.register(
            "workbus_hub_store_commit_duration_seconds",
            "Time of one group commit of the store (running the batch and fsync)",
            self.store_commit_seconds.clone(),
        );
        workbus_process::metrics::register_process_metrics(&mut r, "hub");
    }

    /// Adds a collector (the MQTT session's, the embedded broker's) to what `/metrics`
    /// shows.
    pub fn register_collector(&self, collector: impl Collector) {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(collector));
    }

    /// Adds the embedded broker's metrics; only the first call counts (one broker per
    /// hub process).
    pub fn attach_broker(&self, collector: impl Collector) {
        if self.broker.set(()).is_ok() {
            self.register_collector(collector);
        }
    }

    fn consumer(&self, cluster: Option<&str>) -> String {
        let Some(cluster) = cluster.filter(|c| !c.is_empty()) else {
            return String::new();
        };
        let mut seen = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(cluster) {
            return cluster.to_string();
        }
        if seen.len() < CONSUMER_LABEL_LIMIT {
            seen.insert(cluster.to_string());
            return cluster.to_string();
        }
        OTHER_CONSUMERS.to_string()
    }

    fn cloudevent_labels(&self, event_type: &str, cluster: Option<&str>) -> CloudEventLabels {
        let (data_type, subresource, action) = label_parts(event_type);
        CloudEventLabels {
            source: self.source_id.clone(),
            consumer: self.consumer(cluster),
            data_type,
            subresource,
            action,
        }
    }

    /// A bounded `type` label: a protocol type as it is, anything else `other`.
    fn type_label(event_type: &str) -> OneLabel {
        let (data_type, subresource, action) = label_parts(event_type);
        let known = data_type != OTHER && subresource != OTHER && action != OTHER;
        OneLabel {
            key: "type",
            value: if known { event_type } else { OTHER }.to_string(),
        }
    }

    fn reason(reason: &str) -> OneLabel {
        OneLabel {
            key: "reason",
            value: reason.to_string(),
        }
    }

    /// Counts an event acknowledged by the broker, by CloudEvent type, for `cluster`; a
    /// work's spec event (`resource_id`) starts its spec-to-status clock.
    pub fn sent(&self, event_type: &str, cluster: &str, resource_id: Option<&str>) {
        self.sent.get_or_create(&Self::type_label(event_type)).inc();
        let labels = self.cloudevent_labels(event_type, Some(cluster));
        // A work's create, update or delete: what its first status answers.
        let is_spec_change = event_type.parse::<EventType>().is_ok_and(|t| {
            t.sub_resource == SubResource::Spec
                && matches!(
                    t.action,
                    Action::CreateRequest | Action::UpdateRequest | Action::DeleteRequest
                )
        });
        self.cloudevents_sent.get_or_create(&labels).inc();
        if let (true, Some(uid)) = (is_spec_change, resource_id) {
            self.spec_clock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .start(uid, Instant::now());
        }
    }

    /// Counts a received, decodable event, by CloudEvent type, from `cluster`.
    pub fn received(&self, event_type: &str, cluster: Option<&str>) {
        self.received
            .get_or_create(&Self::type_label(event_type))
            .inc();
        self.cloudevents_received
            .get_or_create(&self.cloudevent_labels(event_type, cluster))
            .inc();
    }

    /// A status of work `uid` was accepted: the first one since its latest spec event
    /// was acknowledged ends that event's spec-to-status clock.
    pub fn status_accepted(&self, uid: &str) {
        let started = self
            .spec_clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop(uid);
        if let Some(t) = started {
            self.first_status.observe(t.elapsed().as_secs_f64());
        }
    }

    /// Counts a dropped received event, by reason.
    pub fn dropped(&self, reason: &str) {
        self.dropped.get_or_create(&Self::reason(reason)).inc();
    }
    /// Counts a received event refused by `source::admission` (not audited), by reason.
    pub fn refused(&self, reason: &str) {
        self.refused.get_or_create(&Self::reason(reason)).inc();
    }
    /// Events refused for one reason so far.
    pub fn refused_count(&self, reason: &str) -> u64 {
        self.refused
            .get(&Self::reason(reason))
            .map_or(0, |c| c.get())
    }
    /// Events sent of one type so far.
    pub fn sent_count(&self, event_type: &str) -> u64 {
        self.sent
            .get(&Self::type_label(event_type))
            .map_or(0, |c| c.get())
    }
    /// Events dropped for one reason so far.
    pub fn dropped_count(&self, reason: &str) -> u64 {
        self.dropped
            .get(&Self::reason(reason))
            .map_or(0, |c| c.get())
    }

    /// Counts one REST request: its route template (`None`: no route matched), method,
    /// status code and time to the response head.
    pub fn rest_request(&self, route: Option<&str>, method: &str, code: u16, took: Duration) {
        let labels = RestLabels {
            code,
            method: rest_method(method),
            path: route.map_or_else(|| OTHER.to_string(), maestro_path),
        };
        self.rest_requests.get_or_create(&labels).0.inc();
        self.rest_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets the clusters-by-condition gauges (read from the store at scrape time).
    pub fn set_cluster_counts(&self, counts: &std::collections::BTreeMap<(String, String), u64>) {
        // Not while another scrape encodes: it would see the family half refilled.
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.clusters.clear();
        for ((condition, status), n) in counts {
            self.clusters
                .get_or_create(&vec![
                    ("condition", condition.clone()),
                    ("status", status.clone()),
                ])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text exposition, with the outbox gauges when the store answered
    /// (else they read 0 and the scrape goes on).
    pub fn render(&self, outbox: Option<OutboxGauges>) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        let outbox = outbox.unwrap_or_default();
        self.outbox_depth
            .set(i64::try_from(outbox.pending).unwrap_or(i64::MAX));
        self.outbox_parked_now
            .set(i64::try_from(outbox.parked).unwrap_or(i64::MAX));
        workbus_process::metrics::encode(
            &self.registry.read().unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// HTTP methods as labels: the standard ones, anything else `other`.
fn rest_method(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or(OTHER)
}

/// An axum route template in Maestro's form: every `{parameter}` segment becomes `-`
/// (`/api/v1/clusters/{cluster}/works/{name}` → `/api/v1/clusters/-/works/-`).
pub fn maestro_path(route: &str) -> String {
    route
        .split('/')
        .map(|seg| if seg.starts_with('{') { "-" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// How many clusters have each `(condition type, status)` among OCM's three headline
/// conditions (HubAccepted, Joined, Available), for `workbus_hub_clusters`.
pub fn cluster_condition_counts(
    clusters: &[crate::store::Cluster],
) -> std::collections::BTreeMap<(String, String), u64> {
    use workbus_schemas::registration::names::condition;
    let mut counts = std::collections::BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_CREATE: &str =
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request";

    #[test]
    fn names_and_types_keep_the_earlier_ones_and_add_ocm_s() {
        let m = Metrics::new("hub-a");
        let text = m.render(Some(OutboxGauges {
            pending: 2,
            parked: 1,
        }));
        for line in [
            "# TYPE workbus_hub_events_sent_total counter",
            "# TYPE workbus_hub_outbox_parked_total counter",
            "# TYPE workbus_hub_outbox_parked gauge",
            "workbus_hub_outbox_parked 1",
            "workbus_hub_outbox_depth 2",
            "# TYPE cloudevents_sent_total counter",
            "# TYPE rest_api_inbound_request_count untyped",
            "# TYPE rest_api_inbound_request_duration histogram",
            "# TYPE resource_first_status_latency_seconds histogram",
            "# TYPE workbus_build_info gauge",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn events_are_labelled_like_sdk_go_and_bounded() {
        let m = Metrics::new("hub-a");
        m.sent(SPEC_CREATE, "edge-1", Some("uid-1"));
        m.received("made.up.v1.things.status.explode", Some("edge-1"));
        let text = m.render(None);
        assert!(text.contains(
            "cloudevents_sent_total{source=\"hub-a\",consumer=\"edge-1\",type=\"io.open-cluster-management.works.v1alpha1.manifestbundles\",subresource=\"spec\",action=\"create_request\"} 1"
        ), "{text}");
        assert!(text.contains(
            "cloudevents_received_total{source=\"hub-a\",consumer=\"edge-1\",type=\"other\",subresource=\"status\",action=\"other\"} 1"
        ), "{text}");
        assert!(
            text.contains("workbus_hub_events_received_total{type=\"other\"} 1"),
            "{text}"
        );
        assert_eq!(m.sent_count(SPEC_CREATE), 1);
    }

    #[test]
    fn consumers_beyond_the_limit_share_one_label() {
        let m = Metrics::new("hub-a");
        for i in 0..CONSUMER_LABEL_LIMIT + 5 {
            m.sent(SPEC_CREATE, &format!("c{i}"), None);
        }
        let text = m.render(None);
        let series = text
            .lines()
            .filter(|l| l.starts_with("cloudevents_sent_total{"))
            .count();
        assert_eq!(series, CONSUMER_LABEL_LIMIT + 1);
        assert!(text.contains("consumer=\"_other\""));
    }

    #[test]
    fn the_first_status_after_a_spec_event_is_timed_once() {
        let m = Metrics::new("hub-a");
        m.sent(SPEC_CREATE, "edge-1", Some("uid-1"));
        m.status_accepted("uid-1");
        m.status_accepted("uid-1");
        m.status_accepted("never-sent");
        assert_eq!(
            m.render(None)
                .lines()
                .find(|l| l.starts_with("resource_first_status_latency_seconds_count")),
            Some("resource_first_status_latency_seconds_count 1")
        );
    }

    #[test]
    fn rest_paths_are_route_templates_with_ids_collapsed() {
        assert_eq!(
            maestro_path("/api/v1/clusters/{cluster}/works/{name}"),
            "/api/v1/clusters/-/works/-"
        );
        let m = Metrics::new("hub-a");
        m.rest_request(
            Some("/api/v1/clusters/{name}"),
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.rest_request(None, "BREW", 404, Duration::from_millis(1));
        let text = m.render(None);
        assert!(text.contains(
            "rest_api_inbound_request_count{code=\"200\",method=\"GET\",path=\"/api/v1/clusters/-\"} 1"
        ), "{text}");
        assert!(
            text.contains("code=\"404\",method=\"other\",path=\"other\""),
            "{text}"
        );
    }
}
