//! # Spec payloads: the wire `ManifestBundle` and the API `ManifestWork`
//!
//! A spec CloudEvent's `data` is a [`ManifestBundle`] (reference §5.1). Hub and agent
//! stores keep the Kubernetes-shaped [`ManifestWork`] whose [`ManifestWorkSpec`] holds the
//! same information laid out as the API does (`workload.manifests`, `executor`). The two
//! convert into each other without loss of the known fields or of top-level unknown ones.
//!
//! JSON tags verified against `open-cluster-management-io/api` `work/v1/types.go` at
//! `1845fd8` (and v1.3.0 as vendored by sdk-go `3ea63fb`), and sdk-go's
//! `pkg/cloudevents/clients/work/payload/manifestbundle.go`:
//!
//! - `ManifestBundle`: `manifests` (no omitempty: always written), `deleteOption`,
//!   `manifestConfigs`, `executer` (all omitempty; note the wire spelling).
//! - `DeleteOption`: `propagationPolicy` (always), `selectivelyOrphans`,
//!   `ttlSecondsAfterFinished` (omitempty). `SelectivelyOrphan.orphaningRules` omitempty.
//! - `ResourceIdentifier` / `OrphaningRule`: `group`, `resource`, `name`, `namespace`
//!   (all always written).
//! - `ManifestConfigOption`: `resourceIdentifier` (always), `feedbackRules`,
//!   `updateStrategy`, `conditionRules`, `feedbackScrapeType` (omitempty).
//! - `FeedbackRule`: `type` (always), `jsonPaths` (omitempty). `JsonPath`: `name`, `path`
//!   (always), `version` (omitempty).
//! - `UpdateStrategy`: `type`, `serverSideApply` (omitempty). `ServerSideApplyConfig`:
//!   `force` (always, even `false`), `fieldManager`, `ignoreFields` (omitempty).
//!   `IgnoreField`: `condition` (always), `jsonPaths`, `jsonPointers`,
//!   `jqPathExpressions` (omitempty).
//! - `ConditionRule`: `condition`, `type`, `celExpressions`, `message`,
//!   `messageExpression` (none omitempty, so an unset list is written `null`).
//! - `ManifestWorkExecutor.subject` (always); subject `type` (always), `serviceAccount`
//!   (omitempty); service account `namespace`, `name` (always).
//! - `ManifestWorkSpec`: `workload` (a struct, so always written even though tagged
//!   omitempty), `deleteOption`, `manifestConfigs`, `executor` (omitempty);
//!   `ManifestsTemplate.manifests` omitempty.
//! - `ManifestWork`: `apiVersion`, `kind` (omitempty), `metadata`, `spec` (always),
//!   `status` (we omit it when `None`; Go would write `{"resourceStatus":{}}`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::meta::ObjectMeta;
use super::serde_go::{null_if_empty, nullable};
use super::status::ManifestWorkStatus;

/// One manifest: a raw Kubernetes object, kept exactly as JSON.
pub type Manifest = Map<String, Value>;

/// Spec event data (`io.open-cluster-management.works.v1alpha1.manifestbundles`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundle {
    /// The Kubernetes objects to apply. Always written, even when empty (which validation
    /// rejects); `null` or a missing key reads as empty, as in Go.
    #[serde(default, deserialize_with = "nullable")]
    pub manifests: Vec<Manifest>,
    /// How the applied objects are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<DeleteOption>,
    /// Per-resource apply/feedback configuration.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifest_configs: Vec<ManifestConfigOption>,
    /// Identity the agent applies as. Spelled `executer` on the wire (sdk-go's tag).
    #[serde(rename = "executer", default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ManifestWorkExecutor>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

wire_enum! {
    /// Typed view of [`DeleteOption::propagation_policy`].
    pub enum PropagationPolicy {
        /// Delete the applied objects and wait for them to be gone.
        Foreground => "Foreground",
        /// Leave every applied object in place.
        Orphan => "Orphan",
        /// Orphan the objects matched by `selectivelyOrphans`, delete the rest.
        SelectivelyOrphan => "SelectivelyOrphan",
        /// The empty string (possible under Maestro, which runs no CRD defaulting).
        Unset => "",
    }
}

