"""A deterministic harness for scheduler tests (no tests here).

`SchedEnv` builds a memory store, the API server and an in-process client on
a FakeClock and feeds the shared pod and node informers synchronously from
API watches (no informer threads), so each test decides when the scheduler's
cache catches up. `schedule()` pumps the informers and runs the scheduler
until nothing is left to try.
"""

from __future__ import annotations

import random

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock, iso_time
from kbox.config import ClusterConfig
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.scheduler import Scheduler
from kbox.store.memory import MemoryStore

NS = "default"


class SchedEnv:
    def __init__(self, *, seed: int = 1, **sched_kw: object) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(clock=self.clock)
        self.api = ApiServer(self.store, self.clock, rng=random.Random(7))
        self.api.bootstrap()
        self.client = InProcessClient(self.api)
        self.informers = InformerFactory(self.client)
        self.recorder = EventRecorder(self.client, "default-scheduler", clock=self.clock,
                                      synchronous=True)
        self.sched = Scheduler(self.client, self.informers, self.clock, config=ClusterConfig(),
                               rng=random.Random(seed), recorder=self.recorder, **sched_kw)
        self._feeds = []
        for res in ("nodes", "pods"):
            inf = self.informers.informer(res)
            inf._relist()
            stream = self.client.watch(res, resource_version=inf.last_resource_version)
            self._feeds.append((inf, stream))

    def close(self) -> None:
        for _, s in self._feeds:
            s.close()
        self.api.stop()

    # ---- driving -------------------------------------------------------------------
    def pump(self) -> int:
        n = 0
        for inf, stream in self._feeds:
            self.api.cache(self.api.resource(inf.resource)).wait_fresh()
            for etype, obj in stream.next_batch(0):
                inf._apply(etype, obj)
                n += 1
        return n

    def schedule(self) -> int:
        """Pump and schedule until quiet; returns how many scheduling attempts ran."""
        tried = 0
        for _ in range(10000):
            self.pump()
            if not self.sched.schedule_one(timeout=0):
                self.pump()
                if not self.sched.schedule_one(timeout=0):
                    return tried
            tried += 1
        raise AssertionError("scheduler did not settle")

    def advance(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return self.schedule()

    # ---- objects -------------------------------------------------------------------
    def add_node(self, name: str, *, cpu: str = "4", memory: str = "16Gi", pods: int = 110,
                 labels: dict | None = None, taints: list | None = None,
                 unschedulable: bool = False) -> dict:
        now = iso_time(self.clock.now())
        cap = {"cpu": cpu, "memory": memory, "pods": str(pods)}
        spec: dict = {}
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        return self.client.create("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
            "status": {"capacity": dict(cap), "allocatable": dict(cap),
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now}]}})

    def patch_node(self, name: str, patch: dict) -> dict:
        return self.client.patch("nodes", name, patch, "merge")

    def add_pod(self, name: str, *, cpu: str | None = None, memory: str | None = None,
                owner: str | None = None, **spec: object) -> dict:
        req = {}
        if cpu:
            req["cpu"] = cpu
        if memory:
            req["memory"] = memory
        container: dict = {"name": "c", "image": "nginx"}
        if req:
            container["resources"] = {"requests": req}
        ports = spec.pop("host_ports", None)
        if ports:
            container["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
        meta: dict = {"name": name, "namespace": NS, "labels": {"app": owner or name}}
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                        "name": owner, "uid": f"uid-{owner}", "controller": True}]
        return self.client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                           "spec": {"containers": [container], **spec}}, NS)

    def node_of(self, name: str) -> str | None:
        return (self.client.get("pods", name, NS).get("spec") or {}).get("nodeName")

    def events(self, reason: str | None = None, pod: str | None = None) -> list[dict]:
        evs = self.client.list("events", NS)["items"]
        return [e for e in evs if (reason is None or e["reason"] == reason)
                and (pod is None or e["involvedObject"]["name"] == pod)]

    def where(self, pod: str) -> str | None:
        return self.sched.queue.where(f"{NS}/{pod}")
