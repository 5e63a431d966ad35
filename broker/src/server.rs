//! Starting and stopping a broker: bind listeners, accept connections, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::auth::{AllowAll, Authorizer};
use crate::config::BrokerConfig;
use crate::connection::{self, Shared};
use crate::error::BrokerError;
use crate::router::Router;

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
        let mut listeners = Vec::with_capacity(self.config.listen.len());
        for &addr in &self.config.listen {
            listeners.push(bind(addr)?);
        }
        let local_addrs = listeners
            .iter()
            .zip(&self.config.listen)
            .map(|(l, &addr)| {
                l.local_addr()
                    .map_err(|source| BrokerError::Bind { addr, source })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let router = Arc::new(Router::default());
        let permits = Arc::new(Semaphore::new(self.config.max_connections));
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
            .zip(&local_addrs)
            .map(|(listener, &addr)| {
                info!(%addr, "MQTT listener ready (3.1.1 and 5)");
                tokio::spawn(accept_loop(
                    listener,
                    Arc::clone(&shared),
                    Arc::clone(&permits),
                    shutdown_rx.clone(),
                    alive_tx.clone(),
                ))
            })
            .collect();
        drop(alive_tx);

        let supervisor = tokio::spawn(supervise(
            accept_tasks,
            shutdown_rx,
            alive_rx,
            Arc::clone(&router),
            shared.config.shutdown_timeout,
        ));
        Ok(BrokerHandle {
            local_addrs,
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

async fn accept_loop<A: Authorizer>(
    listener: TcpListener,
    shared: Arc<Shared<A>>,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE/ENFILE. Pause so the loop does not spin while the
                // condition lasts; connections already open are unaffected.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            debug!(%peer, "connection limit reached; closing new connection");
            continue;
        };
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            connection::serve(shared, stream, peer, shutdown).await;
            drop(permit);
            drop(alive);
        });
    }
    // Dropping `listener` here closes the listening socket: no new connections.
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
}

/// A running broker. Dropping it stops the broker without waiting; call
/// [`BrokerHandle::shutdown`] to wait until every connection is closed.
#[derive(Debug)]
pub struct BrokerHandle {
    local_addrs: Vec<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    router: Arc<Router>,
}

impl BrokerHandle {
    /// The addresses actually bound, in configuration order (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The first bound address (there is always at least one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// Current counters.
    pub fn stats(&self) -> BrokerStats {
        let c = &self.router.counters;
        BrokerStats {
            connected_clients: self.router.client_count(),
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Closes the connection of every client whose id satisfies `pred`, without a
    /// DISCONNECT, as a network failure would (fault tests and the reconnect-storm
    /// benchmark). Returns how many connections were asked to close.
    pub fn drop_clients(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.router.kick_where(pred, crate::router::Kick::Dropped)
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
