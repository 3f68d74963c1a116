"""A deterministic harness for the workload controllers, plus podutil unit tests.

`Env` builds a memory store, an API server and an in-process client on a
FakeClock, and feeds the shared informers synchronously from API watches
(no informer threads), so a test decides exactly when caches catch up.
`settle()` alternates pumping the informers and running one key of each
controller until nothing moves. `kubelet()` stands in for node agents.
"""

from __future__ import annotations

import random

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock, iso_time
from kbox.controllers import podutil
from kbox.controllers.deployment import DeploymentController
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.controllers.replicaset import ReplicaSetController
from kbox.store.memory import MemoryStore

NS = "default"


class Env:
    def __init__(self, *, burst: int = 500, deployments: bool = True) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(clock=self.clock)
        self.api = ApiServer(self.store, self.clock, rng=random.Random(7))
        self.api.bootstrap()
        self.client = InProcessClient(self.api)
        self.informers = InformerFactory(self.client)
        self.rs_recorder = EventRecorder(self.client, "replicaset-controller", clock=self.clock,
                                         synchronous=True)
        self.rsc = ReplicaSetController(self.client, self.informers, self.clock,
                                        recorder=self.rs_recorder, burst=burst)
        self.controllers = [self.rsc]
        self.dc = None
        if deployments:
            self.d_recorder = EventRecorder(self.client, "deployment-controller", clock=self.clock,
                                            synchronous=True)
            self.dc = DeploymentController(self.client, self.informers, self.clock,
                                           recorder=self.d_recorder)
            self.controllers.append(self.dc)
        self._feeds = []
        for res in ("pods", "replicasets", "deployments"):
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
        """Deliver every change the API has made so far to the informers."""
        n = 0
        for inf, stream in self._feeds:
            self.api.cache(self.api.resource(inf.resource)).wait_fresh()
            for etype, obj in stream.next_batch(0):
                inf._apply(etype, obj)
                n += 1
        return n

    def settle(self, limit: int = 500) -> None:
        for _ in range(limit):
            moved = self.pump()
            for c in self.controllers:
                moved += 1 if c.process_next(timeout=0) else 0
            if not moved:
                # a failed sync is retried after a few (fake) milliseconds
                delays = [c.queue.next_delay() for c in self.controllers]
                delays = [x for x in delays if x is not None and x <= 0.05]
                if not delays:
                    return
                self.clock.advance(max(delays) + 0.001)
        raise AssertionError("controllers did not settle")

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()

    # ---- fake kubelet ----------------------------------------------------------------
    def pods(self, selector: str | None = None, *, active_only: bool = True) -> list[dict]:
        items = self.client.list("pods", NS, label_selector=selector)["items"]
        return [p for p in items if podutil.is_pod_active(p)] if active_only else items

    def make_ready(self, pod: dict, node: str = "node-1", restarts: int = 0) -> None:
        name = pod["metadata"]["name"]
        if not (pod.get("spec") or {}).get("nodeName"):
            self.client.bind(name, NS, node)
        now = iso_time(self.clock.now())
        self.client.patch("pods", name, {"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "c", "ready": True, "restartCount": restarts}],
        }}, "merge", NS, subresource="status")

    def make_running(self, pod: dict, node: str = "node-1") -> None:
        """Running but not Ready (a failing readiness probe)."""
        name = pod["metadata"]["name"]
        if not (pod.get("spec") or {}).get("nodeName"):
            self.client.bind(name, NS, node)
        self.client.patch("pods", name, {"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False",
                            "lastTransitionTime": iso_time(self.clock.now())}]}},
            "merge", NS, subresource="status")

    def kubelet(self) -> None:
        """Finish graceful deletions (the kubelet's final grace-0 delete)."""
        for p in self.pods(active_only=False):
            if p["metadata"].get("deletionTimestamp"):
                self.client.delete("pods", p["metadata"]["name"], NS, grace_period_seconds=0)

    def ready_all(self, selector: str | None = None) -> None:
        for p in self.pods(selector):
            if not podutil.is_pod_ready(p):
                self.make_ready(p)

    def events(self, reason: str | None = None) -> list[dict]:
        evs = self.client.list("events", NS)["items"]
        return [e for e in evs if reason is None or e["reason"] == reason]


