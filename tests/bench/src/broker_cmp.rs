//! `broker`: the same MQTT 5 QoS 1 fan-out/fan-in workload through the embedded broker
//! and through Mosquitto, in one run, reported as a ratio.
//!
//! The workload has the shape of OCM's traffic. There are N "agent" clients, each
//! subscribed at QoS 1 to its own spec topic
//! (`sources/<src>/consumers/<cluster>/sourceevents`), and one "hub" client subscribed at
//! QoS 1 to the status wildcard (`sources/<src>/consumers/+/agentevents`). In one round,
//! the hub publishes one spec-sized QoS 1 message to every agent: a 1.5 KiB payload
//! plus `ce-*` user properties and a content type, as a binary-mode spec event. Every
//! agent answers with a status-sized QoS 1 message (1 KiB). The round ends when the hub
//! has all N answers. So each round moves 2N publishes into the broker and 2N
//! deliveries out of it.
//!
//! Fairness: all clients (rumqttc, MQTT 5, TCP_NODELAY as in our transport) run in this
//! process with identical code for both brokers. The embedded broker runs in a child
//! process of this harness (`embedded-broker`, the `workbus-broker` library on a free
//! port), like Mosquitto runs in its own (a private one, `workbus_testkit::MosquittoProcess`),
//! so each broker's CPU time can be read from
//! `/proc/<pid>/task/*/schedstat`. Both fleets stay connected for the whole run and
//! rounds alternate between the brokers (one warm-up round each, not counted), so
//! background load on the shared machine affects both alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use workbus_schemas::topics::Topics;
use workbus_testkit::MosquittoProcess;

use crate::child::{LineChild, serve_stats};
use crate::fleet::run_id;
use crate::measure::{Progress, raise_nofile, round, summary};
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Spec message payload size (a small ManifestWork bundle).
pub const SPEC_PAYLOAD: usize = 1536;
/// Status message payload size.
pub const STATUS_PAYLOAD: usize = 1024;
/// Clients connecting at once (Mosquitto's listen backlog here is 100; connects that
/// overflow it would wait for SYN retransmissions).
const CONNECT_CONCURRENCY: usize = 64;
/// The subcommand of the embedded broker's process.
pub const EMBEDDED_BROKER: &str = "embedded-broker";
/// The throughput ratio embedded/Mosquitto the issue asks for.
const TARGET_RATIO: f64 = 1.5;
/// QoS 1 publishes one client keeps unacknowledged (our transport's value).
const CLIENT_INFLIGHT: u16 = 100;

/// Time since the harness's reference instant, in ns (shared by every client here).
fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// The first bytes of every payload: round, agent and up to three timestamps, fixed
/// width, so the receiver can parse them; the rest is JSON-like filler.
fn payload(size: usize, round: u32, agent: u32, t: [u64; 3]) -> Bytes {
    let mut s = format!(
        "{{\"r\":{round:>10},\"a\":{agent:>10},\"t\":[{:>20},{:>20},{:>20}],\"data\":\"",
        t[0], t[1], t[2]
    );
    let fill = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', fill));
    s.push_str("\"}");
    Bytes::from(s)
}

/// Parses what [`payload`] wrote.
fn parse(payload: &[u8]) -> Option<(u32, u32, [u64; 3])> {
    let head = std::str::from_utf8(payload.get(..120)?).ok()?;
    let mut nums = head
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(str::parse::<u64>);
    let r = nums.next()?.ok()?;
    let a = nums.next()?.ok()?;
    let t = [nums.next()?.ok()?, nums.next()?.ok()?, nums.next()?.ok()?];
    Some((u32::try_from(r).ok()?, u32::try_from(a).ok()?, t))
}

