//! The well-known names of OCM cluster registration and health (reference
//! `registration.md` §1–§3): data types, condition types, reasons and messages, taints,
//! labels, annotations and the lease name. Hub and agent spell these only through here.

use crate::event_type::DataTypeRef;

/// `cluster.open-cluster-management.io.v1.managedclusters`.
pub const MANAGED_CLUSTERS: DataTypeRef = DataTypeRef {
    group: "cluster.open-cluster-management.io",
    version: "v1",
    resource: "managedclusters",
};

/// `certificates.k8s.io.v1.certificatesigningrequests`.
pub const CERTIFICATE_SIGNING_REQUESTS: DataTypeRef = DataTypeRef {
    group: "certificates.k8s.io",
    version: "v1",
    resource: "certificatesigningrequests",
};

/// `coordination.k8s.io.v1.leases`.
pub const LEASES: DataTypeRef = DataTypeRef {
    group: "coordination.k8s.io",
    version: "v1",
    resource: "leases",
};

/// `events.k8s.io.v1.events` (encode/decode only; the hub stores none).
pub const EVENTS: DataTypeRef = DataTypeRef {
    group: "events.k8s.io",
    version: "v1",
    resource: "events",
};

/// The lease every registered cluster renews, in namespace `<cluster>`.
pub const LEASE_NAME: &str = "managed-cluster-lease";
/// The lease's `holderIdentity` while held (OCM writes the lease name).
pub const LEASE_HOLDER: &str = LEASE_NAME;
/// `leaseDurationSeconds` when a cluster gives none (or 0).
pub const DEFAULT_LEASE_DURATION_SECONDS: i32 = 60;

/// Label naming the cluster of a CSR, lease or namespace.
pub const CLUSTER_NAME_LABEL: &str = "open-cluster-management.io/cluster-name";
/// The exclusive cluster-set membership label.
pub const CLUSTERSET_LABEL: &str = "cluster.open-cluster-management.io/clusterset";
/// The set a cluster without [`CLUSTERSET_LABEL`] joins.
pub const DEFAULT_CLUSTERSET: &str = "default";
/// The set that selects every cluster.
pub const GLOBAL_CLUSTERSET: &str = "global";
/// Finalizer the hub puts on an accepted cluster.
pub const API_RESOURCE_CLEANUP_FINALIZER: &str =
    "cluster.open-cluster-management.io/api-resource-cleanup";
/// Annotation set when a cluster was accepted by an auto-accept policy (RFC 3339 time).
pub const AUTOMATICALLY_ACCEPTED_ON_ANNOTATION: &str =
    "open-cluster-management.io/automatically-accepted-on";
/// Annotation `"true"` that disables the clock-sync check of a cluster.
pub const SKIP_CLOCK_SYNC_ANNOTATION: &str =
    "registration.open-cluster-management.io/skip-clock-sync-check";
/// Annotation OCM's gRPC hub puts on a CSR: the user that created it.
pub const CSR_USER_ANNOTATION: &str = "open-cluster-management.io/csr-user";

/// Taint set while Available is Unknown or missing.
pub const TAINT_UNREACHABLE: &str = "cluster.open-cluster-management.io/unreachable";
/// Taint set while Available is False.
pub const TAINT_UNAVAILABLE: &str = "cluster.open-cluster-management.io/unavailable";
/// Taint effects.
pub mod taint_effect {
    /// Placement does not select the cluster.
    pub const NO_SELECT: &str = "NoSelect";
    /// Placement avoids the cluster when it can.
    pub const PREFER_NO_SELECT: &str = "PreferNoSelect";
    /// Placement does not newly select the cluster.
    pub const NO_SELECT_IF_NEW: &str = "NoSelectIfNew";
}

/// ManagedCluster condition types.
pub mod condition {
    /// Written by the hub: the hub admin accepted (or denied) the cluster.
    pub const HUB_ACCEPTED: &str = "HubAcceptedManagedCluster";
    /// Written by the agent once accepted.
    pub const JOINED: &str = "ManagedClusterJoined";
    /// Agent: True/False; hub: Unknown when the lease stops.
    pub const AVAILABLE: &str = "ManagedClusterConditionAvailable";
    /// Written by the hub from lease renewals.
    pub const CLOCK_SYNCED: &str = "ManagedClusterConditionClockSynced";
    /// Written by the agent after a certificate rotation.
    pub const CERTIFICATE_ROTATED: &str = "ClusterCertificateRotated";
}

