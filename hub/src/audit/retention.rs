//! Retention of the audit log by age and/or size (number of records): the oldest
//! records are cut, and the cut is itself recorded in the chain, so `audit verify`
//! still passes on what is left.
//!
//! A cut removes every record before `first_kept` and appends, in the same
//! transaction, a record of type [`RETENTION_TYPE`] whose data says what went
//! (`{"firstSeq", "prevHash", "removed"}` — the first record kept and the hash it links
//! to) followed by a signed checkpoint sealing it. The verifier accepts a log starting
//! after record 1 only when such a record, covered by a valid checkpoint, explains
//! exactly that start ([`Cut`]); a prefix removed any other way is named as removed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbus_schemas::Event;
use workbus_schemas::envelope::set_json_data;
use workbus_schemas::signature::SigningKey;

use super::chain::{AuditHead, AuditRecord};
use super::checkpoint::{checkpoint_entry, checkpoint_event};
use crate::store::writes::{Write, append_audit};
use crate::store::{AuditDirection, AuditEntry, StoreError, StoreTx};

/// The CloudEvent type of a retention cut's record.
pub const RETENTION_TYPE: &str = "io.workbus.audit.retention";

/// What a cut removed: everything before `first_seq`, whose predecessor had `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cut {
    /// The first record kept.
    pub first_seq: u64,
    /// The hash that record links to (the last removed record's).
    pub prev_hash: String,
    /// How many records went.
    pub removed: u64,
}

/// How long and how much of the log is kept (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Records older than this are cut.
    pub max_age: Option<Duration>,
    /// At most this many records are kept (the cut's own two records come on top).
    pub max_records: Option<u64>,
}

impl RetentionPolicy {
    /// Whether anything is ever cut.
    pub fn is_limited(&self) -> bool {
        self.max_age.is_some() || self.max_records.is_some()
    }

    /// The first record to keep, given the head and the first record at or after the
    /// age cutoff (`None`: every record is older); `None` when nothing is cut.
    pub fn first_kept(&self, head: &AuditHead, first_recent: Option<u64>) -> Option<u64> {
        let by_age = self.max_age.map(|_| first_recent.unwrap_or(head.seq + 1));
        let by_size = self
            .max_records
            .map(|n| head.seq.saturating_sub(n).saturating_add(1));
        by_age.into_iter().chain(by_size).max().filter(|&s| s > 1)
    }
}

/// The record of a cut, if `record` is one.
pub fn cut_of(record: &AuditRecord) -> Option<Cut> {
    if record.event_type != RETENTION_TYPE {
        return None;
    }
    let event = record.event_value().ok()?;
    serde_json::from_value(event.get("data")?.clone()).ok()
}

fn cut_event(source: &str, cut: &Cut, at: DateTime<Utc>) -> Result<Event, StoreError> {
    use cloudevents::EventBuilder;
    let mut event = cloudevents::EventBuilderV10::new()
        .id(format!("audit-retention-{}", cut.first_seq))
        .source(source)
        .ty(RETENTION_TYPE)
        .time(at)
        .build()
        .map_err(|e| StoreError::Event(e.to_string()))?;
    set_json_data(
        &mut event,
        serde_json::to_value(cut).map_err(|e| StoreError::Event(e.to_string()))?,
    );
    Ok(event)
}

/// Cuts the records before `first_kept` (whose predecessor's hash is `prev_hash`),
/// records the cut and seals it with a checkpoint; answers how many records went and
/// the checkpoint, or `None` when there was nothing to cut.
pub struct CutAudit {
    /// The first record kept.
    pub first_kept: u64,
    /// The hash of record `first_kept - 1`.
    pub prev_hash: String,
    /// The audit key.
    pub key: std::sync::Arc<SigningKey>,
    /// The hub's source id.
    pub source: String,
    /// The time.
    pub at: DateTime<Utc>,
}

impl Write for CutAudit {
    type Output = Option<(u64, AuditRecord)>;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Option<(u64, AuditRecord)>, StoreError> {
        let removed = tx.remove_audit_before(self.first_kept, self.at)?;
        if removed == 0 {
            return Ok(None);
        }
        let cut = Cut {
            first_seq: self.first_kept,
            prev_hash: self.prev_hash,
            removed,
        };
        let entry = AuditEntry {
            at: self.at,
            direction: AuditDirection::Internal,
            cluster: None,
            resource_id: None,
            event_type: RETENTION_TYPE.to_string(),
            event: cut_event(&self.source, &cut, self.at)?,
            actor: None,
        };
        let record = append_audit(tx, &entry)?;
        let event = checkpoint_event(&self.key, &self.source, &record.head(), self.at)
            .map_err(|e| StoreError::Event(e.to_string()))?;
        let checkpoint = append_audit(tx, &checkpoint_entry(event, self.at))?;
        Ok(Some((removed, checkpoint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_limit_decides_and_record_one_stays_uncut() {
        let head = AuditHead {
            seq: 100,
            hash: String::new(),
        };
        let none = RetentionPolicy::default();
        assert_eq!(none.first_kept(&head, Some(3)), None);
        let size = RetentionPolicy {
            max_records: Some(10),
            ..Default::default()
        };
        assert_eq!(size.first_kept(&head, None), Some(91));
        let age = RetentionPolicy {
            max_age: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert_eq!(age.first_kept(&head, Some(50)), Some(50));
        assert_eq!(age.first_kept(&head, None), Some(101));
        assert_eq!(age.first_kept(&head, Some(1)), None);
        let both = RetentionPolicy {
            max_age: Some(Duration::from_secs(60)),
            max_records: Some(10),
        };
        assert_eq!(both.first_kept(&head, Some(50)), Some(91));
        assert_eq!(both.first_kept(&head, Some(95)), Some(95));
    }
}
