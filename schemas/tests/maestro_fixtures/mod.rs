//! Maestro's golden events (`data/`, see its README): `$WORKBUS_FIXTURES` if set (to
//! check against another copy), else the copy in this repository, so the tests need
//! nothing beside the checkout.

use std::path::PathBuf;

/// The fixture directory.
pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("WORKBUS_FIXTURES") {
        return PathBuf::from(d);
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/tests/maestro_fixtures/data"
    ))
}

/// The bytes of one fixture file.
pub fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
