"""A harness for the controller-manager tests: real informer threads, fake time.

`Env` builds a memory store, an API server and an in-process client on a
FakeClock, starts the shared informers' threads, and `settle()` alternates
"wait until every informer cache matches the API" with `run_until_idle()`
on each controller until nothing moves. Timing is driven only by
`advance()`, so grace periods and backoffs are asserted exactly.
"""

from __future__ import annotations

import random
import time

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock, iso_micro, iso_time
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.store.memory import MemoryStore

NS = "default"


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(clock=self.clock)
        self.api = ApiServer(self.store, self.clock, rng=random.Random(7))
        self.api.bootstrap()
        self.client = InProcessClient(self.api)
        self.informers = InformerFactory(self.client)
        self.controllers: list = []
        self._started = False

    def add(self, cls, **kw):
        rec = EventRecorder(self.client, cls.name, clock=self.clock, synchronous=True)
        c = cls(self.client, self.informers, self.clock, recorder=rec, **kw)
        self.controllers.append(c)
        return c

    def start(self) -> "Env":
        self.informers.start()
        assert self.informers.wait_for_sync(10)
        self._started = True
        self.settle()
        return self

    def close(self) -> None:
        for c in self.controllers:
            c.queue.shutdown()
        self.informers.stop()
        self.api.stop()

    # ---- driving ----------------------------------------------------------------
    def caught_up(self) -> bool:
        for inf in list(self.informers._informers.values()):
            live = self.client.list(inf.resource, inf.namespace)["items"]
            want = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                    for o in live}
            have = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                    for o in inf.list()}
            if want != have:
                return False
        return True

    def wait_caught_up(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise AssertionError("informers did not catch up")
            time.sleep(0.002)

    def settle(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            self.wait_caught_up()
            n = sum(c.run_until_idle() for c in self.controllers)
            if n == 0:
                # failed syncs are retried after a few fake milliseconds
                delays = [c.queue.next_delay() for c in self.controllers]
                delays = [d for d in delays if d is not None and d <= 0.05]
                if not delays:
                    self.wait_caught_up()
                    if sum(c.run_until_idle() for c in self.controllers) == 0:
                        return
                else:
                    self.clock.advance(max(delays) + 0.001)
        raise AssertionError("controllers did not settle")

    def advance(self, seconds: float, step: float | None = None) -> None:
        """Move fake time in steps (so periodic work runs along the way), settling each."""
        step = step or seconds
        left = seconds
        while left > 1e-9:
            d = min(step, left)
            self.clock.advance(d)
            left -= d
            self.settle()

    # ---- helpers ------------------------------------------------------------------
    def events(self, reason: str | None = None, ns: str | None = None) -> list[dict]:
        evs = self.client.list("events", ns)["items"]
        return [e for e in evs if reason is None or e["reason"] == reason]

    def pods(self, ns: str = NS) -> list[dict]:
        return self.client.list("pods", ns)["items"]

    def make_node(self, name: str, *, ready: bool = True, labels: dict | None = None,
                  taints: list | None = None, lease: bool = True) -> dict:
        now = iso_time(self.clock.now())
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {"taints": taints} if taints else {},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True" if ready else "False",
                     "reason": "KubeletReady", "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": now,
                     "lastTransitionTime": now}]}}
        out = self.client.create("nodes", node)
        if lease:
            self.renew(name)
        return out

    def renew(self, name: str) -> None:
        body = {"spec": {"holderIdentity": name, "renewTime": iso_micro(self.clock.now()),
                         "leaseDurationSeconds": 40}}
        try:
            self.client.patch("leases", name, body, "merge", "kube-node-lease")
        except Exception:
            self.client.create("leases", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                          "metadata": {"name": name, "namespace": "kube-node-lease"},
                                          **body}, "kube-node-lease")

    def heartbeat(self, name: str, ready: bool = True) -> None:
        """What the kubelet does: post the Ready condition with a fresh heartbeat."""
        now = iso_time(self.clock.now())
        node = self.client.get("nodes", name)
        conds = []
        for c in node["status"]["conditions"]:
            c = dict(c)
            st = ("True" if ready else "False") if c["type"] == "Ready" else "False"
            if c["status"] != st:
                c["lastTransitionTime"] = now
            c["status"] = st
            c["lastHeartbeatTime"] = now
            c["reason"] = "KubeletReady" if c["type"] == "Ready" else "KubeletHasSufficientMemory"
            c["message"] = "kubelet is posting ready status"
            conds.append(c)
        node["status"]["conditions"] = conds
        self.client.update_status("nodes", node)

    def make_pod(self, name: str, *, node: str | None = None, labels: dict | None = None,
                 ip: str | None = None, ready: bool = False, ns: str = NS,
                 tolerations: list | None = None, ports: list | None = None,
                 phase: str = "Running") -> dict:
        spec: dict = {"containers": [{"name": "c", "image": "nginx", **({"ports": ports} if ports else {})}]}
        if tolerations:
            spec["tolerations"] = tolerations
        self.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                          "metadata": {"name": name, "namespace": ns,
                                                       "labels": labels or {}},
                                          "spec": spec}, ns)
        if node:
            self.client.bind(name, ns, node)
        if ip or ready or node:
            now = iso_time(self.clock.now())
            st = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                  "lastTransitionTime": now}]}
            if ip:
                st["podIP"] = ip
                st["podIPs"] = [{"ip": ip}]
            self.client.patch("pods", name, {"status": st}, "merge", ns, subresource="status")
        return self.client.get("pods", name, ns)
