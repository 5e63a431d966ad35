//! # workbus-hub: the hub, an OCM CloudEvents *source*
//!
//! The hub owns the desired state (ManifestWorks per managed cluster), publishes spec
//! events to agents over MQTT, ingests their status events and answers resync
//! requests, speaking OCM's wire protocol through `workbus_schemas`. Users reach it
//! over REST ([`api`]) or the kubectl-like CLI ([`cli`]).
//!
//! Module map:
//! - [`hub`]: [`Hub::start`] / [`HubHandle`]: run a hub in-process.
//! - [`config`]: [`HubConfig`], [`BrokerSettings`]; [`defaults`]: the defaults, once.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation (migrations,
//!   outbox, audit log).
//! - [`outbox`]: the publisher that drains the outbox after broker acknowledgements.
//! - [`source`]: the source behaviour: status resync requests, spec resync answers,
//!   the status acceptance rule.
//! - [`api`]: the REST API (served with TLS and bounds by `api::server`); [`auth`]: its
//!   tokens, roles and the host/origin rule; [`watch`]: change fan-out; [`metrics`].
//! - [`rollout`]: ManifestWorkReplicaSets: the pure rollout planner and its controller.
//! - [`signing`]: the hub's spec signing key (made on the first start).
//! - [`clock`]: the hub's injectable clock (health decisions in tests).
//! - [`work_view`]: stored work → kubectl-shaped ManifestWork.
//! - [`cli`]: the command line (server and client commands).
//! - [`embedded_broker`]: the default, in-process MQTT broker (mutual TLS and topic
//!   ACLs unless opted out; [`cluster_authorizer`]: bootstrap tokens, denied clusters); [`pki`]: its certificates in `<data-dir>/pki/`;
//!   [`quickstart`]: the main job on embedded defaults.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster_authorizer;
pub mod config;
pub mod data_dir_lock;
pub mod defaults;
pub mod embedded_broker;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod pki;
pub mod placement;
#[cfg(feature = "quickstart")]
pub mod quickstart;
pub mod readiness;
pub mod replicas;
pub mod rollout;
pub mod signing;
pub mod source;
pub mod store;
pub mod watch;
pub mod watch_replay;
pub mod work_view;

pub use config::{ApiSettings, BrokerSettings, HubConfig, RegistrationSettings, StoreSettings};
pub use hub::{Hub, HubError, HubHandle};
