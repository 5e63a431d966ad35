//! Admission by publisher (design §2): when the embedded broker stamps each message with
//! its publisher's authenticated identity ([`workbus_schemas::acl::PUBLISHER_PROPERTY`]),
//! the hub checks *who* may send *what* for a cluster — which topic ACLs cannot, since a
//! joining cluster's bootstrap identity publishes on the same `agentEvents` topic as its
//! agent:
//!
//! - ManifestWork statuses and resyncs, lease updates, cluster status updates and lease
//!   resyncs: only `Agent(X)`, X the event's cluster;
//! - `managedclusters`/`certificatesigningrequests` create and resync requests (the join):
//!   `Bootstrap(X)` or `Agent(X)` (renewals come over the agent's own identity).
//!
//! Without a stamp (an external broker, which cannot stamp) the topic-based admission of
//! [`super::admission`] is all there is.

use workbus_schemas::acl::Identity;

use super::admission::Refusal;

/// What a received event is, as publisher admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A ManifestWork status (update or resync response).
    WorkStatus,
    /// A ManifestWork spec resync request.
    WorkResync,
    /// `managedclusters.spec.create_request` or `.spec.resync_request`.
    ClusterJoin,
    /// `certificatesigningrequests.spec.create_request` or `.spec.resync_request`.
    CsrJoin,
    /// `managedclusters.status.update_request`.
    ClusterStatus,
    /// `leases.spec.update_request` or `.spec.resync_request`.
    Lease,
    /// Anything else an agent may send (events).
    Other,
}

/// Whether `publisher` (the broker's stamp, `None` without one) may send `sent` for
/// `cluster`.
pub fn admit_publisher(
    sent: Sent,
    cluster: &str,
    publisher: Option<&Identity>,
) -> Result<(), Refusal> {
    let Some(publisher) = publisher else {
        return Ok(());
    };
    let allowed = match publisher {
        Identity::Agent(c) => c == cluster,
        Identity::Bootstrap(c) => c == cluster && matches!(sent, Sent::ClusterJoin | Sent::CsrJoin),
        Identity::Source(_) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Publisher)
    }
}

/// The stamped publisher of a message: the identity text in `publisher`, when the
/// transport passed one on (unparsable text is no identity, and refuses everything).
pub fn stamped_identity(publisher: Option<&str>) -> Result<Option<Identity>, Refusal> {
    match publisher {
        None => Ok(None),
        Some(text) => Identity::parse(text)
            .map(Some)
            .map_err(|_| Refusal::Publisher),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_identities_may_only_join_their_own_cluster() {
        let b = Identity::Bootstrap("c1".into());
        assert_eq!(admit_publisher(Sent::ClusterJoin, "c1", Some(&b)), Ok(()));
        assert_eq!(admit_publisher(Sent::CsrJoin, "c1", Some(&b)), Ok(()));
        for refused in [
            Sent::WorkStatus,
            Sent::WorkResync,
            Sent::ClusterStatus,
            Sent::Lease,
            Sent::Other,
        ] {
            assert_eq!(
                admit_publisher(refused, "c1", Some(&b)),
                Err(Refusal::Publisher),
                "{refused:?}"
            );
        }
        assert_eq!(
            admit_publisher(Sent::ClusterJoin, "c2", Some(&b)),
            Err(Refusal::Publisher)
        );
    }

    #[test]
    fn agents_speak_for_their_own_cluster_only() {
        let a = Identity::Agent("c1".into());
        for ok in [
            Sent::WorkStatus,
            Sent::WorkResync,
            Sent::ClusterJoin,
            Sent::CsrJoin,
            Sent::ClusterStatus,
            Sent::Lease,
        ] {
            assert_eq!(admit_publisher(ok, "c1", Some(&a)), Ok(()));
            assert_eq!(admit_publisher(ok, "c2", Some(&a)), Err(Refusal::Publisher));
        }
        let s = Identity::Source("hub".into());
        assert_eq!(
            admit_publisher(Sent::WorkStatus, "c1", Some(&s)),
            Err(Refusal::Publisher)
        );
    }

    #[test]
    fn no_stamp_falls_back_to_topics() {
        assert_eq!(admit_publisher(Sent::WorkStatus, "c1", None), Ok(()));
        assert_eq!(stamped_identity(None), Ok(None));
        assert_eq!(
            stamped_identity(Some("bootstrap.c1")),
            Ok(Some(Identity::Bootstrap("c1".into())))
        );
        assert_eq!(stamped_identity(Some("../x")), Err(Refusal::Publisher));
    }
}
