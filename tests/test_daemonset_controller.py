"""DaemonSet controller: a pod per eligible node, pinned by affinity; rolling update."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.clock import iso_time
from kbox.controllers.daemonset import DaemonSetController, pinned_node


@pytest.fixture
def env():
    e = Env()
    e.dsc = e.add(DaemonSetController)
    yield e
    e.close()


def daemonset(name="agent", image="agent:1", **tspec):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}], **tspec}}}}


def live(env):
    return sorted((p for p in env.pods() if not p["metadata"].get("deletionTimestamp")),
                  key=lambda p: pinned_node(p))


def schedule_and_ready(env):
    """What the scheduler and kubelets would do."""
    for p in live(env):
        name = p["metadata"]["name"]
        if not p["spec"].get("nodeName"):
            env.client.bind(name, NS, pinned_node(p))
        if not any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (p.get("status") or {}).get("conditions") or []):
            env.client.patch("pods", name, {"status": {"phase": "Running", "podIP": "10.0.0.1",
                                                       "conditions": [{"type": "Ready", "status": "True",
                                                                       "lastTransitionTime": iso_time(env.clock.now())}]}},
                             "merge", NS, subresource="status")
    env.settle()


def status(env):
    return env.client.get("daemonsets", "agent", NS)["status"]


def test_one_pod_per_node_skipping_untolerated_taints(env):
    env.make_node("n1")
    env.make_node("n2")
    env.make_node("n3", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    env.start()
    env.client.create("daemonsets", daemonset(), NS)
    env.settle()
    pods = live(env)
    assert [pinned_node(p) for p in pods] == ["n1", "n2"]
    p = pods[0]
    assert p["metadata"]["labels"]["controller-revision-hash"]
    assert p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    tol = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in tol
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tol
    assert not any("tolerationSeconds" in t for t in p["spec"]["tolerations"])
    assert not p["spec"].get("nodeName")   # the scheduler places it
    st = status(env)
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"],
            st["numberUnavailable"], st["numberMisscheduled"]) == (2, 2, 0, 2, 0)
    schedule_and_ready(env)
    st = status(env)
    assert (st["numberReady"], st["numberAvailable"], st["updatedNumberScheduled"],
            st["numberUnavailable"]) == (2, 2, 2, 0)
    assert len(env.events("SuccessfulCreate")) == 2
    assert env.client.list("controllerrevisions", NS)["items"]


def test_new_node_gets_a_pod_and_tolerated_unreachable_keeps_it(env):
    env.make_node("n1")
    env.start()
    env.client.create("daemonsets", daemonset(), NS)
    env.settle()
    schedule_and_ready(env)
    env.make_node("n2")
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n1", "n2"]
    env.client.patch("nodes", "n1", {"spec": {"taints": [
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": iso_time(env.clock.now())}]}})
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n1", "n2"]
    # a NoExecute taint it does not tolerate evicts it
    env.client.patch("nodes", "n1", {"spec": {"taints": [{"key": "gpu", "effect": "NoExecute"}]}})
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n2"]


def test_node_selector(env):
    env.make_node("n1", labels={"disk": "ssd"})
    env.make_node("n2")
    env.start()
    env.client.create("daemonsets", daemonset(nodeSelector={"disk": "ssd"}), NS)
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n1"]
    env.client.patch("nodes", "n2", {"metadata": {"labels": {"disk": "ssd"}}})
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n1", "n2"]
    env.client.patch("nodes", "n1", {"metadata": {"labels": {"disk": None}}})
    env.settle()
    assert [pinned_node(p) for p in live(env)] == ["n2"]


def test_rolling_update_respects_max_unavailable(env):
    for n in ("n1", "n2", "n3"):
        env.make_node(n)
    env.start()
    env.client.create("daemonsets", daemonset(), NS)
    env.settle()
    schedule_and_ready(env)
    old_hash = live(env)[0]["metadata"]["labels"]["controller-revision-hash"]
    env.client.patch("daemonsets", "agent", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "agent:2"}]}}}}, "merge", NS)
    env.settle()
    pods = live(env)
    images = sorted(p["spec"]["containers"][0]["image"] for p in pods)
    assert images == ["agent:1", "agent:1", "agent:2"]   # one node at a time
    for _ in range(3):
        schedule_and_ready(env)
    pods = live(env)
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["agent:2"] * 3
    assert all(p["metadata"]["labels"]["controller-revision-hash"] != old_hash for p in pods)
    st = status(env)
    assert st["updatedNumberScheduled"] == 3 and st["numberAvailable"] == 3
    assert len(env.client.list("controllerrevisions", NS)["items"]) == 2
