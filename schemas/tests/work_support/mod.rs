//! Shared helpers for the `work_*` and `json_schema` integration tests: fixture loading,
//! proptest strategies for the ManifestWork payload types and for arbitrary JSON, and a
//! JSON equality that treats numbers by value.
//!
//! Each test crate uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

use workbus_schemas::work::spec::{
    ConditionRule, DeleteOption, FeedbackRule, IgnoreField, JsonPath, ManifestBundle,
    ManifestConfigOption, ManifestWorkExecutor, ResourceIdentifier, SelectivelyOrphan,
    ServerSideApplyConfig, UpdateStrategy,
};
use workbus_schemas::work::status::{
    Condition, FeedbackValue, FieldValue, ManifestBundleStatus, ManifestCondition,
    ManifestResourceMeta, RawFieldValue, StatusFeedbackResult,
};
use workbus_schemas::work::{ManifestResourceStatus, ManifestWorkStatus, Time};

/// Reads a Maestro fixture (`workbus_testkit::fixtures::maestro`) as JSON.
pub fn fixture(name: &str) -> Value {
    let bytes = workbus_testkit::fixtures::maestro::read(name);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// JSON equality where numbers compare by value (`1` equals `1.0`), since Go's float
/// formatting prints integral floats without a fraction.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p == q && (x.is_f64() || y.is_f64()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Short strings including the characters Go escapes specially.
pub fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._-]{0,8}",
        "[a-z<>&\"\\\\\u{8}\u{c}\n\t\u{1}\u{7f}é\u{2028}\u{2029}\u{1F600} ]{0,8}",
    ]
}

/// Any JSON value, nested a few levels.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(arb_text(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Unknown members: keys that no modelled type uses.
pub fn arb_extra() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("zz[a-z]{1,4}", arb_json(), 0..2).prop_map(|m| m.into_iter().collect())
}

/// Field names of the payload types, so that random objects hit the typed paths.
const KNOWN_KEYS: &[&str] = &[
    "manifests",
    "deleteOption",
    "manifestConfigs",
    "executer",
    "executor",
    "propagationPolicy",
    "selectivelyOrphans",
    "orphaningRules",
    "ttlSecondsAfterFinished",
    "resourceIdentifier",
    "feedbackRules",
    "jsonPaths",
    "updateStrategy",
    "serverSideApply",
    "force",
    "fieldManager",
    "ignoreFields",
    "conditionRules",
    "celExpressions",
    "subject",
    "serviceAccount",
    "type",
    "name",
    "namespace",
    "group",
    "resource",
    "path",
    "version",
    "conditions",
    "status",
    "observedGeneration",
    "lastTransitionTime",
    "reason",
    "message",
    "resourceStatus",
    "resourceMeta",
    "ordinal",
    "kind",
    "statusFeedback",
    "values",
    "fieldValue",
    "integer",
    "string",
    "boolean",
    "jsonRaw",
    "manifestBundle",
    "metadata",
    "spec",
    "workload",
    "labels",
    "annotations",
    "finalizers",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "uid",
];

/// JSON objects whose keys are mostly payload field names, with random values: shaped
/// enough to get past the first level of decoding, wrong often enough to hit errors.
pub fn arb_shaped_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => proptest::sample::select(KNOWN_KEYS).prop_map(str::to_string),
        1 => arb_text(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(1.5)),
        Just(Value::from("2025-12-16T06:00:17Z")),
        Just(Value::from("Integer")),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 5, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_time() -> impl Strategy<Value = Time> {
    // Roughly years 1970..2100.
    (0i64..4_102_444_800).prop_map(|s| Time::from_unix_seconds(s).expect("in range"))
}

fn arb_resource_identifier() -> impl Strategy<Value = ResourceIdentifier> {
    (arb_text(), arb_text(), arb_text(), arb_text(), arb_extra()).prop_map(
        |(group, resource, name, namespace, extra)| ResourceIdentifier {
            group,
            resource,
            name,
            namespace,
            extra,
        },
    )
}

