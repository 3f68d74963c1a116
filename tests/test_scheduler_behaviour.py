"""kube-scheduler behaviour on a FakeClock, driven synchronously with schedule_one."""

from __future__ import annotations

import random

import pytest

try:
    from test_scheduler_env import NS, SchedEnv
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_scheduler_env import NS, SchedEnv

from kbox.clock import FakeClock
from kbox.scheduler.info import NodeInfo, PodInfo
from kbox.scheduler.plugins import (
    fit_error_message,
    run_filters,
    score_nodes,
    select_host,
)
from kbox.scheduler.queue import BACKOFF, UNSCHEDULABLE, SchedulingQueue


@pytest.fixture
def env():
    e = SchedEnv()
    yield e
    e.close()


def cond(env, pod):
    for c in (env.client.get("pods", pod, NS).get("status") or {}).get("conditions") or []:
        if c["type"] == "PodScheduled":
            return c
    return None


# ---- binding ---------------------------------------------------------------------------
def test_binds_and_records_scheduled_event(env):
    env.add_node("kbox-worker")
    env.add_pod("web-abc", cpu="100m")
    env.schedule()
    assert env.node_of("web-abc") == "kbox-worker"
    ev = env.events("Scheduled", "web-abc")
    assert len(ev) == 1 and ev[0]["type"] == "Normal"
    assert ev[0]["message"] == "Successfully assigned default/web-abc to kbox-worker"
    assert ev[0]["source"]["component"] == "default-scheduler"
    assert cond(env, "web-abc")["status"] == "True"
    env.pump()
    assert env.sched.assumed() == set()      # the informer confirmed the assumption
    assert env.sched.node_info("kbox-worker").req_cpu == 100


def test_only_own_pending_pods_are_scheduled(env):
    env.add_node("n1")
    env.add_pod("other", schedulerName="my-scheduler")
    env.add_pod("pinned", nodeName="n1")
    env.add_pod("mine", schedulerName="default-scheduler")
    env.schedule()
    assert env.node_of("other") is None
    assert env.node_of("mine") == "n1"
    assert env.events("Scheduled", "pinned") == []
    # the pinned pod still counts against the node
    assert env.sched.node_info("n1").pod_count == 2


def test_assumed_pods_count_before_the_informer_sees_the_binding(env):
    env.add_node("n1", cpu="1")
    env.add_node("n2", cpu="1")
    env.add_pod("a", cpu="600m")
    env.add_pod("b", cpu="600m")
    env.pump()
    assert env.sched.schedule_one() and env.sched.schedule_one()   # no pump in between
    assert {env.node_of("a"), env.node_of("b")} == {"n1", "n2"}
    assert len(env.sched.assumed()) == 2
    env.pump()
    assert env.sched.assumed() == set()


def test_bind_conflict_forgets_the_assumption(env):
    env.add_node("n1", cpu="1")
    env.add_pod("a", cpu="800m")
    env.pump()
    env.client.bind("a", NS, "n1")          # someone else binds first; the cache has not seen it
    assert env.sched.schedule_one()
    assert env.sched.assumed() == set()
    assert env.sched.node_info("n1").req_cpu == 0
    env.pump()
    assert env.sched.node_info("n1").req_cpu == 800 and len(env.sched.queue) == 0


# ---- filters ---------------------------------------------------------------------------
def test_failed_scheduling_message_mixed_case(env):
    env.add_node("kbox-worker", unschedulable=True)
    env.add_node("kbox-worker2", cpu="1")
    env.add_node("kbox-worker3", cpu="1")
    env.add_pod("big", cpu="2")
    env.schedule()
    assert env.node_of("big") is None
    msg = ("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. "
           "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
           "2 No preemption victims found for incoming pod.")
    ev = env.events("FailedScheduling", "big")
    assert len(ev) == 1 and ev[0]["message"] == msg and ev[0]["type"] == "Warning"
    assert ev[0]["source"]["component"] == "default-scheduler"
    c = cond(env, "big")
    assert c["status"] == "False" and c["reason"] == "Unschedulable" and c["message"] == msg
    assert env.where("big") == UNSCHEDULABLE


def test_reasons_sorted_as_strings_and_all_resource_reasons_counted():
    fails = [(False, ("Insufficient cpu", "Insufficient memory"))] * 10 + \
        [(True, ("node(s) were unschedulable",))] * 2
    msg = fit_error_message(12, fails, False)
    assert msg.startswith("0/12 nodes are available: 10 Insufficient cpu, 10 Insufficient memory, "
                          "2 node(s) were unschedulable. preemption: 0/12 nodes are available: "
                          "10 No preemption victims found for incoming pod, "
                          "2 Preemption is not helpful for scheduling.")
    assert fit_error_message(1, [(True, ("x",))], True) == \
        "0/1 nodes are available: 1 x. preemption: not eligible due to preemptionPolicy=Never."
    assert fit_error_message(0, [], False) == "no nodes available to schedule pods"


