"""NodePool: one shared pod informer dispatched to the right agent, node operations."""

from __future__ import annotations

import pytest

from kbox.node.testing import NodeEnv


@pytest.fixture
def env():
    e = NodeEnv(nodes=3)
    yield e
    e.close()


def test_one_informer_dispatches_by_node(env):
    for i in range(9):
        env.create_pod(f"p{i}", node=f"node{i % 3 + 1}")
    env.advance_to(1)
    for i in range(9):
        p = env.pod(f"p{i}")
        assert p["status"]["phase"] == "Running"
        assert p["status"]["hostIP"] == env.pool.agents[f"node{i % 3 + 1}"].node_ip
    assert sorted(env.pool.agents["node2"].records) == ["default/p1", "default/p4", "default/p7"]
    # one pod informer for the whole pool
    assert len([k for k in env.informers._informers if k[0] == "pods"]) == 1


def test_distinct_node_ips_and_pod_cidrs(env):
    ips = {a.node_ip for a in env.pool.agents.values()}
    assert len(ips) == 3
    env.create_pod("a", node="node1")
    env.create_pod("b", node="node2")
    env.advance_to(1)
    assert env.pod("a")["status"]["podIP"].startswith("10.244.0.")
    assert env.pod("b")["status"]["podIP"].startswith("10.244.1.")


def test_pod_recreated_on_another_node(env):
    env.create_pod("web", node="node1")
    env.advance_to(1)
    env.client.delete("pods", "web", "default", grace_period_seconds=0)
    env.settle()
    env.create_pod("web", node="node2")
    env.advance_to(2)
    assert env.pool.agents["node1"].records == {}
    assert "default/web" in env.pool.agents["node2"].records
    assert env.pod("web")["status"]["phase"] == "Running"


def test_pods_for_unknown_node_wait_until_added(env):
    env.create_pod("later", node="node9")
    env.advance_to(1)
    assert "phase" not in (env.pod("later").get("status") or {}) or \
        env.pod("later")["status"].get("phase") == "Pending"
    env.add_node("node9")      # its podCIDR comes just after registration: read on the retry
    env.advance_to(4)
    assert env.pod("later")["status"]["phase"] == "Running"


def test_add_node_twice_fails(env):
    from kbox.config import NodeSpec
    with pytest.raises(ValueError):
        env.pool.add_node(NodeSpec(name="node1"))


def test_unknown_node_operations_fail(env):
    with pytest.raises(LookupError):
        env.pool.stop_node("nope")


def test_node_deleted_under_a_running_agent_registers_again(env):
    env.client.delete("nodes", "node1")
    env.pool.agents["node1"].last_status = float("-inf")
    env.pool.agents["node1"]._posted = None
    env.advance(2)
    assert env.client.get("nodes", "node1")["metadata"]["name"] == "node1"


def test_event_rate_limit_drops_normal_events_under_load():
    from kbox.node.pool import _RateLimitedRecorder
    from kbox.clock import FakeClock

    class Sink:
        def __init__(self):
            self.n = 0

        def event(self, *a, **k):
            self.n += 1

    clock = FakeClock()
    sink = Sink()
    r = _RateLimitedRecorder(sink, clock, qps=10, burst=20, warning_qps=1, warning_burst=5)
    obj = {"metadata": {"name": "x"}}
    for _ in range(50):
        r.event(obj, "Normal", "Started", "m")
    assert sink.n == 20 and r.dropped == 30
    clock.advance(1)
    for _ in range(50):
        r.event(obj, "Normal", "Started", "m")
    assert sink.n == 30
    for _ in range(10):
        r.event(obj, "Warning", "BackOff", "m")
    assert sink.n == 35