/// Binary-mode CloudEvents attributes as MQTT 5 user properties, sized like sdk-go's.
fn properties(kind: &str, source: &str, cluster: &str, seq: u64) -> PublishProperties {
    let uid = format!("{:08x}-5e1f-5c43-9a4b-{:012x}", seq as u32, seq);
    let mut user = vec![
        ("ce-specversion".to_string(), "1.0".to_string()),
        ("ce-id".to_string(), uid.clone()),
        (
            "ce-type".to_string(),
            format!("{}.{kind}", workbus_schemas::event_type::MANIFEST_BUNDLES),
        ),
        ("ce-source".to_string(), source.to_string()),
        (
            "ce-time".to_string(),
            "2026-01-01T00:00:00.000000001Z".into(),
        ),
        ("ce-resourceid".to_string(), uid),
        ("ce-resourceversion".to_string(), "2".to_string()),
        ("ce-clustername".to_string(), cluster.to_string()),
    ];
    if kind.starts_with("status") {
        user.push(("ce-originalsource".to_string(), source.to_string()));
        user.push(("ce-sequenceid".to_string(), format!("{}", 1 << 40 | seq)));
    }
    PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: user,
        ..PublishProperties::default()
    }
}

fn client_options(id: &str, host: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_start(true);
    o.set_max_packet_size(Some(1024 * 1024));
    o.set_outgoing_inflight_upper_limit(CLIENT_INFLIGHT);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o
}

/// Counters shared by the clients of one fleet.
#[derive(Default)]
struct ClientCounters {
    /// Event-loop errors (a connection lost or refused); each one is a reconnect.
    errors: AtomicU64,
    /// Answers the agents could not hand to their client.
    answer_failures: AtomicU64,
}

