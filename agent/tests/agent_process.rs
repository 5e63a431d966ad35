//! The agent process, as an operator runs it.
//!
//! It stops on SIGTERM within its bound in every connection state (issue 9, bug 4:
//! without a broker it printed `shutting down` and hung until SIGKILL, which systemd and
//! Kubernetes would send on every stop of an edge device). States: never connected
//! (nothing listens), connecting to a peer that never answers (a black-holed broker), and
//! connected once, then the broker gone.
//!
//! It tells the operator what happens at the default level (issue 17): connecting,
//! subscribing and resyncing are INFO lines, as text without colour codes when standard
//! error is not a terminal, or as JSON objects with `--log-format json`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use workbus_agent::runtime::SHUTDOWN_LIMIT;

/// A started agent process and its output lines (logs and banner, both streams).
struct AgentProcess {
    /// Its cluster: unique, so agents of parallel tests never share a client id.
    cluster: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    _data: tempfile::TempDir,
}

/// Forwards every line of `stream` to `lines` until it ends.
fn forward_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: mpsc::UnboundedSender<String>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let _ = lines.send(line);
        }
    });
}

impl AgentProcess {
    fn start(broker: &str) -> AgentProcess {
        Self::start_with(
            broker,
            &[],
            Some("workbus_agent=debug,workbus_transport=debug"),
        )
    }

    /// The agent with extra `args`, logging at `rust_log` (`None`: the default level).
    fn start_with(broker: &str, args: &[&str], rust_log: Option<&str>) -> AgentProcess {
        let data = tempfile::tempdir().unwrap();
        let cluster = workbus_testkit::unique("edge-process");
        let mut command = Command::new(env!("CARGO_BIN_EXE_workbus-agent"));
        command
            .arg(format!("--spoke-cluster-name={cluster}"))
            .arg(format!("--broker={broker}"))
            .arg(format!("--data-dir={}", data.path().display()))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("agent starts");
        let (tx, lines) = mpsc::unbounded_channel();
        forward_lines(child.stderr.take().unwrap(), tx.clone());
        forward_lines(child.stdout.take().unwrap(), tx);
        AgentProcess {
            cluster,
            child,
            lines,
            _data: data,
        }
    }

    /// Waits for an output line containing `needle`.
    async fn wait_line(&mut self, needle: &str) {
        self.line_with(needle).await;
    }

    /// The first output line containing `needle`.
    async fn line_with(&mut self, needle: &str) -> String {
        let found = timeout(Duration::from_secs(20), async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("agent never logged {needle:?}"),
        }
    }

    /// Sends SIGTERM and asserts a clean exit within the shutdown bound.
    async fn terminate_within_bound(mut self) {
        let pid = self.child.id().expect("running") as i32;
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let exit = timeout(SHUTDOWN_LIMIT + Duration::from_secs(1), self.child.wait())
            .await
            .expect("the agent exits within its shutdown bound");
        assert!(exit.unwrap().success(), "clean exit");
        assert!(started.elapsed() <= SHUTDOWN_LIMIT + Duration::from_secs(1));
    }
}

#[tokio::test]
async fn exits_on_sigterm_when_never_connected() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = AgentProcess::start(&format!("127.0.0.1:{port}"));
    agent.wait_line("cannot connect to the MQTT broker").await;
    agent.terminate_within_bound().await;
}

#[tokio::test]
async fn exits_on_sigterm_while_the_broker_never_answers() {
    // Accepts TCP, reads nothing, answers nothing: CONNECT waits for a CONNACK.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let mut agent = AgentProcess::start(&addr.to_string());
    agent.wait_line("workbus-agent: cluster").await;
    agent.terminate_within_bound().await;
    held.abort();
}

#[tokio::test]
async fn exits_on_sigterm_after_losing_the_broker() {
    // A forwarder to Mosquitto that the test takes away once the agent is connected.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let forwarder = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut broker = tokio::net::TcpStream::connect(workbus_testkit::mosquitto().addr())
            .await
            .unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
    });
    let mut agent = AgentProcess::start(&addr.to_string());
    agent.wait_line("connected to the MQTT broker").await;
    agent
        .wait_line("subscribed; asking the sources for their specs")
        .await;
    forwarder.abort(); // closes both sockets and the listener
    agent
        .wait_line("disconnected from the MQTT broker; reconnecting")
        .await;
    agent.terminate_within_bound().await;
}

#[tokio::test]
async fn logs_its_connection_at_the_default_level_without_colour_codes() {
    let mut agent =
        AgentProcess::start_with(&workbus_testkit::mosquitto().addr().to_string(), &[], None);
    let connected = agent.line_with("connected to the MQTT broker").await;
    assert!(connected.contains("INFO"), "{connected}");
    let client_id = format!("client_id={}-work-agent-client", agent.cluster);
    assert!(connected.contains(&client_id), "{connected}");
    let subscribed = agent
        .line_with("subscribed; asking the sources for their specs")
        .await;
    let cluster = format!("cluster={}", agent.cluster);
    assert!(subscribed.contains(&cluster), "{subscribed}");
    for line in [&connected, &subscribed] {
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    }
    agent.terminate_within_bound().await;
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let mut agent = AgentProcess::start_with(
        &workbus_testkit::mosquitto().addr().to_string(),
        &["--log-format=json"],
        None,
    );
    let line = agent.line_with("subscribed; asking the sources").await;
    let object: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(object["level"], "INFO");
    assert_eq!(object["cluster"], agent.cluster.as_str());
    assert_eq!(
        object["message"],
        "subscribed; asking the sources for their specs (resync)"
    );
    assert!(object["timestamp"].is_string());
    agent.terminate_within_bound().await;
}

#[tokio::test]
async fn warns_about_unknown_keys_of_the_mqtt_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqtt.yaml");
    let broker = workbus_testkit::mosquitto().addr().to_string();
    // `keepalive` is a typo of `keepAlive`: ignored, as by sdk-go, but said.
    std::fs::write(
        &config,
        format!(
            "brokerHost: {broker}\nkeepalive: 5\ntopics:\n  sourceEvents: sources/hub1/consumers/+/sourceevents\n  agentEvents: sources/hub1/consumers/+/agentevents\n"
        ),
    )
    .unwrap();
    let mut agent = AgentProcess::start_with(
        &broker,
        &[&format!("--workload-source-config={}", config.display())],
        None,
    );
    let line = agent.line_with("unknown key in the MQTT config file").await;
    assert!(
        line.contains("WARN") && line.contains("key=keepalive"),
        "{line}"
    );
    assert!(line.contains("mqtt.yaml"), "{line}");
}

#[tokio::test]
async fn version_flag_prints_the_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_workbus-agent"))
        .arg("--version")
        .output()
        .await
        .expect("the agent runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("workbus-agent {}", env!("CARGO_PKG_VERSION"))
    );
}
