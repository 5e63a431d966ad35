//! The registration data types as one closed set: [`RegistrationKind`] (which data type,
//! its TypeMeta and how its `clustername` is derived, reference §4.2) and
//! [`RegistrationObject`] (one typed object of any of them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cluster::ManagedCluster;
use super::csr::CertificateSigningRequest;
use super::lease::Lease;
use super::names::{CERTIFICATE_SIGNING_REQUESTS, EVENTS, LEASES, MANAGED_CLUSTERS};
use crate::event_type::{DataType, DataTypeRef};
use crate::work::ObjectMeta;

/// One of the registration data types workbus carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationKind {
    /// `cluster.open-cluster-management.io.v1.managedclusters`.
    ManagedCluster,
    /// `certificates.k8s.io.v1.certificatesigningrequests`.
    CertificateSigningRequest,
    /// `coordination.k8s.io.v1.leases`.
    Lease,
    /// `events.k8s.io.v1.events`.
    Event,
}

impl RegistrationKind {
    /// Every kind.
    pub const ALL: [RegistrationKind; 4] = [
        RegistrationKind::ManagedCluster,
        RegistrationKind::CertificateSigningRequest,
        RegistrationKind::Lease,
        RegistrationKind::Event,
    ];

    /// The CloudEvents data type.
    pub fn data_type(self) -> DataTypeRef {
        match self {
            RegistrationKind::ManagedCluster => MANAGED_CLUSTERS,
            RegistrationKind::CertificateSigningRequest => CERTIFICATE_SIGNING_REQUESTS,
            RegistrationKind::Lease => LEASES,
            RegistrationKind::Event => EVENTS,
        }
    }

    /// The kind of a data type, if it is a registration one.
    pub fn from_data_type(data_type: &DataType) -> Option<RegistrationKind> {
        Self::ALL.into_iter().find(|k| data_type.is(k.data_type()))
    }

    /// The payload's `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            RegistrationKind::ManagedCluster => "cluster.open-cluster-management.io/v1",
            RegistrationKind::CertificateSigningRequest => "certificates.k8s.io/v1",
            RegistrationKind::Lease => "coordination.k8s.io/v1",
            RegistrationKind::Event => "events.k8s.io/v1",
        }
    }

    /// The payload's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            RegistrationKind::ManagedCluster => "ManagedCluster",
            RegistrationKind::CertificateSigningRequest => "CertificateSigningRequest",
            RegistrationKind::Lease => "Lease",
            RegistrationKind::Event => "Event",
        }
    }
}

/// A Kubernetes `events.k8s.io/v1` Event, kept as metadata plus raw members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeEvent {
    /// `metadata`; `namespace` is the cluster name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Every other member (`series`, `reason`, `note`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One registration object.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationObject {
    /// A ManagedCluster.
    ManagedCluster(ManagedCluster),
    /// A CertificateSigningRequest.
    CertificateSigningRequest(CertificateSigningRequest),
    /// A Lease.
    Lease(Lease),
    /// An Event.
    Event(KubeEvent),
}

impl RegistrationObject {
    /// Its kind.
    pub fn kind(&self) -> RegistrationKind {
        match self {
            RegistrationObject::ManagedCluster(_) => RegistrationKind::ManagedCluster,
            RegistrationObject::CertificateSigningRequest(_) => {
                RegistrationKind::CertificateSigningRequest
            }
            RegistrationObject::Lease(_) => RegistrationKind::Lease,
            RegistrationObject::Event(_) => RegistrationKind::Event,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            RegistrationObject::ManagedCluster(o) => &o.metadata,
            RegistrationObject::CertificateSigningRequest(o) => &o.metadata,
            RegistrationObject::Lease(o) => &o.metadata,
            RegistrationObject::Event(o) => &o.metadata,
        }
    }

    /// The cluster it belongs to, as sdk-go derives `clustername` (§4.2): the cluster's
    /// name, a CSR's [`super::names::CLUSTER_NAME_LABEL`] label, else the namespace.
    /// `None` when that is empty or missing.
    pub fn cluster_name(&self) -> Option<&str> {
        let name = match self {
            RegistrationObject::ManagedCluster(o) => o.metadata.name.as_str(),
            RegistrationObject::CertificateSigningRequest(o) => o.cluster_name()?,
            RegistrationObject::Lease(o) => o.metadata.namespace.as_str(),
            RegistrationObject::Event(o) => o.metadata.namespace.as_str(),
        };
        (!name.is_empty()).then_some(name)
    }

    /// The JSON payload: the whole object with `apiVersion`/`kind` forced.
    pub fn to_json(&self) -> Value {
        let value = match self {
            RegistrationObject::ManagedCluster(o) => serde_json::to_value(o),
            RegistrationObject::CertificateSigningRequest(o) => serde_json::to_value(o),
            RegistrationObject::Lease(o) => serde_json::to_value(o),
            RegistrationObject::Event(o) => serde_json::to_value(o),
        };
        // Maps with string keys, strings, numbers and bools only: cannot fail.
        let mut map = match value {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let kind = self.kind();
        map.insert("apiVersion".into(), Value::from(kind.api_version()));
        map.insert("kind".into(), Value::from(kind.kind()));
        Value::Object(map)
    }

    /// Reads a payload of `kind` (its `apiVersion`/`kind` members are not checked, as in
    /// sdk-go, and dropped).
    pub fn from_json(kind: RegistrationKind, value: Value) -> Result<Self, serde_json::Error> {
        let mut value = value;
        if let Value::Object(map) = &mut value {
            map.remove("apiVersion");
            map.remove("kind");
        }
        Ok(match kind {
            RegistrationKind::ManagedCluster => {
                RegistrationObject::ManagedCluster(serde_json::from_value(value)?)
            }
            RegistrationKind::CertificateSigningRequest => {
                RegistrationObject::CertificateSigningRequest(serde_json::from_value(value)?)
            }
            RegistrationKind::Lease => RegistrationObject::Lease(serde_json::from_value(value)?),
            RegistrationKind::Event => RegistrationObject::Event(serde_json::from_value(value)?),
        })
    }
}
