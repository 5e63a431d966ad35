//! # Per-type storage rules (the registry strategies)
//!
//! What the apiserver's `rest.RESTCreateStrategy` / `RESTUpdateStrategy` of each type do
//! around a write, for the types served here:
//!
//! - `PrepareForCreate`: the status of a type with a status subresource starts empty;
//!   `generation` starts at 1 where the type has one; Namespaces get the `kubernetes`
//!   finalizer, phase `Active` and the `kubernetes.io/metadata.name` label; Services get a
//!   cluster IP; Jobs get their generated selector and labels;
//! - `PrepareForUpdate`: the status cannot change through the main resource, nor anything
//!   but the status through `/status`; `generation` moves by [`GenerationRule`];
//! - the zero value of each kind, which the field manager compares a created object with
//!   (it decides which intermediate structs a creator is said to have added);
//! - the fields server-side apply ignores per subresource (`ResetFieldsStrategy`).

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::fieldpath::fields;
use crate::managed::{Ignore, status_path};
use crate::meta;
use crate::registry::{GenerationRule, ResourceType};
use crate::schema::TypeSchema;

/// The shape source of a type.
pub fn schema(rt: &ResourceType) -> TypeSchema {
    match &rt.crd {
        Some(crd) => TypeSchema::Custom {
            schema: crd.schema.clone(),
        },
        None => TypeSchema::Builtin {
            kind: rt.kind.clone(),
        },
    }
}

