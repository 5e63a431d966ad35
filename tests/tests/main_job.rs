//! The README's main job and deployment examples, as a newcomer would meet them: the
//! quickstart reaches an applied, available sample work on embedded defaults, and the
//! example config files in `deploy/` are valid for the side they are written for.

use workbus_hub::quickstart::{QuickstartArgs, quickstart};
use workbus_schemas::config::MqttConfig;
use workbus_tests::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_reaches_an_available_sample_work() {
    let dir = std::env::temp_dir().join(unique("quickstart"));
    let args = QuickstartArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.clone(),
        clusters: 2,
        source_id: "workbus".into(),
        exit_when_ready: true,
    };
    quickstart(args.clone())
        .await
        .expect("first run reaches ready");
    // A second run over the same data resumes: the sample is unchanged and still ready.
    quickstart(args).await.expect("second run reaches ready");
    assert!(dir.join("hub").exists());
    assert!(dir.join("agents/edge-1/works").exists());
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
