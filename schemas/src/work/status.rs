//! # Status payloads: conditions, per-manifest status, API and wire shapes
//!
//! Agents report status in a status CloudEvent whose `data` is a [`ManifestBundleStatus`]
//! (reference §5.3): work-level `conditions` and a **flat** `resourceStatus` array. Stores
//! keep the API shape [`ManifestWorkStatus`], where the same list sits under
//! `resourceStatus.manifests`. The two convert into each other; the status hash
//! ([`crate::status_hash`]) is always computed over the API shape.
//!
//! JSON tags verified against `open-cluster-management-io/api` `work/v1/types.go` at
//! `1845fd8`, k8s `metav1.Condition` as vendored by sdk-go `3ea63fb`, and sdk-go's
//! `payload/manifestbundle.go`:
//!
//! - `metav1.Condition`: `type`, `status`, `lastTransitionTime`, `reason`, `message` have
//!   no omitempty (always written, `reason`/`message` even when empty; a zero time is
//!   `null`); `observedGeneration` is omitempty.
//! - `ManifestWorkStatus`: `conditions` omitempty; `resourceStatus` is a struct, so Go
//!   always writes it. `ManifestResourceStatus.manifests` omitempty.
//! - `ManifestCondition`: `resourceMeta` (always), `statusFeedback` (a struct: always
//!   written), `conditions` (**no** omitempty: a nil list is written `null`).
//! - `ManifestResourceMeta`: `ordinal`, `group`, `version`, `kind`, `resource`, `name`,
//!   `namespace`, none omitempty. `ordinal` is an `int32`.
//! - `StatusFeedbackResult.values` omitempty; `FeedbackValue`: `name`, `fieldValue`
//!   (always); `FieldValue`: `type` (always), `integer` (`*int64`), `string`, `boolean`,
//!   `jsonRaw` (pointers, omitempty).
//! - `ManifestBundleStatus`: `manifestBundle` omitempty, `conditions` **no** omitempty
//!   (an agent with no conditions sends `null`), `resourceStatus` omitempty.
//!
//! Lists without omitempty are written `null` when empty: Go distinguishes a nil list
//! (`null`) from an empty one (`[]`), we do not, and Go senders hold nil in practice.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::meta::{Time, opt_time};
use super::serde_go::{is_zero_i64, null_if_empty, nullable};
use super::spec::ManifestBundle;

/// Condition `status` values.
pub mod condition_status {
    /// `True`.
    pub const TRUE: &str = "True";
    /// `False`.
    pub const FALSE: &str = "False";
    /// `Unknown`.
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition types the protocol and the reference agent use.
pub mod condition_type {
    /// All manifests (or this manifest) applied.
    pub const APPLIED: &str = "Applied";
    /// Resources exist on the cluster.
    pub const AVAILABLE: &str = "Available";
    /// Being applied (rule-driven only).
    pub const PROGRESSING: &str = "Progressing";
    /// Degraded (rule-driven only).
    pub const DEGRADED: &str = "Degraded";
    /// Completed (condition rules).
    pub const COMPLETE: &str = "Complete";
    /// The work is being deleted on the agent.
    pub const DELETING: &str = "Deleting";
    /// sdk-go's final condition: the manifests are gone from the cluster (reference §6.5).
    pub const DELETED: &str = "Deleted";
    /// Per-manifest: status feedback evaluated.
    pub const STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";
}

/// A Kubernetes `metav1.Condition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `type`, e.g. [`condition_type::APPLIED`].
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `status`: `True`, `False` or `Unknown` (see [`condition_status`]).
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// `observedGeneration`, omitted when 0.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub observed_generation: i64,
    /// `lastTransitionTime`; always written, `null` when unset.
    #[serde(default, deserialize_with = "opt_time::deserialize")]
    pub last_transition_time: Option<Time>,
    /// `reason`, always written.
    #[serde(default, deserialize_with = "nullable")]
    pub reason: String,
    /// `message`, always written.
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Condition {
    /// A condition with the given fields, `observedGeneration` 0 and no extra members.
    pub fn new(type_: &str, status: &str, reason: &str, message: &str, at: Time) -> Self {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            observed_generation: 0,
            last_transition_time: Some(at),
            reason: reason.to_string(),
            message: message.to_string(),
            extra: Map::new(),
        }
    }

    /// Sets `observedGeneration` (builder style).
    pub fn with_observed_generation(mut self, generation: i64) -> Self {
        self.observed_generation = generation;
        self
    }

