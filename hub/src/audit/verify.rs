//! `audit verify`: recomputes the hash chain and the checkpoint signatures over records
//! in chain order and names the first bad record. Pure and streaming (records are
//! pushed one at a time, so a log of any length verifies in constant memory); the same
//! code checks a database (`Store::audit_records`) and an exported file.
//!
//! What each tampering looks like, and the problem named (tests:
//! `hub/tests/audit.rs`):
//! - a record **modified** in place: its hash no longer matches its fields
//!   ([`Problem::Modified`]);
//! - a record **removed**: a gap in `seq` ([`Problem::Removed`]), or, if the later
//!   records were renumbered, a record linking past its predecessor; a log starting
//!   after record 1 needs a signed retention cut naming that start (`retention`);
//! - a record **inserted** (later ones renumbered): the next record links past it
//!   ([`Problem::Inserted`] names the inserted one);
//! - records **reordered**: a record links to a record that comes later
//!   ([`Problem::Reordered`]);
//! - history rewritten with recomputed hashes: the next checkpoint seals another hash
//!   ([`Problem::CheckpointMismatch`]) or, re-signed, is not signed by the hub's key
//!   ([`Problem::CheckpointSignature`]);
//! - a **truncated tail**: the chain ends before the record the newest known
//!   checkpoint (the anchor file) seals ([`Problem::Truncated`]); an exported file must
//!   end with a checkpoint, so a cut file shows an unsigned tail.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use workbus_schemas::signature::VerifyingKey;

use super::chain::{AuditHead, AuditRecord, GENESIS};
use super::checkpoint::{self, Sealed};
use super::retention;

/// How far back a link may point and still be classified (records kept in memory).
const RECENT: usize = 4096;
/// How far ahead a broken link is looked for among later records' hashes.
const LOOKAHEAD: usize = 4096;

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Problem {
    /// The record's hash does not match its fields: it was modified.
    Modified,
    /// Records are missing from this one on, up to `next` (the first present again),
    /// and no retention cut explains it.
    Removed {
        /// The sequence number present after the gap.
        next: u64,
    },
    /// This record does not belong: the next one links past it, to `links_to`.
    Inserted {
        /// The record the next one links to.
        links_to: u64,
    },
    /// This record links to a record that comes later: records were reordered.
    Reordered,
    /// This record links to no record of the log.
    BrokenLink,
    /// A sequence number appears twice, or goes backwards.
    Duplicate,
    /// A checkpoint's signature does not hold (another key, forged, malformed).
    CheckpointSignature {
        /// Why.
        reason: String,
    },
    /// A checkpoint seals another record or hash than the chain has: the records
    /// since the previous checkpoint were rewritten.
    CheckpointMismatch {
        /// What it seals.
        sealed_seq: u64,
    },
    /// The log ends before the record the newest known checkpoint seals.
    Truncated {
        /// The record the checkpoint seals (the log ends before it or differs there).
        sealed_seq: u64,
    },
    /// The records from this one on are not covered by a checkpoint, where one was
    /// required (an exported file ends with one): the file was cut short or extended.
    UnsignedTail {
        /// How many records follow the last checkpoint.
        records: u64,
    },
    /// The stored event is not JSON, or a checkpoint's event cannot be read.
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// The first bad record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Its sequence number.
    pub seq: u64,
    /// What is wrong.
    pub problem: Problem,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = self.seq;
        match &self.problem {
            Problem::Modified => write!(f, "record {seq} was modified (its hash does not match)"),
            Problem::Removed { next } => {
                write!(f, "records {seq}..{} were removed", next.saturating_sub(1))
            }
            Problem::Inserted { links_to } => write!(
                f,
                "record {seq} was inserted (the next record links to record {links_to})"
            ),
            Problem::Reordered => write!(f, "record {seq} is out of order (records reordered)"),
            Problem::BrokenLink => write!(f, "record {seq} links to no record of the log"),
            Problem::Duplicate => write!(f, "record {seq} appears twice or out of sequence"),
            Problem::CheckpointSignature { reason } => {
                write!(
                    f,
                    "checkpoint {seq} is not signed by the hub's key: {reason}"
                )
            }
            Problem::CheckpointMismatch { sealed_seq } => write!(
                f,
                "checkpoint {seq} seals another record {sealed_seq}: records before it were \
                 rewritten"
            ),
            Problem::Truncated { sealed_seq } => write!(
                f,
                "the log was truncated: a signed checkpoint seals record {sealed_seq}, the log \
                 ends at or differs from it before record {seq}"
            ),
            Problem::UnsignedTail { records } => write!(
                f,
                "the {records} records from record {seq} on are not covered by a signed \
                 checkpoint: the file was cut short or extended"
            ),
            Problem::Unreadable { reason } => write!(f, "record {seq} cannot be read: {reason}"),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// The first record's sequence number.
    pub first_seq: Option<u64>,
    /// The last good record.
    pub head: Option<AuditHead>,
    /// Checkpoints whose signatures verified.
    pub checkpoints: u64,
    /// The newest verified checkpoint's own sequence number.
    pub last_checkpoint: Option<u64>,
    /// Records after the newest checkpoint (not yet covered by a signature).
    pub unsigned_tail: u64,
    /// The first bad record, if any.
    pub bad: Option<Finding>,
}

impl VerifyReport {
    /// Whether nothing bad was found.
    pub fn ok(&self) -> bool {
        self.bad.is_none()
    }
}

/// Where the verified records start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the chain's first record (seq 1, linking to [`crate::audit::chain::GENESIS`]).
    Genesis,
    /// At whatever record comes first, trusting its link (a range, `--from`).
    First,
}

