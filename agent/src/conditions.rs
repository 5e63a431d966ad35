//! The status conditions a work agent reports, with the exact types, reasons and
//! messages of OCM's work agent (manifestwork-semantics §3), kept apart from applying
//! and from feedback so each rule is in one place:
//!
//! - per manifest: `Applied`, `Available`, `StatusFeedbackSynced`;
//! - per work: `Applied` and `Available`, aggregated over the manifests (§3.1);
//! - per manifest and per work: the condition types produced by `conditionRules`
//!   (`WellKnownConditions`, and `CEL` evaluated by `cel_rules` with OCM's statuses,
//!   reasons and messages; without the `cel` feature CEL rules are reported Unknown /
//!   `ConditionRuleInternalError` as unsupported), aggregated per type;
//! - `Deleting` while the agent cleans a work up.
//!
//! Work-level conditions carry `observedGeneration` = the work's generation; the
//! per-manifest ones carry none, as the Go agent's status events show.

#[cfg(feature = "cel")]
pub mod cel_rules;

use serde_json::Value;
use workbus_schemas::work::spec::ConditionRule;
use workbus_schemas::work::status::{condition_status as st, condition_type as ty};
use workbus_schemas::work::{Condition, ManifestCondition, Time};

fn cond(type_: &str, status: &str, reason: &str, message: &str, at: Time) -> Condition {
    Condition::new(type_, status, reason, message, at)
}

/// Per-manifest `Applied=True`.
pub fn manifest_applied(at: Time) -> Condition {
    cond(
        ty::APPLIED,
        st::TRUE,
        "AppliedManifestComplete",
        "Apply manifest complete",
        at,
    )
}

/// Per-manifest `Applied=False` with the apply error.
pub fn manifest_apply_failed(error: &str, at: Time) -> Condition {
    cond(
        ty::APPLIED,
        st::FALSE,
        "AppliedManifestFailed",
        &format!("Failed to apply manifest: {error}"),
        at,
    )
}

/// Per-manifest `Applied=False` because an `ignoreFields` selector of server-side apply
/// cannot be evaluated (reason and message as OCM's agent words them).
pub fn manifest_ssa_ignore_field_error(error: &str, at: Time) -> Condition {
    cond(
        ty::APPLIED,
        st::FALSE,
        "AppliedManifestSSAIgnoreFieldError",
        &format!("Failed to process ignoreFields: {error}"),
        at,
    )
}

/// Per-manifest `Available`: the object exists (True), is missing (False), could not be
/// read (Unknown), or its meta is incomplete because the kind is unknown (Unknown).
pub fn manifest_available(observation: Availability, at: Time) -> Condition {
    match observation {
        Availability::Exists => cond(
            ty::AVAILABLE,
            st::TRUE,
            "ResourceAvailable",
            "Resource is available",
            at,
        ),
        Availability::Missing => cond(
            ty::AVAILABLE,
            st::FALSE,
            "ResourceNotAvailable",
            "Resource is not available",
            at,
        ),
        Availability::FetchFailed(ref e) => cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "FetchingResourceFailed",
            &format!("Failed to fetch resource: {e}"),
            at,
        ),
        Availability::IncompleteMeta => cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "IncompleteResourceMeta",
            "Resource meta is incomplete",
            at,
        ),
    }
}

/// What the agent could observe of a manifest's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// The object exists and was read.
    Exists,
    /// The object does not exist.
    Missing,
    /// Reading it failed.
    FetchFailed(String),
    /// The kind is unknown, so the object cannot be addressed.
    IncompleteMeta,
}

/// Per-manifest `StatusFeedbackSynced`: `None` when no feedback rule applies, otherwise
/// the errors of the evaluated rules (empty means synced).
pub fn feedback_synced(errors: Option<&[String]>, at: Time) -> Condition {
    match errors {
        None => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::TRUE,
            "NoStatusFeedbackSynced",
            "",
            at,
        ),
        Some([]) => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::TRUE,
            "StatusFeedbackSynced",
            "",
            at,
        ),
        Some(errors) => cond(
            ty::STATUS_FEEDBACK_SYNCED,
            st::FALSE,
            "StatusFeedbackSyncFailed",
            &format!(
                "Sync status feedback failed with error {}",
                aggregate_errors(errors)
            ),
            at,
        ),
    }
}

