//! Starting and stopping a broker: bind listeners, accept connections, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::auth::{AllowAll, Authorizer};
use crate::config::BrokerConfig;
use crate::connection::{self, Accepted, Shared};
use crate::error::BrokerError;
use crate::fd_budget;
use crate::per_address::PerAddress;
use crate::router::Router;
use crate::stream;
use crate::tls::{Reloaded, TlsError, TlsState};

/// Pending-connection queue of each listener. Thousands of agents reconnect at once after
/// a broker restart; the usual 128 would make most of them retry.
const LISTEN_BACKLOG: u32 = 4096;

/// A broker ready to start: configuration plus the [`Authorizer`] to consult.
#[derive(Debug)]
pub struct Broker<A = AllowAll> {
    config: BrokerConfig,
    authorizer: A,
}

impl Broker<AllowAll> {
    /// A broker with `config` that lets every client do everything ([`AllowAll`]).
    pub fn new(config: BrokerConfig) -> Self {
        Self {
            config,
            authorizer: AllowAll,
        }
    }
}

impl<A: Authorizer> Broker<A> {
    /// Replaces the authorizer.
    pub fn with_authorizer<B: Authorizer>(self, authorizer: B) -> Broker<B> {
        Broker {
            config: self.config,
            authorizer,
        }
    }

    /// Binds every listen address and starts accepting. Returns once all listeners are
    /// bound, so the returned handle's addresses accept connections immediately.
    pub async fn start(self) -> Result<BrokerHandle, BrokerError> {
        self.config.validate()?;
        // The TLS files are read before anything binds: unusable ones stop the start.
        let tls = match &self.config.tls {
            Some(t) => Some(Arc::new(TlsState::load(t.clone())?)),
            None => None,
        };
        let mut listeners = Vec::new();
        for &addr in &self.config.listen {
            listeners.push((bind(addr)?, addr, None));
        }
        for &addr in &self.config.tls_listen {
            listeners.push((bind(addr)?, addr, tls.clone()));
        }
        let mut local_addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        for (l, addr, tls) in &listeners {
            let bound = l.local_addr().map_err(|source| BrokerError::Bind {
                addr: *addr,
                source,
            })?;
            if tls.is_some() {
                tls_addrs.push(bound);
            } else {
                local_addrs.push(bound);
            }
        }

        let router = Arc::new(Router::default());
        let (max_connections, fd_limit) =
            fd_budget::connection_budget(self.config.max_connections, self.config.fd_reserve);
        if max_connections < self.config.max_connections {
            // Info, not a warning: the default limit is above most systems' descriptor
            // limits, and lowering it is the point of the budget.
            info!(
                configured = self.config.max_connections,
                fd_limit = fd_limit.unwrap_or_default(),
                reserve = self.config.fd_reserve,
                max_connections,
                "open-file limit below max_connections: client connections limited to the descriptor budget"
            );
        }
        let permits = Arc::new(Semaphore::new(max_connections));
        let per_address = PerAddress::new(
            self.config.max_connections_per_address,
            self.config.limit_loopback,
        );
        let shared = Arc::new(Shared {
            config: self.config,
            router: Arc::clone(&router),
            authorizer: self.authorizer,
            next_conn: AtomicU64::new(1),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // Every connection task holds a clone of `alive_tx`; when the last one is dropped,
        // `alive_rx` reports it, which is how shutdown knows all clients are gone.
        let (alive_tx, alive_rx) = mpsc::channel::<()>(1);

        let accept_tasks: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .map(|(listener, _, tls)| {
                let addr = listener.local_addr().ok();
                match (&tls, addr) {
                    (Some(_), Some(addr)) => info!(%addr, "MQTT listener ready (TLS; 3.1.1 and 5)"),
                    (None, Some(addr)) if !addr.ip().is_loopback() => {
                        warn!(%addr, "plaintext MQTT listener reachable from the network: credentials and manifests travel in clear")
                    }
                    (None, Some(addr)) => info!(%addr, "MQTT listener ready (plaintext, loopback; 3.1.1 and 5)"),
                    (_, None) => {}
                }
                tokio::spawn(accept_loop(
                    listener,
                    tls,
                    Arc::clone(&shared),
                    Arc::clone(&permits),
                    Arc::clone(&per_address),
                    shutdown_rx.clone(),
                    alive_tx.clone(),
                ))
            })
            .collect();
        drop(alive_tx);
        if let Some(state) = &tls
            && let Some(every) = state.config().reload_interval
        {
            tokio::spawn(watch_tls_files(
                Arc::clone(state),
                Arc::clone(&router),
                every,
                shutdown_rx.clone(),
            ));
        }

        let supervisor = tokio::spawn(supervise(
            accept_tasks,
            shutdown_rx,
            alive_rx,
            Arc::clone(&router),
            shared.config.shutdown_timeout,
        ));
        Ok(BrokerHandle {
            local_addrs,
            tls_addrs,
            tls,
            shutdown_tx,
            supervisor: Some(supervisor),
            router,
        })
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    let err = |source| BrokerError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // Lets a restarted broker bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// Pause after failed `accept` calls: 5 ms, doubling while failures continue, at most
/// 1 s; reset by the next successful accept.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn next_pause(&mut self) -> Duration {
        let pause = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

async fn accept_loop<A: Authorizer>(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    shared: Arc<Shared<A>>,
    permits: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let counters = &shared.router.counters;
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.reset();
                a
            }
            Err(e) => {
                // Typically EMFILE/ENFILE. Pause, longer while it lasts, so the loop does
                // not spin; connections already open are unaffected.
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.next_pause();
                warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        let Some(slot) = per_address.acquire(peer.ip()) else {
            counters.refused_per_address.fetch_add(1, Ordering::Relaxed);
            info!(%peer, "connection limit per source address reached; closing new connection");
            continue;
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            counters.refused_at_capacity.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "connection limit reached; closing new connection");
            continue;
        };
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let alive = alive.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_accepted(shared, stream, peer, tls, shutdown, permit).await;
            drop(slot);
            drop(alive);
        });
    }
    // Dropping `listener` here closes the listening socket: no new connections.
}

