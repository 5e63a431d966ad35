//! Strict field validation of a ManifestWork written by a user, as Kubernetes'
//! `fieldValidation=Strict` (kubectl's default): every member the API does not know is
//! reported by its path (`unknown field "spec.workloads"`), so that a typo is named
//! instead of surfacing as a later rule ("manifests should not be empty").
//!
//! The types keep unknown members (`extra`) for compatibility on the wire; this walks
//! those maps over the spec and the metadata. The manifests themselves are opaque
//! Kubernetes objects and are not checked; nor is `status`, which users do not write.

use serde_json::{Map, Value};

use super::spec::{ManifestConfigOption, ManifestWork, ResourceIdentifier};

/// Members of Kubernetes' `ObjectMeta` the hub does not model but kubectl output may
/// carry (`get -o yaml` of a real cluster); they are known fields, not typos.
const OTHER_OBJECT_META: &[&str] = &[
    "generateName",
    "selfLink",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "managedFields",
];

/// The unknown fields of `work`, as Kubernetes names them (`spec.workloads`,
/// `spec.manifestConfigs[0].feedbackRule`), in document order per object.
pub fn unknown_fields(work: &ManifestWork) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |prefix: &str, extra: &Map<String, Value>, allowed: &[&str]| {
        for key in extra.keys().filter(|k| !allowed.contains(&k.as_str())) {
            out.push(if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            });
        }
    };
    add("", &work.extra, &[]);
    add("metadata", &work.metadata.extra, OTHER_OBJECT_META);
    let spec = &work.spec;
    add("spec", &spec.extra, &[]);
    add("spec.workload", &spec.workload.extra, &[]);
    if let Some(d) = &spec.delete_option {
        add("spec.deleteOption", &d.extra, &[]);
        if let Some(o) = &d.selectively_orphans {
            let p = "spec.deleteOption.selectivelyOrphans";
            add(p, &o.extra, &[]);
            for (i, r) in o.orphaning_rules.iter().enumerate() {
                identifier(&format!("{p}.orphaningRules[{i}]"), r, &mut add);
            }
        }
    }
    for (i, c) in spec.manifest_configs.iter().enumerate() {
        config(&format!("spec.manifestConfigs[{i}]"), c, &mut add);
    }
    if let Some(e) = &spec.executor {
        add("spec.executor", &e.extra, &[]);
        add("spec.executor.subject", &e.subject.extra, &[]);
        if let Some(sa) = &e.subject.service_account {
            add("spec.executor.subject.serviceAccount", &sa.extra, &[]);
        }
    }
    out
}

fn identifier(
    p: &str,
    r: &ResourceIdentifier,
    add: &mut impl FnMut(&str, &Map<String, Value>, &[&str]),
) {
    add(p, &r.extra, &[]);
}

fn config(
    p: &str,
    c: &ManifestConfigOption,
    add: &mut impl FnMut(&str, &Map<String, Value>, &[&str]),
) {
    add(p, &c.extra, &[]);
    identifier(
        &format!("{p}.resourceIdentifier"),
        &c.resource_identifier,
        add,
    );
    for (j, f) in c.feedback_rules.iter().enumerate() {
        let fp = format!("{p}.feedbackRules[{j}]");
        add(&fp, &f.extra, &[]);
        for (k, jp) in f.json_paths.iter().enumerate() {
            add(&format!("{fp}.jsonPaths[{k}]"), &jp.extra, &[]);
        }
    }
    if let Some(u) = &c.update_strategy {
        let up = format!("{p}.updateStrategy");
        add(&up, &u.extra, &[]);
        if let Some(ssa) = &u.server_side_apply {
            let sp = format!("{up}.serverSideApply");
            add(&sp, &ssa.extra, &[]);
            for (k, f) in ssa.ignore_fields.iter().enumerate() {
                add(&format!("{sp}.ignoreFields[{k}]"), &f.extra, &[]);
            }
        }
    }
    for (j, r) in c.condition_rules.iter().enumerate() {
        add(&format!("{p}.conditionRules[{j}]"), &r.extra, &[]);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn unknown(v: Value) -> Vec<String> {
        unknown_fields(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn names_every_unknown_member_by_its_path() {
        assert_eq!(
            unknown(json!({
                "apiVersion": "work.open-cluster-management.io/v1",
                "kind": "ManifestWork",
                "metadata": {"name": "w", "namespace": "c", "labelz": {}, "managedFields": []},
                "spec": {
                    "workloads": {"manifests": []},
                    "manifestConfigs": [{
                        "resourceIdentifier": {"resource": "cm", "nmae": "x"},
                        "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "a", "path": ".x", "pth": 1}]}],
                        "updateStrategy": {"type": "ServerSideApply", "serverSideApply": {"forse": true}}
                    }],
                    "deleteOption": {"propagationPolicy": "Orphan", "ttl": 3}
                },
                "extraTop": 1
            })),
            [
                "extraTop",
                "metadata.labelz",
                "spec.workloads",
                "spec.deleteOption.ttl",
                "spec.manifestConfigs[0].resourceIdentifier.nmae",
                "spec.manifestConfigs[0].feedbackRules[0].jsonPaths[0].pth",
                "spec.manifestConfigs[0].updateStrategy.serverSideApply.forse",
            ]
        );
    }

    #[test]
    fn a_well_formed_work_has_none() {
        assert!(
            unknown(json!({
                "apiVersion": "work.open-cluster-management.io/v1",
                "kind": "ManifestWork",
                "metadata": {"name": "w", "namespace": "c", "labels": {"a": "b"}},
                "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "whatever": 1}]},
                         "executor": {"subject": {"type": "ServiceAccount", "serviceAccount": {"name": "n", "namespace": "s"}}}}
            }))
            .is_empty()
        );
    }
}
