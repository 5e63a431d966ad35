//! The ManifestWorkReplicaSet REST API on a running hub (no broker needed: the works'
//! events wait in the outbox): OCM YAML in, generated works visible as ordinary works,
//! approve/abort/delete, the SSE-backing rollout events, and refusals with clear
//! messages.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use serde_json::Value;
use workbus_hub::rollout::controller::RolloutSettings;
use workbus_hub::rollout::decisions::{DecisionGroup, MemoryDecisions};
use workbus_hub::rollout::events::RolloutEvent;
use workbus_hub::store::writes::CreateCluster;
use workbus_hub::{ApiSettings, BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};

const MWRS: &str = r#"
apiVersion: work.open-cluster-management.io/v1alpha1
kind: ManifestWorkReplicaSet
metadata:
  name: web
  namespace: apps
spec:
  placementRefs:
    - name: fleet
      rolloutStrategy:
        type: All
  manifestWorkTemplate:
    workload:
      manifests:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: cm, namespace: default}
          data: {v: "1"}
"#;

async fn hub(dir: &std::path::Path, decisions: MemoryDecisions) -> HubHandle {
    Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: unique("mwrs"),
        // Port 9 (discard): nothing listens; the hub retries in the background.
        broker: BrokerSettings::Address {
            host: "127.0.0.1".into(),
            port: 9,
        },
        api: ApiSettings {
            admin_token: Some(TOKEN.into()),
            ..ApiSettings::default()
        },
        rollout: RolloutSettings {
            decisions: Some(Arc::new(decisions)),
            ..Default::default()
        },
        ..HubConfig::new()
    })
    .await
    .expect("hub starts")
}

