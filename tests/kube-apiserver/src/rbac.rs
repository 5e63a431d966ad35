//! # RBAC: SubjectAccessReviews evaluated against Roles, ClusterRoles and bindings
//!
//! `authorization.k8s.io/v1` `SubjectAccessReview`, `LocalSubjectAccessReview` and
//! `SelfSubjectAccessReview` are answered (`201`, the review with its `status`) by the
//! RBAC authorizer's rules (`plugin/pkg/auth/authorizer/rbac`):
//!
//! - subjects: `User` by name, `Group` by name (every user is also in
//!   `system:authenticated`), `ServiceAccount` as the user
//!   `system:serviceaccount:<namespace>:<name>` (in the groups `system:serviceaccounts`
//!   and `system:serviceaccounts:<namespace>`);
//! - ClusterRoleBindings grant everywhere, RoleBindings in their namespace (to a Role of
//!   that namespace or a ClusterRole);
//! - a rule matches by `verbs`, `apiGroups`, `resources` (`resource/subresource`, `*`,
//!   `*/subresource`) and `resourceNames` (which never match a request without a name),
//!   or by `nonResourceURLs` (exact or a `*` suffix);
//! - a ClusterRole with an `aggregationRule` has the rules of the ClusterRoles its
//!   selectors match;
//! - `allowed` comes with RBAC's reason (`RBAC: allowed by ClusterRoleBinding "x" of
//!   ClusterRole "y" to User "z"`); a denial has no reason.
//!
//! The server has no authentication: every request is served as a cluster admin, so a
//! `SelfSubjectAccessReview` is always allowed. RBAC is *evaluated* for reviews, never
//! *enforced* on requests.

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::meta;
use crate::registry::{GroupResource, ResourceType};
use crate::validation::selector_matches;

/// What is asked.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    pub resource: Option<ResourceAttrs>,
    pub non_resource: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct ResourceAttrs {
    pub namespace: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

use crate::meta::string_list as strings;

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strings(&rule["verbs"]);
    if let Some(r) = &a.resource {
        if !has(&verbs, &r.verb) || !has(&strings(&rule["apiGroups"]), &r.group) {
            return false;
        }
        let resources = strings(&rule["resources"]);
        let combined = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        let res_ok = resources.iter().any(|x| {
            x == "*"
                || *x == combined
                || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
                || (!r.subresource.is_empty() && *x == format!("{}/*", r.resource))
        });
        let names = strings(&rule["resourceNames"]);
        let name_ok = names.is_empty() || (!r.name.is_empty() && names.contains(&r.name));
        return res_ok && name_ok;
    }
    if let Some((path, verb)) = &a.non_resource {
        return has(&verbs, verb)
            && strings(&rule["nonResourceURLs"]).iter().any(|u| {
                u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
            });
    }
    false
}

fn subject_text(s: &Value) -> String {
    match s["kind"].as_str() {
        Some("ServiceAccount") => format!(
            "ServiceAccount \"{}/{}\"",
            s["name"].as_str().unwrap_or(""),
            s["namespace"].as_str().unwrap_or("")
        ),
        Some(k) => format!("{k} {:?}", s["name"].as_str().unwrap_or("")),
        None => String::new(),
    }
}

fn subject_matches(s: &Value, a: &Attributes) -> bool {
    let name = s["name"].as_str().unwrap_or("");
    match s["kind"].as_str() {
        Some("User") => a.user == name,
        Some("Group") => a.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            a.user
                == format!(
                    "system:serviceaccount:{}:{name}",
                    s["namespace"].as_str().unwrap_or("")
                )
        }
        _ => false,
    }
}

/// The first subject of a binding that is the asker.
fn matching_subject<'a>(binding: &'a Value, a: &Attributes) -> Option<&'a Value> {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| subject_matches(s, a))
}

impl Cluster {
    fn cluster_role_rules(&self, name: &str) -> Vec<Value> {
        let gr = GroupResource::new("rbac.authorization.k8s.io", "clusterroles");
        let Some(role) = self.store.get(&gr, "", name) else {
            return Vec::new();
        };
        let mut rules: Vec<Value> = role["rules"].as_array().cloned().unwrap_or_default();
        if let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() {
            for other in self.store.list(&gr, None) {
                if meta::name(other) == name {
                    continue;
                }
                let labels = other["metadata"]["labels"].as_object();
                let matched = selectors.iter().any(|sel| {
                    let empty = sel.as_object().is_none_or(|m| m.is_empty());
                    !empty && selector_matches(sel, labels)
                });
                if matched {
                    rules.extend(other["rules"].as_array().cloned().unwrap_or_default());
                }
            }
        }
        rules
    }

