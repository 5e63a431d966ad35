//! # ManifestWork payload types
//!
//! The JSON shapes that travel as CloudEvent `data` for the
//! `io.open-cluster-management.works.v1alpha1.manifestbundles` data type (reference
//! `ocm-wire-protocol.md` §5), plus the Kubernetes-style `ManifestWork` object that hub
//! and agent keep in their stores:
//!
//! - [`meta`]: the Kubernetes `ObjectMeta` subset carried in the `metadata` extension,
//!   the Go-compatible [`Time`], and the protocol's label/annotation/finalizer keys.
//! - [`spec`]: the wire [`ManifestBundle`] (spec event data) and the API-shaped
//!   [`ManifestWork`] / [`ManifestWorkSpec`], with lossless conversions.
//! - [`status`]: conditions, per-manifest status, the API-shaped [`ManifestWorkStatus`]
//!   and the wire [`ManifestBundleStatus`] (status event data).
//! - [`validation`]: sdk-go's manifest validation with its exact error texts.
//! - [`applied`]: the `AppliedManifestWork` the agent keeps on the managed cluster (name,
//!   hub hash, finalizer, spec and status shapes).
//! - [`names`]: cluster (DNS-1123 label) and work (DNS-1123 subdomain) names, with
//!   apimachinery's texts.
//!
//! Design rules shared by every type here:
//!
//! - **Go `encoding/json` output.** Field names, `omitempty` and "always present" choices
//!   follow the Go JSON tags of `open-cluster-management.io/api` `work/v1/types.go` and
//!   k8s `metav1`, so what we emit is what a Go peer would emit for the same object.
//! - **Lenient input like Go.** `null` is accepted wherever Go would accept it (Go leaves
//!   the zero value), and a missing field is its zero value.
//! - **Unknown fields survive.** Every struct has a `#[serde(flatten)] extra` map, so
//!   fields added by newer API versions round-trip through a workbus hub or agent. The
//!   status hash deliberately ignores them (a Go peer's structs drop them before hashing).
//! - **Enum-like values stay strings** (e.g. `propagationPolicy`), with typed accessors,
//!   so an unknown value from a newer peer round-trips unchanged.

/// Declares a string-backed enum for an enum-like wire value: known values get variants,
/// anything else is kept in `Other` so it survives a round trip.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The exact wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }
    };
}

pub mod applied;
pub mod meta;
pub mod names;
pub mod spec;
pub mod status;
pub mod strict;
pub mod validation;

pub use meta::{ObjectMeta, Time, TimeParseError};
pub use spec::{
    ConditionRule, DeleteOption, FeedbackRule, IgnoreField, JsonPath, Manifest, ManifestBundle,
    ManifestConfigOption, ManifestWork, ManifestWorkExecutor, ManifestWorkExecutorSubject,
    ManifestWorkSpec, ManifestWorkSubjectServiceAccount, ManifestsTemplate, OrphaningRule,
    ResourceIdentifier, SelectivelyOrphan, ServerSideApplyConfig, UpdateStrategy,
};
pub use status::{
    Condition, FeedbackValue, FieldValue, ManifestBundleStatus, ManifestCondition,
    ManifestResourceMeta, ManifestResourceStatus, ManifestWorkStatus, RawFieldValue,
    StatusFeedbackResult,
};
pub use validation::{BundleError, MANIFEST_SIZE_LIMIT};

/// Serde helpers that give our types Go `encoding/json` behaviour.
pub(crate) mod serde_go {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Deserializes `null` (and, with `#[serde(default)]`, a missing field) as the zero
    /// value, which is what Go does when it decodes `null` into a non-pointer field.
    pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// Serializes an empty list as `null`: the Go encoding of a nil slice whose JSON tag has
    /// no `omitempty`. We do not track nil-versus-empty, and Go senders in practice hold nil
    /// rather than an empty slice, so empty is written the way Go writes nil.
    pub(crate) fn null_if_empty<S, T>(v: &[T], s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        if v.is_empty() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    /// `skip_serializing_if` for Go `omitempty` on an integer.
    pub(crate) fn is_zero_i64(v: &i64) -> bool {
        *v == 0
    }
}
