//! # Defaulting of built-in kinds
//!
//! The apiserver fills defaults when it decodes a request (`SetDefaults_*` in
//! `pkg/apis/*/v1/defaults.go`) and a few admission plugins add more (the Pod's service
//! account and tolerations), so what a client reads back is more than it wrote. The
//! defaults of the workload kinds a work agent applies are reproduced here — Deployment,
//! ReplicaSet, DaemonSet, StatefulSet, Job, CronJob, Pod (and every pod template),
//! Service, Secret, PersistentVolumeClaim, StorageClass, PriorityClass — so that an
//! agent comparing what it applied with what it reads faces the same differences as on
//! a real cluster. Other kinds get none.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `field` when absent.
fn def(m: &mut Map<String, Value>, field: &str, value: Value) {
    m.entry(field).or_insert(value);
}

fn child<'a>(m: &'a mut Map<String, Value>, field: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(field).and_then(Value::as_object_mut)
}

/// Defaults `obj` of type `rt` in place.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    if rt.crd.is_some() {
        return;
    }
    let kind = rt.kind.as_str();
    let Some(root) = self::obj(obj) else { return };
    match kind {
        "Pod" => {
            if let Some(spec) = child(root, "spec") {
                pod_spec(spec, true);
            }
        }
        "Deployment" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "replicas", json!(1));
                def(spec, "revisionHistoryLimit", json!(10));
                def(spec, "progressDeadlineSeconds", json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    def(s, "type", json!("RollingUpdate"));
                    if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            def(ru, "maxUnavailable", json!("25%"));
                            def(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                template(spec);
            }
        }
        "ReplicaSet" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "replicas", json!(1));
                template(spec);
            }
        }
        "DaemonSet" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "revisionHistoryLimit", json!(10));
                let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
                if let Some(us) = us.as_object_mut() {
                    def(us, "type", json!("RollingUpdate"));
                    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        let ru = us.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            def(ru, "maxUnavailable", json!(1));
                            def(ru, "maxSurge", json!(0));
                        }
                    }
                }
                template(spec);
            }
        }
        "StatefulSet" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "replicas", json!(1));
                def(spec, "podManagementPolicy", json!("OrderedReady"));
                def(spec, "revisionHistoryLimit", json!(10));
                def(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                let us = spec.entry("updateStrategy").or_insert_with(|| json!({}));
                if let Some(us) = us.as_object_mut() {
                    def(us, "type", json!("RollingUpdate"));
                    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        def(us, "rollingUpdate", json!({"partition": 0}));
                    }
                }
                template(spec);
            }
        }
        "Job" => {
            if let Some(spec) = child(root, "spec") {
                job_spec(spec);
            }
        }
        "CronJob" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "concurrencyPolicy", json!("Allow"));
                def(spec, "suspend", json!(false));
                def(spec, "successfulJobsHistoryLimit", json!(3));
                def(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(jt) = child(spec, "jobTemplate").and_then(|jt| child(jt, "spec")) {
                    job_spec(jt);
                }
            }
        }
        "Service" => {
            if let Some(spec) = child(root, "spec") {
                service_spec(spec);
            }
        }
        "Secret" => def(root, "type", json!("Opaque")),
        "PersistentVolumeClaim" => {
            if let Some(spec) = child(root, "spec") {
                def(spec, "volumeMode", json!("Filesystem"));
            }
        }
        "StorageClass" => {
            def(root, "reclaimPolicy", json!("Delete"));
            def(root, "volumeBindingMode", json!("Immediate"));
        }
        "PriorityClass" => def(root, "preemptionPolicy", json!("PreemptLowerPriority")),
        _ => {}
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    if !spec.contains_key("parallelism") && !spec.contains_key("completions") {
        spec.insert("completions".into(), json!(1));
    }
    def(spec, "parallelism", json!(1));
    def(spec, "backoffLimit", json!(6));
    def(spec, "completionMode", json!("NonIndexed"));
    def(spec, "suspend", json!(false));
    def(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if let Some(t) = child(spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(t, false);
    }
}

fn template(spec: &mut Map<String, Value>) {
    if let Some(t) = child(spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(t, false);
    }
}

/// `SetDefaults_PodSpec` (+ `SetDefaults_Pod` and the admission plugins for a Pod).
fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    def(spec, "restartPolicy", json!("Always"));
    def(spec, "dnsPolicy", json!("ClusterFirst"));
    def(spec, "schedulerName", json!("default-scheduler"));
    def(spec, "securityContext", json!({}));
    def(spec, "terminationGracePeriodSeconds", json!(30));
    if is_pod {
        def(spec, "enableServiceLinks", json!(true));
        def(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        def(spec, "priority", json!(0));
        def(spec, "serviceAccountName", json!("default"));
        let sa = spec
            .get("serviceAccountName")
            .cloned()
            .unwrap_or(json!("default"));
        def(spec, "serviceAccount", sa);
        def(
            spec,
            "tolerations",
            json!([
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
                 "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable",
                 "operator": "Exists", "tolerationSeconds": 300}
            ]),
        );
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret"] {
                if let Some(s) = child(v, source) {
                    def(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    def(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    def(c, "terminationMessagePath", json!("/dev/termination-log"));
    def(c, "terminationMessagePolicy", json!("File"));
    def(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            def(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            def(p, "timeoutSeconds", json!(1));
            def(p, "periodSeconds", json!(10));
            def(p, "successThreshold", json!(1));
            def(p, "failureThreshold", json!(3));
            if let Some(h) = child(p, "httpGet") {
                def(h, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(fr) = child(e, "valueFrom").and_then(|vf| child(vf, "fieldRef")) {
                def(fr, "apiVersion", json!("v1"));
            }
        }
    }
}

fn service_spec(spec: &mut Map<String, Value>) {
    def(spec, "type", json!("ClusterIP"));
    def(spec, "sessionAffinity", json!("None"));
    let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    if !external {
        def(spec, "internalTrafficPolicy", json!("Cluster"));
        def(spec, "ipFamilies", json!(["IPv4"]));
        def(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            def(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                def(p, "targetPort", port);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn deployment_defaults() {
        let r = Registry::default();
        let d = r.find("apps", "v1", "deployments").unwrap();
        let mut o = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "busybox"}]}}}});
        apply(&d, &mut o);
        assert_eq!(o["spec"]["replicas"], 1);
        assert_eq!(o["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &o["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["imagePullPolicy"], "Always");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(o["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(
            o["spec"]["template"]["spec"]
                .get("serviceAccountName")
                .is_none()
        );
    }

    #[test]
    fn jobs_default_completions_only_without_parallelism() {
        let r = Registry::default();
        let j = r.find("batch", "v1", "jobs").unwrap();
        let mut a = json!({"spec": {}});
        apply(&j, &mut a);
        assert_eq!(
            (
                a["spec"]["completions"].clone(),
                a["spec"]["parallelism"].clone()
            ),
            (json!(1), json!(1))
        );
        let mut b = json!({"spec": {"parallelism": 3}});
        apply(&j, &mut b);
        assert!(b["spec"].get("completions").is_none());
    }
}
