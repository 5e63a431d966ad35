//! # workbus-schemas: the wire protocol, and nothing else
//!
//! This crate is the single place that knows the Open Cluster Management (OCM)
//! event-based ManifestWork protocol as OCM's Go implementation (sdk-go, Maestro)
//! speaks it over MQTT: event types, CloudEvent extensions, MQTT topic layout,
//! payload shapes, the status hash, sequence ids and resync payloads.
//!
//! It does no I/O: no sockets, no files (the MQTT config type parses bytes the
//! caller read), no async runtime. Hub and agent build every topic and every
//! attribute through it.
//!
//! Module map:
//! - [`event_type`]: the `<group>.<version>.<resource>.<subresource>.<action>` grammar.
//! - [`extensions`]: names and typed, lenient accessors for the OCM extensions.
//! - [`envelope`]: the CloudEvent envelope and builders for spec/status events.
//! - [`mqtt`]: CloudEvent <-> MQTT message mapping (binary and structured mode).
//! - [`topics`]: topic roles, validation and publish/subscribe substitution.
//! - [`acl`]: identities (agent of a cluster, source) and the per-identity topic ACL
//!   derived from the topic templates, for brokers that enforce it.
//! - [`config`]: the sdk-go MQTT config file (YAML or JSON).
//! - [`work`]: ManifestWork spec/status types, ObjectMeta, bundle validation.
//! - [`status_hash`]: Go-compatible canonical JSON and the status hash.
//! - [`resource_id`]: UUIDv5 work ids.
//! - [`sequence_id`]: snowflake sequence ids and their comparison rules.
//! - [`resync`]: resync request payloads and the two resync answers.
//! - [`resync_digest`]: per-cluster resync digests, a compatible extension (design + functions).
//! - [`signature`]: signed spec events (Ed25519 over a canonical form), a compatible extension.
//! - [`metadata`]: the ManifestWork codecs: spec/status events <-> typed works (§5.4).
//! - [`registration`]: cluster registration and health data types (ManagedCluster, CSR,
//!   Lease, Event) and their sdk-go event codec (issue 13).
//! - [`selector`]: Kubernetes label selectors (matching, validation, the string form).
//! - [`placement`]: Placement, PlacementDecision and ManagedClusterSetBinding (issue 14).
//! - [`replicaset`]: ManifestWorkReplicaSet and its rollout strategy (issue 14).
//! - `proto` (feature `protobuf`): the CloudEvents protobuf format of sdk-go's gRPC
//!   driver and Maestro's gRPC API, for interoperability tools; not on the MQTT path.

pub mod acl;
pub mod client_id;
pub mod config;
pub mod envelope;
pub mod event_type;
pub mod extensions;
pub mod metadata;
pub mod mqtt;
pub mod peek;
pub mod placement;
#[cfg(feature = "protobuf")]
pub mod proto;
pub mod registration;
pub mod replicaset;
pub mod resource_id;
pub mod resync;
pub mod resync_digest;
pub mod selector;
pub mod sequence_id;
pub mod signature;
pub mod status_hash;
pub mod topics;
pub mod work;

/// The CloudEvent envelope type used throughout workbus (from `cloudevents-sdk`), and the
/// trait that reads its attributes.
pub use cloudevents::{AttributesReader, Event};
