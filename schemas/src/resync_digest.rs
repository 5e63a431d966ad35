//! Per-cluster resync digests: a compatible extension of the resync protocol so that an
//! unchanged agent costs one small message per direction instead of one entry per work.
//!
//! ## Why
//! Upstream resync (§6.2, §6.3) lists one `(resourceID, resourceVersion)` or
//! `(resourceID, statusHash)` per work in every request, after every reconnect. After a
//! broker restart, a fleet of 10,000 agents with 100 works each moves ~10^6 entries to
//! learn that nothing changed.
//!
//! ## The extension (status side wired; spec side designed)
//! - A digest is the lower-hex SHA-256 of the entries sorted by `resourceID`, each
//!   written as `<resourceID>\n<value>\n` (value = decimal version, or status hash).
//!   [`spec_digest`] and [`status_digest`] compute it; sorting makes it independent of
//!   store order, and the newline framing keeps `("a","1b")` and `("a1","b")` apart.
//! - The CloudEvent extension [`RESYNC_DIGEST`] carries it. OCM peers ignore unknown
//!   extensions, so adding it never changes what they do.
//! - **Advertising.** A workbus source adds `resyncdigest` (its digest for the cluster)
//!   to its status resync requests; a workbus agent adds its spec digest to its spec
//!   resync requests. Each side remembers, per peer, that the other understands digests.
//! - **Status resync, digest form (implemented).** The workbus hub puts its digest of the
//!   cluster's `(resourceID, statusHash)` set on every status resync request, next to the
//!   full list (an OCM agent would read an empty list as "send everything", so the list
//!   stays until the agent is known to understand digests). The workbus agent compares
//!   it with the digest of its own works and answers nothing at once when they are equal;
//!   otherwise it falls back to the per-work comparison. Dropping the list towards agents
//!   that advertised is the next step.
//! - **Spec resync, digest form.** An agent that knows its source understands digests
//!   sends its spec resync request with the digest and an empty list plus
//!   [`RESYNC_MODE`]` = digest`. The source compares with its own spec digest for the
//!   cluster: equal → nothing to send (the whole resync was one message); different →
//!   it answers with a `spec.resync_response` carrying `resyncmode = full` and no
//!   resource, and the agent repeats the request in the upstream form. A source that does
//!   not know the mode never sees it, because the agent only uses it after the source
//!   advertised.
//!
//! So in the common case (nothing changed) each direction costs one event of constant
//! size, and every mismatch falls back to the upstream protocol, which stays the source
//! of truth.

use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use sha2::{Digest, Sha256};

/// Extension carrying a per-cluster resync digest.
pub const RESYNC_DIGEST: &str = "resyncdigest";
/// Extension selecting the resync form (`digest` or `full`).
pub const RESYNC_MODE: &str = "resyncmode";
/// [`RESYNC_MODE`] value: the request carries only a digest.
pub const MODE_DIGEST: &str = "digest";
/// [`RESYNC_MODE`] value: the peer asks for the upstream (listed) form.
pub const MODE_FULL: &str = "full";

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
}
