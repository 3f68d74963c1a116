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
            "endpoint-controller", "serviceaccount-controller", "token-controller"} <= names
    nlc = cm.get("node-controller")
    assert nlc.grace_period == ClusterConfig().timings.node_monitor_grace_period
    informers.start()
    assert informers.wait_for_sync(10)
    cm.start()
    cm.stop()
    informers.stop()
    api.stop()
