//! Shared test helpers: start a hub on a temp dir with REST on port 0 against Mosquitto
//! (a private one per test process, `workbus-testkit`), a small REST client, a fake agent built from `Transport`, and
//! bounded waits. Every test uses its own source id so parallel tests never see each
//! other's traffic.

#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use cloudevents::AttributesReader;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use workbus_hub::{BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};
use workbus_schemas::Event;
use workbus_schemas::envelope::{self, StatusEventFields};
use workbus_schemas::event_type::{Action, EventType};
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::topics::{self, Topics};
use workbus_transport::{Transport, TransportConfig, TransportEvent};

/// The admin token every test hub accepts (`ApiSettings::admin_token`), sent by
/// [`http`].
pub const TOKEN: &str = "wbt_hub-tests-admin-token";

/// Longest wait for anything.
pub const WAIT: Duration = Duration::from_secs(15);

/// Mosquitto: this test process's own (`workbus-testkit`).
pub fn broker() -> (&'static str, u16) {
    let m = workbus_testkit::mosquitto();
    (m.host(), m.port())
}

/// A name unique to this test process and call (source ids, clusters).
pub use workbus_testkit::unique;

/// Starts a hub on `dir` with the given broker.
pub async fn start_hub_with(
    dir: &std::path::Path,
    source_id: &str,
    host: &str,
    port: u16,
) -> HubHandle {
    let config = HubConfig {
        store: StoreSettings::sqlite(dir),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source_id.to_string(),
        broker: BrokerSettings::Address {
            host: host.to_string(),
            port,
        },
        api: workbus_hub::ApiSettings {
            admin_token: Some(TOKEN.into()),
            ..Default::default()
        },
        ..HubConfig::new()
    };
    Hub::start(config).await.expect("hub starts")
}

/// Starts a hub against Mosquitto with `config` adjusted by `adjust` (registration
/// settings, say), and waits until it is subscribed.
pub async fn start_hub_adjusted(
    dir: &std::path::Path,
    source_id: &str,
    adjust: impl FnOnce(&mut HubConfig),
) -> HubHandle {
    let mut config = HubConfig {
        store: StoreSettings::sqlite(dir),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source_id.to_string(),
        broker: BrokerSettings::Address {
            host: broker().0.to_string(),
            port: broker().1,
        },
        api: workbus_hub::ApiSettings {
            admin_token: Some(TOKEN.into()),
            ..Default::default()
        },
        ..HubConfig::new()
    };
    adjust(&mut config);
    let hub = Hub::start(config).await.expect("hub starts");
    assert!(
        hub.wait_subscribed(WAIT).await,
        "hub subscribed to the broker"
    );
    hub
}

/// Starts a hub against Mosquitto and waits until it is subscribed.
pub async fn start_hub(dir: &std::path::Path, source_id: &str) -> HubHandle {
    let hub = start_hub_with(dir, source_id, broker().0, broker().1).await;
    assert!(
        hub.wait_subscribed(WAIT).await,
        "hub subscribed to the broker"
    );
    hub
}

/// A REST answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub outcome: Option<String>,
    pub body: Value,
}

/// One HTTP request with the test hubs' admin [`TOKEN`] (blocking client on the
/// blocking pool).
pub async fn http(
    method: &str,
    url: String,
    content_type: Option<&str>,
    body: Option<String>,
) -> Resp {
    http_as(Some(TOKEN), method, url, content_type, body).await
}

/// [`http`] with another token, or none.
pub async fn http_as(
    token: Option<&str>,
    method: &str,
    url: String,
    content_type: Option<&str>,
    body: Option<String>,
) -> Resp {
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("authorization".to_string(), format!("Bearer {t}")));
    }
    http_with(method, url, content_type, body, headers).await
}

