//! Both resync directions as the hub plays them (reference §6.2, §6.3):
//!
//! - [`status_resync_requests`]: after every (re)subscribe the hub asks each known
//!   cluster for the statuses it may have missed, listing per work the agent's own
//!   last `statushash` (or `NO_STATUS_HASH`, which never matches, when it has none),
//!   at most `resync::MAX_HASHES_PER_EVENT` per event (Maestro's fix for the 512 KiB limit).
//!   Always per cluster, never the broadcast form (§10 item 18). Every request carries
//!   the cluster's status digest; towards a cluster whose agent advertised digests
//!   ([`DigestClusters`]) the list is left out (`workbus_schemas::resync_digest`).
//! - [`spec_resync_answer_events`]: the answer to an agent's spec resync request, from
//!   the pure `workbus_schemas::resync::spec_resync_answer`, which also answers when
//!   the hub holds no works for the cluster (synthetic deletes, §10 item 7).
//!   [`spec_resync_reply_events`] adds the digest extension's forms on top: one
//!   "in sync"/"full" reply to a digest-only request, a trailing "done" reply after the
//!   upstream answer to an agent that advertised digests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use workbus_schemas::Event;
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::event_type::Action;
use workbus_schemas::resync::{
    ResourceStatusHash, SourceWork, SpecResyncAction, SpecResyncRequest, StatusResyncRequest,
    spec_resync_answer,
};
use workbus_schemas::resync_digest::{self, ResyncReply};
use workbus_schemas::status_hash::NO_STATUS_HASH;

use super::spec_events::{spec_event, synthetic_delete};
use crate::store::{NewOutbox, WorkRecord};

/// The clusters whose agent advertised resync digests (its last spec resync request
/// carried `resyncdigest`). In memory on purpose: after a hub restart every cluster gets
/// the upstream form again until its agent's next spec resync request, which is safe.
#[derive(Debug, Clone, Default)]
pub struct DigestClusters(Arc<Mutex<HashSet<String>>>);

impl DigestClusters {
    /// Records whether `cluster`'s agent advertised digests in its latest request (an
    /// OCM agent replacing ours stops advertising, and is then treated as one).
    pub fn note(&self, cluster: &str, advertised: bool) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if advertised {
            if !set.contains(cluster) {
                set.insert(cluster.to_string());
            }
        } else {
            set.remove(cluster);
        }
    }

    /// True when `cluster`'s agent is known to understand digests.
    pub fn contains(&self, cluster: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(cluster)
    }
}

/// The status resync requests for one cluster holding `works` (one event even when it
/// holds none: an empty list asks an upstream agent for every status). With
/// `digest_only` (the agent advertised digests) a single event with the digest and an
/// empty list: a matching agent answers nothing, a differing one sends every status.
pub fn status_resync_requests(
    source_id: &str,
    cluster: &str,
    works: &[WorkRecord],
    digest_only: bool,
    now: DateTime<Utc>,
) -> Vec<NewOutbox> {
    let hashes: Vec<ResourceStatusHash> = works
        .iter()
        .map(|w| {
            let hash = w
                .status
                .as_ref()
                .and_then(|s| s.status_hash.clone())
                .unwrap_or_else(|| NO_STATUS_HASH.to_string());
            ResourceStatusHash::new(w.uid.clone(), hash)
        })
        .collect();
    // Digest of the whole cluster's set, on every chunk: a workbus agent whose own digest
    // matches answers nothing (OCM agents ignore the extension).
    let digest = resync_digest::status_digest(
        hashes
            .iter()
            .map(|h| (h.resource_id.as_str(), h.status_hash.as_str())),
    );
    let requests = if digest_only {
        StatusResyncRequest::split(&[])
    } else {
        StatusResyncRequest::split(&hashes)
    };
    requests
        .into_iter()
        .map(|request| {
            let payload = request.to_json();
            let mut event = status_resync_request(source_id, cluster, payload, now);
            resync_digest::set_digest(&mut event, &digest);
            NewOutbox::new(cluster, None, event.into())
        })
        .collect()
}

