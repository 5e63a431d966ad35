//! Versioned schema migrations of the SQLite store.
//!
//! The schema version is SQLite's `PRAGMA user_version`. [`MIGRATIONS`] is append-only:
//! migration *n* (1-based) moves the schema from version *n-1* to *n*; each runs in its
//! own transaction together with the version bump, so a crash leaves either the old or
//! the new schema. A database newer than this binary is refused rather than guessed at.

use rusqlite::Connection;

use super::StoreError;

/// The migrations, oldest first. Never edit a released entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE clusters (
        name        TEXT PRIMARY KEY NOT NULL,
        labels      TEXT NOT NULL,            -- JSON object
        created     TEXT NOT NULL,            -- RFC 3339, fixed width (sortable)
        last_heard  TEXT
    );
    CREATE TABLE works (
        uid         TEXT PRIMARY KEY NOT NULL,
        cluster     TEXT NOT NULL REFERENCES clusters(name) ON DELETE RESTRICT,
        name        TEXT NOT NULL,
        labels      TEXT NOT NULL,            -- JSON object
        annotations TEXT NOT NULL,            -- JSON object
        spec        TEXT NOT NULL,            -- ManifestWorkSpec JSON
        generation  INTEGER NOT NULL CHECK (generation >= 1),
        created     TEXT NOT NULL,
        updated     TEXT NOT NULL,
        deletion    TEXT,
        UNIQUE (cluster, name)
    );
    CREATE TABLE work_status (
        uid         TEXT PRIMARY KEY NOT NULL REFERENCES works(uid) ON DELETE CASCADE,
        status      TEXT NOT NULL,            -- ManifestWorkStatus JSON
        generation  INTEGER NOT NULL,
        sequence_id TEXT NOT NULL,
        status_hash TEXT,
        received    TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster     TEXT NOT NULL,
        resource_id TEXT,
        event_type  TEXT NOT NULL,
        event       TEXT NOT NULL,            -- structured CloudEvent JSON
        created     TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        direction   TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
        cluster     TEXT,
        resource_id TEXT,
        event_type  TEXT NOT NULL,
        event       TEXT NOT NULL             -- structured CloudEvent JSON
    );
    CREATE INDEX audit_resource ON audit(resource_id, id);
    -- The audit log is append-only: history must survive hard deletes of works.
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: the last generation of every hard-deleted work. A work re-created under the
    // same name has the same uid and continues from here (the row goes, the work row
    // carries on), so a generation names one incarnation (see store::rules::status,
    // `Deleted`). At most one row per name ever used and not currently held.
    r#"
    CREATE TABLE work_tombstones (
        uid         TEXT PRIMARY KEY NOT NULL,
        cluster     TEXT NOT NULL,
        name        TEXT NOT NULL,
        generation  INTEGER NOT NULL,         -- the last generation of the removed work
        deleted     TEXT NOT NULL             -- when the agent's confirmation arrived
    );
    "#,
    // 3: the deleting works, listed by the deletion re-drive (source::redrive) without
    // scanning every work.
    r#"
    CREATE INDEX works_deleting ON works(deletion) WHERE deletion IS NOT NULL;
    "#,
    // 4: parked outbox rows (events that can never be published, see `outbox`): kept
    // with the reason, out of the pending queue. Partial indexes, empty while nothing
    // is parked: by work, to find the parked rows a newer event supersedes; by id, to
    // list and count parked rows without reading the (large) pending ones.
    r#"
    ALTER TABLE outbox ADD COLUMN parked TEXT;      -- why it cannot be published; NULL = pending
    ALTER TABLE outbox ADD COLUMN parked_at TEXT;
    CREATE INDEX outbox_parked ON outbox(cluster, resource_id, id) WHERE parked IS NOT NULL;
    CREATE INDEX outbox_parked_id ON outbox(id) WHERE parked IS NOT NULL;
    "#,
    // 5: outbox rows carry the MQTT message made when the event was queued (publishing
    // sends stored bytes instead of decoding and re-encoding the event), and the
    // fingerprint of the wire format that made it. Older rows (NULL) are encoded when
    // published, as before; `event` stays for the `sent` audit row.
    r#"
    ALTER TABLE outbox ADD COLUMN topic TEXT;
    ALTER TABLE outbox ADD COLUMN properties TEXT;  -- JSON: contentType, userProperties
    ALTER TABLE outbox ADD COLUMN payload BLOB;
    ALTER TABLE outbox ADD COLUMN wire TEXT;
    "#,
    // 6: API tokens (only the SHA-256 digest of each secret: high-entropy random
    // secrets need no slow password hash) and the actor of every change: outbox rows
    // carry the token name that caused them, and their `sent` audit rows keep it.
    r#"
    CREATE TABLE api_tokens (
        name        TEXT PRIMARY KEY NOT NULL,
        hash        TEXT NOT NULL UNIQUE,     -- lowercase hex SHA-256 of the secret
        role        TEXT NOT NULL CHECK (role IN ('admin', 'writer', 'reader')),
        scope       TEXT,                     -- JSON array of scope entries; NULL = all clusters
        created     TEXT NOT NULL,
        created_by  TEXT NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN actor TEXT;
    ALTER TABLE audit ADD COLUMN actor TEXT;
    "#,
    // 7: cluster registration over the bus (issue 13). A joined cluster's registration
    // (ManagedCluster and lease, JSON; NULL for REST-created clusters) and the time the
    // health timer must look at it (indexed, NULL when nothing can expire); its
    // certificate signing requests; cluster sets (`default` and `global` always
    // present); bootstrap tokens (SHA-256 digests only, like API tokens); the names of
    // deleted joined clusters, whose certificates stay refused.
    r#"
    ALTER TABLE clusters ADD COLUMN registration TEXT;
    ALTER TABLE clusters ADD COLUMN health_deadline TEXT;
    CREATE INDEX clusters_health ON clusters(health_deadline) WHERE health_deadline IS NOT NULL;
    CREATE TABLE cluster_csrs (
        name        TEXT PRIMARY KEY NOT NULL,
        cluster     TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        csr         TEXT NOT NULL,            -- CertificateSigningRequest JSON
        created     TEXT NOT NULL
    );
    CREATE INDEX cluster_csrs_cluster ON cluster_csrs(cluster, created);
    CREATE TABLE clustersets (
        name        TEXT PRIMARY KEY NOT NULL,
        selector    TEXT NOT NULL,            -- ClusterSelector JSON
        created     TEXT NOT NULL
    );
    INSERT INTO clustersets (name, selector, created) VALUES
        ('default', '{"selectorType":"ExclusiveClusterSetLabel"}', '1970-01-01T00:00:00.000000000Z'),
        ('global', '{"selectorType":"LabelSelector","matchLabels":{}}', '1970-01-01T00:00:00.000000000Z');
    CREATE TABLE bootstrap_tokens (
        name        TEXT PRIMARY KEY NOT NULL,
        hash        TEXT NOT NULL UNIQUE,     -- lowercase hex SHA-256 of the secret
        expires     TEXT NOT NULL,
        auto_accept INTEGER NOT NULL,
        revoked     TEXT,
        created     TEXT NOT NULL,
        created_by  TEXT NOT NULL
    );
    -- Joined clusters that were deleted: their certificates (CN = the name) are refused
    -- until the name joins again.
    CREATE TABLE revoked_clusters (
        name        TEXT PRIMARY KEY NOT NULL,
        revoked     TEXT NOT NULL
    );
    "#,
    // 8: Placements (issue 14): the object as applied (metadata and spec, JSON) with the
    // scheduler's status; their PlacementDecisions, replaced together with the status;
    // cluster set bindings (a set need not exist to be bound, as in OCM).
    r#"
    CREATE TABLE placements (
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        spec        TEXT NOT NULL,            -- Placement JSON without status
        status      TEXT NOT NULL,            -- PlacementStatus JSON
        created     TEXT NOT NULL,
        generation  INTEGER NOT NULL CHECK (generation >= 1),
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE placement_decisions (
        namespace   TEXT NOT NULL,
        name        TEXT NOT NULL,
        placement   TEXT NOT NULL,
        ordinal     INTEGER NOT NULL,         -- n of `<placement>-decision-<n>`
        labels      TEXT NOT NULL,            -- JSON object
        decisions   TEXT NOT NULL,            -- JSON array of ClusterDecision
        created     TEXT NOT NULL,            -- kept while the object exists
        PRIMARY KEY (namespace, name)
    );
    CREATE INDEX placement_decisions_placement
        ON placement_decisions(namespace, placement, ordinal);
    CREATE TABLE clusterset_bindings (
        namespace   TEXT NOT NULL,
        clusterset  TEXT NOT NULL,
        created     TEXT NOT NULL,
        PRIMARY KEY (namespace, clusterset)
    );
    "#,
    // 9: ManifestWorkReplicaSets (issue 14) and the per-cluster state of their
    // rollouts, written in the transaction that writes the works, so a restarted hub
    // resumes a rollout exactly where it was. `spec` and `previous` (the template
    // rollback restores) are sealed like work specs; `template_hash` names the
    // template being rolled out, and each cluster row the template its work carries.
    r#"
    CREATE TABLE replicasets (
        namespace     TEXT NOT NULL,
        name          TEXT NOT NULL,
        labels        TEXT NOT NULL,          -- JSON object
        spec          TEXT NOT NULL,          -- ManifestWorkReplicaSetSpec JSON
        status        TEXT NOT NULL,          -- ManifestWorkReplicaSetStatus JSON
        template_hash TEXT NOT NULL,
        previous      TEXT,                   -- the previous template JSON (rollback)
        approvals     TEXT NOT NULL,          -- JSON array of approved gates
        halt          TEXT,                   -- JSON: why the rollout stopped
        generation    INTEGER NOT NULL CHECK (generation >= 1),
        created       TEXT NOT NULL,
        updated       TEXT NOT NULL,
        deletion      TEXT,                   -- Foreground deletion waiting for works
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE replicaset_clusters (
        namespace       TEXT NOT NULL,
        replicaset      TEXT NOT NULL,
        cluster         TEXT NOT NULL,
        placement       TEXT NOT NULL,
        group_index     INTEGER NOT NULL,
        group_name      TEXT NOT NULL,
        status          TEXT NOT NULL,        -- ToApply, Progressing, Succeeded, ...
        last_transition TEXT NOT NULL,
        revision        TEXT NOT NULL,        -- template hash of the cluster's work
        PRIMARY KEY (namespace, replicaset, cluster),
        FOREIGN KEY (namespace, replicaset) REFERENCES replicasets(namespace, name)
            ON DELETE CASCADE
    );
    "#,
    // 10: the audit log becomes a hash chain (issue 15, `audit::chain`). Every record
    // has a contiguous `seq`, the fields the hash covers, the canonical JSON of its
    // (redacted) event — sealed at rest —, the previous record's hash and its own.
    // Rows written before stay in `audit_legacy`, outside the chain (their events
    // were not kept in canonical form, so no hash could be re-derived for them).
    // Indexes: a work's history, a cluster's records by time, any time range.
    // Retention cuts a prefix only (`audit_cuts`); the cut is itself a chain record.
    r#"
    ALTER TABLE audit RENAME TO audit_legacy;
    CREATE TABLE audit (
        seq              INTEGER PRIMARY KEY NOT NULL,
        at               TEXT NOT NULL,
        direction        TEXT NOT NULL
            CHECK (direction IN ('sent', 'received', 'api', 'internal')),
        cluster          TEXT,
        source           TEXT,
        resource_id      TEXT,
        resource_version INTEGER,
        event_type       TEXT NOT NULL,
        actor            TEXT,
        event            TEXT NOT NULL,       -- canonical structured CloudEvent JSON
        prev_hash        TEXT NOT NULL,
        hash             TEXT NOT NULL
    );
    CREATE INDEX audit_work ON audit(resource_id, seq) WHERE resource_id IS NOT NULL;
    CREATE INDEX audit_cluster_at ON audit(cluster, at);
    CREATE INDEX audit_at ON audit(at);
    CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    -- Retention removes a prefix, and only below a cut recorded first (`audit_cuts`,
    -- written with the cut's own chain record, see `audit::retention`).
    CREATE TABLE audit_cuts (
        first_kept  INTEGER PRIMARY KEY NOT NULL,
        at          TEXT NOT NULL
    );
    CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit
        WHEN OLD.seq >= (SELECT COALESCE(MAX(first_kept), 0) FROM audit_cuts)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The schema version of an open database.
pub fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the database to [`latest_version`]; returns the version it started from.
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let start = current_version(conn)?;
    if start > latest_version() {
        return Err(StoreError::Backend(format!(
            "database schema version {start} is newer than this binary's {}",
            latest_version()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
        tracing::info!(version, "store migrated");
    }
    Ok(start)
}
