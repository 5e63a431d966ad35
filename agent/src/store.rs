//! The agent's durable local state: the works it holds, what it applied for them and the
//! last status it reported, so that a restarted agent resumes without blind re-applies
//! and reports the truth (it answers resync requests from this state before anything
//! else happens).
//!
//! [`FileStore`] keeps one JSON document per work under `<data-dir>/works/`, each written
//! to a temporary file, synced and renamed over the old one, so a crash at any point
//! leaves either the old or the new record — never a torn one. That is the whole
//! database: no engine, no extra dependency, a few kilobytes of code on a small device.
//! The directories are `0700` and the files `0600` (works may carry Secrets).
//! [`MemoryStore`] serves tests and benchmarks that run thousands of agents in one
//! process.
//!
//! The status outbox ([`crate::outbox`]) is kept beside the works: one file per entry
//! under `<data-dir>/outbox/`, named by its zero-padded id (so the directory lists in
//! push order), written with the same temporary-file-sync-rename discipline and 0600.
//! Delivered entries are unlinked without syncing the directory: an entry a crash brings
//! back is published again byte for byte, which the hub drops as not newer.
//! [`MemoryStore`] keeps no outbox (it would double the memory of thousands of agents);
//! the agent's own in-memory outbox still orders and bounds their statuses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use workbus_process::private_fs;
use workbus_schemas::work::ManifestWork;

use crate::outbox::OutboxEntry;
use crate::reconcile::WorkState;

/// Everything the agent keeps about one work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkRecord {
    /// The work as last accepted from its source (metadata per §5.4, spec).
    pub work: ManifestWork,
    /// What was applied for it and its current status.
    pub state: WorkState,
    /// Generation whose manifests were last applied (0: never).
    #[serde(default)]
    pub applied_generation: i64,
    /// Hash of the last status the broker acknowledged (empty: none reported yet).
    #[serde(default)]
    pub reported_hash: String,
    /// Sequence id of the last status event sent for this work.
    #[serde(default)]
    pub last_sequence_id: String,
}

impl WorkRecord {
    /// The work UID (the CloudEvent `resourceid`).
    pub fn uid(&self) -> &str {
        &self.work.metadata.uid
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem failure.
    #[error("agent store I/O at {path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("agent store encoding: {0}")]
    Encode(String),
}

/// Durable storage of [`WorkRecord`]s.
pub trait AgentStore: Send + Sync + 'static {
    /// Every stored record. Unreadable records are skipped with a log line (and kept on
    /// disk for inspection) rather than stopping the agent.
    fn load(&self) -> Result<Vec<WorkRecord>, StoreError>;
    /// Inserts or replaces a record; durable when this returns.
    fn put(&self, record: &WorkRecord) -> Result<(), StoreError>;
    /// Removes a record; durable when this returns.
    fn remove(&self, uid: &str) -> Result<(), StoreError>;
    /// The source ids known to understand resync digests
    /// (`workbus_schemas::resync_digest`). Kept durably so that a restarted agent uses
    /// the digest form at once instead of relearning it with a full resync.
    fn digest_sources(&self) -> Result<BTreeSet<String>, StoreError>;
    /// Replaces the set returned by [`AgentStore::digest_sources`]; durable when this
    /// returns.
    fn set_digest_sources(&self, sources: &BTreeSet<String>) -> Result<(), StoreError>;
    /// The status outbox entries left by a previous run (any order). Unreadable entries
    /// are skipped with a log line.
    fn outbox_load(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Keeps an outbox entry; durable when this returns.
    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), StoreError>;
    /// Forgets an outbox entry (delivered or compacted away).
    fn outbox_remove(&self, id: u64) -> Result<(), StoreError>;
}

/// In-memory store (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<String, WorkRecord>>,
    digest_sources: Mutex<BTreeSet<String>>,
}

impl AgentStore for MemoryStore {
    fn load(&self) -> Result<Vec<WorkRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default())
    }

    fn put(&self, record: &WorkRecord) -> Result<(), StoreError> {
        if let Ok(mut r) = self.records.lock() {
            r.insert(record.uid().to_string(), record.clone());
        }
        Ok(())
    }

    fn remove(&self, uid: &str) -> Result<(), StoreError> {
        if let Ok(mut r) = self.records.lock() {
            r.remove(uid);
        }
        Ok(())
    }

    fn digest_sources(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .digest_sources
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default())
    }

    fn set_digest_sources(&self, sources: &BTreeSet<String>) -> Result<(), StoreError> {
        if let Ok(mut s) = self.digest_sources.lock() {
            *s = sources.clone();
        }
        Ok(())
    }

    fn outbox_load(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Vec::new())
    }

    fn outbox_put(&self, _entry: &OutboxEntry) -> Result<(), StoreError> {
        Ok(())
    }

    fn outbox_remove(&self, _id: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One file per work, replaced atomically, plus `<data-dir>/digest-sources.json`.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    data_dir: PathBuf,
    outbox_dir: PathBuf,
}

