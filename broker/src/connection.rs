//! One client connection: CONNECT handshake, then a single task that reads packets,
//! writes queued messages and watches keep-alive, kicks and shutdown.
//!
//! One task per connection, with no per-connection buffers kept while idle (the read and
//! write buffers are dropped whenever they are empty), keeps an idle agent's cost to the
//! task, its socket and its queue: the 10,000–100,000 idle-connection target depends on it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::ConnAckProperties;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::{
    Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, ProtocolVersion,
    PublishRequest, SubscribeRequest,
};
use crate::codec::{
    self, CloseReason, ConnAckCode, ConnectIn, FilterIn, Inbound, Outbound, PublishIn, SubCode,
    WillIn,
};
use crate::config::BrokerConfig;
use crate::error::ConnError;
use crate::frame::{self, ConnectKind, FrameError, FrameInfo};
use crate::publish;
use crate::router::{ClientHandle, ConnId, Delivery, Kick, Message, Router};
use crate::stamp::Stamp;
use crate::stream::{Reader, Writer};
use crate::topic::{ParsedFilter, parse_filter, valid_topic_name};

/// State shared by every connection of one broker.
pub(crate) struct Shared<A> {
    pub config: BrokerConfig,
    pub router: Arc<Router>,
    pub authorizer: A,
    pub next_conn: AtomicU64,
}

/// Reads start in chunks of this size; packets larger than that get a buffer sized for
/// the whole packet as soon as its header is in.
const READ_CHUNK: usize = 1024;
/// Largest read chunk. A connection whose reads keep filling the buffer (the hub
/// publishing a fleet-wide update) doubles its chunk up to this, so a burst costs a few
/// large reads rather than two or three small ones per packet.
const MAX_READ_CHUNK: usize = 64 * 1024;
/// Pending outgoing bytes after which a batch is written out before encoding more.
const WRITE_BATCH: usize = 64 * 1024;
/// How long a closing connection may take to send its DISCONNECT.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// An accepted connection, before its MQTT handshake.
pub(crate) struct Accepted {
    pub reader: Reader,
    pub writer: Writer,
    pub peer: SocketAddr,
    /// Verified client certificates (DER, leaf first); empty without mutual TLS.
    pub peer_certificates: Vec<Bytes>,
    pub tls: bool,
}

/// Serves one accepted connection until it ends. Never fails: every problem with a
/// client ends that client's connection and is logged.
pub(crate) async fn serve<A: Authorizer>(
    shared: Arc<Shared<A>>,
    accepted: Accepted,
    mut shutdown: watch::Receiver<bool>,
) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let peer = accepted.peer;
    let handshake = handshake(&shared, conn, accepted);
    let session = tokio::select! {
        s = handshake => s,
        _ = shutdown.changed() => return,
    };
    let mut session = match session {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            debug!(%peer, error = %e, "connection refused during handshake");
            return;
        }
    };
    let client_id = Arc::clone(&session.info.client_id);
    debug!(%peer, client_id = %client_id, protocol = ?session.proto, "client connected");
    let result = session.run(&mut shutdown).await;
    session.finish(result.as_ref().err());
    match result {
        Ok(()) => debug!(%peer, client_id = %client_id, "client disconnected"),
        Err(e) => debug!(%peer, client_id = %client_id, reason = %e, "connection closed"),
    }
}

/// Reads from `reader` until `buf` holds one complete packet, and splits it off.
async fn read_one_frame(
    reader: &mut Reader,
    buf: &mut BytesMut,
    max: u32,
) -> Result<(FrameInfo, BytesMut), ConnError> {
    loop {
        match frame::peek(buf, max) {
            Ok(Some(info)) if buf.len() >= info.total_len => {
                return Ok((info, buf.split_to(info.total_len)));
            }
            Ok(Some(info)) => buf.reserve(info.total_len - buf.len()),
            Ok(None) => buf.reserve(64),
            Err(FrameError::TooLarge(size)) => return Err(ConnError::PacketTooLarge { size, max }),
            Err(FrameError::BadLength) => {
                return Err(ConnError::Malformed("remaining length".into()));
            }
        }
        if reader.read_buf(buf).await? == 0 {
            return Err(ConnError::Closed);
        }
    }
}

