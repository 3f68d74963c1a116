"""Namespace controller: a deleted namespace is emptied, then finalized away."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import Env

from kbox.api.errors import ApiError
from kbox.controllers.namespace import NamespaceController


@pytest.fixture
def env():
    e = Env()
    e.add(NamespaceController)
    e.start()
    yield e
    e.close()


def test_namespace_deletion_empties_and_removes_it(env):
    env.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "team"},
                                     "spec": {"finalizers": ["kubernetes"]}})
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg"}, "data": {"a": "b"}}, "team")
    env.client.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": "s"}, "data": {}}, "team")
    env.make_pod("loose", ns="team")
    env.make_pod("running", ns="team", node="n1", ip="10.0.0.1", ready=True)
    env.settle()
    env.client.delete("namespaces", "team")
    env.settle()
    ns = env.client.get("namespaces", "team")
    assert ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    cond = next(c for c in ns["status"]["conditions"] if c["type"] == "NamespaceContentRemaining")
    assert cond["status"] == "True" and "pods has 1 resource instances" in cond["message"]
    assert env.client.list("configmaps", "team")["items"] == []
    assert env.client.list("secrets", "team")["items"] == []
    [pod] = env.client.list("pods", "team")["items"]
    assert pod["metadata"]["name"] == "running" and pod["metadata"]["deletionTimestamp"]
    # the kubelet finishes the pod: the controller looks again at once (no waiting on the clock)
    env.client.delete("pods", "running", "team", grace_period_seconds=0)
    env.settle()
    with pytest.raises(ApiError) as ei:
        env.client.get("namespaces", "team")
    assert ei.value.code == 404


def test_finalizer_gated_content_is_looked_at_again_after_a_delay(env):
    env.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "held"}, "spec": {"finalizers": ["kubernetes"]}})
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg", "finalizers": ["example.com/hold"]}}, "held")
    env.settle()
    env.client.delete("namespaces", "held")
    env.settle()
    cm = env.client.get("configmaps", "cfg", "held")
    assert cm["metadata"]["deletionTimestamp"]
    env.client.patch("configmaps", "cfg", {"metadata": {"finalizers": None}}, "merge", "held")
    env.settle()
    env.client.get("namespaces", "held")   # nothing watches configmaps: the delay decides
    env.advance(1.5, step=0.5)
    with pytest.raises(ApiError) as ei:
        env.client.get("namespaces", "held")
    assert ei.value.code == 404


def test_live_namespace_untouched(env):
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg"}}, "default")
    env.settle()
    env.client.get("configmaps", "cfg", "default")


def test_foreground_namespace_deletion_with_the_collector(env):
    from kbox.controllers.gc import GarbageCollector
    env.add(GarbageCollector)
    env.informers.start()   # the collector's new informers
    env.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "fg"}, "spec": {"finalizers": ["kubernetes"]}})
    env.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg"}}, "fg")
    env.settle()
    out = env.client.delete("namespaces", "fg", propagation_policy="Foreground")
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"]
    env.settle()
    with pytest.raises(ApiError) as ei:
        env.client.get("namespaces", "fg")
    assert ei.value.code == 404