/// Formats several errors like apimachinery's `utilerrors.NewAggregate(errs).Error()`,
/// which the Go agent puts in its messages: one error as is, several as `[a, b]`, with
/// duplicate messages collapsed.
pub fn aggregate_errors(errors: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::with_capacity(errors.len());
    for e in errors {
        if !unique.contains(&e.as_str()) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The condition-rule types of `conditionRules[].type`.
pub mod rule_type {
    /// Built-in rules (only `Complete` for Jobs and Pods).
    pub const WELL_KNOWN_CONDITIONS: &str = "WellKnownConditions";
    /// CEL expressions.
    pub const CEL: &str = "CEL";
}

/// Reasons of rule-produced conditions (§3.2).
pub mod rule_reason {
    /// The rule was evaluated.
    pub const EVALUATED: &str = "ConditionRuleEvaluated";
    /// A CEL expression did not parse, failed, or gave a non-boolean (status False).
    pub const EXPRESSION_ERROR: &str = "ConditionRuleExpressionError";
    /// The rule could not be evaluated for a reason the rule's author does not control
    /// (OCM: the CEL program could not be built; here: an agent built without CEL).
    pub const INTERNAL_ERROR: &str = "ConditionRuleInternalError";
    /// Unknown rule type.
    pub const INVALID: &str = "ConditionRuleInvalid";
    /// Work-level aggregation.
    pub const AGGREGATED: &str = "ConditionRulesAggregated";
}

/// The per-manifest condition one rule yields for the live object of the given kind,
/// or `None` when the rule produces nothing for it (a well-known rule for another kind
/// or condition, or a rule without a condition name). `observedGeneration` is the
/// work's generation.
pub fn rule_condition(
    rule: &ConditionRule,
    gvk: (&str, &str, &str),
    live: &Value,
    generation: i64,
    at: Time,
) -> Option<Condition> {
    let evaluated = |name: &str, ok: bool, message: String| {
        cond(
            name,
            if ok { st::TRUE } else { st::FALSE },
            rule_reason::EVALUATED,
            &message,
            at,
        )
        .with_observed_generation(generation)
    };
    match rule.type_.as_str() {
        rule_type::WELL_KNOWN_CONDITIONS => {
            let name = if rule.condition.is_empty() {
                ty::COMPLETE
            } else {
                rule.condition.as_str()
            };
            if name != ty::COMPLETE {
                return None;
            }
            match gvk {
                ("batch", "v1", "Job") => {
                    let finished = live["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            (c["type"] == "Complete" || c["type"] == "Failed")
                                && c["status"] == "True"
                        })
                    });
                    let message = if finished {
                        "Job is finished"
                    } else {
                        "Job is not finished"
                    };
                    Some(evaluated(
                        name,
                        finished,
                        well_known_message(rule, live, finished, message.to_string()),
                    ))
                }
                ("", "v1", "Pod") => {
                    let phase = live["status"]["phase"].as_str().unwrap_or_default();
                    let done = phase == "Succeeded" || phase == "Failed";
                    let message = format!("Pod is in phase {phase}");
                    Some(evaluated(
                        name,
                        done,
                        well_known_message(rule, live, done, message),
                    ))
                }
                _ => None,
            }
        }
        _ if rule.condition.is_empty() => None,
        rule_type::CEL => Some(cel_condition(rule, live, at).with_observed_generation(generation)),
        other => Some(
            cond(
                &rule.condition,
                st::UNKNOWN,
                rule_reason::INVALID,
                &format!("unsupported condition rule type {other:?}"),
                at,
            )
            .with_observed_generation(generation),
        ),
    }
}

#[cfg(feature = "cel")]
/// A `CEL` rule's condition (§3.2, OCM's `getConditionByCelRule`): True or False with
/// `ConditionRuleEvaluated` by the ANDed expressions, and the message of
/// [`rule_message`]; False with `ConditionRuleExpressionError` and the error as message
/// when an expression does not parse, fails, returns a non-boolean or is refused by the
/// limits of [`cel_rules`].
fn cel_condition(rule: &ConditionRule, live: &Value, at: Time) -> Condition {
    let object = cel_rules::CelObject::new(live);
    match cel_rules::all_true(&rule.cel_expressions, &object) {
        Err(e) => cond(
            &rule.condition,
            st::FALSE,
            rule_reason::EXPRESSION_ERROR,
            &e.to_string(),
            at,
        ),
        Ok(result) => {
            let fallback = || default_rule_message(rule, result);
            let message = rule_message(rule, &object, result, fallback);
            let status = if result { st::TRUE } else { st::FALSE };
            cond(
                &rule.condition,
                status,
                rule_reason::EVALUATED,
                &message,
                at,
            )
        }
    }
}

#[cfg(feature = "cel")]
/// The message of an evaluated rule (OCM's `getConditionMessageByRule`): the
/// `messageExpression`'s string when it yields a non-empty one, its error when it fails
/// (the status stays the expressions'), else `fallback()`.
fn rule_message(
    rule: &ConditionRule,
    object: &cel_rules::CelObject,
    result: bool,
    fallback: impl FnOnce() -> String,
) -> String {
    if rule.message_expression.is_empty() {
        return fallback();
    }
    match cel_rules::message(&rule.message_expression, object, result) {
        Ok(Some(message)) => message,
        Ok(None) => fallback(),
        Err(e) => e.to_string(),
    }
}

