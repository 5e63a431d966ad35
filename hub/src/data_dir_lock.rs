//! The data directory's lock: one hub at a time on a directory whose SQLite store it
//! owns. A second `serve` or `quickstart` on the same directory (two terminals, a
//! service and a manual start) fails at start with the holder's process id, instead of
//! both writing one database and publishing from one outbox.
//!
//! An advisory `flock` on `<data-dir>/hub.lock`, held by an open file for the hub's
//! lifetime: the kernel releases it when the process ends however it ends, so a crashed
//! hub never leaves a stale lock. Offline tools (`audit verify --data-dir`, `token
//! --offline`) do not take it: they read, or write through SQLite's own locking.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "hub.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    /// Another hub holds it.
    #[error(
        "data directory {dir} is in use by another hub ({holder}); stop that hub, or give \
         this one another --data-dir"
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as far as the lock file says (`pid N`).
        holder: String,
    },
    /// The lock file could not be created, read or written.
    #[error("lock file {path}: {source}")]
    Io {
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `dir` (creating the directory, private, if missing) and writes
    /// this process's id into the lock file for the next one to name.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DataDirLockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| DataDirLockError::Io {
            path: path.clone(),
            source,
        };
        workbus_process::private_fs::ensure_private_dir(dir).map_err(io)?;
        let mut file = workbus_process::private_fs::create_private_file(&path, false)
            .and_then(|_| File::options().read(true).write(true).open(&path))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // Best effort: the holder may be writing it right now.
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirLockError::InUse {
                    dir: dir.to_owned(),
                    holder: if pid.is_empty() {
                        "its process id is not written yet".to_string()
                    } else {
                        format!("pid {pid}")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        let written = std::fs::read_to_string(data.join(LOCK_FILE)).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        match DataDirLock::acquire(&data) {
            Err(e @ DataDirLockError::InUse { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&format!("pid {}", std::process::id()))
                        && text.contains("another --data-dir"),
                    "{text}"
                );
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(&data).expect("free again once dropped");
    }
}
