//! A TCP proxy in front of a broker that injects network faults on demand, for the
//! fault tests: [`FaultProxy::pause`] stops forwarding in both directions while keeping
//! every connection open (what a SIGSTOPped broker or a black-holed link looks like to a
//! client: bytes go out, nothing comes back), [`FaultProxy::cut`] closes every
//! connection at once (a broker restart, seen from the client), [`FaultProxy::resume`]
//! forwards again, [`FaultProxy::refuse`] closes new connections as they arrive (a
//! server that is down, seen from a client that connects anew). Loopback only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running proxy; dropped, it closes its listener and every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    from_clients: Arc<AtomicU64>,
    /// How many times [`FaultProxy::cut`] ran: a connection older than the last cut
    /// forwards nothing more, even while its task is still winding down.
    cuts: Arc<AtomicU64>,
    /// Whether new connections are closed at once instead of forwarded.
    refusing: Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (paused, _) = watch::channel(false);
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let from_clients = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            paused.clone(),
            connections.clone(),
            Counters {
                from_clients: from_clients.clone(),
                cuts: cuts.clone(),
                refusing: refusing.clone(),
            },
        ));
        FaultProxy {
            addr,
            paused,
            connections,
            from_clients,
            cuts,
            refusing,
            accept,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes read from clients so far, forwarded or held: tells a test that a client
    /// has written something while the proxy is paused.
    pub fn bytes_from_clients(&self) -> u64 {
        self.from_clients.load(Ordering::Relaxed)
    }

    /// Stops forwarding; connections stay open, new ones are accepted and held.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// While `true`, closes every new connection as soon as it is accepted (a server
    /// that is down; [`FaultProxy::cut`] ends the open ones).
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Closes every open connection (bytes held while paused are lost with it).
    pub fn cut(&self) {
        // Before the abort: a task being polled on another thread right now finishes
        // that poll, and must not flush what it held to the broker (a `resume` right
        // after the cut would otherwise let it).
        self.cuts.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut connections) = self.connections.lock() {
            connections.abort_all();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The proxy's shared counters, handed to every connection.
#[derive(Clone)]
struct Counters {
    from_clients: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    paused: watch::Sender<bool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    counters: Counters,
) {
    while let Ok((client, _)) = listener.accept().await {
        if counters.refusing.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let paused = paused.subscribe();
        let epoch = counters.cuts.load(Ordering::SeqCst);
        if let Ok(mut set) = connections.lock() {
            // Reap finished connections so the set stays small in long runs.
            while set.try_join_next().is_some() {}
            set.spawn(forward_connection(
                client,
                upstream,
                paused,
                counters.clone(),
                epoch,
            ));
        }
    }
}

async fn forward_connection(
    client: TcpStream,
    upstream: SocketAddr,
    paused: watch::Receiver<bool>,
    counters: Counters,
    epoch: u64,
) {
    let _ = client.set_nodelay(true);
    // A paused proxy holds a new connection before reaching the broker.
    if wait_unpaused(&mut paused.clone()).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending ends the connection (like a broker closing it).
    tokio::select! {
        _ = pump(client_read, server_write, paused.clone(), Some(counters.from_clients.clone()), Live { cuts: counters.cuts.clone(), epoch }) => {}
        _ = pump(server_read, client_write, paused, None, Live { cuts: counters.cuts, epoch }) => {}
    }
}

/// What a paused proxy keeps reading and holds per direction, like the socket buffers
/// of a stopped broker: a client's writes still succeed until they are full.
const MAX_HELD: usize = 4 << 20;

/// Copies bytes one way, holding them while paused. It keeps reading while paused (up to
/// [`MAX_HELD`]), as the kernel does for a SIGSTOPped broker, so a client's later writes
/// are counted too, not only the first one after the pause.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
    counter: Option<Arc<AtomicU64>>,
    live: Live,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut held: Vec<u8> = Vec::new();
    loop {
        if !*paused.borrow_and_update() && !held.is_empty() {
            // Checked after seeing the proxy unpaused: a cut comes before the resume
            // that lets a write through.
            if live.cuts.load(Ordering::SeqCst) != live.epoch {
                return;
            }
            if to.write_all(&held).await.is_err() {
                return;
            }
            held.clear();
        }
        tokio::select! {
            read = from.read(&mut buf), if held.len() < MAX_HELD => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Some(counter) = &counter {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                held.extend_from_slice(&buf[..n]);
            }
            changed = paused.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether a connection is still alive: no cut since it was accepted.
struct Live {
    cuts: Arc<AtomicU64>,
    epoch: u64,
}

async fn wait_unpaused(paused: &mut watch::Receiver<bool>) -> Result<(), watch::error::RecvError> {
    paused.wait_for(|p| !*p).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a paused proxy read one chunk and then stopped reading, so a client's
    /// next write was never counted and "the client wrote while paused" waits timed out
    /// when anything else had been written just before (seen under load in
    /// `publish_faults`).
    #[tokio::test]
    async fn a_paused_proxy_keeps_counting_and_delivers_in_order_on_resume() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start(upstream.local_addr().unwrap()).await;
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut server, _) = upstream.accept().await.unwrap();
        proxy.pause();
        client.write_all(b"first").await.unwrap();
        wait_for_count(&proxy, 5).await;
        client.write_all(b"second").await.unwrap();
        wait_for_count(&proxy, 11).await;
        proxy.resume();
        let mut got = vec![0u8; 11];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            server.read_exact(&mut got),
        )
        .await
        .expect("delivered after resume")
        .unwrap();
        assert_eq!(&got, b"firstsecond");
    }

    async fn wait_for_count(proxy: &FaultProxy, n: u64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while proxy.bytes_from_clients() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "counted {} of {n} bytes",
                proxy.bytes_from_clients()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
