//! The registration objects an agent sends, built as pure functions (the clock is a
//! parameter), and their MQTT messages: the ManagedCluster and CSR create requests of a
//! join, the resync requests, the lease renewal, the released lease of the Will, and
//! the cluster status update. Encodings are `workbus_schemas::registration`'s (sdk-go's
//! codecs); topics `workbus_schemas::topics`'s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::mqtt::{self, Encoding, MqttMessage};
use workbus_schemas::registration::names::{
    self, CLIENT_USAGES, CLUSTER_NAME_LABEL, LEASE_HOLDER, condition, message, reason, signer,
};
use workbus_schemas::registration::{
    CertificateSigningRequest, ClusterClaim, Lease, ManagedCluster, MicroTime, RegistrationError,
    RegistrationKind, RegistrationObject, encode_registration_event, encode_resync_request,
    registration_event_type,
};
use workbus_schemas::resync::{ResourceVersion, SpecResyncRequest};
use workbus_schemas::topics::{self, TopicError, Topics};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::{Condition, set_condition};

use crate::target::ClusterInfo;

/// Why a registration message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The object does not encode (e.g. a CSR without its cluster label).
    #[error(transparent)]
    Encode(#[from] RegistrationError),
    /// No topic for it.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The event does not fit an MQTT message.
    #[error(transparent)]
    Mqtt(#[from] mqtt::EncodeError),
}

/// Where and how one cluster's registration events go.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The cluster.
    pub cluster: String,
    /// The fleet's topics.
    pub topics: Topics,
    /// Binary (MQTT 5) or structured (3.1.1).
    pub encoding: Encoding,
}

impl Outbound {
    /// The MQTT message of `object` as `sub_resource`/`action`. The CloudEvent source is
    /// the cluster name, as OCM's gRPC registration driver sends it.
    pub fn message(
        &self,
        sub_resource: SubResource,
        action: Action,
        object: &RegistrationObject,
        now: DateTime<Utc>,
    ) -> Result<MqttMessage, MessageError> {
        let ty = registration_event_type(object.kind(), sub_resource, action.clone());
        let event = encode_registration_event(&self.cluster, sub_resource, action, object, now)?;
        let topic = topics::agent_publish_topic(&self.topics, &self.cluster, &ty, Some(""))?;
        Ok(mqtt::encode(&event, &topic, self.encoding)?)
    }

    /// A `spec.resync_request` of `kind` listing `held` (uid, resourceVersion text;
    /// versions that are not numbers are left out, as sdk-go cannot send them either).
    pub fn resync_request<'a>(
        &self,
        kind: RegistrationKind,
        held: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: DateTime<Utc>,
    ) -> Result<MqttMessage, MessageError> {
        let versions = held
            .into_iter()
            .filter_map(|(uid, rv)| Some(ResourceVersion::new(uid, rv.parse::<i64>().ok()?)))
            .filter(|v| !v.resource_id.is_empty())
            .collect();
        let request = SpecResyncRequest::new(versions);
        let event = encode_resync_request(&self.cluster, kind, &self.cluster, &request, now);
        let ty = registration_event_type(kind, SubResource::Spec, Action::ResyncRequest);
        let topic = topics::agent_publish_topic(&self.topics, &self.cluster, &ty, Some(""))?;
        Ok(mqtt::encode(&event, &topic, self.encoding)?)
    }
}

/// The ManagedCluster an agent asks the hub to create: its name, `labels`
/// (`--cluster-label`) and lease duration. Claims and the rest of the status come with
/// the first status update after acceptance, as in OCM.
pub fn cluster_create_request(
    cluster: &str,
    labels: &BTreeMap<String, String>,
    lease_duration_seconds: u32,
) -> ManagedCluster {
    let mut c = ManagedCluster::named(cluster);
    c.metadata.labels = labels.clone();
    c.spec.lease_duration_seconds = i32::try_from(lease_duration_seconds).unwrap_or(i32::MAX);
    c
}

/// The CSR an agent sends: name `<cluster>-<suffix>` (sdk-go's generateName), the
/// cluster label, the PEM request, signer `workbus.io/mqtt-client`, client usages.
pub fn csr_create_request(cluster: &str, suffix: &str, csr_pem: &str) -> CertificateSigningRequest {
    let mut csr = CertificateSigningRequest::default();
    csr.metadata.name = format!("{cluster}-{suffix}");
    csr.metadata
        .labels
        .insert(CLUSTER_NAME_LABEL.to_string(), cluster.to_string());
    csr.spec.request = csr_pem.as_bytes().to_vec();
    csr.spec.signer_name = signer::MQTT_CLIENT.to_string();
    csr.spec.usages = CLIENT_USAGES.iter().map(|u| u.to_string()).collect();
    csr
}

