//! Which certificate signing requests the hub takes (design §4 step 3, reference §2):
//! labelled with the cluster they came from, for the workbus client signer, at most
//! [`MAX_PENDING_CSRS_PER_CLUSTER`] pending per cluster (OCM stops at 10, ocm#853), and
//! a PKCS#10 request whose CN is the cluster (checked by the signer, which parses it).
//! Approving one sets the `Approved` condition and the certificate.

use chrono::{DateTime, Utc};
use workbus_schemas::registration::CertificateSigningRequest;
use workbus_schemas::registration::CsrCondition;
use workbus_schemas::registration::names::{
    MAX_PENDING_CSRS_PER_CLUSTER, csr_condition, message, reason, signer,
};
use workbus_schemas::topics::{SegmentKind, validate_segment};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::condition_status;

/// Largest PEM request accepted.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRefusal {
    /// Its cluster label is not the cluster it came from.
    #[error("its cluster label is not its cluster's")]
    WrongCluster,
    /// Its name is not `<cluster>-<suffix>` with a DNS-label suffix.
    #[error("its name is not <cluster>-<suffix>")]
    BadName,
    /// Not for the workbus MQTT client signer.
    #[error("signer {0:?} is not workbus.io/mqtt-client")]
    WrongSigner(String),
    /// Too many pending requests for the cluster.
    #[error("the cluster has {MAX_PENDING_CSRS_PER_CLUSTER} pending requests already")]
    TooManyPending,
    /// Empty or oversized request.
    #[error("the request is empty or larger than {MAX_REQUEST_BYTES} bytes")]
    BadRequest,
    /// The request does not parse, or names another subject than the cluster.
    #[error("the certificate request cannot be signed: {0}")]
    Unsignable(String),
}

/// Checks a CSR received from `cluster` with `pending` requests pending already.
pub fn check_csr(
    cluster: &str,
    csr: &CertificateSigningRequest,
    pending: usize,
) -> Result<(), CsrRefusal> {
    if csr.cluster_name() != Some(cluster) {
        return Err(CsrRefusal::WrongCluster);
    }
    let suffix = csr
        .metadata
        .name
        .strip_prefix(cluster)
        .and_then(|rest| rest.strip_prefix('-'));
    if suffix.is_none_or(|s| {
        s.is_empty() || s.len() > 63 || validate_segment(SegmentKind::ClusterName, s).is_err()
    }) {
        return Err(CsrRefusal::BadName);
    }
    if csr.spec.signer_name != signer::MQTT_CLIENT {
        return Err(CsrRefusal::WrongSigner(
            csr.spec.signer_name.chars().take(80).collect(),
        ));
    }
    if csr.spec.request.is_empty() || csr.spec.request.len() > MAX_REQUEST_BYTES {
        return Err(CsrRefusal::BadRequest);
    }
    if pending >= MAX_PENDING_CSRS_PER_CLUSTER {
        return Err(CsrRefusal::TooManyPending);
    }
    Ok(())
}

/// Marks `csr` approved (`reason`, `message`) with `certificate` (PEM).
pub fn approve(
    csr: &mut CertificateSigningRequest,
    certificate: Vec<u8>,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    let at = Time::new(now);
    csr.status
        .conditions
        .retain(|c| c.type_ != csr_condition::APPROVED);
    csr.status.conditions.push(CsrCondition {
        type_: csr_condition::APPROVED.to_owned(),
        status: condition_status::TRUE.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_update_time: Some(at),
        last_transition_time: Some(at),
    });
    csr.status.certificate = certificate;
}

/// Marks `csr` denied (its certificate is never issued).
pub fn deny(csr: &mut CertificateSigningRequest, reason: &str, message: &str, now: DateTime<Utc>) {
    let at = Time::new(now);
    csr.status.conditions.push(CsrCondition {
        type_: csr_condition::DENIED.to_owned(),
        status: condition_status::TRUE.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_update_time: Some(at),
        last_transition_time: Some(at),
    });
}

