//! Serving the API router over TCP, or TLS, with the bounds `axum::serve` lacks:
//!
//! - a **header-read timeout**: a request head (method, path, headers) must arrive
//!   within [`ServerLimits::header_read_timeout`] or the connection is closed — a
//!   slowloris that trickles its headers byte by byte holds a socket that long at
//!   most. hyper runs the same timer while a kept-alive connection waits for its next
//!   request, so it is also the **idle keep-alive timeout**;
//! - a **TLS handshake timeout** ([`ServerLimits::handshake_timeout`]), for clients
//!   that connect and never finish the handshake;
//! - a **cap on open connections** ([`ServerLimits::max_connections`]): at the cap the
//!   server stops accepting (new connections wait in the kernel's backlog) instead of
//!   running out of file descriptors.
//!
//! Each request carries its peer address (`ConnectInfo`), which `api::guard` reads for
//! the loopback-only metrics rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The server's bounds (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a complete request head, and for the next request on an idle
    /// kept-alive connection.
    pub header_read_timeout: Duration,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Most connections open at once (SSE watches included).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// How long to back off after a failed `accept` (e.g. out of file descriptors), so
/// the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `stop` fires (or is dropped), then lets open
/// connections finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "REST accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (app, tls, draining) = (app.clone(), tls.clone(), draining.clone());
        connections.spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_connection(stream, peer, app, limits, draining).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, app, limits, draining).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    let _ = drain.send(true);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    mut draining: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "REST connection closed");
            }
        }
        _ = drained(&mut draining) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once the server starts draining (or is gone).
async fn drained(draining: &mut watch::Receiver<bool>) {
    loop {
        if *draining.borrow_and_update() {
            return;
        }
        if draining.changed().await.is_err() {
            return;
        }
    }
}