/// Five characters of `[a-z0-9]` from `random` (Kubernetes' generateName suffix).
pub fn name_suffix(mut random: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| {
            let c = ALPHABET[(random % ALPHABET.len() as u64) as usize];
            random /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// The certificate the hub issued for request `name`, once approved: `None` while it is
/// pending or if it is another request; `Err(reason)` when the hub denied or failed it.
pub fn issued_certificate(
    csr: &CertificateSigningRequest,
    name: &str,
) -> Option<Result<String, String>> {
    if csr.metadata.name != name {
        return None;
    }
    if csr.is_denied() {
        return Some(Err(csr
            .status
            .conditions
            .iter()
            .map(|c| format!("{}: {}", c.reason, c.message))
            .collect::<Vec<_>>()
            .join("; ")));
    }
    if csr.is_approved() && !csr.status.certificate.is_empty() {
        return Some(
            String::from_utf8(csr.status.certificate.clone())
                .map_err(|_| "the issued certificate is not PEM text".to_string()),
        );
    }
    None
}

/// The lease renewal: the hub's lease when known (keeps uid and resourceVersion), else
/// the lease as the hub creates it; held, `renewTime = now`, `acquireTime` = when this
/// connection was made, and the lease duration in effect.
pub fn lease_renewal(
    cluster: &str,
    hub_lease: Option<&Lease>,
    connected_at: DateTime<Utc>,
    lease_duration_seconds: u32,
    now: DateTime<Utc>,
) -> Lease {
    let mut lease = hub_lease
        .cloned()
        .unwrap_or_else(|| Lease::for_cluster(cluster, now));
    lease.spec.holder_identity = Some(LEASE_HOLDER.to_string());
    lease.spec.renew_time = Some(MicroTime::new(now));
    lease.spec.acquire_time = Some(MicroTime::new(connected_at));
    lease.spec.lease_duration_seconds =
        Some(i32::try_from(lease_duration_seconds).unwrap_or(i32::MAX));
    lease
}

/// The Will's lease: released (empty `holderIdentity`, as Kubernetes leader election
/// releases one) by the connection made at `connected_at`, so the hub can tell a Will
/// of a connection already replaced from one of the current connection.
pub fn released_lease(cluster: &str, connected_at: DateTime<Utc>) -> Lease {
    let mut lease = Lease::for_cluster(cluster, connected_at);
    lease.spec.holder_identity = Some(String::new());
    lease.spec.acquire_time = Some(MicroTime::new(connected_at));
    lease
}

/// The reserved claims a cluster's facts give (OCM §1.4): `id.k8s.io`,
/// `kubeversion.open-cluster-management.io`, `platform.…`, `product.…`.
pub fn reserved_claims(info: &ClusterInfo) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            out.insert(k.to_string(), v.clone());
        }
    };
    put(names::claim::ID, &info.id);
    put(names::claim::KUBE_VERSION, &info.kubernetes_version);
    put(names::claim::PLATFORM, &info.platform);
    put(names::claim::PRODUCT, &info.product);
    out
}

