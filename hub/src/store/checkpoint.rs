//! WAL checkpoints off the commit path.
//!
//! In WAL mode SQLite copies committed pages back into the database file at a
//! checkpoint. By default the connection that commits runs it, every ~1,000 pages, with
//! two `fsync`s — inside the group commit that REST writers and the status path are
//! waiting on. Here a background thread with its own connection runs a `PASSIVE`
//! checkpoint twice a second (it never blocks the writer, and readers and the writer
//! keep going while it copies); the writer's automatic checkpoint stays as a safety net
//! at a much higher threshold, so the WAL cannot grow without bound if this thread
//! falls behind or fails.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How often the background checkpoint runs.
const INTERVAL: Duration = Duration::from_millis(500);
/// The writer's own automatic checkpoint threshold, in pages (the safety net).
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The background checkpoint thread; stops and is joined when dropped.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (already in WAL mode).
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Runs until the store is dropped (sender gone) or says stop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // The pragma answers with a row (busy, log, checkpointed) nobody needs.
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "background WAL checkpoint failed; the writer's own checkpoint still bounds the WAL");
                    }
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