/// Runs the TLS handshake (if any) on the connection's own task — a slow or silent
/// client holds up nobody else, and is cut off after the connect timeout — then serves
/// the connection.
async fn serve_accepted<A: Authorizer>(
    shared: Arc<Shared<A>>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsState>>,
    mut shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let accepted = match tls {
        None => {
            let (reader, writer) = stream::plain(stream);
            Accepted {
                reader,
                writer,
                peer,
                peer_certificates: Vec::new(),
                tls: false,
            }
        }
        Some(state) => {
            // The configuration current now: a reload affects later handshakes only.
            let acceptor = tokio_rustls::TlsAcceptor::from(state.current());
            let handshake =
                tokio::time::timeout(shared.config.connect_timeout, acceptor.accept(stream));
            let result = tokio::select! {
                r = handshake => r,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(Ok(tls_stream)) => {
                    let peer_certificates = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .unwrap_or_default()
                        .iter()
                        .map(|c| Bytes::copy_from_slice(c.as_ref()))
                        .collect();
                    let (reader, writer) = stream::tls(tls_stream);
                    Accepted {
                        reader,
                        writer,
                        peer,
                        peer_certificates,
                        tls: true,
                    }
                }
                Ok(Err(e)) => {
                    shared
                        .router
                        .counters
                        .tls_handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    info!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    shared
                        .router
                        .counters
                        .tls_handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    connection::serve(shared, accepted, shutdown).await;
    drop(permit);
}

/// Re-reads the TLS files every `every` and installs them when they changed, until
/// shutdown. Rotation then needs no signal: replace the files (new ones first, each
/// written atomically), and new handshakes pick them up.
async fn watch_tls_files(
    state: Arc<TlsState>,
    router: Arc<Router>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match reload(Arc::clone(&state), Arc::clone(&router)).await {
            Ok(Reloaded::Changed) => info!("TLS certificate, key, client CA or CRL reloaded"),
            Ok(Reloaded::Unchanged) => {}
            Err(e) => {
                warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones")
            }
        }
    }
}

/// Re-reads the TLS files and, when they changed, closes the established connections
/// whose client certificate the new revocation list names: revoking must not wait for
/// the device to reconnect. File reads, PEM parsing and verification are blocking work.
async fn reload(state: Arc<TlsState>, router: Arc<Router>) -> Result<Reloaded, TlsError> {
    tokio::task::spawn_blocking(move || {
        let reloaded = state.reload()?;
        if reloaded == Reloaded::Changed {
            revoke_where(
                &router,
                |client| state.is_revoked(&client.certificates),
                "closed connections of revoked client certificates",
            );
        }
        Ok(reloaded)
    })
    .await
    .unwrap_or_else(|e| Err(TlsError::Rustls(format!("reload task failed: {e}"))))
}

/// Closes the connections `pred` picks as an administrative action (DISCONNECT 0x98 on
/// MQTT 5), counts them in `revoked_disconnects` and says `why`; returns how many.
fn revoke_where(
    router: &Router,
    pred: impl Fn(&crate::router::ClientHandle) -> bool,
    why: &str,
) -> usize {
    let cut = router.kick_where(|_, client| pred(client), crate::router::Kick::Revoked);
    if cut > 0 {
        router
            .counters
            .revoked_disconnects
            .fetch_add(cut as u64, Ordering::Relaxed);
        warn!(connections = cut, "{why}");
    }
    cut
}

async fn supervise(
    accept_tasks: Vec<JoinHandle<()>>,
    mut shutdown: watch::Receiver<bool>,
    mut alive: mpsc::Receiver<()>,
    router: Arc<Router>,
    timeout: Duration,
) {
    // Either a shutdown request or the handle being dropped (sender gone) ends the wait.
    let _ = shutdown.wait_for(|stop| *stop).await;
    for task in accept_tasks {
        let _ = task.await;
    }
    // Each connection task sees the same signal, sends DISCONNECT (MQTT 5) and closes.
    if tokio::time::timeout(timeout, alive.recv()).await.is_err() {
        warn!(
            remaining = router.client_count(),
            "shutdown timeout: some connections were still closing"
        );
    }
    info!("broker stopped");
}

/// Counters describing a running broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Clients currently connected (CONNACK sent, not yet disconnected).
    pub connected_clients: usize,
    /// PUBLISH packets accepted and routed (including wills).
    pub published: u64,
    /// Copies queued to subscribers.
    pub delivered: u64,
    /// Copies not delivered: a subscriber's queue overflowed, or a message exceeded the
    /// subscriber's maximum packet size.
    pub dropped: u64,
    /// PUBLISH packets (and wills) the authorizer refused.
    pub denied_publishes: u64,
    /// Subscription filters the authorizer refused.
    pub denied_subscriptions: u64,
    /// Connections refused at CONNECT: bad credentials, no or a wrong identity, a client
    /// id that does not match the identity or is held by another identity.
    pub refused_connections: u64,
    /// Connections closed for too many refused operations.
    pub abuse_disconnects: u64,
    /// Established connections closed because a TLS reload revoked their certificate.
    pub revoked_disconnects: u64,
    /// TLS handshakes that failed or timed out (no, expired or foreign-CA certificates,
    /// plaintext on a TLS port).
    pub tls_handshake_failures: u64,
    /// Clients disconnected because their outgoing queue exceeded `max_queued_messages`
    /// or `max_queued_bytes` (subscribers that do not keep up or never read).
    pub slow_consumer_disconnects: u64,
    /// Subscription filters refused for a limit: `max_subscriptions` or `max_filter_len`.
    pub refused_subscriptions: u64,
    /// Connections closed for a malformed packet or a protocol violation.
    pub protocol_violations: u64,
    /// TCP connections closed at accept: their source address held
    /// `max_connections_per_address` already.
    pub refused_per_address: u64,
    /// TCP connections closed at accept: the broker held `max_connections` (or its
    /// file-descriptor budget) already.
    pub refused_at_capacity: u64,
    /// Failed `accept` calls (typically out of file descriptors); each one backs off.
    pub accept_errors: u64,
    /// Messages queued for delivery now, over all connections.
    pub queued_messages: u64,
    /// Bytes of those messages.
    pub queued_bytes: u64,
    /// Messages queued for the one connection that has the most (a slow consumer).
    pub deepest_queue: u64,
}

impl BrokerStats {
    /// The stats of the broker whose router this is.
    pub(crate) fn of(router: &Router) -> Self {
        let c = &router.counters;
        let queues = router.queue_depths();
        BrokerStats {
            connected_clients: router.client_count(),
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            denied_publishes: c.denied_publishes.load(Ordering::Relaxed),
            denied_subscriptions: c.denied_subscriptions.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            abuse_disconnects: c.abuse_disconnects.load(Ordering::Relaxed),
            revoked_disconnects: c.revoked_disconnects.load(Ordering::Relaxed),
            tls_handshake_failures: c.tls_handshake_failures.load(Ordering::Relaxed),
            slow_consumer_disconnects: c.slow_consumer_disconnects.load(Ordering::Relaxed),
            refused_subscriptions: c.refused_subscriptions.load(Ordering::Relaxed),
            protocol_violations: c.protocol_violations.load(Ordering::Relaxed),
            refused_per_address: c.refused_per_address.load(Ordering::Relaxed),
            refused_at_capacity: c.refused_at_capacity.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
            queued_messages: queues.messages,
            queued_bytes: queues.bytes,
            deepest_queue: queues.deepest,
        }
    }
}

/// A running broker. Dropping it stops the broker without waiting; call
/// [`BrokerHandle::shutdown`] to wait until every connection is closed.
#[derive(Debug)]
pub struct BrokerHandle {
    local_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    tls: Option<Arc<TlsState>>,
    shutdown_tx: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    router: Arc<Router>,
}

impl BrokerHandle {
    /// The plaintext addresses actually bound, in configuration order (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The TLS addresses actually bound, in configuration order (port 0 resolved).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The first plaintext address, or the first TLS address when there is no plaintext
    /// listener (there is always at least one listener).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs
            .first()
            .or(self.tls_addrs.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Re-reads the TLS certificate, key, client CA and CRL now (e.g. on SIGHUP) and, if
    /// they changed, uses them for new handshakes. Connected clients keep their sessions,
    /// except those whose certificate the new CRL revokes: they are disconnected (MQTT 5
    /// reason 0x98, administrative action). On error the previous files stay in force.
    /// Without TLS listeners: `Ok(Unchanged)`.
    pub async fn reload_tls(&self) -> Result<Reloaded, TlsError> {
        let Some(state) = self.tls.clone() else {
            return Ok(Reloaded::Unchanged);
        };
        reload(state, Arc::clone(&self.router)).await
    }

    /// Closes the established connections that logged in with a password as one of
    /// `identities` (DISCONNECT 0x98 on MQTT 5, counted in `revoked_disconnects`): a
    /// reloaded credential file that removed or changed their line must not wait for
    /// them to reconnect ([`crate::credentials::Credentials::reload`]). Connections of
    /// the same identities made with a client certificate stay. Returns how many closed.
    pub fn close_password_sessions(&self, identities: &[String]) -> usize {
        if identities.is_empty() {
            return 0;
        }
        revoke_where(
            &self.router,
            |client| {
                client.certificates.is_empty()
                    && client
                        .owner
                        .as_deref()
                        .is_some_and(|owner| identities.iter().any(|i| i == owner))
            },
            "closed password sessions of withdrawn credentials",
        )
    }

    /// Current counters.
    pub fn stats(&self) -> BrokerStats {
        BrokerStats::of(&self.router)
    }

    /// The broker's metrics for a Prometheus registry (the standalone binary's, or the
    /// hub's when it embeds this broker). Holds the broker weakly: once it is stopped
    /// and dropped the collector writes nothing.
    pub fn metrics(&self) -> crate::metrics::BrokerMetrics {
        crate::metrics::BrokerMetrics::new(Arc::downgrade(&self.router))
    }

    /// Closes the connection of every client whose id satisfies `pred`, without a
    /// DISCONNECT, as a network failure would (fault tests and the reconnect-storm
    /// benchmark). Returns how many connections were asked to close.
    pub fn drop_clients(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.router
            .kick_where(|id, _| pred(id), crate::router::Kick::Dropped)
    }

    /// Stops gracefully: closes the listeners, sends every MQTT 5 client a DISCONNECT
    /// with reason "server shutting down" (3.1.1 clients see the socket close), and returns
    /// when every connection has ended or `shutdown_timeout` has passed.
    pub async fn shutdown(mut self) {
        self.shutdown_tx.send_replace(true);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_grows_to_a_ceiling_and_resets() {
        let mut b = AcceptBackoff::default();
        assert_eq!(b.next_pause(), Duration::from_millis(5));
        assert_eq!(b.next_pause(), Duration::from_millis(10));
        for _ in 0..40 {
            assert!(b.next_pause() <= AcceptBackoff::MAX);
        }
        assert_eq!(b.next_pause(), AcceptBackoff::MAX);
        b.reset();
        assert_eq!(b.next_pause(), Duration::from_millis(5));
    }
}