/// The next read size: double after a read that filled the space offered, halve (not
/// below [`READ_CHUNK`]) after one that used less than a quarter of the chunk.
fn next_read_chunk(chunk: usize, read: usize, offered: usize) -> usize {
    if read >= offered {
        (chunk * 2).min(MAX_READ_CHUNK)
    } else if read < chunk / 4 {
        (chunk / 2).max(READ_CHUNK)
    } else {
        chunk
    }
}

/// Writes `buf` with the configured timeout.
async fn write_all(writer: &mut Writer, buf: &[u8], timeout: Duration) -> Result<(), ConnError> {
    tokio::time::timeout(timeout, writer.write_all(buf))
        .await
        .map_err(|_| ConnError::WriteTimeout)?
        .map_err(ConnError::from)
}

/// Counts and logs a malformed packet or protocol violation that ends a connection.
fn note_violation<A>(
    shared: &Shared<A>,
    peer: SocketAddr,
    client_id: Option<&str>,
    error: &ConnError,
) {
    shared
        .router
        .counters
        .protocol_violations
        .fetch_add(1, Ordering::Relaxed);
    info!(%peer, client_id = client_id.unwrap_or(""), reason = %error, "protocol violation: connection closed");
}

/// The MQTT 5 DISCONNECT reason for a packet the codec or [`crate::strict`] refused.
fn close_reason_for(error: &ConnError) -> CloseReason {
    match error {
        ConnError::Protocol(_) => CloseReason::Protocol,
        _ => CloseReason::Malformed,
    }
}

/// Sends a refusing CONNACK and closes (best effort: the client may already be gone).
async fn refuse(writer: &mut Writer, proto: ProtocolVersion, code: ConnAckCode) {
    let mut buf = BytesMut::new();
    if codec::encode(
        proto,
        Outbound::ConnAck {
            code,
            properties: None,
        },
        &mut buf,
    )
    .is_ok()
    {
        let _ = write_all(writer, &buf, GOODBYE_TIMEOUT).await;
    }
    let _ = writer.shutdown().await;
}

