//! Versioned schema migrations of the PostgreSQL store.
//!
//! PostgreSQL's own list (its schema starts where SQLite's ninth migration ended; its
//! second is SQLite's tenth, the audit hash chain):
//! [`MIGRATIONS`] is append-only, migration *n* (1-based) moves the schema from version
//! *n-1* to *n*, and table `schema_migrations` holds one row per applied version.
//! Every pending migration runs in one transaction that first takes the advisory lock
//! [`MIGRATION_LOCK`], so several hubs starting at once against one database apply each
//! migration exactly once (the others wait, then find nothing left to do); DDL is
//! transactional in PostgreSQL, so a crash leaves the old or the new schema. A database
//! newer than this binary is refused rather than guessed at.
//!
//! Column types follow the SQLite schema on purpose: times are fixed-width RFC 3339
//! text (nanoseconds, which `timestamptz` cannot hold, and the same text the other
//! backend stores), JSON and sealed payloads are text, the sealed MQTT payload `bytea`.
//! Every text column is `COLLATE "C"`: bytewise order, as SQLite's, so listings and
//! their pagination keys (`(cluster, name) > …`) order alike on both backends whatever
//! the database's locale.

use super::StoreError;
use super::postgres_conn::{PgConn, col};

/// The advisory lock (`pg_advisory_xact_lock`) held while migrating: "workbus" + 1.
pub const MIGRATION_LOCK: i64 = 0x776f_726b_6275_7301;

