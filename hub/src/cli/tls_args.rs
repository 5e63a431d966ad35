//! The REST API's serving flags of `serve`: TLS identity, the explicit permission to
//! serve plaintext, and the host names clients may use (see `auth::origin`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::api::tls::TlsFiles;
use crate::auth::tokens::ADMIN_TOKEN_FILE;
use crate::config::ApiSettings;

/// REST serving flags.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// PEM certificate chain of the REST API (with --tls-key): serve HTTPS, TLS 1.3
    /// preferred, 1.2 allowed.
    #[arg(long, env = "WORKBUS_HUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WORKBUS_HUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plaintext HTTP when no certificate is given; only on a loopback --listen
    /// address (put a TLS-terminating proxy in front for anything else).
    #[arg(long, env = "WORKBUS_HUB_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// Host names clients use to reach the API, besides IP addresses and localhost
    /// (comma-separated or repeated); requests naming any other host are refused
    /// (DNS rebinding protection).
    #[arg(
        long = "allowed-host",
        env = "WORKBUS_HUB_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
}

/// Why the flags describe no way to serve the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiArgsError {
    /// Neither a certificate nor --allow-plaintext.
    #[error(
        "the REST API needs TLS: give --tls-cert and --tls-key, or --allow-plaintext to \
         serve plain HTTP on a loopback address"
    )]
    NoTls,
    /// --allow-plaintext on an address other hosts can reach.
    #[error(
        "--allow-plaintext serves loopback addresses only, not {0}: give --tls-cert and \
         --tls-key"
    )]
    PlaintextBeyondLoopback(SocketAddr),
}

impl ApiArgs {
    /// The API settings for a hub listening on `listen` with its data in `data_dir`
    /// (where a first admin token is written).
    pub fn api_settings(
        &self,
        listen: SocketAddr,
        data_dir: &Path,
    ) -> Result<ApiSettings, ApiArgsError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ if !self.allow_plaintext => return Err(ApiArgsError::NoTls),
            _ if !listen.ip().is_loopback() => {
                return Err(ApiArgsError::PlaintextBeyondLoopback(listen));
            }
            _ => None,
        };
        Ok(ApiSettings {
            tls,
            allowed_hosts: self.allowed_hosts.clone(),
            admin_token_file: Some(data_dir.join(ADMIN_TOKEN_FILE)),
            ..ApiSettings::default()
        })
    }
}