def template(labels: dict[str, str], image: str = "nginx:1.25") -> dict:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def replicaset(name: str, replicas: int, labels: dict[str, str] | None = None,
               **spec: object) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": template(labels), **spec}}


def deployment(name: str, replicas: int, image: str = "nginx:1.25", **spec: object) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": template(labels, image), **spec}}


# ---- podutil unit tests -------------------------------------------------------------

def _pod(name: str, *, node: str = "", phase: str = "Pending", ready: bool = False,
         ready_at: float | None = None, restarts: int = 0, created: float = 0.0) -> dict:
    conds = []
    if ready:
        conds.append({"type": "Ready", "status": "True",
                      "lastTransitionTime": iso_time(ready_at if ready_at is not None else created)})
    return {"metadata": {"name": name, "creationTimestamp": iso_time(created)},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_deletion_ranking_follows_active_pods_order():
    t = 1_700_000_000.0
    pods = [
        _pod("ready-old", node="n1", phase="Running", ready=True, ready_at=t, created=t),
        _pod("ready-new", node="n1", phase="Running", ready=True, ready_at=t + 50, created=t + 50),
        _pod("running-notready", node="n1", phase="Running", created=t),
        _pod("unknown", node="n1", phase="Unknown", created=t),
        _pod("pending-assigned", node="n1", phase="Pending", created=t),
        _pod("unassigned", created=t),
    ]
    order = [p["metadata"]["name"] for p in podutil.rank_pods_for_deletion(list(reversed(pods)))]
    assert order == ["unassigned", "pending-assigned", "unknown", "running-notready",
                     "ready-new", "ready-old"]


def test_ranking_restarts_then_newer_first():
    t = 1_700_000_000.0
    a = _pod("a", node="n1", phase="Running", ready=True, ready_at=t, restarts=0, created=t)
    b = _pod("b", node="n1", phase="Running", ready=True, ready_at=t, restarts=3, created=t)
    c = _pod("c", node="n1", phase="Running", ready=True, ready_at=t, restarts=0, created=t + 10)
    order = [p["metadata"]["name"] for p in podutil.rank_pods_for_deletion([a, b, c])]
    assert order == ["b", "c", "a"]


def test_ranking_prefers_crowded_nodes():
    t = 1_700_000_000.0
    mk = lambda n, node: _pod(n, node=node, phase="Running", ready=True, ready_at=t, created=t)  # noqa: E731
    pods = [mk("x1", "n1"), mk("y1", "n2"), mk("y2", "n2")]
    assert podutil.rank_pods_for_deletion(pods)[0]["spec"]["nodeName"] == "n2"


def test_available_needs_min_ready_seconds():
    t = 1_700_000_000.0
    p = _pod("a", node="n1", phase="Running", ready=True, ready_at=t)
    assert podutil.is_pod_available(p, 0, t)
    assert not podutil.is_pod_available(p, 10, t + 10)
    assert podutil.is_pod_available(p, 10, t + 11)


def test_slow_start_batches_stop_on_first_error():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("quota")
    ok, err = podutil.slow_start_batch(20, fn)
    # batches 1, 2, 4: the failure is the 2nd call of the third batch; that batch completes
    assert (ok, len(calls), str(err)) == (6, 7, "quota")
    calls.clear()
    ok, err = podutil.slow_start_batch(10, lambda: calls.append(1))
    assert (ok, err, len(calls)) == (10, None, 10)


def test_expectations_lifecycle():
    clock = FakeClock()
    e = podutil.Expectations(clock)
    assert e.satisfied("ns/a")
    e.expect_creations("ns/a", 2)
    assert not e.satisfied("ns/a")
    e.creation_observed("ns/a")
    e.creation_observed("ns/a")
    assert e.satisfied("ns/a")
    e.expect_deletions("ns/a", ["ns/p1"])
    e.deletion_observed("ns/a", "ns/other")
    assert not e.satisfied("ns/a")
    clock.advance(301)
    assert e.satisfied("ns/a")   # expired
    e.expect_deletions("ns/a", ["ns/p1"])
    e.deletion_observed("ns/a", "ns/p1")
    assert e.satisfied("ns/a")
