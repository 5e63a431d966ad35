//! The hub's durable state: clusters, works, their latest statuses, the outbox of
//! events waiting for a broker acknowledgement, and the append-only audit log.
//!
//! Three layers, so a second backend (PostgreSQL) adds storage and nothing else:
//! - [`rules`]: the business rules as pure functions (apply, deletion, status
//!   acceptance, cluster removal, registration and health);
//! - [`writes`] and [`registration_writes`]: every change as a typed [`Write`] — the
//!   rules over row operations, written once;
//! - [`registration`]: the records of cluster registration (issue 13);
//! - [`placement`] and [`placement_writes`]: Placements, their decisions and cluster
//!   set bindings (issue 14);
//! - [`replicaset`] and [`replicaset_writes`]: ManifestWorkReplicaSets and their
//!   rollout state (issue 14);
//! - a backend: [`Store`] (reads and transactions) and [`StoreTx`] (row operations
//!   inside a transaction); [`sqlite::SqliteStore`] is the embedded one,
//!   [`postgres::PostgresStore`] the server one (issue 16).
//!
//! Every write is synchronous and atomic: one that changes a work *and* queues its spec
//! event does both in one transaction, which is what makes publishing durable (a
//! committed change is always eventually published, see `outbox`).
//!
//! Async code never calls a [`Store`] directly: it goes through [`StoreHandle`], which
//! runs each call on the blocking thread pool so SQLite I/O (with `fsync`) never stalls
//! the runtime.

mod audit_columns;
pub mod checkpoint;
mod column_codec;
pub mod group_commit;
pub mod handle;
pub mod keyring;
pub mod migrations;
pub mod model;
pub mod placement;
pub mod placement_writes;
pub mod postgres;
mod postgres_audit;
mod postgres_conn;
pub mod postgres_leases;
pub mod postgres_migrations;
mod postgres_placement;
mod postgres_registration;
mod postgres_replicaset;
mod postgres_tx;
pub mod redact;
pub mod registration;
pub mod registration_writes;
pub mod replicaset;
pub mod replicaset_writes;
pub mod rules;
pub mod sqlite;
mod sqlite_audit;
mod sqlite_placement;
mod sqlite_registration;
mod sqlite_replicaset;
pub mod tx;
pub mod writes;

pub use group_commit::{Batch, PendingWrite};
pub use handle::StoreHandle;
pub use model::{
    ApiToken, ApplyOutcome, AuditDirection, AuditEntry, AuditQuery, Cluster, DesiredWork,
    DropReason, IncomingStatus, NewOutbox, OutboxEntry, OutboxPayload, Outgoing, ParkedOutbox,
    PendingDeletion, QueuedMessage, Role, ScopeEntry, StatusOutcome, StoredStatus, WorkFilter,
    WorkKey, WorkRecord,
};
pub use tx::StoreTx;
pub use writes::Write;

use std::sync::Arc;

use crate::config::StoreSettings;

/// Why a store operation failed. Conflicts and missing objects are ordinary outcomes
/// the API maps to 4xx; `Backend` and `Corrupt` are server faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `cluster` or `work`.
        kind: &'static str,
        /// Its name (`cluster/name` for works).
        name: String,
    },
    /// The object already exists (create only).
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// `cluster` or `work`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The change conflicts with the object's state (deleting work, cluster with works).
    #[error("{0}")]
    Conflict(String),
    /// The caller-supplied event builder refused the change (e.g. generation overflow).
    #[error("cannot build the event: {0}")]
    Event(String),
    /// A stored row does not decode: the row is left untouched and reported.
    #[error("corrupt stored data in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What failed.
        reason: String,
    },
    /// The database itself failed (I/O, lock, constraint).
    #[error("database error: {0}")]
    Backend(String),
    /// The database server cannot be reached, or the connection to it was lost: a
    /// transient fault (the REST API answers 503); the next call connects again.
    #[error("the database at {server} is unavailable: {reason}")]
    Unavailable {
        /// `host:port` of the server.
        server: String,
        /// The driver's reason.
        reason: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Builds the spec event for a work inside the transaction that changes it, so the event
/// sees exactly the committed generation and timestamps. Returns the event to queue,
/// with its MQTT message when the caller knows the wire format.
pub type SharedSpecEventBuilder =
    std::sync::Arc<dyn Fn(&WorkRecord, SpecChange) -> Result<Outgoing, String> + Send + Sync>;

/// Which kind of spec change a queued event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChange {
    /// The work was created.
    Create,
    /// Its spec, labels or annotations changed.
    Update,
    /// It was marked deleting.
    Delete,
}

