"""Namespace, Node, Secret, ConfigMap, Event, Lease, ControllerRevision,
Endpoints and ServiceAccount strategies; admission plugins; the quantity
parser; pod graceful deletion with the strategies in place."""

from __future__ import annotations

import base64
from fractions import Fraction
from types import SimpleNamespace

import pytest

from kbox.api.admission import default_admission
from kbox.api.errors import ApiError
from kbox.api.quantity import QuantityError, parse_cpu, parse_memory, parse_quantity


def causes(api, resource, body, ns=None):
    with pytest.raises(ApiError) as ei:
        api.create(resource, body, ns)
    assert ei.value.code == 422, ei.value.message
    return {c["field"]: c["message"] for c in ei.value.causes}


# ---- Namespace -----------------------------------------------------------------------

def test_namespace_defaults(api):
    ns = api.create("namespaces", {"metadata": {"name": "shop"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "shop"}
    assert api.get("namespaces", "default")["status"]["phase"] == "Active"


def test_namespace_deletion_waits_for_finalize(api):
    api.create("namespaces", {"metadata": {"name": "shop"}})
    out = api.delete("namespaces", "shop")
    assert out["status"]["phase"] == "Terminating"
    names = lambda sel: [i["metadata"]["name"] for i in api.list("namespaces", field_selector=sel)["items"]]
    assert names("status.phase=Terminating") == ["shop"]
    # an ordinary update cannot drop the finalizer: only /finalize can
    cur = api.get("namespaces", "shop")
    cur["spec"]["finalizers"] = []
    assert api.update("namespaces", cur)["spec"]["finalizers"] == ["kubernetes"]
    cur["spec"]["finalizers"] = []
    api.update("namespaces", cur, subresource="finalize")
    with pytest.raises(ApiError) as ei:
        api.get("namespaces", "shop")
    assert ei.value.code == 404


def test_namespace_name_is_a_dns_label(api):
    got = causes(api, "namespaces", {"metadata": {"name": "a.b"}})
    assert got["metadata.name"].startswith('Invalid value: "a.b": a lowercase RFC 1123 label')


# ---- Node ----------------------------------------------------------------------------

def node(name="n1", **spec):
    return {"metadata": {"name": name}, "spec": spec}


def test_node_taints_validated(api):
    got = causes(api, "nodes", node(taints=[{"key": "k", "effect": "NoWay"}]))
    assert got["spec.taints[0].effect"] == \
        'Unsupported value: "NoWay": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
    got = causes(api, "nodes", node(taints=[{"key": "k"}]))
    assert got["spec.taints[0].effect"] == "Required value"
    got = causes(api, "nodes", node(podCIDR="10.244.1.0/99"))
    assert "spec.podCIDRs" in got
    n = api.create("nodes", node(podCIDR="10.244.1.0/24",
                                 taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]))
    assert n["spec"]["taints"][0]["key"] == "gpu"


def test_node_pod_cidr_is_fixed_once_set(api):
    api.create("nodes", node(podCIDR="10.244.1.0/24"))
    cur = api.get("nodes", "n1")
    cur["spec"]["podCIDR"] = "10.244.2.0/24"
    with pytest.raises(ApiError) as ei:
        api.update("nodes", cur)
    assert ei.value.causes[0]["field"] == "spec.podCIDRs"


def test_node_unschedulable_field_selector(api):
    api.create("nodes", node("a"))
    api.create("nodes", node("b", unschedulable=True))
    names = lambda sel: [i["metadata"]["name"] for i in api.list("nodes", field_selector=sel)["items"]]
    assert names("spec.unschedulable=false") == ["a"]
    assert names("spec.unschedulable=true") == ["b"]


# ---- Secret and ConfigMap ------------------------------------------------------------

def test_secret_defaults_and_string_data(api):
    s = api.create("secrets", {"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"1").decode()},
                               "stringData": {"b": "two"}}, "default")
    assert s["type"] == "Opaque"
    assert "stringData" not in s
    assert s["data"] == {"a": "MQ==", "b": base64.b64encode(b"two").decode()}
    # stringData wins over data for the same key, on update too
    s["stringData"] = {"a": "new"}
    out = api.update("secrets", s, "default")
    assert base64.b64decode(out["data"]["a"]) == b"new" and "stringData" not in out


def test_secret_validation(api):
    got = causes(api, "secrets", {"metadata": {"name": "s"}, "data": {"a": "not base64!"}}, "default")
    assert "must be a valid base64 string" in got["data[a]"]
    got = causes(api, "secrets", {"metadata": {"name": "s"}, "data": {"bad key": "MQ=="}}, "default")
    assert "a valid config key" in got["data"]
    got = causes(api, "secrets", {"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                                  "data": {"tls.crt": "MQ=="}}, "default")
    assert got["data[tls.key]"] == "Required value"


def test_secret_type_field_selector(api):
    api.create("secrets", {"metadata": {"name": "a"}}, "default")
    api.create("secrets", {"metadata": {"name": "b"}, "type": "kubernetes.io/basic-auth"}, "default")
    names = [i["metadata"]["name"] for i in
             api.list("secrets", "default", field_selector="type=Opaque")["items"]]
    assert names == ["a"]


def test_configmap_rules(api):
    got = causes(api, "configmaps", {"metadata": {"name": "c"}, "data": {"a b": "x"}}, "default")
    assert "a valid config key" in got["data"]
    got = causes(api, "configmaps", {"metadata": {"name": "c"}, "data": {"a": 1}}, "default")
    assert got["data.a"] == "Invalid value: 1: must be a string"
    api.create("configmaps", {"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True},
               "default")
    cur = api.get("configmaps", "frozen", "default")
    cur["data"]["a"] = "2"
    with pytest.raises(ApiError) as ei:
        api.update("configmaps", cur, "default")
    assert ei.value.causes[0]["message"] == "Forbidden: field is immutable when `immutable` is set"


# ---- Events, leases, revisions, endpoints, service accounts ----------------------------

def event(name, **fields):
    return {"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p",
                                                           "namespace": "default"},
            "reason": "Started", "message": "m", "type": "Normal", **fields}


def test_event_field_selectors(api):
    api.create("events", event("e1", source={"component": "kubelet"}), "default")
    api.create("events", event("e2", type="Warning", reason="BackOff",
                               involvedObject={"kind": "Node", "name": "n1"},
                               source={"component": "node-controller"}), "default")
    names = lambda sel: [i["metadata"]["name"] for i in
                         api.list("events", "default", field_selector=sel)["items"]]
    assert names("involvedObject.kind=Pod") == ["e1"]
    assert names("involvedObject.name=n1,type=Warning") == ["e2"]
    assert names("source=kubelet") == ["e1"]
    assert names("reason=BackOff") == ["e2"]
    got = causes(api, "events", event("e3", type="Fatal"), "default")
    assert got["type"].startswith('Unsupported value: "Fatal"')


def test_lease_and_revision_and_endpoints(api):
    got = causes(api, "leases", {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}},
                 "kube-node-lease")
    assert got["spec.leaseDurationSeconds"] == "Invalid value: 0: must be greater than 0"
    got = causes(api, "leases", {"metadata": {"name": "l"}, "spec": {"holderIdentity": 5}},
                 "kube-node-lease")
    assert got["spec.holderIdentity"] == "Invalid value: 5: must be a string"
    api.create("leases", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "n1",
                                                              "leaseDurationSeconds": 40}},
               "kube-node-lease")
    got = causes(api, "controllerrevisions", {"metadata": {"name": "r"}, "data": {}}, "default")
    assert got["revision"] == "Required value"
    api.create("controllerrevisions", {"metadata": {"name": "r"}, "data": {"x": 1}, "revision": 1},
               "default")
    cur = api.get("controllerrevisions", "r", "default")
    cur["data"] = {"x": 2}
    with pytest.raises(ApiError):
        api.update("controllerrevisions", cur, "default")
    got = causes(api, "endpoints", {"metadata": {"name": "e"}, "subsets": [
        {"addresses": [{"hostname": "x"}], "ports": [{"port": 0}]}]}, "default")
    assert got["subsets[0].addresses[0].ip"] == "Required value"
    assert got["subsets[0].ports[0].port"].startswith("Invalid value: 0")
    sa = api.create("serviceaccounts", {"metadata": {"name": "robot"}, "extraThing": 1}, "default")
    assert sa["extraThing"] == 1


