"""PodTopologySpread: hard topologySpreadConstraints (DoNotSchedule)."""

from __future__ import annotations

import pytest

try:
    from test_scheduler_env import SchedEnv
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_scheduler_env import SchedEnv

ZONE = "topology.kubernetes.io/zone"


@pytest.fixture
def env():
    e = SchedEnv()
    yield e
    e.close()


def _tsc(key: str = ZONE, skew: int = 1, **extra: object) -> list[dict]:
    return [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def test_zone_spread_keeps_skew_within_max(env):
    env.add_node("a1", labels={ZONE: "a"})
    env.add_node("a2", labels={ZONE: "a"})
    env.add_node("b1", labels={ZONE: "b"}, cpu="1")
    for i in range(4):
        env.add_pod(f"web-{i}", owner="web", topologySpreadConstraints=_tsc())
        env.schedule()
    zones = [env.node_of(f"web-{i}")[0] for i in range(4)]
    assert zones.count("a") == 2 and zones.count("b") == 2


def test_skew_violation_message_and_missing_label(env):
    env.add_node("a1", labels={ZONE: "a"})
    env.add_node("b1", labels={ZONE: "b"}, cpu="100m")   # zone b cannot take a 200m pod
    env.add_node("nozone")
    env.add_pod("web-0", owner="web", cpu="200m", topologySpreadConstraints=_tsc())
    env.schedule()
    assert env.node_of("web-0") == "a1"
    env.add_pod("web-1", owner="web", cpu="200m", topologySpreadConstraints=_tsc())
    env.schedule()
    assert env.node_of("web-1") is None      # a would be 2 against b's 0
    assert env.events("FailedScheduling", "web-1")[0]["message"] == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match pod topology spread constraints, "
        "1 node(s) didn't match pod topology spread constraints (missing required label). "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.")
    env.clock.advance(2)
    env.client.patch("nodes", "b1", {"status": {"allocatable": {"cpu": "4"}}}, "merge",
                     subresource="status")
    env.schedule()
    assert env.node_of("web-1") == "b1"


def test_schedule_anyway_never_blocks(env):
    env.add_node("a1", labels={ZONE: "a"})
    env.add_node("nozone")
    for i in range(3):
        env.add_pod(f"web-{i}", owner="web", nodeSelector={ZONE: "a"},
                    topologySpreadConstraints=_tsc(whenUnsatisfiable="ScheduleAnyway"))
    env.schedule()
    assert [env.node_of(f"web-{i}") for i in range(3)] == ["a1"] * 3


def test_node_selector_limits_the_domains(env):
    # nodeAffinityPolicy Honor: zone b is not eligible, so it does not hold the minimum at 0
    env.add_node("a1", labels={ZONE: "a", "disk": "ssd"})
    env.add_node("b1", labels={ZONE: "b"})
    for i in range(3):
        env.add_pod(f"web-{i}", owner="web", nodeSelector={"disk": "ssd"},
                    topologySpreadConstraints=_tsc())
    env.schedule()
    assert [env.node_of(f"web-{i}") for i in range(3)] == ["a1"] * 3


def test_pod_landing_elsewhere_unblocks(env):
    env.add_node("a1", labels={ZONE: "a"})
    env.add_node("b1", labels={ZONE: "b"}, unschedulable=True)
    env.add_pod("web-0", owner="web", topologySpreadConstraints=_tsc())
    env.schedule()
    env.add_pod("web-1", owner="web", topologySpreadConstraints=_tsc())
    env.schedule()
    assert env.node_of("web-0") == "a1" and env.node_of("web-1") is None
    env.clock.advance(2)
    # a pod of the group lands in zone b (bound by someone else): the skew is fine again
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web-x", "namespace": "default",
                                            "labels": {"app": "web"}},
                               "spec": {"nodeName": "b1",
                                        "containers": [{"name": "c", "image": "nginx"}]}},
                      "default")
    env.schedule()
    assert env.node_of("web-1") == "a1"
