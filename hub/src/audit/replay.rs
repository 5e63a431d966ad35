//! `audit replay`: what ran on a cluster at a time, rebuilt from the audit log alone
//! (works and clusters may be long gone from the store): the desired works — the last
//! spec event the hub *sent* for each (so: published, acknowledged by the broker) —
//! and the last status the hub *accepted* from the agent for each (dropped statuses are
//! logged without their data and do not count). A work whose deletion the agent
//! confirmed (`Deleted`) is gone from that moment on. `--work` gives one work's full
//! history as a timeline instead.
//!
//! The fold over records ([`Replay`]) is pure; [`cluster_at`] and [`timeline`] read
//! the records of one cluster (or work) up to the time through the store's indexes.
//!
//! The fold decides from each record's columns (direction, type, resource id and
//! version) and a light reading of its event (`schemas::peek`: deleting, has data,
//! `Deleted=True`), and keeps the records it will need; only the last spec and status
//! of each work are decoded, when the fold is over. A logged event whose light reading
//! passes but whose full decoding fails (the hub logs only events it made or accepted,
//! so none should) drops its work from the answer instead of falling back to an older
//! record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use workbus_schemas::event_type::SubResource;
use workbus_schemas::metadata::{decode_spec_event, decode_status_event, is_work_event_type};
use workbus_schemas::peek::peek;

use super::chain::AuditRecord;
use crate::store::{AuditDirection, AuditQuery, Store, StoreError};

/// Records read per page.
const PAGE: usize = 10_000;

/// One work as it stood.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkAt {
    /// Its name.
    pub name: String,
    /// Its generation (the spec event's `resourceversion`).
    pub generation: i64,
    /// Whether its deletion was requested (and not yet confirmed).
    pub deleting: bool,
    /// When that spec was sent.
    pub sent_at: DateTime<Utc>,
    /// Who caused it.
    pub actor: Option<String>,
    /// The spec (Secret values digested).
    pub spec: Value,
    /// The last accepted status: when, for which generation, and what.
    pub status: Option<(DateTime<Utc>, i64, Value)>,
}

/// A work while the fold runs: what decides its next step, and the records to decode.
#[derive(Debug)]
struct Pending {
    generation: i64,
    deleting: bool,
    spec: AuditRecord,
    status: Option<AuditRecord>,
}

/// The fold: push records of one cluster in chain order, then [`Replay::finish`].
#[derive(Debug, Default)]
pub struct Replay {
    works: BTreeMap<String, Pending>,
}

impl Replay {
    /// Takes one record into account.
    pub fn push(&mut self, record: &AuditRecord) {
        let (Some(uid), Some(generation)) = (&record.resource_id, record.resource_version) else {
            return;
        };
        let kind = match record.direction {
            AuditDirection::Sent => SubResource::Spec,
            AuditDirection::Received => SubResource::Status,
            AuditDirection::Api | AuditDirection::Internal => return,
        };
        if !is_work_event_type(&record.event_type, kind) {
            return;
        }
        let Ok(event) = peek(&record.event) else {
            return;
        };
        if kind == SubResource::Spec {
            let status = self.works.remove(uid).and_then(|w| w.status);
            self.works.insert(
                uid.clone(),
                Pending {
                    generation,
                    deleting: event.deleting,
                    spec: record.clone(),
                    status,
                },
            );
            return;
        }
        // A dropped status is logged without its data.
        if !event.has_data {
            return;
        }
        let Some(work) = self.works.get_mut(uid) else {
            return;
        };
        if event.deleted && work.deleting {
            self.works.remove(uid);
        } else if generation == work.generation {
            work.status = Some(record.clone());
        }
    }

    /// The works as they stood after the last record pushed, by resource id: each
    /// one's last spec and status decoded.
    pub fn finish(self) -> BTreeMap<String, WorkAt> {
        self.works
            .into_iter()
            .filter_map(|(uid, pending)| Some((uid, decode(pending)?)))
            .collect()
    }
}

/// A work's last spec and status, decoded (`None` when the spec does not decode).
fn decode(pending: Pending) -> Option<WorkAt> {
    let structured =
        |r: &AuditRecord| workbus_schemas::mqtt::structured::decode(r.event.as_bytes());
    let spec = decode_spec_event(&structured(&pending.spec).ok()?).ok()?;
    let status = pending.status.and_then(|record| {
        let status = decode_status_event(&structured(&record).ok()?).ok()?;
        Some((
            record.at,
            status.generation,
            serde_json::to_value(&status.status).unwrap_or(Value::Null),
        ))
    });
    Some(WorkAt {
        name: spec.work.metadata.name.clone(),
        generation: spec.work.metadata.generation,
        deleting: spec.is_deleting(),
        sent_at: pending.spec.at,
        actor: pending.spec.actor,
        spec: serde_json::to_value(&spec.work.spec).unwrap_or(Value::Null),
        status,
    })
}

/// The works as the API shows them, by name.
pub fn to_json(works: &BTreeMap<String, WorkAt>) -> Vec<Value> {
    let mut items: Vec<Value> = works
        .iter()
        .map(|(uid, w)| {
            json!({
                "name": w.name,
                "resourceId": uid,
                "generation": w.generation,
                "deleting": w.deleting,
                "sentAt": w.sent_at,
                "actor": w.actor,
                "spec": w.spec,
                "status": w.status.as_ref().map(|(at, generation, status)| json!({
                    "receivedAt": at, "generation": generation, "status": status
                })),
            })
        })
        .collect();
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    items
}

/// Reads every record `query` selects, page by page, into `each`.
fn scan(
    store: &dyn Store,
    mut query: AuditQuery,
    mut each: impl FnMut(&AuditRecord),
) -> Result<(), StoreError> {
    query.limit = PAGE;
    loop {
        let page = store.audit_records(&query)?;
        page.iter().for_each(&mut each);
        match page.last() {
            Some(last) if page.len() == PAGE => query.after_seq = Some(last.seq),
            _ => return Ok(()),
        }
    }
}

/// The works of `cluster` as they stood at `at`.
pub fn cluster_at(
    store: &dyn Store,
    cluster: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Value>, StoreError> {
    let mut replay = Replay::default();
    let query = AuditQuery {
        cluster: Some(cluster.to_string()),
        until: Some(at),
        ..Default::default()
    };
    scan(store, query, |r| replay.push(r))?;
    Ok(to_json(&replay.finish()))
}

/// Every record of work `uid` up to `at`, oldest first, in short form.
pub fn timeline(store: &dyn Store, uid: &str, at: DateTime<Utc>) -> Result<Vec<Value>, StoreError> {
    let mut items = Vec::new();
    let query = AuditQuery {
        resource_id: Some(uid.to_string()),
        until: Some(at),
        ..Default::default()
    };
    scan(store, query, |r| {
        let event = r.event_value().unwrap_or(Value::Null);
        items.push(json!({
            "seq": r.seq,
            "at": r.at,
            "direction": r.direction.as_str(),
            "eventType": r.event_type,
            "actor": r.actor,
            "resourceVersion": r.resource_version,
            "event": event,
        }));
    })?;
    Ok(items)
}
