"""Garbage collector: background, foreground and orphan deletion over ownerReferences."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.api.errors import ApiError
from kbox.api.objects import owner_reference
from kbox.controllers.gc import GarbageCollector


@pytest.fixture
def env():
    e = Env()
    e.add(GarbageCollector)
    e.start()
    yield e
    e.close()


def gone(env, res, name):
    try:
        env.client.get(res, name, NS)
    except ApiError as e:
        return e.code == 404
    return False


def make_chain(env):
    tmpl = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    d = env.client.create("deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "metadata": {"name": "web"},
                                          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                                   "template": tmpl}}, NS)
    rs = env.client.create("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "metadata": {"name": "web-1", "ownerReferences": [owner_reference(d)]},
                                           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                                    "template": tmpl}}, NS)
    for i in range(2):
        env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": f"web-1-{i}", "labels": {"app": "web"},
                                                "ownerReferences": [owner_reference(rs)]},
                                   "spec": tmpl["spec"]}, NS)
    env.settle()
    return d, rs


def test_background_deletes_dependents_of_a_gone_owner(env):
    make_chain(env)
    env.client.delete("deployments", "web", NS)
    env.settle()
    assert gone(env, "replicasets", "web-1")
    assert env.pods() == []


def test_dependent_with_a_live_second_owner_only_loses_the_reference(env):
    _, rs = make_chain(env)
    other = env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "keeper"}}, NS)
    env.client.patch("pods", "web-1-0", {"metadata": {"ownerReferences": [
        owner_reference(rs), owner_reference(other, controller=False)]}}, "merge", NS)
    env.settle()
    env.client.delete("replicasets", "web-1", NS)
    env.settle()
    assert gone(env, "pods", "web-1-1")
    pod = env.client.get("pods", "web-1-0", NS)
    assert [r["name"] for r in pod["metadata"]["ownerReferences"]] == ["keeper"]


def test_foreground_deletes_dependents_first(env):
    make_chain(env)
    d = env.client.delete("deployments", "web", NS, propagation_policy="Foreground")
    assert d["metadata"]["finalizers"] == ["foregroundDeletion"]
    env.settle()
    assert gone(env, "deployments", "web")
    assert gone(env, "replicasets", "web-1")
    assert env.pods() == []


def test_foreground_waits_for_terminating_dependents(env):
    make_chain(env)
    env.client.bind("web-1-0", NS, "n1")   # a kubelet must finish this one
    env.settle()
    env.client.delete("replicasets", "web-1", NS, propagation_policy="Foreground")
    env.settle()
    rs = env.client.get("replicasets", "web-1", NS)
    assert rs["metadata"]["deletionTimestamp"] and rs["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert env.client.get("pods", "web-1-0", NS)["metadata"]["deletionTimestamp"]
    env.client.delete("pods", "web-1-0", NS, grace_period_seconds=0)
    env.settle()
    assert gone(env, "replicasets", "web-1")


def test_orphan_strips_owner_references(env):
    make_chain(env)
    env.client.delete("replicasets", "web-1", NS, propagation_policy="Orphan")
    env.settle()
    assert gone(env, "replicasets", "web-1")
    pods = env.pods()
    assert len(pods) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in pods)
    env.client.get("deployments", "web", NS)


def test_non_workload_dependents_are_collected(env):
    d, _ = make_chain(env)
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "web-conf", "ownerReferences": [owner_reference(d)]},
                                     "data": {"a": "1"}}, NS)
    node = env.client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n9"}})
    env.client.create("leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": "n9", "namespace": "kube-node-lease",
                                              "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                                   "name": "n9", "uid": node["metadata"]["uid"]}]},
                                 "spec": {"holderIdentity": "n9"}}, "kube-node-lease")
    env.settle()
    env.client.get("configmaps", "web-conf", NS)
    env.client.delete("deployments", "web", NS)
    env.client.delete("nodes", "n9")
    env.settle()
    assert gone(env, "configmaps", "web-conf")
    with pytest.raises(ApiError) as e:
        env.client.get("leases", "n9", "kube-node-lease")
    assert e.value.code == 404


@pytest.mark.parametrize("policy", ["Foreground", "Orphan"])
def test_any_kind_deleted_with_a_propagation_finalizer_goes(env, policy):
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "plain"}}, NS)
    out = env.client.delete("configmaps", "plain", NS, propagation_policy=policy)
    assert out["metadata"]["finalizers"]
    env.settle()
    assert gone(env, "configmaps", "plain")
