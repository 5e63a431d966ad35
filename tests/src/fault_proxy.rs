//! A TCP proxy in front of a broker that injects network faults on demand, for the
//! fault tests: [`FaultProxy::pause`] stops forwarding in both directions while keeping
//! every connection open (what a SIGSTOPped broker or a black-holed link looks like to a
//! client: bytes go out, nothing comes back), [`FaultProxy::cut`] closes every
//! connection at once (a broker restart, seen from the client), [`FaultProxy::resume`]
//! forwards again. Loopback only.

use std::net::SocketAddr;
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
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (paused, _) = watch::channel(false);
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            paused.clone(),
            connections.clone(),
        ));
        FaultProxy {
            addr,
            paused,
            connections,
            accept,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
) {
    while let Ok((client, _)) = listener.accept().await {
        let paused = paused.subscribe();
        if let Ok(mut set) = connections.lock() {
            // Reap finished connections so the set stays small in long runs.
            while set.try_join_next().is_some() {}
            set.spawn(forward_connection(client, upstream, paused));
        }
    }
}

async fn forward_connection(
    client: TcpStream,
    upstream: SocketAddr,
    paused: watch::Receiver<bool>,
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
        _ = pump(client_read, server_write, paused.clone()) => {}
        _ = pump(server_read, client_write, paused) => {}
    }
}

/// Copies bytes one way, holding them while paused.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if wait_unpaused(&mut paused).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_unpaused(paused: &mut watch::Receiver<bool>) -> Result<(), watch::error::RecvError> {
    paused.wait_for(|p| !*p).await.map(|_| ())
}
