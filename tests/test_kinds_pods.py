"""Pod defaulting and validation through the ApiServer (kbox.api.kinds.pod / podspec)."""

from __future__ import annotations

import time

import pytest

from kbox.api.errors import ApiError


def pod(name="p", **spec):
    base = {"containers": [{"name": "c", "image": "nginx"}]}
    base.update(spec)
    return {"metadata": {"name": name}, "spec": base}


def causes(api, resource, body, ns="default"):
    with pytest.raises(ApiError) as ei:
        api.create(resource, body, ns)
    assert ei.value.code == 422, ei.value.message
    return {c["field"]: c["message"] for c in ei.value.causes}


def test_pod_defaults_and_status(api):
    p = api.create("pods", pod(containers=[
        {"name": "a", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
         "livenessProbe": {"tcpSocket": {"port": 80}}},
        {"name": "b", "image": "busybox:latest"}]), "default")
    s = p["spec"]
    assert s["restartPolicy"] == "Always"
    assert s["terminationGracePeriodSeconds"] == 30
    assert s["dnsPolicy"] == "ClusterFirst"
    assert s["schedulerName"] == "default-scheduler"
    assert s["securityContext"] == {}
    assert s["enableServiceLinks"] is True and s["priority"] == 0
    a, b = s["containers"]
    assert a["imagePullPolicy"] == "IfNotPresent" and b["imagePullPolicy"] == "Always"
    assert a["terminationMessagePath"] == "/dev/termination-log"
    assert a["terminationMessagePolicy"] == "File"
    assert a["ports"][0]["protocol"] == "TCP"
    probe = a["livenessProbe"]
    assert (probe["timeoutSeconds"], probe["periodSeconds"], probe["successThreshold"],
            probe["failureThreshold"]) == (1, 10, 1, 3)
    assert p["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_untagged_image_pulls_always(api):
    p = api.create("pods", pod(containers=[{"name": "c", "image": "nginx"}]), "default")
    assert p["spec"]["containers"][0]["imagePullPolicy"] == "Always"


@pytest.mark.parametrize("resources,qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
])
def test_qos_class(api, resources, qos):
    p = api.create("pods", pod(containers=[{"name": "c", "image": "x", "resources": resources}]),
                   "default")
    assert p["status"]["qosClass"] == qos


def test_user_status_is_reset_on_create(api):
    body = pod()
    body["status"] = {"phase": "Running", "podIP": "1.2.3.4"}
    p = api.create("pods", body, "default")
    assert p["status"]["phase"] == "Pending" and "podIP" not in p["status"]


@pytest.mark.parametrize("spec,field,message", [
    ({"containers": []}, "spec.containers", "Required value"),
    ({"containers": [{"name": "c"}]}, "spec.containers[0].image", "Required value"),
    ({"containers": [{"image": "x"}]}, "spec.containers[0].name", "Required value"),
    ({"containers": [{"name": "web", "image": "x"}, {"name": "web", "image": "y"}]},
     "spec.containers[1].name", 'Duplicate value: "web"'),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": -1}]}]},
     "spec.containers[0].ports[0].containerPort", "Invalid value: -1"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]},
     "spec.containers[0].ports[0].containerPort", "Invalid value: 70000"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": "abc"}]}]},
     "spec.containers[0].ports[0].containerPort", "Invalid value"),
    ({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]},
     "spec.restartPolicy", 'Unsupported value: "Sometimes"'),
    ({"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1 core"}}}]},
     "spec.containers[0].resources.limits[cpu]", 'Invalid value: "1 core"'),
    ({"containers": [{"name": "c", "image": "x",
                      "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]},
     "spec.containers[0].resources.requests", "must be less than or equal to cpu limit"),
    ({"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "k", "operator": "Bogus"}]},
     "spec.tolerations[0].operator", 'Unsupported value: "Bogus"'),
    ({"containers": [{"name": "c", "image": "x"}],
      "tolerations": [{"key": "k", "operator": "Exists", "effect": "Sometimes"}]},
     "spec.tolerations[0].effect", 'Unsupported value: "Sometimes"'),
    ({"containers": [{"name": "c", "image": "x"}], "terminationGracePeriodSeconds": -1},
     "spec.terminationGracePeriodSeconds", "Invalid value: -1"),
])
def test_pod_validation(api, spec, field, message):
    got = causes(api, "pods", {"metadata": {"name": "bad"}, "spec": spec})
    assert field in got, got
    assert got[field].startswith(message) or message in got[field], got[field]


def test_pod_spec_is_immutable_except_image_deadline_and_new_tolerations(api):
    api.create("pods", pod(tolerations=[{"key": "a", "operator": "Exists"}]), "default")
    cur = api.get("pods", "p", "default")
    cur["spec"]["containers"][0]["image"] = "nginx:2"
    cur["spec"]["activeDeadlineSeconds"] = 100
    cur["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    cur = api.update("pods", cur, "default")
    assert cur["spec"]["containers"][0]["image"] == "nginx:2"
    cur["spec"]["restartPolicy"] = "Never"
    with pytest.raises(ApiError) as ei:
        api.update("pods", cur, "default")
    assert ei.value.code == 422
    (c,) = ei.value.causes
    assert c["field"] == "spec"
    assert c["message"].startswith("Forbidden: pod updates may not change fields other than")
    cur = api.get("pods", "p", "default")
    cur["spec"]["tolerations"] = cur["spec"]["tolerations"][:1]     # removing one is a change
    with pytest.raises(ApiError):
        api.update("pods", cur, "default")


def test_status_update_keeps_qos_and_skips_spec_checks(api):
    api.create("pods", pod(), "default")
    cur = api.get("pods", "p", "default")
    cur["status"] = {"phase": "Running", "podIP": "10.0.0.5"}
    out = api.update_status("pods", cur, "default")
    assert out["status"]["qosClass"] == "BestEffort"
    assert out["status"]["phase"] == "Running"


def test_pod_field_selectors(api):
    api.create("pods", pod("a", nodeName="n1", hostNetwork=True), "default")
    api.create("pods", pod("b", restartPolicy="Never"), "default")
    names = lambda sel: sorted(i["metadata"]["name"] for i in
                               api.list("pods", "default", field_selector=sel)["items"])
    assert names("spec.nodeName=n1") == ["a"]
    assert names("spec.nodeName=") == ["b"]
    assert names("spec.restartPolicy=Never") == ["b"]
    assert names("spec.hostNetwork=false") == ["b"]
    assert names("spec.hostNetwork=true") == ["a"]
    assert names("status.phase=Pending") == ["a", "b"]
    assert names("spec.schedulerName=default-scheduler,status.podIP=") == ["a", "b"]
    assert names("spec.serviceAccountName=") == ["a", "b"]
    assert names("status.nominatedNodeName=") == ["a", "b"]
    with pytest.raises(ApiError) as ei:
        api.list("pods", "default", field_selector="spec.bogus=x")
    assert ei.value.code == 400


def test_pod_creates_are_fast(api):
    body = pod(containers=[{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                          "limits": {"cpu": "200m", "memory": "128Mi"}}}])
    import copy
    t = time.perf_counter()
    for i in range(2000):
        b = copy.deepcopy(body)
        b["metadata"]["name"] = f"p{i}"
        api.create("pods", b, "default")
    per = (time.perf_counter() - t) / 2000
    assert per < 0.002, f"{per * 1e6:.0f} us per pod create"
