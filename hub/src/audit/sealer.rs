//! The hub task that seals the audit chain with signed checkpoints
//! ([`super::checkpoint`]): after every [`SealPolicy::every_records`] records, after
//! [`SealPolicy::every`] when anything was appended, at shutdown and before an export.
//! Each checkpoint is a group-committed [`SealCheckpoint`] write, and once durable the
//! anchor file is rewritten. The same task applies retention ([`Sealer::cut`]) once a
//! minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use workbus_schemas::signature::SigningKey;

use super::chain::AuditRecord;
use super::checkpoint::{checkpoint_entry, checkpoint_event, write_anchor};
use super::retention::{CutAudit, RetentionPolicy};
use crate::store::writes::{Write, append_audit};
use crate::store::{AuditQuery, StoreError, StoreHandle, StoreTx};

/// How often retention is applied.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

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
            self.write_anchor(record).await?;
        }
        Ok(made)
    }

    /// Cuts the records `policy` no longer keeps (see [`super::retention`]): the cut
    /// and its checkpoint are appended in the same transaction. Answers how many
    /// records went.
    pub async fn cut(&self, policy: RetentionPolicy) -> Result<u64, StoreError> {
        if !policy.is_limited() {
            return Ok(0);
        }
        let Some(head) = self.store.run(|s| s.audit_head()).await? else {
            return Ok(0);
        };
        let first_recent = match policy.max_age {
            Some(age) => {
                let since =
                    Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                let query = AuditQuery {
                    since: Some(since),
                    limit: 1,
                    ..Default::default()
                };
                let first = self.store.run(move |s| s.audit_records(&query)).await?;
                first.first().map(|r| r.seq)
            }
            None => None,
        };
        let Some(first_kept) = policy.first_kept(&head, first_recent) else {
            return Ok(0);
        };
        // The hash the first kept record links to: the last removed record's.
        let query = AuditQuery {
            after_seq: Some(first_kept.saturating_sub(2)),
            to_seq: Some(first_kept - 1),
            limit: 1,
            ..Default::default()
        };
        let Some(last_removed) = self
            .store
            .run(move |s| s.audit_records(&query))
            .await?
            .pop()
        else {
            return Ok(0); // already cut
        };
        let mut last = self.last.lock().await;
        let made = self
            .store
            .write(CutAudit {
                first_kept,
                prev_hash: last_removed.hash,
                key: self.key.clone(),
                source: self.source.clone(),
                at: Utc::now(),
            })
            .await?;
        let Some((removed, checkpoint)) = made else {
            return Ok(0);
        };
        *last = Some(checkpoint.seq);
        drop(last);
        self.write_anchor(&checkpoint).await?;
        tracing::info!(
            first_kept,
            removed,
            "audit retention: the oldest records were cut"
        );
        Ok(removed)
    }

    async fn write_anchor(&self, checkpoint: &AuditRecord) -> Result<(), StoreError> {
        if let Some(dir) = &self.dir {
            let (dir, event) = (dir.clone(), checkpoint.event.clone());
            let written = tokio::task::spawn_blocking(move || write_anchor(&dir, &event))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            if let Err(e) = written {
                tracing::error!(error = %e, "cannot write the audit anchor file");
            }
        }
        Ok(())
    }

    /// The periodic task: looks at the chain's head once a second and seals it by
    /// `policy`; applies `retention` once a minute. Runs until aborted.
    pub async fn run(self, policy: SealPolicy, retention: RetentionPolicy) {
        let mut sealed_at = tokio::time::Instant::now();
        let mut cut_at = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(policy.every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if retention.is_limited() && cut_at.elapsed() >= RETENTION_INTERVAL {
                cut_at = tokio::time::Instant::now();
                if let Err(e) = self.cut(retention).await {
                    tracing::warn!(error = %e, "cannot apply the audit retention");
                }
            }
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