    /// RBAC's decision: allowed, with the reason.
    pub fn authorize(&self, a: &Attributes) -> (bool, String) {
        let crb = GroupResource::new("rbac.authorization.k8s.io", "clusterrolebindings");
        for b in self.store.list(&crb, None) {
            let Some(subject) = matching_subject(b, a) else {
                continue;
            };
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            if self
                .cluster_role_rules(role)
                .iter()
                .any(|r| rule_allows(r, a))
            {
                return (
                    true,
                    format!(
                        "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role:?} to {}",
                        meta::name(b),
                        subject_text(subject)
                    ),
                );
            }
        }
        let ns = a
            .resource
            .as_ref()
            .map(|r| r.namespace.clone())
            .unwrap_or_default();
        if !ns.is_empty() {
            let rb = GroupResource::new("rbac.authorization.k8s.io", "rolebindings");
            let roles = GroupResource::new("rbac.authorization.k8s.io", "roles");
            for b in self.store.list(&rb, Some(&ns)) {
                let Some(subject) = matching_subject(b, a) else {
                    continue;
                };
                let role = b["roleRef"]["name"].as_str().unwrap_or("");
                let kind = b["roleRef"]["kind"].as_str().unwrap_or("");
                let rules = if kind == "ClusterRole" {
                    self.cluster_role_rules(role)
                } else {
                    self.store
                        .get(&roles, &ns, role)
                        .and_then(|r| r["rules"].as_array().cloned())
                        .unwrap_or_default()
                };
                if rules.iter().any(|r| rule_allows(r, a)) {
                    return (
                        true,
                        format!(
                            "RBAC: allowed by RoleBinding \"{}/{ns}\" of {kind} {role:?} to {}",
                            meta::name(b),
                            subject_text(subject)
                        ),
                    );
                }
            }
        }
        (false, String::new())
    }

    /// Answers a `create` of one of the review kinds.
    pub fn review(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut body: Value,
    ) -> ApiResult<Value> {
        let spec = body["spec"].clone();
        let invalid = |errs: Vec<FieldError>| ApiError::invalid(&rt.kind, &rt.group, "", errs);
        let ra = spec.get("resourceAttributes").filter(|v| v.is_object());
        let nra = spec.get("nonResourceAttributes").filter(|v| v.is_object());
        if ra.is_some() == nra.is_some() {
            return Err(invalid(vec![FieldError::invalid(
                "spec.resourceAttributes",
                &Value::from(if ra.is_some() { "set" } else { "null" }),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )]));
        }
        let s = |v: &Value, f: &str| v[f].as_str().unwrap_or("").to_string();
        let mut attrs = Attributes {
            user: s(&spec, "user"),
            groups: strings(&spec["groups"]),
            resource: ra.map(|r| ResourceAttrs {
                namespace: s(r, "namespace"),
                verb: s(r, "verb"),
                group: s(r, "group"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                name: s(r, "name"),
            }),
            non_resource: nra.map(|n| (s(n, "path"), s(n, "verb"))),
        };
        let (allowed, reason) = match rt.kind.as_str() {
            "SelfSubjectAccessReview" => (true, String::new()),
            kind => {
                if attrs.user.is_empty() && attrs.groups.is_empty() {
                    return Err(invalid(vec![FieldError::invalid(
                        "spec.user",
                        &Value::from(""),
                        "at least one of user or group must be specified",
                    )]));
                }
                if kind == "LocalSubjectAccessReview" {
                    let want = namespace.unwrap_or("");
                    if attrs.resource.as_ref().is_none_or(|r| r.namespace != want) {
                        return Err(invalid(vec![FieldError::invalid(
                            "spec.resourceAttributes.namespace",
                            &Value::from(
                                attrs
                                    .resource
                                    .as_ref()
                                    .map(|r| r.namespace.clone())
                                    .unwrap_or_default(),
                            ),
                            "must match metadata.namespace",
                        )]));
                    }
                }
                if !attrs.user.is_empty()
                    && !attrs.groups.iter().any(|g| g == "system:authenticated")
                {
                    attrs.groups.push("system:authenticated".into());
                }
                if let Some(rest) = attrs.user.strip_prefix("system:serviceaccount:")
                    && let Some((ns, _)) = rest.split_once(':')
                {
                    attrs.groups.push("system:serviceaccounts".into());
                    attrs.groups.push(format!("system:serviceaccounts:{ns}"));
                }
                self.authorize(&attrs)
            }
        };
        let mut status = json!({"allowed": allowed});
        if !reason.is_empty() {
            status["reason"] = json!(reason);
        }
        body["status"] = status;
        body["apiVersion"] = json!(rt.api_version());
        body["kind"] = json!(rt.kind);
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let a = Attributes {
            user: "u".into(),
            resource: Some(ResourceAttrs {
                verb: "get".into(),
                group: "apps".into(),
                resource: "deployments".into(),
                subresource: "status".into(),
                name: "web".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(rule_allows(
            &json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/status"]}),
            &a
        ));
        assert!(rule_allows(
            &json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            &a
        ));
        assert!(!rule_allows(
            &json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]}),
            &a
        ));
        assert!(rule_allows(
            &json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/status"], "resourceNames": ["web"]}),
            &a
        ));
        assert!(!rule_allows(
            &json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/status"], "resourceNames": ["other"]}),
            &a
        ));
        let nr = Attributes {
            non_resource: Some(("/healthz/ping".into(), "get".into())),
            ..Default::default()
        };
        assert!(rule_allows(
            &json!({"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]}),
            &nr
        ));
    }
}