# ---- admission -------------------------------------------------------------------------

def config(seconds=300):
    return SimpleNamespace(timings=SimpleNamespace(default_toleration_seconds=seconds))


def test_default_toleration_seconds_and_service_account(api, fake_clock):
    api.admission.extend(default_admission(config(42), fake_clock))
    p = api.create("pods", {"metadata": {"name": "p"},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}}, "default")
    assert p["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 42},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 42}]
    assert p["spec"]["serviceAccountName"] == "default" and p["spec"]["serviceAccount"] == "default"
    # a pod that already tolerates one taint keeps its own toleration for it
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 5}
    q = api.create("pods", {"metadata": {"name": "q"}, "spec": {
        "serviceAccountName": "robot", "tolerations": [own],
        "containers": [{"name": "c", "image": "x"}]}}, "default")
    assert [t["key"] for t in q["spec"]["tolerations"]] == ["node.kubernetes.io/unreachable",
                                                             "node.kubernetes.io/not-ready"]
    assert q["spec"]["tolerations"][0]["tolerationSeconds"] == 5
    assert q["spec"]["serviceAccountName"] == "robot"     # missing accounts are not refused
    # tolerate-everything pods get nothing added
    r = api.create("pods", {"metadata": {"name": "r"}, "spec": {
        "tolerations": [{"operator": "Exists"}], "containers": [{"name": "c", "image": "x"}]}},
        "default")
    assert r["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_event_defaults_admission(api, fake_clock):
    api.admission.extend(default_admission(config(), fake_clock))
    e = api.create("events", {"metadata": {"name": "e"}, "reason": "X", "message": "m",
                              "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                              "reportingComponent": "kbox-test"}, "default")
    assert e["source"] == {"component": "kbox-test"}
    assert e["count"] == 1 and e["type"] == "Normal" and e["firstTimestamp"]


# ---- pod deletion still graceful ------------------------------------------------------

def test_graceful_pod_deletion(api):
    api.create("pods", {"metadata": {"name": "p"}, "spec": {
        "terminationGracePeriodSeconds": 20, "containers": [{"name": "c", "image": "x"}]}}, "default")
    api.bind("p", "default", "node-1")
    out = api.delete("pods", "p", "default")
    assert out["metadata"]["deletionTimestamp"]
    assert out["metadata"]["deletionGracePeriodSeconds"] == 20
    assert api.get("pods", "p", "default")["metadata"]["deletionTimestamp"]
    # the kubelet's status writes still pass validation while it stops the pod
    cur = api.get("pods", "p", "default")
    cur["status"]["phase"] = "Running"
    api.update_status("pods", cur, "default")
    api.delete("pods", "p", "default", grace_period_seconds=0)
    with pytest.raises(ApiError):
        api.get("pods", "p", "default")


def test_update_may_not_set_node_name(api):
    api.create("pods", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "x"}]}}, "default")
    cur = api.get("pods", "p", "default")
    cur["spec"]["nodeName"] = "node-1"
    with pytest.raises(ApiError) as ei:
        api.update("pods", cur, "default")
    assert ei.value.causes[0]["field"] == "spec"


