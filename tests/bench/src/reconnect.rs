//! `reconnect-storm`: every agent loses its connection at once while the hub stays
//! connected (a network blip at the edge); time until the whole fleet has resynced, and
//! messages and bytes spent per unchanged agent.
//!
//! Run twice, on two fresh fleets: agents using the resync digest extension
//! (`workbus_schemas::resync_digest`), then agents speaking only the upstream per-work
//! form (`agents-worker --no-digest`, exactly an OCM agent's protocol), so the saving
//! shows. Agent i holds `1 + i % max_works` works, all applied before the storm.
//!
//! The cut: the embedded broker closes every agent connection without DISCONNECT
//! (`BrokerHandle::drop_clients`); the agents reconnect with their jittered backoff and
//! resync. "Resynced" is precise per form: with digests, the agent received the source's
//! "in sync" (or "done") reply; upstream, the agent never learns, so the hub having
//! answered the agent's request (`spec_resyncs_answered`) is the end. Costs are the
//! deltas of the agents' transport counters over the storm, divided by N; a message's
//! bytes are topic + content type + user properties (the `ce-*` attributes) + payload.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::configmap_work;

use crate::fleet::{BrokerKind, Fleet, cluster_name, fleet_stats};
use crate::measure::Progress;
use crate::worker::ResyncForm;
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Concurrent REST connections used to create the works.
const REST_CONCURRENCY: usize = 16;