#[cfg(feature = "cel")]
/// `message` when set, else "Manifest is <Condition>" / "Manifest is not <Condition>".
fn default_rule_message(rule: &ConditionRule, result: bool) -> String {
    if !rule.message.is_empty() {
        rule.message.clone()
    } else if result {
        format!("Manifest is {}", rule.condition)
    } else {
        format!("Manifest is not {}", rule.condition)
    }
}

#[cfg(feature = "cel")]
/// A well-known rule's message (§4.4): a user `messageExpression` replaces the built-in
/// message; a user `message` alone never shows, as the built-in one always yields text.
/// When the user's expression yields the empty string OCM falls back to the user's
/// `message`, else to the built-in rule's (empty) message, i.e. "Manifest is Complete".
fn well_known_message(
    rule: &ConditionRule,
    live: &Value,
    result: bool,
    built_in: String,
) -> String {
    if rule.message_expression.is_empty() {
        return built_in;
    }
    let object = cel_rules::CelObject::new(live);
    let condition = ConditionRule {
        condition: ty::COMPLETE.to_string(),
        ..rule.clone()
    };
    rule_message(rule, &object, result, || {
        default_rule_message(&condition, result)
    })
}

/// Without the `cel` feature a `CEL` rule cannot be evaluated: Unknown, as OCM reports
/// a rule it cannot build.
#[cfg(not(feature = "cel"))]
fn cel_condition(rule: &ConditionRule, _live: &Value, at: Time) -> Condition {
    cond(
        &rule.condition,
        st::UNKNOWN,
        rule_reason::INTERNAL_ERROR,
        "CEL condition rules are not supported by this agent",
        at,
    )
}

/// Without the `cel` feature a `messageExpression` cannot be evaluated: the built-in
/// message stays.
#[cfg(not(feature = "cel"))]
fn well_known_message(
    _rule: &ConditionRule,
    _live: &Value,
    _result: bool,
    built_in: String,
) -> String {
    built_in
}

/// The work-level condition of one rule-produced type, aggregated over the manifests'
/// conditions of that type (§3.1): `Progressing` is True if any is True, else Unknown if
/// any is Unknown, else False; every other type is False if any is False, else Unknown
/// if any is Unknown (or none is True), else True. `None` when no manifest has it.
pub fn work_rule_condition(
    type_: &str,
    manifests: &[ManifestCondition],
    generation: i64,
    at: Time,
) -> Option<Condition> {
    let found: Vec<&Condition> = manifests
        .iter()
        .filter_map(|m| m.conditions.iter().find(|c| c.type_ == type_))
        .collect();
    if found.is_empty() {
        return None;
    }
    let any = |s: &str| found.iter().any(|c| c.status == s);
    let status = if type_ == ty::PROGRESSING {
        if any(st::TRUE) {
            st::TRUE
        } else if any(st::UNKNOWN) {
            st::UNKNOWN
        } else {
            st::FALSE
        }
    } else if any(st::FALSE) {
        st::FALSE
    } else if any(st::UNKNOWN) || !any(st::TRUE) {
        st::UNKNOWN
    } else {
        st::TRUE
    };
    let message = match found.as_slice() {
        [one] => one.message.clone(),
        many => format!("Aggregated from {} manifest conditions", many.len()),
    };
    Some(
        cond(type_, status, rule_reason::AGGREGATED, &message, at)
            .with_observed_generation(generation),
    )
}

/// Work-level `Applied`, aggregated: True when every manifest's `Applied` is True.
pub fn work_applied(manifests: &[ManifestCondition], generation: i64, at: Time) -> Condition {
    let all = manifests
        .iter()
        .all(|m| status_of(m, ty::APPLIED) == Some(st::TRUE));
    let c = if all {
        cond(
            ty::APPLIED,
            st::TRUE,
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
            at,
        )
    } else {
        cond(
            ty::APPLIED,
            st::FALSE,
            "AppliedManifestWorkFailed",
            "Failed to apply manifest work",
            at,
        )
    };
    c.with_observed_generation(generation)
}

