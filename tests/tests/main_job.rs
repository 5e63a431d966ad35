//! The README's main job and deployment examples, as a newcomer would meet them: the
//! quickstart reaches an applied, available sample work on embedded defaults — its
//! broker serving mutual TLS with topic ACLs on, the hub and every agent connected with
//! their certificates — and the example config files in `deploy/` are valid for the side
//! they are written for.

use std::os::unix::fs::PermissionsExt;

use workbus_hub::quickstart::{QuickstartArgs, quickstart};
use workbus_schemas::config::MqttConfig;
use workbus_tests::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_reaches_an_available_sample_work() {
    let dir = std::env::temp_dir().join(unique("quickstart"));
    let args = QuickstartArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker_listen: Some("127.0.0.1:0".parse().unwrap()),
        insecure_broker: false,
        data_dir: dir.clone(),
        clusters: 2,
        source_id: "workbus".into(),
        exit_when_ready: true,
    };
    let first = quickstart(args.clone())
        .await
        .expect("first run reaches ready");
    assert!(first.tls && first.acl, "TLS and ACLs are on by default");
    let pki = first.pki.clone().expect("a certificate directory");
    assert_eq!(pki, dir.join("pki"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pki), 0o700);
    for file in ["ca-key.pem", "server-key.pem", "source.workbus-key.pem"] {
        assert_eq!(mode(&pki.join(file)), 0o600, "{file}");
    }
    // The simulated clusters joined with a bootstrap token: each keeps the certificate
    // the hub issued it (and its own key, never seen by the hub) in its identity dir.
    let identity = dir.join("agents/edge-2/identity");
    assert_eq!(mode(&identity), 0o700);
    for file in ["tls.key", "tls.crt", "ca.crt"] {
        assert_eq!(mode(&identity.join(file)), 0o600, "{file}");
    }
    assert!(
        !pki.join("edge-2-key.pem").exists(),
        "the hub made no key for it"
    );
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    // The hub and one agent per cluster, all over mutual TLS (the broker has no other
    // listener), and nothing the ACL refuses.
    assert_eq!(first.broker.connected_clients, 3, "{:?}", first.broker);
    assert_eq!(
        (
            first.broker.denied_publishes,
            first.broker.denied_subscriptions,
            first.broker.refused_connections,
            first.broker.tls_handshake_failures
        ),
        (0, 0, 0, 0),
        "{:?}",
        first.broker
    );
    // A second run over the same data resumes with the same CA: the sample is unchanged
    // and still ready.
    let second = quickstart(args).await.expect("second run reaches ready");
    assert!(second.tls && second.acl);
    assert_eq!(
        std::fs::read(pki.join("ca.pem")).unwrap(),
        ca,
        "the CA is kept"
    );
    assert_eq!(second.broker.connected_clients, 3, "{:?}", second.broker);
    assert!(dir.join("hub").exists());
    assert!(dir.join("agents/edge-1/works").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_opt_out_runs_plaintext_on_loopback() {
    let dir = std::env::temp_dir().join(unique("quickstart-insecure"));
    let args = QuickstartArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker_listen: Some("127.0.0.1:0".parse().unwrap()),
        insecure_broker: true,
        data_dir: dir.clone(),
        clusters: 1,
        source_id: "workbus".into(),
        exit_when_ready: true,
    };
    let summary = quickstart(args).await.expect("reaches ready");
    assert!(!summary.tls && !summary.acl && summary.pki.is_none());
    assert!(!dir.join("pki").exists(), "no certificates are made");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_examples_are_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
    let hub =
        MqttConfig::from_bytes(&std::fs::read(format!("{root}/hub-mqtt.yaml")).unwrap()).unwrap();
    hub.topics.validate_for_source("workbus").unwrap();
    let agent =
        MqttConfig::from_bytes(&std::fs::read(format!("{root}/agent-mqtt.yaml")).unwrap()).unwrap();
    agent.topics.validate_for_agent("edge-9").unwrap();
}