    /// True when `status` is `True`.
    pub fn is_true(&self) -> bool {
        self.status == condition_status::TRUE
    }
}

/// The condition of the given type, if any.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition the way apimachinery's `meta.SetStatusCondition` does: a new type is
/// appended (stamped `now` if it has no time); for an existing type the transition time
/// only changes when `status` changes, while reason, message and observedGeneration are
/// always updated. Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition, now: Time) -> bool {
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        let mut new = new;
        if new.last_transition_time.is_none() {
            new.last_transition_time = Some(now);
        }
        conditions.push(new);
        return true;
    };
    let mut changed = false;
    if existing.status != new.status {
        existing.status = new.status;
        existing.last_transition_time = Some(new.last_transition_time.unwrap_or(now));
        changed = true;
    }
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    if existing.observed_generation != new.observed_generation {
        existing.observed_generation = new.observed_generation;
        changed = true;
    }
    changed
}

/// Removes the condition of the given type; returns whether one was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}

/// Identity of one manifest in status. Every field is always written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestResourceMeta {
    /// `ordinal`: index of the manifest in the spec (Go `int32`).
    #[serde(default, deserialize_with = "nullable")]
    pub ordinal: i32,
    /// `group`.
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    /// `version`.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// `kind`.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// `resource` (plural; empty when the kind is unknown to the cluster).
    #[serde(default, deserialize_with = "nullable")]
    pub resource: String,
    /// `name`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `namespace` (empty for cluster-scoped objects).
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `statusFeedback`: the values collected by feedback rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusFeedbackResult {
    /// `values`, omitted when empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<FeedbackValue>,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One named feedback value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackValue {
    /// `name`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `fieldValue`.
    #[serde(rename = "fieldValue", default, deserialize_with = "nullable")]
    pub field_value: FieldValue,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A feedback value: the `{type, integer|string|boolean|jsonRaw}` union.
///
/// Well-formed values (a known `type` with exactly its own member set and nothing else)
/// decode to the typed variants. Anything else (an unknown `type`, a mismatched or extra
/// member) decodes to [`FieldValue::Other`] holding the members as Go would hold them, so
/// it re-encodes exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `{"type":"Integer","integer":N}`.
    Integer(i64),
    /// `{"type":"String","string":S}`.
    String(String),
    /// `{"type":"Boolean","boolean":B}`.
    Boolean(bool),
    /// `{"type":"JsonRaw","jsonRaw":S}`: a JSON document serialized into a string.
    JsonRaw(String),
    /// Any other combination, kept as sent.
    Other(RawFieldValue),
}

impl FieldValue {
    /// The `type` word for integers.
    pub const TYPE_INTEGER: &'static str = "Integer";
    /// The `type` word for strings.
    pub const TYPE_STRING: &'static str = "String";
    /// The `type` word for booleans.
    pub const TYPE_BOOLEAN: &'static str = "Boolean";
    /// The `type` word for raw JSON.
    pub const TYPE_JSON_RAW: &'static str = "JsonRaw";

    /// The member-by-member form, as Go's `workv1.FieldValue` struct holds it.
    pub fn to_raw(&self) -> RawFieldValue {
        let mut raw = RawFieldValue::default();
        match self {
            FieldValue::Integer(i) => {
                raw.type_ = Self::TYPE_INTEGER.to_string();
                raw.integer = Some(*i);
            }
            FieldValue::String(s) => {
                raw.type_ = Self::TYPE_STRING.to_string();
                raw.string = Some(s.clone());
            }
            FieldValue::Boolean(b) => {
                raw.type_ = Self::TYPE_BOOLEAN.to_string();
                raw.boolean = Some(*b);
            }
            FieldValue::JsonRaw(s) => {
                raw.type_ = Self::TYPE_JSON_RAW.to_string();
                raw.json_raw = Some(s.clone());
            }
            FieldValue::Other(r) => return r.clone(),
        }
        raw
    }

    /// Classifies a member-by-member value (see the type's documentation).
    pub fn from_raw(raw: RawFieldValue) -> Self {
        if !raw.extra.is_empty() {
            return FieldValue::Other(raw);
        }
        match (
            raw.type_.as_str(),
            &raw.integer,
            &raw.string,
            &raw.boolean,
            &raw.json_raw,
        ) {
            ("Integer", Some(i), None, None, None) => FieldValue::Integer(*i),
            ("String", None, Some(s), None, None) => FieldValue::String(s.clone()),
            ("Boolean", None, None, Some(b), None) => FieldValue::Boolean(*b),
            ("JsonRaw", None, None, None, Some(s)) => FieldValue::JsonRaw(s.clone()),
            _ => FieldValue::Other(raw),
        }
    }

