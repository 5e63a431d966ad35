//! Per-cluster resync digests: a compatible extension of the resync protocol (§6) so
//! that an unchanged agent costs one small round trip instead of one entry per work.
//!
//! ## Why
//! Upstream resync (§6.2, §6.3) lists one `(resourceID, resourceVersion)` or
//! `(resourceID, statusHash)` per work in every request, after every reconnect. After a
//! network blip, a fleet of 10,000 agents with 100 works each moves ~10^6 entries to
//! learn that nothing changed, and the agents never learn that the resync is over.
//!
//! ## The digest
//! A digest is the lower-hex SHA-256 of the entries sorted by `resourceID`, each written
//! as `<resourceID>\n<value>\n` (value = decimal version, or status hash). [`spec_digest`]
//! and [`status_digest`] compute it; sorting makes it independent of store order, and the
//! newline framing keeps `("a","1b")` and `("a1","b")` apart. The spec digest of an agent
//! covers exactly the entries its upstream spec resync request would list (every work it
//! holds, deleting ones included); the hub's covers every work it holds for the cluster.
//!
//! ## Extensions
//! - [`RESYNC_DIGEST`] (`resyncdigest`, string): a digest (requests only; a reply needs none).
//! - [`RESYNC_MODE`] (`resyncmode`, string): [`MODE_DIGEST`] on a digest-only request;
//!   on a reply one of [`MODE_IN_SYNC`], [`MODE_FULL`], [`MODE_DONE`] ([`ResyncReply`]).
//!
//! OCM peers ignore unknown extensions, and every event below that an OCM peer could
//! receive is an ordinary upstream event, so adding them never changes what they do.
//!
//! ## Advertising (who may use the digest forms)
//! - A workbus **agent** puts its spec digest on every upstream-form spec resync request
//!   ([`set_digest`]). A workbus source takes that as "this cluster's agent understands
//!   digests" and remembers it per cluster (in memory: after a source restart it simply
//!   uses the upstream form again until the agent's next spec resync request).
//! - A workbus **source** puts its status digest on its status resync requests, and
//!   answers every spec resync request that carries `resyncdigest` with a reply event
//!   ([`spec_resync_reply`]). The agent remembers, durably and per source id, that a
//!   source understands digests when it sees either. A status resync request from that
//!   source *without* `resyncdigest` makes the agent forget it again (an OCM source sends
//!   one after every subscribe, so a source replaced by an OCM one is noticed).
//!
//! ## Spec resync, digest form
//! 1. An agent that knows its source understands digests, and holds only works that came
//!    from such sources, sends the spec resync request with `{"resourceVersions":[]}`,
//!    its digest and `resyncmode = digest` ([`set_digest_request`]). (An OCM source that
//!    got it anyway would read the empty list upstream-style and resend every work: more
//!    traffic, still correct, because §7.2 ignores what the agent already has.)
//! 2. The source answers with **one** reply event, `...spec.resync_response` carrying
//!    `clustername` and `resyncmode`, and no `resourceid`, no data and no digest:
//!    - [`ResyncReply::InSync`] when [`spec_digest_reply`] finds the digests equal and no
//!      work deleting or unversioned, i.e. exactly when the upstream answer to the listed
//!      request would be empty. That is the whole resync: one request, one reply.
//!    - [`ResyncReply::Full`] otherwise: the agent repeats the request in the upstream
//!      form (with its digest, so it is answered as below), and the upstream rules decide.
//! 3. The source answers an upstream-form request that carries `resyncdigest` upstream
//!    style and then with the reply [`ResyncReply::Done`], published after the per-work
//!    answers on the same topic (QoS 1, one connection: MQTT keeps the order), so the
//!    agent learns when its resync has completed. Upstream-form requests without the
//!    extension (OCM agents) get exactly the upstream answer.
//!
//! ## Status resync, digest form
//! The source puts its digest of the cluster's `(resourceID, statusHash)` set on every
//! status resync request. Towards a cluster whose agent advertised, it sends one request
//! with an **empty** list; towards every other cluster the full list (an OCM agent reads
//! an empty list as "send everything"). A workbus agent whose own status digest equals it
//! answers nothing; otherwise it follows the upstream rules on the list it got, so an
//! empty list makes it send every status (upstream semantics; the source accepts only
//! newer statuses). Status resync happens only when the source (re)subscribes, so this
//! rare mismatch path is kept simple instead of adding a second round trip.
//!
//! So in the common case (nothing changed) each resync is one request of constant size
//! and at most one reply of constant size, and every mismatch falls back to the upstream
//! protocol, which stays the source of truth.

