//! Conformance cases of cluster registration (issue 13): join, CSRs, accept, deny,
//! leases and health deadlines, cluster sets, bootstrap tokens — all through `dyn Store`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cloudevents::AttributesReader;
use workbus_hub::store::registration::{ClusterSelector, ClusterSet, JoinToken};
use workbus_hub::store::registration_writes::{
    AcceptCluster, CreateClusterSet, CreateJoinToken, CsrOutcome, CsrSigner, DeleteClusterSet,
    DenyCluster, EvaluateHealth, JoinCluster, JoinOutcome, LabelCluster, RegistrationEcho,
    RenewLease, RevokeJoinToken, SubmitCsr, UpdateClusterStatus,
};
use workbus_hub::store::rules::csr::CsrRefusal;
use workbus_hub::store::rules::registration::{LeaseOutcome, RegistrationRefusal};
use workbus_hub::store::writes::{CreateCluster, DeleteCluster};
use workbus_hub::store::{NewOutbox, Store, StoreError};
use workbus_schemas::event_type::SubResource;
use workbus_schemas::registration::names::{
    CLUSTER_NAME_LABEL, CLUSTERSET_LABEL, MAX_PENDING_CSRS_PER_CLUSTER, TAINT_UNREACHABLE,
    condition, signer,
};
use workbus_schemas::registration::{
    CertificateSigningRequest, Lease, ManagedCluster, MicroTime, encode_registration_event,
};

use super::Backend;

const NO_WIRE: &str = "";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_000 + secs, 0).unwrap()
}

fn echo() -> RegistrationEcho {
    Arc::new(|object, action| {
        let e = encode_registration_event("src", SubResource::Spec, action, object, Utc::now())
            .map_err(|e| e.to_string())?;
        Ok(NewOutbox::new(
            object.cluster_name().unwrap_or_default(),
            None,
            e.into(),
        ))
    })
}

fn signer() -> CsrSigner {
    Arc::new(|cluster, _csr| Ok(format!("CERT for {cluster}").into_bytes()))
}

fn join(s: &dyn Store, name: &str, at: DateTime<Utc>) -> JoinOutcome {
    let mut request = ManagedCluster::named(name);
    request.metadata.labels.insert("env".into(), "edge".into());
    s.write(JoinCluster {
        request,
        uid: format!("uid-{name}"),
        lease_uid: format!("lease-{name}"),
        auto_accept: false,
        join_token: Some("tok".into()),
        now: at,
        echo: echo(),
    })
    .unwrap()
}

fn csr(cluster: &str, suffix: &str) -> CertificateSigningRequest {
    let mut c = CertificateSigningRequest::default();
    c.metadata.name = format!("{cluster}-{suffix}");
    c.metadata
        .labels
        .insert(CLUSTER_NAME_LABEL.into(), cluster.into());
    c.spec.signer_name = signer::MQTT_CLIENT.into();
    c.spec.request = b"-----BEGIN CERTIFICATE REQUEST-----".to_vec();
    c
}

fn submit(s: &dyn Store, cluster: &str, suffix: &str, at: DateTime<Utc>) -> CsrOutcome {
    s.write(SubmitCsr {
        cluster: cluster.into(),
        csr: csr(cluster, suffix),
        uid: format!("csr-{suffix}"),
        now: at,
        echo: echo(),
        signer: signer(),
    })
    .unwrap()
}

fn renewal(cluster: &str, at: DateTime<Utc>, acquired: DateTime<Utc>) -> Lease {
    let mut l = Lease::for_cluster(cluster, at);
    l.spec.acquire_time = Some(MicroTime::new(acquired));
    l
}