/// What the agent is told of a request the hub did not take: the request's name and
/// labels with a `Denied` condition naming the refusal (nothing of it is stored). `None`
/// when the request does not belong to its sender's cluster by label or name: then
/// there is no request of that cluster to answer about.
pub fn refusal_echo(
    received: &CertificateSigningRequest,
    refusal: &CsrRefusal,
    now: DateTime<Utc>,
) -> Option<CertificateSigningRequest> {
    if matches!(refusal, CsrRefusal::WrongCluster | CsrRefusal::BadName) {
        return None;
    }
    let mut echo = CertificateSigningRequest::default();
    echo.metadata.name = received.metadata.name.clone();
    echo.metadata.labels = received.metadata.labels.clone();
    echo.spec.signer_name = received.spec.signer_name.chars().take(80).collect();
    deny(
        &mut echo,
        reason::CSR_REFUSED_BY_HUB,
        &message::csr_refused(&refusal.to_string()),
        now,
    );
    Some(echo)
}

#[cfg(test)]
mod tests {
    use workbus_schemas::registration::names::CLUSTER_NAME_LABEL;

    use super::*;

    fn csr(name: &str, label: &str) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.metadata.name = name.into();
        c.metadata
            .labels
            .insert(CLUSTER_NAME_LABEL.into(), label.into());
        c.spec.signer_name = signer::MQTT_CLIENT.into();
        c.spec.request = b"-----BEGIN CERTIFICATE REQUEST-----".to_vec();
        c
    }

    #[test]
    fn only_the_clusters_own_well_formed_requests() {
        assert_eq!(check_csr("c1", &csr("c1-abcde", "c1"), 0), Ok(()));
        assert_eq!(
            check_csr("c1", &csr("c1-abcde", "c2"), 0),
            Err(CsrRefusal::WrongCluster)
        );
        assert_eq!(
            check_csr("c1", &csr("c2-abcde", "c1"), 0),
            Err(CsrRefusal::BadName)
        );
        assert_eq!(
            check_csr("c1", &csr("c1-", "c1"), 0),
            Err(CsrRefusal::BadName)
        );
        assert_eq!(
            check_csr("c1", &csr("c1-A/b", "c1"), 0),
            Err(CsrRefusal::BadName)
        );
        assert_eq!(
            check_csr("c1", &csr("c1-abcde", "c1"), 10),
            Err(CsrRefusal::TooManyPending)
        );
        let mut k = csr("c1-abcde", "c1");
        k.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(matches!(
            check_csr("c1", &k, 0),
            Err(CsrRefusal::WrongSigner(_))
        ));
        let mut e = csr("c1-abcde", "c1");
        e.spec.request.clear();
        assert_eq!(check_csr("c1", &e, 0), Err(CsrRefusal::BadRequest));
    }

    #[test]
    fn approval_sets_condition_and_certificate() {
        let mut c = csr("c1-abcde", "c1");
        assert!(c.is_pending());
        approve(&mut c, b"CERT".to_vec(), "R", "M", Utc::now());
        assert!(c.is_approved() && !c.is_pending());
        assert_eq!(c.status.certificate, b"CERT");
        let mut d = csr("c1-x", "c1");
        deny(&mut d, "R", "M", Utc::now());
        assert!(d.is_denied() && !d.is_approved());
    }

    #[test]
    fn a_refusal_is_echoed_as_a_denied_request_of_the_cluster_only() {
        let now = DateTime::from_timestamp(1_765_000_000, 0).unwrap();
        let received = csr("c1-abcde", "c1");
        let echo = refusal_echo(&received, &CsrRefusal::TooManyPending, now).unwrap();
        assert!(echo.is_denied());
        assert_eq!(echo.metadata.name, "c1-abcde");
        assert_eq!(echo.cluster_name(), Some("c1"));
        assert!(echo.spec.request.is_empty(), "the request is not sent back");
        let denied = &echo.status.conditions[0];
        assert_eq!(denied.reason, reason::CSR_REFUSED_BY_HUB);
        assert_eq!(
            denied.message,
            "the hub did not take this certificate signing request: the cluster has 10 \
             pending requests already"
        );
        for foreign in [CsrRefusal::WrongCluster, CsrRefusal::BadName] {
            assert_eq!(refusal_echo(&received, &foreign, now), None);
        }
    }
}