/// Waits for CONNECT, authenticates, registers the client and answers CONNACK.
/// `Ok(None)` means the client was refused with a CONNACK.
async fn handshake<A: Authorizer>(
    shared: &Arc<Shared<A>>,
    conn: ConnId,
    accepted: Accepted,
) -> Result<Option<Session<A>>, ConnError> {
    let Accepted {
        mut reader,
        mut writer,
        peer,
        peer_certificates,
        tls,
    } = accepted;
    let config = &shared.config;
    let mut rbuf = BytesMut::new();
    let (info, packet) = tokio::time::timeout(
        config.connect_timeout,
        read_one_frame(&mut reader, &mut rbuf, config.max_packet_size),
    )
    .await
    .map_err(|_| ConnError::ConnectTimeout)??;

    let proto = match frame::classify_connect(&packet, info) {
        ConnectKind::Supported(p) => p,
        ConnectKind::UnsupportedLevel(level) => {
            // The 3.1.1 CONNACK (return code 1) is also what 3.1 clients understand.
            refuse(
                &mut writer,
                ProtocolVersion::V311,
                ConnAckCode::UnsupportedProtocol,
            )
            .await;
            debug!(%peer, level, "unsupported MQTT protocol level");
            return Ok(None);
        }
        ConnectKind::NotConnect => return Err(ConnError::Protocol("first packet is not CONNECT")),
    };
    let connect = match codec::decode(proto, packet) {
        Ok(Inbound::Connect(c)) => c,
        Ok(_) => return Err(ConnError::Protocol("first packet is not CONNECT")),
        Err(e) => {
            // MQTT 5: CONNACK with the reason (a DISCONNECT may not precede CONNACK);
            // 3.1.1: just close.
            let code = match e {
                ConnError::Protocol(_) => ConnAckCode::ProtocolError,
                _ => ConnAckCode::Malformed,
            };
            note_violation(shared, peer, None, &e);
            refuse(&mut writer, proto, code).await;
            return Err(e);
        }
    };
    let ConnectIn {
        client_id,
        clean_start,
        keep_alive,
        username,
        password,
        will,
        receive_max,
        max_packet_size,
        auth_method,
        session_expiry,
    } = *connect;

    if auth_method.is_some() {
        // MQTT 5 enhanced authentication (AUTH exchanges) is not offered.
        refuse(&mut writer, proto, ConnAckCode::BadAuthMethod).await;
        return Ok(None);
    }
    let assigned = client_id.is_empty();
    if assigned && proto == ProtocolVersion::V311 && !clean_start {
        // 3.1.1 §3.1.3.1: an empty id requires CleanSession = 1.
        refuse(&mut writer, proto, ConnAckCode::ClientIdRejected).await;
        return Ok(None);
    }

    let request = ConnectRequest {
        client_id: client_id.clone(),
        username: username.clone(),
        password,
        protocol: proto,
        peer_addr: peer,
        // `Bytes` clones share the buffers; the router keeps the chain (revocation).
        peer_certificates: peer_certificates.clone(),
        tls,
    };
    let principal = match shared.authorizer.authenticate(&request).await {
        Ok(p) => p,
        Err(denied) => {
            shared
                .router
                .counters
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            let code = match denied {
                ConnectDenied::BadCredentials => ConnAckCode::BadCredentials,
                ConnectDenied::NotAuthorized => ConnAckCode::NotAuthorized,
                ConnectDenied::ClientIdRejected => ConnAckCode::ClientIdRejected,
                ConnectDenied::ServerUnavailable => ConnAckCode::ServerUnavailable,
            };
            info!(%peer, client_id = %client_id, ?denied, "connection refused by the authorizer");
            refuse(&mut writer, proto, code).await;
            return Ok(None);
        }
    };
    let client_id: Arc<str> = if assigned {
        format!("workbus-auto-{conn}").into()
    } else {
        client_id.into()
    };
    let info = ClientInfo {
        client_id: Arc::clone(&client_id),
        username: username.map(Into::into),
        protocol: proto,
        peer_addr: peer,
    };

    // The will is a publish like any other: check it now, while the client can be told.
    if let Some(w) = &will {
        let Some(topic) = std::str::from_utf8(&w.topic)
            .ok()
            .filter(|t| valid_topic_name(t))
        else {
            return Err(ConnError::Malformed("will topic".into()));
        };
        if w.retain && proto == ProtocolVersion::V5 {
            refuse(&mut writer, proto, ConnAckCode::RetainNotSupported).await;
            return Ok(None);
        }
        let req = PublishRequest {
            topic,
            qos: w.qos,
            retain: w.retain,
            payload_len: w.payload.len(),
            is_will: true,
        };
        if shared
            .authorizer
            .authorize_publish(&info, &principal, &req)
            .await
            == Decision::Deny
        {
            debug!(%peer, client_id = %client_id, "will topic not authorized");
            refuse(&mut writer, proto, ConnAckCode::NotAuthorized).await;
            return Ok(None);
        }
    }

    // Keep-alive: honour the client's value up to the configured maximum.
    let max_ka = config.max_keepalive;
    let effective_ka = if max_ka != 0 && (keep_alive == 0 || keep_alive > max_ka) {
        max_ka
    } else {
        keep_alive
    };

    let owner: Option<Arc<str>> = shared.authorizer.identity(&principal).map(Arc::from);
    // Who published, for MQTT 5 subscribers (`crate::stamp`): encoded once per connection.
    let stamp = owner.as_deref().and_then(Stamp::for_identity);
    let will = will.map(|mut w| {
        if let Some(stamp) = &stamp {
            w.properties = stamp.apply(&w.properties);
        }
        w
    });
    let (handle, rx) = ClientHandle::new(
        conn,
        owner,
        peer_certificates,
        config.max_queued_messages,
        config.max_queued_bytes,
    );
    if shared
        .router
        .register(Arc::clone(&client_id), Arc::clone(&handle))
        .is_err()
    {
        shared
            .router
            .counters
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
        warn!(%peer, client_id = %client_id, "client id held by another identity: connection refused");
        refuse(&mut writer, proto, ConnAckCode::ClientIdRejected).await;
        return Ok(None);
    }

    let properties = (proto == ProtocolVersion::V5).then(|| ConnAckProperties {
        // No persistent sessions: say so when the client asked for one.
        session_expiry_interval: session_expiry.filter(|&s| s > 0).map(|_| 0),
        receive_max: None,
        max_qos: None,
        retain_available: Some(0),
        max_packet_size: Some(config.max_packet_size),
        assigned_client_identifier: assigned.then(|| client_id.to_string()),
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(1),
        server_keep_alive: (effective_ka != keep_alive).then_some(effective_ka),
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    });
    let mut session = Session {
        shared: Arc::clone(shared),
        proto,
        info,
        principal,
        handle,
        rx,
        reader,
        rbuf,
        read_chunk: READ_CHUNK,
        writer,
        wbuf: BytesMut::new(),
        subs: Vec::new(),
        inflight: HashSet::new(),
        inflight_limit: usize::from(
            receive_max
                .unwrap_or(u16::MAX)
                .min(config.max_inflight)
                .max(1),
        ),
        next_pkid: 0,
        qos2_in: HashSet::new(),
        client_max_packet: max_packet_size,
        will,
        stamp,
        denials: 0,
        keepalive: (effective_ka > 0)
            .then(|| Duration::from_millis(u64::from(effective_ka) * 1500)),
    };
    session.queue(Outbound::ConnAck {
        code: ConnAckCode::Accepted,
        properties,
    })?;
    if let Err(e) = session.flush().await {
        session.finish(Some(&e));
        return Err(e);
    }
    Ok(Some(session))
}

