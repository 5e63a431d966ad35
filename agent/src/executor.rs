//! The work's **executor** (manifestwork-semantics §2.4): when `spec.executor` names a
//! service account, every manifest is checked against that account's permissions
//! before it is applied, so a work cannot do on the cluster more than its executor may.
//!
//! Per manifest, as OCM's agent does:
//! - access reviews as `system:serviceaccount:<ns>:<name>` (groups
//!   `system:serviceaccounts`, `system:serviceaccounts:<ns>`, `system:authenticated`)
//!   for `create`, `update`, `patch`, `get`, plus `delete` when the work owns the object
//!   (not orphaned by the deleteOption);
//! - for Roles, ClusterRoles and their bindings, a privilege-escalation check. OCM does
//!   an impersonated dry-run create; this agent asks the authorizer the questions the
//!   RBAC authorizer asks itself, so it needs no impersonation right: a role is allowed
//!   with `escalate` on it or when every rule it grants is allowed to the executor; a
//!   binding with `bind` on the referenced role or when every rule of that role is
//!   allowed (in the binding's namespace). A missing role, rules with
//!   `nonResourceURLs` (access reviews here cannot ask about them) and more than
//!   [`MAX_REVIEWS`] questions are denials.
//!
//! Like OCM, every manifest the work names is checked, ReadOnly ones included (OCM
//! validates before choosing the update strategy); a completed manifest is not (it is not
//! applied again). A denial fails only that manifest; the work is applied again after
//! [`RETRY_AFTER`], so granting the permission is enough. Without an executor nothing is
//! asked.
//!
//! Approximations, stated so nobody over-trusts them: a subresource rule (`pods/log`) is
//! asked as the resource `pods/log`, which the RBAC authorizer matches against rules
//! naming `pods/log` or `*` (not `*/log`); wildcards in a rule are asked literally, so the
//! executor needs the wildcard itself; an `aggregationRule` ClusterRole needs the
//! executor to hold `*` on everything, as the API server demands.
//!
//! [`reviews_for`], [`escalation_for`] and [`rule_reviews`] are pure; [`authorize`] asks.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};
use workbus_schemas::work::spec::{ManifestWorkExecutor, ManifestWorkExecutorSubject};

use crate::target::{Access, AccessReview, ObjectRef, Target, TargetError};

/// How soon a work with a denied manifest is applied again (OCM: 60 s).
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Most access reviews asked for one manifest: manifests come from the hub, and a role
/// with many rules must not turn into thousands of API calls.
pub const MAX_REVIEWS: usize = 256;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The identity a work's manifests are checked as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    /// `system:serviceaccount:<ns>:<name>`.
    pub user: String,
    /// The service account's groups.
    pub groups: Vec<String>,
}

/// An executor the agent cannot check for (the texts are OCM's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutorError {
    /// A subject type other than `ServiceAccount`.
    #[error("only support ServiceAccount type for the executor")]
    UnsupportedSubject,
    /// `ServiceAccount` without `serviceAccount`.
    #[error("the executor service account is nil")]
    MissingServiceAccount,
}

impl Executor {
    /// The executor of a work: `Ok(None)` without one (no checks at all).
    pub fn of(executor: Option<&ManifestWorkExecutor>) -> Result<Option<Executor>, ExecutorError> {
        let Some(executor) = executor else {
            return Ok(None);
        };
        let subject = &executor.subject;
        if subject.type_ != ManifestWorkExecutorSubject::TYPE_SERVICE_ACCOUNT {
            return Err(ExecutorError::UnsupportedSubject);
        }
        let sa = subject
            .service_account
            .as_ref()
            .ok_or(ExecutorError::MissingServiceAccount)?;
        Ok(Some(Executor {
            user: format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", sa.namespace),
                "system:authenticated".into(),
            ],
        }))
    }

    fn review(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> AccessReview {
        AccessReview {
            user: self.user.clone(),
            groups: self.groups.clone(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// Why a manifest is not applied. The texts are OCM's (`not allowed to apply the resource
/// <group> <resource>, <namespace> <name>[, error: permission escalation], will try again
/// in 1m0s`), with the reason for an escalation denial added in parentheses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// A basic review (create/update/patch/get/delete) was denied.
    #[error(
        "not allowed to apply the resource {} {}, {} {}, will try again in 1m0s",
        .0.group, .0.resource, .0.namespace, .0.name
    )]
    NotAllowed(ObjectRef),
    /// The RBAC object would grant the executor more than it has.
    #[error(
        "not allowed to apply the resource {} {}, {} {}, error: permission escalation{}, will try again in 1m0s",
        .at.group, .at.resource, .at.namespace, .at.name,
        if .reason.is_empty() { String::new() } else { format!(" ({})", .reason) }
    )]
    Escalation {
        /// The manifest's object.
        at: ObjectRef,
        /// Why, when more than "a rule is not allowed" (empty otherwise).
        reason: String,
    },
    /// The executor itself is unusable; retrying cannot help until the spec changes.
    #[error("{0}")]
    Executor(#[from] ExecutorError),
    /// The authorizer could not be asked.
    #[error("{0}")]
    Review(#[from] TargetError),
}

impl Denial {
    /// When to apply the work again (`None`: only a spec change helps).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Denial::Executor(_) => None,
            _ => Some(RETRY_AFTER),
        }
    }
}

