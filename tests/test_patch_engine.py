"""Patch engine: JSON patch, merge patch, strategic merge patch and server-side apply."""

from __future__ import annotations

import pytest

from kbox.api import patch as P
from kbox.api.errors import ApiError
from kbox.api.resources import lookup
from kbox.clock import FakeClock

PODS = lookup("pods")
DEPLOY = lookup("deployments")
SVC = lookup("services")


# ---- JSON patch ---------------------------------------------------------------

def test_json_patch_all_ops():
    doc = {"a": {"b": [1, 2, 3]}, "c": "x", "s~/k": 1}
    out = P.json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 4},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e"},
        {"op": "test", "path": "/e", "value": "y"},
        {"op": "replace", "path": "/s~0~1k", "value": 2},
    ])
    assert out == {"a": {"b": [0, 2, 3, 4]}, "c": "y", "e": "y", "s~/k": 2}
    assert doc["a"]["b"] == [1, 2, 3]   # input untouched


@pytest.mark.parametrize("ops, text", [
    ([{"op": "test", "path": "/c", "value": "nope"}], "testing value /c failed"),
    ([{"op": "remove", "path": "/missing"}], "nonexistent"),
    ([{"op": "replace", "path": "/missing", "value": 1}], "does not exist"),
    ([{"op": "add", "path": "/a/b/9", "value": 1}], "out of bounds"),
    ([{"op": "frobnicate", "path": "/c"}], "unknown op"),
    ([{"op": "add", "path": "c", "value": 1}], 'must start with "/"'),
    ({"op": "add"}, "JSON array"),
])
def test_json_patch_failures(ops, text):
    with pytest.raises(P.PatchError) as e:
        P.json_patch({"a": {"b": [1]}, "c": "x"}, ops)
    assert text in str(e.value)


def test_json_patch_failure_is_atomic():
    doc = {"a": 1}
    with pytest.raises(P.PatchError):
        P.apply(PODS, doc, [{"op": "add", "path": "/b", "value": 2},
                            {"op": "test", "path": "/a", "value": 5}], "json")
    assert doc == {"a": 1}


# ---- merge patch ----------------------------------------------------------------

def test_merge_patch_rfc7386():
    doc = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    out = P.apply(PODS, doc, {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}}, "merge")
    assert out == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
    with pytest.raises(P.PatchError):
        P.apply(PODS, doc, [1], "merge")


# ---- strategic merge patch ---------------------------------------------------------

def _pod():
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "busybox"}],
                "tolerations": [{"key": "x", "operator": "Exists"}],
                "volumes": [{"name": "data", "emptyDir": {}}]}}


def test_strategic_merges_containers_by_name_and_nested_lists():
    out = P.apply(PODS, _pod(), {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 443}],
         "env": [{"name": "B", "value": "3"}]},
        {"name": "new", "image": "redis"}]}}, "strategic")
    cs = out["spec"]["containers"]
    assert [c["name"] for c in cs] == ["web", "side", "new"]
    assert cs[0]["image"] == "nginx:2"
    assert cs[0]["ports"] == [{"containerPort": 80}, {"containerPort": 443}]
    assert cs[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]


def test_strategic_replaces_lists_without_merge_key():
    out = P.apply(PODS, _pod(), {"spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}},
                  "strategic")
    assert out["spec"]["tolerations"] == [{"key": "y", "operator": "Exists"}]


def test_strategic_finalizers_set_union_and_delete_from_primitive_list():
    out = P.apply(PODS, _pod(), {"metadata": {"finalizers": ["b", "a"]}}, "strategic")
    assert out["metadata"]["finalizers"] == ["a", "b"]
    out = P.apply(PODS, out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
                  "strategic")
    assert out["metadata"]["finalizers"] == ["b"]


def test_strategic_directives_delete_replace_null():
    out = P.apply(PODS, _pod(), {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
                  "strategic")
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]
    out = P.apply(PODS, _pod(), {"spec": {"containers": [{"$patch": "replace"},
                                                         {"name": "only", "image": "x"}]}},
                  "strategic")
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    out = P.apply(PODS, _pod(), {"spec": {"$patch": "replace", "containers": []}}, "strategic")
    assert out["spec"] == {"containers": []}
    out = P.apply(PODS, _pod(), {"spec": {"tolerations": None}}, "strategic")
    assert "tolerations" not in out["spec"]
    out = P.apply(PODS, _pod(), {"metadata": {"$patch": "delete"}}, "strategic")
    assert "metadata" not in out


def test_strategic_retain_keys_and_set_element_order():
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
         "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = P.apply(DEPLOY, d, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
                  "strategic")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = P.apply(PODS, _pod(), {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "nginx:3"}]}}, "strategic")
    assert [c["name"] for c in out["spec"]["containers"]] == ["side", "web"]
    assert out["spec"]["containers"][1]["image"] == "nginx:3"


