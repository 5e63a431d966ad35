//! Cluster registration and health over CloudEvents (issue 13): the sdk-go data types
//! for ManagedClusters, CertificateSigningRequests, Leases and Events, encoded exactly
//! as sdk-go's codecs write them (reference `registration.md` §4), carried on the same
//! per-cluster topics as ManifestWorks.
//!
//! - [`names`]: data types, condition types/reasons/messages, taints, labels.
//! - [`cluster`], [`csr`], [`lease`]: the typed objects.
//! - [`object`]: the closed set of kinds and objects.
//! - [`codec`]: event encode/decode (§4.1), resync requests, synthetic deletes.
//!
//! Upstream carries these types over gRPC only; the MQTT hub side is workbus's design
//! (ARCHITECTURE "Cluster lifecycle"), with sdk-go's encodings unchanged.

pub mod cluster;
pub mod codec;
pub mod csr;
pub mod lease;
pub mod names;
pub mod object;

pub use cluster::{ClientConfig, ClusterClaim, ManagedCluster, ManagedClusterSpec, Taint};
pub use codec::{
    RegistrationBody, RegistrationError, RegistrationEvent, decode_registration_event,
    encode_registration_event, encode_resync_request, encode_synthetic_delete,
    registration_event_type, registration_kind,
};
pub use csr::{CertificateSigningRequest, CsrCondition, CsrSpec, CsrStatus};
pub use lease::{Lease, LeaseSpec, MicroTime};
pub use object::{KubeEvent, RegistrationKind, RegistrationObject};

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use cloudevents::AttributesReader;
    use serde_json::json;

    use super::*;
    use crate::event_type::{Action, SubResource};
    use crate::extensions::OcmExtensions;
    use crate::mqtt::{self, Encoding, MqttMessage};
    use crate::resync::{ResourceVersion, SpecResyncRequest};

    const TOPIC: &str = "sources/hub1/clusters/cluster1/agentevents";

    fn prop<'m>(m: &'m MqttMessage, name: &str) -> Option<&'m str> {
        m.user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// registration.md §7.7: an agent's lease renewal in MQTT binary mode.
    #[test]
    fn golden_lease_renewal_binary_mode() {
        let payload = json!({
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": "managed-cluster-lease", "namespace": "cluster1",
                         "uid": "4f0e8e7a-0000-4000-8000-000000000001",
                         "resourceVersion": "184467"},
            "spec": {"holderIdentity": "managed-cluster-lease",
                     "renewTime": "2026-01-02T03:04:05.123456Z"}
        });
        let lease =
            RegistrationObject::from_json(RegistrationKind::Lease, payload.clone()).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let e = encode_registration_event(
            "cluster1",
            SubResource::Spec,
            Action::UpdateRequest,
            &lease,
            at,
        )
        .unwrap();
        let m = mqtt::encode(&e, TOPIC, Encoding::Binary).unwrap();
        assert_eq!(m.topic, TOPIC);
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(prop(&m, "ce-specversion"), Some("1.0"));
        assert_eq!(prop(&m, "ce-source"), Some("cluster1"));
        assert_eq!(
            prop(&m, "ce-type"),
            Some("coordination.k8s.io.v1.leases.spec.update_request")
        );
        assert_eq!(prop(&m, "ce-clustername"), Some("cluster1"));
        assert_eq!(prop(&m, "ce-originalsource"), Some(""));
        assert_eq!(
            prop(&m, "ce-resourceid"),
            Some("4f0e8e7a-0000-4000-8000-000000000001")
        );
        assert_eq!(prop(&m, "ce-resourceversion"), Some("184467"));
        assert!(prop(&m, "ce-id").is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
        for absent in [
            "ce-deletiontimestamp",
            "ce-sequenceid",
            "ce-metadata",
            "ce-statushash",
        ] {
            assert_eq!(prop(&m, absent), None, "{absent}");
        }
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(body, payload);

        // And back, through both MQTT modes.
        for enc in [Encoding::Binary, Encoding::Structured] {
            let m = mqtt::encode(&e, TOPIC, enc).unwrap();
            let d = decode_registration_event(&mqtt::decode(&m).unwrap()).unwrap();
            assert_eq!(d.kind, RegistrationKind::Lease);
            assert_eq!(d.action, Action::UpdateRequest);
            assert_eq!(d.sub_resource, SubResource::Spec);
            assert_eq!(d.resource_version.as_deref(), Some("184467"));
            assert_eq!(d.body, RegistrationBody::Object(lease.clone()));
            let RegistrationBody::Object(RegistrationObject::Lease(l)) = &d.body else {
                panic!("not a lease");
            };
            assert_eq!(
                l.spec.renew_time.unwrap().to_string(),
                "2026-01-02T03:04:05.123456Z"
            );
        }
    }

    /// §8 item 19: the agent's cluster creation has no resourceid/resourceversion.
    #[test]
    fn golden_cluster_create_request() {
        let mut c = ManagedCluster::named("cluster1");
        c.spec.lease_duration_seconds = 60;
        let obj = RegistrationObject::ManagedCluster(c);
        let e = encode_registration_event(
            "cluster1",
            SubResource::Spec,
            Action::CreateRequest,
            &obj,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            e.ty(),
            "cluster.open-cluster-management.io.v1.managedclusters.spec.create_request"
        );
        assert!(e.extension("resourceid").is_none());
        assert!(e.extension("resourceversion").is_none());
        assert_eq!(e.cluster_name().unwrap(), Some("cluster1"));
        assert_eq!(e.original_source().unwrap(), Some(""));
        let data = crate::envelope::json_data(&e).unwrap();
        assert_eq!(
            data,
            json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
                   "metadata": {"name": "cluster1"},
                   "spec": {"hubAcceptsClient": false, "leaseDurationSeconds": 60},
                   "status": {"version": {}}})
        );
    }

    /// §8 items 22–24: hub events carry uid and string version; deletes carry no data;
    /// a CSR needs its cluster label.
    #[test]
    fn hub_events_deletes_and_csr_label() {
        let mut csr = CertificateSigningRequest::default();
        csr.metadata.name = "cluster1-abcde".into();
        csr.metadata.uid = "u1".into();
        csr.metadata.resource_version = "7".into();
        csr.spec.request = b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec();
        csr.spec.signer_name = names::signer::MQTT_CLIENT.into();
        let obj = RegistrationObject::CertificateSigningRequest(csr.clone());
        assert_eq!(
            encode_registration_event(
                "hub1",
                SubResource::Spec,
                Action::UpdateRequest,
                &obj,
                Utc::now()
            ),
            Err(RegistrationError::NoCsrClusterLabel)
        );
        csr.metadata
            .labels
            .insert(names::CLUSTER_NAME_LABEL.into(), "cluster1".into());
        let obj = RegistrationObject::CertificateSigningRequest(csr.clone());
        let e = encode_registration_event(
            "hub1",
            SubResource::Spec,
            Action::UpdateRequest,
            &obj,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(e.source(), "hub1");
        assert_eq!(e.resource_id().unwrap(), "u1");
        assert_eq!(
            e.extension("resourceversion"),
            Some(&cloudevents::event::ExtensionValue::String("7".into()))
        );
        let data = crate::envelope::json_data(&e).unwrap();
        assert_eq!(
            data["spec"]["request"],
            json!("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K")
        );
        assert_eq!(data["kind"], json!("CertificateSigningRequest"));

        csr.metadata.deletion_timestamp = Some(crate::work::Time::now());
        let obj = RegistrationObject::CertificateSigningRequest(csr);
        let e = encode_registration_event(
            "hub1",
            SubResource::Spec,
            Action::DeleteRequest,
            &obj,
            Utc::now(),
        )
        .unwrap();
        assert!(e.data().is_none());
        assert!(e.datacontenttype().is_none());
        let d = decode_registration_event(&e).unwrap();
        assert!(matches!(d.body, RegistrationBody::Deleted { .. }));
        assert_eq!(d.resource_id.as_deref(), Some("u1"));
    }

    /// §8 item 25: resync requests and synthetic deletes.
    #[test]
    fn resync_request_and_synthetic_delete() {
        let req = SpecResyncRequest::new(vec![ResourceVersion::new("u1", 12)]);
        let e = encode_resync_request(
            "cluster1",
            RegistrationKind::Lease,
            "cluster1",
            &req,
            Utc::now(),
        );
        assert_eq!(e.ty(), "coordination.k8s.io.v1.leases.spec.resync_request");
        assert_eq!(e.original_source().unwrap(), Some(""));
        assert_eq!(
            crate::envelope::json_data(&e).unwrap(),
            json!({"resourceVersions": [{"resourceID": "u1", "resourceVersion": 12}]})
        );
        let d = decode_registration_event(&e).unwrap();
        assert_eq!(d.body, RegistrationBody::ResyncRequest(req));

        let e = encode_synthetic_delete(
            "hub1",
            RegistrationKind::CertificateSigningRequest,
            "cluster1",
            "gone",
            Utc::now(),
        );
        assert_eq!(
            e.ty(),
            "certificates.k8s.io.v1.certificatesigningrequests.spec.resync_response"
        );
        assert!(e.extension("resourceversion").is_none());
        assert!(e.data().is_none());
        assert!(e.deletion_timestamp().unwrap().is_some());
    }

    #[test]
    fn hostile_events_get_typed_errors() {
        let obj = RegistrationObject::ManagedCluster(ManagedCluster::named("other"));
        let mut e = encode_registration_event(
            "x",
            SubResource::Spec,
            Action::CreateRequest,
            &obj,
            Utc::now(),
        )
        .unwrap();
        crate::extensions::OcmExtensionsMut::set_cluster_name(&mut e, "cluster1");
        assert!(matches!(
            decode_registration_event(&e),
            Err(RegistrationError::ClusterMismatch { .. })
        ));
        crate::envelope::set_json_data(&mut e, json!({"spec": "nope"}));
        assert!(matches!(
            decode_registration_event(&e),
            Err(RegistrationError::Payload { .. })
        ));
        crate::extensions::OcmExtensionsMut::set_cluster_name(&mut e, "");
        assert_eq!(
            decode_registration_event(&e),
            Err(RegistrationError::NoClusterExtension)
        );
        let work = crate::envelope::new_event(
            "x",
            &crate::event_type::EventType::manifest_bundles(
                SubResource::Status,
                Action::UpdateRequest,
            ),
        );
        assert!(matches!(
            decode_registration_event(&work),
            Err(RegistrationError::NotRegistration(_))
        ));
        assert_eq!(registration_kind(&work), None);
    }

    #[test]
    fn unknown_members_survive() {
        let v = json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
            "metadata": {"name": "c1", "labels": {"a": "b"}},
            "spec": {"hubAcceptsClient": true, "futureField": 1},
            "status": {"conditions": [], "managedNamespaces": [{"name": "ns"}], "version": {"kubernetes": "v1.31.0"},
                       "clusterClaims": [{"name": "id.k8s.io", "value": "x"}],
                       "capacity": {"cpu": "4"}}});
        let o = RegistrationObject::from_json(RegistrationKind::ManagedCluster, v.clone()).unwrap();
        let RegistrationObject::ManagedCluster(c) = &o else {
            panic!()
        };
        assert!(c.spec.hub_accepts_client);
        assert_eq!(c.spec.effective_lease_duration_seconds(), 60);
        assert_eq!(c.status.cluster_claims[0].name, "id.k8s.io");
        let mut expected = v;
        expected["status"]
            .as_object_mut()
            .unwrap()
            .remove("conditions");
        assert_eq!(o.to_json(), expected);
    }
}
