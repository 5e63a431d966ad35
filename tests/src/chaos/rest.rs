//! The chaos suite's REST client for a hub in another process, which may be killed at
//! any moment. Unlike [`crate::hubs::rest`] (an in-process hub that never dies), every
//! call here returns what is known about its outcome: an answer, certainly not sent
//! (the connection was refused: nothing reached the hub), or unknown (the connection
//! broke or timed out after the request may have been read and committed).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What became of one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The hub answered (any HTTP status).
    Answer {
        /// HTTP status.
        code: u16,
        /// JSON body (`Null` when empty, a string when not JSON).
        body: Value,
    },
    /// Nothing reached the hub (connection refused): certainly no effect.
    NotSent(String),
    /// The outcome is unknown: the request may or may not have been committed.
    Unknown(String),
}

/// A client for one hub address; every request on a fresh connection, so a refused
/// connection always means "not sent".
#[derive(Clone)]
pub struct Rest {
    base: String,
    agent: ureq::Agent,
    token: String,
}

/// Longest wait for one answer (then the outcome is unknown).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl Rest {
    /// A client for `base` (`http://127.0.0.1:PORT`) sending API token `token`.
    pub fn new(base: &str, token: &str) -> Rest {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .into();
        Rest {
            base: base.trim_end_matches('/').to_string(),
            agent,
            token: token.to_string(),
        }
    }

    /// The API token it sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One blocking call: `method` is GET, PUT, POST or DELETE.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(b.to_string()),
            (_, b) => self
                .agent
                .put(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(b.map(Value::to_string).unwrap_or_default()),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let code = resp.status().as_u16();
        match resp.body_mut().read_to_string() {
            Ok(text) if text.trim().is_empty() => Reply::Answer {
                code,
                body: Value::Null,
            },
            Ok(text) => Reply::Answer {
                code,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            },
            // The status line arrived, the body did not: the hub had decided; but a
            // caller cannot know what, so the outcome stays unknown.
            Err(e) => Reply::Unknown(format!("answer {code} cut: {e}")),
        }
    }

    /// [`Rest::call`] on the blocking pool.
    pub async fn call_async(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let this = self.clone();
        let method = method.to_string();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || this.call(&method, &path, body.as_ref()))
            .await
            .unwrap_or_else(|e| Reply::Unknown(format!("client task failed: {e}")))
    }

    /// True when `GET /healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        matches!(
            self.call_async("GET", "/healthz", None).await,
            Reply::Answer { code: 200, .. }
        )
    }

    /// Waits until the hub answers `/healthz`, at most `within`.
    pub async fn wait_healthy(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while !self.healthy().await {
            if Instant::now() >= deadline {
                return Err(format!("hub {} not healthy after {within:?}", self.base));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }
}

/// Refused connections are "not sent"; everything else may have reached the hub.
fn classify(e: ureq::Error) -> Reply {
    match &e {
        ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            Reply::NotSent(e.to_string())
        }
        ureq::Error::ConnectionFailed => Reply::NotSent(e.to_string()),
        _ => Reply::Unknown(e.to_string()),
    }
}
