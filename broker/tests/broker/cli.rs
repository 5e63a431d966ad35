//! The `workbus-broker` binary: configured from the environment, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::common::WAIT;

fn broker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_workbus-broker"));
    command.env_remove("RUST_LOG");
    command
}

/// Starts `command` with its standard output read line by line on a thread.
fn spawn_reading_stdout(command: &mut Command) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the broker starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

#[test]
fn environment_variables_configure_the_binary_and_sigterm_stops_it() {
    let (mut child, lines) = spawn_reading_stdout(
        broker()
            .env("WORKBUS_BROKER_LISTEN", "127.0.0.1:0")
            .env("WORKBUS_BROKER_ACL", "off")
            .env("WORKBUS_BROKER_LOG", "warn"),
    );
    let first = lines.recv_timeout(WAIT).expect("a listening line");
    // Not the default 127.0.0.1:1883: the variable was read.
    assert!(
        first.starts_with("workbus-broker listening on 127.0.0.1:") && !first.contains(":1883 "),
        "{first}"
    );
    assert!(first.ends_with("plaintext, loopback only)"), "{first}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The rest of the banner (ACL state), then the goodbye.
    let mut last = String::new();
    while let Ok(line) = lines.recv_timeout(WAIT) {
        last = line;
        if last == "workbus-broker shutting down" {
            break;
        }
    }
    assert_eq!(last, "workbus-broker shutting down");
    assert!(child.wait().expect("exits").success());
}

#[test]
fn a_bad_environment_value_is_refused_like_a_bad_flag() {
    let out = broker()
        .env("WORKBUS_BROKER_MAX_PACKET_SIZE", "lots")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-packet-size"), "{stderr}");
    assert!(stderr.contains("\"lots\" is not a size"), "{stderr}");
}

/// `deploy/broker/` (Dockerfile, systemd unit and env file) uses only flags and
/// variables the binary has, and its HEALTHCHECK's `probe` tells a listening address
/// from a closed one (`tests/tests/deploy_packaging.rs` checks the rest).
#[test]
fn packaging_uses_real_flags_and_the_probe_works() {
    let help = broker().arg("--help").output().expect("--help runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/broker");
    let read = |f: &str| std::fs::read_to_string(deploy.join(f)).expect(f);
    let mut used = String::new();
    for f in [
        "Dockerfile",
        "systemd/workbus-broker.service",
        "systemd/workbus-broker.env",
    ] {
        used.push_str(&read(f));
        used.push('\n');
    }
    let variables: Vec<&str> = used
        .split(|c: char| c.is_whitespace() || c == '#')
        .filter(|w| w.starts_with("WORKBUS_BROKER_"))
        .filter_map(|w| w.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(variables.contains(&"WORKBUS_BROKER_TLS_LISTEN"));
    for var in variables {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "{var} is not read by workbus-broker"
        );
    }
    let unit = read("systemd/workbus-broker.service").replace("\\\n", " ");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    for flag in exec.split_whitespace().filter_map(|w| w.strip_prefix("--")) {
        let flag = flag.split('=').next().unwrap_or(flag);
        assert!(
            help.contains(&format!("--{flag} ")),
            "the unit uses --{flag}, which workbus-broker does not have"
        );
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let probe = |addr: &str| broker().args(["probe", addr]).status().expect("probe runs");
    assert!(probe(&addr).success());
    drop(listener);
    assert!(!probe(&addr).success());
}

/// SIGHUP re-reads the credential file (issue 12): a new identity logs in without a
/// restart and a removed one's session is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_credential_file() {
    use crate::common::{connect_v5, spawn_v5, v5_options};
    use workbus_broker::credentials::{hash_password, set_line};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let line = |name: &str, password: &[u8]| set_line("", name, &hash_password(password).unwrap());
    std::fs::write(&file, line("a", b"a-1")).unwrap();
    let (mut child, lines) = spawn_reading_stdout(
        broker()
            .args(["--listen", "127.0.0.1:0", "--log", "warn", "--credentials"])
            .arg(&file),
    );
    let first = lines.recv_timeout(WAIT).expect("a listening line");
    let addr: std::net::SocketAddr = first
        .strip_prefix("workbus-broker listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first}"));
    let login = |who: &str, password: &str| {
        let mut o = v5_options(addr, &format!("{who}-work-agent-client"));
        o.set_credentials(who, password);
        o
    };
    let (mut a, _) = connect_v5(login("a", "a-1")).await;
    let mut b = spawn_v5(login("b", "b-1"));
    let refused = b.expect_error("b unknown before the reload").await;
    assert!(refused.contains("BadUserNamePassword"), "{refused}");

    std::fs::write(&file, line("b", b"b-1")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let reloaded = loop {
        let line = lines.recv_timeout(WAIT).expect("a reload line");
        if line.starts_with("workbus-broker credential file reloaded") {
            break line;
        }
    };
    assert_eq!(
        reloaded,
        "workbus-broker credential file reloaded: 1 identities, 1 withdrawn, 1 sessions closed"
    );
    let why = a.expect_error("a's session closed").await;
    assert!(why.contains("AdministrativeAction"), "{why}");
    connect_v5(login("b", "b-1")).await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert!(child.wait().expect("exits").success());
}

#[test]
fn version_flag_prints_the_version() {
    let out = broker().arg("--version").output().expect("the broker runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("workbus-broker {}", env!("CARGO_PKG_VERSION"))
    );
}