def test_strategic_service_ports_by_port_and_conditions_by_type():
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    out = P.apply(SVC, svc, {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}, "strategic")
    assert out["spec"]["ports"][0] == {"port": 80, "name": "http", "targetPort": 8080}
    assert len(out["spec"]["ports"]) == 2
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                     {"type": "PodScheduled", "status": "True"}]}}
    out = P.apply(PODS, pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                  "strategic")
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "PodScheduled", "status": "True"}]


def test_strategic_template_containers_and_missing_merge_key():
    d = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}]}}}}
    out = P.apply(DEPLOY, d, {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "2"}]}}}}, "strategic")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
    with pytest.raises(P.PatchError, match="merge key"):
        P.apply(DEPLOY, d, {"spec": {"template": {"spec": {"containers": [{"image": "3"}]}}}},
                "strategic")


# ---- managed fields ------------------------------------------------------------------

def test_fields_v1_round_trip_and_keys():
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
         "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}
    fs = P.field_set(d, P.schema_for(DEPLOY))
    v1 = P.fields_to_v1(fs)
    assert v1["f:spec"]["f:replicas"] == {}
    item = v1["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert item == {".": {}, "f:image": {}, "f:name": {}}
    assert "f:name" not in v1["f:metadata"]
    assert P.fields_from_v1(v1) == fs


# ---- server-side apply ---------------------------------------------------------------

def _deploy(replicas=2, image="nginx:1", labels=None):
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": replicas, "template": {"spec": {"containers": [
             {"name": "web", "image": image}]}}}}
    if labels:
        d["metadata"]["labels"] = labels
    return d


def _mf(obj, manager):
    return [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager]


def test_apply_creates_and_records_fields():
    clock = FakeClock()
    out = P.apply_patch(DEPLOY, {}, _deploy(), "mgr", False, clock)
    assert out["spec"]["replicas"] == 2
    (e,) = _mf(out, "mgr")
    assert e["operation"] == "Apply" and e["fieldsType"] == "FieldsV1"
    assert "f:replicas" in e["fieldsV1"]["f:spec"]


def test_apply_conflict_with_update_manager_and_force():
    clock = FakeClock()
    live = P.apply_patch(DEPLOY, {}, _deploy(), "mgr", False, clock)
    live["metadata"]["resourceVersion"] = "5"
    # another writer (an Update) changes replicas and so owns it
    new = P.apply(DEPLOY, live, {"spec": {"replicas": 5}}, "merge")
    P.record_update(live, new, "kubectl-client-side-apply", clock, DEPLOY)
    assert "f:replicas" not in _mf(new, "mgr")[0]["fieldsV1"]["f:spec"]
    with pytest.raises(ApiError) as e:
        P.apply_patch(DEPLOY, new, _deploy(replicas=3), "mgr", False, clock)
    err = e.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                           'using apps/v1: .spec.replicas')
    assert err.causes == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                           "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]
    # the same value is no conflict (shared ownership)
    same = P.apply_patch(DEPLOY, new, _deploy(replicas=5), "mgr", False, clock)
    assert same["spec"]["replicas"] == 5
    forced = P.apply_patch(DEPLOY, new, _deploy(replicas=3), "mgr", True, clock)
    assert forced["spec"]["replicas"] == 3
    assert "f:replicas" in _mf(forced, "mgr")[0]["fieldsV1"]["f:spec"]
    other = _mf(forced, "kubectl-client-side-apply")
    assert not other or "f:replicas" not in other[0]["fieldsV1"].get("f:spec", {})


