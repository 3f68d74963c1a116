"""The sim runtime on its own: the state machine on a FakeClock, annotations, logs, exec, images."""

from __future__ import annotations

import pytest

from kbox.clock import FakeClock
from kbox.config import SimTimings
from kbox.runtime import ContainerNotFound, ImagePullError, RuntimeUnavailable
from kbox.runtime.sim import SimRuntime


def make(annotations=None, container=None):
    clock = FakeClock()
    rt = SimRuntime("n1", clock, SimTimings())
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u1",
                        "annotations": annotations or {}},
           "spec": {"containers": [container or {"name": "c", "image": "busybox:1.36"}]}}
    sb = rt.run_pod_sandbox("u1", "p", "default", "n1", "10.244.0.5")
    return clock, rt, pod, sb


def start(rt, sb, pod, c=None):
    c = c or pod["spec"]["containers"][0]
    cid = rt.create_container(sb, c, pod, {"A": "1"})
    rt.start_container(cid)
    return cid


def test_sandbox_status_and_listing():
    clock, rt, pod, sb = make()
    st = rt.pod_sandbox_status(sb)
    assert (st.pod_uid, st.name, st.namespace, st.node, st.ip, st.state) == \
        ("u1", "p", "default", "n1", "10.244.0.5", "ready")
    cid = start(rt, sb, pod)
    assert [c.id for c in rt.list_containers(sandbox_id=sb)] == [cid]
    assert [c.id for c in rt.list_containers(pod_uid="u1")] == [cid]
    assert rt.list_containers(pod_uid="other") == []
    rt.remove_pod_sandbox(sb)
    assert rt.list_containers() == []


def test_states_follow_the_clock():
    clock, rt, pod, sb = make()
    cid = start(rt, sb, pod)
    assert rt.container_status(cid).state == "created"
    assert rt.next_change(cid) == clock.now() + 0.3       # create 0.1 + start 0.2
    clock.advance(0.3)
    st = rt.container_status(cid)
    assert st.state == "running" and st.started_at == clock.now()
    assert rt.next_change(cid) is None                    # runs forever
    rt.stop_container(cid, 30)
    clock.advance(0.1)
    st = rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 143, "Error")


def test_exit_code_and_run_seconds():
    clock, rt, pod, sb = make({"kbox.io/sim-exit-code": "3"})
    cid = start(rt, sb, pod)
    clock.advance(1.3)
    st = rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 3, "Error")
    clock, rt, pod, sb = make({"kbox.io/sim-run-seconds": "5"})
    cid = start(rt, sb, pod)
    clock.advance(5.29)
    assert rt.container_status(cid).state == "running"
    clock.advance(0.01)
    st = rt.container_status(cid)
    assert (st.exit_code, st.reason) == (0, "Completed")


def test_per_container_override():
    clock, rt, pod, sb = make({"kbox.io/sim-exit-code": "1", "kbox.io/sim-exit-code.c": "0",
                               "kbox.io/sim-run-seconds.c": "2"})
    cid = start(rt, sb, pod)
    clock.advance(2.3)
    assert rt.container_status(cid).exit_code == 0


def test_oom_and_ignore_sigterm():
    clock, rt, pod, sb = make({"kbox.io/sim-oom": "true"})
    cid = start(rt, sb, pod)
    clock.advance(1.3)
    st = rt.container_status(cid)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")
    clock, rt, pod, sb = make({"kbox.io/sim-ignore-sigterm": "true"})
    cid = start(rt, sb, pod)
    clock.advance(1)
    rt.stop_container(cid, 7)
    clock.advance(6.9)
    assert rt.container_status(cid).state == "running"
    clock.advance(0.1)
    assert rt.container_status(cid).exit_code == 137


def test_probes_from_annotations():
    clock, rt, pod, sb = make({"kbox.io/sim-readiness": "fail", "kbox.io/sim-liveness": "fail-after=10"})
    cid = start(rt, sb, pod)
    clock.advance(0.3)
    assert rt.probe_http(cid, host="", port=80, kind="readiness") == \
        (False, "HTTP probe failed with statuscode: 500")
    assert rt.probe_exec(cid, ["cat", "/tmp/x"], 1, kind="liveness") == (True, "")
    clock.advance(10)
    ok, why = rt.probe_tcp(cid, host="10.244.0.5", port=8080, kind="liveness")
    assert not ok and why == "dial tcp 10.244.0.5:8080: connect: connection refused"
    assert rt.probe_exec(cid, ["x"], 1, kind="startup") == (True, "")


