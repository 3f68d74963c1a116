"""The generic registry of the API server: what every kind gets for free."""

from __future__ import annotations

import pytest

from kbox.api.errors import ApiError


def pod(name="p", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def cm(name="c", data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": data or {"k": "v"}}


def test_create_sets_identity_and_revision(api):
    obj = api.create("pods", pod())
    m = obj["metadata"]
    assert m["namespace"] == "default" and m["uid"] and m["creationTimestamp"]
    assert int(m["resourceVersion"]) == api.store.revision
    assert m["generation"] == 1
    assert api.get("po", "p")["metadata"]["uid"] == m["uid"]


def test_generate_name(api):
    obj = api.create("pods", {**pod(), "metadata": {"generateName": "web-"}})
    name = obj["metadata"]["name"]
    assert name.startswith("web-") and len(name) == 9


def test_already_exists_and_not_found(api):
    api.create("configmaps", cm())
    with pytest.raises(ApiError) as e:
        api.create("configmaps", cm())
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    assert e.value.message == 'configmaps "c" already exists'
    with pytest.raises(ApiError) as e:
        api.get("deployments", "nope")
    assert e.value.code == 404 and e.value.message == 'deployments.apps "nope" not found'


def test_stale_resource_version_conflicts(api):
    from kbox.api.objects import deep_copy
    obj = api.create("configmaps", cm())
    fresh = api.update("configmaps", {**deep_copy(obj), "data": {"k": "2"}})
    assert int(fresh["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as e:
        api.update("configmaps", {**deep_copy(obj), "data": {"k": "3"}})
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert "the object has been modified" in e.value.message
    assert api.get("configmaps", "c")["data"] == {"k": "2"}   # nothing lost


def test_noop_update_writes_nothing(api):
    obj = api.create("configmaps", cm())
    rev = api.store.revision
    again = api.update("configmaps", obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert api.store.revision == rev


def test_generation_bumps_on_spec_only_and_status_is_split(api):
    obj = api.create("pods", pod())
    obj["metadata"]["labels"]["x"] = "y"
    obj = api.update("pods", obj)
    assert obj["metadata"]["generation"] == 1
    obj["spec"]["activeDeadlineSeconds"] = 30
    obj["status"] = {"phase": "Running"}
    obj = api.update("pods", obj)
    assert obj["metadata"]["generation"] == 2
    assert (obj.get("status") or {}).get("phase") != "Running"          # update ignores status
    obj["status"] = {"phase": "Running"}
    obj["spec"]["activeDeadlineSeconds"] = 99
    st = api.update_status("pods", obj)
    assert st["status"]["phase"] == "Running"
    assert st["spec"]["activeDeadlineSeconds"] == 30         # status update ignores spec


def test_finalizers_hold_deletion(api):
    obj = cm()
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    api.create("configmaps", obj)
    gone = api.delete("configmaps", "c")
    assert gone["metadata"]["deletionTimestamp"]
    assert api.get("configmaps", "c")["metadata"]["deletionTimestamp"]
    cur = api.get("configmaps", "c")
    cur["metadata"]["finalizers"] = []
    api.update("configmaps", cur)
    with pytest.raises(ApiError):
        api.get("configmaps", "c")


def test_graceful_pod_deletion(api, fake_clock):
    api.create("pods", pod(nodeName="n1"))
    out = api.delete("pods", "p")
    assert out["metadata"]["deletionGracePeriodSeconds"] == 30
    assert api.get("pods", "p")["metadata"]["deletionTimestamp"]
    api.delete("pods", "p", grace_period_seconds=0)
    with pytest.raises(ApiError):
        api.get("pods", "p")


def test_unscheduled_pod_deleted_at_once(api):
    api.create("pods", pod())
    api.delete("pods", "p")
    with pytest.raises(ApiError):
        api.get("pods", "p")


def test_propagation_policies_add_finalizers(api):
    api.create("configmaps", cm("a"))
    api.create("configmaps", cm("b"))
    assert api.delete("configmaps", "a", propagation_policy="Orphan")["metadata"]["finalizers"] == ["orphan"]
    assert api.delete("configmaps", "b", propagation_policy="Foreground")["metadata"]["finalizers"] == ["foregroundDeletion"]


def test_label_and_field_selectors_and_paging(api):
    for i in range(5):
        p = pod(f"p{i}", nodeName="n1" if i % 2 else "n2")
        p["metadata"]["labels"] = {"app": "web", "tier": "a" if i < 3 else "b"}
        api.create("pods", p)
    names = lambda lst: [o["metadata"]["name"] for o in lst["items"]]
    assert names(api.list("pods", "default", label_selector="tier=b")) == ["p3", "p4"]
    assert names(api.list("pods", "default", label_selector="tier in (a),app")) == ["p0", "p1", "p2"]
    assert names(api.list("pods", field_selector="spec.nodeName=n1")) == ["p1", "p3"]
    page = api.list("pods", "default", limit=2)
    assert names(page) == ["p0", "p1"] and page["metadata"]["remainingItemCount"] == 3
    page2 = api.list("pods", "default", limit=2, continue_token=page["metadata"]["continue"])
    assert names(page2) == ["p2", "p3"]
    with pytest.raises(ApiError) as e:
        api.list("pods", field_selector="spec.bogus=1")
    assert e.value.code == 400 and "field label not supported" in e.value.message
    with pytest.raises(ApiError) as e:
        api.list("pods", label_selector="a in (")
    assert e.value.code == 400


def test_watch_from_revision_and_selection_changes(api):
    obj = api.create("pods", pod())
    w = api.watch("pods", "default", label_selector="app=web",
                  resource_version=obj["metadata"]["resourceVersion"])
    obj["metadata"]["labels"] = {"app": "other"}
    api.update("pods", obj)
    obj2 = api.create("pods", pod("q"))
    api.delete("pods", "q")
    events = []
    while len(events) < 3:
        events += [(t, c.obj["metadata"]["name"]) for t, c in w.next_batch(2)]
    # leaving the selection is a DELETED, as kube-apiserver sends it
    assert events == [("DELETED", "p"), ("ADDED", "q"), ("DELETED", "q")]
    w.close()


def test_watch_too_old_is_gone(api):
    from kbox.api import cache as cache_mod
    api.create("configmaps", cm("a"))
    c = api.cache(api.resource("configmaps"))
    # shrink the ring so history rolls over
    c._ring = cache_mod.collections.deque(c._ring, maxlen=2)
    for i in range(5):
        api.create("configmaps", cm(f"x{i}"))
    api.list("configmaps")
    with pytest.raises(ApiError) as e:
        api.watch("configmaps", resource_version="1")
    assert e.value.code == 410 and e.value.reason == "Expired"


def test_object_size_limit(api):
    with pytest.raises(ApiError) as e:
        api.create("configmaps", cm("big", {"k": "x" * (2 * 1024 * 1024)}))
    assert e.value.code == 413
    with pytest.raises(ApiError):
        api.get("configmaps", "big")


def test_namespace_lifecycle(api):
    with pytest.raises(ApiError) as e:
        api.create("configmaps", cm(), "nope")
    assert e.value.code == 404 and 'namespaces "nope" not found' in e.value.message


def test_scale_subresource(api):
    api.create("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                               "metadata": {"name": "rs"},
                               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                        "template": {"metadata": {"labels": {"app": "web"}},
                                                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    s = api.scale("replicasets", "rs", 4)
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 4 and s["status"]["selector"] == "app=web"
    with pytest.raises(ApiError) as e:
        api.scale("replicasets", "rs", -1)
    assert e.value.code == 422 and "spec.replicas" in e.value.message


def test_binding_is_once(api):
    api.create("pods", pod())
    api.bind("p", "default", "n1")
    got = api.get("pods", "p")
    assert got["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in got["status"]["conditions"])
    with pytest.raises(ApiError) as e:
        api.bind("p", "default", "n2")
    assert e.value.code == 409


def test_invalid_metadata_names_field(api):
    with pytest.raises(ApiError) as e:
        api.create("configmaps", cm("Bad_Name"))
    assert e.value.code == 422
    assert e.value.causes[0]["field"] == "metadata.name"
    with pytest.raises(ApiError) as e:
        api.create("configmaps", {**cm(), "metadata": {"name": "x", "labels": {"a": "b c"}}})
    assert e.value.causes[0]["field"] == "metadata.labels"


def test_kind_mismatch_is_bad_request(api):
    with pytest.raises(ApiError) as e:
        api.create("pods", cm())
    assert e.value.code == 400
