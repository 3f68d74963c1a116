"""ReplicaSet controller behaviour on a fake clock, driven synchronously."""

from __future__ import annotations

import pytest

try:
    from test_replicaset_env import NS, Env, replicaset
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_replicaset_env import NS, Env, replicaset

from kbox.api.errors import ApiError
from kbox.controllers import podutil


@pytest.fixture
def env():
    e = Env(deployments=False)
    yield e
    e.close()


def rs_status(env, name="web"):
    return env.client.get("replicasets", name, NS).get("status") or {}


def test_creates_pods_with_owner_and_template(env):
    rs = env.client.create("replicasets", replicaset("web", 3), NS)
    env.settle()
    pods = env.pods()
    assert len(pods) == 3
    for p in pods:
        m = p["metadata"]
        assert m["name"].startswith("web-") and len(m["name"]) == len("web-") + 5
        assert m["labels"] == {"app": "web"}
        ref = m["ownerReferences"][0]
        assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                       "uid": rs["metadata"]["uid"], "controller": True,
                       "blockOwnerDeletion": True}
        assert p["spec"]["containers"][0]["image"] == "nginx:1.25"
    st = rs_status(env)
    assert st["replicas"] == 3 and st["fullyLabeledReplicas"] == 3
    assert st["readyReplicas"] == 0 and st["availableReplicas"] == 0
    assert st["observedGeneration"] == 1
    created = env.events("SuccessfulCreate")
    assert len(created) == 3
    assert {e["message"] for e in created} == {f"Created pod: {p['metadata']['name']}" for p in pods}
    assert created[0]["source"]["component"] == "replicaset-controller"


def test_ready_and_available_with_min_ready_seconds(env):
    env.client.create("replicasets", replicaset("web", 2, minReadySeconds=10), NS)
    env.settle()
    env.ready_all()
    env.settle()
    st = rs_status(env)
    assert st["readyReplicas"] == 2 and st["availableReplicas"] == 0
    env.advance(11)   # the controller asked to look again after minReadySeconds
    assert rs_status(env)["availableReplicas"] == 2


def test_scale_down_deletes_least_valuable_first(env):
    env.client.create("replicasets", replicaset("web", 4), NS)
    env.settle()
    pods = sorted(env.pods(), key=lambda p: p["metadata"]["name"])
    env.make_ready(pods[0])
    env.make_ready(pods[1])
    env.make_running(pods[2])      # running, not ready
    # pods[3] stays Pending and unassigned
    env.settle()
    env.client.scale("replicasets", "web", 2, NS)
    env.settle()
    env.kubelet()
    env.settle()
    left = {p["metadata"]["name"] for p in env.pods()}
    assert left == {pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]}
    deleted = {e["message"] for e in env.events("SuccessfulDelete")}
    assert deleted == {f"Deleted pod: {pods[2]['metadata']['name']}",
                       f"Deleted pod: {pods[3]['metadata']['name']}"}
    assert rs_status(env)["replicas"] == 2


def test_self_heals_after_pod_deletion(env):
    env.client.create("replicasets", replicaset("web", 3), NS)
    env.settle()
    victim = env.pods()[0]["metadata"]["name"]
    env.client.delete("pods", victim, NS)
    env.settle()
    names = {p["metadata"]["name"] for p in env.pods()}
    assert len(names) == 3 and victim not in names


def test_finished_and_terminating_pods_are_not_counted(env):
    env.client.create("replicasets", replicaset("web", 2), NS)
    env.settle()
    p = env.pods()[0]
    env.make_ready(p)
    env.client.patch("pods", p["metadata"]["name"], {"status": {"phase": "Failed"}}, "merge", NS,
                     subresource="status")
    env.settle()
    assert len(env.pods()) == 2
    # graceful deletion of a bound pod: it stays until its kubelet finishes, but is not counted
    q = env.pods()[0]
    if not q["spec"].get("nodeName"):
        env.make_ready(q)
    env.client.delete("pods", q["metadata"]["name"], NS)
    env.settle()
    assert len(env.pods()) == 2
    assert rs_status(env)["replicas"] == 2