/// Work-level `Available`, aggregated (§3.1): any False wins, then any Unknown, then "none
/// True", else True.
pub fn work_available(manifests: &[ManifestCondition], generation: i64, at: Time) -> Condition {
    let total = manifests.len();
    let count = |s: &str| {
        manifests
            .iter()
            .filter(|m| status_of(m, ty::AVAILABLE) == Some(s))
            .count()
    };
    let (false_n, unknown_n, true_n) = (count(st::FALSE), count(st::UNKNOWN), count(st::TRUE));
    let unknown_n = unknown_n + (total - false_n - unknown_n - true_n); // missing condition
    let c = if false_n > 0 {
        cond(
            ty::AVAILABLE,
            st::FALSE,
            "ResourcesNotAvailable",
            &format!("{false_n} of {total} resources are not available"),
            at,
        )
    } else if unknown_n > 0 {
        cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "ResourcesStatusUnknown",
            &format!("{unknown_n} of {total} resources have unknown status"),
            at,
        )
    } else if true_n == 0 {
        cond(
            ty::AVAILABLE,
            st::UNKNOWN,
            "ResourcesStatusUnknown",
            "cannot get any available resource ",
            at,
        )
    } else {
        cond(
            ty::AVAILABLE,
            st::TRUE,
            "ResourcesAvailable",
            "All resources are available",
            at,
        )
    };
    c.with_observed_generation(generation)
}

/// `Deleting=True` while the agent removes a work's resources.
pub fn deleting_condition(generation: i64, at: Time) -> Condition {
    cond(
        ty::DELETING,
        st::TRUE,
        "WorkDeleting",
        "ManifestWork is being deleted",
        at,
    )
    .with_observed_generation(generation)
}

fn status_of<'a>(m: &'a ManifestCondition, type_: &str) -> Option<&'a str> {
    m.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(applied: &str, available: Option<&str>) -> ManifestCondition {
        let now = Time::now();
        let mut m = ManifestCondition::default();
        m.conditions.push(cond(ty::APPLIED, applied, "r", "m", now));
        if let Some(a) = available {
            m.conditions.push(cond(ty::AVAILABLE, a, "r", "m", now));
        }
        m
    }

    #[test]
    fn aggregation_messages() {
        let now = Time::now();
        let ok = [
            manifest(st::TRUE, Some(st::TRUE)),
            manifest(st::TRUE, Some(st::TRUE)),
        ];
        assert_eq!(
            work_applied(&ok, 3, now).reason,
            "AppliedManifestWorkComplete"
        );
        assert_eq!(work_applied(&ok, 3, now).observed_generation, 3);
        assert_eq!(
            work_available(&ok, 3, now).message,
            "All resources are available"
        );
        let one_down = [
            manifest(st::TRUE, Some(st::TRUE)),
            manifest(st::FALSE, Some(st::FALSE)),
        ];
        assert_eq!(work_applied(&one_down, 1, now).status, st::FALSE);
        assert_eq!(
            work_available(&one_down, 1, now).message,
            "1 of 2 resources are not available"
        );
        let unknown = [
            manifest(st::TRUE, Some(st::UNKNOWN)),
            manifest(st::TRUE, None),
        ];
        assert_eq!(
            work_available(&unknown, 1, now).message,
            "2 of 2 resources have unknown status"
        );
        assert_eq!(
            work_available(&[], 1, now).message,
            "cannot get any available resource "
        );
    }

    #[cfg(feature = "cel")]
    fn cel_rule(condition: &str, expressions: &[&str]) -> ConditionRule {
        ConditionRule {
            condition: condition.into(),
            type_: rule_type::CEL.into(),
            cel_expressions: expressions.iter().map(|e| e.to_string()).collect(),
            ..ConditionRule::default()
        }
    }

    #[cfg(feature = "cel")]
    #[test]
    fn cel_rules_give_evaluated_or_expression_error() {
        let now = Time::now();
        let live = serde_json::json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 2}});
        let gvk = ("apps", "v1", "Deployment");
        let ok = cel_rule(
            "Ready",
            &["object.status.readyReplicas == object.spec.replicas"],
        );
        let c = rule_condition(&ok, gvk, &live, 4, now).unwrap();
        assert_eq!(
            (
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str(),
                c.observed_generation
            ),
            (st::TRUE, rule_reason::EVALUATED, "Manifest is Ready", 4)
        );
        let not = cel_rule("Ready", &["true", "object.spec.replicas > 2"]);
        let c = rule_condition(&not, gvk, &live, 4, now).unwrap();
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            (st::FALSE, "Manifest is not Ready")
        );
        let bad = cel_rule("Ready", &["object.spec.replicas"]);
        let c = rule_condition(&bad, gvk, &live, 4, now).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            (
                st::FALSE,
                rule_reason::EXPRESSION_ERROR,
                "expected bool result, got int"
            )
        );
        // `condition` is required for CEL: without it nothing is produced.
        assert!(rule_condition(&cel_rule("", &["true"]), gvk, &live, 4, now).is_none());
    }
}