fn arb_manifest() -> impl Strategy<Value = Map<String, Value>> {
    (
        arb_text(),
        arb_text(),
        btree_map(arb_text(), arb_json(), 0..3),
    )
        .prop_map(|(kind, name, rest)| {
            let mut m: Map<String, Value> = rest.into_iter().collect();
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), kind.into());
            m.insert("metadata".into(), serde_json::json!({ "name": name }));
            m
        })
}

fn arb_delete_option() -> impl Strategy<Value = DeleteOption> {
    (
        prop_oneof![
            Just("Foreground".to_string()),
            Just("Orphan".to_string()),
            Just("SelectivelyOrphan".to_string()),
            arb_text()
        ],
        proptest::option::of(
            (vec(arb_resource_identifier(), 0..3), arb_extra()).prop_map(
                |(orphaning_rules, extra)| SelectivelyOrphan {
                    orphaning_rules,
                    extra,
                },
            ),
        ),
        proptest::option::of(any::<i64>()),
        arb_extra(),
    )
        .prop_map(
            |(propagation_policy, selectively_orphans, ttl_seconds_after_finished, extra)| {
                DeleteOption {
                    propagation_policy,
                    selectively_orphans,
                    ttl_seconds_after_finished,
                    extra,
                }
            },
        )
}

fn arb_config() -> impl Strategy<Value = ManifestConfigOption> {
    let json_path = (arb_text(), arb_text(), arb_text(), arb_extra()).prop_map(
        |(name, version, path, extra)| JsonPath {
            name,
            version,
            path,
            extra,
        },
    );
    let feedback =
        (arb_text(), vec(json_path, 0..3), arb_extra()).prop_map(|(type_, json_paths, extra)| {
            FeedbackRule {
                type_,
                json_paths,
                extra,
            }
        });
    let ignore = (
        arb_text(),
        vec(arb_text(), 0..2),
        vec(arb_text(), 0..2),
        vec(arb_text(), 0..2),
    )
        .prop_map(
            |(condition, json_paths, json_pointers, jq_path_expressions)| IgnoreField {
                condition,
                json_paths,
                json_pointers,
                jq_path_expressions,
                extra: Map::new(),
            },
        );
    let ssa = (any::<bool>(), arb_text(), vec(ignore, 0..2), arb_extra()).prop_map(
        |(force, field_manager, ignore_fields, extra)| ServerSideApplyConfig {
            force,
            field_manager,
            ignore_fields,
            extra,
        },
    );
    let strategy = (arb_text(), proptest::option::of(ssa), arb_extra()).prop_map(
        |(type_, server_side_apply, extra)| UpdateStrategy {
            type_,
            server_side_apply,
            extra,
        },
    );
    let rule = (
        arb_text(),
        arb_text(),
        vec(arb_text(), 0..3),
        arb_text(),
        arb_text(),
    )
        .prop_map(
            |(condition, type_, cel_expressions, message, message_expression)| ConditionRule {
                condition,
                type_,
                cel_expressions,
                message,
                message_expression,
                extra: Map::new(),
            },
        );
    (
        arb_resource_identifier(),
        vec(feedback, 0..2),
        proptest::option::of(strategy),
        vec(rule, 0..2),
        arb_text(),
        arb_extra(),
    )
        .prop_map(
            |(
                resource_identifier,
                feedback_rules,
                update_strategy,
                condition_rules,
                feedback_scrape_type,
                extra,
            )| ManifestConfigOption {
                resource_identifier,
                feedback_rules,
                update_strategy,
                condition_rules,
                feedback_scrape_type,
                extra,
            },
        )
}

