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

#[test]
fn environment_variables_configure_the_binary_and_sigterm_stops_it() {
    let mut child = broker()
        .env("WORKBUS_BROKER_LISTEN", "127.0.0.1:0")
        .env("WORKBUS_BROKER_ACL", "off")
        .env("WORKBUS_BROKER_LOG", "warn")
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