impl FileStore {
    /// Opens (creating) the store under `data_dir/works` and `data_dir/outbox`. The
    /// data directory, `works` and `outbox` are private (`0700`) and every file in them
    /// `0600` (applied works and their statuses may hold Secrets): created so, and
    /// tightened (with a warning) when found looser.
    pub fn open(data_dir: &Path) -> Result<FileStore, StoreError> {
        let dir = data_dir.join("works");
        let outbox_dir = data_dir.join("outbox");
        for d in [data_dir, dir.as_path(), outbox_dir.as_path()] {
            let tightened = private_fs::ensure_private_dir(d).map_err(|e| io(d, e))?;
            warn_tightened(d, tightened);
        }
        for d in [data_dir, dir.as_path(), outbox_dir.as_path()] {
            let entries = std::fs::read_dir(d).map_err(|e| io(d, e))?;
            for entry in entries {
                let path = entry.map_err(|e| io(d, e))?.path();
                let tightened = private_fs::tighten_file(&path).map_err(|e| io(&path, e))?;
                warn_tightened(&path, tightened);
            }
        }
        Ok(FileStore {
            dir,
            data_dir: data_dir.to_path_buf(),
            outbox_dir,
        })
    }

    fn outbox_path(&self, id: u64) -> PathBuf {
        self.outbox_dir.join(format!("{id:020}.json"))
    }

    fn digest_sources_path(&self) -> PathBuf {
        self.data_dir.join("digest-sources.json")
    }

    fn path_of(&self, uid: &str) -> PathBuf {
        // UIDs come from the network: keep only characters that are safe in a file name.
        let safe: String = uid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }
}

/// Logs a path whose mode [`private_fs`] had to tighten.
pub(crate) fn warn_tightened(path: &Path, tightened: private_fs::Tightened) {
    if let private_fs::Tightened::From(mode) = tightened {
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:o}"),
            "tightened the permissions of an agent data path (it was readable by others)"
        );
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl AgentStore for FileStore {
    fn load(&self) -> Result<Vec<WorkRecord>, StoreError> {
        let mut records = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io(&self.dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue; // leftovers of an interrupted write
            }
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            match serde_json::from_slice::<WorkRecord>(&bytes) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping unreadable work record")
                }
            }
        }
        records.sort_by(|a, b| a.uid().cmp(b.uid()));
        Ok(records)
    }

    fn put(&self, record: &WorkRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomically(&self.path_of(record.uid()), &bytes)
    }

    fn remove(&self, uid: &str) -> Result<(), StoreError> {
        let path = self.path_of(uid);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn digest_sources(&self) -> Result<BTreeSet<String>, StoreError> {
        let path = self.digest_sources_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // Only an optimisation is lost: the agent relearns it at the next resync.
                tracing::error!(path = %path.display(), error = %e, "ignoring unreadable digest sources");
                BTreeSet::new()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn set_digest_sources(&self, sources: &BTreeSet<String>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(sources).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomically(&self.digest_sources_path(), &bytes)
    }

    fn outbox_load(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let dir = &self.outbox_dir;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue; // leftovers of an interrupted write
            }
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            match serde_json::from_slice::<StoredOutboxEntry>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(OutboxEntry::try_from)
            {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping unreadable outbox entry")
                }
            }
        }
        Ok(entries)
    }

    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&StoredOutboxEntry::from(entry))
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomically(&self.outbox_path(entry.id), &bytes)
    }

    fn outbox_remove(&self, id: u64) -> Result<(), StoreError> {
        let path = self.outbox_path(id);
        match std::fs::remove_file(&path) {
            // No directory sync: see the module documentation.
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }
}

/// An [`OutboxEntry`] as the file store writes it: the message's payload in base64 (it
/// is bytes; in binary mode usually JSON, but not necessarily).
#[derive(Serialize, Deserialize)]
struct StoredOutboxEntry {
    id: u64,
    key: String,
    hash: String,
    sequence_id: String,
    topic: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    user_properties: Vec<(String, String)>,
    payload: String,
}

