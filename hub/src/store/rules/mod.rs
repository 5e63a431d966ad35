//! The store's business rules as pure functions: what a write does to the stored
//! records, decided from the records the backend read and the caller's clock. No I/O,
//! no backend types: every [`Store`](super::Store) implementation runs the same rules
//! (through [`writes`](super::writes)), so a second backend cannot drift from the first.
//!
//! - [`apply`]: creating, updating or leaving a work unchanged, and its generation;
//! - [`deletion`]: marking a work deleting, re-driving its delete event, forced removal;
//! - [`status`]: the acceptance rule for a received status;
//! - [`cluster`]: when a cluster may be removed;
//! - [`registration`]: join, accept, deny, agent status and lease renewals (issue 13);
//! - [`availability`]: cluster health from its lease (`decide_availability`), taints,
//!   clock sync;
//! - [`csr`]: which certificate signing requests the hub takes, and their approval;
//! - [`placement`]: applying a Placement (generation, kept status) (issue 14).
//! - [`replicaset`]: applying, approving and aborting a ManifestWorkReplicaSet, and
//!   which works it owns (issue 14).

pub mod apply;
pub mod availability;
pub mod cluster;
pub mod csr;
pub mod deletion;
pub mod placement;
pub mod registration;
pub mod replicaset;
pub mod status;