/// `deleteOption`: the deletion strategy for the applied objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOption {
    /// `propagationPolicy`, always written (no omitempty in Go). See [`PropagationPolicy`].
    #[serde(default, deserialize_with = "nullable")]
    pub propagation_policy: String,
    /// `selectivelyOrphans`: rules for `SelectivelyOrphan`.
    #[serde(
        rename = "selectivelyOrphans",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub selectively_orphans: Option<SelectivelyOrphan>,
    /// `ttlSecondsAfterFinished`: delete the work this long after it completes (hub side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeleteOption {
    /// A delete option with just a propagation policy.
    pub fn new(policy: PropagationPolicy) -> Self {
        DeleteOption {
            propagation_policy: policy.into(),
            ..Default::default()
        }
    }

    /// The typed propagation policy.
    pub fn policy(&self) -> PropagationPolicy {
        PropagationPolicy::from(self.propagation_policy.as_str())
    }
}

/// `selectivelyOrphans`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectivelyOrphan {
    /// `orphaningRules`: the objects to orphan.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub orphaning_rules: Vec<OrphaningRule>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Identifies one Kubernetes object by group, plural resource, namespace and name.
/// Every field is always written (no omitempty in Go); empty group is the core group,
/// empty namespace a cluster-scoped object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceIdentifier {
    /// `group`.
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    /// `resource` (plural).
    #[serde(default, deserialize_with = "nullable")]
    pub resource: String,
    /// `name`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `namespace`.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An orphaning rule has the same shape as a resource identifier (Go:
/// `type OrphaningRule ResourceIdentifier`).
pub type OrphaningRule = ResourceIdentifier;

wire_enum! {
    /// Typed view of [`ManifestConfigOption::feedback_scrape_type`].
    pub enum FeedbackScrapeType {
        /// Poll the object (the default).
        Poll => "Poll",
        /// Watch the object with an informer.
        Watch => "Watch",
        /// Not set.
        Unset => "",
    }
}

/// One entry of `manifestConfigs`: configuration for the manifests matched by
/// `resourceIdentifier`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestConfigOption {
    /// Which manifests this applies to (name and namespace may be globs).
    #[serde(default, deserialize_with = "nullable")]
    pub resource_identifier: ResourceIdentifier,
    /// Status feedback rules.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub feedback_rules: Vec<FeedbackRule>,
    /// How the manifests are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Condition rules (newer API).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub condition_rules: Vec<ConditionRule>,
    /// `feedbackScrapeType` (newer API). See [`FeedbackScrapeType`].
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub feedback_scrape_type: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestConfigOption {
    /// The typed feedback scrape type.
    pub fn scrape_type(&self) -> FeedbackScrapeType {
        FeedbackScrapeType::from(self.feedback_scrape_type.as_str())
    }
}

wire_enum! {
    /// Typed view of [`FeedbackRule::type_`].
    pub enum FeedbackType {
        /// Fixed, per-kind paths.
        WellKnownStatus => "WellKnownStatus",
        /// The paths listed in `jsonPaths`.
        JsonPaths => "JSONPaths",
    }
}

/// A status feedback rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRule {
    /// `type`, always written. See [`FeedbackType`].
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `jsonPaths`, for `JSONPaths` rules.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub json_paths: Vec<JsonPath>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FeedbackRule {
    /// The typed rule type.
    pub fn kind(&self) -> FeedbackType {
        FeedbackType::from(self.type_.as_str())
    }
}

/// One named JSONPath of a feedback rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonPath {
    /// `name`: the feedback value's name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `version`: only evaluate on this object version (omitted when empty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    /// `path`: a Kubernetes JSONPath without braces, e.g. `.status.readyReplicas`.
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

wire_enum! {
    /// Typed view of [`UpdateStrategy::type_`].
    pub enum UpdateStrategyType {
        /// Create or update (the default).
        Update => "Update",
        /// Create, never update.
        CreateOnly => "CreateOnly",
        /// Server-side apply.
        ServerSideApply => "ServerSideApply",
        /// Never create or modify; only read.
        ReadOnly => "ReadOnly",
        /// Not set (means `Update`).
        Unset => "",
    }
}

/// `updateStrategy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `type` (omitted when empty). See [`UpdateStrategyType`].
    #[serde(
        rename = "type",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
    /// `serverSideApply` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<ServerSideApplyConfig>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl UpdateStrategy {
    /// A strategy of the given type with no further options.
    pub fn new(kind: UpdateStrategyType) -> Self {
        UpdateStrategy {
            type_: kind.into(),
            ..Default::default()
        }
    }

    /// The typed strategy type.
    pub fn kind(&self) -> UpdateStrategyType {
        UpdateStrategyType::from(self.type_.as_str())
    }
}

