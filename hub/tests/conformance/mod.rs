//! The backends the conformance suite runs on, and the suite's cases.

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

/// Every backend of the hub, each on a fresh location.
pub fn backends() -> Vec<Box<dyn Backend>> {
    vec![Box::new(Sqlite(tempfile::tempdir().unwrap()))]
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