use chrono::{DateTime, Utc};
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use sha2::{Digest, Sha256};

use crate::envelope::{decode_event_type, new_event_at};
use crate::event_type::{Action, EventType, SubResource};
use crate::extensions::OcmExtensionsMut;
use crate::resync::SourceWork;

/// Extension carrying a per-cluster resync digest.
pub const RESYNC_DIGEST: &str = "resyncdigest";
/// Extension selecting the resync form on a request, or carrying a [`ResyncReply`].
pub const RESYNC_MODE: &str = "resyncmode";
/// [`RESYNC_MODE`] on a spec resync request: only the digest is sent, the list is empty.
pub const MODE_DIGEST: &str = "digest";
/// [`RESYNC_MODE`] reply: the digests differ; repeat the request in the upstream form.
pub const MODE_FULL: &str = "full";
/// [`RESYNC_MODE`] reply: the digests are equal; nothing else will be sent.
pub const MODE_IN_SYNC: &str = "insync";
/// [`RESYNC_MODE`] reply: the per-work answers to an upstream-form request precede this.
pub const MODE_DONE: &str = "done";

/// The source's reply to a spec resync request from a workbus agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReply {
    /// Digest form, digests equal: the resync is complete, nothing else follows.
    InSync,
    /// Digest form, digests differ: the agent repeats the request in the upstream form.
    Full,
    /// Upstream form from an advertising agent: every per-work answer was sent before.
    Done,
}

impl ResyncReply {
    /// The [`RESYNC_MODE`] value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReply::InSync => MODE_IN_SYNC,
            ResyncReply::Full => MODE_FULL,
            ResyncReply::Done => MODE_DONE,
        }
    }

    /// Parses a [`RESYNC_MODE`] value of a reply.
    pub fn parse(mode: &str) -> Option<ResyncReply> {
        match mode {
            MODE_IN_SYNC => Some(ResyncReply::InSync),
            MODE_FULL => Some(ResyncReply::Full),
            MODE_DONE => Some(ResyncReply::Done),
            _ => None,
        }
    }
}

fn digest<'a>(entries: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut entries: Vec<(&str, String)> = entries.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.cmp(&b.1)));
    let mut h = Sha256::new();
    for (id, value) in entries {
        h.update(id.as_bytes());
        h.update(b"\n");
        h.update(value.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Digest of `(resourceID, resourceVersion)` pairs (spec side).
pub fn spec_digest<'a>(entries: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    digest(entries.into_iter().map(|(id, v)| (id, v.to_string())))
}

/// Digest of `(resourceID, statusHash)` pairs (status side).
pub fn status_digest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    digest(entries.into_iter().map(|(id, h)| (id, h.to_string())))
}

/// Puts `digest` on a resync request.
pub fn set_digest(event: &mut Event, digest: &str) {
    event.set_extension(RESYNC_DIGEST, digest);
}

