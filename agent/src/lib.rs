//! # workbus-agent: the work agent
//!
//! Receives ManifestWork spec events for its cluster as CloudEvents over MQTT, applies
//! them through a [`target::Target`], and reports status events back, wire-compatible
//! with OCM's Go work agent. A library with a thin binary (`src/main.rs`), so one process
//! can also run thousands of agents (tests, benchmarks, the hub's quickstart).
//!
//! Module map:
//! - [`runtime`]: the agent loop tying everything together ([`runtime::start`]);
//!   [`jitter`] spreads its timers, [`feedback_watch`] holds its
//!   `feedbackScrapeType: Watch` watches.
//! - [`config`], [`cli`]: what an agent needs, and the OCM-compatible command line.
//! - [`transport`]: the reconnecting MQTT session (shared with the hub).
//! - [`spec_handler`]: the §7.2 rules for incoming spec events (pure).
//! - [`status_report`]: building status events and resync requests.
//! - [`outgoing`]: the retrying publish queue (requests coalesced, statuses in order);
//!   [`outbox`]: its bounded, durable status outbox and compaction rule.
//! - [`store`]: durable local state.
//! - [`registration`]: joining the hub with a bootstrap token, the cluster's own
//!   identity, lease renewals, ManagedCluster status and certificate rotation.
//! - [`target`], [`reconcile`], [`conditions`], [`feedback`]: applying manifests and
//!   computing status; [`executor`] (permission checks) and [`ignore_fields`]
//!   (server-side apply `ignoreFields`) decide per manifest; [`jsonpath`] and
//!   [`jq_path`] are the path languages they and feedback evaluate;
//!   [`applied_work`]: the AppliedManifestWork that owns and records what a work
//!   applied, and its eviction.

pub mod applied_work;
pub mod cli;
pub mod conditions;
pub mod config;
pub mod executor;
pub mod feedback;
pub mod feedback_watch;
pub mod ignore_fields;
pub mod jitter;
pub mod jq_path;
pub mod jsonpath;
pub mod metrics;
pub mod outbox;
pub mod outgoing;
pub mod reconcile;
pub mod registration;
pub mod runtime;
pub mod spec_handler;
pub mod status_report;
pub mod store;
pub mod target;
