"""Services, Secrets, Namespaces, Nodes, Events and the rest: defaults, validation,
field selectors; plus the quantity parser and the admission plugins."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from kbox.api.errors import ApiError
from kbox.api.resources import lookup


def fail(api, resource, body, ns="default", op="create"):
    with pytest.raises(ApiError) as ei:
        if op == "create":
            api.create(resource, body, ns)
        else:
            api.update(resource, body, ns)
    assert ei.value.code == 422, ei.value.message
    return {c["field"]: c["message"] for c in ei.value.causes}


def svc(name="web", **spec):
    s = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


# ---- services ------------------------------------------------------------------------

def test_service_defaults_and_cluster_ip(api):
    s = api.create("services", svc(), "default")["spec"]
    assert s["type"] == "ClusterIP" and s["sessionAffinity"] == "None"
    assert s["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert s["ipFamilies"] == ["IPv4"] and s["ipFamilyPolicy"] == "SingleStack"
    assert s["internalTrafficPolicy"] == "Cluster"
    ip = ipaddress.ip_address(s["clusterIP"])
    assert ip in ipaddress.ip_network("10.96.0.0/12") and str(ip) != "10.96.0.1"
    assert s["clusterIPs"] == [s["clusterIP"]]


def test_cluster_ips_are_unique(api):
    ips = {api.create("services", svc(f"s{i}"), "default")["spec"]["clusterIP"] for i in range(50)}
    assert len(ips) == 50


def test_chosen_cluster_ip_taken(api):
    a = api.create("services", svc("a", clusterIP="10.96.5.5"), "default")
    assert a["spec"]["clusterIPs"] == ["10.96.5.5"]
    got = fail(api, "services", svc("b", clusterIP="10.96.5.5"))
    assert "already allocated" in got["spec.clusterIPs"]


def test_headless_service(api):
    s = api.create("services", svc(clusterIP="None", ports=[]), "default")["spec"]
    assert s["clusterIP"] == "None" and s["clusterIPs"] == ["None"]


def test_service_ports_required_unless_headless(api):
    got = fail(api, "services", svc(ports=[]))
    assert got["spec.ports"] == "Required value"


def test_service_port_rules(api):
    got = fail(api, "services", svc(ports=[{"port": 0}]))
    assert "spec.ports[0].port" in got
    got = fail(api, "services", svc(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]))
    assert got["spec.ports[1].name"] == 'Duplicate value: "a"'
    got = fail(api, "services", svc(ports=[{"port": 80}, {"port": 81}]))
    assert got["spec.ports[0].name"] == "Required value"
    got = fail(api, "services", svc(type="Fancy"))
    assert got["spec.type"].startswith('Unsupported value: "Fancy"')


def test_cluster_ip_immutable_and_kept_on_replace(api):
    created = api.create("services", svc(), "default")
    body = svc()                                  # kubectl replace without clusterIP
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    out = api.update("services", body, "default")
    assert out["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    out["spec"]["clusterIP"] = "10.96.9.9"
    out["spec"]["clusterIPs"] = ["10.96.9.9"]
    got = fail(api, "services", out, op="update")
    assert got["spec.clusterIPs[0]"].endswith("field is immutable")


def test_node_ports(api):
    s = api.create("services", svc(type="NodePort", ports=[{"name": "a", "port": 80},
                                                            {"name": "b", "port": 81}]),
                   "default")["spec"]
    ports = [p["nodePort"] for p in s["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2
    lb = api.create("services", svc("lb", type="LoadBalancer"), "default")["spec"]
    assert 30000 <= lb["ports"][0]["nodePort"] <= 32767
    got = fail(api, "services", svc("np", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert "spec.ports[0].nodePort" in got
    got = fail(api, "services", svc("np2", type="NodePort",
                                    ports=[{"port": 80, "nodePort": ports[0]}]))
    assert "already allocated" in got["spec.ports[0].nodePort"]


# ---- secrets, configmaps ------------------------------------------------------------

def test_secret_string_data_and_type(api):
    s = api.create("secrets", {"metadata": {"name": "s"}, "stringData": {"user": "admin"},
                               "data": {"pw": base64.b64encode(b"x").decode()}}, "default")
    assert s["type"] == "Opaque" and "stringData" not in s
    assert base64.b64decode(s["data"]["user"]) == b"admin"
    assert set(s["data"]) == {"user", "pw"}
    got = fail(api, "secrets", {"metadata": {"name": "t"}, "data": {"k": "not base64!"}})
    assert "data[k]" in got
    got = fail(api, "secrets", {"metadata": {"name": "u"}, "type": "kubernetes.io/tls", "data": {}})
    assert "data[tls.crt]" in got
    api.create("secrets", {"metadata": {"name": "v"}, "type": "kubernetes.io/tls", "data": {
        "tls.crt": "", "tls.key": ""}}, "default")
    names = [i["metadata"]["name"] for i in
             api.list("secrets", "default", field_selector="type=kubernetes.io/tls")["items"]]
    assert names == ["v"]


def test_configmap_keys(api):
    got = fail(api, "configmaps", {"metadata": {"name": "c"}, "data": {"bad key": "x"}})
    assert "data" in got


# ---- namespaces, nodes, events ------------------------------------------------------

def test_namespace_defaults(api):
    ns = api.create("namespaces", {"metadata": {"name": "team"}})
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["status"]["phase"] == "Active"
    names = [i["metadata"]["name"] for i in
             api.list("namespaces", field_selector="status.phase=Active")["items"]]
    assert "team" in names and "default" in names


def test_node_taints_and_field_selector(api):
    api.create("nodes", {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}})
    api.create("nodes", {"metadata": {"name": "n2"}})
    got = fail(api, "nodes", {"metadata": {"name": "n3"}, "spec": {"taints": [
        {"key": "k", "effect": "Sometimes"}]}}, ns=None)
    assert got["spec.taints[0].effect"].startswith('Unsupported value: "Sometimes"')
    got = fail(api, "nodes", {"metadata": {"name": "n3"}, "spec": {"taints": [{"key": "k"}]}},
               ns=None)
    assert got["spec.taints[0].effect"] == "Required value"
    sel = lambda s: [i["metadata"]["name"] for i in api.list("nodes", field_selector=s)["items"]]
    assert sel("spec.unschedulable=true") == ["n1"]
    assert sel("spec.unschedulable=false") == ["n2"]
    assert sel("spec.unschedulable!=true") == ["n2"]


def test_event_field_selectors(api):
    api.create("events", {"metadata": {"name": "e1"}, "reason": "Scheduled", "type": "Normal",
                          "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default",
                                             "uid": "u1", "apiVersion": "v1"},
                          "source": {"component": "default-scheduler"},
                          "reportingComponent": "default-scheduler"}, "default")
    api.create("events", {"metadata": {"name": "e2"}, "reason": "Killing", "type": "Warning",
                          "involvedObject": {"kind": "Node", "name": "n"},
                          "source": {"component": "kubelet"}}, "default")
    sel = lambda s: [i["metadata"]["name"] for i in
                     api.list("events", "default", field_selector=s)["items"]]
    assert sel("involvedObject.kind=Pod") == ["e1"]
    assert sel("involvedObject.name=n,type=Warning") == ["e2"]
    assert sel("source=kubelet") == ["e2"]
    assert sel("reportingComponent=default-scheduler") == ["e1"]
    assert sel("reason=Scheduled,involvedObject.uid=u1,involvedObject.apiVersion=v1") == ["e1"]
    assert sel("involvedObject.fieldPath=,involvedObject.resourceVersion=") == ["e1", "e2"]
    assert sel("involvedObject.namespace=default") == ["e1"]


def test_every_kind_has_a_strategy():
    import kbox.api.kinds  # noqa: F401
    from kbox.api.strategy import _STRATEGIES
    for plural in ("pods", "deployments", "replicasets", "daemonsets", "jobs", "services",
                   "endpoints", "namespaces", "nodes", "events", "serviceaccounts", "secrets",
                   "configmaps", "leases", "controllerrevisions"):
        assert plural in _STRATEGIES and lookup(plural) is not None, plural


def test_lease_and_controller_revision(api):
    got = fail(api, "leases", {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}})
    assert "spec.leaseDurationSeconds" in got
    api.create("controllerrevisions", {"metadata": {"name": "r"}, "revision": 1,
                                       "data": {"spec": {}}}, "default")
    got = fail(api, "controllerrevisions", {"metadata": {"name": "r2"}, "revision": -1})
    assert got["revision"] == "Invalid value: -1: must be greater than or equal to 0"


# ---- quantities ---------------------------------------------------------------------

@pytest.mark.parametrize("text,cpu", [("250m", 250), ("1", 1000), ("0.5", 500), ("1.5", 1500),
                                      ("2k", 2000000), ("1e-3", 1), ("100u", 1), (2, 2000)])
def test_parse_cpu(text, cpu):
    from kbox.api.quantity import parse_cpu
    assert parse_cpu(text) == cpu


@pytest.mark.parametrize("text,nbytes", [
    ("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("1k", 1000), ("1Ki", 1024),
    ("1.5Gi", 3 * 2**29), ("1e3", 1000), ("1E", 10**18), ("1Ei", 2**60), ("2Ti", 2 * 2**40),
    ("1T", 10**12), ("1P", 10**15), ("1Pi", 2**50), ("1M", 10**6), ("500m", 1), ("0", 0)])
def test_parse_memory(text, nbytes):
    from kbox.api.quantity import parse_memory
    assert parse_memory(text) == nbytes


@pytest.mark.parametrize("bad", ["", "1 core", "abc", "1KiB", "1.2.3", "Mi", "1e", "--1", "1ki"])
def test_bad_quantities(bad):
    from kbox.api.quantity import parse_cpu, parse_memory
    with pytest.raises(ValueError, match="quantities must match"):
        parse_memory(bad)
    with pytest.raises(ValueError):
        parse_cpu(bad)


def test_format_quantities():
    from kbox.api.quantity import format_cpu, format_memory
    assert format_cpu(2000) == "2" and format_cpu(250) == "250m"
    assert format_memory(128 * 2**20) == "128Mi" and format_memory(1000) == "1000"
    assert format_memory(2**30) == "1Gi"


# ---- admission ----------------------------------------------------------------------

@pytest.fixture
def admitted(api, fake_clock):
    from kbox.api.admission import default_admission
    from kbox.config import ClusterConfig
    cfg = ClusterConfig()
    api.admission.extend(default_admission(cfg, fake_clock))
    return api, cfg


def test_default_toleration_seconds_and_service_account(admitted):
    api, cfg = admitted
    p = api.create("pods", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "x"}],
        "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 5}]}}, "default")
    tol = p["spec"]["tolerations"]
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": cfg.timings.default_toleration_seconds} in tol
    assert [t for t in tol if t["key"] == "node.kubernetes.io/unreachable"] == [tol[0]]
    assert len(tol) == 2
    assert p["spec"]["serviceAccountName"] == "default"
    q = api.create("pods", {"metadata": {"name": "q"}, "spec": {
        "serviceAccountName": "builder", "containers": [{"name": "c", "image": "x"}]}}, "default")
    assert q["spec"]["serviceAccountName"] == "builder"
    assert len(q["spec"]["tolerations"]) == 2


def test_protected_namespaces(admitted):
    api, _ = admitted
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiError) as ei:
            api.delete("namespaces", name)
        assert ei.value.code == 403
        assert ei.value.message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    api.create("namespaces", {"metadata": {"name": "team"}})
    api.delete("namespaces", "team")
