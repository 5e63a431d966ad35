//! Shared helpers: start a broker on 127.0.0.1:0, connect `rumqttc` clients whose event
//! loops run on their own task, and wait for events with a bounded timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use workbus_broker::{Authorizer, Broker, BrokerConfig, BrokerHandle};

/// Upper bound for any single expected event.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn local_config() -> BrokerConfig {
    BrokerConfig::with_listen(SocketAddr::from(([127, 0, 0, 1], 0)))
}

pub async fn start(config: BrokerConfig) -> BrokerHandle {
    Broker::new(config).start().await.expect("broker starts")
}

pub async fn start_with<A: Authorizer>(config: BrokerConfig, authorizer: A) -> BrokerHandle {
    Broker::new(config)
        .with_authorizer(authorizer)
        .start()
        .await
        .expect("broker starts")
}

/// Awaits `fut` for at most [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Aborts the event-loop task (closing the socket without DISCONNECT) when dropped.
pub struct Pump(JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client plus the stream of its event-loop results. The pump stops at the first error,
/// so `rumqttc` never silently reconnects behind a test's back.
pub struct Client<C, E> {
    pub client: C,
    pub events: mpsc::UnboundedReceiver<Result<E, String>>,
    /// Held for its drop: aborting the pump closes the client's socket.
    pub _pump: Pump,
}

impl<C, E> Client<C, E> {
    /// Skips events until `f` picks one; fails the test on timeout or end of stream.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&Result<E, String>) -> Option<T>,
    ) -> T {
        let events = &mut self.events;
        within(what, async {
            loop {
                match events.recv().await {
                    Some(ev) => {
                        if let Some(t) = f(&ev) {
                            return t;
                        }
                    }
                    None => panic!("event stream ended while waiting for {what}"),
                }
            }
        })
        .await
    }

    /// Waits for the event loop to fail (the connection ended) and returns the error text.
    pub async fn expect_error(&mut self, what: &str) -> String {
        self.expect(what, |ev| ev.as_ref().err().cloned()).await
    }
}

pub type V5 = Client<rumqttc::v5::AsyncClient, rumqttc::v5::Event>;
pub type V4 = Client<rumqttc::AsyncClient, rumqttc::Event>;

pub fn v5_options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    // rumqttc's default incoming limit is 10 KiB; the tests move 600 KiB payloads.
    o.set_max_packet_size(Some(2 * 1024 * 1024));
    o.set_keep_alive(Duration::from_secs(30));
    o
}

pub fn v4_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Starts a v5 client without waiting for CONNACK.
pub fn spawn_v5(options: rumqttc::v5::MqttOptions) -> V5 {
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 100);
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(ev) => {
                    if tx.send(Ok(ev)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:?}")));
                    break;
                }
            }
        }
    });
    Client {
        client,
        events,
        _pump: Pump(task),
    }
}

pub fn spawn_v4(options: rumqttc::MqttOptions) -> V4 {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(ev) => {
                    if tx.send(Ok(ev)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:?}")));
                    break;
                }
            }
        }
    });
    Client {
        client,
        events,
        _pump: Pump(task),
    }
}

/// Connects a v5 client and waits for a successful CONNACK.
pub async fn connect_v5(options: rumqttc::v5::MqttOptions) -> (V5, p5::ConnAck) {
    let mut c = spawn_v5(options);
    let ack = c
        .expect("v5 CONNACK", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(a))) => Some(Ok(a.clone())),
            Err(e) => Some(Err(e.clone())),
            _ => None,
        })
        .await
        .expect("v5 client connects");
    assert_eq!(ack.code, p5::ConnectReturnCode::Success);
    (c, ack)
}

pub async fn connect_v4(options: rumqttc::MqttOptions) -> V4 {
    let mut c = spawn_v4(options);
    let ack = c
        .expect("v4 CONNACK", |ev| match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => Some(Ok(a.clone())),
            Err(e) => Some(Err(e.clone())),
            _ => None,
        })
        .await
        .expect("v4 client connects");
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    c
}

impl V5 {
    /// Subscribes and returns the SUBACK reason codes.
    pub async fn sub(&mut self, filters: &[&str]) -> Vec<p5::SubscribeReasonCode> {
        let filters: Vec<p5::Filter> = filters
            .iter()
            .map(|f| p5::Filter::new(*f, rumqttc::v5::mqttbytes::QoS::AtLeastOnce))
            .collect();
        self.client
            .subscribe_many(filters)
            .await
            .expect("subscribe queued");
        self.expect("SUBACK", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::SubAck(a))) => Some(a.return_codes.clone()),
            Err(e) => panic!("connection failed while subscribing: {e}"),
            _ => None,
        })
        .await
    }

    pub async fn next_publish(&mut self) -> p5::Publish {
        self.expect("PUBLISH (v5)", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::Publish(p))) => Some(p.clone()),
            Err(e) => panic!("connection failed while waiting for a publish: {e}"),
            _ => None,
        })
        .await
    }

    pub async fn next_puback(&mut self) -> p5::PubAck {
        self.expect("PUBACK (v5)", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::PubAck(a))) => Some(a.clone()),
            Err(e) => panic!("connection failed while waiting for PUBACK: {e}"),
            _ => None,
        })
        .await
    }
}

impl V4 {
    pub async fn sub(&mut self, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        self.expect("SUBACK (v4)", |ev| match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a))) => {
                Some(a.return_codes.clone())
            }
            Err(e) => panic!("connection failed while subscribing: {e}"),
            _ => None,
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        self.expect("PUBLISH (v4)", |ev| match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Some(p.clone()),
            Err(e) => panic!("connection failed while waiting for a publish: {e}"),
            _ => None,
        })
        .await
    }
}

/// A hand-driven MQTT 5 connection over a plain socket, for what `rumqttc` refuses to send
/// (oversized packets) or hides (DISCONNECT reason codes, CONNACK properties).
pub struct Raw {
    pub stream: tokio::net::TcpStream,
    buf: bytes::BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = within("TCP connect", tokio::net::TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        Raw {
            stream,
            buf: bytes::BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: p5::Packet) {
        use tokio::io::AsyncWriteExt;
        let mut out = bytes::BytesMut::new();
        packet.write(&mut out, None).expect("encodable");
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Next packet from the broker, or `None` once the broker closed the connection.
    pub async fn recv(&mut self) -> Option<p5::Packet> {
        use tokio::io::AsyncReadExt;
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        within("a packet from the broker", async {
            loop {
                if !buf.is_empty() {
                    match p5::Packet::read(buf, None) {
                        Ok(p) => return Some(p),
                        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                        Err(e) => panic!("broker sent an undecodable packet: {e}"),
                    }
                }
                match stream.read_buf(buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Sends a v5 CONNECT with `keep_alive` seconds and returns the CONNACK.
    pub async fn handshake(&mut self, id: &str, keep_alive: u16) -> p5::ConnAck {
        let connect = p5::Connect {
            keep_alive,
            client_id: id.into(),
            clean_start: true,
            properties: None,
        };
        self.send(p5::Packet::Connect(connect, None, None)).await;
        match self.recv().await {
            Some(p5::Packet::ConnAck(a)) => a,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}
