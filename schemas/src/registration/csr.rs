//! `CertificateSigningRequest` (`certificates.k8s.io/v1`): how a cluster asks the hub
//! for its identity (reference §2, §4.3). workbus signs `spec.request` (a PEM PKCS#10
//! request with CN = cluster name) with the hub CA and returns the PEM certificate in
//! `status.certificate`. `[]byte` fields travel base64-encoded, as Go writes them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::names::{CLUSTER_NAME_LABEL, csr_condition};
use crate::work::serde_go::nullable;
use crate::work::{ObjectMeta, Time};

/// A CertificateSigningRequest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateSigningRequest {
    /// `metadata`; carries the [`CLUSTER_NAME_LABEL`] label.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: CsrSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: CsrStatus,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CertificateSigningRequest.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrSpec {
    /// `request`: the PEM-encoded PKCS#10 request (base64 on the wire).
    #[serde(default, with = "base64_bytes")]
    pub request: Vec<u8>,
    /// `signerName`, e.g. [`super::names::signer::MQTT_CLIENT`].
    #[serde(default, deserialize_with = "nullable")]
    pub signer_name: String,
    /// `expirationSeconds`: the requested validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i32>,
    /// `usages`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub usages: Vec<String>,
    /// `username`: who created the request (set by the hub, not trusted from agents).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub username: String,
    /// Other members (`uid`, `groups`, `extra`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CertificateSigningRequest.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrStatus {
    /// `conditions` (`Approved`, `Denied`, `Failed`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<CsrCondition>,
    /// `certificate`: the issued PEM certificate (base64 on the wire); empty until signed.
    #[serde(default, with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub certificate: Vec<u8>,
}

/// One CSR condition (not a `metav1.Condition`: it has `lastUpdateTime`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrCondition {
    /// `type`: see [`csr_condition`].
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `status`: `True` (the only value Kubernetes allows for Approved/Denied).
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// `reason`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// `message`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// `lastUpdateTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// `lastTransitionTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl CertificateSigningRequest {
    /// The cluster the request is for (its [`CLUSTER_NAME_LABEL`] label).
    pub fn cluster_name(&self) -> Option<&str> {
        self.metadata.label(CLUSTER_NAME_LABEL)
    }

    fn has_condition(&self, type_: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == crate::work::status::condition_status::TRUE)
    }

    /// Approved (and not denied or failed).
    pub fn is_approved(&self) -> bool {
        self.has_condition(csr_condition::APPROVED)
            && !self.has_condition(csr_condition::DENIED)
            && !self.has_condition(csr_condition::FAILED)
    }

    /// Denied.
    pub fn is_denied(&self) -> bool {
        self.has_condition(csr_condition::DENIED)
    }

    /// Neither approved, denied nor failed.
    pub fn is_pending(&self) -> bool {
        self.status.conditions.iter().all(|c| {
            c.type_ != csr_condition::APPROVED
                && c.type_ != csr_condition::DENIED
                && c.type_ != csr_condition::FAILED
        })
    }
}

/// Go `[]byte` JSON: standard base64 with padding; `null` reads as empty.
mod base64_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            // A nil []byte without omitempty is `null` in Go.
            return s.serialize_none();
        }
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(s) => STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}
