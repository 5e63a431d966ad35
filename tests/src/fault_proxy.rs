//! A TCP proxy in front of a broker that injects network faults on demand, for the
//! fault tests: [`FaultProxy::pause`] stops forwarding in both directions while keeping
//! every connection open (what a SIGSTOPped broker or a black-holed link looks like to a
//! client: bytes go out, nothing comes back), [`FaultProxy::cut`] closes every
//! connection at once (a broker restart, seen from the client), [`FaultProxy::resume`]
//! forwards again. Loopback only.

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
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            paused.clone(),
            connections.clone(),
            from_clients.clone(),
        ));
        FaultProxy {
            addr,
            paused,
            connections,
            from_clients,
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

    /// Closes every open connection (bytes held while paused are lost with it).
    pub fn cut(&self) {
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

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    paused: watch::Sender<bool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    from_clients: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let paused = paused.subscribe();
        if let Ok(mut set) = connections.lock() {
            // Reap finished connections so the set stays small in long runs.
            while set.try_join_next().is_some() {}
            set.spawn(forward_connection(
                client,
                upstream,
                paused,
                from_clients.clone(),
            ));
        }
    }
}

async fn forward_connection(
    client: TcpStream,
    upstream: SocketAddr,
    paused: watch::Receiver<bool>,
    from_clients: Arc<AtomicU64>,
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
        _ = pump(client_read, server_write, paused.clone(), Some(from_clients)) => {}
        _ = pump(server_read, client_write, paused, None) => {}
    }
}

/// Copies bytes one way, holding them while paused.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
    counter: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(counter) = &counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if wait_unpaused(&mut paused).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_unpaused(paused: &mut watch::Receiver<bool>) -> Result<(), watch::error::RecvError> {
    paused.wait_for(|p| !*p).await.map(|_| ())
}