/// The storage contract of the hub: reads, and write transactions over the backend's
/// [`StoreTx`] row operations. Changes are [`Write`]s ([`writes`]), which hold the
/// business rules ([`rules`]) once for every backend; run one with
/// [`write`](trait.Store.html#method.write) (`impl dyn Store`) or group-committed through
/// [`StoreHandle`]. Implementations must make every committed transaction durable
/// before [`Store::transaction`] returns `Ok`.
pub trait Store: Send + Sync + 'static {
    /// Runs `body` in one write transaction: commits (durably) when it returns `Ok`,
    /// rolls back everything when it returns `Err` (and returns that error). Writers
    /// are serialised; `body` runs exactly once.
    fn transaction(
        &self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// One cluster.
    fn get_cluster(&self, name: &str) -> Result<Option<Cluster>, StoreError>;
    /// All clusters, by name.
    fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError>;

    /// One work with its latest status.
    fn get_work(&self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError>;
    /// One work by its uid (the wire `resourceid`).
    fn get_work_by_uid(&self, uid: &str) -> Result<Option<WorkRecord>, StoreError>;
    /// Works matching `filter`, ordered by (cluster, name), at most `filter.limit`.
    fn list_works(&self, filter: &WorkFilter) -> Result<Vec<WorkRecord>, StoreError>;
    /// All works of one cluster (including deleting ones), ordered by name.
    fn works_of_cluster(&self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError>;
    /// Every work waiting for its agent's deletion confirmation, oldest request first.
    fn pending_deletions(&self) -> Result<Vec<PendingDeletion>, StoreError>;

    /// Up to `limit` pending (not parked) events with id greater than `after`, oldest
    /// first. A row whose message was made by the wire format with fingerprint `wire`
    /// comes as [`OutboxPayload::Message`]; any other as [`OutboxPayload::Event`].
    fn outbox_batch(
        &self,
        after: i64,
        limit: usize,
        wire: &str,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Number of pending events (parked ones are [`Store::outbox_parked_count`]).
    fn outbox_depth(&self) -> Result<u64, StoreError>;
    /// Up to `limit` parked events with id greater than `after`, oldest first. A parked
    /// event can never be published as it is; it stays, with its reason, out of the
    /// pending queue. Parking removes older parked events with the same supersession
    /// key — the same cluster and `resource_id`, or, for events about no work, the same
    /// cluster and event type — and so does publishing: at most the newest
    /// unpublishable event per key is kept ([`writes::ParkOutbox`],
    /// [`writes::CompleteOutbox`]).
    fn parked_outbox(&self, after: i64, limit: usize) -> Result<Vec<ParkedOutbox>, StoreError>;
    /// Number of parked events.
    fn outbox_parked_count(&self) -> Result<u64, StoreError>;

    /// Audit rows for a resource id (or all when `None`), oldest first, at most `limit`.
    fn audit(&self, resource_id: Option<&str>, limit: usize)
    -> Result<Vec<AuditEntry>, StoreError>;
    /// The audit records `query` selects, in chain order (see [`AuditQuery`]).
    fn audit_records(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<crate::audit::chain::AuditRecord>, StoreError>;
    /// The newest audit record (`None` while the log is empty).
    fn audit_head(&self) -> Result<Option<crate::audit::chain::AuditHead>, StoreError>;

    /// The API token whose secret hashes to `hash`. Read on every request (no cache),
    /// so a revoked token stops working at once.
    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Every API token, by name (digests included; the API never shows them).
    fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// The certificate signing requests of a cluster, oldest first.
    fn csrs_of_cluster(
        &self,
        cluster: &str,
    ) -> Result<Vec<workbus_schemas::registration::CertificateSigningRequest>, StoreError>;
    /// Whether `name` is a deleted joined cluster whose identity stays refused.
    fn is_cluster_revoked(&self, name: &str) -> Result<bool, StoreError>;
    /// Every cluster set, by name (`default` and `global` always among them).
    fn list_clustersets(&self) -> Result<Vec<registration::ClusterSet>, StoreError>;
    /// The bootstrap token whose secret hashes to `hash`.
    fn join_token_by_hash(&self, hash: &str)
    -> Result<Option<registration::JoinToken>, StoreError>;
    /// Every bootstrap token, by name.
    fn list_join_tokens(&self) -> Result<Vec<registration::JoinToken>, StoreError>;

    /// One Placement with its status.
    fn get_placement(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<placement::PlacementRecord>, StoreError>;
    /// The Placements of `namespace` (all namespaces when `None`), by namespace and name.
    fn list_placements(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<placement::PlacementRecord>, StoreError>;
    /// The PlacementDecisions of one Placement, in order (`-decision-1` first).
    fn placement_decisions(
        &self,
        namespace: &str,
        placement: &str,
    ) -> Result<Vec<workbus_schemas::placement::PlacementDecision>, StoreError>;
    /// Every PlacementDecision of `namespace` (all when `None`), by placement and order.
    fn list_decisions(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<workbus_schemas::placement::PlacementDecision>, StoreError>;
    /// The cluster set bindings of `namespace` (all when `None`), by namespace and set.
    fn list_bindings(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<placement::ClusterSetBinding>, StoreError>;
    /// One ManifestWorkReplicaSet (issue 14).
    fn get_replica_set(
        &self,
        key: &replicaset::ReplicaSetKey,
    ) -> Result<Option<replicaset::ReplicaSetRecord>, StoreError>;
    /// The replica sets of a namespace (all when `None`), by namespace and name.
    fn list_replica_sets(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<replicaset::ReplicaSetRecord>, StoreError>;
    /// The per-cluster rollout states of a replica set, by cluster.
    fn replica_set_clusters(
        &self,
        key: &replicaset::ReplicaSetKey,
    ) -> Result<Vec<replicaset::ClusterRollout>, StoreError>;
}

/// The file name of the SQLite database inside its data directory.
pub const SQLITE_FILE: &str = "hub.db";

/// Opens (creating and migrating if needed) the store `settings` describe. Blocking.
///
/// The data directory is private (`0700`), and so are its files (`0600`: the database,
/// its WAL and shared-memory files, the key file): created so, and tightened (with a
/// warning) when found looser. Payload columns are sealed with the keys of
/// [`keyring::KEY_FILE`] (or PostgreSQL's `key_file`), generated on first start.
pub fn open(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    use workbus_process::private_fs;
    let fs_error = |path: &std::path::Path, e: std::io::Error| {
        StoreError::Backend(format!("cannot secure {}: {e}", path.display()))
    };
    let data_dir = settings.data_dir();
    let tightened = private_fs::ensure_private_dir(data_dir).map_err(|e| fs_error(data_dir, e))?;
    warn_tightened(data_dir, tightened);
    match settings {
        StoreSettings::Sqlite { data_dir } => {
            let keys = load_keys(&data_dir.join(keyring::KEY_FILE))?;
            let db = data_dir.join(SQLITE_FILE);
            // Created 0600 before SQLite opens it; SQLite gives its WAL and SHM files the
            // database file's mode.
            drop(private_fs::create_private_file(&db, false).map_err(|e| fs_error(&db, e))?);
            let store = sqlite::SqliteStore::open_sealed(&db, Some(Arc::new(keys)))?;
            for path in sqlite_files(&db) {
                let t = private_fs::tighten_file(&path).map_err(|e| fs_error(&path, e))?;
                warn_tightened(&path, t);
            }
            Ok(Arc::new(store))
        }
        StoreSettings::Postgres {
            url,
            data_dir,
            key_file,
        } => {
            let key_path = key_file
                .clone()
                .unwrap_or_else(|| data_dir.join(keyring::KEY_FILE));
            let keys = load_keys(&key_path)?;
            let store = postgres::PostgresStore::open(&url.0, Some(Arc::new(keys)))?;
            tracing::info!(server = store.server(), "store: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// The store's keyring from `path`, made (0600) on first start.
fn load_keys(key_path: &std::path::Path) -> Result<keyring::Keyring, StoreError> {
    let (keys, loaded) = keyring::Keyring::load_or_create(key_path)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    match loaded {
        keyring::LoadedFrom::Created => tracing::info!(
            path = %key_path.display(),
            "generated the store key file (keep a copy: without it sealed rows are lost)"
        ),
        keyring::LoadedFrom::Existing(t) => warn_tightened(key_path, t),
    }
    Ok(keys)
}

/// The database file and the files SQLite keeps beside it.
pub fn sqlite_files(db: &std::path::Path) -> [std::path::PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

fn warn_tightened(path: &std::path::Path, tightened: workbus_process::private_fs::Tightened) {
    if let workbus_process::private_fs::Tightened::From(mode) = tightened {
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:o}"),
            "tightened the permissions of a hub data path (it was readable by others)"
        );
    }
}

impl dyn Store {
    /// Runs one [`Write`] in its own transaction and returns its answer once durable.
    pub fn write<W: Write>(&self, op: W) -> Result<W::Output, StoreError> {
        let mut op = Some(op);
        let mut output = None;
        self.transaction(&mut |tx| {
            let op = op.take().ok_or_else(|| {
                StoreError::Backend("the store ran a transaction body twice".into())
            })?;
            output = Some(op.run(tx)?);
            Ok(())
        })?;
        output.ok_or_else(|| StoreError::Backend("the store skipped a transaction body".into()))
    }
}