    /// The `type` word.
    pub fn type_name(&self) -> &str {
        match self {
            FieldValue::Integer(_) => Self::TYPE_INTEGER,
            FieldValue::String(_) => Self::TYPE_STRING,
            FieldValue::Boolean(_) => Self::TYPE_BOOLEAN,
            FieldValue::JsonRaw(_) => Self::TYPE_JSON_RAW,
            FieldValue::Other(r) => &r.type_,
        }
    }
}

impl Default for FieldValue {
    /// Go's zero `FieldValue`: `{"type":""}`.
    fn default() -> Self {
        FieldValue::Other(RawFieldValue::default())
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawFieldValue::deserialize(d).map(FieldValue::from_raw)
    }
}

/// The member-by-member form of a [`FieldValue`] (Go's `workv1.FieldValue` struct plus
/// unknown members).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawFieldValue {
    /// `type`, always written.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `integer`, omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<i64>,
    /// `string`, omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// `boolean`, omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean: Option<bool>,
    /// `jsonRaw`, omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_raw: Option<String>,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The status of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCondition {
    /// `resourceMeta`.
    #[serde(default, deserialize_with = "nullable")]
    pub resource_meta: ManifestResourceMeta,
    /// `statusFeedback`; always written (`{}` when empty).
    #[serde(rename = "statusFeedback", default, deserialize_with = "nullable")]
    pub status_feedback: StatusFeedbackResult,
    /// `conditions`; written `null` when empty (Go tag has no omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        serialize_with = "null_if_empty"
    )]
    pub conditions: Vec<Condition>,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `status.resourceStatus` in the API shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestResourceStatus {
    /// `manifests`, omitted when empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifests: Vec<ManifestCondition>,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The API-shaped status (`ManifestWork.status`), the shape that is hashed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkStatus {
    /// Work-level `conditions`, omitted when empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// `resourceStatus`, always written (`{}` when empty).
    #[serde(default, deserialize_with = "nullable")]
    pub resource_status: ManifestResourceStatus,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestWorkStatus {
    /// The work-level condition of the given type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }
}

/// Status event data: the wire shape (reference §5.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundleStatus {
    /// `manifestBundle`: an optional echo of the spec (Maestro adds it; agents do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_bundle: Option<ManifestBundle>,
    /// Work-level `conditions`; written `null` when empty (no omitempty in sdk-go).
    #[serde(
        default,
        deserialize_with = "nullable",
        serialize_with = "null_if_empty"
    )]
    pub conditions: Vec<Condition>,
    /// `resourceStatus`: the flat per-manifest list, omitted when empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_status: Vec<ManifestCondition>,
    /// Unknown members, kept verbatim (and ignored by the status hash).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestBundleStatus {
    /// Splits into the API-shaped status and the optional spec echo, losing nothing but
    /// unknown members of the wire object, which go to the API status's `extra`.
    pub fn into_parts(self) -> (ManifestWorkStatus, Option<ManifestBundle>) {
        let status = ManifestWorkStatus {
            conditions: self.conditions,
            resource_status: ManifestResourceStatus {
                manifests: self.resource_status,
                extra: Map::new(),
            },
            extra: self.extra,
        };
        (status, self.manifest_bundle)
    }

    /// The inverse of [`into_parts`](Self::into_parts).
    pub fn from_parts(status: ManifestWorkStatus, bundle: Option<ManifestBundle>) -> Self {
        let mut wire = ManifestBundleStatus::from(status);
        wire.manifest_bundle = bundle;
        wire
    }
}

/// API status to wire status, as an agent sends it (no `manifestBundle`). Unknown members
/// of `resourceStatus` itself have no place in the flat wire list and are dropped.
impl From<ManifestWorkStatus> for ManifestBundleStatus {
    fn from(s: ManifestWorkStatus) -> Self {
        ManifestBundleStatus {
            manifest_bundle: None,
            conditions: s.conditions,
            resource_status: s.resource_status.manifests,
            extra: s.extra,
        }
    }
}