def test_unknown_fields_are_kept_and_nothing_is_reordered(api):
    body = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x:1", "futureField": {"a": 1}}], "alsoNew": True}}
    p = api.create("pods", body, "default")
    c = p["spec"]["containers"][0]
    assert c["futureField"] == {"a": 1} and p["spec"]["alsoNew"] is True
    assert list(c)[:3] == ["name", "image", "futureField"]


# ---- quantities ------------------------------------------------------------------------

@pytest.mark.parametrize("text,cpu", [("250m", 250), ("1", 1000), ("0.5", 500), ("1.5", 1500),
                                      (2, 2000), ("100u", 1), ("1k", 1_000_000), ("1e-3", 1)])
def test_parse_cpu(text, cpu):
    assert parse_cpu(text) == cpu


@pytest.mark.parametrize("text,nbytes", [
    ("128Mi", 128 * 2 ** 20), ("1Gi", 2 ** 30), ("1G", 10 ** 9), ("1k", 1000), ("1Ki", 1024),
    ("1M", 10 ** 6), ("1T", 10 ** 12), ("1Ti", 2 ** 40), ("1E", 10 ** 18), ("1Ei", 2 ** 60),
    ("1.5Gi", 3 * 2 ** 29), ("1e3", 1000), ("100", 100), (".5Ki", 512), ("1m", 1)])
def test_parse_memory(text, nbytes):
    assert parse_memory(text) == nbytes


@pytest.mark.parametrize("text", ["", "abc", "1 core", "1Gb", "1.2.3", "Mi", "1KiB", "--1", "1e"])
def test_bad_quantities(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_quantity_exact():
    assert parse_quantity("-1.5m") == Fraction(-3, 2000)
