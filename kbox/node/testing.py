"""A deterministic harness for node-agent tests: real informer thread, fake time.

`NodeEnv` builds a memory store, an API server and a client on a FakeClock,
one shared pod informer and a NodePool whose workers are NOT started: the
test drives it. `settle()` waits until the informer shows every write, then
runs the pool's queue until nothing is ready; `advance_to(t)` moves fake
time from timer to timer (the pool's own wake-ups and the heartbeat period)
so every intermediate step happens at its exact clock time, as it would
with the threads running. Nothing sleeps in fake time.
"""

from __future__ import annotations

import random
import time
from typing import Any

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock
from kbox.config import ClusterConfig, NodeSpec
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.node.pool import NodePool
from kbox.store.memory import MemoryStore


class NodeEnv:
    def __init__(self, config: ClusterConfig | None = None, *, nodes: int = 1, ipam: bool = True,
                 start: float = 1_700_000_000.0) -> None:
        self.config = config or ClusterConfig()
        self.clock = FakeClock(start)
        self.t0 = self.clock.now()
        self.store = MemoryStore(clock=self.clock)
        self.api = ApiServer(self.store, self.clock, rng=random.Random(3))
        self.api.bootstrap()
        self.client = InProcessClient(self.api)
        self.informers = InformerFactory(self.client)
        self.recorder = EventRecorder(self.client, "kubelet", clock=self.clock, synchronous=True)
        self.pool = NodePool(self.client, self.informers, self.clock, self.config,
                             runtime="sim", api=self.api, recorder=self.recorder)
        self.informers.start()
        assert self.informers.wait_for_sync(10)
        for i in range(nodes):
            self.add_node(f"node{i + 1}", ipam=ipam)
        self.settle()

    def add_node(self, name: str, *, ipam: bool = True, **spec: Any) -> None:
        """Add a node; with ipam, give it a podCIDR as the node IPAM controller would."""
        agent = self.pool.add_node(NodeSpec(name=name, **spec))
        if ipam:
            self.client.patch("nodes", name, {"spec": {"podCIDR": f"10.244.{agent.index}.0/24",
                                                       "podCIDRs": [f"10.244.{agent.index}.0/24"]}})

    def close(self) -> None:
        self.pool.queue.shutdown()
        self.informers.stop()
        self.api.stop()

    # ---- time ------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return round(self.clock.now() - self.t0, 6)

    def caught_up(self) -> bool:
        inf = self.pool.pods
        live = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                for o in self.client.list("pods")["items"]}
        have = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                for o in inf.list()}
        return live == have

    def settle(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            deadline = time.monotonic() + 5
            while not self.caught_up():
                if time.monotonic() > deadline:
                    raise AssertionError("pod informer did not catch up")
                time.sleep(0.001)
            if self.pool.run_until_idle() == 0 and self.caught_up():
                return
        raise AssertionError("node pool did not settle")

    def advance_to(self, elapsed: float) -> None:
        """Move fake time to t0 + elapsed, stopping at every due timer on the way."""
        target = self.t0 + elapsed
        hb = min(self.config.timings.node_lease_renew_interval,
                 self.config.timings.node_status_update_frequency)
        while True:
            now = self.clock.now()
            if now >= target - 1e-9:
                break
            nd = self.pool.queue.next_delay()
            steps = [target - now]
            if nd is not None:
                steps.append(nd)
            # the heartbeat loop's grid
            next_hb = (int(round((now - self.t0) * 1000)) // int(hb * 1000) + 1) * hb + self.t0
            steps.append(next_hb - now)
            step = max(min(steps), 0.0)
            self.clock.advance(step if step > 1e-9 else 1e-6)
            self.pool.heartbeat_once()
            self.settle()
        self.pool.heartbeat_once()
        self.settle()

    def advance(self, seconds: float) -> None:
        self.advance_to(self.elapsed + seconds)

    # ---- objects ------------------------------------------------------------------------
    def create_pod(self, name: str, *, node: str = "node1", containers: list[dict] | None = None,
                   init: list[dict] | None = None, annotations: dict[str, str] | None = None,
                   restart_policy: str | None = None, ns: str = "default",
                   grace: int | None = None, image: str = "nginx:1.27") -> dict[str, Any]:
        spec: dict[str, Any] = {"nodeName": node,
                                "containers": containers or [{"name": "web", "image": image}]}
        if init:
            spec["initContainers"] = init
        if restart_policy:
            spec["restartPolicy"] = restart_policy
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = grace
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
               "spec": spec}
        out = self.client.create("pods", pod, ns)
        self.settle()
        return out

    def pod(self, name: str, ns: str = "default") -> dict[str, Any]:
        return self.client.get("pods", name, ns)

    def cstatus(self, name: str, container: str | None = None, *, init: bool = False,
                ns: str = "default") -> dict[str, Any]:
        st = self.pod(name, ns).get("status") or {}
        items = st.get("initContainerStatuses" if init else "containerStatuses") or []
        if container is None:
            return items[0]
        return next(c for c in items if c["name"] == container)

    def condition(self, name: str, ctype: str, ns: str = "default") -> str | None:
        for c in (self.pod(name, ns).get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return c["status"]
        return None

    def events(self, reason: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for e in self.client.list("events")["items"]:
            if reason is not None and e.get("reason") != reason:
                continue
            if name is not None and (e.get("involvedObject") or {}).get("name") != name:
                continue
            out.append(e)
        return out

    def messages(self, reason: str | None = None, name: str | None = None) -> list[str]:
        return [e["message"] for e in self.events(reason, name)]
