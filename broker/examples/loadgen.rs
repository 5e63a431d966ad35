//! Load generator for idle-connection memory and fan-out measurements (loopback only).
//!
//! Opens N raw MQTT 5 connections that each subscribe to their own agent topic
//! (`sources/hub/consumers/agent-<i>/sourceevents`, the Maestro layout), reports, then
//! publishes one QoS 1 message per agent from a single "hub" connection and reports how long
//! until every agent has it. Raw sockets with pre-encoded packets keep the generator's own
//! cost per connection small, so one process can drive 10,000+ connections.
//!
//! Usage: `cargo run --release -p workbus-broker --example loadgen -- ADDR N [PAYLOAD_BYTES] [BROKER_PID]`
//! where ADDR must be a loopback address; with BROKER_PID the broker's RSS is reported.
//! `LOADGEN_CONNECTING=K` limits concurrent handshakes (default: all at once). The run is bounded: every wait has a timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore};

fn encode(packets: Vec<p5::Packet>) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in packets {
        if p.write(&mut out, None).is_err() {
            eprintln!("cannot encode a packet");
            std::process::exit(2);
        }
    }
    out.to_vec()
}

fn topic(i: usize) -> String {
    format!("sources/hub/consumers/agent-{i}/sourceevents")
}

fn connect_packet(id: String) -> p5::Packet {
    let mut props = p5::ConnectProperties::new();
    props.max_packet_size = Some(2 * 1024 * 1024);
    p5::Packet::Connect(
        p5::Connect {
            keep_alive: 600,
            client_id: id,
            clean_start: true,
            properties: Some(props),
        },
        None,
        None,
    )
}

/// Connects, subscribes, waits at `ready`, then returns after its first PUBLISH (acked).
async fn agent(
    addr: SocketAddr,
    i: usize,
    ready: Arc<Barrier>,
    received: Arc<AtomicUsize>,
    connecting: Arc<Semaphore>,
) -> std::io::Result<()> {
    // At most `connecting` handshakes at once, so brokers with small accept backlogs are
    // measured on memory, not on how they cope with a connection storm.
    let mut permit = Some(
        connecting
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?,
    );
    let mut s = TcpStream::connect(addr).await?;
    let mut sub = p5::Subscribe::new(p5::Filter::new(topic(i), QoS::AtLeastOnce), None);
    sub.pkid = 1;
    s.write_all(&encode(vec![
        connect_packet(format!("agent-{i}")),
        p5::Packet::Subscribe(sub),
    ]))
    .await?;
    let mut buf = BytesMut::with_capacity(256);
    let mut acked = false;
    loop {
        match p5::Packet::read(&mut buf, None) {
            Ok(p5::Packet::SubAck(_)) if !acked => {
                acked = true;
                permit.take();
                // Idle agents should hold no big buffer either.
                buf = BytesMut::new();
                ready.wait().await;
            }
            Ok(p5::Packet::Publish(p)) => {
                if p.pkid != 0 {
                    s.write_all(&encode(vec![p5::Packet::PubAck(p5::PubAck::new(
                        p.pkid, None,
                    ))]))
                    .await?;
                }
                received.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Ok(_) => {}
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {
                if s.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}

fn broker_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(n)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: loadgen ADDR N [PAYLOAD_BYTES] [BROKER_PID]");
        std::process::exit(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("loadgen only targets loopback addresses");
        std::process::exit(2);
    }
    let payload_len: usize = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(1024);
    let broker_pid: Option<u32> = args.get(3).and_then(|p| p.parse().ok());
    let concurrency: usize = std::env::var("LOADGEN_CONNECTING")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(n.max(1));
    let connecting = Arc::new(Semaphore::new(concurrency));
    let rss_before = broker_rss_kib(broker_pid);

    let ready = Arc::new(Barrier::new(n + 1));
    let received = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ready, received) = (Arc::clone(&ready), Arc::clone(&received));
        let connecting = Arc::clone(&connecting);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = agent(addr, i, ready, received, connecting).await {
                eprintln!("agent {i}: {e}");
            }
        }));
    }
    if tokio::time::timeout(Duration::from_secs(120), ready.wait())
        .await
        .is_err()
    {
        eprintln!("not all agents subscribed within 120 s");
        std::process::exit(1);
    }
    println!(
        "{n} agents connected and subscribed in {:.2?}",
        started.elapsed()
    );
    if let (Some(before), Some(after)) = (rss_before, broker_rss_kib(broker_pid)) {
        println!(
            "broker RSS {before} KiB -> {after} KiB: {:.2} KiB per idle subscribed connection",
            (after.saturating_sub(before)) as f64 / n as f64
        );
    }

    // Fan-out: the hub publishes one message per agent topic.
    let mut hub = TcpStream::connect(addr).await.unwrap_or_else(|e| {
        eprintln!("hub connect: {e}");
        std::process::exit(1)
    });
    hub.write_all(&encode(vec![connect_packet("hub".into())]))
        .await
        .ok();
    let payload = vec![b'x'; payload_len];
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        let mut p = p5::Publish::new(topic(i), QoS::AtLeastOnce, payload.clone(), None);
        p.pkid = (i % 65_535) as u16 + 1;
        batch.push(p5::Packet::Publish(p));
        if (batch.len() == 256 || i + 1 == n)
            && let Err(e) = hub.write_all(&encode(std::mem::take(&mut batch))).await
        {
            eprintln!("hub write: {e}");
            std::process::exit(1);
        }
    }
    // The hub's PUBACKs are not awaited; drain them so the broker never blocks on us.
    tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(hub.read(&mut sink).await, Ok(k) if k > 0) {}
    });
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .is_err()
    {
        eprintln!(
            "fan-out incomplete after 120 s: {} of {n}",
            received.load(Ordering::Relaxed)
        );
        std::process::exit(1);
    }
    println!(
        "fan-out of {n} x {payload_len} B QoS 1 messages delivered in {:.2?} ({} received)",
        started.elapsed(),
        received.load(Ordering::Relaxed)
    );
    if let Some(rss) = broker_rss_kib(broker_pid) {
        println!("broker RSS after fan-out {rss} KiB");
    }
}