/// The digest a resync request carries, if any (a non-string value counts as none).
pub fn digest_of(event: &Event) -> Option<&str> {
    match event.extension(RESYNC_DIGEST) {
        Some(ExtensionValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn string_extension<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    match event.extension(name) {
        Some(ExtensionValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Turns a spec resync request (whose list the caller left empty) into the digest form:
/// `resyncdigest = digest`, `resyncmode = digest`. Only for a source that advertised.
pub fn set_digest_request(event: &mut Event, digest: &str) {
    set_digest(event, digest);
    event.set_extension(RESYNC_MODE, MODE_DIGEST);
}

/// True when a spec resync request is in the digest form (its list must then not be
/// read upstream-style: it is empty on purpose).
pub fn is_digest_request(event: &Event) -> bool {
    string_extension(event, RESYNC_MODE) == Some(MODE_DIGEST) && digest_of(event).is_some()
}

/// The source's reply event to a spec resync request of `cluster`: a
/// `...spec.resync_response` with `clustername`, `originalsource = ""` and
/// [`RESYNC_MODE`]; no `resourceid`, no data and no digest (the agent has no use for the
/// source's digest, and an unchanged agent's resync should cost as few bytes as it can).
pub fn spec_resync_reply(
    source_id: &str,
    cluster: &str,
    reply: ResyncReply,
    time: DateTime<Utc>,
) -> Event {
    let ty = EventType::manifest_bundles(SubResource::Spec, Action::ResyncResponse);
    let mut e = new_event_at(source_id, &ty, time);
    e.set_cluster_name(cluster);
    e.set_original_source("");
    e.set_extension(RESYNC_MODE, reply.as_str());
    e
}

/// The reply a received event carries, if it is one: a spec `resync_response` with a
/// known [`RESYNC_MODE`] and no `resourceid`. Anything else (an ordinary spec event, an
/// unknown mode) gives `None` and is handled as usual.
pub fn reply_of(event: &Event) -> Option<ResyncReply> {
    let ty = decode_event_type(event).ok()?;
    if ty.sub_resource != SubResource::Spec || ty.action != Action::ResyncResponse {
        return None;
    }
    if event.extension(crate::extensions::RESOURCE_ID).is_some() {
        return None;
    }
    ResyncReply::parse(string_extension(event, RESYNC_MODE)?)
}

/// The source's reply to a digest-form spec resync request carrying `request_digest`,
/// given all of its works for the cluster: [`ResyncReply::InSync`] exactly when the
/// upstream answer ([`crate::resync::spec_resync_answer`]) to the equivalent listed
/// request would be empty — same `(id, version)` set, no work being deleted (those are
/// always sent) and none unversioned (version 0 is always sent); otherwise
/// [`ResyncReply::Full`].
pub fn spec_digest_reply(request_digest: &str, works: &[SourceWork]) -> ResyncReply {
    let ours = spec_digest(
        works
            .iter()
            .map(|w| (w.resource_id.as_str(), w.resource_version)),
    );
    let quiet = works.iter().all(|w| !w.deleting && w.resource_version != 0);
    if quiet && ours == request_digest {
        ResyncReply::InSync
    } else {
        ResyncReply::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_framed() {
        let a = spec_digest([("w1", 1), ("w2", 2)]);
        assert_eq!(a, spec_digest([("w2", 2), ("w1", 1)]));
        assert_ne!(a, spec_digest([("w1", 1), ("w2", 3)]));
        assert_ne!(a, spec_digest([("w1", 1)]));
        assert_ne!(
            status_digest([("a", "1b")]),
            status_digest([("a1", "b")]),
            "framing keeps id and value apart"
        );
        // The empty set has a fixed digest (sha256 of nothing).
        assert_eq!(
            status_digest([]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn work(id: &str, version: i64, deleting: bool) -> SourceWork {
        SourceWork {
            resource_id: id.into(),
            resource_version: version,
            deleting,
        }
    }

    #[test]
    fn in_sync_exactly_when_the_upstream_answer_would_be_empty() {
        let works = [work("w1", 1, false), work("w2", 3, false)];
        let agent = spec_digest([("w2", 3), ("w1", 1)]);
        assert_eq!(spec_digest_reply(&agent, &works), ResyncReply::InSync);
        // Newer version at the source, a work the agent lacks, one it has extra.
        for other in [
            spec_digest([("w1", 1), ("w2", 2)]),
            spec_digest([("w1", 1)]),
            spec_digest([("w1", 1), ("w2", 3), ("w3", 1)]),
        ] {
            assert_eq!(spec_digest_reply(&other, &works), ResyncReply::Full);
        }
        // A deleting work is always sent upstream, so it is never "in sync".
        let deleting = [work("w1", 1, true)];
        let d = spec_digest([("w1", 1)]);
        assert_eq!(spec_digest_reply(&d, &deleting), ResyncReply::Full);
        // No works on either side: in sync.
        assert_eq!(
            spec_digest_reply(&spec_digest([]), &[]),
            ResyncReply::InSync
        );
    }

    #[test]
    fn reply_and_digest_request_survive_binary_mode() {
        use crate::mqtt::{Encoding, decode, encode};
        let reply = spec_resync_reply("hub", "edge-1", ResyncReply::InSync, Utc::now());
        let decoded = decode(&encode(&reply, "t", Encoding::Binary).unwrap()).unwrap();
        assert_eq!(reply_of(&decoded), Some(ResyncReply::InSync));
        // A reply carries no digest: the agent has no use for the source's.
        assert_eq!(digest_of(&decoded), None);
        assert!(!is_digest_request(&decoded));
        // An ordinary spec event with a resourceid is never taken for a reply.
        let mut spec = decoded.clone();
        spec.set_resource_id("w1");
        assert_eq!(reply_of(&spec), None);

        let mut request = crate::envelope::spec_resync_request(
            "edge-1-work-agent",
            "edge-1",
            serde_json::json!({"resourceVersions": []}),
            Utc::now(),
        );
        assert!(!is_digest_request(&request));
        set_digest_request(&mut request, "abc");
        let decoded = decode(&encode(&request, "t", Encoding::Binary).unwrap()).unwrap();
        assert!(is_digest_request(&decoded));
        assert_eq!(reply_of(&decoded), None);
    }
}