/// One agent: subscribe to its spec topic, answer every spec message with a status.
#[allow(clippy::too_many_arguments)]
async fn agent(
    options: MqttOptions,
    index: u32,
    spec_topic: String,
    status_topic: String,
    status_props: PublishProperties,
    t0: Instant,
    counters: Arc<ClientCounters>,
    ready: oneshot::Sender<()>,
) {
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if client.try_subscribe(&spec_topic, QoS::AtLeastOnce).is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let received = now_ns(t0);
                let Some((round, _, t)) = parse(&p.payload) else {
                    continue;
                };
                let body = payload(STATUS_PAYLOAD, round, index, [t[0], received, now_ns(t0)]);
                if client
                    .try_publish_with_properties(
                        &status_topic,
                        QoS::AtLeastOnce,
                        false,
                        body,
                        status_props.clone(),
                    )
                    .is_err()
                {
                    counters.answer_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => {
                // rumqttc reconnects on the next poll; the ConnAck arm resubscribes.
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// One answer seen by the hub: round, agent, and the four timestamps (hub sent, agent
/// received, agent answered, hub received).
struct Answer {
    round: u32,
    agent: u32,
    t: [u64; 4],
}

/// The hub's event loop: subscribe to the status wildcard, forward answers.
async fn hub_loop(
    mut eventloop: rumqttc::v5::EventLoop,
    client: AsyncClient,
    filter: String,
    t0: Instant,
    counters: Arc<ClientCounters>,
    answers: mpsc::UnboundedSender<Answer>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if client.subscribe(&filter, QoS::AtLeastOnce).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let received = now_ns(t0);
                if let Some((round, agent, t)) = parse(&p.payload) {
                    let a = Answer {
                        round,
                        agent,
                        t: [t[0], t[1], t[2], received],
                    };
                    if answers.send(a).is_err() {
                        return;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A broker process under test: where it listens and which process to measure.
struct BrokerProc {
    name: &'static str,
    host: String,
    port: u16,
    /// Process whose CPU time is the broker's (`None`: not found, CPU not reported).
    pid: Option<u32>,
    /// The embedded broker's child process.
    child: Option<LineChild>,
    /// The private Mosquitto (stopped when this is dropped).
    mosquitto: Option<MosquittoProcess>,
}

impl BrokerProc {
    /// Starts `workbus-bench embedded-broker` and reads its bound address.
    async fn embedded() -> Result<BrokerProc, BenchError> {
        let mut child = LineChild::spawn("embedded broker", &[EMBEDDED_BROKER.to_string()])?;
        let line = child.read_line(Duration::from_secs(10)).await?;
        let addr: std::net::SocketAddr = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["addr"].as_str().and_then(|a| a.parse().ok()))
            .ok_or_else(|| BenchError::Setup(format!("bad embedded broker line {line:?}")))?;
        Ok(BrokerProc {
            name: "embedded",
            host: addr.ip().to_string(),
            port: addr.port(),
            pid: child.id(),
            child: Some(child),
            mosquitto: None,
        })
    }

    /// A private Mosquitto on a free loopback port (`workbus-testkit`).
    async fn mosquitto() -> Result<BrokerProc, BenchError> {
        let m = tokio::task::spawn_blocking(MosquittoProcess::launch)
            .await
            .map_err(|e| BenchError::Setup(format!("cannot start Mosquitto: {e}")))?
            .map_err(BenchError::Setup)?;
        Ok(BrokerProc {
            name: "mosquitto",
            host: m.host().into(),
            port: m.port(),
            pid: m.pid(),
            child: None,
            mosquitto: Some(m),
        })
    }

    /// The embedded broker's own counters (published, delivered, dropped).
    async fn stats(&mut self) -> Value {
        match self.child.as_mut() {
            Some(child) => child
                .stats(Duration::from_secs(5))
                .await
                .unwrap_or(Value::Null),
            None => Value::Null,
        }
    }

    /// Stops the broker process (bounded).
    async fn stop(mut self) {
        if let Some(mut m) = self.mosquitto.take() {
            let _ = tokio::task::spawn_blocking(move || m.stop()).await;
        }
        if let Some(child) = self.child.take() {
            child.quit().await;
        }
    }
}

/// CPU time (ns) of every thread of `pid`, from `/proc/<pid>/task/*/schedstat`.
/// Threads that exited are not counted; the brokers' threads live for the whole run.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(entry) = entry else { continue };
        let path = entry.path().join("schedstat");
        if let Some(ns) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += ns;
        }
    }
    Some(total)
}

/// One broker's connected clients.
struct Fleet {
    broker: BrokerProc,
    source: String,
    /// Cluster names and spec topics, by agent index.
    clusters: Vec<String>,
    spec_topics: Vec<String>,
    hub: AsyncClient,
    tasks: Vec<JoinHandle<()>>,
    answers: mpsc::UnboundedReceiver<Answer>,
    counters: Arc<ClientCounters>,
    connect_s: f64,
    rounds: Vec<RoundResult>,
    /// Set when a round did not complete: later rounds are skipped for this broker.
    failed: Option<String>,
}

/// Figures of one measured round.
struct RoundResult {
    secs: f64,
    broker_cpu_ns: Option<u64>,
    client_cpu_ns: Option<u64>,
    spec_ms: Vec<f64>,
    status_ms: Vec<f64>,
    rtt_ms: Vec<f64>,
}

impl Fleet {
    /// Connects N agents and the hub to `broker`; every one subscribed before returning.
    async fn connect(
        broker: BrokerProc,
        n: usize,
        t0: Instant,
        limit: Duration,
    ) -> Result<Fleet, BenchError> {
        let id = run_id();
        let source = format!("bb-{}-{id}", broker.name);
        let counters = Arc::new(ClientCounters::default());
        let started = Instant::now();
        let deadline = started + limit;
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = Vec::with_capacity(n + 1);
        let mut waits = Vec::with_capacity(n);
        let mut progress = Progress::new(&format!("connect-{}", broker.name));
        let mut clusters = Vec::with_capacity(n);
        let mut spec_topics = Vec::with_capacity(n);
        for i in 0..n {
            let cluster = format!("c{id}-{i}");
            clusters.push(cluster.clone());
            let topics = Topics::for_agent(&source, &cluster)
                .map_err(|e| BenchError::Setup(format!("topics: {e}")))?;
            let options = client_options(&format!("bba-{id}-{i}"), &broker.host, broker.port);
            let props = properties("status.update_request", &source, &cluster, i as u64);
            let (tx, rx) = oneshot::channel();
            let permit = tokio::time::timeout_at(deadline.into(), gate.clone().acquire_owned())
                .await
                .map_err(|_| BenchError::Timeout(format!("{}: connecting agents", broker.name)))?
                .map_err(|_| BenchError::Setup("connect gate closed".into()))?;
            spec_topics.push(topics.source_events.clone());
            tasks.push(tokio::spawn(agent(
                options,
                i as u32,
                topics.source_events,
                topics.agent_events,
                props,
                t0,
                counters.clone(),
                tx,
            )));
            waits.push(tokio::spawn(async move {
                let ok = rx.await.is_ok();
                drop(permit);
                ok
            }));
            progress.tick(|| format!("{i}/{n} agents connecting"), false);
        }
        for w in waits {
            let ok = tokio::time::timeout_at(deadline.into(), w)
                .await
                .map_err(|_| {
                    BenchError::Timeout(format!("{}: agents did not subscribe", broker.name))
                })?
                .unwrap_or(false);
            if !ok {
                return Err(BenchError::Setup(format!(
                    "{}: an agent stopped before subscribing",
                    broker.name
                )));
            }
        }
        let options = client_options(&format!("bbh-{id}"), &broker.host, broker.port);
        let (hub, eventloop) = AsyncClient::new(options, 4096);
        let filter = Topics::for_source(&source)
            .map_err(|e| BenchError::Setup(format!("topics: {e}")))?
            .agent_events;
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        tasks.push(tokio::spawn(hub_loop(
            eventloop,
            hub.clone(),
            filter,
            t0,
            counters.clone(),
            answers_tx,
            ready_tx,
        )));
        tokio::time::timeout_at(deadline.into(), ready_rx)
            .await
            .map_err(|_| BenchError::Timeout(format!("{}: hub did not subscribe", broker.name)))?
            .map_err(|_| BenchError::Setup(format!("{}: hub stopped", broker.name)))?;
        let connect_s = started.elapsed().as_secs_f64();
        progress.tick(
            || format!("{n} agents and the hub subscribed in {connect_s:.1}s"),
            true,
        );
        Ok(Fleet {
            broker,
            source,
            clusters,
            spec_topics,
            hub,
            tasks,
            answers,
            counters,
            connect_s,
            rounds: Vec::new(),
            failed: None,
        })
    }

    /// One round: a spec message to every agent, then wait for every answer.
    async fn round(
        &mut self,
        number: u32,
        n: usize,
        t0: Instant,
        limit: Duration,
    ) -> Result<RoundResult, String> {
        let cpu0 = self.broker.pid.and_then(cpu_ns);
        let self0 = cpu_ns(std::process::id());
        let start = now_ns(t0);
        let deadline = tokio::time::Instant::now() + limit;
        let label = format!("{}-round-{number}", self.broker.name);
        let mut progress = Progress::new(&label);
        for i in 0..n {
            let topic = self.spec_topics[i].clone();
            let props = properties(
                "spec.update_request",
                &self.source,
                &self.clusters[i],
                u64::from(number) << 32 | i as u64,
            );
            let body = payload(SPEC_PAYLOAD, number, i as u32, [now_ns(t0), 0, 0]);
            let send =
                self.hub
                    .publish_with_properties(topic, QoS::AtLeastOnce, false, body, props);
            match tokio::time::timeout_at(deadline, send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("hub publish failed: {e}")),
                Err(_) => return Err(format!("hub could not publish {n} messages in time")),
            }
        }
        let mut got = vec![false; n];
        let mut done = 0usize;
        let mut last = start;
        let (mut spec_ms, mut status_ms, mut rtt_ms) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        while done < n {
            progress.tick(|| format!("{done}/{n} answers"), false);
            let next = tokio::time::timeout_at(deadline, self.answers.recv()).await;
            let a = match next {
                Ok(Some(a)) => a,
                Ok(None) => return Err("hub event loop ended".into()),
                Err(_) => {
                    return Err(format!(
                        "round {number}: {done}/{n} answers within {}s",
                        limit.as_secs()
                    ));
                }
            };
            let i = a.agent as usize;
            if a.round != number || i >= n || got[i] {
                continue;
            }
            got[i] = true;
            done += 1;
            last = last.max(a.t[3]);
            let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
            spec_ms.push(ms(a.t[0], a.t[1]));
            status_ms.push(ms(a.t[2], a.t[3]));
            rtt_ms.push(ms(a.t[0], a.t[3]));
        }
        let secs = last.saturating_sub(start) as f64 / 1e9;
        let broker_cpu_ns = match (cpu0, self.broker.pid.and_then(cpu_ns)) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let client_cpu_ns = match (self0, cpu_ns(std::process::id())) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        progress.tick(
            || {
                format!(
                    "{n}/{n} answers in {secs:.3}s ({:.0} msg/s through the broker)",
                    4.0 * n as f64 / secs
                )
            },
            true,
        );
        Ok(RoundResult {
            secs,
            broker_cpu_ns,
            client_cpu_ns,
            spec_ms,
            status_ms,
            rtt_ms,
        })
    }

    /// Figures for the report.
    async fn figures(&mut self, n: usize) -> Value {
        let rounds = &self.rounds;
        let measured = rounds.len();
        let total_s: f64 = rounds.iter().map(|r| r.secs).sum();
        let messages = 4 * n * measured;
        let mut secs: Vec<f64> = rounds.iter().map(|r| r.secs * 1000.0).collect();
        secs.sort_by(|a, b| a.total_cmp(b));
        let cpu = |f: fn(&RoundResult) -> Option<u64>| -> Option<u64> {
            rounds.iter().map(f).sum::<Option<u64>>()
        };
        let broker_cpu = cpu(|r| r.broker_cpu_ns);
        let client_cpu = cpu(|r| r.client_cpu_ns);
        let per_msg_us = |ns: Option<u64>| {
            ns.filter(|_| messages > 0)
                .map(|ns| (ns as f64 / messages as f64 / 1000.0 * 100.0).round() / 100.0)
        };
        let all = |f: fn(&RoundResult) -> &Vec<f64>| -> Vec<f64> {
            rounds.iter().flat_map(|r| f(r).iter().copied()).collect()
        };
        let throughput = (total_s > 0.0).then(|| (messages as f64 / total_s).round());
        json!({
            "connect_s": round(self.connect_s),
            "rounds_measured": measured,
            "failed": self.failed,
            "round_ms": {
                "p50": secs.get(secs.len().saturating_sub(1) / 2).map(|v| round(*v)),
                "max": secs.last().map(|v| round(*v)),
                "min": secs.first().map(|v| round(*v)),
            },
            "messages": messages,
            "msgs_per_s": throughput,
            "broker_cpu_s": broker_cpu.map(|ns| (ns as f64 / 1e7).round() / 100.0),
            "broker_cpu_us_per_msg": per_msg_us(broker_cpu),
            "broker_cpu_share_of_wall": broker_cpu
                .filter(|_| total_s > 0.0)
                .map(|ns| (ns as f64 / 1e9 / total_s * 100.0).round() / 100.0),
            "client_cpu_us_per_msg": per_msg_us(client_cpu),
            "latency_spec": summary(all(|r| &r.spec_ms)),
            "latency_status": summary(all(|r| &r.status_ms)),
            "latency_round_trip": summary(all(|r| &r.rtt_ms)),
            "client_errors": self.counters.errors.load(Ordering::Relaxed),
            "answer_failures": self.counters.answer_failures.load(Ordering::Relaxed),
            "broker_pid": self.broker.pid,
            "broker_stats": self.broker.stats().await,
        })
    }

    /// Disconnects every client and stops an embedded broker.
    async fn stop(self) {
        let _ = self.hub.disconnect().await;
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.broker.stop().await;
    }
}

/// The `broker` scenario: embedded broker against a private Mosquitto (whatever
/// `--broker` says).
#[derive(Debug, Clone, Copy)]
pub struct BrokerComparison {
    /// Measured rounds (messages per subscriber), after one warm-up round.
    pub rounds: usize,
}

impl Scenario for BrokerComparison {
    fn name(&self) -> &'static str {
        "broker"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (n, rounds, limit) = (ctx.agents, self.rounds, ctx.timeout);
        if n == 0 || rounds == 0 {
            return Err(BenchError::Setup(
                "--agents and --rounds must be > 0".into(),
            ));
        }
        let t0 = Instant::now();
        let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let embedded = BrokerProc::embedded().await?;
        let mosquitto = BrokerProc::mosquitto().await?;
        let mut fleets = vec![
            Fleet::connect(embedded, n, t0, limit).await?,
            Fleet::connect(mosquitto, n, t0, limit).await?,
        ];
        // Round 0 is the warm-up of each broker; rounds 1..=rounds are measured. The order
        // of the brokers alternates between rounds.
        for number in 0..=rounds as u32 {
            let order: [usize; 2] = if number % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let fleet = &mut fleets[k];
                if fleet.failed.is_some() {
                    continue;
                }
                match fleet.round(number, n, t0, limit).await {
                    Ok(r) if number > 0 => fleet.rounds.push(r),
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("[{}] {e}", fleet.broker.name);
                        fleet.failed = Some(e);
                    }
                }
            }
        }
        let mut figures = serde_json::Map::new();
        for f in fleets.iter_mut() {
            figures.insert(f.broker.name.to_string(), f.figures(n).await);
        }
        let e = &figures["embedded"];
        let m = &figures["mosquitto"];
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
            _ => None,
        };
        let throughput_ratio = ratio(e["msgs_per_s"].as_f64(), m["msgs_per_s"].as_f64());
        let round_ratio = ratio(m["round_ms"]["p50"].as_f64(), e["round_ms"]["p50"].as_f64());
        let cpu_ratio = ratio(
            m["broker_cpu_us_per_msg"].as_f64(),
            e["broker_cpu_us_per_msg"].as_f64(),
        );
        figures.insert(
            "ratio".into(),
            json!({
                "throughput_embedded_over_mosquitto": throughput_ratio,
                "round_p50_mosquitto_over_embedded": round_ratio,
                "cpu_per_msg_mosquitto_over_embedded": cpu_ratio,
            }),
        );
        for f in fleets {
            f.stop().await;
        }
        let targets = vec![
            Target::on(
                "throughput embedded / Mosquitto (same workload, same run)",
                throughput_ratio,
                "x",
            )
            .at_least(TARGET_RATIO),
        ];
        let params = json!({
            "agents": n,
            "rounds": rounds,
            "warmup_rounds": 1,
            "spec_payload_bytes": SPEC_PAYLOAD,
            "status_payload_bytes": STATUS_PAYLOAD,
            "qos": 1,
            "protocol": "MQTT 5",
            "client": "rumqttc 0.25, TCP_NODELAY, all clients in the bench process",
            "client_inflight": CLIENT_INFLIGHT,
            "messages_per_round": 4 * n,
            "timeout_s": limit.as_secs(),
            "loadavg_before": load_before.trim(),
        });
        let notes = vec![
            "messages per round = N spec publishes into the broker + N deliveries to agents + \
         N status publishes + N deliveries to the hub; msgs_per_s = all measured messages / \
         the sum of measured round times"
                .to_string(),
            "CPU from /proc/<pid>/task/*/schedstat over the measured rounds only; the embedded \
         broker runs in a child process (`workbus-bench embedded-broker`), Mosquitto is a \
         private one started by the harness (stock settings, loopback port)"
                .to_string(),
        ];
        Ok(Report::new(self.name(), params, Value::Object(figures))
            .with_targets(targets)
            .with_notes(notes))
    }
}

