//! The rows of several active hubs on one PostgreSQL database (issue 16, see
//! ARCHITECTURE.md "Several hubs"): the replicas' heartbeats (`hub_replicas`) and the
//! partition leases (`partition_leases`), read and changed in one transaction per
//! renewal; and the [`Listener`] that hears `NOTIFY workbus_outbox` (a trigger on every
//! outbox insert, migration 3) so a replica publishes events another replica queued.
//!
//! The decisions are not here: [`LeaseTable::tick`] hands the rows to a pure planner
//! (`replicas::planner`) and writes its answer. Every time is the server's `now()`, so
//! the replicas' clocks never meet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::StoreError;
use super::postgres_conn::{Connector, PgConn, col};

/// One live replica, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRow {
    /// Its id (`serve --replica-id`).
    pub replica_id: String,
    /// Where its REST API listens.
    pub rest_addr: String,
    /// When it first registered (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: f64,
}

/// One partition's lease, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    /// The partition.
    pub partition: u32,
    /// Its holder, `None` when free.
    pub owner: Option<String>,
    /// Handovers so far (each claim adds one).
    pub epoch: i64,
    /// Seconds until it expires (negative: expired); `None` when never owned.
    pub expires_in_secs: Option<f64>,
}

/// What a renewal changes, decided from the rows it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseChanges {
    /// Own leases to renew.
    pub renew: Vec<u32>,
    /// Partitions to take (epoch + 1).
    pub claim: Vec<u32>,
    /// Own leases to give up.
    pub release: Vec<u32>,
}

/// What one renewal saw and did.
#[derive(Debug, Clone, Default)]
pub struct TickOutcome {
    /// The live replicas (this one included), by id.
    pub replicas: Vec<ReplicaRow>,
    /// Every partition's lease after the changes.
    pub leases: Vec<LeaseRow>,
}

/// The lease rows of one replica, on a connection of its own.
pub struct LeaseTable {
    connector: Connector,
    conn: Option<PgConn>,
}

const LEASES: &str = "SELECT partition, owner, epoch, \
     EXTRACT(EPOCH FROM (expires_at - now()))::float8 \
     FROM partition_leases ORDER BY partition";

impl LeaseTable {
    /// Lease rows in the database at `url` (connects on first use).
    pub fn new(url: &str) -> Result<LeaseTable, StoreError> {
        Ok(LeaseTable {
            connector: Connector::new(url)?,
            conn: None,
        })
    }

