//! Golden data the test crates share.

/// Maestro's published example events (`testkit/fixtures/maestro/`, see its README):
/// `$WORKBUS_FIXTURES` if set (to check against another copy), else the copy in this
/// repository, so the tests need nothing beside the checkout.
pub mod maestro {
    use std::path::PathBuf;

    /// The fixture directory.
    pub fn dir() -> PathBuf {
        if let Some(d) = std::env::var_os("WORKBUS_FIXTURES") {
            return PathBuf::from(d);
        }
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/maestro"))
    }

    /// The bytes of one fixture file; panics naming the path when it cannot be read.
    pub fn read(name: &str) -> Vec<u8> {
        let path = dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