/// The `embedded-broker` child process: a `workbus-broker` on a free loopback port. Prints
/// `{"addr": ...}` once bound; answers `stats` on stdin with one JSON line; stops on
/// `quit` or when stdin closes.
pub async fn serve_embedded() -> Result<(), BenchError> {
    use workbus_broker::{Broker, BrokerConfig};
    raise_nofile();
    let handle = Broker::new(BrokerConfig::with_listen(([127, 0, 0, 1], 0).into()))
        .start()
        .await
        .map_err(|e| BenchError::Setup(format!("embedded broker: {e}")))?;
    let mut out = tokio::io::stdout();
    let hello = format!("{}\n", json!({"addr": handle.local_addr().to_string()}));
    out.write_all(hello.as_bytes())
        .await
        .map_err(BenchError::io("stdout"))?;
    out.flush().await.map_err(BenchError::io("stdout"))?;
    serve_stats(|| {
        let s = handle.stats();
        json!({"published": s.published, "delivered": s.delivered,
            "dropped": s.dropped, "connected": s.connected_clients})
    })
    .await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let p = payload(SPEC_PAYLOAD, 7, 4999, [1, u64::MAX / 2, 3]);
        assert_eq!(p.len(), SPEC_PAYLOAD);
        assert_eq!(parse(&p), Some((7, 4999, [1, u64::MAX / 2, 3])));
        assert!(serde_json::from_slice::<Value>(&p).is_ok());
    }
}