def test_apply_removes_fields_no_longer_applied_unless_owned_elsewhere():
    clock = FakeClock()
    live = P.apply_patch(DEPLOY, {}, _deploy(labels={"a": "1", "b": "2"}), "mgr", False, clock)
    out = P.apply_patch(DEPLOY, live, _deploy(labels={"a": "1"}), "mgr", False, clock)
    assert out["metadata"]["labels"] == {"a": "1"}
    # a second applier shares label a: dropping it from mgr keeps it
    both = P.apply_patch(DEPLOY, out, {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": "web", "labels": {"a": "1"}}},
                         "other", False, clock)
    out2 = P.apply_patch(DEPLOY, both, _deploy(), "mgr", False, clock)
    assert out2["metadata"]["labels"] == {"a": "1"}


def test_apply_keyed_list_items_merge_and_removal():
    clock = FakeClock()
    live = P.apply_patch(DEPLOY, {}, _deploy(), "mgr", False, clock)
    # a sidecar added by another applier survives mgr's applies
    live = P.apply_patch(DEPLOY, live, {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "metadata": {"name": "web"},
                                        "spec": {"template": {"spec": {"containers": [
                                            {"name": "side", "image": "busybox"}]}}}},
                         "injector", False, clock)
    out = P.apply_patch(DEPLOY, live, _deploy(image="nginx:2"), "mgr", False, clock)
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in cs] == [("web", "nginx:2"), ("side", "busybox")]
    fields = _mf(out, "mgr")[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(fields) == ['k:{"name":"web"}']
    # the injector stops applying its container: it goes away
    gone = P.apply_patch(DEPLOY, out, {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": "web"}}, "injector", False, clock)
    assert [c["name"] for c in gone["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_apply_conflicts_between_appliers_lists_all():
    clock = FakeClock()
    live = P.apply_patch(DEPLOY, {}, _deploy(), "a", False, clock)
    with pytest.raises(ApiError) as e:
        P.apply_patch(DEPLOY, live, _deploy(replicas=9, image="x"), "b", False, clock)
    assert e.value.message.startswith('Apply failed with 2 conflicts: conflicts with "a":')
    assert "- .spec.template.spec.containers[name=\"web\"].image" in e.value.message


def test_apply_rejects_wrong_kind():
    with pytest.raises(P.PatchError):
        P.apply_patch(DEPLOY, {}, {"apiVersion": "v1", "kind": "Pod"}, "m", False, FakeClock())


def test_update_manager_records_only_changed_fields():
    clock = FakeClock()
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    new = P.apply(lookup("configmaps"), old, {"data": {"b": "3"}}, "merge")
    P.record_update(old, new, "editor", clock, lookup("configmaps"))
    (e,) = new["metadata"]["managedFields"]
    assert e["operation"] == "Update" and e["fieldsV1"] == {"f:data": {"f:b": {}}}
    # a no-op write by a new manager adds no entry
    again = P.apply(lookup("configmaps"), new, {}, "merge")
    P.record_update(new, again, "noop", clock, lookup("configmaps"))
    assert [x["manager"] for x in again["metadata"]["managedFields"]] == ["editor"]


def test_apply_through_api_server(api):
    from kbox.api.client import InProcessClient
    c = InProcessClient(api)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}
    out = c.patch("configmaps", "cfg", cm, "apply", "default", field_manager="me")
    assert out["data"] == {"k": "v"}
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["me"]
    c.patch("configmaps", "cfg", {"data": {"k": "w"}}, "merge", "default", field_manager="editor")
    with pytest.raises(ApiError) as e:
        c.patch("configmaps", "cfg", cm, "apply", "default", field_manager="me")
    assert e.value.code == 409 and ".data.k" in e.value.message
    out = c.patch("configmaps", "cfg", cm, "apply", "default", field_manager="me", force=True)
    assert out["data"] == {"k": "v"}
    with pytest.raises(ApiError) as e:
        c.patch("configmaps", "cfg", cm, "apply", "default")
    assert e.value.code == 400


def test_json_patch_test_op_types():
    doc = {"a": 1, "b": True, "c": {"x": [1, 2]}}
    P.json_patch(doc, [{"op": "test", "path": "/a", "value": 1.0},
                       {"op": "test", "path": "/c", "value": {"x": [1, 2]}}])
    for path, value in (("/a", True), ("/b", 1), ("/c/x", [1])):
        with pytest.raises(P.PatchError):
            P.json_patch(doc, [{"op": "test", "path": path, "value": value}])


def test_apply_does_not_change_live():
    clock = FakeClock()
    live = P.apply_patch(DEPLOY, {}, _deploy(labels={"a": "1"}), "mgr", False, clock)
    snapshot = P.deep_copy(live)
    P.apply_patch(DEPLOY, live, {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": "web"}}, "mgr", False, clock)
    assert live == snapshot
