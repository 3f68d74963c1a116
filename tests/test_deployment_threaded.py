"""The ReplicaSet and Deployment controllers with real informer and worker threads.

The other tests drive the controllers step by step; this one runs them as
the controller manager will (informers watching, several workers, real
clock) and checks that a rollout converges despite conflicts between them.
"""

from __future__ import annotations

import random
import time

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import RealClock, iso_time
from kbox.controllers import podutil, rollout
from kbox.controllers.deployment import DeploymentController
from kbox.controllers.informer import InformerFactory
from kbox.controllers.replicaset import ReplicaSetController
from kbox.store.memory import MemoryStore
from waiting import wait_for

NS = "default"


def test_rollout_converges_with_threads():
    clock = RealClock()
    store = MemoryStore(clock=clock)
    api = ApiServer(store, clock, rng=random.Random(3))
    api.bootstrap()
    client = InProcessClient(api)
    informers = InformerFactory(client)
    rsc = ReplicaSetController(client, informers, clock)
    dc = DeploymentController(client, informers, clock)
    assert (rsc.name, dc.name) == ("replicaset-controller", "deployment-controller")
    informers.start()
    informers.wait_for_sync()
    rsc.start()
    dc.start()
    try:
        def ready_pods():
            for p in client.list("pods", NS)["items"]:
                if podutil.is_pod_active(p) and not podutil.is_pod_ready(p):
                    try:
                        if not p["spec"].get("nodeName"):
                            client.bind(p["metadata"]["name"], NS, "node-1")
                        client.patch("pods", p["metadata"]["name"], {"status": {
                            "phase": "Running", "conditions": [
                                {"type": "Ready", "status": "True",
                                 "lastTransitionTime": iso_time(clock.now())}]}},
                            "merge", NS, subresource="status")
                    except Exception:
                        pass   # raced with a deletion
                if p["metadata"].get("deletionTimestamp"):
                    try:
                        client.delete("pods", p["metadata"]["name"], NS, grace_period_seconds=0)
                    except Exception:
                        pass

        def done():
            ready_pods()
            return rollout.status(client.get("deployments", "web", NS))[1]

        client.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}, NS)
        wait_for(done)
        client.patch("deployments", "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, "merge", NS)
        wait_for(lambda: client.get("deployments", "web", NS)["status"]["observedGeneration"] == 2)
        wait_for(done)
        pods = [p for p in client.list("pods", NS)["items"] if podutil.is_pod_active(p)]
        assert len(pods) == 5
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
        assert [r for r, _, _ in rollout.history(client, NS, "web")] == [1, 2]
    finally:
        rsc.stop()
        dc.stop()
        informers.stop()
        api.stop()