/// A log that starts after record 1, and whether a retention cut record naming exactly
/// that start was seen (`recorded`) and then covered by a valid checkpoint (`sealed`).
struct PrefixCut {
    first_seq: u64,
    prev_hash: String,
    recorded: bool,
    sealed: bool,
}

/// The streaming verifier: [`Verifier::push`] every record in chain order, then
/// [`Verifier::finish`].
pub struct Verifier {
    key: Option<VerifyingKey>,
    start: Start,
    anchor: Option<Sealed>,
    prev: Option<AuditHead>,
    recent: HashMap<String, u64>,
    recent_order: VecDeque<String>,
    /// A broken link waiting to be classified: the hash it names, and records left.
    pending: Option<(Finding, String, usize)>,
    /// The log starts after record 1: what a retention cut must explain.
    prefix: Option<PrefixCut>,
    report: VerifyReport,
}

impl Verifier {
    /// Checks checkpoints against `key` (`None`: signatures are not checked, only the
    /// chain), `anchor` being what the newest known checkpoint seals (`audit.head`).
    pub fn new(key: Option<VerifyingKey>, start: Start, anchor: Option<Sealed>) -> Self {
        Verifier {
            key,
            start,
            anchor,
            prev: None,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            pending: None,
            prefix: None,
            report: VerifyReport::default(),
        }
    }

    /// Whether a problem was found (later records are then only looked at to classify
    /// it).
    pub fn failed(&self) -> bool {
        self.report.bad.is_some() || self.pending.is_some()
    }

    /// Whether the outcome is decided: a problem was found and classified, so later
    /// records need not be read.
    pub fn settled(&self) -> bool {
        self.report.bad.is_some() && self.pending.is_none()
    }