/// Whether to keep reading after a packet.
enum Flow {
    Continue,
    /// The client sent DISCONNECT.
    ClientDisconnected,
}

/// A connected, authenticated client.
struct Session<A: Authorizer> {
    shared: Arc<Shared<A>>,
    proto: ProtocolVersion,
    info: ClientInfo,
    principal: A::Principal,
    handle: Arc<ClientHandle>,
    rx: mpsc::Receiver<Delivery>,
    reader: Reader,
    rbuf: BytesMut,
    /// Current read size (adapts between [`READ_CHUNK`] and [`MAX_READ_CHUNK`]).
    read_chunk: usize,
    writer: Writer,
    wbuf: BytesMut,
    /// Filters this connection subscribed to, for removal when it ends.
    subs: Vec<ParsedFilter>,
    /// Packet ids of QoS 1 messages sent and not yet acknowledged.
    inflight: HashSet<u16>,
    inflight_limit: usize,
    next_pkid: u16,
    /// Packet ids of QoS 2 messages received, PUBREC sent, PUBREL awaited.
    qos2_in: HashSet<u16>,
    client_max_packet: Option<u32>,
    will: Option<WillIn>,
    /// The publisher stamp of this connection's identity, if it has one.
    stamp: Option<Stamp>,
    /// Operations the authorizer refused on this connection so far.
    denials: u32,
    /// 1.5 × the effective keep-alive; `None` when keep-alive is off.
    keepalive: Option<Duration>,
}

impl<A: Authorizer> Session<A> {
    fn conn(&self) -> ConnId {
        self.handle.conn
    }

    /// Runs the connection until it ends. `Ok` means an orderly end (client DISCONNECT or
    /// broker shutdown), after which no will is published.
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ConnError> {
        let far = Duration::from_secs(365 * 24 * 3600);
        let deadline = tokio::time::sleep(self.keepalive.unwrap_or(far));
        tokio::pin!(deadline);
        if *shutdown.borrow() {
            self.will = None;
            self.goodbye(CloseReason::ShuttingDown).await;
            return Ok(());
        }
        // Packets the client sent right behind CONNECT arrived with it: handle them now,
        // not only after the next read.
        if !self.rbuf.is_empty() {
            let flow = Box::pin(self.process_input()).await;
            self.flush().await?;
            if let Flow::ClientDisconnected = flow? {
                return Ok(());
            }
        }
        // Created once: re-creating these futures on every turn of the loop registers
        // and unregisters a waiter (a lock each time) per packet.
        let handle = Arc::clone(&self.handle);
        let kicked = handle.kicked();
        tokio::pin!(kicked);
        let stop = shutdown.changed();
        tokio::pin!(stop);
        // The keep-alive timer is moved only when it fires (to the last read plus the
        // allowance), not on every read: resetting a timer per packet costs a timer-wheel
        // update each time.
        let mut last_read = Instant::now();
        loop {
            let can_send = self.inflight.len() < self.inflight_limit;
            tokio::select! {
                biased;
                _ = &mut stop => {
                    self.will = None;
                    self.goodbye(CloseReason::ShuttingDown).await;
                    return Ok(());
                }
                kick = &mut kicked => return self.on_kick(kick, true).await,
                read = self.reader.read_some(&mut self.rbuf, self.read_chunk) => {
                    let (n, spare) = match read? {
                        None => continue,
                        Some((0, _)) => return Err(ConnError::Closed),
                        Some(r) => r,
                    };
                    self.read_chunk = next_read_chunk(self.read_chunk, n, spare);
                    last_read = Instant::now();
                    // Boxed: packet handling (authorizer calls, writes) has a large
                    // future (~600 B measured) that an idle connection's task would
                    // otherwise carry inline for its whole life.
                    let flow = Box::pin(self.process_input()).await;
                    // Send acknowledgements even when the input ended the connection.
                    self.flush().await?;
                    match flow? {
                        Flow::Continue => {}
                        Flow::ClientDisconnected => return Ok(()),
                    }
                }
                delivery = self.rx.recv(), if can_send => {
                    // The handle holds a sender, so the queue never reports closed here.
                    if let Some(d) = delivery {
                        self.send_delivery(d)?;
                        while self.inflight.len() < self.inflight_limit && self.wbuf.len() < WRITE_BATCH {
                            match self.rx.try_recv() {
                                Ok(d) => self.send_delivery(d)?,
                                Err(_) => break,
                            }
                        }
                        // A client that does not read blocks this write (up to the write
                        // timeout); a kick meanwhile (its queue overflowing) ends it now.
                        tokio::select! {
                            biased;
                            kick = &mut kicked => return self.on_kick(kick, false).await,
                            r = self.flush() => r?,
                        }
                    }
                }
                _ = &mut deadline, if self.keepalive.is_some() => {
                    let ka = self.keepalive.unwrap_or(far);
                    if last_read.elapsed() < ka {
                        deadline.as_mut().reset(last_read + ka);
                        continue;
                    }
                    self.goodbye(CloseReason::KeepAlive).await;
                    return Err(ConnError::KeepAliveTimeout);
                }
            }
        }
    }

