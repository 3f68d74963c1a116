"""Job controller: completions and parallelism, backoff limit, deadline, TTL."""

from __future__ import annotations

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.api.errors import ApiError
from kbox.clock import iso_time
from kbox.controllers.job import JobController


@pytest.fixture
def env():
    e = Env()
    e.jc = e.add(JobController)
    e.start()
    yield e
    e.close()


def job(name="pi", **spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "perl"}]}},
                     **spec}}


def active_pods(env):
    return sorted((p for p in env.pods() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                   and not p["metadata"].get("deletionTimestamp")), key=lambda p: p["metadata"]["name"])


def finish(env, pod, phase="Succeeded"):
    env.client.patch("pods", pod["metadata"]["name"], {"status": {
        "phase": phase, "conditions": [{"type": "Ready", "status": "False",
                                        "lastTransitionTime": iso_time(env.clock.now())}]}},
        "merge", NS, subresource="status")


def status(env, name="pi"):
    return env.client.get("jobs", name, NS).get("status") or {}


def test_completions_3_parallelism_2(env):
    j = env.client.create("jobs", job(completions=3, parallelism=2), NS)
    env.settle()
    pods = active_pods(env)
    assert len(pods) == 2
    p = pods[0]
    assert p["metadata"]["ownerReferences"][0]["uid"] == j["metadata"]["uid"]
    assert p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert p["metadata"]["labels"]["app"] == "pi"
    st = status(env)
    assert st["active"] == 2 and st["startTime"] and "succeeded" not in st
    msgs = {e["message"] for e in env.events("SuccessfulCreate")}
    assert msgs == {f"Created pod: {q['metadata']['name']}" for q in pods}
    finish(env, pods[0])
    env.settle()
    assert len(active_pods(env)) == 2          # one more: 1 done + 2 running = 3
    assert status(env)["succeeded"] == 1
    finish(env, pods[1])
    env.settle()
    assert len(active_pods(env)) == 1          # only one completion still missing
    env.clock.advance(5)
    finish(env, active_pods(env)[0])
    env.settle()
    st = status(env)
    assert st["succeeded"] == 3 and "active" not in st
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert st["completionTime"]
    [ev] = env.events("Completed")
    assert ev["message"] == "Job completed" and ev["source"]["component"] == "job-controller"
    assert len(env.pods()) == 3


def test_backoff_limit_with_doubling_recreate_delay(env):
    env.client.create("jobs", job(backoffLimit=2), NS)
    env.settle()
    [p] = active_pods(env)
    finish(env, p, "Failed")
    env.settle()
    assert active_pods(env) == []              # replacement waits 10 s
    assert status(env)["failed"] == 1
    env.advance(9)
    assert active_pods(env) == []
    env.advance(1.5)
    [p] = active_pods(env)
    finish(env, p, "Failed")
    env.settle()
    env.advance(19)
    assert active_pods(env) == []              # 20 s after the second failure
    env.advance(1.5)
    [p] = active_pods(env)
    finish(env, p, "Failed")
    env.settle()
    st = status(env)
    assert st["failed"] == 3
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    [ev] = env.events("BackoffLimitExceeded")
    assert ev["type"] == "Warning"
    env.advance(100)
    assert active_pods(env) == []


def test_active_deadline(env):
    env.client.create("jobs", job(activeDeadlineSeconds=30, parallelism=2, completions=4), NS)
    env.settle()
    assert len(active_pods(env)) == 2
    env.advance(31)
    st = status(env)
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert active_pods(env) == []
    assert env.events("DeadlineExceeded")


def test_ttl_after_finished_deletes_the_job(env):
    env.client.create("jobs", job(ttlSecondsAfterFinished=60), NS)
    env.settle()
    finish(env, active_pods(env)[0])
    env.settle()
    assert any(c["type"] == "Complete" for c in status(env)["conditions"])
    env.advance(59)
    env.client.get("jobs", "pi", NS)
    env.advance(2)
    with pytest.raises(ApiError):
        env.client.get("jobs", "pi", NS)


def test_suspend_deletes_running_pods(env):
    env.client.create("jobs", job(parallelism=2, completions=2), NS)
    env.settle()
    env.client.patch("jobs", "pi", {"spec": {"suspend": True}}, "merge", NS)
    env.settle()
    assert active_pods(env) == []
    assert any(c["type"] == "Suspended" and c["status"] == "True" for c in status(env)["conditions"])
    env.client.patch("jobs", "pi", {"spec": {"suspend": False}}, "merge", NS)
    env.settle()
    assert len(active_pods(env)) == 2


def test_indexed_job_one_pod_per_index(env):
    from kbox.controllers.job import format_indexes, parse_indexes
    env.client.create("jobs", job("idx", completions=4, parallelism=2, completionMode="Indexed"), NS)
    env.settle()
    pods = active_pods(env)
    idx = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(idx) == ["0", "1"]
    p0 = idx["0"]
    assert p0["metadata"]["name"].startswith("idx-0-")
    assert p0["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "0"
    assert p0["spec"]["hostname"] == "idx-0"
    [env_var] = p0["spec"]["containers"][0]["env"]
    assert env_var["name"] == "JOB_COMPLETION_INDEX"
    assert env_var["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    # index 1 succeeds, index 0 fails: after the failure backoff (which holds every new
    # pod back, as kube's does) 0 is retried with the same index and 2 starts
    finish(env, idx["1"])
    finish(env, idx["0"], "Failed")
    env.settle()
    st = status(env, "idx")
    assert st["completedIndexes"] == "1" and st["succeeded"] == 1 and st["failed"] == 1
    assert active_pods(env) == []
    env.advance(10.5)
    running = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
               for p in active_pods(env)}
    assert sorted(running) == ["0", "2"]
    for p in running.values():
        finish(env, p)
    env.settle()
    [p3] = active_pods(env)
    assert p3["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "3"
    finish(env, p3)
    env.settle()
    st = status(env, "idx")
    assert st["completedIndexes"] == "0-3" and st["succeeded"] == 4
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in st["conditions"])
    assert format_indexes({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert format_indexes({0, 1}) == "0,1"
    assert parse_indexes("1,3-5,7", 6) == {1, 3, 4, 5}
