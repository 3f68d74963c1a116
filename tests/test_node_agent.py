"""Node agent (kubelet) on the sim runtime, driven on a FakeClock through NodeEnv.

Default sim delays: pull 0.2 s, create 0.1 s, start 0.2 s, stop 0.1 s; so a
fresh pod runs at t = 0.5 s (pull done 0.2, created 0.3, running 0.5).
"""

from __future__ import annotations

import pytest

from kbox.api.errors import ApiError
from kbox.clock import parse_time
from kbox.node.testing import NodeEnv


@pytest.fixture
def env():
    e = NodeEnv()
    yield e
    e.close()


def state(env, name, container=None, init=False):
    cs = env.cstatus(name, container, init=init)
    (kind, detail), = cs["state"].items()
    return kind, detail.get("reason")


# ---- node registration and heartbeats -------------------------------------------------

def test_node_registers_ready_with_capacity(env):
    node = env.client.get("nodes", "node1")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert not any(k.startswith("node-role.kubernetes.io/") for k in labels)
    st = node["status"]
    assert st["capacity"]["cpu"] == "4"
    assert st["capacity"]["memory"] == "8388608Ki"
    assert st["capacity"]["pods"] == "110"
    assert "ephemeral-storage" in st["capacity"]
    assert st["allocatable"] == st["capacity"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conds[t]["status"] == "False"
    assert {"type": "InternalIP", "address": "172.18.0.2"} in st["addresses"]
    assert {"type": "Hostname", "address": "node1"} in st["addresses"]
    info = st["nodeInfo"]
    assert info["kubeletVersion"] == "v1.32.0-kbox"
    assert info["containerRuntimeVersion"].startswith("sim://")
    assert info["machineID"] and info["systemUUID"] and info["bootID"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


def test_lease_renewed_on_interval(env):
    lease = env.client.get("leases", "node1", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "node1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert parse_time(lease["spec"]["renewTime"]) == env.t0
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    env.advance_to(2.0)
    lease = env.client.get("leases", "node1", "kube-node-lease")
    assert parse_time(lease["spec"]["renewTime"]) == env.t0 + 2.0
    env.advance_to(7.0)
    lease = env.client.get("leases", "node1", "kube-node-lease")
    assert parse_time(lease["spec"]["renewTime"]) == env.t0 + 6.0


def test_stop_node_stops_lease_and_start_node_resumes(env):
    env.create_pod("web")
    env.advance_to(1)
    env.pool.stop_node("node1")
    env.advance_to(20)
    lease = env.client.get("leases", "node1", "kube-node-lease")
    assert parse_time(lease["spec"]["renewTime"]) == env.t0 + 0.0 or \
        parse_time(lease["spec"]["renewTime"]) <= env.t0 + 1.0
    # the kubelet API is unreachable while the node is down
    with pytest.raises(ApiError) as e:
        list(env.api.logs("web", "default"))
    assert "10250" in str(e.value)
    with pytest.raises(ApiError):
        env.pool.agents["node1"].stats()
    # something else marks the node NotReady meanwhile (the lifecycle controller)
    node = env.client.get("nodes", "node1")
    for c in node["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"], c["reason"] = "Unknown", "NodeStatusUnknown"
    env.client.update_status("nodes", node)
    env.pool.start_node("node1")
    env.advance_to(21)
    lease = env.client.get("leases", "node1", "kube-node-lease")
    assert parse_time(lease["spec"]["renewTime"]) >= env.t0 + 20
    ready = next(c for c in env.client.get("nodes", "node1")["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    # the sim container kept running through the outage
    assert state(env, "web") == ("running", None)
    assert env.cstatus("web")["restartCount"] == 0


def test_kill_node_kills_containers(env):
    env.create_pod("web")
    env.advance_to(1)
    env.pool.kill_node("node1")
    env.advance_to(5)
    env.pool.start_node("node1")
    env.advance_to(6)
    cs = env.cstatus("web")
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["restartCount"] == 1


def test_remove_node_deletes_node_and_lease(env):
    env.create_pod("web")
    env.advance_to(1)
    env.pool.remove_node("node1")
    assert "node1" not in env.pool.agents
    assert "node1" not in env.api.node_endpoints
    with pytest.raises(ApiError):
        env.client.get("nodes", "node1")
    with pytest.raises(ApiError):
        env.client.get("leases", "node1", "kube-node-lease")


def test_unknown_runtime_name_is_refused_with_the_choices():
    from kbox.runtime import RuntimeError_, make_runtime
    from kbox.config import ClusterConfig
    with pytest.raises(RuntimeError_, match=r"unknown runtime 'rkt' \(choose sim or docker\)"):
        make_runtime("rkt", node_name="n", clock=None, config=ClusterConfig())


# ---- pod lifecycle ----------------------------------------------------------------------

def test_pod_pending_creating_running_ready(env):
    env.create_pod("web")
    p = env.pod("web")
    assert p["status"]["phase"] == "Pending"
    assert state(env, "web") == ("waiting", "ContainerCreating")
    assert p["status"]["hostIP"] == "172.18.0.2"
    assert p["status"]["podIP"].startswith("10.244.0.")
    assert p["status"]["podIPs"] == [{"ip": p["status"]["podIP"]}]
    assert parse_time(p["status"]["startTime"]) == env.t0
    assert env.condition("web", "PodReadyToStartContainers") == "True"
    assert env.condition("web", "Ready") == "False"
    env.advance_to(0.49)
    assert state(env, "web") == ("waiting", "ContainerCreating")
    env.advance_to(0.5)
    p = env.pod("web")
    assert p["status"]["phase"] == "Running"
    cs = env.cstatus("web")
    assert cs["ready"] is True and cs["started"] is True
    assert cs["containerID"].startswith("sim://")
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert env.condition("web", "Ready") == "True"
    assert env.condition("web", "ContainersReady") == "True"
    assert env.condition("web", "Initialized") == "True"
    msgs = env.messages(name="web")
    assert msgs == ['Pulling image "nginx:1.27"',
                    'Successfully pulled image "nginx:1.27" in 200ms (200ms including waiting). '
                    'Image size: 0 bytes.',
                    "Created container: web", "Started container web"]
    ev = env.events("Started")[0]
    assert ev["source"] == {"component": "kubelet", "host": "node1"}
    # a second pod finds the image present
    env.create_pod("web2")
    assert 'Container image "nginx:1.27" already present on machine' in env.messages(name="web2")


def test_status_written_only_on_change(env):
    env.create_pod("web")
    env.advance_to(1)
    rv = env.pod("web")["metadata"]["resourceVersion"]
    env.advance_to(30)
    assert env.pod("web")["metadata"]["resourceVersion"] == rv


def test_init_containers_run_in_order(env):
    env.create_pod("app", init=[{"name": "one", "image": "busybox:1.36"},
                                {"name": "two", "image": "busybox:1.36"}],
                   annotations={"kbox.io/sim-run-seconds.one": "2", "kbox.io/sim-run-seconds.two": "3"})
    assert state(env, "app", "one", init=True) == ("waiting", "PodInitializing")
    assert state(env, "app", "two", init=True) == ("waiting", "PodInitializing")
    assert state(env, "app", "web") == ("waiting", "PodInitializing")
    env.advance_to(0.5)
    assert state(env, "app", "one", init=True) == ("running", None)
    assert state(env, "app", "two", init=True) == ("waiting", "PodInitializing")
    assert env.pod("app")["status"]["phase"] == "Pending"
    assert env.condition("app", "Initialized") == "False"
    env.advance_to(2.5)                     # one exits 0 at 2.5; two starts (present image) at 2.8
    assert state(env, "app", "one", init=True) == ("terminated", "Completed")
    env.advance_to(2.8)
    assert state(env, "app", "two", init=True) == ("running", None)
    env.advance_to(5.8)
    assert state(env, "app", "two", init=True) == ("terminated", "Completed")
    assert env.condition("app", "Initialized") == "True"
    env.advance_to(6.3)
    assert state(env, "app", "web") == ("running", None)
    assert env.pod("app")["status"]["phase"] == "Running"
    created = [m for m in env.messages(name="app") if m.startswith("Created")]
    assert created == ["Created container: one", "Created container: two", "Created container: web"]


def test_init_container_failure_backs_off(env):
    env.create_pod("app", init=[{"name": "setup", "image": "busybox:1.36"}],
                   annotations={"kbox.io/sim-exit-code.setup": "1"})
    env.advance_to(1.5)          # exits 1 at 1.5 → restarted at once
    cs = env.cstatus("app", "setup", init=True)
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    env.advance_to(2.8)          # second instance exits at 2.8 → back-off 10s
    cs = env.cstatus("app", "setup", init=True)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert env.pod("app")["status"]["phase"] == "Pending"


def test_init_container_failure_with_never_fails_pod(env):
    env.create_pod("app", init=[{"name": "setup", "image": "busybox:1.36"}], restart_policy="Never",
                   annotations={"kbox.io/sim-exit-code.setup": "3"})
    env.advance_to(2)
    p = env.pod("app")
    assert p["status"]["phase"] == "Failed"
    assert state(env, "app", "setup", init=True) == ("terminated", "Error")
    assert state(env, "app", "web") == ("waiting", "PodInitializing")


def test_crashloop_backoff_10_20_40(env):
    env.create_pod("crash", annotations={"kbox.io/sim-exit-code": "1"})
    # instance 0 runs 0.5 → 1.5, exits 1; restarted at once (no back-off yet)
    env.advance_to(1.5)
    cs = env.cstatus("crash")
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert env.pod("crash")["status"]["phase"] == "Running"
    # instance 1: created 1.6, running 1.8, exits 2.8 → back-off 10s until 12.8
    env.advance_to(2.8)
    cs = env.cstatus("crash")
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    uid = env.pod("crash")["metadata"]["uid"]
    assert cs["state"]["waiting"]["message"] == \
        f"back-off 10s restarting failed container=web pod=crash_default({uid})"
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert env.pod("crash")["status"]["phase"] == "Running"
    assert env.condition("crash", "Ready") == "False"
    assert f"Back-off restarting failed container web in pod crash_default({uid})" in env.messages("BackOff")
    env.advance_to(12.79)
    assert env.cstatus("crash")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    env.advance_to(12.8)
    assert env.cstatus("crash")["restartCount"] == 2
    # instance 2: running 13.1, exits 14.1 → back-off 20s until 34.1
    env.advance_to(14.1)
    cs = env.cstatus("crash")
    assert cs["state"]["waiting"]["message"].startswith("back-off 20s ")
    env.advance_to(34.09)
    assert env.cstatus("crash")["restartCount"] == 2
    env.advance_to(34.1)
    assert env.cstatus("crash")["restartCount"] == 3
    # instance 3: running 34.4, exits 35.4 → back-off 40s
    env.advance_to(35.4)
    assert env.cstatus("crash")["state"]["waiting"]["message"].startswith("back-off 40s ")
    env.advance_to(75.39)
    assert env.cstatus("crash")["restartCount"] == 3
    env.advance_to(75.4)
    assert env.cstatus("crash")["restartCount"] == 4


def test_backoff_caps_at_max():
    from kbox.config import ClusterConfig
    cfg = ClusterConfig.model_validate({"timings": {"restartBackoffBase": 10, "restartBackoffMax": 30}})
    env = NodeEnv(cfg)
    try:
        env.create_pod("crash", annotations={"kbox.io/sim-exit-code": "1"})
        env.advance_to(200)
        msgs = [c["state"]["waiting"]["message"] for c in [env.cstatus("crash")]
                if "waiting" in c["state"]]
        assert all(m.startswith("back-off 30s") for m in msgs)
    finally:
        env.close()


def test_restart_never_failed(env):
    env.create_pod("once", restart_policy="Never", annotations={"kbox.io/sim-exit-code": "2"})
    env.advance_to(1.5)
    p = env.pod("once")
    assert p["status"]["phase"] == "Failed"
    t = env.cstatus("once")["state"]["terminated"]
    assert t["exitCode"] == 2 and t["reason"] == "Error"
    assert t["containerID"].startswith("sim://")
    assert env.cstatus("once")["restartCount"] == 0
    ready = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    assert env.condition("once", "PodReadyToStartContainers") == "False"
    env.advance_to(60)
    assert env.cstatus("once")["restartCount"] == 0


def test_restart_on_failure(env):
    env.create_pod("job", restart_policy="OnFailure", annotations={"kbox.io/sim-exit-code": "1"})
    env.advance_to(1.5)
    assert env.pod("job")["status"]["phase"] == "Running"
    assert env.cstatus("job")["restartCount"] == 1


def test_job_like_pod_succeeds(env):
    env.create_pod("job", restart_policy="OnFailure", annotations={"kbox.io/sim-run-seconds": "5"})
    env.advance_to(5.49)
    assert env.pod("job")["status"]["phase"] == "Running"
    env.advance_to(5.5)
    p = env.pod("job")
    assert p["status"]["phase"] == "Succeeded"
    t = env.cstatus("job")["state"]["terminated"]
    assert t["exitCode"] == 0 and t["reason"] == "Completed"
    assert parse_time(t["startedAt"]) == int(env.t0 + 0.5) and t["finishedAt"]


def test_oom_killed(env):
    env.create_pod("oom", restart_policy="Never", annotations={"kbox.io/sim-oom": "true"})
    env.advance_to(1.5)
    t = env.cstatus("oom")["state"]["terminated"]
    assert (t["exitCode"], t["reason"]) == (137, "OOMKilled")
    assert env.pod("oom")["status"]["phase"] == "Failed"


def test_per_container_annotation(env):
    env.create_pod("two", containers=[{"name": "web", "image": "nginx:1.27"},
                                      {"name": "sidecar", "image": "busybox:1.36"}],
                   annotations={"kbox.io/sim-exit-code.sidecar": "1"}, restart_policy="Never")
    env.advance_to(3)
    assert state(env, "two", "web") == ("running", None)
    assert state(env, "two", "sidecar") == ("terminated", "Error")
    assert env.pod("two")["status"]["phase"] == "Running"


def test_slow_start(env):
    env.create_pod("slow", annotations={"kbox.io/sim-start-seconds": "3"})
    env.advance_to(3.2)
    assert state(env, "slow") == ("waiting", "ContainerCreating")
    env.advance_to(3.3)
    assert state(env, "slow") == ("running", None)


# ---- probes -------------------------------------------------------------------------------

def test_liveness_failure_restarts_with_events(env):
    probe = {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 10, "failureThreshold": 3}
    env.create_pod("live", containers=[{"name": "web", "image": "nginx:1.27", "livenessProbe": probe}],
                   annotations={"kbox.io/sim-liveness": "fail"})
    # probes at 0.5, 10.5, 20.5 fail → killed at 20.5; SIGTERM takes 0.1 s → exits 20.6, restarted
    env.advance_to(20.4)
    assert env.cstatus("live")["restartCount"] == 0
    assert len(env.events("Unhealthy")) == 1 and env.events("Unhealthy")[0]["count"] == 2
    env.advance_to(20.5)
    assert "Container web failed liveness probe, will be restarted" in env.messages("Killing")
    assert env.messages("Unhealthy") == ["Liveness probe failed: HTTP probe failed with statuscode: 500"]
    assert env.events("Unhealthy")[0]["type"] == "Warning"
    env.advance_to(20.6)
    cs = env.cstatus("live")
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 143


def test_liveness_fail_after(env):
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 5, "failureThreshold": 1}
    env.create_pod("live", containers=[{"name": "web", "image": "nginx:1.27", "livenessProbe": probe}],
                   annotations={"kbox.io/sim-liveness": "fail-after=10"})
    env.advance_to(10.4)
    assert env.cstatus("live")["restartCount"] == 0      # probes at 0.5, 5.5 pass
    env.advance_to(10.6)                                 # 10.5 fails → killed, exits 10.6
    assert env.cstatus("live")["restartCount"] == 1


def test_readiness_failure_keeps_pod_unready(env):
    probe = {"tcpSocket": {"port": 80}, "periodSeconds": 5}
    env.create_pod("rdy", containers=[{"name": "web", "image": "nginx:1.27", "readinessProbe": probe}],
                   annotations={"kbox.io/sim-readiness": "fail"})
    env.advance_to(30)
    p = env.pod("rdy")
    assert p["status"]["phase"] == "Running"
    cs = env.cstatus("rdy")
    assert cs["ready"] is False and cs["started"] is True
    assert env.condition("rdy", "Ready") == "False"
    assert env.condition("rdy", "ContainersReady") == "False"
    assert env.messages("Unhealthy") == ["Readiness probe failed: dial tcp 10.244.0.2:80: connect: connection refused"] \
        or env.messages("Unhealthy")[0].startswith("Readiness probe failed: dial tcp")
    assert cs["restartCount"] == 0


def test_readiness_initial_delay_and_success(env):
    probe = {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 5, "periodSeconds": 10}
    env.create_pod("rdy", containers=[{"name": "web", "image": "nginx:1.27", "readinessProbe": probe}])
    env.advance_to(5.4)
    assert env.cstatus("rdy")["ready"] is False
    env.advance_to(5.5)
    assert env.cstatus("rdy")["ready"] is True
    assert env.condition("rdy", "Ready") == "True"


def test_readiness_fail_after_turns_unready(env):
    probe = {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10, "failureThreshold": 3}
    env.create_pod("rdy", containers=[{"name": "web", "image": "nginx:1.27", "readinessProbe": probe}],
                   annotations={"kbox.io/sim-readiness": "fail-after=10"})
    env.advance_to(0.5)
    assert env.condition("rdy", "Ready") == "True"
    env.advance_to(30.4)                 # failures at 10.5 and 20.5: still under the threshold
    assert env.condition("rdy", "Ready") == "True"
    env.advance_to(30.5)                 # third failure
    assert env.condition("rdy", "Ready") == "False"


def test_startup_probe_gates_started(env):
    sp = {"exec": {"command": ["true"]}, "periodSeconds": 5, "failureThreshold": 2}
    env.create_pod("st", containers=[{"name": "web", "image": "nginx:1.27", "startupProbe": sp}],
                   annotations={"kbox.io/sim-startup": "fail"})
    env.advance_to(0.5)
    assert env.cstatus("st")["started"] is False
    assert env.cstatus("st")["ready"] is False
    env.advance_to(5.6)                  # failures at 0.5 and 5.5 → killed
    assert "Container web failed startup probe, will be restarted" in env.messages("Killing")
    assert env.cstatus("st")["restartCount"] == 1


# ---- images ---------------------------------------------------------------------------------

def test_image_pull_failure_then_backoff(env):
    env.create_pod("bad", image="nginx:does-not-exist")
    cs = env.cstatus("bad")
    assert cs["state"]["waiting"]["reason"] == "ErrImagePull"
    assert "pull access denied for nginx, repository does not exist or may require 'docker login'" \
        in cs["state"]["waiting"]["message"]
    assert env.pod("bad")["status"]["phase"] == "Pending"
    assert any(m.startswith('Failed to pull image "nginx:does-not-exist": ') for m in env.messages("Failed"))
    assert "Error: ErrImagePull" in env.messages("Failed")
    env.advance_to(1)
    assert env.cstatus("bad")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert 'Back-off pulling image "nginx:does-not-exist"' in env.messages("BackOff")
    assert "Error: ImagePullBackOff" in env.messages("Failed")
    env.advance_to(10)                   # retry at 10 → fails again, next retry at 30
    assert env.cstatus("bad")["state"]["waiting"]["reason"] == "ErrImagePull"
    env.advance_to(11)
    assert env.cstatus("bad")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    n = env.events("Pulling")[0]["count"]
    env.advance_to(29.9)
    assert env.events("Pulling")[0]["count"] == n
    env.advance_to(30)
    assert env.events("Pulling")[0]["count"] == n + 1


def test_sim_pull_annotation_and_never_policy(env):
    env.create_pod("p1", annotations={"kbox.io/sim-pull": "fail"})
    assert env.cstatus("p1")["state"]["waiting"]["reason"] == "ErrImagePull"
    env.create_pod("p2", containers=[{"name": "web", "image": "redis:7", "imagePullPolicy": "Never"}])
    w = env.cstatus("p2")["state"]["waiting"]
    assert w["reason"] == "ErrImageNeverPull"
    assert w["message"] == 'Container image "redis:7" is not present with pull policy of Never'


def test_pull_policy_always_pulls_every_time(env):
    env.create_pod("a1", containers=[{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "Always"}])
    env.create_pod("a2", containers=[{"name": "web", "image": "nginx:1.27", "imagePullPolicy": "Always"}])
    assert len(env.messages("Pulling", name="a2")) == 1


# ---- deletion -----------------------------------------------------------------------------

def test_graceful_delete_removes_pod_after_stop_delay(env):
    env.create_pod("web")
    env.advance_to(1)
    env.client.delete("pods", "web", "default")
    env.settle()
    assert env.pod("web")["metadata"]["deletionTimestamp"]
    assert "Stopping container web" in env.messages("Killing")
    env.advance_to(1.09)
    env.pod("web")
    env.advance_to(1.1)
    with pytest.raises(ApiError) as e:
        env.pod("web")
    assert e.value.code == 404
    assert env.pool.agents["node1"].records == {}


def test_delete_ignoring_sigterm_takes_grace_period(env):
    env.create_pod("stub", annotations={"kbox.io/sim-ignore-sigterm": "true"}, grace=5)
    env.advance_to(1)
    env.client.delete("pods", "stub", "default")
    env.settle()
    env.advance_to(5.9)
    assert env.pod("stub")["metadata"]["deletionTimestamp"]
    env.advance_to(6)
    with pytest.raises(ApiError):
        env.pod("stub")


def test_force_delete_forgets_pod(env):
    env.create_pod("web")
    env.advance_to(1)
    env.client.delete("pods", "web", "default", grace_period_seconds=0)
    env.settle()
    assert env.pool.agents["node1"].records == {}
    assert env.pool.agents["node1"].runtime.list_containers() == []


def test_pod_deleted_while_node_down_is_cleaned_on_start(env):
    env.create_pod("web")
    env.advance_to(1)
    env.pool.stop_node("node1")
    env.client.delete("pods", "web", "default", grace_period_seconds=0)
    env.settle()
    assert "default/web" in env.pool.agents["node1"].records
    env.pool.start_node("node1")
    env.settle()
    assert env.pool.agents["node1"].records == {}


# ---- logs, exec, stats through the API server -----------------------------------------------

def test_logs_current_and_previous(env):
    env.create_pod("crash", containers=[{"name": "web", "image": "busybox:1.36",
                                          "command": ["sh", "-c", "sleep 3; exit 1"]}],
                   annotations={"kbox.io/sim-run-seconds": "12", "kbox.io/sim-exit-code": "1"})
    with pytest.raises(ApiError) as e:
        list(env.api.logs("crash", "default"))
    assert "is waiting to start: ContainerCreating" in str(e.value)
    env.advance_to(11)
    lines = list(env.api.logs("crash", "default"))
    assert lines[0] == "web: started image busybox:1.36 command: sh -c sleep 3; exit 1\n"
    assert lines[1:] == ["web: running for 5s\n", "web: running for 10s\n"]
    assert list(env.api.logs("crash", "default", tail_lines=1)) == ["web: running for 10s\n"]
    ts = list(env.api.logs("crash", "default", timestamps=True))
    assert ts[0].startswith("2023-11-14T22:13:20.500000Z ")
    with pytest.raises(ApiError) as e:
        list(env.api.logs("crash", "default", previous=True))
    assert 'previous terminated container "web" in pod "crash" not found' in str(e.value)
    env.advance_to(13)                    # exit at 12.5 → restarted at once
    prev = list(env.api.logs("crash", "default", previous=True))
    assert prev[-1] == "web: exited with code 1\n"
    cur = list(env.api.logs("crash", "default"))
    assert len(cur) == 1 and cur[0].startswith("web: started")


def test_exec(env):
    env.create_pod("web", containers=[{"name": "web", "image": "nginx:1.27",
                                        "env": [{"name": "MODE", "value": "demo"}]}])
    env.advance_to(1)
    assert env.api.exec("web", "default", ["hostname"]) == (0, b"web\n", b"")
    assert env.api.exec("web", "default", ["cat", "/etc/hostname"]) == (0, b"web\n", b"")
    assert env.api.exec("web", "default", ["echo", "hi", "there"]) == (0, b"hi there\n", b"")
    rc, out, _ = env.api.exec("web", "default", ["env"])
    assert rc == 0 and b"MODE=demo\n" in out and b"HOSTNAME=web\n" in out
    assert env.api.exec("web", "default", ["true"])[0] == 0
    assert env.api.exec("web", "default", ["false"])[0] == 1
    assert env.api.exec("web", "default", ["sh", "-c", "exit 3"])[0] == 3
    assert env.api.exec("web", "default", ["ls"])[1].startswith(b"bin\n")
    assert env.api.exec("web", "default", ["curl", "x"]) == (127, b"", b"sh: curl: not found\n")


def test_stats(env):
    env.create_pod("web", annotations={"kbox.io/sim-cpu": "250m", "kbox.io/sim-memory": "64Mi"})
    env.create_pod("req", containers=[{"name": "app", "image": "nginx:1.27",
                                        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}])
    env.advance_to(1)
    s = env.api.node_endpoints["node1"].stats()
    pods = {p["name"]: p for p in s["pods"]}
    assert pods["web"]["containers"] == [{"name": "web", "cpu_nanocores": 250_000_000,
                                          "memory_bytes": 64 * 1024 * 1024}]
    app = pods["req"]["containers"][0]
    assert 0 < app["cpu_nanocores"] < 100_000_000 and 0 < app["memory_bytes"] < 100 * 1024 * 1024
    assert s["node"]["cpu_nanocores"] > 250_000_000
    assert s["node"]["memory_bytes"] > 64 * 1024 * 1024
    from kbox.api import metrics
    nm = metrics.node_metrics(env.api, "node1")
    assert nm["usage"]["cpu"]


def test_pod_cidr_fallback_without_ipam():
    env = NodeEnv(ipam=False)
    try:
        env.create_pod("web")
        assert env.pod("web")["status"].get("podIP") is None
        env.advance_to(2.5)
        assert env.pod("web")["status"]["podIP"].startswith("10.244.0.")
        assert env.pod("web")["status"]["phase"] == "Running"
    finally:
        env.close()


def test_command_and_args_expand_variables_from_the_environment(env):
    c = {"name": "web", "image": "nginx:1.27",
         "command": ["sh", "-c", "echo $(GREETING) $$(GREETING)"],
         "args": ["$(NODE)-$(MISSING)", "$(POD_IP"],
         "env": [{"name": "GREETING", "value": "hello"},
                 {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    env.create_pod("vars", containers=[c])
    env.advance_to(0.5)
    agent = env.pool.agents["node1"]
    rec = agent.records["default/vars"]
    sim = agent.runtime._get(rec.containers["web"].id)
    # defined variables are replaced, $$ escapes, undefined and unclosed ones stay as written
    assert sim.command == ["sh", "-c", "echo hello $(GREETING)", "node1-$(MISSING)", "$(POD_IP"]
    assert env.pod("vars")["spec"]["containers"][0]["command"][2] == "echo $(GREETING) $$(GREETING)"
