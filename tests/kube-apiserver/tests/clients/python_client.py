"""Drives the Kubernetes API test server with the official Python client (PyPI
`kubernetes`), asserting what a real cluster answers. Run by tests/clients.rs with
KUBECONFIG pointing at the server; exits non-zero on the first difference."""

import json
import os
import sys

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
ext = client.ApiextensionsV1Api(api)
custom = client.CustomObjectsApi(api)
authz = client.AuthorizationV1Api(api)
rbac = client.RbacAuthorizationV1Api(api)
dyn = dynamic.DynamicClient(api)
NS = "py-client"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def expect_error(call, code, reason, message=None):
    try:
        call()
    except ApiException as e:
        body = json.loads(e.body)
        assert e.status == code, f"status {e.status} != {code}: {e.body}"
        assert body["kind"] == "Status" and body["status"] == "Failure", e.body
        assert body["reason"] == reason, f"reason {body['reason']} != {reason}"
        if message is not None:
            assert body["message"] == message, f"message {body['message']!r} != {message!r}"
        return body
    raise AssertionError(f"expected {code} {reason}, the call succeeded")


def step(name):
    print(f"-- {name}", flush=True)


step("namespaces")
names = {n.metadata.name: n.status.phase for n in core.list_namespace().items}
for ns in ["default", "kube-system", "kube-public", "kube-node-lease"]:
    assert names.get(ns) == "Active", names
created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
assert created.status.phase == "Active"
assert created.spec.finalizers == ["kubernetes"]
assert created.metadata.labels == {"kubernetes.io/metadata.name": NS}
expect_error(
    lambda: core.create_namespaced_config_map("nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))),
    404, "NotFound", 'namespaces "nowhere" not found')

step("create, get, conflicts")
cm = core.create_namespaced_config_map(NS, client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="cm1", labels={"app": "py"}), data={"k": "v1"}))
assert cm.metadata.uid and cm.metadata.resource_version.isdigit()
assert cm.metadata.generation is None, "ConfigMaps have no generation"
assert cm.metadata.managed_fields[0].manager == "OpenAPI-Generator"
assert cm.metadata.managed_fields[0].operation == "Update"
expect_error(lambda: core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm1"))),
             409, "AlreadyExists", 'configmaps "cm1" already exists')
expect_error(lambda: core.read_namespaced_config_map("nope", NS), 404, "NotFound", 'configmaps "nope" not found')
stale = core.read_namespaced_config_map("cm1", NS)
core.patch_namespaced_config_map("cm1", NS, {"data": {"k": "v2"}}, _content_type=MERGE)
stale.data = {"k": "v3"}
expect_error(lambda: core.replace_namespaced_config_map("cm1", NS, stale), 409, "Conflict",
             'Operation cannot be fulfilled on configmaps "cm1": the object has been modified; '
             'please apply your changes to the latest version and try again')
bad = expect_error(lambda: core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name"))),
                   422, "Invalid")
assert bad["details"]["causes"][0]["field"] == "metadata.name", bad
# The client sends a map body as a strategic merge patch, a list as a JSON patch.
assert core.patch_namespaced_config_map("cm1", NS, {"data": {"k2": "x"}}).data == {"k": "v2", "k2": "x"}
patched = core.patch_namespaced_config_map("cm1", NS, [{"op": "replace", "path": "/data/k", "value": "v4"}])
assert patched.data == {"k": "v4", "k2": "x"}
expect_error(lambda: core.patch_namespaced_config_map("cm1", NS, [{"op": "test", "path": "/data/k", "value": "no"}]),
             422, "Invalid")

step("selectors and lists")
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm2", labels={"app": "other"})))
listed = core.list_namespaced_config_map(NS, label_selector="app=py")
assert [c.metadata.name for c in listed.items] == ["cm1"], listed.items
assert listed.metadata.resource_version.isdigit()
by_name = core.list_namespaced_config_map(NS, field_selector="metadata.name=cm2")
assert [c.metadata.name for c in by_name.items] == ["cm2"]
expect_error(lambda: core.list_namespaced_config_map(NS, field_selector="data.k=v"), 400, "BadRequest",
             "field label not supported: data.k")
paged = core.list_namespaced_config_map(NS, limit=1)
assert len(paged.items) == 1 and paged.metadata._continue
rest = core.list_namespaced_config_map(NS, limit=10, _continue=paged.metadata._continue)
assert len(rest.items) >= 2 and paged.metadata.remaining_item_count == len(rest.items)

step("watch from a resourceVersion")
start = core.list_namespaced_config_map(NS).metadata.resource_version
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
core.patch_namespaced_config_map("w1", NS, {"data": {"a": "b"}}, _content_type=MERGE)
core.delete_namespaced_config_map("w1", NS)
seen = []
w = watch.Watch()
for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=1):
    seen.append((ev["type"], ev["object"].metadata.name))
    if len(seen) == 3:
        w.stop()
assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")], seen

step("deployment: defaults, status simulator, generation")
dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="nginx", image="nginx:1.25")]))))
d = apps.create_namespaced_deployment(NS, dep)
assert d.metadata.generation == 1
assert d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10
assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
d = apps.read_namespaced_deployment("web", NS)
assert d.status.ready_replicas == 2 and d.status.observed_generation == 1, d.status
assert [c.type for c in d.status.conditions] == ["Available", "Progressing"]
d = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}}, _content_type=STRATEGIC)
assert d.metadata.generation == 2
d = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}}, _content_type=MERGE)
assert d.metadata.generation == 2, "labels do not bump the generation"
d = apps.patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {"x": "y"}}}, _content_type=MERGE)
assert d.metadata.generation == 3, "a Deployment's annotations do"
s = apps.patch_namespaced_deployment_status("web", NS, {"status": {"replicas": 7}, "spec": {"replicas": 9}}, _content_type=MERGE)
assert s.metadata.generation == 3 and s.spec.replicas == 3 and s.status.replicas == 7
# The (simulated) deployment controller owns the status and writes it back at once.
before = apps.read_namespaced_deployment("web", NS)
assert before.status.replicas == 3 and before.status.observed_generation == 3
d = apps.patch_namespaced_deployment("web", NS, {"status": {"replicas": 1}}, _content_type=MERGE)
assert d.status == before.status and d.metadata.resource_version == before.metadata.resource_version, \
    "the main resource ignores status: nothing changed, nothing written"
