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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use workbus_schemas::metadata::{decode_spec_event, decode_status_event};

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

/// The fold: push records of one cluster in chain order.
#[derive(Debug, Default)]
pub struct Replay {
    works: BTreeMap<String, WorkAt>,
}

impl Replay {
    /// Takes one record into account.
    pub fn push(&mut self, record: &AuditRecord) {
        let Some(uid) = &record.resource_id else {
            return;
        };
        let Ok(event) = workbus_schemas::mqtt::structured::decode(record.event.as_bytes()) else {
            return;
        };
        match record.direction {
            AuditDirection::Sent => {
                if let Ok(spec) = decode_spec_event(&event) {
                    let status = self.works.remove(uid).and_then(|w| w.status);
                    self.works.insert(
                        uid.clone(),
                        WorkAt {
                            name: spec.work.metadata.name.clone(),
                            generation: spec.work.metadata.generation,
                            deleting: spec.is_deleting(),
                            sent_at: record.at,
                            actor: record.actor.clone(),
                            spec: serde_json::to_value(&spec.work.spec).unwrap_or(Value::Null),
                            status,
                        },
                    );
                }
            }
            AuditDirection::Received => {
                // A dropped status is logged without its data.
                if event.data().is_none() {
                    return;
                }
                let Ok(status) = decode_status_event(&event) else {
                    return;
                };
                let Some(work) = self.works.get_mut(uid) else {
                    return;
                };
                if status.is_deleted() && work.deleting {
                    self.works.remove(uid);
                } else if status.generation == work.generation {
                    work.status = Some((
                        record.at,
                        status.generation,
                        serde_json::to_value(&status.status).unwrap_or(Value::Null),
                    ));
                }
            }
            AuditDirection::Api | AuditDirection::Internal => {}
        }
    }

    /// The works, by resource id.
    pub fn works(&self) -> &BTreeMap<String, WorkAt> {
        &self.works
    }

    /// The works as the API shows them, by name.
    pub fn to_json(&self) -> Vec<Value> {
        let mut items: Vec<Value> = self
            .works
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
    Ok(replay.to_json())
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