/// `serverSideApply` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideApplyConfig {
    /// `force`: always written, even when `false` (no omitempty in Go).
    #[serde(default, deserialize_with = "nullable")]
    pub force: bool,
    /// `fieldManager` (omitted when empty; the agent defaults it to `work-agent`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub field_manager: String,
    /// `ignoreFields` (newer API).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignore_fields: Vec<IgnoreField>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

wire_enum! {
    /// Typed view of [`IgnoreField::condition`].
    pub enum IgnoreFieldsCondition {
        /// Leave the fields to the spoke once the object exists (the default).
        OnSpokePresent => "OnSpokePresent",
        /// Keep spoke edits to the fields until the manifest itself changes.
        OnSpokeChange => "OnSpokeChange",
        /// Not set (means `OnSpokePresent`).
        Unset => "",
    }
}

/// One `ignoreFields` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreField {
    /// `condition`: `OnSpokePresent` or `OnSpokeChange`; always written.
    #[serde(default, deserialize_with = "nullable")]
    pub condition: String,
    /// `jsonPaths`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub json_paths: Vec<String>,
    /// `jsonPointers` (RFC 6901).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub json_pointers: Vec<String>,
    /// `jqPathExpressions`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jq_path_expressions: Vec<String>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IgnoreField {
    /// The typed condition.
    pub fn kind(&self) -> IgnoreFieldsCondition {
        IgnoreFieldsCondition::from(self.condition.as_str())
    }
}

/// One `conditionRules` entry. No field is omitempty in Go, so all are always written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionRule {
    /// `condition`: the condition type produced.
    #[serde(default, deserialize_with = "nullable")]
    pub condition: String,
    /// `type`: `WellKnownConditions` or `CEL`.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `celExpressions`, written `null` when empty (a Go nil slice).
    #[serde(
        default,
        deserialize_with = "nullable",
        serialize_with = "null_if_empty"
    )]
    pub cel_expressions: Vec<String>,
    /// `message`.
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    /// `messageExpression`.
    #[serde(default, deserialize_with = "nullable")]
    pub message_expression: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `executer` (wire) / `executor` (API): the identity the agent applies as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestWorkExecutor {
    /// `subject`, always written.
    #[serde(default, deserialize_with = "nullable")]
    pub subject: ManifestWorkExecutorSubject,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestWorkExecutor {
    /// An executor that is the given service account.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        ManifestWorkExecutor {
            subject: ManifestWorkExecutorSubject {
                type_: ManifestWorkExecutorSubject::TYPE_SERVICE_ACCOUNT.to_string(),
                service_account: Some(ManifestWorkSubjectServiceAccount {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    extra: Map::new(),
                }),
                extra: Map::new(),
            },
            extra: Map::new(),
        }
    }
}

/// The executor's subject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkExecutorSubject {
    /// `type`; the only defined value is [`Self::TYPE_SERVICE_ACCOUNT`]. Always written.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// `serviceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ManifestWorkSubjectServiceAccount>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestWorkExecutorSubject {
    /// The subject type `ServiceAccount`.
    pub const TYPE_SERVICE_ACCOUNT: &'static str = "ServiceAccount";
}

/// A service account reference; both fields always written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestWorkSubjectServiceAccount {
    /// `namespace`.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// `name`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `spec.workload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestsTemplate {
    /// `manifests` (omitted when empty in the API shape).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifests: Vec<Manifest>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The API-shaped spec (`ManifestWork.spec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkSpec {
    /// `workload`; always written (a Go struct is never omitted).
    #[serde(default, deserialize_with = "nullable")]
    pub workload: ManifestsTemplate,
    /// `deleteOption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<DeleteOption>,
    /// `manifestConfigs`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub manifest_configs: Vec<ManifestConfigOption>,
    /// `executor` (API spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ManifestWorkExecutor>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Wire bundle to API spec: `manifests` move under `workload`, `executer` becomes
/// `executor`, unknown top-level members carry over.
impl From<ManifestBundle> for ManifestWorkSpec {
    fn from(b: ManifestBundle) -> Self {
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: b.manifests,
                extra: Map::new(),
            },
            delete_option: b.delete_option,
            manifest_configs: b.manifest_configs,
            executor: b.executor,
            extra: b.extra,
        }
    }
}

