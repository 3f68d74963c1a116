"""Endpoints controller: addresses of ready / not-ready pods, ports, cleanup."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.api.errors import ApiError
from kbox.controllers.endpoints import EndpointsController


@pytest.fixture
def env():
    e = Env()
    e.epc = e.add(EndpointsController)
    e.start()
    yield e
    e.close()


def service(name, selector, ports):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"selector": selector, "ports": ports, "clusterIP": "10.96.0.10"}}


def test_ready_and_not_ready_addresses(env):
    env.make_pod("web-b", labels={"app": "web"}, node="n1", ip="10.244.0.12", ready=True)
    env.make_pod("web-a", labels={"app": "web"}, node="n1", ip="10.244.0.3", ready=True)
    env.make_pod("web-c", labels={"app": "web"}, node="n2", ip="10.244.1.4", ready=False)
    env.make_pod("web-noip", labels={"app": "web"})
    env.make_pod("other", labels={"app": "db"}, node="n1", ip="10.244.0.9", ready=True)
    env.client.create("services", service("web", {"app": "web"},
                                          [{"name": "http", "port": 80, "targetPort": 8080}]), NS)
    env.settle()
    ep = env.client.get("endpoints", "web", NS)
    assert ep["metadata"]["labels"] == {"app": "web"}
    [sub] = ep["subsets"]
    assert [a["ip"] for a in sub["addresses"]] == ["10.244.0.3", "10.244.0.12"]
    a = sub["addresses"][0]
    pod = env.client.get("pods", "web-a", NS)
    assert a == {"ip": "10.244.0.3", "nodeName": "n1",
                 "targetRef": {"kind": "Pod", "namespace": NS, "name": "web-a",
                               "uid": pod["metadata"]["uid"]}}
    assert [a["ip"] for a in sub["notReadyAddresses"]] == ["10.244.1.4"]
    assert sub["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    rv = ep["metadata"]["resourceVersion"]
    # nothing changed: nothing written
    env.client.patch("pods", "other", {"metadata": {"annotations": {"x": "y"}}}, "merge", NS)
    env.client.patch("services", "web", {"metadata": {"annotations": {"x": "y"}}}, "merge", NS)
    env.settle()
    assert env.client.get("endpoints", "web", NS)["metadata"]["resourceVersion"] == rv
    # c becomes ready; a is deleted (terminating pods leave at once)
    env.client.patch("pods", "web-c", {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}, "merge", NS, subresource="status")
    env.client.delete("pods", "web-a", NS)
    env.settle()
    [sub] = env.client.get("endpoints", "web", NS)["subsets"]
    assert [a["ip"] for a in sub["addresses"]] == ["10.244.0.12", "10.244.1.4"]
    assert "notReadyAddresses" not in sub
    # the service goes: so do its endpoints
    env.client.delete("services", "web", NS)
    env.settle()
    with pytest.raises(ApiError) as ei:
        env.client.get("endpoints", "web", NS)
    assert ei.value.code == 404


def test_named_target_port_resolves_per_pod(env):
    env.make_pod("a", labels={"app": "api"}, node="n1", ip="10.0.0.1", ready=True,
                 ports=[{"name": "web", "containerPort": 8080}])
    env.make_pod("b", labels={"app": "api"}, node="n1", ip="10.0.0.2", ready=True,
                 ports=[{"name": "web", "containerPort": 9090}])
    env.make_pod("c", labels={"app": "api"}, node="n1", ip="10.0.0.3", ready=True)
    env.client.create("services", service("api", {"app": "api"},
                                          [{"port": 80, "targetPort": "web"}]), NS)
    env.settle()
    subsets = env.client.get("endpoints", "api", NS)["subsets"]
    got = {s["ports"][0]["port"]: [a["ip"] for a in s["addresses"]] for s in subsets}
    assert got == {8080: ["10.0.0.1"], 9090: ["10.0.0.2"]}


def test_service_without_selector_is_left_alone(env):
    svc = service("ext", None, [{"port": 80}])
    svc["spec"].pop("selector")
    env.client.create("services", svc, NS)
    env.client.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                    "metadata": {"name": "ext", "namespace": NS},
                                    "subsets": [{"addresses": [{"ip": "1.2.3.4"}],
                                                 "ports": [{"port": 80}]}]}, NS)
    env.settle()
    assert env.client.get("endpoints", "ext", NS)["subsets"][0]["addresses"] == [{"ip": "1.2.3.4"}]


def test_hostname_for_pods_whose_subdomain_names_the_service():
    from kbox.controllers.endpoints import compute_subsets
    svc = {"metadata": {"name": "workers", "namespace": NS}, "spec": {"clusterIP": "None"}}

    def pod(name, **spec):
        return {"metadata": {"name": name, "namespace": NS, "uid": name},
                "spec": {"nodeName": "n1", **spec},
                "status": {"phase": "Running", "podIP": f"10.0.0.{len(name)}",
                           "conditions": [{"type": "Ready", "status": "True"}]}}
    [sub] = compute_subsets(svc, [pod("idx-0", hostname="idx-0", subdomain="workers"),
                                  pod("other1", hostname="other1", subdomain="elsewhere")])
    by_name = {a["targetRef"]["name"]: a for a in sub["addresses"]}
    assert by_name["idx-0"]["hostname"] == "idx-0"
    assert "hostname" not in by_name["other1"]
    assert "ports" not in sub