/// Wire status to API status, dropping the `manifestBundle` echo (use
/// [`ManifestBundleStatus::into_parts`] to keep it).
impl From<ManifestBundleStatus> for ManifestWorkStatus {
    fn from(s: ManifestBundleStatus) -> Self {
        s.into_parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> Time {
        Time::parse("2025-12-16T06:00:17Z").unwrap()
    }

    #[test]
    fn condition_json_matches_go_tags() {
        let c = Condition::new("Applied", "True", "R", "", t0());
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "Applied", "status": "True",
                   "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "R", "message": ""})
        );
        let c = Condition::default().with_observed_generation(3);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "", "status": "", "observedGeneration": 3,
                   "lastTransitionTime": null, "reason": "", "message": ""})
        );
    }

    #[test]
    fn field_value_variants() {
        for (v, expect) in [
            (
                FieldValue::Integer(-5),
                json!({"type": "Integer", "integer": -5}),
            ),
            (
                FieldValue::String("s".into()),
                json!({"type": "String", "string": "s"}),
            ),
            (
                FieldValue::Boolean(false),
                json!({"type": "Boolean", "boolean": false}),
            ),
            (
                FieldValue::JsonRaw("{}".into()),
                json!({"type": "JsonRaw", "jsonRaw": "{}"}),
            ),
        ] {
            let got = serde_json::to_value(&v).unwrap();
            assert_eq!(got, expect);
            assert_eq!(serde_json::from_value::<FieldValue>(got).unwrap(), v);
        }
        let odd = json!({"type": "Integer", "integer": 1, "string": "x", "future": [1]});
        let v: FieldValue = serde_json::from_value(odd.clone()).unwrap();
        assert!(matches!(v, FieldValue::Other(_)));
        assert_eq!(v.type_name(), "Integer");
        assert_eq!(serde_json::to_value(&v).unwrap(), odd);
        assert_eq!(
            serde_json::to_value(FieldValue::default()).unwrap(),
            json!({"type": ""})
        );
    }

    #[test]
    fn empty_shapes() {
        assert_eq!(
            serde_json::to_value(ManifestWorkStatus::default()).unwrap(),
            json!({"resourceStatus": {}})
        );
        assert_eq!(
            serde_json::to_value(ManifestBundleStatus::default()).unwrap(),
            json!({"conditions": null})
        );
        assert_eq!(
            serde_json::to_value(ManifestCondition::default()).unwrap(),
            json!({"resourceMeta": {"ordinal": 0, "group": "", "version": "", "kind": "",
                    "resource": "", "name": "", "namespace": ""},
                   "statusFeedback": {}, "conditions": null})
        );
    }

    #[test]
    fn set_condition_follows_apimachinery() {
        let mut conds = Vec::new();
        let later = Time::parse("2025-12-16T07:00:00Z").unwrap();
        let mut c = Condition::new("Applied", "True", "A", "m", t0());
        c.last_transition_time = None;
        assert!(set_condition(&mut conds, c.clone(), t0()));
        assert_eq!(conds[0].last_transition_time, Some(t0()));
        // Same status: time kept even though reason changes.
        c.reason = "B".into();
        assert!(set_condition(&mut conds, c.clone(), later));
        assert_eq!(conds[0].last_transition_time, Some(t0()));
        assert_eq!(conds[0].reason, "B");
        assert!(!set_condition(&mut conds, c.clone(), later));
        // Status change: new time.
        c.status = "False".into();
        assert!(set_condition(&mut conds, c, later));
        assert_eq!(conds[0].last_transition_time, Some(later));
        assert!(remove_condition(&mut conds, "Applied"));
        assert!(conds.is_empty());
    }

    #[test]
    fn wire_and_api_shapes_convert_losslessly() {
        let mc = ManifestCondition {
            resource_meta: ManifestResourceMeta {
                ordinal: 2,
                name: "web".into(),
                ..Default::default()
            },
            conditions: vec![Condition::new("Applied", "True", "A", "m", t0())],
            ..Default::default()
        };
        let mut status = ManifestWorkStatus {
            conditions: vec![Condition::new("Applied", "True", "W", "w", t0())],
            resource_status: ManifestResourceStatus {
                manifests: vec![mc],
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        status.extra.insert("future".into(), json!(1));
        let wire = ManifestBundleStatus::from(status.clone());
        let v = serde_json::to_value(&wire).unwrap();
        assert!(v["resourceStatus"].is_array());
        assert_eq!(v["future"], json!(1));
        let bundle = ManifestBundle::default();
        let (back, echo) =
            ManifestBundleStatus::from_parts(status.clone(), Some(bundle.clone())).into_parts();
        assert_eq!(back, status);
        assert_eq!(echo, Some(bundle));
        assert_eq!(ManifestWorkStatus::from(wire), status);
    }
}
