//! Watches: initial state, resuming at a resourceVersion, selectors on both sides of a
//! change, expired versions, timeouts, initial-events bookmarks, tables, shutdown.

mod common;

use common::*;
use serde_json::json;
use workbus_kube_apiserver::ServerConfig;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn ev(t: &str, n: &str) -> (String, String) {
    (t.to_string(), n.to_string())
}

#[test]
fn initial_state_then_changes_in_order() {
    let s = Server::start();
    s.configmap("default", cm("a"));
    let mut w = s.watch(&format!("{CMS}?watch=true&timeoutSeconds=5"));
    assert_eq!(
        w.take(2),
        [ev("ADDED", "a"), ev("ADDED", "kube-root-ca.crt")]
    );
    s.configmap("default", cm("b"));
    s.patch(&format!("{CMS}/b"), MERGE, r#"{"data": {"x": "1"}}"#);
    s.delete(&format!("{CMS}/a"), None);
    let events: Vec<_> = (0..3).map_while(|_| w.next()).collect();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]);
    assert_eq!(
        events[0]["object"]["kind"], "ConfigMap",
        "event objects carry their kind"
    );
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
}

#[test]
fn resume_at_a_resource_version() {
    let s = Server::start();
    let a = s.configmap("default", cm("a"));
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap();
    s.patch(&format!("{CMS}/a"), MERGE, r#"{"data": {"x": "1"}}"#);
    s.configmap("default", cm("b"));
    s.delete(&format!("{CMS}/a"), None);
    let mut w = s.watch(&format!(
        "{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=2"
    ));
    assert_eq!(
        w.take(3),
        [ev("MODIFIED", "a"), ev("ADDED", "b"), ev("DELETED", "a")]
    );
    assert!(w.next().is_none(), "the stream ends at timeoutSeconds");
}

#[test]
fn selectors_apply_to_both_sides_of_a_change() {
    let s = Server::start();
    s.configmap(
        "default",
        json!({"metadata": {"name": "m", "labels": {"tier": "web"}}}),
    );
    let mut w = s.watch(&format!(
        "{CMS}?watch=true&labelSelector=tier%3Dweb&timeoutSeconds=5"
    ));
    assert_eq!(w.take(1), [ev("ADDED", "m")]);
    s.patch(
        &format!("{CMS}/m"),
        MERGE,
        r#"{"metadata": {"labels": {"tier": "db"}}}"#,
    );
    s.configmap(
        "default",
        json!({"metadata": {"name": "n", "labels": {"tier": "db"}}}),
    );
    s.patch(
        &format!("{CMS}/m"),
        MERGE,
        r#"{"metadata": {"labels": {"tier": "web"}}}"#,
    );
    assert_eq!(w.take(2), [ev("DELETED", "m"), ev("ADDED", "m")]);
    // One object by name.
    let mut one = s.watch(&format!("{CMS}/n?watch=true&timeoutSeconds=5"));
    assert_eq!(one.take(1), [ev("ADDED", "n")]);
}

#[test]
fn expired_versions_end_with_410() {
    let s = Server::start_with(ServerConfig {
        history_limit: 5,
        ..Default::default()
    });
    for i in 0..10 {
        s.configmap("default", cm(&format!("c{i}")));
    }
    let mut w = s.watch(&format!("{CMS}?watch=true&resourceVersion=2"));
    let e = w.next().expect("an error event");
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(
        e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 2 (")
    );
    assert!(w.next().is_none());
}

#[test]
fn initial_events_end_with_a_bookmark_and_tables_stream() {
    let s = Server::start();
    s.configmap("default", cm("a"));
    let mut w = s.watch(&format!(
        "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2"
    ));
    let first: Vec<_> = (0..3).map_while(|_| w.next()).collect();
    assert_eq!(first[0]["type"], "ADDED");
    assert_eq!(first[2]["type"], "BOOKMARK");
    assert_eq!(
        first[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let url = format!("{}{CMS}?watch=true&timeoutSeconds=1", s.url);
    let resp = ureq::get(&url)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .call()
        .unwrap();
    let text = resp.into_body().read_to_string().unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["object"]["kind"], "Table");
    assert_eq!(line["object"]["rows"][0]["cells"][0], "a");
}

#[test]
fn shutdown_ends_open_watches() {
    let mut s = Server::start();
    let mut w = s.watch(&format!("{CMS}?watch=true&resourceVersion=0"));
    assert_eq!(w.take(1).len(), 1);
    assert_eq!(s.api().watch_count(), 1);
    let server = s.server.take().unwrap();
    let done = std::thread::spawn(move || std::iter::from_fn(|| w.next()).count());
    s.rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), server.shutdown())
            .await
            .expect("shutdown is bounded")
    });
    assert_eq!(done.join().unwrap(), 0, "the stream ended");
}
