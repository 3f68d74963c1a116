"""Node lifecycle controller: health, taints, taint eviction, pod CIDRs, pod GC."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.api.errors import ApiError
from kbox.controllers.nodelifecycle import NodeLifecycleController, eviction_time

UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture
def env():
    e = Env()
    e.nlc = e.add(NodeLifecycleController, monitor_period=1.0, grace_period=10.0)
    yield e
    e.close()


def ready_cond(node):
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_dead_node_goes_unknown_tainted_evicted_and_recovers(env):
    env.make_node("n1")
    env.start()
    tol = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
           {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 5}]
    env.make_pod("web-x", node="n1", ready=True, ip="10.244.0.5", tolerations=tol)
    env.make_pod("bare", node="n1", ready=True, ip="10.244.0.6")
    env.settle()
    # a healthy kubelet renews its lease: nothing happens
    for _ in range(12):
        env.renew("n1")
        env.advance(1)
    node = env.client.get("nodes", "n1")
    assert ready_cond(node)["status"] == "True"
    assert not node["spec"].get("taints")
    # the kubelet goes quiet
    env.advance(10, step=1)
    node = env.client.get("nodes", "n1")
    assert ready_cond(node)["status"] == "True"   # exactly at the grace period: not yet
    env.advance(1.5, step=0.5)
    node = env.client.get("nodes", "n1")
    for c in node["status"]["conditions"]:
        assert c["status"] == "Unknown"
        assert c["reason"] == "NodeStatusUnknown"
        assert c["message"] == "Kubelet stopped posting node status."
    taints = {(t["key"], t["effect"]): t for t in node["spec"]["taints"]}
    assert (UNREACHABLE, "NoExecute") in taints and (UNREACHABLE, "NoSchedule") in taints
    assert taints[(UNREACHABLE, "NoExecute")]["timeAdded"]
    assert "timeAdded" not in taints[(UNREACHABLE, "NoSchedule")]
    ev = [e for e in env.events("NodeNotReady") if e["involvedObject"]["kind"] == "Node"]
    assert len(ev) == 1 and ev[0]["message"] == "Node n1 status is now: NodeNotReady"
    assert ev[0]["source"]["component"] == "node-controller"
    # pods on it are not ready any more; the intolerant one is deleted at once
    web = env.client.get("pods", "web-x", NS)
    assert next(c for c in web["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"
    assert not web["metadata"].get("deletionTimestamp")
    assert env.client.get("pods", "bare", NS)["metadata"].get("deletionTimestamp")
    # the tolerating one goes tolerationSeconds after the taint was added
    env.advance(4, step=1)
    assert not env.client.get("pods", "web-x", NS)["metadata"].get("deletionTimestamp")
    env.advance(1.5, step=0.5)
    assert env.client.get("pods", "web-x", NS)["metadata"].get("deletionTimestamp")
    pod_ev = [e for e in env.events("NodeNotReady") if e["involvedObject"]["kind"] == "Pod"]
    assert {e["involvedObject"]["name"] for e in pod_ev} == {"web-x", "bare"}
    assert all(e["type"] == "Warning" and e["message"] == "Node is not ready" for e in pod_ev)
    msgs = {e["message"] for e in env.events("TaintManagerEviction")}
    assert msgs == {"Marking for deletion Pod default/web-x", "Marking for deletion Pod default/bare"}
    # the kubelet comes back: taints go
    env.heartbeat("n1")
    env.renew("n1")
    env.advance(1)
    node = env.client.get("nodes", "n1")
    assert ready_cond(node)["status"] == "True"
    assert not node["spec"].get("taints")
    assert env.events("NodeReady")


def test_not_ready_node_gets_not_ready_taints(env):
    env.make_node("n1")
    env.start()
    env.heartbeat("n1", ready=False)
    env.settle()
    keys = {(t["key"], t["effect"]) for t in env.client.get("nodes", "n1")["spec"]["taints"]}
    assert keys == {("node.kubernetes.io/not-ready", "NoExecute"),
                    ("node.kubernetes.io/not-ready", "NoSchedule")}


def test_kubelet_reporting_not_ready_marks_pods_not_ready(env):
    env.make_node("n1")
    env.start()
    tol = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
    env.make_pod("p", node="n1", ready=True, ip="10.244.0.7", tolerations=tol)
    env.settle()
    env.heartbeat("n1", ready=False)
    env.settle()
    pod = env.client.get("pods", "p", NS)
    assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"
    assert not pod["metadata"].get("deletionTimestamp")   # tolerated forever
    node_ev = [e for e in env.events("NodeNotReady") if e["involvedObject"]["kind"] == "Node"]
    assert [e["message"] for e in node_ev] == ["Node n1 status is now: NodeNotReady"]
    pod_ev = [e for e in env.events("NodeNotReady") if e["involvedObject"]["kind"] == "Pod"]
    assert [e["message"] for e in pod_ev] == ["Node is not ready"]


def test_unschedulable_taint_and_foreign_taints_kept(env):
    env.make_node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    env.start()
    env.client.patch("nodes", "n1", {"spec": {"unschedulable": True}})
    env.settle()
    taints = env.client.get("nodes", "n1")["spec"]["taints"]
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("dedicated", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")}
    env.client.patch("nodes", "n1", {"spec": {"unschedulable": None}})
    env.settle()
    assert [t["key"] for t in env.client.get("nodes", "n1")["spec"]["taints"]] == ["dedicated"]


def test_pod_cidrs_unique(env):
    for n in ("a", "b", "c"):
        env.make_node(n)
    env.start()
    cidrs = []
    for n in ("a", "b", "c"):
        spec = env.client.get("nodes", n)["spec"]
        assert spec["podCIDRs"] == [spec["podCIDR"]]
        cidrs.append(spec["podCIDR"])
    assert len(set(cidrs)) == 3
    assert all(c.startswith("10.244.") and c.endswith(".0/24") for c in cidrs)
    env.make_node("d")
    env.settle()
    assert env.client.get("nodes", "d")["spec"]["podCIDR"] not in cidrs


def test_deleted_node_pods_are_deleted(env):
    env.make_node("n1")
    env.make_node("n2")
    env.start()
    env.make_pod("p1", node="n1", ip="10.0.0.1")
    env.make_pod("p2", node="n2", ip="10.0.0.2")
    env.settle()
    env.client.delete("nodes", "n1")
    env.settle()
    with pytest.raises(ApiError):
        env.client.get("pods", "p1", NS)
    env.client.get("pods", "p2", NS)


def test_eviction_time_rules():
    taint = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2023-11-14T22:13:20Z"}
    pod = {"spec": {}}
    assert eviction_time(pod, [taint]) == float("-inf")
    pod = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert eviction_time(pod, [taint]) is None
    pod = {"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 30}]}}
    assert eviction_time(pod, [taint]) == 1_700_000_000 + 30
    assert eviction_time(pod, [{"key": "x", "effect": "NoSchedule"}]) is None
