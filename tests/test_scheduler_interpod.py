"""InterPodAffinity: required pod affinity / anti-affinity and existing pods' anti-affinity."""

from __future__ import annotations

import pytest

try:
    from test_scheduler_env import SchedEnv
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_scheduler_env import SchedEnv

from kbox.scheduler.queue import UNSCHEDULABLE

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


@pytest.fixture
def env():
    e = SchedEnv()
    yield e
    e.close()


def _affinity(kind: str, app: str, key: str = HOST) -> dict:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}


def test_anti_affinity_spreads_replicas_one_per_node(env):
    env.add_node("n1")
    env.add_node("n2")
    for i in range(3):
        env.add_pod(f"web-{i}", owner="web", affinity=_affinity("podAntiAffinity", "web"))
    env.schedule()
    placed = [env.node_of(f"web-{i}") for i in range(3)]
    assert sorted(p for p in placed if p) == ["n1", "n2"]
    stuck = f"web-{placed.index(None)}"
    assert env.events("FailedScheduling", stuck)[0]["message"] == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: "
        "0/2 nodes are available: 2 No preemption victims found for incoming pod.")
    env.clock.advance(2)
    env.add_node("n3")                       # a new domain: the third replica fits there
    env.schedule()
    assert env.node_of(stuck) == "n3"


def test_affinity_waits_for_its_target_then_joins_it(env):
    env.add_node("n1")
    env.add_node("n2")
    env.add_pod("cache", affinity=_affinity("podAffinity", "db"))
    env.schedule()
    assert env.where("cache") == UNSCHEDULABLE
    assert env.events("FailedScheduling", "cache")[0]["message"] == (
        "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: "
        "0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    env.clock.advance(2)
    env.add_pod("db")                        # scheduled by this scheduler: requeues "cache"
    env.schedule()
    assert env.node_of("db") in ("n1", "n2")
    assert env.node_of("cache") == env.node_of("db")


def test_first_pod_of_a_self_affine_group_is_not_stuck(env):
    env.add_node("n1")
    env.add_node("n2")
    env.add_pod("grp-0", owner="grp", affinity=_affinity("podAffinity", "grp"))
    env.schedule()
    first = env.node_of("grp-0")
    assert first in ("n1", "n2")
    env.add_pod("grp-1", owner="grp", affinity=_affinity("podAffinity", "grp"))
    env.schedule()
    assert env.node_of("grp-1") == first     # affinity beats spreading


def test_existing_pods_anti_affinity_is_symmetric(env):
    env.add_node("n1")
    env.add_pod("loner", affinity=_affinity("podAntiAffinity", "noisy"))
    env.schedule()
    assert env.node_of("loner") == "n1"
    env.add_pod("noisy")                     # no terms of its own, but "loner" refuses it
    env.schedule()
    assert env.node_of("noisy") is None
    assert env.events("FailedScheduling", "noisy")[0]["message"].startswith(
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.")
    env.clock.advance(2)
    env.add_node("n2")
    env.schedule()
    assert env.node_of("noisy") == "n2"
    env.client.delete("pods", "loner", "default")
    env.pump()
    env.add_pod("noisy-2")
    env.schedule()
    assert env.node_of("noisy-2") in ("n1", "n2")


def test_zone_topology(env):
    env.add_node("a1", labels={ZONE: "a"})
    env.add_node("a2", labels={ZONE: "a"})
    env.add_node("b1", labels={ZONE: "b"})
    env.add_node("nozone")
    env.add_pod("db", nodeSelector={ZONE: "a"})
    env.schedule()
    assert env.node_of("db") in ("a1", "a2")
    # anti-affinity by zone: anywhere but zone a (a node without the key is no domain at all)
    env.add_pod("replica", affinity=_affinity("podAntiAffinity", "db", ZONE))
    # affinity by zone: zone a only, and a node without the key never qualifies
    env.add_pod("client", affinity=_affinity("podAffinity", "db", ZONE))
    env.schedule()
    assert env.node_of("replica") in ("b1", "nozone")
    assert env.node_of("client") in ("a1", "a2")


def test_namespaces_of_a_term(env):
    env.add_node("n1")
    env.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "other"}})
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "db", "namespace": "other",
                                            "labels": {"app": "db"}},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, "other")
    env.schedule()
    # the term looks at its own namespace only: the db pod in "other" does not count
    env.add_pod("same-ns", affinity=_affinity("podAntiAffinity", "db"))
    wide = _affinity("podAntiAffinity", "db")
    wide["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaces"] = \
        ["other"]
    env.add_pod("listed-ns", affinity=wide)
    env.schedule()
    assert env.node_of("same-ns") == "n1"
    assert env.node_of("listed-ns") is None