/// The migrations, oldest first. Never edit a released entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's version 9 (see `migrations.rs` for each table's story).
    r#"
    CREATE TABLE clusters (
        name            TEXT COLLATE "C" PRIMARY KEY,
        labels          TEXT COLLATE "C" NOT NULL,        -- JSON object
        created         TEXT COLLATE "C" NOT NULL,        -- RFC 3339, fixed width (sortable)
        last_heard      TEXT COLLATE "C",
        registration    TEXT COLLATE "C",                 -- ManagedCluster + lease JSON; NULL = REST-created
        health_deadline TEXT COLLATE "C"
    );
    CREATE INDEX clusters_health ON clusters(health_deadline) WHERE health_deadline IS NOT NULL;
    CREATE TABLE works (
        uid         TEXT COLLATE "C" PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL REFERENCES clusters(name) ON DELETE RESTRICT,
        name        TEXT COLLATE "C" NOT NULL,
        labels      TEXT COLLATE "C" NOT NULL,            -- JSON object
        annotations TEXT COLLATE "C" NOT NULL,            -- JSON object
        spec        TEXT COLLATE "C" NOT NULL,            -- ManifestWorkSpec JSON, sealed
        generation  BIGINT NOT NULL CHECK (generation >= 1),
        created     TEXT COLLATE "C" NOT NULL,
        updated     TEXT COLLATE "C" NOT NULL,
        deletion    TEXT COLLATE "C",
        UNIQUE (cluster, name)
    );
    CREATE INDEX works_deleting ON works(deletion) WHERE deletion IS NOT NULL;
    CREATE TABLE work_status (
        uid         TEXT COLLATE "C" PRIMARY KEY REFERENCES works(uid) ON DELETE CASCADE,
        status      TEXT COLLATE "C" NOT NULL,            -- ManifestWorkStatus JSON
        generation  BIGINT NOT NULL,
        sequence_id TEXT COLLATE "C" NOT NULL,
        status_hash TEXT COLLATE "C",
        received    TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE work_tombstones (
        uid         TEXT COLLATE "C" PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        generation  BIGINT NOT NULL,
        deleted     TEXT COLLATE "C" NOT NULL
    );
    -- Ids only grow in commit order because writers are serialised (store::postgres):
    -- the outbox publisher reads "id > last seen".
    CREATE TABLE outbox (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL,
        resource_id TEXT COLLATE "C",
        event_type  TEXT COLLATE "C" NOT NULL,
        event       TEXT COLLATE "C" NOT NULL,            -- structured CloudEvent JSON, sealed
        created     TEXT COLLATE "C" NOT NULL,
        attempts    BIGINT NOT NULL DEFAULT 0,
        parked      TEXT COLLATE "C",                     -- why it cannot be published; NULL = pending
        parked_at   TEXT COLLATE "C",
        topic       TEXT COLLATE "C",
        properties  TEXT COLLATE "C",                     -- JSON: contentType, userProperties
        payload     BYTEA,                    -- sealed
        wire        TEXT COLLATE "C",
        actor       TEXT COLLATE "C"
    );
    CREATE INDEX outbox_parked ON outbox(cluster, resource_id, id) WHERE parked IS NOT NULL;
    CREATE INDEX outbox_parked_id ON outbox(id) WHERE parked IS NOT NULL;
    CREATE TABLE audit (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at          TEXT COLLATE "C" NOT NULL,
        direction   TEXT COLLATE "C" NOT NULL CHECK (direction IN ('sent', 'received')),
        cluster     TEXT COLLATE "C",
        resource_id TEXT COLLATE "C",
        event_type  TEXT COLLATE "C" NOT NULL,
        event       TEXT COLLATE "C" NOT NULL,            -- structured CloudEvent JSON, redacted, sealed
        actor       TEXT COLLATE "C"
    );
    CREATE INDEX audit_resource ON audit(resource_id, id);
    -- The audit log is append-only: history must survive hard deletes of works.
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    CREATE TABLE api_tokens (
        name        TEXT COLLATE "C" PRIMARY KEY,
        hash        TEXT COLLATE "C" NOT NULL UNIQUE,     -- lowercase hex SHA-256 of the secret
        role        TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'writer', 'reader')),
        scope       TEXT COLLATE "C",                     -- JSON array of scope entries; NULL = all clusters
        created     TEXT COLLATE "C" NOT NULL,
        created_by  TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE cluster_csrs (
        name        TEXT COLLATE "C" PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        csr         TEXT COLLATE "C" NOT NULL,            -- CertificateSigningRequest JSON
        created     TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX cluster_csrs_cluster ON cluster_csrs(cluster, created);
    CREATE TABLE clustersets (
        name        TEXT COLLATE "C" PRIMARY KEY,
        selector    TEXT COLLATE "C" NOT NULL,            -- ClusterSelector JSON
        created     TEXT COLLATE "C" NOT NULL
    );
    INSERT INTO clustersets (name, selector, created) VALUES
        ('default', '{"selectorType":"ExclusiveClusterSetLabel"}', '1970-01-01T00:00:00.000000000Z'),
        ('global', '{"selectorType":"LabelSelector","matchLabels":{}}', '1970-01-01T00:00:00.000000000Z');
    CREATE TABLE bootstrap_tokens (
        name        TEXT COLLATE "C" PRIMARY KEY,
        hash        TEXT COLLATE "C" NOT NULL UNIQUE,
        expires     TEXT COLLATE "C" NOT NULL,
        auto_accept BOOLEAN NOT NULL,
        revoked     TEXT COLLATE "C",
        created     TEXT COLLATE "C" NOT NULL,
        created_by  TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE revoked_clusters (
        name        TEXT COLLATE "C" PRIMARY KEY,
        revoked     TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE placements (
        namespace   TEXT COLLATE "C" NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        spec        TEXT COLLATE "C" NOT NULL,            -- Placement JSON without status
        status      TEXT COLLATE "C" NOT NULL,            -- PlacementStatus JSON
        created     TEXT COLLATE "C" NOT NULL,
        generation  BIGINT NOT NULL CHECK (generation >= 1),
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE placement_decisions (
        namespace   TEXT COLLATE "C" NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        placement   TEXT COLLATE "C" NOT NULL,
        ordinal     BIGINT NOT NULL,
        labels      TEXT COLLATE "C" NOT NULL,
        decisions   TEXT COLLATE "C" NOT NULL,
        created     TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (namespace, name)
    );
    CREATE INDEX placement_decisions_placement
        ON placement_decisions(namespace, placement, ordinal);
    CREATE TABLE clusterset_bindings (
        namespace   TEXT COLLATE "C" NOT NULL,
        clusterset  TEXT COLLATE "C" NOT NULL,
        created     TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (namespace, clusterset)
    );
    CREATE TABLE replicasets (
        namespace     TEXT COLLATE "C" NOT NULL,
        name          TEXT COLLATE "C" NOT NULL,
        labels        TEXT COLLATE "C" NOT NULL,
        spec          TEXT COLLATE "C" NOT NULL,          -- sealed
        status        TEXT COLLATE "C" NOT NULL,
        template_hash TEXT COLLATE "C" NOT NULL,
        previous      TEXT COLLATE "C",                   -- sealed
        approvals     TEXT COLLATE "C" NOT NULL,
        halt          TEXT COLLATE "C",
        generation    BIGINT NOT NULL CHECK (generation >= 1),
        created       TEXT COLLATE "C" NOT NULL,
        updated       TEXT COLLATE "C" NOT NULL,
        deletion      TEXT COLLATE "C",
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE replicaset_clusters (
        namespace       TEXT COLLATE "C" NOT NULL,
        replicaset      TEXT COLLATE "C" NOT NULL,
        cluster         TEXT COLLATE "C" NOT NULL,
        placement       TEXT COLLATE "C" NOT NULL,
        group_index     INTEGER NOT NULL,
        group_name      TEXT COLLATE "C" NOT NULL,
        status          TEXT COLLATE "C" NOT NULL,
        last_transition TEXT COLLATE "C" NOT NULL,
        revision        TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (namespace, replicaset, cluster),
        FOREIGN KEY (namespace, replicaset) REFERENCES replicasets(namespace, name)
            ON DELETE CASCADE
    );
    "#,
    // 2: the audit log becomes a hash chain (issue 15; SQLite's migration 10, which
    // explains each column): records are stored exactly as `audit::chain` linked them,
    // the event column sealed at rest. Rows written before stay in `audit_legacy`,
    // outside the chain, still append-only. Retention removes a prefix only, below a
    // cut recorded first in `audit_cuts` (see `audit::retention`); every other UPDATE,
    // DELETE or TRUNCATE is refused — by triggers, like SQLite's (the chain, not the
    // triggers, is the proof: `audit::verify`).
    r#"
    ALTER TABLE audit RENAME TO audit_legacy;
    CREATE TABLE audit (
        seq              BIGINT PRIMARY KEY,
        at               TEXT COLLATE "C" NOT NULL,
        direction        TEXT COLLATE "C" NOT NULL
            CHECK (direction IN ('sent', 'received', 'api', 'internal')),
        cluster          TEXT COLLATE "C",
        source           TEXT COLLATE "C",
        resource_id      TEXT COLLATE "C",
        resource_version BIGINT,
        event_type       TEXT COLLATE "C" NOT NULL,
        actor            TEXT COLLATE "C",
        event            TEXT COLLATE "C" NOT NULL,   -- canonical structured CloudEvent JSON, sealed
        prev_hash        TEXT COLLATE "C" NOT NULL,
        hash             TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX audit_work ON audit(resource_id, seq) WHERE resource_id IS NOT NULL;
    CREATE INDEX audit_cluster_at ON audit(cluster, at);
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE audit_cuts (
        first_kept  BIGINT PRIMARY KEY,
        at          TEXT COLLATE "C" NOT NULL
    );
    CREATE FUNCTION audit_chain_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND OLD.seq <
                (SELECT COALESCE(MAX(first_kept), 0) FROM audit_cuts) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'the audit log is append-only';
        END $$;
    CREATE TRIGGER audit_chain_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();
    CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    -- Cuts are history too: only ever added.
    CREATE TRIGGER audit_cuts_no_change BEFORE UPDATE OR DELETE ON audit_cuts
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_cuts_no_truncate BEFORE TRUNCATE ON audit_cuts
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    "#,
    // 3: several active hubs (issue 16, ARCHITECTURE.md "Several hubs"): the replicas
    // and their heartbeats, the partition leases (who publishes which clusters' outbox
    // rows; `epoch` counts handovers), a NOTIFY on every outbox insert so the owner of
    // a cluster wakes whichever replica queued its event, and one per work and cluster
    // change for the other replicas' watches. Times are the server's.
    r#"
    CREATE TABLE hub_replicas (
        replica_id   TEXT COLLATE "C" PRIMARY KEY,
        rest_addr    TEXT COLLATE "C" NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL,
        expires_at   TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE partition_leases (
        partition    INTEGER PRIMARY KEY,
        owner        TEXT COLLATE "C",
        epoch        BIGINT NOT NULL DEFAULT 0,
        acquired_at  TIMESTAMPTZ,
        expires_at   TIMESTAMPTZ
    );
    CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('workbus_outbox', '');
            RETURN NULL;
        END $$;
    CREATE TRIGGER outbox_queued AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
    -- Work changes for the watches of the other replicas (store::postgres_leases::
    -- WorkNotice): kind|uid|cluster|name|generation|the writer's application_name.
    CREATE FUNCTION work_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            origin TEXT := current_setting('application_name');
        BEGIN
            IF TG_TABLE_NAME = 'work_status' THEN
                PERFORM pg_notify('workbus_works',
                    'status|' || NEW.uid || '|||' || NEW.generation || '|' || origin);
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('workbus_works', 'deleted|' || OLD.uid || '|' || OLD.cluster
                    || '|' || OLD.name || '|' || OLD.generation || '|' || origin);
            ELSE
                PERFORM pg_notify('workbus_works', 'spec|' || NEW.uid || '|' || NEW.cluster
                    || '|' || NEW.name || '|' || NEW.generation || '|' || origin);
            END IF;
            RETURN NULL;
        END $$;
    CREATE TRIGGER works_changed AFTER INSERT OR UPDATE OR DELETE ON works
        FOR EACH ROW EXECUTE FUNCTION work_notify();
    CREATE TRIGGER work_status_changed AFTER INSERT OR UPDATE ON work_status
        FOR EACH ROW EXECUTE FUNCTION work_notify();
    -- Cluster changes likewise (changed|name|origin, deleted|name|origin); not the
    -- last-heard time a status touches, only what a cluster watcher sees.
    CREATE FUNCTION cluster_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            origin TEXT := current_setting('application_name');
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('workbus_clusters', 'deleted|' || OLD.name || '|' || origin);
            ELSE
                PERFORM pg_notify('workbus_clusters', 'changed|' || NEW.name || '|' || origin);
            END IF;
            RETURN NULL;
        END $$;
    CREATE TRIGGER clusters_added_or_removed AFTER INSERT OR DELETE ON clusters
        FOR EACH ROW EXECUTE FUNCTION cluster_notify();
    CREATE TRIGGER clusters_changed AFTER UPDATE ON clusters FOR EACH ROW
        WHEN (OLD.labels IS DISTINCT FROM NEW.labels
              OR OLD.registration IS DISTINCT FROM NEW.registration)
        EXECUTE FUNCTION cluster_notify();
    "#,
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())";

/// The schema version of a migrated database (`schema_migrations` exists).
pub(super) fn current_version(conn: &mut PgConn) -> Result<i64, StoreError> {
    let row = conn.query_one(
        "SELECT COALESCE(max(version), 0)::BIGINT FROM schema_migrations",
        &[],
    )?;
    col(&row, 0)
}

/// Brings the database to [`latest_version`]; returns the version it started from.
pub(super) fn migrate(conn: &mut PgConn) -> Result<i64, StoreError> {
    conn.batch("BEGIN")?;
    let result = migrate_locked(conn);
    match &result {
        Ok(_) => conn.batch("COMMIT")?,
        Err(_) => {
            let _ = conn.batch("ROLLBACK");
        }
    }
    result
}

fn migrate_locked(conn: &mut PgConn) -> Result<i64, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    conn.batch(VERSION_TABLE)?;
    let start = current_version(conn)?;
    if start > latest_version() {
        return Err(StoreError::Backend(format!(
            "database schema version {start} is newer than this binary's {}",
            latest_version()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start as usize) {
        let version = index as i64 + 1;
        conn.batch(sql)?;
        conn.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )?;
        tracing::info!(version, "store migrated (PostgreSQL)");
    }
    Ok(start)
}