dep_sm = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
    {"name": "sidecar", "image": "busybox:1.36"}]}}}}, _content_type=STRATEGIC)
assert [c.name for c in dep_sm.spec.template.spec.containers] == ["nginx", "sidecar"]

step("server-side apply with the dynamic client")
cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": NS}, "data": {"owned": "a"}}
applied = cms.server_side_apply(body=body, name="ssa", namespace=NS, field_manager="py-a")
assert applied.metadata.managedFields[0].manager == "py-a"
assert applied.metadata.managedFields[0].operation == "Apply"
clash = dict(body, data={"owned": "b"})
try:
    cms.server_side_apply(body=clash, name="ssa", namespace=NS, field_manager="py-b")
    raise AssertionError("expected a conflict")
except dynamic.exceptions.ConflictError as e:
    status = json.loads(e.body)
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "py-a": .data.owned', status
    assert status["details"]["causes"][0] == {"reason": "FieldManagerConflict", "message": 'conflict with "py-a"', "field": ".data.owned"}
forced = cms.server_side_apply(body=clash, name="ssa", namespace=NS, field_manager="py-b", force_conflicts=True)
assert forced.data.owned == "b"
managers = sorted(m.manager for m in forced.metadata.managedFields)
assert managers == ["py-b"], managers  # py-a owned only .data.owned, now taken

step("delete: foreground, orphan, finalizers, preconditions")
owner = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True)
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref])))
core.delete_namespaced_config_map("owner", NS, propagation_policy="Foreground")
expect_error(lambda: core.read_namespaced_config_map("owner", NS), 404, "NotFound")
expect_error(lambda: core.read_namespaced_config_map("dependent", NS), 404, "NotFound")
owner = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner2")))
ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner2", uid=owner.metadata.uid)
core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="orphan", owner_references=[ref])))
core.delete_namespaced_config_map("owner2", NS, propagation_policy="Orphan")
orphan = core.read_namespaced_config_map("orphan", NS)
assert orphan.metadata.owner_references is None, orphan.metadata
held = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])))
expect_error(lambda: core.delete_namespaced_config_map("held", NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="wrong"))),
             409, "Conflict",
             f'Operation cannot be fulfilled on configmaps "held": Precondition failed: UID in precondition: wrong, UID in object meta: {held.metadata.uid}')
core.delete_namespaced_config_map("held", NS)
held = core.read_namespaced_config_map("held", NS)
assert held.metadata.deletion_timestamp is not None and held.metadata.finalizers == ["example.com/hold"]
expect_error(lambda: core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}, _content_type=MERGE),
             422, "Invalid")
core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}}, _content_type=MERGE)
expect_error(lambda: core.read_namespaced_config_map("held", NS), 404, "NotFound")

step("CRDs and custom resources")
crd = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}}]}}
ext.create_custom_resource_definition(crd)
got = ext.read_custom_resource_definition("widgets.example.com")
conds = {c.type: c.status for c in got.status.conditions}
assert conds == {"NamesAccepted": "True", "Established": "True"}, conds
w = custom.create_namespaced_custom_object("example.com", "v1", NS, "widgets", {
    "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
    "spec": {"size": 1, "unknown": True}, "status": {"ready": True}})
assert w["metadata"]["generation"] == 1 and w["spec"] == {"size": 1} and "status" not in w, w
w = custom.patch_namespaced_custom_object_status("example.com", "v1", NS, "widgets", "w1", {"status": {"ready": True}})
assert w["metadata"]["generation"] == 1 and w["status"] == {"ready": True}
w = custom.patch_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1", {"spec": {"size": 2}})
assert w["metadata"]["generation"] == 2
expect_error(lambda: custom.patch_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1", {"spec": {"size": "big"}}),
             422, "Invalid")

step("SubjectAccessReview")
def review(user):
    return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=user, resource_attributes=client.V1ResourceAttributes(namespace=NS, verb="create", group="apps", resource="deployments"))))
sa_user = f"system:serviceaccount:{NS}:executor"
assert review(sa_user).status.allowed is False
rbac.create_namespaced_role(NS, client.V1Role(metadata=client.V1ObjectMeta(name="deployer"), rules=[
    client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["create", "get"])]))
rbac.create_namespaced_role_binding(NS, client.V1RoleBinding(
    metadata=client.V1ObjectMeta(name="deployer"),
    role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="deployer"),
    subjects=[client.RbacV1Subject(kind="ServiceAccount", name="executor", namespace=NS)]))
allowed = review(sa_user).status
assert allowed.allowed is True, allowed
assert allowed.reason == f'RBAC: allowed by RoleBinding "deployer/{NS}" of Role "deployer" to ServiceAccount "executor/{NS}"', allowed.reason

step("namespace deletion removes its content")
core.delete_namespace(NS)
expect_error(lambda: core.read_namespace(NS), 404, "NotFound")
assert custom.list_cluster_custom_object("example.com", "v1", "widgets")["items"] == []
print("python client: all checks passed")