    fn fail(&mut self, seq: u64, problem: Problem) {
        if self.report.bad.is_none() && self.pending.is_none() {
            self.report.bad = Some(Finding { seq, problem });
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &AuditRecord) {
        if let Some((finding, sought, left)) = &mut self.pending {
            if record.hash == *sought {
                finding.problem = Problem::Reordered;
                *left = 0;
            } else {
                *left -= 1;
            }
            if *left == 0 {
                let (finding, _, _) = self.pending.take().expect("pending is set");
                self.report.bad = Some(finding);
            }
            return;
        }
        if self.report.bad.is_some() {
            return;
        }
        let (expected_seq, expected_prev) = match (&self.prev, &self.start) {
            (Some(p), _) => (p.seq + 1, p.hash.clone()),
            // A log that starts later must be explained by a retention cut (`finish`).
            (None, Start::Genesis) if record.seq > 1 => {
                self.prefix = Some(PrefixCut {
                    first_seq: record.seq,
                    prev_hash: record.prev_hash.clone(),
                    recorded: false,
                    sealed: false,
                });
                (record.seq, record.prev_hash.clone())
            }
            (None, Start::Genesis) => (1, GENESIS.to_string()),
            (None, Start::First) => (record.seq, record.prev_hash.clone()),
        };
        if self.report.first_seq.is_none() {
            self.report.first_seq = Some(record.seq);
        }
        if record.seq > expected_seq {
            return self.fail(expected_seq, Problem::Removed { next: record.seq });
        }
        if record.seq < expected_seq {
            return self.fail(record.seq, Problem::Duplicate);
        }
        if record.prev_hash != expected_prev {
            match self.recent.get(&record.prev_hash) {
                Some(&links_to) => {
                    let inserted = links_to + 1;
                    if inserted < record.seq {
                        return self.fail(inserted, Problem::Inserted { links_to });
                    }
                    return self.fail(record.seq, Problem::BrokenLink);
                }
                None => {
                    self.pending = Some((
                        Finding {
                            seq: record.seq,
                            problem: Problem::BrokenLink,
                        },
                        record.prev_hash.clone(),
                        LOOKAHEAD,
                    ));
                    return;
                }
            }
        }
        if record.computed_hash() != record.hash {
            return self.fail(record.seq, Problem::Modified);
        }
        if let Some(anchor) = &self.anchor
            && anchor.seq == record.seq
            && anchor.hash != record.hash
        {
            return self.fail(
                record.seq,
                Problem::Truncated {
                    sealed_seq: anchor.seq,
                },
            );
        }
        if checkpoint::is_checkpoint(&record.event_type)
            && let Err(problem) = self.check_checkpoint(record)
        {
            return self.fail(record.seq, problem);
        }
        self.accept(record);
    }

    fn check_checkpoint(&mut self, record: &AuditRecord) -> Result<(), Problem> {
        let event =
            workbus_schemas::mqtt::structured::decode(record.event.as_bytes()).map_err(|e| {
                Problem::Unreadable {
                    reason: e.to_string(),
                }
            })?;
        let sealed = match &self.key {
            Some(key) => checkpoint::check(&event, key),
            None => checkpoint::sealed(&event),
        }
        .map_err(|e| Problem::CheckpointSignature {
            reason: e.to_string(),
        })?;
        // A checkpoint is made in the transaction that reads the head it seals, so it
        // always seals the record just before it.
        match &self.prev {
            Some(prev) if prev.seq == sealed.seq && prev.hash == sealed.hash => {}
            // A range (or a cut log) starting at this checkpoint: what it seals lies
            // before the first record.
            None if self.start == Start::First || self.prefix.is_some() => {}
            _ => {
                return Err(Problem::CheckpointMismatch {
                    sealed_seq: sealed.seq,
                });
            }
        }
        if let Some(prefix) = &mut self.prefix
            && prefix.recorded
        {
            prefix.sealed = true;
        }
        self.report.checkpoints += 1;
        self.report.last_checkpoint = Some(record.seq);
        self.report.unsigned_tail = 0;
        Ok(())
    }

    fn accept(&mut self, record: &AuditRecord) {
        if let Some(prefix) = &mut self.prefix
            && let Some(cut) = retention::cut_of(record)
            && cut.first_seq == prefix.first_seq
            && cut.prev_hash == prefix.prev_hash
        {
            prefix.recorded = true;
        }
        let head = record.head();
        self.recent.insert(head.hash.clone(), head.seq);
        self.recent_order.push_back(head.hash.clone());
        if self.recent_order.len() > RECENT
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent.remove(&old);
        }
        self.report.records += 1;
        if !checkpoint::is_checkpoint(&record.event_type) {
            self.report.unsigned_tail += 1;
        }
        self.prev = Some(head);
    }