/// One HTTP request with exactly these extra headers.
pub async fn http_with(
    method: &str,
    url: String,
    content_type: Option<&str>,
    body: Option<String>,
    headers: Vec<(String, String)>,
) -> Resp {
    let method = method.to_string();
    let content_type = content_type.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let result = match (method.as_str(), body) {
            ("GET", _) => headers
                .iter()
                .fold(agent.get(&url), |r, (k, v)| r.header(k, v))
                .call(),
            ("DELETE", _) => headers
                .iter()
                .fold(agent.delete(&url), |r, (k, v)| r.header(k, v))
                .call(),
            (m, b) => {
                let b = b.unwrap_or_default();
                let ct = content_type.unwrap_or_else(|| "application/json".into());
                let req = match m {
                    "POST" => agent.post(&url),
                    "PUT" => agent.put(&url),
                    other => panic!("unsupported method {other}"),
                };
                let req = headers.iter().fold(req, |r, (k, v)| r.header(k, v));
                if ct.is_empty() {
                    req.send(b)
                } else {
                    req.header("content-type", &ct).send(b)
                }
            }
        };
        let mut resp = result.expect("HTTP request");
        let status = resp.status().as_u16();
        let outcome = resp
            .headers()
            .get("x-workbus-outcome")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            outcome,
            body,
        }
    })
    .await
    .expect("http task")
}

/// `POST /api/v1/clusters`.
pub async fn create_cluster(hub: &HubHandle, name: &str) -> Resp {
    http(
        "POST",
        format!("{}/api/v1/clusters", hub.base_url()),
        None,
        Some(json!({"name": name}).to_string()),
    )
    .await
}

/// A ManifestWork with one ConfigMap.
pub fn work_json(cluster: &str, name: &str, data: &str) -> Value {
    json!({
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster, "labels": {"app": "demo"}},
        "spec": {"workload": {"manifests": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{name}"), "namespace": "default"},
            "data": {"key": data}
        }]}}
    })
}

/// `PUT /api/v1/clusters/{cluster}/works/{name}` with JSON.
pub async fn put_work(hub: &HubHandle, work: &Value) -> Resp {
    let cluster = work["metadata"]["namespace"].as_str().unwrap();
    let name = work["metadata"]["name"].as_str().unwrap();
    http(
        "PUT",
        format!("{}/api/v1/clusters/{cluster}/works/{name}", hub.base_url()),
        None,
        Some(work.to_string()),
    )
    .await
}

/// `GET` a work.
pub async fn get_work(hub: &HubHandle, cluster: &str, name: &str) -> Resp {
    http(
        "GET",
        format!("{}/api/v1/clusters/{cluster}/works/{name}", hub.base_url()),
        None,
        None,
    )
    .await
}

/// Polls `cond` until true or [`WAIT`] passes (bounded; polling an observable state).
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// An agent stand-in on the wire: subscribes to its cluster's spec topic, publishes
/// statuses and resync requests, records what the hub sends.
pub struct FakeAgent {
    pub source_id: String,
    pub cluster: String,
    topics: Topics,
    transport: Transport,
}

impl FakeAgent {
    /// Connects to Mosquitto and waits until subscribed.
    pub async fn connect(source_id: &str, cluster: &str) -> FakeAgent {
        Self::connect_at(broker().0, broker().1, source_id, cluster).await
    }

    /// Connects to the broker at `host:port` and waits until subscribed.
    pub async fn connect_at(host: &str, port: u16, source_id: &str, cluster: &str) -> FakeAgent {
        let topics = Topics::for_agent(source_id, cluster).unwrap();
        let subs = topics::agent_subscriptions(&topics, cluster).unwrap();
        let mut cfg = TransportConfig::new(
            host,
            port,
            format!("{cluster}-{source_id}-work-agent-client"),
        );
        cfg.subscriptions = subs;
        let mut transport = Transport::start(cfg).unwrap();
        loop {
            match timeout(WAIT, transport.events.recv()).await {
                Ok(Some(TransportEvent::Subscribed)) => break,
                Ok(Some(_)) => continue,
                _ => panic!("fake agent could not subscribe"),
            }
        }
        FakeAgent {
            source_id: source_id.to_string(),
            cluster: cluster.to_string(),
            topics,
            transport,
        }
    }

    /// Publishes an event like an agent does (binary mode).
    pub async fn publish(&self, event: &Event) {
        let ty: EventType = envelope::decode_event_type(event).unwrap();
        let original = event
            .extension("originalsource")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let topic =
            topics::agent_publish_topic(&self.topics, &self.cluster, &ty, Some(&original)).unwrap();
        let msg = mqtt::encode(event, &topic, Encoding::Binary).unwrap();
        self.transport.publisher.publish(&msg).await.unwrap();
    }