/// Condition reasons.
pub mod reason {
    /// HubAccepted True.
    pub const HUB_CLUSTER_ADMIN_ACCEPTED: &str = "HubClusterAdminAccepted";
    /// HubAccepted False.
    pub const HUB_CLUSTER_ADMIN_DENIED: &str = "HubClusterAdminDenied";
    /// Joined True.
    pub const MANAGED_CLUSTER_JOINED: &str = "ManagedClusterJoined";
    /// Available True (agent).
    pub const MANAGED_CLUSTER_AVAILABLE: &str = "ManagedClusterAvailable";
    /// Available False (agent).
    pub const KUBE_API_SERVER_UNAVAILABLE: &str = "ManagedClusterKubeAPIServerUnavailable";
    /// Available Unknown (hub).
    pub const LEASE_UPDATE_STOPPED: &str = "ManagedClusterLeaseUpdateStopped";
    /// ClockSynced True.
    pub const CLOCK_SYNCED: &str = "ManagedClusterClockSynced";
    /// ClockSynced False.
    pub const CLOCK_OUT_OF_SYNC: &str = "ManagedClusterClockOutOfSync";
    /// CSR approval of a renewal.
    pub const AUTO_APPROVED_BY_HUB: &str = "AutoApprovedByHubCSRApprovingController";
    /// ClusterCertificateRotated True (agent).
    pub const CLIENT_CERTIFICATE_UPDATED: &str = "ClientCertificateUpdated";
    /// ClusterCertificateRotated False (agent).
    pub const CLIENT_CERTIFICATE_UPDATE_FAILED: &str = "ClientCertificateUpdateFailed";
    /// A CSR the hub did not take (workbus: the refusal is echoed as a denied request
    /// so the agent learns why, see `message::csr_refused`).
    pub const CSR_REFUSED_BY_HUB: &str = "RefusedByHub";
}

/// Condition messages (OCM's exact texts).
pub mod message {
    /// HubAccepted True.
    pub const HUB_CLUSTER_ADMIN_ACCEPTED: &str = "Accepted by hub cluster admin";
    /// HubAccepted False.
    pub const HUB_CLUSTER_ADMIN_DENIED: &str = "Denied by hub cluster admin";
    /// Joined True.
    pub const MANAGED_CLUSTER_JOINED: &str = "Managed cluster joined";
    /// Available True.
    pub const MANAGED_CLUSTER_AVAILABLE: &str = "Managed cluster is available";
    /// Available Unknown.
    pub const LEASE_UPDATE_STOPPED: &str = "Registration agent stopped updating its lease.";
    /// ClockSynced True.
    pub const CLOCK_SYNCED: &str = "The clock of the managed cluster is synced with the hub.";
    /// ClockSynced False.
    pub const CLOCK_OUT_OF_SYNC: &str = "The clock of hub and agent is out of sync. This may cause the Unknown status and affect agent functionalities.";
    /// CSR approval of a renewal.
    pub const AUTO_APPROVED_BY_HUB: &str =
        "Auto approving Managed cluster agent certificate after SubjectAccessReview.";

    /// ClusterCertificateRotated True: OCM's text, the times as Go's `time.Time` prints
    /// them with `%v` (`2026-01-02 03:04:05 +0000 UTC`).
    pub fn certificate_rotated(
        not_before: chrono::DateTime<chrono::Utc>,
        not_after: chrono::DateTime<chrono::Utc>,
    ) -> String {
        const GO_TIME: &str = "%Y-%m-%d %H:%M:%S +0000 UTC";
        format!(
            "client certificate rotated starting from {} to {}",
            not_before.format(GO_TIME),
            not_after.format(GO_TIME)
        )
    }

    /// The message of a CSR the hub did not take.
    pub fn csr_refused(why: &str) -> String {
        format!("the hub did not take this certificate signing request: {why}")
    }
}

/// CSR signer names workbus uses.
pub mod signer {
    /// A client certificate from the hub CA (CN = cluster name), for mutual TLS on MQTT.
    pub const MQTT_CLIENT: &str = "workbus.io/mqtt-client";
    /// A per-cluster MQTT password (devices without certificates); not issued yet.
    pub const MQTT_PASSWORD: &str = "workbus.io/mqtt-password";
}

/// CSR condition types (`certificates.k8s.io/v1`).
pub mod csr_condition {
    /// The request was approved.
    pub const APPROVED: &str = "Approved";
    /// The request was denied.
    pub const DENIED: &str = "Denied";
    /// Signing failed.
    pub const FAILED: &str = "Failed";
}

/// The key usages a cluster's client certificate request carries.
pub const CLIENT_USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

/// At most this many pending CSRs per cluster (OCM stops creating them at 10, ocm#853).
pub const MAX_PENDING_CSRS_PER_CLUSTER: usize = 10;

/// Reserved cluster claim names (reference §1.4), which agents report first.
pub mod claim {
    /// A stable id of the cluster (Kubernetes: the `kube-system` namespace's uid).
    pub const ID: &str = "id.k8s.io";
    /// The Kubernetes version.
    pub const KUBE_VERSION: &str = "kubeversion.open-cluster-management.io";
    /// The platform (`AWS`, `Other`, …).
    pub const PLATFORM: &str = "platform.open-cluster-management.io";
    /// The product (`OpenShift`, `Other`, …).
    pub const PRODUCT: &str = "product.open-cluster-management.io";
}