    /// The report, once every record was pushed; with `sealed_end`, records after the
    /// last checkpoint are a problem (an exported file must end with one).
    pub fn finish(mut self, sealed_end: bool) -> VerifyReport {
        if let Some((finding, _, _)) = self.pending.take() {
            self.report.bad = Some(finding);
        }
        if self.report.bad.is_none()
            && let Some(prefix) = &self.prefix
            && !(prefix.recorded && prefix.sealed)
        {
            self.report.bad = Some(Finding {
                seq: 1,
                problem: Problem::Removed {
                    next: prefix.first_seq,
                },
            });
        }
        if sealed_end && self.report.bad.is_none() && self.report.unsigned_tail > 0 {
            let last = self.prev.as_ref().map_or(0, |p| p.seq);
            self.report.bad = Some(Finding {
                seq: last + 1 - self.report.unsigned_tail,
                problem: Problem::UnsignedTail {
                    records: self.report.unsigned_tail,
                },
            });
        }
        if self.report.bad.is_none()
            && let Some(anchor) = &self.anchor
        {
            let last = self.prev.as_ref().map_or(0, |p| p.seq);
            // The anchored checkpoint is the record after the one it seals.
            if last < anchor.seq + 1 {
                self.report.bad = Some(Finding {
                    seq: last + 1,
                    problem: Problem::Truncated {
                        sealed_seq: anchor.seq,
                    },
                });
            }
        }
        self.report.head = self.prev.take();
        self.report
    }
}

/// Records read per page when verifying a store (small enough that the page being
/// read and the one being checked stay in cache and allocator churn stays low).
pub const PAGE: usize = 2_000;

/// Verifies the records of `store` with sequence numbers in `from..=to` (all when
/// `None`), page by page. `anchor` (what the newest known checkpoint seals) is only
/// checked when the range reaches the end of the log.
///
/// Reading (the database, opening each sealed event) and checking (SHA-256 of each
/// record) overlap: a reader thread fetches the next page while this one checks the
/// last, one page ahead at most; it stops as soon as the checker has its answer.
pub fn verify_store(
    store: &dyn crate::store::Store,
    key: Option<VerifyingKey>,
    from: Option<u64>,
    to: Option<u64>,
    anchor: Option<Sealed>,
) -> Result<VerifyReport, crate::store::StoreError> {
    let start = match from {
        Some(from) if from > 1 => Start::First,
        _ => Start::Genesis,
    };
    let anchor = if to.is_none() { anchor } else { None };
    let mut verifier = Verifier::new(key, start, anchor);
    let mut query = crate::store::AuditQuery {
        after_seq: from.map(|f| f.saturating_sub(1)),
        to_seq: to,
        limit: PAGE,
        ..Default::default()
    };
    std::thread::scope(|scope| {
        let (pages, received) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            loop {
                let page = store.audit_records(&query);
                let next = match &page {
                    Ok(records) if records.len() == PAGE => records.last().map(|r| r.seq),
                    _ => None,
                };
                // A closed channel: the checker has its answer.
                if pages.send(page).is_err() {
                    return;
                }
                match next {
                    Some(seq) => query.after_seq = Some(seq),
                    None => return,
                }
            }
        });
        for page in received.iter() {
            for record in &page? {
                verifier.push(record);
            }
            if verifier.settled() {
                break;
            }
        }
        // Dropping the receiver ends the reader at its next page.
        drop(received);
        Ok(verifier.finish(false))
    })
}