impl From<&OutboxEntry> for StoredOutboxEntry {
    fn from(e: &OutboxEntry) -> Self {
        use base64::Engine;
        StoredOutboxEntry {
            id: e.id,
            key: e.key.clone(),
            hash: e.hash.clone(),
            sequence_id: e.sequence_id.clone(),
            topic: e.message.topic.clone(),
            content_type: e.message.content_type.clone(),
            user_properties: e.message.user_properties.clone(),
            payload: base64::engine::general_purpose::STANDARD.encode(&e.message.payload),
        }
    }
}

impl TryFrom<StoredOutboxEntry> for OutboxEntry {
    type Error = String;

    fn try_from(s: StoredOutboxEntry) -> Result<Self, String> {
        use base64::Engine;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(s.payload.as_bytes())
            .map_err(|e| format!("payload: {e}"))?;
        Ok(OutboxEntry {
            id: s.id,
            key: s.key,
            hash: s.hash,
            sequence_id: s.sequence_id,
            message: workbus_schemas::mqtt::MqttMessage {
                topic: s.topic,
                content_type: s.content_type,
                user_properties: s.user_properties,
                payload,
                publisher: None,
            },
        })
    }
}

/// Writes `bytes` to a temporary file, syncs it and renames it over `path` (then syncs
/// the directory), so a crash leaves either the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    // 0600 from the start: the renamed file keeps the mode.
    let mut f = private_fs::create_private_file(&tmp, true).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Makes a rename or unlink in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use workbus_schemas::work::{ManifestWorkSpec, ObjectMeta};

    fn record(uid: &str, generation: i64) -> WorkRecord {
        let meta = ObjectMeta {
            uid: uid.into(),
            name: "w".into(),
            namespace: "c".into(),
            generation,
            ..ObjectMeta::default()
        };
        WorkRecord {
            work: ManifestWork::new(meta, ManifestWorkSpec::default()),
            state: WorkState::default(),
            applied_generation: generation,
            reported_hash: "h".into(),
            last_sequence_id: "1".into(),
        }
    }

    #[test]
    fn file_store_survives_reopen_and_skips_garbage() {
        let dir = std::env::temp_dir().join(format!("workbus-agent-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FileStore::open(&dir).unwrap();
        store.put(&record("a/../b", 1)).unwrap();
        store.put(&record("c", 2)).unwrap();
        store.put(&record("c", 3)).unwrap();
        std::fs::write(dir.join("works/junk.json"), b"{not json").unwrap();
        std::fs::write(dir.join("works/half.json.tmp"), b"{").unwrap();
        let reopened = FileStore::open(&dir).unwrap();
        let loaded = reopened.load().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[1].work.metadata.generation, 3);
        reopened.remove("c").unwrap();
        reopened.remove("c").unwrap();
        assert_eq!(reopened.load().unwrap().len(), 1);
        assert!(reopened.digest_sources().unwrap().is_empty());
        let sources: BTreeSet<String> = ["hub-1".to_string()].into();
        reopened.set_digest_sources(&sources).unwrap();
        assert_eq!(
            FileStore::open(&dir).unwrap().digest_sources().unwrap(),
            sources
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_store_keeps_the_outbox_private_and_across_reopen() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = FileStore::open(tmp.path()).unwrap();
        let entry = |id: u64| OutboxEntry {
            id,
            key: "w".into(),
            hash: format!("h{id}"),
            sequence_id: id.to_string(),
            message: workbus_schemas::mqtt::MqttMessage {
                topic: "sources/s/clusters/c/agentevents".into(),
                content_type: Some("application/json".into()),
                user_properties: vec![("ce-id".into(), id.to_string())],
                payload: vec![0, 159, 146, 150, b'{'],
                publisher: None,
            },
        };
        for id in [3, 1, 2] {
            store.outbox_put(&entry(id)).unwrap();
        }
        store.outbox_remove(2).unwrap();
        store.outbox_remove(2).unwrap();
        std::fs::write(tmp.path().join("outbox/junk.json"), b"{").unwrap();
        let mode = std::fs::metadata(tmp.path().join("outbox").join(format!("{:020}.json", 1)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut loaded = FileStore::open(tmp.path()).unwrap().outbox_load().unwrap();
        loaded.sort_by_key(|e| e.id);
        assert_eq!(loaded, vec![entry(1), entry(3)]);
    }
}
