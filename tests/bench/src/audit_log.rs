//! `audit-log` (issue 15): the audit log at scale. Fills a sealed store with
//! `--records` records (alternating spec events sent and statuses received, over
//! `--agents` clusters of 10 works each, 10 ms apart, a checkpoint every 1,000) and
//! measures a cluster + time-range query (target ≤ 50 ms), a replay of one cluster
//! (≤ 200 ms) and `verify` of the whole log (≥ 200,000 records/s). Also reports the
//! append rate with the chain and the chain's own CPU cost per record (linking and
//! hashing, no I/O), from which the throughput scenario's cost is estimated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use workbus_hub::audit::chain::{self, NewRecord};
use workbus_hub::audit::checkpoint;
use workbus_hub::audit::replay::cluster_at;
use workbus_hub::audit::sealer::SealCheckpoint;
use workbus_hub::audit::verify::verify_store;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::writes::{Write, append_audit};
use workbus_hub::store::{
    self, AuditDirection, AuditEntry, AuditQuery, SpecChange, WorkKey, WorkRecord,
};
use workbus_schemas::envelope::StatusEventFields;
use workbus_schemas::event_type::Action;

use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Works per cluster.
const WORKS: usize = 10;
/// Records per transaction while filling (and between checkpoints).
const BATCH: usize = 1000;
/// Time between two records.
const STEP_MS: i64 = 10;

/// The scenario.
pub struct AuditLog {
    /// How many records to fill.
    pub records: usize,
}

fn work(cluster: &str, n: usize, generation: i64, at: DateTime<Utc>) -> WorkRecord {
    let name = format!("w{n}");
    WorkRecord {
        uid: workbus_schemas::resource_id::work_resource_id("bench", cluster, &name).to_string(),
        key: WorkKey {
            cluster: cluster.to_string(),
            name,
        },
        labels: Default::default(),
        annotations: Default::default(),
        spec: serde_json::from_value(json!({"workload": {"manifests": [
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "app", "namespace": "default"},
             "spec": {"replicas": generation % 5 + 1, "template": {"spec": {"containers": [
                 {"name": "app", "image": format!("registry.example/app:{generation}")}]}}}}]}}))
        .unwrap_or_default(),
        generation,
        created: at,
        updated: at,
        deletion: None,
        status: None,
    }
}

