//! Connections of the PostgreSQL store: one [`PgConn`] (a `postgres` client with its
//! prepared statements), the [`Connector`] that opens them from the store URL, the
//! bounded [`ReaderPool`], and how driver errors become [`StoreError`]s — a server that
//! cannot be reached (or went away) is [`StoreError::Unavailable`], naming host and
//! port, so the REST API answers 503 and the next call connects again.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::types::{FromSql, ToSql};
use postgres::{Client, NoTls, Row, Statement};

use super::StoreError;

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`): a hub start or a request fails within it rather than hanging.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; the hot paths use a few dozen. Past this
/// the cache is emptied (statements built from filters could otherwise grow it).
const STATEMENT_CACHE: usize = 256;

/// Opens connections to one database, described by a `postgres://` URL.
pub(super) struct Connector {
    config: postgres::Config,
    /// `host:port` for messages (never the password).
    server: String,
}

impl Connector {
    /// Parses a store URL (`postgres://user[:password]@host[:port]/database?…`, libpq's
    /// key/value form too). The password never appears in errors or logs.
    pub(super) fn new(url: &str) -> Result<Connector, StoreError> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("workbus-hub");
        }
        // A server that vanished without closing the socket is noticed by keepalives
        // rather than by a request that never returns.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let server = server_name(&config);
        Ok(Connector { config, server })
    }

    /// `host:port` of the server, for messages.
    pub(super) fn server(&self) -> &str {
        &self.server
    }

    /// Opens a connection; [`StoreError::Unavailable`] when the server cannot be reached.
    pub(super) fn connect(&self) -> Result<PgConn, StoreError> {
        let client = blocking(|| self.config.connect(NoTls)).map_err(|e| self.error(e))?;
        let mut conn = PgConn {
            client: Some(client),
            statements: HashMap::new(),
            server: self.server.clone(),
        };
        // Durability is the server's default; said explicitly so that a database or
        // role configured with `synchronous_commit = off` cannot weaken it: a write is
        // answered only after its COMMIT is flushed. A stopped hub's transaction (and the
        // writers' lock it holds) is ended by the server after
        // `STALLED_TRANSACTION_TIMEOUT`.
        conn.batch(&format!(
            "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = {}",
            super::postgres::STALLED_TRANSACTION_TIMEOUT.as_millis()
        ))?;
        Ok(conn)
    }

    /// Opens a plain client (no prepared statements, no settings), for a connection
    /// that only LISTENs ([`super::postgres_leases::Listener`]).
    pub(super) fn connect_client(&self) -> Result<Client, StoreError> {
        blocking(|| self.config.connect(NoTls)).map_err(|e| self.error(e))
    }

    fn error(&self, e: postgres::Error) -> StoreError {
        map_error(&self.server, e)
    }
}