/// The fields apply and updates ignore through `subresource` (`None`: the main
/// resource).
pub fn ignore(rt: &ResourceType, subresource: Option<&str>) -> Ignore {
    match subresource {
        // Custom resources: nothing but the status. Built-ins (their status strategies'
        // reset fields): the spec, and the labels of apps workloads; metadata otherwise
        // goes through (the Deployment controller writes its revision annotation so).
        Some("status") if rt.crd.is_some() => Ignore::AllBut(status_path()),
        Some("status") => {
            let mut reset = vec![fields(&["spec"])];
            if rt.group == "apps" {
                reset.push(fields(&["metadata", "labels"]));
            }
            if rt.group.is_empty() && rt.kind == "Pod" {
                reset.push(fields(&["metadata", "ownerReferences"]));
            }
            Ignore::Under(reset)
        }
        Some(_) => Ignore::Nothing,
        None if rt.has_status() => Ignore::Under(vec![status_path()]),
        None => Ignore::Nothing,
    }
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// A pod spec's zero value: `containers` has no `omitempty`.
fn pod_spec() -> Value {
    json!({"containers": null})
}

fn pod_template() -> Value {
    json!({"metadata": {}, "spec": pod_spec()})
}

/// The zero value of a kind as its typed encoding shows it (structs that are not
/// pointers are present, empty).
pub fn zero(rt: &ResourceType) -> Value {
    if rt.crd.is_some() {
        return empty();
    }
    let mut z = json!({"metadata": {}});
    let extra = match rt.kind.as_str() {
        "Deployment" => {
            json!({"spec": {"template": pod_template(), "strategy": {}}, "status": {}})
        }
        "DaemonSet" | "StatefulSet" => {
            json!({"spec": {"template": pod_template(), "updateStrategy": {}}, "status": {}})
        }
        "ReplicaSet" | "Job" => json!({"spec": {"template": pod_template()}, "status": {}}),
        "CronJob" => {
            json!({"spec": {"jobTemplate": {"metadata": {}, "spec": {"template": pod_template()}}}, "status": {}})
        }
        "Pod" => json!({"spec": pod_spec(), "status": {}}),
        "Namespace" | "PersistentVolume" | "PodDisruptionBudget" => {
            json!({"spec": {}, "status": {}})
        }
        "Service" | "Ingress" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "PersistentVolumeClaim" => json!({"spec": {"resources": {}}, "status": {}}),
        "Node" => {
            json!({"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {}}, "nodeInfo": {}}})
        }
        "CustomResourceDefinition" => {
            json!({"spec": {"names": {}}, "status": {"acceptedNames": {"kind": "", "plural": ""}}})
        }
        "NetworkPolicy" => json!({"spec": {"podSelector": {}}}),
        "HorizontalPodAutoscaler" => json!({"spec": {"scaleTargetRef": {}}, "status": {}}),
        "RoleBinding" | "ClusterRoleBinding" => json!({"roleRef": {}}),
        "Lease" => json!({"spec": {}}),
        "Event" => json!({"involvedObject": {}, "source": {}}),
        "ResourceQuota" | "LimitRange" => json!({"spec": {}, "status": {}}),
        _ => json!({}),
    };
    if let (Some(z), Value::Object(extra)) = (z.as_object_mut(), extra) {
        z.extend(extra);
    }
    z
}

/// Whether `generation` moves from `old` to `new`.
pub fn generation_changes(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let field = |v: &Value, f: &str| v.get(f).cloned().unwrap_or(Value::Null);
    match rt.generation {
        GenerationRule::None => false,
        GenerationRule::Spec => field(old, "spec") != field(new, "spec"),
        GenerationRule::SpecAndAnnotations => {
            field(old, "spec") != field(new, "spec")
                || meta::annotations(old) != meta::annotations(new)
        }
        GenerationRule::AllButMetadataAndStatus | GenerationRule::AllButMetadata => {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                    if rt.generation == GenerationRule::AllButMetadataAndStatus {
                        m.remove("status");
                    }
                }
                v
            };
            strip(old) != strip(new)
        }
    }
}

/// `PrepareForCreate` of the kinds that have one; `uid` is already set.
pub fn prepare_create(rt: &ResourceType, obj: &mut Value, service_ip: impl FnOnce() -> Ipv4Addr) {
    if rt.has_status()
        && let Some(m) = obj.as_object_mut()
    {
        if rt.crd.is_some() {
            m.remove("status");
        } else {
            m.insert("status".into(), empty());
        }
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            let name = meta::name(obj).to_string();
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let m = meta::metadata_mut(obj);
            let labels = m.entry("labels").or_insert_with(empty);
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        ("", "Service") => {
            let spec = obj
                .as_object_mut()
                .map(|m| m.entry("spec").or_insert_with(empty));
            if let Some(Value::Object(spec)) = spec {
                let kind = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP");
                let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
                if kind != "ExternalName" && !headless && !spec.contains_key("clusterIP") {
                    let ip = service_ip().to_string();
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
        }
        ("batch", "Job") => prepare_job(obj),
        ("", "Pod") => {
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        _ => {}
    }
}

/// The Job controller's selector: `batch.kubernetes.io/controller-uid` (unless
/// `manualSelector`), copied into the template's labels with the job name.
fn prepare_job(obj: &mut Value) {
    let uid = meta::uid(obj).to_string();
    let name = meta::name(obj).to_string();
    let manual = obj["spec"]["manualSelector"].as_bool().unwrap_or(false);
    if manual || obj.get("spec").is_none() {
        return;
    }
    let labels = json!({
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    });
    obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let tmpl = &mut obj["spec"]["template"];
    if !tmpl.is_object() {
        *tmpl = empty();
    }
    if !tmpl["metadata"].is_object() {
        tmpl["metadata"] = empty();
    }
    if !tmpl["metadata"]["labels"].is_object() {
        tmpl["metadata"]["labels"] = empty();
    }
    if let (Some(l), Value::Object(add)) = (tmpl["metadata"]["labels"].as_object_mut(), labels) {
        for (k, v) in add {
            l.entry(k).or_insert(v);
        }
    }
}

/// `qos.GetPodQOS`: `Guaranteed` when every container limits CPU and memory with
/// equal requests, `BestEffort` when nothing is requested or limited, else `Burstable`.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c["resources"][*k]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = &c["resources"]["limits"];
        let requests = &c["resources"]["requests"];
        ["cpu", "memory"].iter().all(|r| {
            limits.get(*r).is_some()
                && (requests.get(*r).is_none() || requests.get(*r) == limits.get(*r))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `PrepareForUpdate` of the main resource: the status stays the stored one; a
/// Namespace keeps its phase; a Job keeps its generated selector.
pub fn prepare_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if rt.has_status()
        && let Some(m) = new.as_object_mut()
    {
        match old.get("status") {
            Some(s) => {
                m.insert("status".into(), s.clone());
            }
            None => {
                m.remove("status");
            }
        }
    }
    if rt.group.is_empty()
        && rt.kind == "Namespace"
        && new.get("spec").is_none()
        && let Some(spec) = old.get("spec")
    {
        new["spec"] = spec.clone();
    }
    if rt.kind == "Job"
        && rt.group == "batch"
        && new["spec"].get("selector").is_none()
        && let Some(sel) = old["spec"].get("selector")
    {
        new["spec"]["selector"] = sel.clone();
    }
}

/// A status write (`PrepareForUpdate` of the status strategies): the status is
/// `new`'s (removed when `new` has none). Custom resources change nothing else;
/// built-ins also take `new`'s metadata, except the labels of apps workloads and the
/// owner references of Pods.
pub fn status_update(rt: &ResourceType, old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    let Some(m) = out.as_object_mut() else {
        return out;
    };
    match new.get("status") {
        Some(s) => {
            m.insert("status".into(), s.clone());
        }
        None => {
            m.remove("status");
        }
    }
    if rt.crd.is_none() {
        let mut metadata = new.get("metadata").cloned().unwrap_or_else(empty);
        let keep: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
            ("apps", _) => &["labels"],
            ("", "Pod") => &["ownerReferences"],
            _ => &[],
        };
        if let Some(meta) = metadata.as_object_mut() {
            for f in keep {
                match old["metadata"].get(*f) {
                    Some(v) => meta.insert((*f).to_string(), v.clone()),
                    None => meta.remove(*f),
                };
            }
        }
        m.insert("metadata".into(), metadata);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn generation_rules() {
        let r = Registry::default();
        let d = r.find("apps", "v1", "deployments").unwrap();
        let a = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let mut b = a.clone();
        b["status"]["x"] = json!(2);
        assert!(!generation_changes(&d, &a, &b));
        b["metadata"]["annotations"]["a"] = json!("2");
        assert!(generation_changes(&d, &a, &b));
        let ds = r.find("apps", "v1", "daemonsets").unwrap();
        assert!(!generation_changes(&ds, &a, &b));
        let cm = r.find("", "v1", "configmaps").unwrap();
        assert!(!generation_changes(&cm, &a, &json!({})));
    }

    #[test]
    fn jobs_get_their_selector() {
        let r = Registry::default();
        let j = r.find("batch", "v1", "jobs").unwrap();
        let mut o =
            json!({"metadata": {"name": "j", "uid": "u"}, "spec": {"template": {"spec": {}}}});
        prepare_create(&j, &mut o, || Ipv4Addr::LOCALHOST);
        assert_eq!(
            o["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u"
        );
        assert_eq!(o["spec"]["template"]["metadata"]["labels"]["job-name"], "j");
        assert_eq!(o["status"], json!({}));
    }
}