/// Any ManifestBundle, unknown members included.
pub fn arb_bundle() -> impl Strategy<Value = ManifestBundle> {
    (
        vec(arb_manifest(), 0..3),
        proptest::option::of(arb_delete_option()),
        vec(arb_config(), 0..2),
        proptest::option::of(
            (arb_text(), arb_text())
                .prop_map(|(ns, n)| ManifestWorkExecutor::service_account(&ns, &n)),
        ),
        arb_extra(),
    )
        .prop_map(
            |(manifests, delete_option, manifest_configs, executor, extra)| ManifestBundle {
                manifests,
                delete_option,
                manifest_configs,
                executor,
                extra,
            },
        )
}

/// Any condition.
pub fn arb_condition() -> impl Strategy<Value = Condition> {
    (
        arb_text(),
        prop_oneof![
            Just("True".to_string()),
            Just("False".to_string()),
            arb_text()
        ],
        prop_oneof![Just(0i64), any::<i64>()],
        proptest::option::of(arb_time()),
        arb_text(),
        arb_text(),
        arb_extra(),
    )
        .prop_map(
            |(type_, status, observed_generation, last_transition_time, reason, message, extra)| {
                Condition {
                    type_,
                    status,
                    observed_generation,
                    last_transition_time,
                    reason,
                    message,
                    extra,
                }
            },
        )
}

fn arb_field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<i64>().prop_map(FieldValue::Integer),
        arb_text().prop_map(FieldValue::String),
        any::<bool>().prop_map(FieldValue::Boolean),
        arb_text().prop_map(FieldValue::JsonRaw),
        (
            arb_text(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(arb_text()),
            proptest::option::of(any::<bool>()),
            arb_extra()
        )
            .prop_map(|(type_, integer, string, boolean, extra)| {
                FieldValue::from_raw(RawFieldValue {
                    type_,
                    integer,
                    string,
                    boolean,
                    json_raw: None,
                    extra,
                })
            }),
    ]
}

/// Any per-manifest status.
pub fn arb_manifest_condition() -> impl Strategy<Value = ManifestCondition> {
    let meta = (
        any::<i32>(),
        arb_text(),
        arb_text(),
        arb_text(),
        arb_text(),
        arb_text(),
        arb_text(),
        arb_extra(),
    )
        .prop_map(
            |(ordinal, group, version, kind, resource, name, namespace, extra)| {
                ManifestResourceMeta {
                    ordinal,
                    group,
                    version,
                    kind,
                    resource,
                    name,
                    namespace,
                    extra,
                }
            },
        );
    let value =
        (arb_text(), arb_field_value(), arb_extra()).prop_map(|(name, field_value, extra)| {
            FeedbackValue {
                name,
                field_value,
                extra,
            }
        });
    let feedback = (vec(value, 0..3), arb_extra())
        .prop_map(|(values, extra)| StatusFeedbackResult { values, extra });
    (meta, feedback, vec(arb_condition(), 0..3), arb_extra()).prop_map(
        |(resource_meta, status_feedback, conditions, extra)| ManifestCondition {
            resource_meta,
            status_feedback,
            conditions,
            extra,
        },
    )
}

/// Any wire status, sometimes with a spec echo.
pub fn arb_bundle_status() -> impl Strategy<Value = ManifestBundleStatus> {
    (
        proptest::option::of(arb_bundle()),
        vec(arb_condition(), 0..3),
        vec(arb_manifest_condition(), 0..3),
        arb_extra(),
    )
        .prop_map(|(manifest_bundle, conditions, resource_status, extra)| {
            ManifestBundleStatus {
                manifest_bundle,
                conditions,
                resource_status,
                extra,
            }
        })
}

/// Any API-shaped status (no unknown members inside `resourceStatus`, which the wire
/// shape cannot carry).
pub fn arb_work_status() -> impl Strategy<Value = ManifestWorkStatus> {
    (
        vec(arb_condition(), 0..3),
        vec(arb_manifest_condition(), 0..3),
        arb_extra(),
    )
        .prop_map(|(conditions, manifests, extra)| ManifestWorkStatus {
            conditions,
            resource_status: ManifestResourceStatus {
                manifests,
                extra: Map::new(),
            },
            extra,
        })
}
