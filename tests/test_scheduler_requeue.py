"""Scheduler: which cluster changes bring an unschedulable pod back, and which pods are never tried.

Complements test_scheduler_behaviour.py: taint removal and allocatable growth
unblock a pending pod, a pod losing its node frees the room and is queued
again, finished or terminating pending pods are left alone, and the
PodScheduled condition is written once per distinct message.
"""

from __future__ import annotations

import pytest

try:
    from test_scheduler_env import NS, SchedEnv
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_scheduler_env import NS, SchedEnv

from kbox.api.objects import deep_copy
from kbox.scheduler.queue import UNSCHEDULABLE


@pytest.fixture
def env():
    e = SchedEnv()
    yield e
    e.close()


def test_removing_the_taint_schedules_the_pending_pod(env):
    env.add_node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    env.add_pod("p")
    env.schedule()
    assert env.where("p") == UNSCHEDULABLE
    assert env.events("FailedScheduling", "p")[0]["message"] == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}. preemption: "
        "0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    env.clock.advance(2)                      # past the first back-off
    env.patch_node("n1", {"spec": {"taints": None}})
    env.schedule()
    assert env.node_of("p") == "n1"


def test_prefer_no_schedule_taint_never_blocks(env):
    env.add_node("n1", taints=[{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}])
    env.add_pod("p")
    env.schedule()
    assert env.node_of("p") == "n1"


def test_allocatable_growth_schedules_the_pending_pod(env):
    env.add_node("n1", cpu="1")
    env.add_pod("p", cpu="2")
    env.schedule()
    assert env.where("p") == UNSCHEDULABLE
    env.clock.advance(2)
    env.client.patch("nodes", "n1", {"status": {"allocatable": {"cpu": "4"}}}, "merge",
                     subresource="status")
    env.schedule()
    assert env.node_of("p") == "n1"


def test_move_before_backoff_expires_waits_out_the_backoff(env):
    env.add_node("n1", cpu="1")
    env.add_pod("p", cpu="2")
    env.schedule()
    env.patch_node("n1", {"metadata": {"labels": {"x": "y"}}})   # a move, still no room
    env.schedule()
    env.client.patch("nodes", "n1", {"status": {"allocatable": {"cpu": "4"}}}, "merge",
                     subresource="status")
    env.schedule()
    assert env.node_of("p") is None           # the 2 s back-off of a second failure is not over
    env.clock.advance(2.5)
    env.schedule()
    assert env.node_of("p") == "n1"


def test_condition_written_once_per_message(env):
    env.add_node("n1", cpu="1")
    env.add_pod("big", cpu="2")
    env.schedule()
    rv = env.client.get("pods", "big", NS)["metadata"]["resourceVersion"]
    env.clock.advance(61)                     # periodic flush: tried again, same message
    env.schedule()
    assert env.client.get("pods", "big", NS)["metadata"]["resourceVersion"] == rv
    env.add_node("n2", cpu="1")               # a new node changes the message (0/2)
    env.schedule()
    env.clock.advance(61)
    env.schedule()
    conds = [c for c in env.client.get("pods", "big", NS)["status"]["conditions"]
             if c["type"] == "PodScheduled"]
    assert len(conds) == 1 and conds[0]["message"].startswith("0/2 nodes are available: "
                                                              "2 Insufficient cpu.")


def test_finished_pending_pod_is_not_scheduled(env):
    env.add_node("n1", cpu="1")
    env.add_pod("big", cpu="2")
    env.schedule()
    pod = env.client.get("pods", "big", NS)
    pod["status"]["phase"] = "Failed"
    env.client.update_status("pods", pod, NS)
    env.pump()
    assert env.where("big") is None
    env.client.patch("nodes", "n1", {"status": {"allocatable": {"cpu": "4"}}}, "merge",
                     subresource="status")
    env.advance(120)
    assert env.node_of("big") is None


def test_terminating_pending_pod_is_not_scheduled(env):
    env.add_node("n1")
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "going", "namespace": NS,
                                            "finalizers": ["example.com/hold"]},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, NS)
    env.client.delete("pods", "going", NS)     # held by its finalizer, deletionTimestamp set
    env.schedule()
    pod = env.client.get("pods", "going", NS)
    assert pod["metadata"].get("deletionTimestamp") and not pod["spec"].get("nodeName")


def test_pod_losing_its_node_frees_the_room_and_is_queued_again(env):
    env.add_node("n1", cpu="1")
    env.add_pod("a", cpu="800m")
    env.schedule()
    assert env.node_of("a") == "n1"
    env.add_pod("b", cpu="800m")
    env.schedule()
    assert env.where("b") == UNSCHEDULABLE
    env.clock.advance(2)
    # kbox's API does not let spec.nodeName be cleared; drive the informer handler directly
    bound = env.client.get("pods", "a", NS)
    unbound = deep_copy(bound)
    del unbound["spec"]["nodeName"]
    env.sched._on_pod_update(bound, unbound)
    assert env.sched.node_info("n1").req_cpu == 0
    assert env.where("a") is not None and env.where("b") != UNSCHEDULABLE


def test_other_schedulers_pods_are_ignored(env):
    env.add_node("n1")
    env.add_pod("mine", schedulerName="default-scheduler")
    env.add_pod("theirs", schedulerName="my-scheduler")
    env.schedule()
    assert env.node_of("mine") == "n1" and env.node_of("theirs") is None
    assert env.where("theirs") is None


def test_scheduled_event_text(env):
    env.add_node("kbox-worker2")
    env.add_pod("web-abc")
    env.schedule()
    ev = env.events("Scheduled", "web-abc")
    assert len(ev) == 1 and ev[0]["type"] == "Normal"
    assert ev[0]["message"] == "Successfully assigned default/web-abc to kbox-worker2"
    assert ev[0]["source"]["component"] == "default-scheduler"


# ---- requests: init containers and sidecars -------------------------------------------------
def _c(cpu: str, always: bool = False) -> dict:
    c = {"name": f"c{cpu}", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
    if always:
        c["restartPolicy"] = "Always"
    return c


def test_init_containers_count_by_the_largest_not_the_sum(env):
    env.add_node("n1", cpu="1")
    env.add_pod("p", cpu="500m", initContainers=[_c("900m"), _c("800m")])
    env.schedule()
    assert env.node_of("p") == "n1"
    assert env.sched.node_info("n1").req_cpu == 900


def test_sidecar_init_containers_add_to_the_app_containers(env):
    env.add_node("n1", cpu="1")
    # sidecar 300m runs alongside the 800m app container: 1100m > 1 cpu
    env.add_pod("p", cpu="800m", initContainers=[_c("300m", always=True)])
    env.schedule()
    assert env.node_of("p") is None
    assert env.events("FailedScheduling", "p")[0]["message"].startswith(
        "0/1 nodes are available: 1 Insufficient cpu.")
    # and to every init container started after it: 300m + 600m = 900m > 500m + 300m
    env.client.delete("pods", "p", NS)
    env.add_node("n2", cpu="2")
    env.add_pod("q", cpu="500m", initContainers=[_c("300m", always=True), _c("600m")])
    env.schedule()
    assert env.node_of("q") == "n2"
    assert env.sched.node_info("n2").req_cpu == 900