    /// Publishes `event` on the agent events topic of `cluster` (any cluster: the test
    /// broker has no ACLs), as that cluster's agent would.
    pub async fn publish_as(&self, cluster: &str, event: &Event) {
        let ty: EventType = envelope::decode_event_type(event).unwrap();
        let topics = Topics::for_agent(&self.source_id, cluster).unwrap();
        let topic = topics::agent_publish_topic(&topics, cluster, &ty, Some("")).unwrap();
        let msg = mqtt::encode(event, &topic, Encoding::Binary).unwrap();
        self.transport.publisher.publish(&msg).await.unwrap();
    }

    /// Publishes a status update for `uid` at `generation`.
    pub async fn send_status(&self, uid: &str, generation: i64, sequence_id: &str, status: Value) {
        let hash = workbus_schemas::status_hash::sha256_hex(status.to_string().as_bytes());
        let fields = StatusEventFields {
            agent_id: format!("{}-work-agent", self.cluster),
            action: Action::UpdateRequest,
            cluster_name: self.cluster.clone(),
            original_source: self.source_id.clone(),
            resource_id: uid.to_string(),
            generation,
            sequence_id: sequence_id.to_string(),
            status_hash: hash,
            metadata: serde_json::Map::new(),
            status,
            log_tracing: Default::default(),
        };
        let mut event = fields.build(Utc::now()).unwrap();
        // The hub checks `statushash` against the status it decodes: send the real one
        // (a status that does not decode keeps the placeholder, the hub refuses it anyway).
        if let Ok(decoded) = workbus_schemas::metadata::decode_status_event(&event) {
            use workbus_schemas::extensions::OcmExtensionsMut;
            event.set_status_hash(&workbus_schemas::status_hash::status_hash(&decoded.status));
        }
        self.publish(&event).await;
    }

    /// Publishes a spec resync request listing `(uid, version)`.
    pub async fn send_spec_resync(&self, versions: &[(&str, i64)]) {
        let list: Vec<Value> = versions
            .iter()
            .map(|(id, v)| json!({"resourceID": id, "resourceVersion": v}))
            .collect();
        let event = envelope::spec_resync_request(
            &format!("{}-work-agent", self.cluster),
            &self.cluster,
            json!({"resourceVersions": list}),
            Utc::now(),
        );
        self.publish(&event).await;
    }

    /// The next received event matching `pred` (others skipped); panics after [`WAIT`].
    pub async fn next(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.transport.events.recv()).await {
                Ok(Some(TransportEvent::Message(m))) => {
                    let e = mqtt::decode(&m).expect("hub sends decodable events");
                    if pred(&e) {
                        return e;
                    }
                }
                Ok(Some(_)) => {}
                _ => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Every event received within `window` (to check that nothing else arrives).
    pub async fn drain(&mut self, window: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.transport.events.recv()).await {
                Ok(Some(TransportEvent::Message(m))) => out.push(mqtt::decode(&m).unwrap()),
                Ok(Some(_)) => {}
                _ => return out,
            }
        }
    }
}

/// The event's `type` ends with `suffix` (e.g. `spec.create_request`).
pub fn is_type(e: &Event, suffix: &str) -> bool {
    e.ty().ends_with(suffix)
}

/// A string extension of an event.
pub fn ext(e: &Event, name: &str) -> Option<String> {
    e.extension(name).map(|v| v.to_string())
}

/// A hub with source `source` on `dir`, a new cluster, a fake agent subscribed for it,
/// and work `w1` created and delivered: the start of every status-rule scenario.
pub struct CreatedWork {
    /// The hub.
    pub hub: HubHandle,
    /// The cluster's name.
    pub cluster: String,
    /// The fake agent of the cluster (it has seen the create).
    pub agent: FakeAgent,
    /// The work's resource id.
    pub uid: String,
}

impl CreatedWork {
    /// Starts it all; `w1` holds one ConfigMap with data `a`.
    pub async fn start(dir: &std::path::Path, source: &str) -> CreatedWork {
        let hub = start_hub(dir, source).await;
        let cluster = unique("c");
        assert_eq!(create_cluster(&hub, &cluster).await.status, 201);
        let mut agent = FakeAgent::connect(source, &cluster).await;
        let uid =
            workbus_schemas::resource_id::work_resource_id(source, &cluster, "w1").to_string();
        put_work(&hub, &work_json(&cluster, "w1", "a")).await;
        agent
            .next("create", |e| is_type(e, "spec.create_request"))
            .await;
        CreatedWork {
            hub,
            cluster,
            agent,
            uid,
        }
    }
}