/// The basic reviews for one object: `create`, `update`, `patch`, `get`, and `delete`
/// when the work owns it.
pub fn reviews_for(executor: &Executor, at: &ObjectRef, owned: bool) -> Vec<AccessReview> {
    let verbs: &[&str] = if owned {
        &["create", "update", "patch", "get", "delete"]
    } else {
        &["create", "update", "patch", "get"]
    };
    verbs
        .iter()
        .map(|v| executor.review(v, &at.group, &at.resource, &at.namespace, &at.name))
        .collect()
}

/// Where the rules an RBAC object grants come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Rules {
    /// A Role/ClusterRole: its own rules.
    Inline(Vec<Value>),
    /// A binding: the rules of the referenced role, read from the cluster.
    Referenced(ObjectRef),
}

/// The escalation check of an RBAC object.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationCheck {
    /// The review that allows it outright (`escalate` on the role, `bind` on the role
    /// a binding references).
    pub shortcut: AccessReview,
    /// The rules the executor must hold otherwise.
    pub rules: Rules,
    /// Where the rules take effect (the namespace of a Role or RoleBinding, `""` for
    /// cluster-wide).
    pub namespace: String,
}

/// The escalation check for `manifest` at `at`; `Ok(None)` for anything but Roles,
/// ClusterRoles and their bindings; `Err` (a reason) for a binding without a usable
/// `roleRef`.
pub fn escalation_for(
    executor: &Executor,
    at: &ObjectRef,
    manifest: &Map<String, Value>,
) -> Result<Option<EscalationCheck>, String> {
    if at.group != RBAC_GROUP {
        return Ok(None);
    }
    match at.resource.as_str() {
        "roles" | "clusterroles" => Ok(Some(EscalationCheck {
            shortcut: executor.review(
                "escalate",
                RBAC_GROUP,
                &at.resource,
                &at.namespace,
                &at.name,
            ),
            rules: Rules::Inline(rules_of(manifest)),
            namespace: at.namespace.clone(),
        })),
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &manifest.get("roleRef").cloned().unwrap_or_default();
            let name = role_ref["name"].as_str().unwrap_or_default();
            let resource = match role_ref["kind"].as_str() {
                Some("Role") if at.resource == "rolebindings" => "roles",
                Some("ClusterRole") => "clusterroles",
                other => return Err(format!("unsupported roleRef kind {other:?}")),
            };
            if name.is_empty() {
                return Err("roleRef has no name".into());
            }
            // A ClusterRole is read cluster-wide; a Role in the binding's namespace.
            let role_namespace = if resource == "roles" {
                at.namespace.as_str()
            } else {
                ""
            };
            Ok(Some(EscalationCheck {
                shortcut: executor.review("bind", RBAC_GROUP, resource, &at.namespace, name),
                rules: Rules::Referenced(ObjectRef::new(
                    RBAC_GROUP,
                    "v1",
                    resource,
                    role_namespace,
                    name,
                )),
                namespace: at.namespace.clone(),
            }))
        }
        _ => Ok(None),
    }
}