/// The ManagedCluster status the agent reports: the hub's object (uid,
/// resourceVersion, spec kept) with `ManagedClusterJoined=True` and
/// `ManagedClusterConditionAvailable` from the API server check, capacity,
/// allocatable, version and `claims`. `None` while the hub has not accepted the cluster
/// (OCM reports nothing then). Conditions keep their transition times when unchanged.
pub fn cluster_status(
    hub: &ManagedCluster,
    info: &ClusterInfo,
    claims: &[(String, String)],
    certificate: Option<&super::lifecycle::CertificateRotated>,
    now: DateTime<Utc>,
) -> Option<ManagedCluster> {
    if !hub.is_accepted() {
        return None;
    }
    let mut c = hub.clone();
    let at = Time::from(now);
    set_condition(
        &mut c.status.conditions,
        Condition::new(
            condition::JOINED,
            "True",
            reason::MANAGED_CLUSTER_JOINED,
            message::MANAGED_CLUSTER_JOINED,
            at,
        ),
        at,
    );
    let available = match &info.api_server {
        Ok(()) => Condition::new(
            condition::AVAILABLE,
            "True",
            reason::MANAGED_CLUSTER_AVAILABLE,
            message::MANAGED_CLUSTER_AVAILABLE,
            at,
        ),
        Err(problem) => Condition::new(
            condition::AVAILABLE,
            "False",
            reason::KUBE_API_SERVER_UNAVAILABLE,
            &format!("The kube-apiserver is not ok, {problem}"),
            at,
        ),
    };
    set_condition(&mut c.status.conditions, available, at);
    if let Some(rotated) = certificate {
        let cond = Condition::new(
            condition::CERTIFICATE_ROTATED,
            rotated.status,
            rotated.reason,
            &rotated.message,
            at,
        );
        set_condition(&mut c.status.conditions, cond, at);
    }
    // Capacity keys not reported now are kept (OCM).
    for (k, v) in &info.capacity {
        c.status
            .capacity
            .insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    c.status.allocatable = info
        .allocatable
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if let Some(v) = &info.kubernetes_version {
        c.status.version.kubernetes = v.clone();
    }
    c.status.cluster_claims = claims
        .iter()
        .map(|(name, value)| ClusterClaim {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    Some(c)
}

/// Whether two status reports say the same (ignoring condition times), so an unchanged
/// status is not sent again.
pub fn same_status(a: &ManagedCluster, b: &ManagedCluster) -> bool {
    let key = |c: &ManagedCluster| {
        let mut s = c.status.clone();
        for cond in &mut s.conditions {
            cond.last_transition_time = None;
        }
        s
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use workbus_schemas::registration::{RegistrationBody, decode_registration_event};

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, s).unwrap()
    }

    fn out() -> Outbound {
        Outbound {
            cluster: "c1".into(),
            topics: Topics::for_agent("hub", "c1").unwrap(),
            encoding: Encoding::Binary,
        }
    }

    fn accepted() -> ManagedCluster {
        let mut c = ManagedCluster::named("c1");
        c.metadata.uid = "u1".into();
        c.metadata.resource_version = "3".into();
        set_condition(
            &mut c.status.conditions,
            Condition::new(
                condition::HUB_ACCEPTED,
                "True",
                reason::HUB_CLUSTER_ADMIN_ACCEPTED,
                message::HUB_CLUSTER_ADMIN_ACCEPTED,
                Time::from(t(0)),
            ),
            Time::from(t(0)),
        );
        c
    }

    fn info() -> ClusterInfo {
        ClusterInfo {
            id: Some("id-1".into()),
            kubernetes_version: Some("v1.31.0".into()),
            platform: Some("Other".into()),
            product: None,
            capacity: [("cpu".to_string(), "8".to_string())].into_iter().collect(),
            allocatable: [("cpu".to_string(), "7".to_string())].into_iter().collect(),
            api_server: Ok(()),
        }
    }

    /// registration.md §8 items 19 and 24: the join's create requests on the wire.
    #[test]
    fn join_requests_encode_as_sdk_go_does() {
        let labels = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let cluster = RegistrationObject::ManagedCluster(cluster_create_request("c1", &labels, 60));
        let m = out()
            .message(SubResource::Spec, Action::CreateRequest, &cluster, t(0))
            .unwrap();
        assert_eq!(m.topic, "sources/hub/consumers/c1/agentevents");
        let e = decode_registration_event(&mqtt::decode(&m).unwrap()).unwrap();
        assert_eq!(
            (e.kind, e.action, e.resource_id),
            (
                RegistrationKind::ManagedCluster,
                Action::CreateRequest,
                None
            )
        );
        let RegistrationBody::Object(RegistrationObject::ManagedCluster(c)) = e.body else {
            panic!()
        };
        assert_eq!(c.metadata.labels["env"], "prod");
        assert_eq!(c.spec.lease_duration_seconds, 60);

        let csr = csr_create_request(
            "c1",
            &name_suffix(12345),
            "-----BEGIN CERTIFICATE REQUEST-----\n",
        );
        assert!(csr.metadata.name.starts_with("c1-") && csr.metadata.name.len() == 8);
        let m = out()
            .message(
                SubResource::Spec,
                Action::CreateRequest,
                &RegistrationObject::CertificateSigningRequest(csr.clone()),
                t(0),
            )
            .unwrap();
        let e = decode_registration_event(&mqtt::decode(&m).unwrap()).unwrap();
        assert_eq!(e.kind, RegistrationKind::CertificateSigningRequest);
        assert_eq!(e.cluster_name, "c1");
        let r = out()
            .resync_request(
                RegistrationKind::Lease,
                [("u1", "7"), ("u2", ""), ("", "3")],
                t(0),
            )
            .unwrap();
        let e = decode_registration_event(&mqtt::decode(&r).unwrap()).unwrap();
        assert_eq!(
            e.body,
            RegistrationBody::ResyncRequest(SpecResyncRequest::new(vec![ResourceVersion::new(
                "u1", 7
            )]))
        );
    }

    #[test]
    fn issued_certificate_only_for_our_approved_request() {
        let mut csr = csr_create_request("c1", "abcde", "req");
        assert_eq!(issued_certificate(&csr, "c1-abcde"), None, "pending");
        csr.status
            .conditions
            .push(workbus_schemas::registration::CsrCondition {
                type_: names::csr_condition::APPROVED.into(),
                status: "True".into(),
                ..Default::default()
            });
        assert_eq!(
            issued_certificate(&csr, "c1-abcde"),
            None,
            "approved, not yet signed"
        );
        csr.status.certificate = b"CERT".to_vec();
        assert_eq!(
            issued_certificate(&csr, "c1-abcde"),
            Some(Ok("CERT".into()))
        );
        assert_eq!(issued_certificate(&csr, "c1-other"), None);
        csr.status.conditions[0].type_ = names::csr_condition::DENIED.into();
        assert!(matches!(issued_certificate(&csr, "c1-abcde"), Some(Err(_))));
    }

    /// §8 item 21: renewals are `spec.update_request` changing the lease's renewTime;
    /// the Will's lease is released and names its connection.
    #[test]
    fn renewal_and_released_lease() {
        let mut hub = Lease::for_cluster("c1", t(0));
        hub.metadata.uid = "l1".into();
        hub.metadata.resource_version = "9".into();
        let r = lease_renewal("c1", Some(&hub), t(1), 60, t(5));
        assert_eq!(r.metadata.uid, "l1");
        assert_eq!(r.spec.renew_time, Some(MicroTime::new(t(5))));
        assert_eq!(r.spec.acquire_time, Some(MicroTime::new(t(1))));
        assert!(!r.is_released());
        let m = out()
            .message(
                SubResource::Spec,
                Action::UpdateRequest,
                &RegistrationObject::Lease(r),
                t(5),
            )
            .unwrap();
        let e = decode_registration_event(&mqtt::decode(&m).unwrap()).unwrap();
        assert_eq!(
            (e.kind, e.sub_resource, e.action),
            (
                RegistrationKind::Lease,
                SubResource::Spec,
                Action::UpdateRequest
            )
        );
        let will = released_lease("c1", t(1));
        assert!(will.is_released());
        assert_eq!(will.spec.acquire_time, Some(MicroTime::new(t(1))));
        assert_eq!(will.metadata.namespace, "c1");
    }

    /// §8 item 12: Joined only once the hub accepted; Available from the API check.
    #[test]
    fn status_only_after_acceptance_with_facts_and_claims() {
        assert_eq!(
            cluster_status(&ManagedCluster::named("c1"), &info(), &[], None, t(0)),
            None
        );
        let claims = vec![("id.k8s.io".to_string(), "id-1".to_string())];
        let s = cluster_status(&accepted(), &info(), &claims, None, t(1)).unwrap();
        assert!(s.is_joined());
        assert_eq!(s.condition_status(condition::AVAILABLE), Some("True"));
        assert_eq!(s.metadata.resource_version, "3");
        assert_eq!(s.status.capacity["cpu"], "8");
        assert_eq!(s.status.allocatable["cpu"], "7");
        assert_eq!(s.status.version.kubernetes, "v1.31.0");
        assert_eq!(s.status.cluster_claims[0].name, "id.k8s.io");
        // Same facts later: the same status; an API server problem: Available False.
        assert!(same_status(
            &s,
            &cluster_status(&s, &info(), &claims, None, t(9)).unwrap()
        ));
        let mut sick = info();
        sick.api_server = Err("status code: 500".into());
        let s2 = cluster_status(&s, &sick, &claims, None, t(9)).unwrap();
        assert_eq!(s2.condition_status(condition::AVAILABLE), Some("False"));
        assert!(!same_status(&s, &s2));
        let reserved = reserved_claims(&info());
        assert_eq!(reserved.len(), 3);
    }
}