/// Registers `clusters` and makes them Placement `apps/fleet`'s one decision group.
async fn fleet(hub: &HubHandle, decisions: &MemoryDecisions, clusters: &[&str]) {
    for c in clusters {
        hub.store()
            .write(CreateCluster {
                name: c.to_string(),
                labels: BTreeMap::new(),
                now: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    decisions.set("apps", "fleet", DecisionGroup::indexed(&[("", clusters)]));
}

async fn until(
    rx: &mut tokio::sync::broadcast::Receiver<RolloutEvent>,
    want: impl Fn(&RolloutEvent) -> bool,
) {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) if want(&e) => return,
                Ok(_) => {}
                Err(e) => panic!("rollout events: {e}"),
            }
        }
    })
    .await
    .expect("the rollout event came in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sets_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let decisions = MemoryDecisions::default();
    let hub = hub(dir.path(), decisions.clone()).await;
    fleet(&hub, &decisions, &["c1", "c2"]).await;
    let mut events = hub.watch_rollouts();
    let base = hub.base_url();
    let path = format!("{base}/api/v1/namespaces/apps/manifestworkreplicasets/web");
    let put = http(
        "PUT",
        path.clone(),
        Some("application/yaml"),
        Some(MWRS.into()),
    )
    .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    assert_eq!(put.outcome.as_deref(), Some("created"));
    let again = http(
        "PUT",
        path.clone(),
        Some("application/yaml"),
        Some(MWRS.into()),
    )
    .await;
    assert_eq!(again.outcome.as_deref(), Some("unchanged"));
    until(&mut events, |e| {
        e.cluster.as_deref() == Some("c2") && e.to == "Progressing"
    })
    .await;

    // Every generated work is an ordinary work of its cluster.
    let works = http("GET", format!("{base}/api/v1/works?cluster=c1"), None, None).await;
    let items = works.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "web");
    assert_eq!(
        items[0]["metadata"]["labels"]["work.open-cluster-management.io/manifestworkreplicaset"],
        "apps.web"
    );

    // The summary counts the works that exist when a reconcile reads them: the works
    // made by the reconcile that sent the events above are counted by the next one,
    // which has no event of its own (regression: this read raced it). Bounded polling.
    let deadline = tokio::time::Instant::now() + WAIT;
    let got = loop {
        let got = http("GET", path.clone(), None, None).await;
        if got.body["status"]["summary"]["total"] == 2 || tokio::time::Instant::now() >= deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(got.body["kind"], "ManifestWorkReplicaSet");
    assert_eq!(got.body["status"]["rollout"]["phase"], "Progressing");
    assert_eq!(got.body["status"]["summary"]["total"], 2);
    let list = http(
        "GET",
        format!("{base}/api/v1/manifestworkreplicasets"),
        None,
        None,
    )
    .await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));

    let approve = http("POST", format!("{path}/approve"), None, None).await;
    assert_eq!(
        approve.status, 409,
        "nothing awaits approval: {:?}",
        approve.body
    );
    let abort = http("POST", format!("{path}/abort"), None, None).await;
    assert_eq!(abort.status, 200);
    until(&mut events, |e| e.to == "Aborted").await;

    let deleted = http("DELETE", path.clone(), None, None).await;
    assert_eq!(deleted.status, 200, "Background: gone at once");
    let works = http("GET", format!("{base}/api/v1/works?cluster=c2"), None, None).await;
    assert!(works.body["items"][0]["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(http("GET", path, None, None).await.status, 404);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replica_sets_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), MemoryDecisions::default()).await;
    let base = hub.base_url();
    let path = format!("{base}/api/v1/namespaces/apps/manifestworkreplicasets/web");
    let cases = [
        (
            MWRS.replace(
                "    - name: fleet\n      rolloutStrategy:\n        type: All\n",
                "",
            ),
            "placementRefs",
        ),
        (
            MWRS.replace(
                "type: All",
                "type: Progressive\n        progressive: {maxFailures: \"150%\"}",
            ),
            "maxFailures",
        ),
        (
            MWRS.replace(
                "type: All",
                "type: All\n        all: {progressDeadline: soon}",
            ),
            "progressDeadline",
        ),
        (
            MWRS.replace("namespace: apps", "namespace: other"),
            "namespace",
        ),
        (
            MWRS.replace("kind: ManifestWorkReplicaSet", "kind: ManifestWork"),
            "kind",
        ),
    ];
    for (body, word) in cases {
        let r = http("PUT", path.clone(), Some("application/yaml"), Some(body)).await;
        assert!(
            matches!(r.status, 400 | 422),
            "{word}: {} {:?}",
            r.status,
            r.body
        );
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(word), "{word}: {message}");
    }
    let doc = http("GET", format!("{base}/openapi.json"), None, None)
        .await
        .body;
    for p in [
        "/api/v1/manifestworkreplicasets",
        "/api/v1/namespaces/{ns}/manifestworkreplicasets",
        "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}",
        "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}/approve",
        "/api/v1/namespaces/{ns}/manifestworkreplicasets/{name}/abort",
        "/api/v1/watch/replicasets",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lists {p}");
    }
    let missing = http("GET", path, None, None).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .get("message")
            .and_then(Value::as_str)
            .is_some()
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_watch_streams_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let decisions = MemoryDecisions::default();
    let hub = hub(dir.path(), decisions.clone()).await;
    fleet(&hub, &decisions, &["c1"]).await;
    let base = hub.base_url();
    let watch_url = format!("{base}/api/v1/watch/replicasets?namespace=apps&name=web");
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader};
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(WAIT))
            .build()
            .into();
        let resp = agent
            .get(&watch_url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .call()
            .expect("watch");
        let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
        let mut event = String::new();
        while let Some(Ok(line)) = lines.next() {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            }
            if let Some(data) = line.strip_prefix("data: ")
                && event == "cluster"
            {
                return serde_json::from_str::<Value>(data).unwrap();
            }
        }
        panic!("watch stream ended");
    });
    // The watcher may connect after the first change: each new template rolls out
    // again (a new cluster transition) until it reports one.
    let path = format!("{base}/api/v1/namespaces/apps/manifestworkreplicasets/web");
    let mut n = 0;
    while !reader.is_finished() && n < 200 {
        let body = MWRS.replace("v: \"1\"", &format!("v: \"{n}\""));
        let r = http("PUT", path.clone(), Some("application/yaml"), Some(body)).await;
        assert!(r.status < 300, "{:?}", r.body);
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let event = reader.await.unwrap();
    assert_eq!(event["type"], "cluster");
    assert_eq!(event["cluster"], "c1");
    assert_eq!(event["namespace"], "apps");
    hub.shutdown().await;
}