/// The rules a Role or ClusterRole grants. A ClusterRole with an `aggregationRule` gets
/// its rules from other roles later, so (as the API server requires) creating one takes
/// everything: `*` verbs on `*` resources of `*` groups.
pub fn rules_of(role: &Map<String, Value>) -> Vec<Value> {
    if role.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        return vec![serde_json::json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})];
    }
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// One review per verb × group × resource (× resource name) the rules grant, in
/// `namespace`, deduplicated; `Err` (a reason) when they need more than `budget`
/// reviews or cannot be asked (`nonResourceURLs`).
pub fn rule_reviews(
    executor: &Executor,
    rules: &[Value],
    namespace: &str,
    budget: usize,
) -> Result<Vec<AccessReview>, String> {
    fn strings(rule: &Value, key: &str) -> BTreeSet<String> {
        rule[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
    let too_many = || format!("checking its rules needs more than {budget} access reviews");
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for rule in rules {
        if !strings(rule, "nonResourceURLs").is_empty() {
            return Err("rules with nonResourceURLs cannot be checked".into());
        }
        let verbs = strings(rule, "verbs");
        let groups = strings(rule, "apiGroups");
        let resources = strings(rule, "resources");
        let mut names = strings(rule, "resourceNames");
        if names.is_empty() {
            names.insert(String::new());
        }
        // Bounded before enumerating: the sets are unique, so this is the count of
        // distinct reviews the rule adds at most.
        let product = [verbs.len(), groups.len(), resources.len(), names.len()]
            .iter()
            .try_fold(1usize, |acc, n| acc.checked_mul(*n));
        if product.is_none_or(|p| p > budget) {
            return Err(too_many());
        }
        for verb in &verbs {
            for group in &groups {
                for resource in &resources {
                    for name in &names {
                        let key = (verb.clone(), group.clone(), resource.clone(), name.clone());
                        if seen.insert(key) {
                            out.push(executor.review(verb, group, resource, namespace, name));
                            if out.len() > budget {
                                return Err(too_many());
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Checks one manifest against the work's executor (see the module documentation);
/// `Ok` when it may be applied. No executor: `Ok` without asking anything.
pub async fn authorize<T: Target>(
    target: &T,
    executor: Option<&ManifestWorkExecutor>,
    at: &ObjectRef,
    manifest: &Map<String, Value>,
    owned: bool,
) -> Result<(), Denial> {
    let Some(executor) = Executor::of(executor)? else {
        return Ok(());
    };
    let basic = reviews_for(&executor, at, owned);
    for review in &basic {
        if !allowed(target, review).await? {
            return Err(Denial::NotAllowed(at.clone()));
        }
    }
    let escalation = |reason: String| Denial::Escalation {
        at: at.clone(),
        reason,
    };
    let Some(check) = escalation_for(&executor, at, manifest).map_err(escalation)? else {
        return Ok(());
    };
    if allowed(target, &check.shortcut).await? {
        return Ok(());
    }
    let rules = match check.rules {
        Rules::Inline(rules) => rules,
        Rules::Referenced(role) => match target.get(&role).await? {
            Some(Value::Object(live)) => rules_of(&live),
            _ => {
                return Err(escalation(format!(
                    "{} \"{}\" not found",
                    role.resource, role.name
                )));
            }
        },
    };
    let budget = MAX_REVIEWS.saturating_sub(basic.len() + 1);
    for review in rule_reviews(&executor, &rules, &check.namespace, budget).map_err(escalation)? {
        if !allowed(target, &review).await? {
            return Err(escalation(String::new()));
        }
    }
    Ok(())
}

async fn allowed<T: Target>(target: &T, review: &AccessReview) -> Result<bool, TargetError> {
    Ok(matches!(
        target.review_access(review).await?,
        Access::Allowed
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sa() -> Executor {
        Executor::of(Some(&ManifestWorkExecutor::service_account("ns1", "sa1")))
            .unwrap()
            .unwrap()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn identity_and_basic_verbs() {
        let e = sa();
        assert_eq!(e.user, "system:serviceaccount:ns1:sa1");
        assert_eq!(
            e.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
        let at = ObjectRef::new("apps", "v1", "deployments", "default", "web");
        let verbs = |owned| -> Vec<String> {
            reviews_for(&e, &at, owned)
                .into_iter()
                .map(|r| r.verb)
                .collect()
        };
        assert_eq!(verbs(true), ["create", "update", "patch", "get", "delete"]);
        assert_eq!(verbs(false), ["create", "update", "patch", "get"]);
        assert_eq!(Executor::of(None), Ok(None));
        let mut odd = ManifestWorkExecutor::service_account("a", "b");
        odd.subject.type_ = "User".into();
        assert_eq!(
            Executor::of(Some(&odd)),
            Err(ExecutorError::UnsupportedSubject)
        );
        odd.subject.type_ = "ServiceAccount".into();
        odd.subject.service_account = None;
        assert_eq!(
            Executor::of(Some(&odd)),
            Err(ExecutorError::MissingServiceAccount)
        );
    }

    #[test]
    fn escalation_checks_per_rbac_kind() {
        let e = sa();
        let role_at = ObjectRef::new(RBAC_GROUP, "v1", "roles", "ns1", "r");
        let role =
            map(json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}));
        let c = escalation_for(&e, &role_at, &role).unwrap().unwrap();
        assert_eq!(c.shortcut.verb, "escalate");
        assert_eq!(c.namespace, "ns1");
        assert!(matches!(c.rules, Rules::Inline(ref r) if r.len() == 1));

        let rb_at = ObjectRef::new(RBAC_GROUP, "v1", "rolebindings", "ns1", "rb");
        let rb = map(
            json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "admin"}}),
        );
        let c = escalation_for(&e, &rb_at, &rb).unwrap().unwrap();
        assert_eq!(
            (
                c.shortcut.verb.as_str(),
                c.shortcut.resource.as_str(),
                c.shortcut.namespace.as_str()
            ),
            ("bind", "clusterroles", "ns1")
        );
        assert_eq!(
            c.rules,
            Rules::Referenced(ObjectRef::new(
                RBAC_GROUP,
                "v1",
                "clusterroles",
                "",
                "admin"
            ))
        );
        assert_eq!(c.namespace, "ns1", "a RoleBinding grants in its namespace");

        let crb_at = ObjectRef::new(RBAC_GROUP, "v1", "clusterrolebindings", "", "crb");
        let bad = map(json!({"roleRef": {"kind": "Role", "name": "r"}}));
        assert!(
            escalation_for(&e, &crb_at, &bad).is_err(),
            "a ClusterRoleBinding binds ClusterRoles only"
        );
        let cm_at = ObjectRef::new("", "v1", "configmaps", "ns1", "c");
        assert_eq!(escalation_for(&e, &cm_at, &Map::new()), Ok(None));
    }

    #[test]
    fn rule_reviews_expand_dedupe_and_are_bounded() {
        let e = sa();
        let rules = vec![
            json!({"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get", "list"]}),
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": []}),
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a", "b"]}),
        ];
        let r = rule_reviews(&e, &rules, "ns1", 256).unwrap();
        assert_eq!(r.len(), 8 + 2, "the second rule adds nothing new");
        assert!(r.iter().all(|r| r.namespace == "ns1" && r.user == e.user));
        assert!(r.iter().any(|r| r.resource == "secrets" && r.name == "b"));
        assert!(rule_reviews(&e, &rules, "ns1", 9).is_err());
        let huge: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
        let hostile = vec![json!({"apiGroups": huge, "resources": huge, "verbs": huge})];
        assert!(
            rule_reviews(&e, &hostile, "", 256)
                .unwrap_err()
                .contains("256")
        );
        let urls = vec![json!({"nonResourceURLs": ["/healthz"], "verbs": ["get"]})];
        assert!(rule_reviews(&e, &urls, "", 256).is_err());
        let agg = map(json!({"aggregationRule": {"clusterRoleSelectors": []}, "rules": []}));
        assert_eq!(rules_of(&agg)[0]["verbs"], json!(["*"]));
    }

    #[test]
    fn denial_texts_are_ocms() {
        let at = ObjectRef::new("apps", "v1", "deployments", "default", "web");
        assert_eq!(
            Denial::NotAllowed(at.clone()).to_string(),
            "not allowed to apply the resource apps deployments, default web, will try again in 1m0s"
        );
        let at = ObjectRef::new(RBAC_GROUP, "v1", "rolebindings", "ns1", "rb");
        let d = Denial::Escalation {
            at: at.clone(),
            reason: String::new(),
        };
        assert_eq!(
            d.to_string(),
            "not allowed to apply the resource rbac.authorization.k8s.io rolebindings, ns1 rb, error: permission escalation, will try again in 1m0s"
        );
        assert_eq!(d.retry_after(), Some(RETRY_AFTER));
        let d = Denial::Escalation {
            at,
            reason: "clusterroles \"x\" not found".into(),
        };
        assert!(
            d.to_string()
                .contains("error: permission escalation (clusterroles \"x\" not found)")
        );
        assert_eq!(
            Denial::Executor(ExecutorError::UnsupportedSubject).retry_after(),
            None
        );
    }
}
