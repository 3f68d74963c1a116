"""The STATUS / READY / RESTARTS columns of a pod, computed as kubectl computes them,
and other per-kind cells of kbox/api/tables.py."""

from __future__ import annotations

import pytest

from kbox.api.tables import pod_status, table_for

T = "2023-11-14T22:00:00Z"


def pod(*, phase="Running", containers=1, statuses=(), init=(), init_statuses=(), conditions=(),
        deleting=False, reason=None):
    p = {"metadata": {"name": "p"},
         "spec": {"containers": [{"name": f"c{i}"} for i in range(containers)],
                  "initContainers": list(init)},
         "status": {"phase": phase, "containerStatuses": list(statuses),
                    "initContainerStatuses": list(init_statuses), "conditions": list(conditions)}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = T
    if reason:
        p["status"]["reason"] = reason
    return p


running = {"name": "c0", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": T}}}
not_ready = {"name": "c0", "ready": False, "restartCount": 0, "state": {"running": {"startedAt": T}}}


def waiting(reason, restarts=0):
    return {"name": "c0", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": T}} if restarts else {}}


def terminated(code, reason=None, signal=None, name="c0"):
    t = {"exitCode": code, "finishedAt": T}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": t}}


@pytest.mark.parametrize("p,want", [
    (pod(statuses=[running]), ("Running", 1, 1, 0)),
    (pod(statuses=[not_ready]), ("Running", 0, 1, 0)),
    (pod(phase="Pending"), ("Pending", 0, 1, 0)),
    (pod(phase="Pending", statuses=[waiting("ContainerCreating")]), ("ContainerCreating", 0, 1, 0)),
    (pod(statuses=[waiting("CrashLoopBackOff", 5)]), ("CrashLoopBackOff", 0, 1, 5)),
    (pod(phase="Pending", statuses=[waiting("ImagePullBackOff")]), ("ImagePullBackOff", 0, 1, 0)),
    (pod(phase="Pending", statuses=[waiting("ErrImagePull")]), ("ErrImagePull", 0, 1, 0)),
    (pod(phase="Succeeded", statuses=[terminated(0, "Completed")]), ("Completed", 0, 1, 0)),
    (pod(phase="Failed", statuses=[terminated(1, "Error")]), ("Error", 0, 1, 0)),
    (pod(phase="Failed", statuses=[terminated(137, "OOMKilled")]), ("OOMKilled", 0, 1, 0)),
    (pod(phase="Failed", statuses=[terminated(2)]), ("ExitCode:2", 0, 1, 0)),
    (pod(phase="Failed", statuses=[terminated(137, signal=9)]), ("Signal:9", 0, 1, 0)),
    (pod(statuses=[running], deleting=True), ("Terminating", 1, 1, 0)),
    (pod(phase="Succeeded", statuses=[terminated(0, "Completed")], deleting=True), ("Completed", 0, 1, 0)),
    (pod(statuses=[running], deleting=True, reason="NodeLost"), ("Unknown", 1, 1, 0)),
    (pod(phase="Failed", reason="Evicted"), ("Evicted", 0, 1, 0)),
    (pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
     ("SchedulingGated", 0, 1, 0)),
    # init containers
    (pod(phase="Pending", init=[{"name": "i0"}],
         init_statuses=[{"name": "i0", "restartCount": 0, "state": {"running": {}}}]), ("Init:0/1", 0, 1, 0)),
    (pod(phase="Pending", init=[{"name": "i0"}, {"name": "i1"}],
         init_statuses=[terminated(0, "Completed", name="i0"),
                        {"name": "i1", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]),
     ("Init:1/2", 0, 1, 0)),
    (pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[terminated(1, "Error", name="i0")]),
     ("Init:Error", 0, 1, 0)),
    (pod(phase="Pending", init=[{"name": "i0"}],
         init_statuses=[{"name": "i0", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
     ("Init:CrashLoopBackOff", 0, 1, 3)),
    (pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[terminated(2, name="i0")]),
     ("Init:ExitCode:2", 0, 1, 0)),
    # a sidecar (restartable init container) counts in READY
    (pod(init=[{"name": "side", "restartPolicy": "Always"}],
         init_statuses=[{"name": "side", "ready": True, "started": True, "restartCount": 0,
                         "state": {"running": {}}}], statuses=[running],
         conditions=[{"type": "Initialized", "status": "True"}]), ("Running", 2, 2, 0)),
    # one container done, one still running: Running when the pod is Ready, else NotReady
    (pod(containers=2, statuses=[running, terminated(0, "Completed", name="c1")],
         conditions=[{"type": "Ready", "status": "True"}]), ("Running", 1, 2, 0)),
    (pod(containers=2, statuses=[running, terminated(0, "Completed", name="c1")]), ("NotReady", 1, 2, 0)),
])
def test_pod_status(p, want):
    assert pod_status(p)[:4] == want


def test_restarts_show_when_last_restarted():
    _, cells = table_for("pods")
    p = pod(statuses=[waiting("CrashLoopBackOff", 4)])
    p["metadata"]["creationTimestamp"] = "2023-11-14T21:00:00Z"
    from kbox.clock import parse_time
    row = cells(p, parse_time(T) + 50)
    assert row[:4] == ["p", "0/1", "CrashLoopBackOff", "4 (50s ago)"]


@pytest.mark.parametrize("spec,status,want", [
    ({"completions": 3}, {"succeeded": 2}, "2/3"),
    ({}, {"succeeded": 0}, "0/1"),
    ({"parallelism": 4}, {"succeeded": 1}, "1/1 of 4"),
])
def test_job_completions(spec, status, want):
    _, cells = table_for("jobs")
    job = {"metadata": {"name": "j"}, "spec": spec, "status": status}
    assert cells(job, 0)[2] == want


def test_every_resource_has_columns_with_wide_priorities():
    from kbox.api.resources import RESOURCES
    for r in RESOURCES:
        cols, _ = table_for(r.plural)
        assert cols[0][0] in ("NAME", "LAST SEEN"), r.plural
        assert all(c[2] in (0, 1) for c in cols)


def test_to_table_is_a_meta_k8s_io_table():
    from kbox.api.tables import to_table
    p = pod(statuses=[running])
    p["metadata"]["creationTimestamp"] = T
    t = to_table("pods", [p], 0, resource_version="7")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"]["resourceVersion"] == "7"
    names = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert names[:5] == [("NAME", 0), ("READY", 0), ("STATUS", 0), ("RESTARTS", 0), ("AGE", 0)]
    assert ("NODE", 1) in names
    assert t["rows"][0]["cells"][:3] == ["p", "1/1", "Running"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert to_table("pods", [p], 0, include_object="Object")["rows"][0]["object"] is p
    assert "object" not in to_table("pods", [p], 0, include_object="None")["rows"][0]