/// `host:port` (the first of each when several are configured).
fn server_name(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// A driver error as a [`StoreError`]: a lost or refused connection (and the server
/// shutting down) is [`StoreError::Unavailable`]; anything else is a backend failure.
fn map_error(server: &str, e: postgres::Error) -> StoreError {
    let unavailable = e.is_closed()
        || e.code().is_some_and(|c| {
            let code = c.code();
            // Class 08: connection exception; 57P01..57P03: shutdown, cannot connect now.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        })
        || (e.as_db_error().is_none() && is_io(&e));
    if unavailable {
        return StoreError::Unavailable {
            server: server.to_string(),
            reason: error_text(&e),
        };
    }
    StoreError::Backend(error_text(&e))
}

/// Whether the error comes from the socket (refused, reset, timed out).
fn is_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    // `connect_timeout` elapsing has no io source; its text is the driver's.
    e.to_string().contains("timeout") || e.to_string().contains("timed out")
}

/// The driver's message with the server's (a `DbError`'s text is in its source).
fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// Runs `f`, which blocks on the driver's own runtime, wherever the caller is. The
/// [`Store`](super::Store) is meant for blocking threads (the committer, the blocking
/// pool), but a synchronous caller on an async worker thread must not crash the hub:
/// `postgres` would panic there ("cannot start a runtime from within a runtime").
/// On a multi-thread worker `block_in_place` hands the worker's tasks to another thread
/// first; on a current-thread runtime `f` runs on a scoped thread; elsewhere (the
/// blocking pool, plain threads) it just runs.
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

/// Parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection with its prepared statements. Everything the store runs goes
/// through [`PgConn::query`]/[`PgConn::execute`], so each SQL text is parsed and planned
/// once per connection (the hot paths run the same few statements thousands of times).
pub(super) struct PgConn {
    /// Always `Some` until dropped (taken so the drop can run off the async threads).
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    server: String,
}

impl PgConn {
    /// Whether the connection is gone (then it is replaced, not reused).
    pub(super) fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.client.as_mut().ok_or_else(|| StoreError::Unavailable {
            server: self.server.clone(),
            reason: "connection closed".into(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        let client = self.client()?;
        let s = blocking(|| client.prepare(sql)).map_err(|e| map_error(&self.server, e))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Rows of a statement.
    pub(super) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        let client = self.client()?;
        blocking(|| client.query(&s, params)).map_err(|e| map_error(&self.server, e))
    }

    /// At most one row.
    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Exactly one row.
    pub(super) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Backend(format!("no row from {sql}")))
    }

    /// Runs a statement; how many rows it changed.
    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        let client = self.client()?;
        blocking(|| client.execute(&s, params)).map_err(|e| map_error(&self.server, e))
    }

    /// Runs statements without parameters in one round trip (transaction control,
    /// migrations).
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        blocking(|| client.batch_execute(sql)).map_err(|e| map_error(&self.server, e))
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Closing says goodbye to the server through the driver's runtime, which must
        // not happen on an async worker (the store may be dropped on one).
        if let Some(client) = self.client.take() {
            blocking(move || drop(client));
        }
    }
}

/// Column `i` of `row`; a type mismatch is a backend error, not a panic.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Backend(format!("column {i}: {e}")))
}

/// The connections reads use: at most `max`, opened on demand, a broken one dropped.
pub(super) struct ReaderPool {
    state: Mutex<PoolState>,
    returned: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<PgConn>,
    /// Connections out of the pool plus idle ones.
    open: usize,
}

/// How long a read waits for a free connection before it fails.
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);

impl ReaderPool {
    pub(super) fn new(max: usize) -> ReaderPool {
        ReaderPool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
        }
    }

    /// Runs `f` on a pooled connection (opened with `connector` when none is idle and
    /// fewer than `max` are open). A connection that broke is not returned. An idle
    /// connection that the server or the network closed shows only when used (after an
    /// outage, every pooled connection is such): a read that failed on one runs again,
    /// on the next, up to a fresh one — reads change nothing, so running one again is
    /// safe.
    pub(super) fn with<T>(
        &self,
        connector: &Connector,
        mut f: impl FnMut(&mut PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            let (conn, reused) = self.checkout(connector)?;
            match self.run(conn, &mut f) {
                Err(StoreError::Unavailable { .. }) if reused => continue,
                result => return result,
            }
        }
    }

    /// Runs `f` on `conn`, then returns it to the pool unless it broke.
    fn run<T>(
        &self,
        mut conn: PgConn,
        f: &mut impl FnMut(&mut PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = f(&mut conn);
        let mut state = self.lock()?;
        if conn.is_closed() || matches!(result, Err(StoreError::Unavailable { .. })) {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.returned.notify_one();
        result
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, PoolState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("store reader pool lock poisoned".into()))
    }

    /// A connection, and whether it was idle in the pool (`false`: opened now).
    fn checkout(&self, connector: &Connector) -> Result<(PgConn, bool), StoreError> {
        let deadline = std::time::Instant::now() + CHECKOUT_WAIT;
        let mut state = self.lock()?;
        loop {
            while let Some(conn) = state.idle.pop() {
                if !conn.is_closed() {
                    return Ok((conn, true));
                }
                state.open -= 1;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return connector.connect().map(|c| (c, false)).inspect_err(|_| {
                    if let Ok(mut state) = self.lock() {
                        state.open -= 1;
                    }
                    // A waiter may open the connection this attempt could not.
                    self.returned.notify_one();
                });
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(StoreError::Backend(
                    "no store read connection became free".into(),
                ));
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .map_err(|_| StoreError::Backend("store reader pool lock poisoned".into()))?
                .0;
        }
    }
}