def test_no_nodes(env):
    env.add_pod("p")
    env.schedule()
    assert env.events("FailedScheduling", "p")[0]["message"] == "no nodes available to schedule pods"


def test_failed_scheduling_is_aggregated_not_spammed(env):
    env.add_node("n1", cpu="1")
    env.add_pod("big", cpu="2")
    env.schedule()
    for _ in range(3):
        env.clock.advance(61)            # the periodic flush retries it
        env.schedule()
    ev = env.events("FailedScheduling", "big")
    assert len(ev) == 1 and ev[0]["count"] == 4


def test_unschedulable_node_and_its_toleration(env):
    env.add_node("n1", unschedulable=True)
    env.add_pod("plain")
    env.add_pod("tolerant", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                          "operator": "Exists", "effect": "NoSchedule"}])
    env.schedule()
    assert env.node_of("plain") is None
    assert env.node_of("tolerant") == "n1"


def test_cordon_then_uncordon_requeues_the_pending_pod(env):
    env.add_node("n1")
    env.patch_node("n1", {"spec": {"unschedulable": True}})
    env.add_pod("p")
    env.schedule()
    assert env.where("p") == UNSCHEDULABLE
    env.patch_node("n1", {"metadata": {"labels": {"x": "y"}}})
    env.schedule()
    assert env.node_of("p") is None      # still cordoned
    env.clock.advance(5)                 # past the back-off: a move goes straight to active
    env.patch_node("n1", {"spec": {"unschedulable": None}})
    env.schedule()
    assert env.node_of("p") == "n1"


def test_heartbeats_do_not_requeue(env):
    env.add_node("n1", unschedulable=True)
    env.add_pod("p")
    env.schedule()
    env.client.patch("nodes", "n1", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2030-01-01T00:00:00Z"}]}},
        "merge", subresource="status")
    env.pump()
    assert env.where("p") == UNSCHEDULABLE


def test_node_add_unblocks(env):
    env.add_node("small", cpu="1")
    env.add_pod("p", cpu="2")
    env.schedule()
    assert env.where("p") == UNSCHEDULABLE
    env.clock.advance(2)
    env.add_node("big", cpu="8")
    env.schedule()
    assert env.node_of("p") == "big"


def test_deleted_pod_frees_resources(env):
    env.add_node("n1", cpu="1")
    env.add_pod("first", cpu="800m")
    env.schedule()
    env.add_pod("second", cpu="800m")
    env.schedule()
    assert env.node_of("second") is None
    env.clock.advance(2)
    env.client.delete("pods", "first", NS, grace_period_seconds=0)
    env.schedule()
    assert env.node_of("second") == "n1"


def test_finished_pod_frees_resources(env):
    env.add_node("n1", cpu="1")
    env.add_pod("job", cpu="800m")
    env.schedule()
    env.add_pod("next", cpu="800m")
    env.schedule()
    env.clock.advance(2)
    env.client.patch("pods", "job", {"status": {"phase": "Succeeded"}}, "merge", NS,
                     subresource="status")
    env.schedule()
    assert env.node_of("next") == "n1"


def test_memory_and_pod_count(env):
    env.add_node("n1", memory="1Gi", pods=2)
    env.add_pod("a", memory="600Mi")
    env.add_pod("b", memory="600Mi")
    env.add_pod("c")
    env.add_pod("d")
    env.schedule()
    bound = {p: env.node_of(p) for p in "abcd"}
    assert sum(1 for v in bound.values() if v) == 2
    assert bound["a"] == "n1" and bound["b"] is None
    assert bound["c"] == "n1" and bound["d"] is None     # tried in arrival order
    assert env.events("FailedScheduling", "b")[0]["message"].startswith(
        "0/1 nodes are available: 1 Insufficient memory.")
    assert env.events("FailedScheduling", "d")[0]["message"].startswith(
        "0/1 nodes are available: 1 Too many pods.")
    env.clock.advance(61)     # both retried: now the node is full on both counts for b
    env.schedule()
    assert env.events("FailedScheduling", "b")[-1]["message"].startswith(
        "0/1 nodes are available: 1 Insufficient memory, 1 Too many pods.")