    fn conn(&mut self) -> Result<&mut PgConn, StoreError> {
        if self.conn.as_ref().is_none_or(PgConn::is_closed) {
            self.conn = Some(self.connector.connect()?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// One renewal: heartbeats `replica_id` (expiring `ttl` from now), makes sure the
    /// `partitions` lease rows exist, reads the live replicas and the leases (locked
    /// until commit, so renewals of all replicas run one at a time), lets `decide`
    /// choose, writes its changes and commits. A failed renewal rolls back and drops the
    /// connection (the next one connects again).
    pub fn tick(
        &mut self,
        replica_id: &str,
        rest_addr: &str,
        ttl: Duration,
        partitions: u32,
        decide: impl FnOnce(&[ReplicaRow], &[LeaseRow]) -> LeaseChanges,
    ) -> Result<TickOutcome, StoreError> {
        let conn = self.conn()?;
        conn.batch("BEGIN")?;
        let result = tick_in(conn, replica_id, rest_addr, ttl, partitions, decide);
        let result = result.and_then(|outcome| conn.batch("COMMIT").map(|()| outcome));
        if result.is_err() {
            let _ = conn.batch("ROLLBACK");
            self.conn = None;
        }
        result
    }

    /// Gives up every lease of `replica_id` and removes its row (a clean stop: the
    /// others take its partitions at their next renewal instead of after the expiry).
    pub fn release_all(&mut self, replica_id: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let id = replica_id.to_string();
        conn.execute(
            "UPDATE partition_leases SET owner = NULL, expires_at = now() WHERE owner = $1",
            &[&id],
        )?;
        conn.execute("DELETE FROM hub_replicas WHERE replica_id = $1", &[&id])?;
        Ok(())
    }

    /// The live replicas and every lease, read without changing anything (REST).
    pub fn read(&mut self) -> Result<TickOutcome, StoreError> {
        let conn = self.conn()?;
        let result = read_rows(conn);
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

fn tick_in(
    conn: &mut PgConn,
    replica_id: &str,
    rest_addr: &str,
    ttl: Duration,
    partitions: u32,
    decide: impl FnOnce(&[ReplicaRow], &[LeaseRow]) -> LeaseChanges,
) -> Result<TickOutcome, StoreError> {
    let id = replica_id.to_string();
    let addr = rest_addr.to_string();
    let ttl = ttl.as_secs_f64();
    let count = partitions as i32;
    conn.execute(
        "INSERT INTO hub_replicas (replica_id, rest_addr, heartbeat_at, expires_at) \
         VALUES ($1, $2, now(), now() + make_interval(secs => $3)) \
         ON CONFLICT (replica_id) DO UPDATE SET rest_addr = $2, heartbeat_at = now(), \
         expires_at = now() + make_interval(secs => $3)",
        &[&id, &addr, &ttl],
    )?;
    conn.execute(
        "INSERT INTO partition_leases (partition) SELECT generate_series(0, $1 - 1) \
         ON CONFLICT DO NOTHING",
        &[&count],
    )?;
    // Locks every lease row until commit: renewals of all replicas are serialised, so
    // each plans from rows no other replica is changing.
    conn.query(
        "SELECT partition FROM partition_leases ORDER BY partition FOR UPDATE",
        &[],
    )?;
    let before = read_rows(conn)?;
    let changes = decide(&before.replicas, &before.leases);
    let as_i32 = |v: &[u32]| v.iter().map(|p| *p as i32).collect::<Vec<i32>>();
    let (renew, claim, release) = (
        as_i32(&changes.renew),
        as_i32(&changes.claim),
        as_i32(&changes.release),
    );
    if !renew.is_empty() {
        conn.execute(
            "UPDATE partition_leases SET expires_at = now() + make_interval(secs => $3) \
             WHERE partition = ANY($1) AND owner = $2",
            &[&renew, &id, &ttl],
        )?;
    }
    if !claim.is_empty() {
        // Only what is free or expired: the planner decided from these very rows (locked),
        // the condition says so once more.
        conn.execute(
            "UPDATE partition_leases SET owner = $2, epoch = epoch + 1, acquired_at = now(), \
             expires_at = now() + make_interval(secs => $3) \
             WHERE partition = ANY($1) AND (owner IS NULL OR expires_at <= now())",
            &[&claim, &id, &ttl],
        )?;
    }
    if !release.is_empty() {
        conn.execute(
            "UPDATE partition_leases SET owner = NULL, expires_at = now() \
             WHERE partition = ANY($1) AND owner = $2",
            &[&release, &id],
        )?;
    }
    read_rows(conn)
}

fn read_rows(conn: &mut PgConn) -> Result<TickOutcome, StoreError> {
    let replicas = conn
        .query(
            "SELECT replica_id, rest_addr, \
             to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             EXTRACT(EPOCH FROM (now() - heartbeat_at))::float8 \
             FROM hub_replicas WHERE expires_at > now() ORDER BY replica_id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(ReplicaRow {
                replica_id: col(r, 0)?,
                rest_addr: col(r, 1)?,
                started_at: col(r, 2)?,
                heartbeat_age_secs: col(r, 3)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let leases = conn
        .query(LEASES, &[])?
        .iter()
        .map(|r| {
            let partition: i32 = col(r, 0)?;
            Ok(LeaseRow {
                partition: u32::try_from(partition)
                    .map_err(|_| StoreError::Backend(format!("partition {partition}")))?,
                owner: col(r, 1)?,
                epoch: col(r, 2)?,
                expires_in_secs: col(r, 3)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(TickOutcome { replicas, leases })
}

/// How long a listener waits for a notification before it checks whether to stop.
const LISTEN_POLL: Duration = Duration::from_millis(500);
/// Delay before listening again after the connection failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// The channel of outbox inserts (migration 3's `outbox_notify`).
const OUTBOX_CHANNEL: &str = "workbus_outbox";
/// The channel of work changes (migration 3's `work_notify`).
const WORKS_CHANNEL: &str = "workbus_works";
/// The channel of cluster changes (migration 3's `cluster_notify`).
const CLUSTERS_CHANNEL: &str = "workbus_clusters";

/// What changed about a work, as a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkNoticeKind {
    /// The work row was written (created, changed, marked deleting).
    Spec,
    /// A status was stored.
    Status,
    /// The work row was removed (the agent confirmed its deletion).
    Deleted,
}

/// One work change another connection committed (`NOTIFY workbus_works`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkNotice {
    /// What changed.
    pub kind: WorkNoticeKind,
    /// The work's uid.
    pub uid: String,
    /// Its cluster (empty for a status).
    pub cluster: String,
    /// Its name (empty for a status).
    pub name: String,
    /// The generation written.
    pub generation: i64,
    /// The writing connection's `application_name` ([`with_application_name`]): a
    /// replica skips its own changes, which it announced itself.
    pub origin: String,
}

/// Parses a `workbus_works` payload: `kind|uid|cluster|name|generation|origin` (the
/// origin last: it is the only part that is not a name or a number).
pub fn parse_work_notice(payload: &str) -> Option<WorkNotice> {
    let mut parts = payload.splitn(6, '|');
    let kind = match parts.next()? {
        "spec" => WorkNoticeKind::Spec,
        "status" => WorkNoticeKind::Status,
        "deleted" => WorkNoticeKind::Deleted,
        _ => return None,
    };
    let uid = parts.next()?.to_string();
    let cluster = parts.next()?.to_string();
    let name = parts.next()?.to_string();
    let generation = parts.next()?.parse().ok()?;
    let origin = parts.next()?.to_string();
    (!uid.is_empty()).then_some(WorkNotice {
        kind,
        uid,
        cluster,
        name,
        generation,
        origin,
    })
}

/// One cluster change another connection committed (`NOTIFY workbus_clusters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNotice {
    /// The cluster.
    pub name: String,
    /// Whether it was removed (else created or changed).
    pub deleted: bool,
    /// The writing connection's `application_name` (see [`WorkNotice::origin`]).
    pub origin: String,
}

/// Parses a `workbus_clusters` payload: `changed|name|origin` or `deleted|name|origin`.
pub fn parse_cluster_notice(payload: &str) -> Option<ClusterNotice> {
    let mut parts = payload.splitn(3, '|');
    let deleted = match parts.next()? {
        "changed" => false,
        "deleted" => true,
        _ => return None,
    };
    let name = parts.next()?.to_string();
    let origin = parts.next()?.to_string();
    (!name.is_empty()).then_some(ClusterNotice {
        name,
        deleted,
        origin,
    })
}

/// A change another connection committed, for the watch relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A work changed.
    Work(WorkNotice),
    /// A cluster changed.
    Cluster(ClusterNotice),
}

impl Notice {
    /// The writing connection's `application_name`.
    pub fn origin(&self) -> &str {
        match self {
            Notice::Work(n) => &n.origin,
            Notice::Cluster(n) => &n.origin,
        }
    }
}

/// `url` with its connections named `name` (`application_name`, which the change
/// notifications carry as their origin), in either form a store URL may take.
pub fn with_application_name(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if matches!(u.scheme(), "postgres" | "postgresql") => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "application_name")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            u.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("application_name", name);
            u.to_string()
        }
        _ => format!("{url} application_name='{name}'"),
    }
}

/// What a [`Listener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Events were queued in the outbox (or the listener just (re)connected and may
    /// have missed some).
    OutboxQueued,
    /// A work or cluster changed.
    Change(Notice),
}

/// Hears the store's notifications (`workbus_outbox`, `workbus_works`,
/// `workbus_clusters`) on a connection
/// of its own (a thread: the driver blocks) and hands each to `on`; reconnects after
/// failures. Stops when dropped.
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts listening on the database at `url`. The receiver completes once the
    /// first `LISTEN` is in place: changes committed after that are heard.
    pub fn start(
        url: &str,
        on: impl Fn(Heard) + Send + 'static,
    ) -> Result<(Listener, tokio::sync::oneshot::Receiver<()>), StoreError> {
        let connector = Connector::new(url)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (listening, ready) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("store-listener".into())
            .spawn(move || listen(&connector, &flag, &on, listening))
            .map_err(|e| StoreError::Backend(format!("cannot start the listener: {e}")))?;
        Ok((Listener { stop }, ready))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn listen(
    connector: &Connector,
    stop: &AtomicBool,
    on: &dyn Fn(Heard),
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    while !stop.load(Ordering::Relaxed) {
        let mut client = match connector.connect_client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for store notifications; retrying");
                std::thread::sleep(LISTEN_RETRY);
                continue;
            }
        };
        let sql =
            format!("LISTEN {OUTBOX_CHANNEL}; LISTEN {WORKS_CHANNEL}; LISTEN {CLUSTERS_CHANNEL}");
        if let Err(e) = client.batch_execute(&sql) {
            tracing::warn!(error = %e, "cannot listen for store notifications; retrying");
            std::thread::sleep(LISTEN_RETRY);
            continue;
        }
        if let Some(tell) = listening.take() {
            let _ = tell.send(());
        }
        // Events may have been queued while not listening.
        on(Heard::OutboxQueued);
        while !stop.load(Ordering::Relaxed) && !client.is_closed() {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(LISTEN_POLL);
            match postgres::fallible_iterator::FallibleIterator::next(&mut iter) {
                Ok(Some(n)) if n.channel() == OUTBOX_CHANNEL => on(Heard::OutboxQueued),
                Ok(Some(n)) => {
                    let notice = if n.channel() == CLUSTERS_CHANNEL {
                        parse_cluster_notice(n.payload()).map(Notice::Cluster)
                    } else {
                        parse_work_notice(n.payload()).map(Notice::Work)
                    };
                    match notice {
                        Some(notice) => on(Heard::Change(notice)),
                        None => tracing::warn!(
                            channel = n.channel(),
                            payload = n.payload(),
                            "unreadable store notification"
                        ),
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "store notifications lost; listening again");
                    std::thread::sleep(LISTEN_RETRY);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_notices_round_trip_their_payload() {
        let n = parse_work_notice("spec|u-1|edge-1|app|3|workbus-hub/a|b").unwrap();
        assert_eq!(
            n,
            WorkNotice {
                kind: WorkNoticeKind::Spec,
                uid: "u-1".into(),
                cluster: "edge-1".into(),
                name: "app".into(),
                generation: 3,
                origin: "workbus-hub/a|b".into(),
            }
        );
        let s = parse_work_notice("status|u-1|||2|x").unwrap();
        assert_eq!(
            (s.kind, s.cluster.as_str(), s.generation),
            (WorkNoticeKind::Status, "", 2)
        );
        assert!(parse_work_notice("gone|u|c|n|1|o").is_none());
        assert!(parse_work_notice("spec|u|c|n|x|o").is_none());
        assert!(parse_work_notice("spec||c|n|1|o").is_none());
    }

    #[test]
    fn cluster_notices_round_trip_their_payload() {
        let n = parse_cluster_notice("deleted|edge-1|workbus-hub/a").unwrap();
        assert_eq!(
            (n.name.as_str(), n.deleted, n.origin.as_str()),
            ("edge-1", true, "workbus-hub/a")
        );
        assert!(!parse_cluster_notice("changed|edge-1|").unwrap().deleted);
        assert!(parse_cluster_notice("changed||o").is_none());
        assert!(parse_cluster_notice("renamed|a|o").is_none());
    }

    #[test]
    fn the_application_name_is_set_in_either_url_form() {
        assert_eq!(
            with_application_name("postgres://u:p@h:5432/db?application_name=old&x=1", "wb/a"),
            "postgres://u:p@h:5432/db?x=1&application_name=wb%2Fa"
        );
        assert_eq!(
            with_application_name("host=h dbname=db", "wb/a"),
            "host=h dbname=db application_name='wb/a'"
        );
    }
}
