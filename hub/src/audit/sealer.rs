//! The hub task that seals the audit chain with signed checkpoints
//! ([`super::checkpoint`]): after every [`SealPolicy::every_records`] records, after
//! [`SealPolicy::every`] when anything was appended, at shutdown and before an export.
//! Each checkpoint is a group-committed [`SealCheckpoint`] write, and once durable the
//! anchor file is rewritten.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use workbus_schemas::signature::SigningKey;

use super::chain::AuditRecord;
use super::checkpoint::{checkpoint_entry, checkpoint_event, write_anchor};
use crate::store::writes::{Write, append_audit};
use crate::store::{StoreError, StoreHandle, StoreTx};

/// When checkpoints are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// At most this many records stay unsealed.
    pub every_records: u64,
    /// Records wait at most this long for a checkpoint.
    pub every: Duration,
}

impl Default for SealPolicy {
    fn default() -> Self {
        SealPolicy {
            every_records: crate::defaults::AUDIT_CHECKPOINT_RECORDS,
            every: crate::defaults::AUDIT_CHECKPOINT_INTERVAL,
        }
    }
}

/// Appends a checkpoint sealing the chain's head, unless the head is `unless_head`
/// (the previous checkpoint itself: nothing to seal) or the log is empty.
pub struct SealCheckpoint {
    /// The audit key.
    pub key: Arc<SigningKey>,
    /// The hub's source id (the checkpoint event's `source`).
    pub source: String,
    /// The time.
    pub at: DateTime<Utc>,
    /// The previous checkpoint's own sequence number.
    pub unless_head: Option<u64>,
}

impl Write for SealCheckpoint {
    type Output = Option<AuditRecord>;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Option<AuditRecord>, StoreError> {
        let Some(head) = tx.audit_head()? else {
            return Ok(None);
        };
        if Some(head.seq) == self.unless_head {
            return Ok(None);
        }
        let event = checkpoint_event(&self.key, &self.source, &head, self.at)
            .map_err(|e| StoreError::Event(e.to_string()))?;
        append_audit(tx, &checkpoint_entry(event, self.at)).map(Some)
    }
}

/// Seals the chain for one hub: shared by the periodic task, shutdown and export.
#[derive(Clone)]
pub struct Sealer {
    store: StoreHandle,
    key: Arc<SigningKey>,
    source: String,
    /// Where the anchor file goes (the data directory).
    dir: Option<PathBuf>,
    /// The newest checkpoint's own sequence number.
    last: Arc<Mutex<Option<u64>>>,
}

impl Sealer {
    /// A sealer writing the anchor file into `dir`.
    pub fn new(
        store: StoreHandle,
        key: Arc<SigningKey>,
        source: String,
        dir: Option<PathBuf>,
    ) -> Self {
        Sealer {
            store,
            key,
            source,
            dir,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// The public key checkpoints verify with.
    pub fn public_key(&self) -> workbus_schemas::signature::VerifyingKey {
        self.key.verifying_key()
    }

    /// What the anchor file's checkpoint seals, its signature checked against this
    /// hub's key (`None` without a data directory or before the first checkpoint).
    pub async fn anchor(&self) -> Result<Option<super::checkpoint::Sealed>, StoreError> {
        let Some(dir) = self.dir.clone() else {
            return Ok(None);
        };
        let key = self.key.verifying_key();
        tokio::task::spawn_blocking(move || read_checked_anchor(&dir, &key))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// Seals the head now unless it is already sealed; answers the checkpoint made.
    pub async fn seal(&self) -> Result<Option<AuditRecord>, StoreError> {
        let mut last = self.last.lock().await;
        let made = self
            .store
            .write(SealCheckpoint {
                key: self.key.clone(),
                source: self.source.clone(),
                at: Utc::now(),
                unless_head: *last,
            })
            .await?;
        if let Some(record) = &made {
            *last = Some(record.seq);
            if let Some(dir) = &self.dir {
                let (dir, event) = (dir.clone(), record.event.clone());
                let written = tokio::task::spawn_blocking(move || write_anchor(&dir, &event))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                if let Err(e) = written {
                    tracing::error!(error = %e, "cannot write the audit anchor file");
                }
            }
        }
        Ok(made)
    }

    /// The periodic task: looks at the chain's head once a second and seals it by
    /// `policy`. Runs until aborted.
    pub async fn run(self, policy: SealPolicy) {
        let mut sealed_at = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(policy.every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let head = match self.store.run(|s| s.audit_head()).await {
                Ok(Some(head)) => head.seq,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the audit head");
                    continue;
                }
            };
            let last = (*self.last.lock().await).unwrap_or(0);
            let waiting = head.saturating_sub(last);
            if waiting == 0 {
                continue;
            }
            if waiting >= policy.every_records || sealed_at.elapsed() >= policy.every {
                match self.seal().await {
                    Ok(_) => sealed_at = tokio::time::Instant::now(),
                    Err(e) => tracing::warn!(error = %e, "cannot seal the audit log"),
                }
            }
        }
    }
}

/// What the anchor file in `dir` seals, its signature checked against `key`. A file that
/// does not read or verify is an error: it is the evidence of the log's length.
pub fn read_checked_anchor(
    dir: &std::path::Path,
    key: &workbus_schemas::signature::VerifyingKey,
) -> Result<Option<super::checkpoint::Sealed>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: super::checkpoint::ANCHOR_FILE,
        reason,
    };
    match super::checkpoint::read_anchor(dir).map_err(|e| corrupt(e.to_string()))? {
        None => Ok(None),
        Some(event) => super::checkpoint::check(&event, key)
            .map(Some)
            .map_err(|e| corrupt(e.to_string())),
    }
}