/// The events answering `request` from `cluster`, given all of the hub's works for it.
/// An event that cannot be built (generation outside int32) is skipped and reported in
/// the second list.
pub fn spec_resync_answer_events(
    source_id: &str,
    cluster: &str,
    request: &SpecResyncRequest,
    works: &[WorkRecord],
    now: DateTime<Utc>,
) -> (Vec<NewOutbox>, Vec<String>) {
    let source_works = source_works(works);
    let by_id: HashMap<&str, &WorkRecord> = works.iter().map(|w| (w.uid.as_str(), w)).collect();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for action in spec_resync_answer(request, &source_works) {
        let (resource_id, built) = match &action {
            SpecResyncAction::SendSpec { resource_id }
            | SpecResyncAction::SendDeleting { resource_id } => {
                match by_id.get(resource_id.as_str()) {
                    // A deleting work's event carries `deletiontimestamp` (see spec_event).
                    Some(work) => (
                        resource_id,
                        spec_event(source_id, work, Action::ResyncResponse, now),
                    ),
                    None => continue,
                }
            }
            SpecResyncAction::SyntheticDelete {
                resource_id,
                resource_version,
            } => (
                resource_id,
                synthetic_delete(source_id, cluster, resource_id, *resource_version, now),
            ),
        };
        match built {
            Ok(event) => events.push(NewOutbox::new(
                cluster,
                Some(resource_id.clone()),
                event.into(),
            )),
            Err(e) => errors.push(format!("{resource_id}: {e}")),
        }
    }
    (events, errors)
}

/// How an agent's spec resync request asks to be answered.
#[derive(Debug, Clone)]
pub enum SpecRequestForm {
    /// Upstream (§6.2), from an agent that does not know digests (OCM agents).
    Upstream(SpecResyncRequest),
    /// Upstream, from an agent that advertised digests: answered upstream-style, then
    /// with a "done" reply.
    Advertising(SpecResyncRequest),
    /// Digest only: the agent's spec digest; answered with one "in sync"/"full" reply.
    DigestOnly(String),
}

impl SpecRequestForm {
    /// Reads the form of `event`, whose payload parsed as `request`.
    pub fn of(event: &Event, request: SpecResyncRequest) -> SpecRequestForm {
        match resync_digest::digest_of(event) {
            Some(d) if resync_digest::is_digest_request(event) => {
                SpecRequestForm::DigestOnly(d.to_string())
            }
            Some(_) => SpecRequestForm::Advertising(request),
            None => SpecRequestForm::Upstream(request),
        }
    }

    /// True when the requesting agent understands digests.
    pub fn advertises(&self) -> bool {
        !matches!(self, SpecRequestForm::Upstream(_))
    }
}

/// The events answering a spec resync request of `form` from `cluster`, given all of
/// the hub's works for it (see [`spec_resync_answer_events`] for the second list).
pub fn spec_resync_reply_events(
    source_id: &str,
    cluster: &str,
    form: &SpecRequestForm,
    works: &[WorkRecord],
    now: DateTime<Utc>,
) -> (Vec<NewOutbox>, Vec<String>) {
    let reply = |reply: ResyncReply| {
        let event = resync_digest::spec_resync_reply(source_id, cluster, reply, now);
        NewOutbox::new(cluster, None, event.into())
    };
    match form {
        SpecRequestForm::Upstream(request) => {
            spec_resync_answer_events(source_id, cluster, request, works, now)
        }
        SpecRequestForm::Advertising(request) => {
            let (mut events, errors) =
                spec_resync_answer_events(source_id, cluster, request, works, now);
            // Queued after the answers, so it reaches the agent after them.
            events.push(reply(ResyncReply::Done));
            (events, errors)
        }
        SpecRequestForm::DigestOnly(theirs) => {
            let verdict = resync_digest::spec_digest_reply(theirs, &source_works(works));
            (vec![reply(verdict)], Vec::new())
        }
    }
}

fn source_works(works: &[WorkRecord]) -> Vec<SourceWork> {
    works
        .iter()
        .map(|w| SourceWork {
            resource_id: w.uid.clone(),
            resource_version: w.generation,
            deleting: w.deletion.is_some(),
        })
        .collect()
}
