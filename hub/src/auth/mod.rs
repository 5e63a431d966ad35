//! Who may use the REST API, and for what: bearer tokens with a role and an optional
//! cluster scope ([`secret`], [`tokens`]), the rule per route ([`policy`]), which hosts
//! and origins a request may name ([`origin`], against DNS rebinding and cross-site
//! requests), and short-lived tickets for the SSE watch ([`tickets`]).
//!
//! The API layer (`api::guard`) applies all of it to every request; the CLI's token
//! commands use [`tokens`] directly on a data directory to bootstrap.

pub mod origin;
pub mod policy;
pub mod secret;
pub mod tickets;
pub mod tokens;

pub use policy::{Need, Principal};
