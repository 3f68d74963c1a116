"""The scheduler's roomy-node walk (`_find_node_roomy`) picks exactly what the full walk
picks: same feasible nodes, same failures, same scores, same node, same next start.

Both walks run on the same scheduler cache from the same round-robin start and the same
random state, over a cluster where nodes fill up, get cordoned or tainted, and pods of a
few owners pile up, so the tight set and the owners' spreading both matter.
"""

from __future__ import annotations

import random

import kbox.scheduler.scheduler as sched_mod
from kbox.clock import FakeClock
from kbox.config import ClusterConfig
from kbox.scheduler.info import PodInfo
from kbox.scheduler.scheduler import Scheduler


class _NoInformers:
    def informer(self, resource):
        class _I:
            def add_handler(self, *a, **k):
                pass
        return _I()


def _node(name, cpu, mem_gi, pods, *, cordon=False, taint=False):
    spec = {"unschedulable": cordon}
    if taint:
        spec["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": f"{mem_gi}Gi", "pods": str(pods)}}}


def _pod(i, owner, cpu_m, mem_mi):
    return {"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"uid-{i}",
                         "ownerReferences": [{"uid": owner, "controller": True, "kind": "ReplicaSet",
                                              "name": owner}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {
                "cpu": f"{cpu_m}m", "memory": f"{mem_mi}Mi"}}}]}}


def _scheduler(seed):
    s = Scheduler(client=None, informers=_NoInformers(), clock=FakeClock(), config=ClusterConfig(),
                  rng=random.Random(seed))
    return s


def test_roomy_walk_matches_full_walk(monkeypatch):
    rnd = random.Random(7)
    s = _scheduler(3)
    nodes = []
    for i in range(300):
        # small nodes fill up and turn tight during the run; a few start blocked
        cpu = rnd.choice(["2", "4", "32"])
        ni = s._node_info(f"n{i}")
        s._set_node(ni, _node(f"n{i}", cpu, rnd.choice([2, 8, 64]), rnd.choice([10, 110]),
                              cordon=rnd.random() < 0.01, taint=rnd.random() < 0.01), False)
        nodes.append(ni)
    owners = [f"rs-{k}" for k in range(6)]
    fast_used = 0
    for i in range(3000):
        pod = _pod(i, rnd.choice(owners), rnd.choice([10, 100, 250, 900]), rnd.choice([16, 128, 900]))
        pi = PodInfo(pod)
        start, state = s._next_start, s.rng.getstate()
        with s._lock:
            fast = s._find_node(pi)
        fast_next = s._next_start
        s._next_start = start
        s.rng.setstate(state)
        monkeypatch.setattr(sched_mod, "ROOMY_CPU", -1)     # forces the full walk
        with s._lock:
            full = s._find_node(pi)
        monkeypatch.setattr(sched_mod, "ROOMY_CPU", 1000)
        assert (fast[0] and fast[0].name) == (full[0] and full[0].name), i
        assert len(fast[1]) == len(full[1]) and fast[2] == full[2]
        assert fast_next == s._next_start
        if len(s._views.tight) * 8 <= len(s._node_list):
            fast_used += 1
        if fast[0] is not None:
            s._assume(pi, fast[0])
        if i % 500 == 499:   # a node changes: cordoned, then a new one joins
            victim = nodes[rnd.randrange(len(nodes))]
            s._set_node(victim, _node(victim.name, "32", 64, 110, cordon=True), True)
    assert fast_used > 1000          # the roomy walk really ran (not only the fallback)
    assert s._views.tight            # and nodes did fill up


def test_views_follow_pods_and_node_removal():
    s = _scheduler(1)
    for name in ("a", "b", "c"):
        s._set_node(s._node_info(name), _node(name, "1", 1, 110), False)
    assert {n.name for n in s._views.tight} == set()  # exactly roomy: 1 cpu, 1 GiB free
    pi = PodInfo(_pod(1, "rs-x", 10, 16))
    s._assume(pi, s._nodes["b"])
    assert {n.name for n in s._views.tight} == {"b"}   # less than a roomy amount left
    assert {n.name: c for n, c in s._views.owner_nodes["rs-x"].items()} == {"b": 1}
    s._on_node_delete({"metadata": {"name": "a"}})
    assert [n.idx for n in s._node_list] == [0, 1] and [n.name for n in s._node_list] == ["b", "c"]
    s._nodes["b"].remove_pod(pi.key)
    assert "rs-x" not in s._views.owner_nodes and not s._views.tight
