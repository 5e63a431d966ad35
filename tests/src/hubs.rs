//! Running the hub in tests and talking to it over its REST API, with waits driven by
//! the hub's own change notifications.

use std::path::Path;

use serde_json::Value;
use tokio::sync::broadcast;
use workbus_hub::watch::WorkChange;
use workbus_hub::{ApiSettings, BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};

/// The admin token of every hub [`start_hub`] starts (also after a restart on the same
/// data directory); [`rest`] sends it.
pub const ADMIN_TOKEN: &str = "wbt_workbus-tests-admin-token";

/// Starts a hub with its database in `data_dir`, following `source_id`'s topics on the
/// broker at `host:port`, REST on a free port, [`ADMIN_TOKEN`] as its admin token.
pub async fn start_hub(data_dir: &Path, source_id: &str, host: &str, port: u16) -> HubHandle {
    let broker = BrokerSettings::Address {
        host: host.to_string(),
        port,
    };
    start_hub_with(data_dir, source_id, broker).await
}

/// [`start_hub`] with any broker settings (a secured broker: a transport with the hub's
/// certificate, see [`crate::brokers::TestBroker::start_hub`]).
pub async fn start_hub_with(data_dir: &Path, source_id: &str, broker: BrokerSettings) -> HubHandle {
    start_hub_on(StoreSettings::sqlite(data_dir), source_id, broker).await
}

/// [`start_hub_with`] on any store (PostgreSQL: `StoreSettings::postgres`).
pub async fn start_hub_on(
    store: StoreSettings,
    source_id: &str,
    broker: BrokerSettings,
) -> HubHandle {
    Hub::start(hub_config(store, source_id, broker))
        .await
        .expect("hub starts")
}

/// The config of the hubs started here (REST on a free loopback port, [`ADMIN_TOKEN`]),
/// for a test that changes more (the MQTT version, the encoding) before starting it.
pub fn hub_config(store: StoreSettings, source_id: &str, broker: BrokerSettings) -> HubConfig {
    HubConfig {
        store,
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source_id.to_string(),
        broker,
        api: ApiSettings {
            admin_token: Some(ADMIN_TOKEN.into()),
            ..ApiSettings::default()
        },
        ..HubConfig::new()
    }
}

/// A REST call on a blocking thread with the hub's admin token: `method` is GET, PUT,
/// POST or DELETE. Returns the HTTP status and body.
pub async fn rest(hub: &HubHandle, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = hub.client();
    let method = method.to_string();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let r = match method.as_str() {
            "GET" => c.get(&path),
            "DELETE" => c.delete(&path),
            "POST" => c.post(&path, &body.unwrap_or(Value::Null)),
            _ => c.put(&path, &body.unwrap_or(Value::Null)),
        };
        match r {
            Ok(a) => (a.status, a.body),
            Err(workbus_hub::cli::client::CliError::Server { code, message, .. }) => {
                (code, Value::String(message))
            }
            Err(e) => panic!("REST {path}: {e}"),
        }
    })
    .await
    .expect("rest call")
}

/// Waits until `pred` holds for the work's REST representation (`None` = 404), checking
/// the current state first and again after every change notification. Panics after
/// [`crate::WAIT`].
pub async fn wait_work(
    hub: &HubHandle,
    changes: &mut broadcast::Receiver<WorkChange>,
    cluster: &str,
    name: &str,
    what: &str,
    pred: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    let path = format!("/api/v1/clusters/{cluster}/works/{name}");
    loop {
        let (code, body) = rest(hub, "GET", &path, None).await;
        let current = (code == 200).then_some(body);
        if pred(current.as_ref()) {
            return current;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, changes.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("hub stopped while waiting for {what}")
            }
            Err(_) => panic!("timed out waiting for {what}; last state: {current:?}"),
        }
    }
}

/// `status.conditions[type].status` of a REST work, if present.
pub fn condition<'a>(work: &'a Value, type_: &str) -> Option<&'a Value> {
    work["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// True when the work reports `Applied=True` for `generation`.
pub fn applied_at(work: Option<&Value>, generation: i64) -> bool {
    work.and_then(|w| condition(w, "Applied"))
        .is_some_and(|c| c["status"] == "True" && c["observedGeneration"] == generation)
}

/// A kubectl-shaped ManifestWork with one ConfigMap holding `value`.
pub fn configmap_work(cluster: &str, name: &str, cm: &str, value: &str) -> Value {
    configmaps_work(cluster, name, [(cm, value)])
}

/// A kubectl-shaped ManifestWork with one ConfigMap (in `default`) per `(name, value)`,
/// each holding its value under the data key `v`.
pub fn configmaps_work<'a>(
    cluster: &str,
    name: &str,
    configmaps: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Value {
    let manifests: Vec<Value> = configmaps
        .into_iter()
        .map(|(cm, value)| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": cm, "namespace": "default"}, "data": {"v": value}})
        })
        .collect();
    serde_json::json!({
        "apiVersion": workbus_schemas::work::ManifestWork::API_VERSION,
        "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster},
        "spec": {"workload": {"manifests": manifests}}
    })
}

/// Registers `cluster` through the REST API; returns the HTTP status.
pub async fn register_cluster(hub: &HubHandle, cluster: &str) -> u16 {
    rest(
        hub,
        "POST",
        "/api/v1/clusters",
        Some(serde_json::json!({"name": cluster})),
    )
    .await
    .0
}

/// Creates or updates work `name` (one ConfigMap `cm` holding `value`) through the REST
/// API; returns the HTTP status.
pub async fn put_work(hub: &HubHandle, cluster: &str, name: &str, cm: &str, value: &str) -> u16 {
    let path = format!("/api/v1/clusters/{cluster}/works/{name}");
    rest(
        hub,
        "PUT",
        &path,
        Some(configmap_work(cluster, name, cm, value)),
    )
    .await
    .0
}

/// Deletes work `name` through the REST API; returns the HTTP status.
pub async fn delete_work(hub: &HubHandle, cluster: &str, name: &str) -> u16 {
    let path = format!("/api/v1/clusters/{cluster}/works/{name}");
    rest(hub, "DELETE", &path, None).await.0
}