def test_host_ports(env):
    env.add_node("n1")
    env.add_node("n2")
    for name in ("a", "b", "c"):
        env.add_pod(name, host_ports=[8080])
    env.schedule()
    nodes = [env.node_of(n) for n in "abc"]
    assert sorted(x for x in nodes if x) == ["n1", "n2"]
    stuck = [n for n, x in zip("abc", nodes) if x is None][0]
    assert env.events("FailedScheduling", stuck)[0]["message"].startswith(
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.")


def test_taints_and_tolerations(env):
    env.add_node("gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    env.add_node("down", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    env.add_pod("plain")
    env.add_pod("gpu-job", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                         "effect": "NoSchedule"}])
    env.add_pod("wrong-value", tolerations=[{"key": "dedicated", "value": "cpu"}])
    env.schedule()
    assert env.node_of("plain") is None
    assert env.node_of("gpu-job") == "gpu"
    assert env.node_of("wrong-value") is None
    assert env.events("FailedScheduling", "plain")[0]["message"].startswith(
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: "
        "0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    env.add_pod("anything", tolerations=[{"operator": "Exists"}])
    env.schedule()
    assert env.node_of("anything") in ("gpu", "down")


def test_node_selector(env):
    env.add_node("n1", labels={"disk": "ssd"})
    env.add_node("n2", labels={"disk": "hdd"})
    env.add_pod("p", nodeSelector={"disk": "ssd"})
    env.add_pod("q", nodeSelector={"disk": "nvme"})
    env.schedule()
    assert env.node_of("p") == "n1"
    assert env.events("FailedScheduling", "q")[0]["message"].startswith(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")


def _affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def test_required_node_affinity_operators(env):
    env.add_node("a", labels={"zone": "z1", "cores": "8"})
    env.add_node("b", labels={"zone": "z2", "cores": "32", "gpu": "yes"})
    env.add_node("c", labels={"zone": "z3", "cores": "x"})
    cases = {
        "in": ([{"key": "zone", "operator": "In", "values": ["z2", "z9"]}], {"b"}),
        "notin": ([{"key": "zone", "operator": "NotIn", "values": ["z1", "z2"]}], {"c"}),
        "exists": ([{"key": "gpu", "operator": "Exists"}], {"b"}),
        "dne": ([{"key": "gpu", "operator": "DoesNotExist"},
                 {"key": "zone", "operator": "In", "values": ["z1"]}], {"a"}),
        "gt": ([{"key": "cores", "operator": "Gt", "values": ["16"]}], {"b"}),
        "lt": ([{"key": "cores", "operator": "Lt", "values": ["16"]}], {"a"}),
    }
    for name, (exprs, _) in cases.items():
        env.add_pod(name, affinity=_affinity({"matchExpressions": exprs}))
    env.add_pod("fields", affinity=_affinity(
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}))
    env.add_pod("ored", affinity=_affinity(
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["nowhere"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z3"]}]}))
    env.add_pod("with-selector", nodeSelector={"zone": "z1"},
                affinity=_affinity({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}))
    env.schedule()
    for name, (_, want) in cases.items():
        assert env.node_of(name) in want, name
    assert env.node_of("fields") == "c"
    assert env.node_of("ored") == "c"
    assert env.node_of("with-selector") is None   # selector AND affinity


def test_node_name_filter_unit():
    ni = NodeInfo("n1")
    ni.set_node({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi",
                                                                         "pods": "10"}}})
    pod = {"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n2", "containers": []}}
    assert run_filters(PodInfo(pod), ni) == (True, ("node(s) didn't match the requested node name",))
    pod["spec"]["nodeName"] = "n1"
    assert run_filters(PodInfo(pod), ni) is None


# ---- scores and tie-breaks ----------------------------------------------------------------
def _node(name, cpu="4", mem="16Gi", **kw):
    ni = NodeInfo(name)
    ni.set_node({"metadata": {"name": name, "labels": kw.get("labels", {})},
                 "spec": {"taints": kw.get("taints", [])},
                 "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}}})
    return ni


def _pod(name="p", cpu=None, mem=None, owner=None, **spec):
    req = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}
    meta = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet",
                                    "name": owner, "apiVersion": "apps/v1"}]
    return PodInfo({"metadata": meta, "spec": {"containers": [
        {"name": "c", "resources": {"requests": req}}], **spec}})


def test_least_allocated_prefers_the_emptier_node():
    busy, idle = _node("busy"), _node("idle")
    busy.add_pod(_pod("x", cpu="3", mem="1Gi"))
    p = _pod(cpu="100m", mem="100Mi")
    assert select_host(p, [busy, idle], random.Random(0)) is idle
    s = score_nodes(p, [busy, idle])
    assert s[1] > s[0]


