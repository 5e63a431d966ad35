//! Finds Maestro's golden events (`shared/fixtures/maestro/`, kept next to the repository
//! and never copied into it): `$WORKBUS_FIXTURES` if set, else the first
//! `shared/fixtures/maestro` found walking up from this crate.

use std::path::PathBuf;

/// The fixture directory.
pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("WORKBUS_FIXTURES") {
        return PathBuf::from(d);
    }
    let mut at = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(p) = at {
        let candidate = p.join("shared/fixtures/maestro");
        if candidate.is_dir() {
            return candidate;
        }
        at = p.parent();
    }
    panic!(
        "Maestro fixtures not found: set WORKBUS_FIXTURES or keep `shared/fixtures/maestro` in a parent directory of {}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The bytes of one fixture file.
pub fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
