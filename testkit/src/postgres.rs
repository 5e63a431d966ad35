//! PostgreSQL for tests: a [`ThrowawayDatabase`] per test (`CREATE DATABASE
//! workbus_<unique>`, dropped — with its connections — when the value is dropped), on the
//! server named by `WORKBUS_TEST_POSTGRES` (an admin URL, default
//! [`DEFAULT_ADMIN_URL`]). [`postgres_or_skip`] is the one way a test skips, visibly,
//! when no server answers; with `WORKBUS_REQUIRE_POSTGRES=1` (CI) it fails instead.

use std::io::{self, Write};
use std::str::FromStr;
use std::time::Duration;

/// The server tests use when `WORKBUS_TEST_POSTGRES` is unset: the local PostgreSQL
/// with trust authentication for `postgres` on loopback.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The variable naming the admin URL (a role allowed to create databases).
pub const ADMIN_URL_VAR: &str = "WORKBUS_TEST_POSTGRES";

/// The variable that turns "PostgreSQL is unreachable" into a failure.
pub const REQUIRE_VAR: &str = "WORKBUS_REQUIRE_POSTGRES";

/// The admin URL tests use.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// Runs `f` on a thread of its own: the sync driver blocks on a runtime of its own,
/// which it may not do on an async test's thread.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Runs statements on the server at `url` (a connection of its own, closed after).
fn run(url: &str, sql: &str) -> Result<(), String> {
    off_runtime(|| {
        let mut client = connect(url)?;
        client.batch_execute(sql).map_err(|e| format!("{sql}: {e}"))
    })
}

fn connect(url: &str) -> Result<postgres::Client, String> {
    let mut config = postgres::Config::from_str(url).map_err(|e| format!("{url}: {e}"))?;
    config.connect_timeout(Duration::from_secs(3));
    config
        .connect(postgres::NoTls)
        .map_err(|e| format!("PostgreSQL at {} is unreachable: {e}", redacted(url)))
}

/// `url` without its password.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A database of one's own, dropped (connections terminated) with this value.
pub struct ThrowawayDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ThrowawayDatabase {
    /// Creates `workbus_<unique>` on the admin URL's server.
    pub fn create() -> Result<ThrowawayDatabase, String> {
        ThrowawayDatabase::create_on(&admin_url())
    }

    /// Creates `workbus_<unique>` on the server of `admin_url` (a role that may create
    /// databases; benchmarks name it on their command line).
    pub fn create_on(admin_url: &str) -> Result<ThrowawayDatabase, String> {
        let admin_url = admin_url.to_string();
        let name = format!("workbus_{}", crate::unique("db").replace('-', "_"));
        run(&admin_url, &format!("CREATE DATABASE {name}"))?;
        let mut url =
            url::Url::parse(&admin_url).map_err(|e| format!("{}: {e}", redacted(&admin_url)))?;
        url.set_path(&format!("/{name}"));
        Ok(ThrowawayDatabase {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// The database's URL (the admin URL's server and role).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's URL through another address (a fault proxy in front of the
    /// server).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let mut url = url::Url::parse(&self.url).expect("the URL parsed when created");
        let _ = url.set_host(Some(&addr.ip().to_string()));
        let _ = url.set_port(Some(addr.port()));
        url.to_string()
    }

    /// The server's address (host and port of the URL), for a proxy in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = url::Url::parse(&self.url).expect("the URL parsed when created");
        let host = url.host_str().unwrap_or("127.0.0.1");
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", url.port().unwrap_or(5432))
            .parse()
            .expect("a numeric PostgreSQL host for a proxy")
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain client on the database (to inspect what the store wrote); for
    /// synchronous tests (the driver blocks on a runtime of its own).
    pub fn client(&self) -> Result<postgres::Client, String> {
        connect(&self.url)
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        let dropped = run(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        if let Err(e) = dropped {
            let _ = writeln!(io::stderr(), "could not drop database {}: {e}", self.name);
        }
    }
}

/// Whether tests must fail rather than skip without PostgreSQL.
pub fn postgres_required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// For a test that needs PostgreSQL: a fresh database, or — when no server answers —
/// `None` after writing `SKIPPED <test>: PostgreSQL …` straight to stderr (past the
/// harness's capture). With `WORKBUS_REQUIRE_POSTGRES=1` it panics instead.
pub fn postgres_or_skip(test: &str) -> Option<ThrowawayDatabase> {
    match ThrowawayDatabase::create() {
        Ok(db) => Some(db),
        Err(e) => {
            assert!(!postgres_required(), "{test}: {e} ({REQUIRE_VAR} is set)");
            let _ = writeln!(
                io::stderr(),
                "SKIPPED {test}: PostgreSQL: {e} (install and start PostgreSQL, or set \
                 {ADMIN_URL_VAR}=postgres://user@host:port/db)"
            );
            None
        }
    }
}