def test_pods_without_requests_count_as_100m_and_200mi_for_scoring():
    ni = _node("n", cpu="1", mem="1000Mi")
    p = _pod()
    assert (p.cpu, p.mem, p.nz_cpu, p.nz_mem) == (0, 0, 100, 200 * 1024 * 1024)
    ni.add_pod(p)
    assert ni.req_cpu == 0 and ni.nz_cpu == 100
    assert run_filters(_pod(cpu="1"), ni) is None      # filters use real requests only


def test_balanced_allocation_breaks_a_least_allocated_tie():
    # both nodes end up with the same LeastAllocated score; only one stays balanced
    a, b = _node("a", cpu="4", mem="4Gi"), _node("b", cpu="4", mem="4Gi")
    a.add_pod(_pod("x", cpu="1", mem="1Gi"))      # 25% / 25%
    b.add_pod(_pod("y", cpu="2", mem="1"))        # 50% / ~0%
    p = _pod(cpu="500m", mem="512Mi")
    assert select_host(p, [b, a], random.Random(0)) is a


def test_prefer_no_schedule_taint_loses_the_tie():
    tainted = _node("t", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}])
    clean = _node("c")
    for seed in range(10):
        assert select_host(_pod(), [tainted, clean], random.Random(seed)) is clean
    tolerant = _pod(tolerations=[{"key": "k", "operator": "Exists"}])
    picks = {select_host(tolerant, [tainted, clean], random.Random(s)).name for s in range(20)}
    assert picks == {"t", "c"}


def test_preferred_node_affinity_wins_the_tie():
    a, b = _node("a", labels={"disk": "ssd"}), _node("b", labels={"disk": "hdd"})
    p = _pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["hdd"]}]}}]}})
    for seed in range(10):
        assert select_host(p, [a, b], random.Random(seed)) is b


def test_same_owner_pods_spread():
    a, b = _node("a"), _node("b")
    a.add_pod(_pod("r1", owner="rs"))
    b.add_pod(_pod("z"))                     # same requests on both nodes, no owner
    for seed in range(10):
        assert select_host(_pod("r2", owner="rs"), [a, b], random.Random(seed)) is b
    # a pod of another owner does not care
    picks = {select_host(_pod("o", owner="other"), [a, b], random.Random(s)).name
             for s in range(30)}
    assert picks == {"a", "b"}


def test_ties_are_broken_by_the_seeded_rng():
    nodes = [_node(f"n{i}") for i in range(5)]
    first = [select_host(_pod(), nodes, random.Random(42)).name for _ in range(3)]
    assert len(set(first)) == 1         # same seed, same choice
    picks = {select_host(_pod(), nodes, random.Random(s)).name for s in range(50)}
    assert len(picks) == 5              # every tied node gets picked by some seed


def test_replicaset_spreads_across_three_nodes(env):
    for n in ("kbox-worker", "kbox-worker2", "kbox-worker3"):
        env.add_node(n)
    for i in range(3):
        env.add_pod(f"web-{i}", cpu="100m", owner="web")
    env.schedule()
    assert sorted(env.node_of(f"web-{i}") for i in range(3)) == \
        ["kbox-worker", "kbox-worker2", "kbox-worker3"]
    for i in range(3, 9):
        env.add_pod(f"web-{i}", cpu="100m", owner="web")
    env.schedule()
    counts: dict[str, int] = {}
    for i in range(9):
        counts[env.node_of(f"web-{i}")] = counts.get(env.node_of(f"web-{i}"), 0) + 1
    assert sorted(counts.values()) == [3, 3, 3]


def test_priority_goes_first(env):
    env.add_node("n1", cpu="1")
    env.add_pod("low", cpu="800m")
    env.add_pod("high", cpu="800m", priority=1000)
    env.schedule()
    assert env.node_of("high") == "n1" and env.node_of("low") is None