    /// Ends the connection the router asked to close. `clean` says whether the socket is
    /// between packets; after an interrupted write it is not, and no DISCONNECT can be
    /// sent.
    async fn on_kick(&mut self, kick: Kick, clean: bool) -> Result<(), ConnError> {
        if kick == Kick::Dropped {
            // A simulated network failure: no DISCONNECT, just the socket closed.
            return Err(ConnError::Protocol("dropped on request"));
        }
        let (reason, err) = match kick {
            Kick::SessionTakenOver => (
                CloseReason::TakenOver,
                ConnError::Protocol("session taken over"),
            ),
            Kick::Revoked => {
                warn!(
                    client_id = %self.info.client_id,
                    peer = %self.info.peer_addr,
                    "client certificate revoked: disconnected"
                );
                (
                    CloseReason::AdministrativeAction,
                    ConnError::Protocol("client certificate revoked"),
                )
            }
            Kick::QueueFull | Kick::None | Kick::Dropped => {
                self.shared
                    .router
                    .counters
                    .slow_consumer_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    client_id = %self.info.client_id,
                    peer = %self.info.peer_addr,
                    max_messages = self.shared.config.max_queued_messages,
                    max_bytes = self.shared.config.max_queued_bytes,
                    "outgoing queue full (client not keeping up or not reading): disconnected"
                );
                (
                    CloseReason::QuotaExceeded,
                    ConnError::Protocol("outgoing queue overflow"),
                )
            }
        };
        if clean {
            self.goodbye(reason).await;
        } else {
            self.wbuf = BytesMut::new();
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, self.writer.shutdown()).await;
        }
        Err(err)
    }

    /// Handles every complete packet in the read buffer.
    async fn process_input(&mut self) -> Result<Flow, ConnError> {
        let max = self.shared.config.max_packet_size;
        loop {
            let info = match frame::peek(&self.rbuf, max) {
                Ok(Some(info)) => info,
                Ok(None) => break,
                Err(FrameError::TooLarge(size)) => {
                    self.queue_close(CloseReason::PacketTooLarge);
                    return Err(ConnError::PacketTooLarge { size, max });
                }
                Err(FrameError::BadLength) => {
                    self.queue_close(CloseReason::Malformed);
                    return Err(ConnError::Malformed("remaining length".into()));
                }
            };
            if self.rbuf.len() < info.total_len {
                // Size the buffer for the whole packet once, not by repeated doubling.
                self.rbuf.reserve(info.total_len - self.rbuf.len());
                return Ok(Flow::Continue);
            }
            let packet = self.rbuf.split_to(info.total_len);
            let inbound = match codec::decode(self.proto, packet) {
                Ok(p) => p,
                Err(e) => {
                    note_violation(
                        &self.shared,
                        self.info.peer_addr,
                        Some(&self.info.client_id),
                        &e,
                    );
                    self.queue_close(close_reason_for(&e));
                    return Err(e);
                }
            };
            if let Flow::ClientDisconnected = self.on_packet(inbound).await? {
                return Ok(Flow::ClientDisconnected);
            }
            if self.wbuf.len() >= WRITE_BATCH {
                self.flush().await?;
            }
        }
        // Idle connections keep no read buffer (the memory target is per idle client).
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        }
        Ok(Flow::Continue)
    }

    async fn on_packet(&mut self, packet: Inbound) -> Result<Flow, ConnError> {
        match packet {
            Inbound::Publish(p) => self.on_publish(p).await?,
            Inbound::Subscribe { pkid, filters } => self.on_subscribe(pkid, filters).await?,
            Inbound::Unsubscribe { pkid, filters } => {
                let found = filters
                    .iter()
                    .map(|raw| match parse_filter(raw) {
                        Ok(pf) => {
                            self.subs.retain(|s| s != &pf);
                            self.shared.router.unsubscribe(&pf, self.conn())
                        }
                        Err(_) => false,
                    })
                    .collect();
                self.queue(Outbound::UnsubAck { pkid, found })?;
            }
            Inbound::PubAck(pkid) => {
                self.inflight.remove(&pkid);
            }
            Inbound::PubRel(pkid) => {
                let found = self.qos2_in.remove(&pkid);
                self.queue(Outbound::PubComp { pkid, found })?;
            }
            // The broker never sends QoS 2, so these acknowledge nothing; ignore them.
            Inbound::PubRec | Inbound::PubComp => {}
            Inbound::PingReq => self.queue(Outbound::PingResp)?,
            Inbound::Disconnect { with_will } => {
                if !with_will {
                    self.will = None;
                }
                return Ok(Flow::ClientDisconnected);
            }
            Inbound::Connect(_) => {
                self.queue_close(CloseReason::Protocol);
                return Err(ConnError::Protocol("second CONNECT"));
            }
            Inbound::Unexpected(what) => {
                self.queue_close(CloseReason::Protocol);
                debug!(client_id = %self.info.client_id, packet = what, "unexpected packet");
                return Err(ConnError::Protocol("packet a client must not send"));
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_publish(&mut self, p: PublishIn) -> Result<(), ConnError> {
        if p.topic_alias {
            // CONNACK announced Topic Alias Maximum 0.
            self.queue_close(CloseReason::TopicAliasInvalid);
            return Err(ConnError::Protocol("topic alias not allowed"));
        }
        let Some(topic) = std::str::from_utf8(&p.topic)
            .ok()
            .filter(|t| valid_topic_name(t))
        else {
            self.queue_close(CloseReason::TopicNameInvalid);
            return Err(ConnError::Protocol("invalid topic name"));
        };
        if p.retain && self.proto == ProtocolVersion::V5 {
            // CONNACK announced Retain Available 0. (3.1.1 cannot be told: its retain
            // flag is ignored and the message is forwarded as a normal one.)
            self.queue_close(CloseReason::RetainNotSupported);
            return Err(ConnError::Protocol("retain not supported"));
        }
        if p.qos == 2 && self.qos2_in.contains(&p.pkid) {
            // A resend of a QoS 2 message already routed: acknowledge again, route once.
            return self.queue(Outbound::PubRec {
                pkid: p.pkid,
                denied: false,
            });
        }
        let request = PublishRequest {
            topic,
            qos: p.qos,
            retain: p.retain,
            payload_len: p.payload.len(),
            is_will: false,
        };
        let decision = self
            .shared
            .authorizer
            .authorize_publish(&self.info, &self.principal, &request)
            .await;
        if decision == Decision::Deny {
            self.shared
                .router
                .counters
                .denied_publishes
                .fetch_add(1, Ordering::Relaxed);
            info!(client_id = %self.info.client_id, peer = %self.info.peer_addr, topic, "publish not authorized");
            let answer = match (self.proto, p.qos) {
                (ProtocolVersion::V311, _) => {
                    // 3.1.1 has no negative acknowledgement: closing is the only signal.
                    Err(ConnError::Protocol("publish not authorized"))
                }
                (ProtocolVersion::V5, 0) => Ok(()),
                (ProtocolVersion::V5, 1) => self.queue(Outbound::PubAck {
                    pkid: p.pkid,
                    denied: true,
                }),
                (ProtocolVersion::V5, _) => self.queue(Outbound::PubRec {
                    pkid: p.pkid,
                    denied: true,
                }),
            };
            answer?;
            return self.note_denial();
        }
        // A client-sent Subscription Identifier was refused and a forged publisher
        // stamp removed by the decoder; the broker's own stamp goes on here, once per
        // message (the block is shared by every delivery).
        let properties = match &self.stamp {
            Some(stamp) => stamp.apply(&p.properties),
            None => p.properties,
        };
        let qos = p.qos;
        let pkid = p.pkid;
        let message = Arc::new(Message {
            topic: p.topic,
            payload: p.payload,
            qos,
            properties,
        });
        // `topic` borrowed the bytes now owned by the message; they were checked above.
        let topic = std::str::from_utf8(&message.topic).unwrap_or_default();
        self.shared.router.route(topic, self.conn(), &message);
        match qos {
            0 => Ok(()),
            1 => self.queue(Outbound::PubAck {
                pkid,
                denied: false,
            }),
            _ => {
                self.qos2_in.insert(pkid);
                self.queue(Outbound::PubRec {
                    pkid,
                    denied: false,
                })
            }
        }
    }

    async fn on_subscribe(&mut self, pkid: u16, filters: Vec<FilterIn>) -> Result<(), ConnError> {
        let mut codes = Vec::with_capacity(filters.len());
        let mut denied = 0u32;
        let limits = (
            self.shared.config.max_filter_len,
            self.shared.config.max_subscriptions,
        );
        for f in filters {
            let code = match parse_filter(&f.path) {
                _ if f.path.len() > limits.0 => {
                    self.refuse_subscription(&f.path, "topic filter too long");
                    SubCode::FilterInvalid
                }
                // MQTT 5 §3.8.3.1: No Local on a shared subscription is not allowed.
                Ok(pf) if pf.share_group.is_some() && f.no_local => SubCode::FilterInvalid,
                Ok(pf) if self.subs.len() >= limits.1 && !self.subs.contains(&pf) => {
                    self.refuse_subscription(&f.path, "subscription limit reached");
                    SubCode::QuotaExceeded
                }
                Ok(pf) => {
                    let request = SubscribeRequest {
                        raw: &f.path,
                        filter: &pf.filter,
                        share_group: pf.share_group.as_deref(),
                        qos: f.qos,
                    };
                    let decision = self
                        .shared
                        .authorizer
                        .authorize_subscribe(&self.info, &self.principal, &request)
                        .await;
                    if decision == Decision::Deny {
                        self.shared
                            .router
                            .counters
                            .denied_subscriptions
                            .fetch_add(1, Ordering::Relaxed);
                        info!(client_id = %self.info.client_id, peer = %self.info.peer_addr, filter = %f.path, "subscribe not authorized");
                        denied += 1;
                        SubCode::NotAuthorized
                    } else {
                        // Outgoing QoS 2 is not implemented: grant at most QoS 1.
                        let granted = f.qos.min(1);
                        self.shared.router.subscribe(
                            &pf,
                            Arc::clone(&self.handle),
                            granted,
                            f.no_local,
                        );
                        if !self.subs.contains(&pf) {
                            self.subs.push(pf);
                        }
                        SubCode::Granted(granted)
                    }
                }
                Err(_) => SubCode::FilterInvalid,
            };
            codes.push(code);
        }
        self.queue(Outbound::SubAck { pkid, codes })?;
        for _ in 0..denied {
            self.note_denial()?;
        }
        Ok(())
    }

    /// Counts and logs a subscription refused for a limit.
    fn refuse_subscription(&self, filter: &str, why: &'static str) {
        self.shared
            .router
            .counters
            .refused_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        let shown: String = filter.chars().take(64).collect();
        info!(client_id = %self.info.client_id, peer = %self.info.peer_addr, filter = %shown, len = filter.len(), why, "subscription refused");
    }

    /// Counts one refused operation; at the configured limit the connection is closed
    /// (MQTT 5: DISCONNECT 0x87), so a client probing the ACL cannot go on forever.
    fn note_denial(&mut self) -> Result<(), ConnError> {
        self.denials = self.denials.saturating_add(1);
        let limit = self.shared.config.max_denials;
        if limit == 0 || self.denials < limit {
            return Ok(());
        }
        self.shared
            .router
            .counters
            .abuse_disconnects
            .fetch_add(1, Ordering::Relaxed);
        warn!(client_id = %self.info.client_id, peer = %self.info.peer_addr, denials = self.denials, "too many refused operations: connection closed");
        self.queue_close(CloseReason::NotAuthorized);
        Err(ConnError::Protocol("too many refused operations"))
    }

    /// Encodes one queued message for this client.
    fn send_delivery(&mut self, d: Delivery) -> Result<(), ConnError> {
        self.handle.taken(&d);
        let qos = d.qos;
        if let Some(max) = self.client_max_packet {
            let m = &d.msg;
            let size = publish::size(self.proto, &m.topic, &m.payload, qos, &m.properties);
            if size > max as usize {
                // MQTT 5 §3.1.2.11.4: discard what the client said it cannot take.
                self.shared
                    .router
                    .counters
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
                warn!(client_id = %self.info.client_id, size, max, "message larger than the client's maximum packet size dropped");
                return Ok(());
            }
        }
        let pkid = if qos > 0 { self.alloc_pkid() } else { 0 };
        let m = &d.msg;
        // Written straight from the shared message: no per-delivery copy of topic,
        // properties or payload other than into the socket buffer.
        publish::encode(
            self.proto,
            &mut self.wbuf,
            qos,
            pkid,
            &m.topic,
            &m.payload,
            &m.properties,
        );
        Ok(())
    }

    /// Next free packet id; called only while fewer than 65,535 are in flight.
    fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if self.inflight.insert(self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    fn queue(&mut self, packet: Outbound) -> Result<(), ConnError> {
        codec::encode(self.proto, packet, &mut self.wbuf).map(|_| ())
    }

    /// Queues an MQTT 5 DISCONNECT (3.1.1 has none); the caller then ends the connection.
    fn queue_close(&mut self, reason: CloseReason) {
        let _ = codec::encode(self.proto, Outbound::Disconnect(reason), &mut self.wbuf);
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        // Most writes fit the socket buffer at once: try that first, so the common case
        // arms no timer; only a partial write waits (bounded) for the rest.
        let done = match self.writer.try_write(&self.wbuf) {
            Ok(n) => n,
            Err(e) => {
                self.wbuf = BytesMut::new();
                return Err(e.into());
            }
        };
        let timeout = self.shared.config.write_timeout;
        let result = if done < self.wbuf.len() {
            write_all(&mut self.writer, &self.wbuf[done..], timeout).await
        } else {
            Ok(())
        };
        // Idle connections keep no write buffer either.
        self.wbuf = BytesMut::new();
        result
    }

    /// Best-effort DISCONNECT with a reason, bounded in time.
    async fn goodbye(&mut self, reason: CloseReason) {
        self.queue_close(reason);
        if !self.wbuf.is_empty() {
            let _ = write_all(&mut self.writer, &self.wbuf, GOODBYE_TIMEOUT).await;
            self.wbuf = BytesMut::new();
        }
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, self.writer.shutdown()).await;
    }

    /// Publishes the will if the connection ended abnormally (`error` is set) or the client
    /// asked for it. Router state is released by `Drop`, which also covers a connection
    /// dropped mid-handshake at shutdown.
    fn finish(&mut self, error: Option<&ConnError>) {
        // An orderly end (client DISCONNECT, shutdown) already cleared the will unless the
        // client sent MQTT 5 "disconnect with will message"; an error left it in place.
        if let Some(will) = self.will.take() {
            if let Some(e) = error {
                debug!(client_id = %self.info.client_id, reason = %e, "publishing will");
            }
            let message = Arc::new(Message {
                topic: will.topic,
                payload: will.payload,
                qos: will.qos,
                properties: will.properties,
            });
            if let Ok(topic) = std::str::from_utf8(&message.topic) {
                self.shared.router.route(topic, self.handle.conn, &message);
            }
        }
    }
}

impl<A: Authorizer> Drop for Session<A> {
    /// Removes the connection's subscriptions and client-id registration. Runs before the
    /// socket (a field) is closed, so a client that sees the close can rely on it.
    fn drop(&mut self) {
        let router = &self.shared.router;
        for pf in self.subs.drain(..) {
            router.unsubscribe(&pf, self.handle.conn);
        }
        router.unregister(&self.info.client_id, self.handle.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_chunk_grows_on_full_reads_and_shrinks_on_small_ones() {
        let mut c = READ_CHUNK;
        for _ in 0..10 {
            c = next_read_chunk(c, c, c);
        }
        assert_eq!(c, MAX_READ_CHUNK);
        assert_eq!(next_read_chunk(c, c / 2, c), c);
        for _ in 0..10 {
            c = next_read_chunk(c, 10, c);
        }
        assert_eq!(c, READ_CHUNK);
    }
}