fn outbox_types(s: &dyn Store) -> Vec<String> {
    s.outbox_batch(0, 1000, NO_WIRE)
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// At most 10 pending requests per cluster (OCM's bound, ocm#853): the 11th is not
/// stored, and the agent is told why by a denied echo of its request, which its
/// `ClusterCertificateRotated=False` then reports.
pub fn pending_csrs_are_capped_and_the_refusal_is_echoed(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    assert!(matches!(join(s, "edge-1", t(0)), JoinOutcome::Created(_)));
    for i in 0..MAX_PENDING_CSRS_PER_CLUSTER {
        assert_eq!(
            submit(s, "edge-1", &format!("p{i:04}"), t(1)),
            CsrOutcome::Pending
        );
    }
    let echoes_before = s.outbox_batch(0, 1000, NO_WIRE).unwrap().len();
    assert_eq!(
        submit(s, "edge-1", "over1", t(2)),
        CsrOutcome::Refused(CsrRefusal::TooManyPending)
    );
    let csrs = s.csrs_of_cluster("edge-1").unwrap();
    assert_eq!(
        csrs.len(),
        MAX_PENDING_CSRS_PER_CLUSTER,
        "the 11th is not stored"
    );
    let queued = s.outbox_batch(0, 1000, NO_WIRE).unwrap();
    assert_eq!(queued.len(), echoes_before + 1, "one echo of the refusal");
    let echo = queued
        .last()
        .unwrap()
        .event()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone();
    assert_eq!(
        echo.ty(),
        "certificates.k8s.io.v1.certificatesigningrequests.spec.update_request"
    );
    let event = workbus_schemas::registration::decode_registration_event(&echo).unwrap();
    let workbus_schemas::registration::RegistrationBody::Object(
        workbus_schemas::registration::RegistrationObject::CertificateSigningRequest(denied),
    ) = event.body
    else {
        panic!("a CSR echo")
    };
    assert_eq!(denied.metadata.name, "edge-1-over1");
    assert!(denied.is_denied());
    assert!(denied.status.certificate.is_empty());
}

pub fn joins_csrs_accept_and_deny_survive_a_reopen(b: &dyn Backend) {
    let s = b.open();
    s.write(CreateCluster {
        name: "rest".into(),
        labels: BTreeMap::new(),
        now: t(0),
    })
    .unwrap();
    let JoinOutcome::Created(c) = join(s.as_ref(), "edge-1", t(0)) else {
        panic!("not created")
    };
    assert!(!c.is_accepted());
    assert_eq!(c.labels.get(CLUSTERSET_LABEL).unwrap(), "default");
    assert_eq!(
        outbox_types(s.as_ref()),
        ["cluster.open-cluster-management.io.v1.managedclusters.spec.create_request"]
    );
    assert!(matches!(
        join(s.as_ref(), "edge-1", t(1)),
        JoinOutcome::Existing(_)
    ));
    assert!(matches!(
        join(s.as_ref(), "rest", t(1)),
        JoinOutcome::Existing(_)
    ));
    assert_eq!(
        submit(s.as_ref(), "edge-1", "aaaaa", t(2)),
        CsrOutcome::Pending
    );
    assert_eq!(
        submit(s.as_ref(), "edge-1", "aaaaa", t(3)),
        CsrOutcome::Existing
    );
    assert_eq!(
        submit(s.as_ref(), "nobody", "aaaaa", t(3)),
        CsrOutcome::NoCluster
    );
    assert_eq!(
        submit(s.as_ref(), "rest", "aaaaa", t(3)),
        CsrOutcome::NoCluster
    );
    // A status before acceptance is refused.
    let refused = s
        .write(UpdateClusterStatus {
            cluster: "edge-1".into(),
            incoming: ManagedCluster::named("edge-1"),
            now: t(3),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(refused, Err(RegistrationRefusal::NotAccepted));

    let accepted = s
        .write(AcceptCluster {
            name: "edge-1".into(),
            lease_uid: "lease-1".into(),
            now: t(4),
            echo: echo(),
            signer: signer(),
        })
        .unwrap();
    assert!(accepted.is_accepted());
    let csrs = s.csrs_of_cluster("edge-1").unwrap();
    assert_eq!(csrs.len(), 1);
    assert!(csrs[0].is_approved());
    assert_eq!(csrs[0].status.certificate, b"CERT for edge-1");
    // A renewal of an accepted cluster is signed at once.
    assert_eq!(
        submit(s.as_ref(), "edge-1", "bbbbb", t(5)),
        CsrOutcome::Approved
    );
    // REST-created clusters are accepted and cannot be denied.
    let rest = s.get_cluster("rest").unwrap().unwrap();
    assert!(rest.registration.is_none() && rest.is_accepted());
    assert!(matches!(
        s.write(DenyCluster {
            name: "rest".into(),
            now: t(5),
            echo: echo()
        }),
        Err(StoreError::Conflict(_))
    ));
    drop(s);

    let s = b.open();
    let c = s.get_cluster("edge-1").unwrap().unwrap();
    assert!(c.is_accepted());
    assert!(c.managed_cluster().is_accepted());
    assert_eq!(s.csrs_of_cluster("edge-1").unwrap().len(), 2);
    let denied = s
        .write(DenyCluster {
            name: "edge-1".into(),
            now: t(6),
            echo: echo(),
        })
        .unwrap();
    assert!(!denied.is_accepted());
    assert_eq!(
        denied
            .managed_cluster()
            .condition_status(condition::HUB_ACCEPTED),
        Some("False")
    );
    let labelled = s
        .write(LabelCluster {
            name: "edge-1".into(),
            set: [("tier".to_string(), "gold".to_string())].into(),
            remove: vec!["env".into()],
            now: t(7),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(labelled.labels.get("tier").unwrap(), "gold");
    assert!(!labelled.labels.contains_key("env"));
    drop(s);
    let s = b.open();
    let c = s.get_cluster("edge-1").unwrap().unwrap();
    assert!(!c.is_accepted() && c.registration.as_ref().unwrap().denied);
    assert_eq!(c.labels.get("tier").unwrap(), "gold");
    // Every change queued its echo for the agent.
    let types = outbox_types(s.as_ref());
    assert!(
        types
            .iter()
            .any(|t| t.ends_with("leases.spec.update_request"))
    );
    assert!(
        types
            .iter()
            .any(|t| t.ends_with("certificatesigningrequests.spec.update_request"))
    );
    // Deleting a joined cluster revokes its name until it joins again; a REST-created
    // one leaves nothing behind.
    s.write(DeleteCluster {
        name: "edge-1".into(),
    })
    .unwrap();
    s.write(DeleteCluster {
        name: "rest".into(),
    })
    .unwrap();
    assert!(s.is_cluster_revoked("edge-1").unwrap());
    assert!(!s.is_cluster_revoked("rest").unwrap());
    assert!(
        s.csrs_of_cluster("edge-1").unwrap().is_empty(),
        "CSRs go with the cluster"
    );
    assert!(matches!(
        join(s.as_ref(), "edge-1", t(9)),
        JoinOutcome::Created(_)
    ));
    assert!(!s.is_cluster_revoked("edge-1").unwrap());
    let first = &s.outbox_batch(0, 1, NO_WIRE).unwrap()[0];
    let workbus_hub::store::OutboxPayload::Event(Ok(e)) = &first.payload else {
        panic!("no event")
    };
    assert_eq!(e.source(), "src");
}

pub fn leases_drive_health_deadlines(b: &dyn Backend) {
    let s = b.open();
    join(s.as_ref(), "c1", t(0));
    // Not accepted: no deadline, renewals refused.
    assert!(
        s.write(EvaluateHealth {
            now: t(10_000),
            echo: echo()
        })
        .unwrap()
        .is_empty()
    );
    let refused = s
        .write(RenewLease {
            cluster: "c1".into(),
            lease: renewal("c1", t(1), t(1)),
            now: t(1),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(refused, Err(RegistrationRefusal::NotAccepted));
    s.write(AcceptCluster {
        name: "c1".into(),
        lease_uid: "l".into(),
        now: t(0),
        echo: echo(),
        signer: signer(),
    })
    .unwrap();
    let renewed = s
        .write(RenewLease {
            cluster: "c1".into(),
            lease: renewal("c1", t(10), t(10)),
            now: t(10),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(renewed, Ok(LeaseOutcome::Renewed));
    let c = s.get_cluster("c1").unwrap().unwrap();
    assert_eq!(
        c.managed_cluster().condition_status(condition::AVAILABLE),
        Some("True")
    );
    assert!(
        s.write(EvaluateHealth {
            now: t(129),
            echo: echo()
        })
        .unwrap()
        .is_empty()
    );
    drop(s);
    // The deadline survives a restart.
    let s = b.open();
    let changed = s
        .write(EvaluateHealth {
            now: t(130),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(changed.len(), 1);
    let mc = changed[0].managed_cluster();
    assert_eq!(mc.condition_status(condition::AVAILABLE), Some("Unknown"));
    assert!(mc.has_taint(TAINT_UNREACHABLE));
    assert!(
        s.write(EvaluateHealth {
            now: t(500),
            echo: echo()
        })
        .unwrap()
        .is_empty()
    );
    // A renewal brings it back; a stale Will is ignored; the current one is not.
    s.write(RenewLease {
        cluster: "c1".into(),
        lease: renewal("c1", t(600), t(600)),
        now: t(600),
        echo: echo(),
    })
    .unwrap()
    .unwrap();
    let mut stale = renewal("c1", t(600), t(10));
    stale.spec.holder_identity = Some(String::new());
    let outcome = s
        .write(RenewLease {
            cluster: "c1".into(),
            lease: stale,
            now: t(601),
            echo: echo(),
        })
        .unwrap();
    assert_eq!(outcome, Ok(LeaseOutcome::StaleWill));
    let c = s.get_cluster("c1").unwrap().unwrap();
    assert_eq!(
        c.managed_cluster().condition_status(condition::AVAILABLE),
        Some("True")
    );
    let mut will = renewal("c1", t(600), t(600));
    will.spec.holder_identity = Some(String::new());
    s.write(RenewLease {
        cluster: "c1".into(),
        lease: will,
        now: t(602),
        echo: echo(),
    })
    .unwrap()
    .unwrap();
    let c = s.get_cluster("c1").unwrap().unwrap();
    assert_eq!(
        c.managed_cluster().condition_status(condition::AVAILABLE),
        Some("Unknown")
    );
}

pub fn clustersets_and_bootstrap_tokens(b: &dyn Backend) {
    let s = b.open();
    let names: Vec<String> = s
        .list_clustersets()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["default", "global"]);
    let blue = ClusterSet {
        name: "blue".into(),
        selector: ClusterSelector::LabelSelector {
            match_labels: [("env".to_string(), "edge".to_string())].into(),
        },
        created: t(0),
    };
    s.write(CreateClusterSet(blue.clone())).unwrap();
    assert!(matches!(
        s.write(CreateClusterSet(blue.clone())),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.write(DeleteClusterSet("global".into())),
        Err(StoreError::Conflict(_))
    ));
    let token = JoinToken {
        name: "join-1".into(),
        hash: "ab".repeat(32),
        expires: t(3600),
        auto_accept: true,
        revoked: None,
        created: t(0),
        created_by: "admin".into(),
    };
    s.write(CreateJoinToken(token.clone())).unwrap();
    assert!(matches!(
        s.write(CreateJoinToken(token.clone())),
        Err(StoreError::AlreadyExists { .. })
    ));
    drop(s);
    let s = b.open();
    assert_eq!(s.list_clustersets().unwrap()[0], blue);
    let got = s.join_token_by_hash(&token.hash).unwrap().unwrap();
    assert_eq!(got, token);
    assert!(got.is_valid(t(1)) && !got.is_valid(t(3600)));
    s.write(RevokeJoinToken {
        name: "join-1".into(),
        now: t(5),
    })
    .unwrap();
    let revoked = s.join_token_by_hash(&token.hash).unwrap().unwrap();
    assert_eq!(revoked.revoked, Some(t(5)));
    assert!(!revoked.is_valid(t(6)));
    assert_eq!(s.list_join_tokens().unwrap().len(), 1);
    assert!(matches!(
        s.write(RevokeJoinToken {
            name: "nope".into(),
            now: t(5)
        }),
        Err(StoreError::NotFound { .. })
    ));
    s.write(DeleteClusterSet("blue".into())).unwrap();
    assert_eq!(s.list_clustersets().unwrap().len(), 2);
}
