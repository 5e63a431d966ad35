//! The small HTTP endpoint of executables that have no REST server — the agent
//! (`--metrics-listen`) and the standalone broker: `GET /metrics` (Prometheus text),
//! `/healthz` and `/livez` (the process answers), `/readyz` (it can do its work: 200, or
//! 503 with the reason).
//!
//! Not a web server, on purpose: the agent runs on small devices and must not carry one
//! (hyper's HTTP/1 *parser*, `httparse`, reads requests; tokio does the rest). One
//! request per connection (`Connection: close`), GET and HEAD only, and bounded in every
//! way: 8 KiB of request head, 5 s to send it, 16 connections at once (more are closed
//! at accept). No authentication: bind it to loopback or a management network; it
//! shows counters and readiness, nothing of the works.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// Largest request head read.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// What the endpoint shows.
pub trait StatusSource: Send + Sync + 'static {
    /// The metrics in the Prometheus text format 0.0.4 (`crate::metrics::encode`).
    fn metrics(&self) -> String;
    /// Whether the process can do its work now; `Err` says why not (served as 503).
    fn readiness(&self) -> Result<(), String>;
}

/// The endpoint could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics and health on {addr}: {source}")]
pub struct StatusEndpointError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// A running endpoint.
#[derive(Debug)]
pub struct StatusEndpoint {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl StatusEndpoint {
    /// Listens on `addr` (port 0 picks a free port) and serves `source` until
    /// [`StatusEndpoint::shutdown`].
    pub async fn start(
        addr: SocketAddr,
        source: Arc<dyn StatusSource>,
    ) -> Result<Self, StatusEndpointError> {
        let err = |source| StatusEndpointError { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(err)?;
        let local_addr = listener.local_addr().map_err(err)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, source, stopped));
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting; requests being answered are cut.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    source: Arc<dyn StatusSource>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connection tasks so the set stays bounded too.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropping the stream closes it
        };
        let source = source.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, serve(stream, source.as_ref())).await;
        });
    }
    connections.abort_all();
}

const TEXT: &str = "text/plain; charset=utf-8";

/// A parsed request line: method and path (query removed).
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
}

/// Reads one request head; `None` for a malformed, oversized or slow one.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let mut filled = 0;
    let read = async {
        loop {
            let n = stream.read(&mut buf[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            if let Some(request) = parse_head(&buf[..filled])? {
                return Some(request);
            }
            if filled == buf.len() {
                return None;
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read).await.ok()?
}

/// `Some(Some(_))`: a complete head; `Some(None)`: incomplete; `None`: malformed.
fn parse_head(bytes: &[u8]) -> Option<Option<Request>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path?;
            Some(Some(Request {
                method: request.method?.to_string(),
                path: path.split('?').next().unwrap_or(path).to_string(),
            }))
        }
        Ok(httparse::Status::Partial) => Some(None),
        Err(_) => None,
    }
}

/// Status line, content type and body of the answer to `request`.
fn respond(request: &Request, source: &dyn StatusSource) -> (&'static str, &'static str, String) {
    if request.method != "GET" && request.method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "only GET and HEAD\n".into());
    }
    match request.path.as_str() {
        "/metrics" => ("200 OK", crate::metrics::CONTENT_TYPE, source.metrics()),
        "/healthz" | "/livez" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => match source.readiness() {
            Ok(()) => ("200 OK", TEXT, "ok\n".into()),
            Err(why) => (
                "503 Service Unavailable",
                TEXT,
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            TEXT,
            "not found; try /metrics, /healthz, /livez, /readyz\n".into(),
        ),
    }
}

async fn serve(mut stream: TcpStream, source: &dyn StatusSource) {
    let (status, content_type, body, head_only) = match read_request(&mut stream).await {
        Some(request) => {
            let (status, content_type, body) = respond(&request, source);
            (status, content_type, body, request.method == "HEAD")
        }
        None => ("400 Bad Request", TEXT, "bad request\n".to_string(), false),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if !head_only {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Fixed(AtomicBool);

    impl StatusSource for Fixed {
        fn metrics(&self) -> String {
            "# TYPE up gauge\nup 1\n".into()
        }
        fn readiness(&self) -> Result<(), String> {
            if self.0.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("not connected".into())
            }
        }
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let source = Arc::new(Fixed(AtomicBool::new(false)));
        let ep = StatusEndpoint::start("127.0.0.1:0".parse().unwrap(), source.clone())
            .await
            .unwrap();
        let addr = ep.local_addr();
        let m = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"), "{m}");
        assert!(m.ends_with("up 1\n"), "{m}");
        let h = get(addr, "GET /healthz?verbose HTTP/1.0\r\n\r\n").await;
        assert!(
            h.starts_with("HTTP/1.1 200 OK") && h.ends_with("ok\n"),
            "{h}"
        );
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.ends_with("not ready: not connected\n"), "{r}");
        source.0.store(true, Ordering::Relaxed);
        let r = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            head.ends_with("\r\n\r\n") && head.contains("content-length: 21"),
            "{head}"
        );
        assert!(
            get(addr, "POST /metrics HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
        assert!(
            get(addr, "GET /works HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get(addr, "garbage\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 400")
        );
        ep.shutdown().await;
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused() {
        let ep = StatusEndpoint::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Fixed(AtomicBool::new(true))),
        )
        .await
        .unwrap();
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST_HEAD)
        );
        let mut s = TcpStream::connect(ep.local_addr()).await.unwrap();
        // The server may close before everything is written.
        let _ = s.write_all(big.as_bytes()).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out}");
        ep.shutdown().await;
    }
}
