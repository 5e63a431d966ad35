//! # Private files and directories
//!
//! What hub and agent keep on disk — the hub's database and key file, the agent's
//! applied works, a simulated cluster's snapshot — may hold Secrets, so it is readable
//! by its owner only: directories `0700`, files `0600`. These helpers create paths
//! that way and tighten existing ones that are looser; they return whether they
//! changed a mode, so the caller can log it (this crate does not log). On non-Unix
//! systems modes do not exist and every helper only creates.

use std::io;
use std::path::Path;

/// The mode of a private directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of a private file.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// What a helper did to an existing path's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tightened {
    /// The mode was already private (or the path was just created private).
    No,
    /// The mode was looser and was changed; it was this.
    From(u32),
}

/// Whether `mode` gives any access beyond `private` (group or other bits).
pub fn is_looser(mode: u32, private: u32) -> bool {
    mode & 0o777 & !private != 0
}

/// Creates `dir` (and its parents) if missing, with mode `0700` for the directories it
/// creates, and tightens `dir` itself to `0700` if it is looser.
pub fn ensure_private_dir(dir: &Path) -> io::Result<Tightened> {
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR_MODE);
        builder.create(dir)?;
    }
    tighten(dir, PRIVATE_DIR_MODE)
}

/// Tightens the existing file `path` to `0600` if it is looser; `No` when it does not
/// exist.
pub fn tighten_file(path: &Path) -> io::Result<Tightened> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => tighten(path, PRIVATE_FILE_MODE),
        Ok(_) => Ok(Tightened::No),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Tightened::No),
        Err(e) => Err(e),
    }
}

/// Opens `path` for writing, creating it with mode `0600` if missing (truncating it
/// when `truncate`), and tightens it if it existed looser.
pub fn create_private_file(path: &Path, truncate: bool) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
    let file = options.open(path)?;
    tighten(path, PRIVATE_FILE_MODE)?;
    Ok(file)
}

#[cfg(unix)]
fn tighten(path: &Path, private: u32) -> io::Result<Tightened> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if !is_looser(mode, private) {
        return Ok(Tightened::No);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
    Ok(Tightened::From(mode))
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _private: u32) -> io::Result<Tightened> {
    Ok(Tightened::No)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_and_tightens_looser() {
        let tmp = tempfile_dir();
        let dir = tmp.join("a/b");
        assert_eq!(ensure_private_dir(&dir).unwrap(), Tightened::No);
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ensure_private_dir(&dir).unwrap(), Tightened::From(0o755));
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("f");
        drop(create_private_file(&file, true).unwrap());
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten_file(&file).unwrap(), Tightened::From(0o644));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(tighten_file(&dir.join("missing")).unwrap(), Tightened::No);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn looser_means_group_or_other_bits() {
        assert!(!is_looser(0o600, 0o600));
        assert!(!is_looser(0o400, 0o600));
        assert!(is_looser(0o640, 0o600));
        assert!(is_looser(0o701, 0o700));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "workbus-private-fs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }
}
