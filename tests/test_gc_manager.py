"""ControllerManager wiring: every controller built on one informer factory."""

from __future__ import annotations

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock
from kbox.config import ClusterConfig
from kbox.controllers.informer import InformerFactory
from kbox.controllers.manager import ControllerManager
from kbox.store.memory import MemoryStore


def test_manager_builds_every_controller():
    clock = FakeClock()
    api = ApiServer(MemoryStore(clock=clock), clock)
    api.bootstrap()
    client = InProcessClient(api)
    informers = InformerFactory(client)
    cm = ControllerManager(client, informers, clock, ClusterConfig())
    names = {c.name for c in cm.controllers}
    assert {"replicaset-controller", "deployment-controller", "node-controller",
            "endpoint-controller", "serviceaccount-controller", "token-controller",
            "job-controller", "daemonset-controller", "namespace-controller",
            "garbage-collector-controller"} <= names
    nlc = cm.get("node-controller")
    assert nlc.grace_period == ClusterConfig().timings.node_monitor_grace_period
    informers.start()
    assert informers.wait_for_sync(10)
    cm.start()
    cm.stop()
    informers.stop()
    api.stop()


def test_manager_threads_converge_on_real_clock():
    """Every controller on worker threads together: a namespace's life, end to end."""
    import time

    from kbox.clock import RealClock

    clock = RealClock()
    api = ApiServer(MemoryStore(clock=clock), clock)
    api.bootstrap()
    client = InProcessClient(api)
    informers = InformerFactory(client)
    cm = ControllerManager(client, informers, clock, ClusterConfig())
    informers.start()
    assert informers.wait_for_sync(10)
    cm.start()

    def until(pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return True
            except Exception:
                pass
            time.sleep(0.02)
        raise AssertionError("condition not reached")

    try:
        client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "demo"},
                                     "spec": {"finalizers": ["kubernetes"]}})
        until(lambda: client.get("serviceaccounts", "default", "demo")["secrets"])
        client.create("deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "metadata": {"name": "web"},
                                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                               "template": {"metadata": {"labels": {"app": "web"}},
                                                            "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
                      "demo")
        until(lambda: len(client.list("pods", "demo")["items"]) == 2)
        client.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}, "demo")
        until(lambda: client.get("endpoints", "web", "demo"))
        client.delete("namespaces", "demo")

        def ns_gone():
            try:
                client.get("namespaces", "demo")
                return False
            except Exception:
                return True
        until(ns_gone)
        assert client.list("pods", "demo")["items"] == []
    finally:
        cm.stop()
        informers.stop()
        api.stop()