def test_adopts_orphan_and_releases_relabelled(env):
    orphan = env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": {"name": "stray", "labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS)
    rs = env.client.create("replicasets", replicaset("web", 2), NS)
    env.settle()
    adopted = env.client.get("pods", "stray", NS)
    assert podutil.is_controlled_by(adopted, rs)
    assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
    assert len(env.pods()) == 2          # the orphan counted: only one new pod
    # relabel a pod: it is released and replaced
    env.client.patch("pods", "stray", {"metadata": {"labels": {"app": "other"}}}, "merge", NS)
    env.settle()
    released = env.client.get("pods", "stray", NS)
    assert not released["metadata"].get("ownerReferences")
    assert len(env.pods("app=web")) == 2


def test_never_adopts_terminating_pods(env):
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "dying", "labels": {"app": "web"},
                                            "finalizers": ["test/hold"]},
                               "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS)
    env.client.delete("pods", "dying", NS)
    env.client.create("replicasets", replicaset("web", 1), NS)
    env.settle()
    assert not env.client.get("pods", "dying", NS)["metadata"].get("ownerReferences")
    assert len(env.pods("app=web")) == 1


def test_expectations_prevent_double_create(env):
    env.client.create("replicasets", replicaset("web", 3), NS)
    env.pump()
    assert env.rsc.process_next(timeout=0)
    assert len(env.pods()) == 3
    # the cache has not seen the pods: a second sync must not create more
    env.rsc.enqueue(f"{NS}/web")
    assert env.rsc.process_next(timeout=0)
    assert len(env.pods()) == 3
    assert env.rsc.expectations.pending(f"{NS}/web") == (3, 0)
    env.settle()
    assert len(env.pods()) == 3
    assert env.rsc.expectations.satisfied(f"{NS}/web")


def test_expectations_expire_after_five_minutes(env):
    env.client.create("replicasets", replicaset("web", 2), NS)
    env.pump()
    env.rsc.process_next(timeout=0)
    # lose the watch events: delete the pods behind the informer's back, never pump
    for p in env.pods():
        env.client.delete("pods", p["metadata"]["name"], NS)
    env.rsc.enqueue(f"{NS}/web")
    env.rsc.process_next(timeout=0)
    assert len(env.pods()) == 0          # still waiting for its own creations
    env.clock.advance(301)
    env.settle()
    assert len(env.pods()) == 2


def test_slow_start_and_failed_create_event(env):
    calls = {"n": 0}

    def quota(op, info, obj, old):
        if op == "CREATE" and info.plural == "pods":
            calls["n"] += 1
            if calls["n"] > 3:
                raise ApiError(403, "Forbidden", 'pods "web-x" is forbidden: exceeded quota: q, '
                               'requested: pods=1, used: pods=3, limited: pods=3')
    env.api.admission.append(quota)
    env.client.create("replicasets", replicaset("web", 10), NS)
    env.pump()
    env.rsc.process_next(timeout=0)
    # batches of 1 and 2 succeed, the batch of 4 fails on its first pod: 3 pods + 4 attempts
    assert len(env.pods()) == 3
    assert calls["n"] == 7
    failed = env.events("FailedCreate")
    assert failed and failed[0]["type"] == "Warning"
    assert failed[0]["message"].startswith('Error creating: pods "web-x" is forbidden: exceeded quota')
    cond = [c for c in rs_status(env)["conditions"] if c["type"] == "ReplicaFailure"][0]
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert "exceeded quota" in cond["message"]
    # the quota goes away: the condition clears once creations succeed
    env.api.admission.remove(quota)
    env.settle()
    env.advance(1)
    assert len(env.pods()) == 10
    assert not [c for c in rs_status(env).get("conditions") or [] if c["type"] == "ReplicaFailure"]


def test_burst_limits_creations_per_sync():
    env = Env(deployments=False, burst=4)
    try:
        env.client.create("replicasets", replicaset("web", 10), NS)
        env.pump()
        env.rsc.process_next(timeout=0)
        assert len(env.pods()) == 4
        env.settle()
        assert len(env.pods()) == 10
    finally:
        env.close()


def test_deleted_replicaset_stops_managing(env):
    env.client.create("replicasets", replicaset("web", 2), NS)
    env.settle()
    env.client.delete("replicasets", "web", NS)
    env.settle()
    assert env.rsc.expectations.pending(f"{NS}/web") is None


def test_fully_labeled_counts_template_labels(env):
    rs = replicaset("web", 2)
    rs["spec"]["template"]["metadata"]["labels"]["tier"] = "fe"
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "stray", "labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS)
    env.client.create("replicasets", rs, NS)
    env.settle()
    st = rs_status(env)
    assert (st["replicas"], st["fullyLabeledReplicas"]) == (2, 1)
