//! Which `Host` and `Origin` a request may name: the defence against DNS rebinding (a
//! web page whose own name resolves to the hub's address: the browser sends that name
//! as `Host`) and against cross-site requests from a browser (which name the attacking
//! page in `Origin`).
//!
//! Allowed: IP literals (a rebinding attack needs a name, so an address is never one),
//! `localhost`, and the names the operator configured (`--allowed-host`). Ports are
//! not compared: a name that reaches us is ours on any port.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The host names (besides IP literals and `localhost`) requests may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    names: Vec<String>,
}

/// Why a request's host or origin was refused (the message of the 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefused {
    /// `Host` names a host that is not ours.
    #[error("host {0:?} is not one of this hub's names; add it with --allowed-host if it is")]
    Host(String),
    /// `Origin` names another site (or `null`).
    #[error("cross-site request from origin {0:?} refused")]
    Origin(String),
}

impl HostPolicy {
    /// Allows `names` (case-insensitive) besides IP literals and `localhost`.
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        HostPolicy {
            names: names
                .into_iter()
                .map(|n| n.into().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether `host` (`name`, `name:port`, `[v6]:port`) is one of ours.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = if let Some(rest) = host.strip_prefix('[') {
            // [v6] or [v6]:port
            match rest.split_once(']') {
                Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => return false,
            }
        } else {
            host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n)
        };
        let name = name.trim_end_matches('.');
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self.names.iter().any(|n| n == name)
    }

    /// Checks a request's `Host` (a request without one is HTTP/1.0 or not a browser's)
    /// and `Origin` (absent from non-browser clients; a browser's same-origin request
    /// names one of our hosts).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HostRefused> {
        if let Some(host) = headers.get(HOST) {
            let host = host.to_str().unwrap_or("");
            if !self.allows_host(host) {
                return Err(HostRefused::Host(shown(host)));
            }
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let authority = origin
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
            if !authority.is_some_and(|a| self.allows_host(a)) {
                return Err(HostRefused::Origin(shown(origin)));
            }
        }
        Ok(())
    }
}

/// A header value as repeated in an error message: bounded (it is the client's input).
fn shown(value: &str) -> String {
    value.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn addresses_localhost_and_configured_names_only() {
        let p = HostPolicy::new(["hub.example"]);
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "10.0.0.5",
            "hub.example:443",
            "hub.example.",
        ] {
            assert!(p.allows_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "[x]",
        ] {
            assert!(!p.allows_host(bad), "{bad}");
        }
    }

    #[test]
    fn cross_site_origins_are_refused() {
        let p = HostPolicy::default();
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(p.check(&h).is_ok());
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(p.check(&h).is_ok());
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(matches!(p.check(&h), Err(HostRefused::Origin(_))));
        h.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(p.check(&h).is_err());
        h.remove(ORIGIN);
        h.insert(HOST, HeaderValue::from_static("rebind.evil.example:8080"));
        assert!(matches!(p.check(&h), Err(HostRefused::Host(_))));
    }
}