/// API spec to wire bundle; the inverse of the conversion above. Unknown members inside
/// `workload` (there are none in any API version) have no place on the wire and are dropped.
impl From<ManifestWorkSpec> for ManifestBundle {
    fn from(s: ManifestWorkSpec) -> Self {
        ManifestBundle {
            manifests: s.workload.manifests,
            delete_option: s.delete_option,
            manifest_configs: s.manifest_configs,
            executor: s.executor,
            extra: s.extra,
        }
    }
}

/// A `work.open-cluster-management.io/v1` `ManifestWork`, as hub and agent stores hold it
/// and as `kubectl` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWork {
    /// `apiVersion` (omitted when empty, as Go's `TypeMeta` does).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// `kind` (omitted when empty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// `metadata`.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ManifestWorkSpec,
    /// `status`; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ManifestWorkStatus>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManifestWork {
    /// `work.open-cluster-management.io/v1`.
    pub const API_VERSION: &'static str = "work.open-cluster-management.io/v1";
    /// `ManifestWork`.
    pub const KIND: &'static str = "ManifestWork";
    /// The work's `kind.group`, as kubectl names it in its messages
    /// (`manifestwork.work.open-cluster-management.io/<name> created`).
    pub const KUBECTL_NAME: &'static str = "manifestwork.work.open-cluster-management.io";

    /// A work with `apiVersion`/`kind` set, the given metadata and spec, and no status.
    pub fn new(metadata: ObjectMeta, spec: ManifestWorkSpec) -> Self {
        ManifestWork {
            api_version: Self::API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            metadata,
            spec,
            status: None,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_bundle_still_writes_manifests() {
        assert_eq!(
            serde_json::to_value(ManifestBundle::default()).unwrap(),
            json!({"manifests": []})
        );
    }

    #[test]
    fn executer_is_the_wire_spelling() {
        let b = ManifestBundle {
            executor: Some(ManifestWorkExecutor::service_account("ns1", "sa1")),
            ..Default::default()
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v["executer"],
            json!({"subject": {"type": "ServiceAccount",
                   "serviceAccount": {"namespace": "ns1", "name": "sa1"}}})
        );
        let spec = ManifestWorkSpec::from(b.clone());
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v.get("executer").is_none());
        assert_eq!(v["executor"]["subject"]["type"], "ServiceAccount");
        assert_eq!(ManifestBundle::from(spec), b);
    }

    #[test]
    fn wire_enums_keep_unknown_values() {
        let d = DeleteOption::new(PropagationPolicy::Foreground);
        assert_eq!(d.propagation_policy, "Foreground");
        assert_eq!(d.policy(), PropagationPolicy::Foreground);
        let odd: DeleteOption =
            serde_json::from_value(json!({"propagationPolicy": "Whatever"})).unwrap();
        assert_eq!(odd.policy(), PropagationPolicy::Other("Whatever".into()));
        assert_eq!(
            serde_json::to_value(&odd).unwrap(),
            json!({"propagationPolicy": "Whatever"})
        );
        assert_eq!(FeedbackType::from("JSONPaths"), FeedbackType::JsonPaths);
        assert_eq!(UpdateStrategyType::ReadOnly.as_str(), "ReadOnly");
    }

    #[test]
    fn go_always_present_fields_are_written() {
        let d = DeleteOption::default();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"propagationPolicy": ""})
        );
        let ssa = ServerSideApplyConfig::default();
        assert_eq!(serde_json::to_value(&ssa).unwrap(), json!({"force": false}));
        let rule = ConditionRule::default();
        assert_eq!(
            serde_json::to_value(&rule).unwrap(),
            json!({"condition": "", "type": "", "celExpressions": null,
                   "message": "", "messageExpression": ""})
        );
        assert_eq!(
            serde_json::to_value(ManifestWorkSpec::default()).unwrap(),
            json!({"workload": {}})
        );
    }

    #[test]
    fn null_manifests_read_as_empty() {
        let b: ManifestBundle = serde_json::from_value(json!({"manifests": null})).unwrap();
        assert!(b.manifests.is_empty());
        let b: ManifestBundle = serde_json::from_value(json!({})).unwrap();
        assert!(b.manifests.is_empty());
    }
}