/// Record `i`: a spec sent for an even `i`, its status received for the odd one after.
fn entry(i: usize, clusters: usize, base: DateTime<Utc>) -> Result<AuditEntry, BenchError> {
    let pair = i / 2;
    let cluster = format!("edge-{}", pair % clusters);
    let w = (pair / clusters) % WORKS;
    let generation = (pair / (clusters * WORKS)) as i64 + 1;
    let at = base + chrono::Duration::milliseconds(i as i64 * STEP_MS);
    let record = work(&cluster, w, generation, at);
    let fail = |e: String| BenchError::Setup(format!("cannot build record {i}: {e}"));
    let (direction, event, actor) = if i.is_multiple_of(2) {
        let event = change_event("bench", &record, SpecChange::Update, at).map_err(fail)?;
        (AuditDirection::Sent, event, Some("admin".to_string()))
    } else {
        let status = json!({"conditions": [{"type": "Applied", "status": "True",
            "observedGeneration": generation, "lastTransitionTime": "2026-12-07T06:00:17Z",
            "reason": "AppliedManifestWorkComplete", "message": "Apply manifest work complete"}]});
        let event = StatusEventFields {
            agent_id: format!("{cluster}-work-agent"),
            action: Action::UpdateRequest,
            cluster_name: cluster.clone(),
            original_source: "bench".into(),
            resource_id: record.uid.clone(),
            generation,
            sequence_id: (1_000_000 + i).to_string(),
            status_hash: String::new(),
            metadata: serde_json::Map::new(),
            status,
            log_tracing: Default::default(),
        }
        .build(at)
        .map_err(|e| fail(e.to_string()))?;
        (AuditDirection::Received, event, None)
    };
    use workbus_schemas::AttributesReader;
    Ok(AuditEntry {
        at,
        direction,
        cluster: Some(cluster),
        resource_id: Some(record.uid.clone()),
        event_type: event.ty().to_string(),
        event,
        actor,
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Median and slowest of some durations, in ms.
fn p50_max(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let p50 = times.get(times.len() / 2).copied().unwrap_or_default();
    (ms(p50), ms(times.last().copied().unwrap_or_default()))
}

impl Scenario for AuditLog {
    fn name(&self) -> &'static str {
        "audit-log"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let clusters = ctx.agents.max(1);
        let n = self.records;
        let setup = |e: store::StoreError| BenchError::Setup(e.to_string());
        let dir = tempfile::tempdir().map_err(BenchError::io("temp dir"))?;
        let s = store::open(&workbus_hub::StoreSettings::sqlite(dir.path())).map_err(setup)?;
        let key = Arc::new(
            checkpoint::load_or_create_key(dir.path())
                .map_err(|e| BenchError::Setup(e.to_string()))?
                .0,
        );
        let base = Utc::now() - chrono::Duration::milliseconds(n as i64 * STEP_MS);

        // Fill, BATCH records per transaction, each batch sealed by a checkpoint.
        let started = Instant::now();
        let mut i = 0;
        while i < n {
            let entries = (i..(i + BATCH).min(n))
                .map(|i| entry(i, clusters, base))
                .collect::<Result<Vec<_>, _>>()?;
            i += entries.len();
            let at = entries.last().map_or(base, |e| e.at);
            let key = key.clone();
            let mut batch = Some(entries);
            s.transaction(&mut |tx| {
                for e in batch.take().unwrap_or_default() {
                    append_audit(tx, &e)?;
                }
                SealCheckpoint {
                    key: key.clone(),
                    source: "bench".into(),
                    at,
                    unless_head: None,
                }
                .run(tx)
                .map(drop)
            })
            .map_err(setup)?;
            if i % 100_000 < BATCH {
                eprintln!("audit-log: {i} records");
            }
        }
        let fill = started.elapsed();
        let head = s.audit_head().map_err(setup)?.map_or(0, |h| h.seq);

        // The chain's own cost per record: linking and hashing a typical record.
        let sample = entry(0, clusters, base)?;
        let event = serde_json::to_value(&sample.event).unwrap_or_default();
        let rounds = 20_000;
        let t = Instant::now();
        let mut prev = None;
        for _ in 0..rounds {
            let r = chain::link(
                prev.as_ref(),
                NewRecord {
                    at: sample.at,
                    direction: sample.direction,
                    cluster: sample.cluster.clone(),
                    resource_id: sample.resource_id.clone(),
                    event_type: sample.event_type.clone(),
                    actor: sample.actor.clone(),
                    event: event.clone(),
                },
            );
            prev = Some(r.head());
        }
        let link_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;

        // Cluster + time-range queries: a 10-minute window of one cluster, 20 of them.
        let span = chrono::Duration::milliseconds(n as i64 * STEP_MS);
        let mut query_times = Vec::new();
        let mut query_rows = 0;
        for q in 0..20usize {
            let since = base + span * (q as i32) / 20;
            let query = AuditQuery {
                cluster: Some(format!("edge-{}", (q * 7) % clusters)),
                since: Some(since),
                until: Some(since + chrono::Duration::minutes(10)),
                limit: 1000,
                ..Default::default()
            };
            let t = Instant::now();
            query_rows += s.audit_records(&query).map_err(setup)?.len();
            query_times.push(t.elapsed());
        }
        let (query_p50, query_max) = p50_max(query_times);

        // Replays of one cluster at two thirds of the log.
        let mut replay_times = Vec::new();
        let mut works_seen = 0;
        for q in 0..5usize {
            let t = Instant::now();
            let works = cluster_at(
                s.as_ref(),
                &format!("edge-{}", (q * 13) % clusters),
                base + span * 2 / 3,
            )
            .map_err(setup)?;
            replay_times.push(t.elapsed());
            works_seen = works.len();
        }
        let (replay_p50, replay_max) = p50_max(replay_times);

        // Verify the whole log.
        let t = Instant::now();
        let report =
            verify_store(s.as_ref(), Some(key.verifying_key()), None, None, None).map_err(setup)?;
        let verify = t.elapsed();
        if !report.ok() {
            return Err(BenchError::Setup(format!(
                "the log does not verify: {report:?}"
            )));
        }
        let verify_rate = report.records as f64 / verify.as_secs_f64();
        let db_bytes = std::fs::metadata(dir.path().join(store::SQLITE_FILE))
            .map(|m| m.len())
            .unwrap_or(0);

        let figures = json!({
            "records": head,
            "fill_s": (fill.as_secs_f64() * 100.0).round() / 100.0,
            "append_records_per_s": (head as f64 / fill.as_secs_f64()).round(),
            "chain_link_us_per_record": (link_us * 100.0).round() / 100.0,
            "db_mb": db_bytes / 1_000_000,
            "query_cluster_10min_ms": {"p50": query_p50, "max": query_max,
                "rows_per_query": query_rows / 20},
            "replay_cluster_ms": {"p50": replay_p50, "max": replay_max,
                "works": works_seen},
            "verify_s": (verify.as_secs_f64() * 100.0).round() / 100.0,
            "verify_records_per_s": verify_rate.round(),
        });
        let targets = vec![
            Target::on(
                "cluster + time-range query, slowest of 20",
                Some(query_max),
                "ms",
            )
            .at_most(50.0),
            Target::on(
                "replay of one cluster, slowest of 5",
                Some(replay_max),
                "ms",
            )
            .at_most(200.0),
            Target::on("verify", Some(verify_rate.round()), "records/s").at_least(200_000.0),
        ];
        let params = json!({"records": n, "clusters": clusters, "works_per_cluster": WORKS,
            "checkpoint_every": BATCH, "record_spacing_ms": STEP_MS, "store": "SQLite, sealed"});
        Ok(Report::new(self.name(), params, figures).with_targets(targets))
    }
}