# ---- the queue ---------------------------------------------------------------------------
def test_backoff_doubles_to_the_maximum():
    q = SchedulingQueue(FakeClock(), initial_backoff=1, max_backoff=10)
    assert [q.backoff_duration(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_backoff_timing_after_a_move_request():
    clock = FakeClock()
    q = SchedulingQueue(clock, initial_backoff=1, max_backoff=10)
    q.add(_pod("p"))
    qp = q.pop()
    q.add_unschedulable(qp)
    assert q.where("default/p") == UNSCHEDULABLE
    clock.advance(0.5)
    q.move_all("NodeAdd")                # still within the first 1 s back-off
    assert q.where("default/p") == BACKOFF
    assert q.pop() is None
    clock.advance(0.49)
    assert q.pop() is None
    clock.advance(0.02)
    qp = q.pop()
    assert qp is not None and qp.attempts == 2
    # a move request during the attempt: the failure goes to backoffQ (2 s), not unschedulable
    q.move_all("NodeUpdate")
    q.add_unschedulable(qp)
    assert q.where("default/p") == BACKOFF
    clock.advance(1.99)
    assert q.pop() is None
    clock.advance(0.02)
    assert q.pop().attempts == 3


def test_unschedulable_pods_are_flushed_after_the_timeout():
    clock = FakeClock()
    q = SchedulingQueue(clock, max_unschedulable=60)
    q.add(_pod("p"))
    q.add_unschedulable(q.pop())
    clock.advance(59)
    assert q.pop() is None and q.where("default/p") == UNSCHEDULABLE
    clock.advance(1.5)
    assert q.pop() is not None


def test_pop_waits_on_the_fake_clock():
    import threading
    clock = FakeClock()
    q = SchedulingQueue(clock, initial_backoff=1)
    q.add(_pod("p"))
    qp = q.pop()
    q.move_all()
    q.add_unschedulable(qp)             # -> backoff for 1 s
    got = []
    t = threading.Thread(target=lambda: got.append(q.pop(timeout=None)))
    t.start()
    t.join(0.1)
    assert not got
    clock.advance(1.0)
    t.join(2)
    assert got and got[0].key == "default/p"
    q.close()


def test_backoff_in_the_scheduler(env):
    env.add_node("n1", cpu="1")
    env.add_pod("p", cpu="2")
    env.schedule()
    env.clock.advance(0.5)
    env.client.patch("nodes", "n1", {"status": {"allocatable": {"cpu": "4"}}}, "merge",
                     subresource="status")    # allocatable up
    env.schedule()
    assert env.node_of("p") is None and env.where("p") == BACKOFF
    env.clock.advance(0.6)
    env.schedule()
    assert env.node_of("p") == "n1"


def test_pod_update_requeues_an_unschedulable_pod(env):
    env.add_node("n1", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    env.add_pod("p")
    env.schedule()
    assert env.where("p") == UNSCHEDULABLE
    env.clock.advance(2)
    pod = env.client.get("pods", "p", NS)
    pod["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    env.client.update("pods", pod, NS)
    env.schedule()
    assert env.node_of("p") == "n1"


def test_deleted_pending_pod_leaves_the_queue(env):
    env.add_pod("p")
    env.schedule()
    env.client.delete("pods", "p", NS, grace_period_seconds=0)
    env.pump()
    assert env.where("p") is None and len(env.sched.queue) == 0


# ---- percentageOfNodesToScore ----------------------------------------------------------
def test_num_feasible_nodes_to_find(env):
    f = env.sched.num_feasible_nodes_to_find
    assert f(50) == 50 and f(100) == 100
    assert f(1000) == 420             # 50% - 1000/125 = 42%
    assert f(5000) == 500             # 10%
    assert f(6000) == 300             # 50 - 48 = 2% -> at least 5%
    assert f(150) == 100              # never fewer than 100
    env.sched.percentage_of_nodes_to_score = 100
    assert f(5000) == 5000


def test_round_robin_start_and_partial_scoring():
    env = SchedEnv()
    try:
        for i in range(200):
            env.add_node(f"n{i:03d}")
        env.add_pod("a")
        env.schedule()
        # 200 nodes: 48% -> 100 feasible nodes wanted; the next pod starts after them
        assert env.sched._next_start == 100
        assert env.node_of("a") < "n100"
        env.add_pod("b")
        env.schedule()
        assert env.node_of("b") >= "n100"
        assert env.sched._next_start == 0
    finally:
        env.close()


def test_threaded_run_binds_everything():
    import time
    env = SchedEnv()
    try:
        for i in range(3):
            env.add_node(f"n{i}")
        for i in range(30):
            env.add_pod(f"p{i}", cpu="10m", owner="rs")
        env.pump()
        env.sched.start()
        deadline = time.monotonic() + 10
        while env.sched.scheduled < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
            env.pump()
        env.sched.stop()
        assert env.sched.scheduled == 30
        nodes = [env.node_of(f"p{i}") for i in range(30)]
        assert sorted(nodes.count(f"n{i}") for i in range(3)) == [10, 10, 10]
    finally:
        env.close()
