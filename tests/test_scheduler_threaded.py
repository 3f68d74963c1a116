"""The scheduler as kbox/cluster.py runs it: informer threads, its own thread, a FakeClock.

Checks the wiring the synchronous tests bypass: the constructor with only
(client, informers, clock), events from the default recorder, cordon leaving
a pod pending, uncordon scheduling it once the back-off passes on fake time.
"""

from __future__ import annotations

import random
import time

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock, iso_time
from kbox.controllers.informer import InformerFactory
from kbox.scheduler import Scheduler
from kbox.store.memory import MemoryStore


def _wait(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_cordon_then_uncordon_with_threads():
    clock = FakeClock()
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(3))
    api.bootstrap()
    client = InProcessClient(api)
    informers = InformerFactory(client)
    sched = Scheduler(client, informers, clock, rng=random.Random(1))
    now = iso_time(clock.now())
    cap = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    client.create("nodes", {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": "kbox-worker"},
                            "spec": {"unschedulable": True},
                            "status": {"capacity": cap, "allocatable": cap, "conditions": [
                                {"type": "Ready", "status": "True", "lastHeartbeatTime": now,
                                 "lastTransitionTime": now}]}})
    informers.start()
    assert informers.wait_for_sync(5)
    sched.start()
    try:
        client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web", "namespace": "default"},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                      "default")

        def failed_events():
            return [e for e in client.list("events", "default")["items"]
                    if e["reason"] == "FailedScheduling"]
        assert _wait(lambda: failed_events())
        assert failed_events()[0]["message"] == (
            "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are "
            "available: 1 Preemption is not helpful for scheduling.")
        assert not client.get("pods", "web", "default")["spec"].get("nodeName")

        client.patch("nodes", "kbox-worker", {"spec": {"unschedulable": None}}, "merge")
        # still inside the 1 s back-off of the first failure: nothing happens on fake time ...
        time.sleep(0.2)
        assert not client.get("pods", "web", "default")["spec"].get("nodeName")
        clock.advance(1.5)     # ... until it passes
        assert _wait(lambda: client.get("pods", "web", "default")["spec"].get("nodeName")
                     == "kbox-worker")
        assert _wait(lambda: any(e["reason"] == "Scheduled"
                                 for e in client.list("events", "default")["items"]))
    finally:
        sched.stop()
        informers.stop()
        api.stop()
