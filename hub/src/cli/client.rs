//! The CLI's HTTP client: a small blocking client (`ureq`) for the hub's REST API,
//! turning error answers into [`CliError::Server`] with the server's
//! `{code, reason, message}`. It sends the API token as `Authorization: Bearer` and
//! speaks TLS (rustls on ring) for `https://` servers, trusting the given CA file or,
//! without one, the system's roots.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

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

/// How to reach a hub: its URL, the token, the CA to trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// `http://host:port` or `https://host:port`.
    pub server: String,
    /// The API token's secret.
    pub token: Option<String>,
    /// PEM file of the CA(s) that signed the hub's certificate (default: system roots).
    pub ca_file: Option<PathBuf>,
}

/// A REST client for one hub.
#[derive(Clone)]
pub struct Client {
    server: String,
    agent: ureq::Agent,
    token: Option<String>,
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
    /// A client for `server` (e.g. `http://127.0.0.1:8080`) without a token, trusting
    /// the system's roots for `https://`.
    pub fn new(server: &str) -> Client {
        Client::build(server, RootCerts::Specific(Arc::new(system_roots(server))))
    }

    /// A client as `settings` describe.
    pub fn with_settings(settings: &ClientSettings) -> Result<Client, CliError> {
        let roots = match &settings.ca_file {
            None => RootCerts::Specific(Arc::new(system_roots(&with_scheme(&settings.server)))),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| CliError::Input(format!("--ca-file {}: {e}", path.display())))?;
                let certs = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| CliError::Input(format!("--ca-file {}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(CliError::Input(format!(
                        "--ca-file {}: no certificate in the file",
                        path.display()
                    )));
                }
                RootCerts::Specific(Arc::new(certs))
            }
        };
        Ok(Client::build(&settings.server, roots).with_token(settings.token.clone()))
    }

    fn build(server: &str, roots: RootCerts) -> Client {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        Client {
            server: with_scheme(server.trim_end_matches('/')),
            agent,
            token: None,
        }
    }

    /// The same client sending `token` (none: no `Authorization` header).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// Adds the `Authorization` header when there is a token.
    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("authorization", &format!("Bearer {t}")),
            None => req,
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
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                // The hub answers JSON (plain text only for a few framework errors):
                // an HTML page or a non-JSON success is another server.
                Err(_) if status < 400 || content_type.contains("html") => {
                    return Err(not_a_hub(&self.server, status, &content_type));
                }
                Err(_) => Value::String(text),
            }
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

    /// The server URL the client talks to (`http://` added when none was given).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// GET `path` (already percent-encoded where needed).
    pub fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.authorized(self.agent.get(&self.url(path))).call())
    }

    /// GET `path` and copy the answer to `out` as it arrives (no size limit: exports).
    pub fn get_to(&self, path: &str, out: &mut dyn std::io::Write) -> Result<(), CliError> {
        let mut resp = self
            .authorized(self.agent.get(&self.url(path)))
            .call()
            .map_err(|e| self.transport_error(e))?;
        if resp.status().as_u16() >= 400 {
            return self.finish(Ok(resp)).map(|_| ());
        }
        std::io::copy(&mut resp.body_mut().as_reader(), out)
            .map_err(|e| self.transport_error(e))?;
        Ok(())
    }

    /// GET a server-sent-event stream at `path`, resuming after `last_event_id` when
    /// given (`Last-Event-ID`). An error answer (e.g. `410 Gone`: re-list) is an error.
    pub fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<super::sse::SseReader<std::io::BufReader<ureq::BodyReader<'static>>>, CliError>
    {
        let mut req = self
            .authorized(self.agent.get(&self.url(path)))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header(crate::api::watch::LAST_EVENT_ID, id);
        }
        let resp = req.call().map_err(|e| self.transport_error(e))?;
        if resp.status().as_u16() >= 400 {
            return Err(match self.finish(Ok(resp)) {
                Err(e) => e,
                Ok(_) => self.transport_error("unexpected answer"),
            });
        }
        Ok(super::sse::SseReader::new(std::io::BufReader::new(
            resp.into_body().into_reader(),
        )))
    }

    /// DELETE `path`.
    pub fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.authorized(self.agent.delete(&self.url(path))).call())
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, CliError> {
        self.finish(
            self.authorized(self.agent.post(&self.url(path)))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }

    /// PUT a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Answer, CliError> {
        self.finish(
            self.authorized(self.agent.put(&self.url(path)))
                .header("content-type", "application/json")
                .send(body.to_string()),
        )
    }
}

/// `host:port` as `http://host:port` (kubectl accepts a server without a scheme); a URL
/// with a scheme stays as it is.
pub fn with_scheme(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// The error for a server that is not a workbus hub.
fn not_a_hub(server: &str, status: u16, content_type: &str) -> CliError {
    CliError::Transport {
        server: server.to_owned(),
        detail: format!(
            "it is not a workbus hub: it answered HTTP {status} with {} instead of the hub's \
             JSON (is --server the hub's REST address, e.g. http://127.0.0.1:8080?)",
            if content_type.is_empty() {
                "a non-JSON body"
            } else {
                content_type
            }
        ),
    }
}

/// The system's trusted roots for an `https://` server (none when they cannot be read:
/// the server then needs `--ca-file`); none for plain `http://`, which needs none and
/// should not pay for reading them on every client.
fn system_roots(server: &str) -> Vec<Certificate<'static>> {
    if !server.starts_with("https://") {
        return Vec::new();
    }
    rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect()
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