def test_logs_per_instance_and_follow_stop():
    clock, rt, pod, sb = make({"kbox.io/sim-run-seconds": "11", "kbox.io/sim-exit-code": "2"},
                              {"name": "c", "image": "busybox:1.36", "command": ["sleep"], "args": ["11"]})
    cid = start(rt, sb, pod)
    assert list(rt.container_logs(cid)) == []
    clock.advance(20)
    lines = list(rt.container_logs(cid))
    assert lines == ["c: started image busybox:1.36 command: sleep 11\n", "c: running for 5s\n",
                     "c: running for 10s\n", "c: exited with code 2\n"]
    assert list(rt.container_logs(cid, tail=2)) == lines[-2:]
    assert list(rt.container_logs(cid, tail=0)) == []
    # a new instance has its own logs
    cid2 = start(rt, sb, pod)
    assert list(rt.container_logs(cid2)) == []
    assert len(list(rt.container_logs(cid))) == 4
    # follow ends when the container has exited
    assert list(rt.container_logs(cid, follow=True)) == lines


def test_web_server_logs_look_like_access_logs():
    clock, rt, pod, sb = make(container={"name": "web", "image": "nginx:1.27"})
    cid = start(rt, sb, pod)
    clock.advance(5.3)
    assert '"GET / HTTP/1.1" 200' in list(rt.container_logs(cid))[1]


def test_exec_commands():
    clock, rt, pod, sb = make()
    cid = start(rt, sb, pod)
    with pytest.raises(ContainerNotFound):
        rt.exec_sync(cid, ["true"])                 # not running yet
    clock.advance(1)
    assert rt.exec_sync(cid, ["hostname"]) == (0, b"p\n", b"")
    assert rt.exec_sync(cid, ["/bin/echo", "a", "b"]) == (0, b"a b\n", b"")
    assert rt.exec_sync(cid, ["sh", "-c", "exit 4"]) == (4, b"", b"")
    assert rt.exec_sync(cid, ["sh", "-c", "echo hi"]) == (0, b"hi\n", b"")
    assert b"A=1\n" in rt.exec_sync(cid, ["env"])[1]
    assert rt.exec_sync(cid, ["cat"], b"in") == (0, b"in", b"")
    assert rt.exec_sync(cid, ["nope"]) == (127, b"", b"sh: nope: not found\n")


def test_images():
    clock, rt, pod, sb = make()
    assert not rt.image_present("nginx:1.27")
    pulled = rt.pull_image("nginx:1.27")
    assert pulled.seconds == 0.2 and pulled.image_id.startswith("sha256:")
    assert rt.image_present("nginx:1.27") and rt.list_images() == ["nginx:1.27"]
    for bad in ("nginx:missing", "nginx:does-not-exist", "example/doesnotexist:1"):
        with pytest.raises(ImagePullError) as e:
            rt.pull_image(bad)
        assert "repository does not exist or may require 'docker login'" in str(e.value)
    with pytest.raises(ImagePullError, match="pull access denied for registry.local:5000/app"):
        rt.pull_image("registry.local:5000/app:missing")
    with pytest.raises(ImagePullError):
        rt.pull_image("nginx:1.27", pod={"metadata": {"annotations": {"kbox.io/sim-pull": "fail"}}},
                      container="c")


def test_stats_and_version_and_down():
    clock, rt, pod, sb = make({"kbox.io/sim-cpu": "250m", "kbox.io/sim-memory": "64Mi"})
    cid = start(rt, sb, pod)
    assert rt.container_stats(cid) == (0, 0)
    clock.advance(1)
    assert rt.container_stats(cid) == (250_000_000, 64 * 1024 * 1024)
    cpu, mem = rt.node_stats()
    assert cpu > 250_000_000 and mem > 64 * 1024 * 1024
    assert rt.version() == ("sim", "0.1.0") and rt.healthy()
    rt.down = True
    assert not rt.healthy()
    with pytest.raises(RuntimeUnavailable):
        rt.container_status(cid)
    rt.down = False
    rt.kill_all()
    assert rt.container_status(cid).exit_code == 137