fn get(s: &BTreeMap<String, u64>, k: &str) -> u64 {
    s.get(k).copied().unwrap_or(0)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Creates `1 + i % max_works` works in every cluster i through the REST API.
async fn create_works(fleet: &Fleet, max_works: usize) -> Result<usize, BenchError> {
    let jobs: Arc<Vec<(String, String)>> = Arc::new(
        (0..fleet.n)
            .flat_map(|i| {
                let cluster = cluster_name(&fleet.prefix, i);
                (0..1 + i % max_works.max(1)).map(move |w| (cluster.clone(), format!("w{w}")))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..REST_CONCURRENCY {
        let (client, jobs, next) = (fleet.hub.client(), jobs.clone(), next.clone());
        joins.push(tokio::task::spawn_blocking(move || {
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cluster, name)) = jobs.get(i) else {
                    break;
                };
                let body = configmap_work(cluster, name, &format!("cm-{name}"), "v1");
                let ok = client
                    .put(&format!("/api/v1/clusters/{cluster}/works/{name}"), &body)
                    .is_ok_and(|a| a.status < 300);
                failed += usize::from(!ok);
            }
            failed
        }));
    }
    let mut failed = 0;
    for j in joins {
        failed += j.await.unwrap_or(0);
    }
    if failed > 0 {
        return Err(BenchError::Setup(format!("{failed} work PUTs failed")));
    }
    Ok(jobs.len())
}

/// Polls the fleet until `done(stats)` holds; prints progress with `label`.
async fn wait_fleet(
    fleet: &mut Fleet,
    label: &str,
    limit: Duration,
    what: impl Fn(&BTreeMap<String, u64>) -> String,
    done: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> Result<BTreeMap<String, u64>, BenchError> {
    let t = Instant::now();
    let mut progress = Progress::new(label);
    loop {
        let s = fleet_stats(&mut fleet.workers).await?;
        let ok = done(&s);
        progress.tick(|| what(&s), ok);
        if ok {
            return Ok(s);
        }
        if t.elapsed() > limit {
            return Err(BenchError::Timeout(format!("{label}: {}", what(&s))));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the hub's outbox is empty and the agents' message counters stop moving
/// for a second (nothing in flight), so that before/after snapshots delimit exactly one
/// storm.
async fn quiesce(fleet: &mut Fleet, limit: Duration) -> Result<BTreeMap<String, u64>, BenchError> {
    let t = Instant::now();
    let key = |s: &BTreeMap<String, u64>| (get(s, "published"), get(s, "received"));
    let mut last = fleet_stats(&mut fleet.workers).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let depth = fleet
            .hub
            .store()
            .run(|s| s.outbox_depth())
            .await
            .map_err(|e| BenchError::Setup(format!("outbox depth: {e}")))?;
        let now = fleet_stats(&mut fleet.workers).await?;
        if depth == 0 && key(&now) == key(&last) {
            return Ok(now);
        }
        if t.elapsed() > limit {
            return Err(BenchError::Timeout("traffic did not settle".into()));
        }
        last = now;
    }
}

fn broker_counts(broker: &TestBroker) -> (u64, u64) {
    match broker {
        TestBroker::Embedded {
            handle: Some(h), ..
        } => {
            let s = h.stats();
            (s.published, s.delivered)
        }
        _ => (0, 0),
    }
}

/// One fleet, one storm, in `form`.
async fn phase(
    n: usize,
    max_works: usize,
    form: ResyncForm,
    limit: Duration,
) -> Result<Value, BenchError> {
    let label = form.name();
    let mut fleet = Fleet::start_with(BrokerKind::Embedded, n, form).await?;
    fleet.wait_connected(limit).await?;
    let hub = fleet.hub.metrics().clone();
    // Every first-connect resync answered before works exist: a request answered late
    // would resend works created meanwhile and blur the storm's figures.
    let t_first = Instant::now();
    while hub.spec_resyncs_answered.get() < n as u64 {
        if t_first.elapsed() > limit {
            return Err(BenchError::Timeout("first resyncs not answered".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Instant::now();
    let works = create_works(&fleet, max_works).await?;
    wait_fleet(
        &mut fleet,
        &format!("{label}-apply"),
        limit,
        |s| format!("{}/{works} works applied", get(s, "applied")),
        |s| get(s, "applied") >= works as u64,
    )
    .await?;
    let statuses = works as u64;
    let t_hub = Instant::now();
    while hub.statuses_accepted.get() < statuses {
        if t_hub.elapsed() > limit {
            return Err(BenchError::Timeout("statuses did not reach the hub".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "[{label}] {works} works on {n} agents applied in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    if form == ResyncForm::Digest {
        // The first resync at connect (upstream form + digest) taught every agent that
        // the hub understands digests ("done" reply).
        wait_fleet(
            &mut fleet,
            &format!("{label}-learned"),
            limit,
            |s| format!("{}/{n} agents got a done reply", get(s, "resyncs_done")),
            |s| get(s, "resyncs_done") >= n as u64,
        )
        .await?;
    }
    let before = quiesce(&mut fleet, limit).await?;
    let answered_before = hub.spec_resyncs_answered.get();
    let (bp0, bd0) = broker_counts(&fleet.broker);

    // The storm: every agent connection cut at once; the hub's stays.
    let prefix = format!("{}-", fleet.prefix);
    let dropped = match &fleet.broker {
        TestBroker::Embedded {
            handle: Some(h), ..
        } => h.drop_clients(|id| id.starts_with(&prefix)),
        _ => 0,
    };
    let t0 = Instant::now();
    if dropped != n {
        return Err(BenchError::Setup(format!("cut {dropped} of {n} agents")));
    }
    let mut hub_all: Option<Duration> = None;
    let mut agents_all: Option<Duration> = None;
    let mut reconnected_all: Option<Duration> = None;
    let mut progress = Progress::new(&format!("{label}-storm"));
    let completions = |s: &BTreeMap<String, u64>| {
        get(s, "resyncs_in_sync") + get(s, "resyncs_done")
            - get(&before, "resyncs_in_sync")
            - get(&before, "resyncs_done")
    };
    loop {
        let answered = hub.spec_resyncs_answered.get() - answered_before;
        if hub_all.is_none() && answered >= n as u64 {
            hub_all = Some(t0.elapsed());
        }
        let s = fleet_stats(&mut fleet.workers).await?;
        let reconnects = get(&s, "reconnects") - get(&before, "reconnects");
        if reconnected_all.is_none() && reconnects >= n as u64 {
            reconnected_all = Some(t0.elapsed());
        }
        let confirmed = completions(&s);
        if agents_all.is_none() && form == ResyncForm::Digest && confirmed >= n as u64 {
            agents_all = Some(t0.elapsed());
        }
        let finished = hub_all.is_some() && (form == ResyncForm::Upstream || agents_all.is_some());
        progress.tick(
            || format!("{reconnects}/{n} reconnected, hub answered {answered}, agents confirmed {confirmed}"),
            finished,
        );
        if finished {
            break;
        }
        if t0.elapsed() > limit {
            progress.tick(|| "gave up".into(), true);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = quiesce(&mut fleet, limit).await?;
    let (bp1, bd1) = broker_counts(&fleet.broker);
    let d = |k: &str| get(&after, k) - get(&before, k);
    let per = |v: u64| ((v as f64 / n as f64) * 100.0).round() / 100.0;
    let resynced = match form {
        ResyncForm::Digest => agents_all,
        ResyncForm::Upstream => hub_all,
    };
    let figures = json!({
        "works": works,
        "works_per_agent_mean": ((works as f64 / n as f64) * 100.0).round() / 100.0,
        "cut": dropped,
        "all_reconnected_s": reconnected_all.map(secs),
        "hub_answered_all_s": hub_all.map(secs),
        "agents_confirmed_all_s": agents_all.map(secs),
        "resynced_all_s": resynced.map(secs),
        "per_agent": {
            "messages_published": per(d("published")),
            "messages_received": per(d("received")),
            "messages": per(d("published") + d("received")),
            "bytes_published": per(d("message_bytes_published")),
            "bytes_received": per(d("message_bytes_received")),
            "bytes": per(d("message_bytes_published") + d("message_bytes_received")),
            "payload_bytes": per(d("bytes_published") + d("bytes_received")),
        },
        "storm_totals": {
            "reconnects": d("reconnects"),
            "resync_requests": d("resync_requests"),
            "digest_requests": d("digest_requests"),
            "in_sync_replies": d("resyncs_in_sync"),
            "done_replies": d("resyncs_done"),
            "fallbacks": d("resync_fallbacks"),
            "specs_applied": d("applied"),
            "spec_duplicates": d("duplicates"),
            "statuses_sent": d("status_sent"),
            "hub_spec_resyncs_answered": hub.spec_resyncs_answered.get() - answered_before,
            "broker_published": bp1 - bp0,
            "broker_delivered": bd1 - bd0,
        },
    });
    fleet.stop().await;
    Ok(figures)
}

/// The `reconnect-storm` scenario (embedded broker only: it cuts the connections there).
#[derive(Debug, Clone, Copy)]
pub struct ReconnectStorm {
    /// Most works per agent (agent i holds `1 + i % max_works`).
    pub max_works: usize,
}

impl Scenario for ReconnectStorm {
    fn name(&self) -> &'static str {
        "reconnect-storm"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit, max_works) = (ctx.broker, ctx.agents, ctx.timeout, self.max_works);
        if kind != BrokerKind::Embedded {
            return Err(BenchError::Setup(
                "reconnect-storm cuts connections at the embedded broker; use --broker embedded"
                    .into(),
            ));
        }
        let digest = phase(n, max_works, ResyncForm::Digest, limit).await?;
        let upstream = phase(n, max_works, ResyncForm::Upstream, limit).await?;
        let scale = if n >= 10_000 {
            String::new()
        } else {
            format!(" (run at N={n}; the target is for N=10,000)")
        };
        let targets = vec![
            Target::on(
                format!("fleet resynced after the storm, digest form{scale}"),
                digest["resynced_all_s"].as_f64(),
                "s",
            )
            .at_most(30.0),
            Target::on(
                "messages per unchanged agent, digest form (one round trip)",
                digest["per_agent"]["messages"].as_f64(),
                "messages",
            )
            .at_most(2.0),
        ];
        let saving = match (
            digest["per_agent"]["bytes"].as_f64(),
            upstream["per_agent"]["bytes"].as_f64(),
        ) {
            (Some(d), Some(u)) if u > 0.0 => Some(((1.0 - d / u) * 1000.0).round() / 10.0),
            _ => None,
        };
        let figures = json!({
            "digest": digest,
            "upstream": upstream,
            "bytes_saved_percent": saving,
        });
        let params = json!({"agents": n, "broker": kind.name(), "max_works_per_agent": max_works,
        "rest_concurrency": REST_CONCURRENCY, "timeout_s": limit.as_secs(),
        "reconnect_backoff": "200 ms .. 3 s, jittered exponential (agents-worker)"});
        let notes = vec![
        "per_agent costs are agent-side (transport counters) over the storm; a message's bytes = topic + content type + user properties + payload".into(),
        "upstream agents never learn that their resync is over; their end is the hub having answered".into(),
    ];
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}
