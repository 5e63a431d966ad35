//! The CLI's HTTP client: a small blocking client (`ureq`, no TLS) for the hub's REST
//! API, turning error answers into [`CliError::Server`] with the server's
//! `{code, reason, message}`.

use serde_json::Value;

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error.
    #[error("Error from server ({reason}): {message}")]
    Server {
        /// HTTP status.
        code: u16,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// The server could not be reached or answered garbage.
    #[error("cannot talk to the hub at {server}: {detail}")]
    Transport {
        /// The server URL.
        server: String,
        /// What failed.
        detail: String,
    },
    /// Bad local input (file, arguments).
    #[error("{0}")]
    Input(String),
}

/// A REST client for one hub.
pub struct Client {
    server: String,
    agent: ureq::Agent,
}

/// A successful answer: status, the outcome header (for apply) and the JSON body.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `x-workbus-outcome`, when present.
    pub outcome: Option<String>,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Client {
    /// A client for `server` (e.g. `http://127.0.0.1:8080`).
    pub fn new(server: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            server: server.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn transport_error(&self, e: impl std::fmt::Display) -> CliError {
        CliError::Transport {
            server: self.server.clone(),
            detail: e.to_string(),
        }
    }

    fn finish(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, CliError> {
        let mut resp = resp.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let outcome = resp
            .headers()
            .get(crate::api::works::OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
            return Err(CliError::Server {
                code: status,
                reason: field("reason").unwrap_or_else(|| status.to_string()),
                message: field("message").unwrap_or_else(|| body.to_string()),
            });
        }
        Ok(Answer {
            status,
            outcome,
            body,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// GET `path` (already percent-encoded where needed).
    pub fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.agent.get(&self.url(path)).call())
    }

    /// DELETE `path`.
    pub fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.agent.delete(&self.url(path)).call())
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, CliError> {
        self.finish(
            self.agent
                .post(&self.url(path))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }

    /// PUT a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Answer, CliError> {
        self.finish(
            self.agent
                .put(&self.url(path))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }
}

/// Percent-encodes a query or path component (everything but unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
