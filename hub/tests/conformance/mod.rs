//! The backends the conformance suite runs on, and the suite's cases.

pub mod audit;
pub mod cases;
pub mod placement;
pub mod registration;
pub mod replicaset;

use std::sync::Arc;

use workbus_hub::StoreSettings;
use workbus_hub::store::Store;

/// A backend under test: a fresh, empty storage location that can be opened again
/// (to check durability across a restart).
pub trait Backend {
    /// Its name in test output.
    fn name(&self) -> &'static str;
    /// Opens a store on this backend's location (the same data every time).
    fn open(&self) -> Arc<dyn Store>;
    /// Every byte the backend keeps at rest (to check what is stored in clear).
    fn bytes_at_rest(&self) -> Vec<u8>;
}

/// Every backend of the hub, each on a fresh location. PostgreSQL joins when a server
/// answers (a throwaway database per call); otherwise a `SKIPPED` line says so, and
/// with `WORKBUS_REQUIRE_POSTGRES=1` the suite fails instead.
pub fn backends() -> Vec<Box<dyn Backend>> {
    let mut list: Vec<Box<dyn Backend>> = vec![Box::new(Sqlite(tempfile::tempdir().unwrap()))];
    if let Some(db) = workbus_testkit::postgres_or_skip("store conformance on PostgreSQL") {
        list.push(Box::new(Postgres {
            db,
            dir: tempfile::tempdir().unwrap(),
        }));
    }
    list
}

/// The names of every backend the suite must cover here: PostgreSQL only where a
/// server answers (see [`backends`]).
pub fn expected_backends() -> Vec<&'static str> {
    match workbus_testkit::ThrowawayDatabase::create() {
        Ok(_) => vec!["sqlite", "postgres"],
        Err(_) if !workbus_testkit::postgres::postgres_required() => vec!["sqlite"],
        Err(e) => panic!("PostgreSQL is required: {e}"),
    }
}

/// PostgreSQL in a throwaway database; the hub's own files (the key file) in a
/// temporary directory.
struct Postgres {
    db: workbus_testkit::ThrowawayDatabase,
    dir: tempfile::TempDir,
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn open(&self) -> Arc<dyn Store> {
        workbus_hub::store::open(&StoreSettings::postgres(self.db.url(), self.dir.path())).unwrap()
    }

    /// Every value of every column of every table, as the server returns it (text as
    /// its bytes, `bytea` as its bytes), and the key file.
    fn bytes_at_rest(&self) -> Vec<u8> {
        let mut client = self.db.client().unwrap();
        let columns = client
            .query(
                "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT \
                 FROM information_schema.columns WHERE table_schema = 'public'",
                &[],
            )
            .unwrap();
        let mut bytes = Vec::new();
        for c in columns {
            let (table, column, ty): (String, String, String) = (c.get(0), c.get(1), c.get(2));
            let sql = if ty == "bytea" {
                format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
            } else {
                format!(
                    "SELECT convert_to(\"{column}\"::TEXT, 'UTF8') FROM \"{table}\" \
                     WHERE \"{column}\" IS NOT NULL"
                )
            };
            for row in client.query(&sql, &[]).unwrap() {
                bytes.extend(row.get::<_, Vec<u8>>(0));
            }
        }
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }
}

/// The embedded SQLite backend in a temporary directory.
struct Sqlite(tempfile::TempDir);

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn open(&self) -> Arc<dyn Store> {
        workbus_hub::store::open(&StoreSettings::sqlite(self.0.path())).unwrap()
    }

    fn bytes_at_rest(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.0.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }
}
