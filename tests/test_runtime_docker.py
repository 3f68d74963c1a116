"""The docker runtime against the host's Docker engine (several kbox "nodes" share it).

Every container and network made here carries io.kbox.cluster=kbox-test-<random>; the
module's finalizer removes them all. No test ever pulls: images are checked first, and
the offline pull test makes sure the engine is never asked to pull.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
import uuid

import pytest

from kbox.clock import RealClock
from kbox.config import ClusterConfig
from kbox.runtime import (CREATED, EXITED, RUNNING, ContainerNotFound, ImagePullError,
                          RuntimeError_, RuntimeUnavailable)

pytestmark = pytest.mark.docker

IMAGE = "kbox/busybox:latest"
SOCK = "unix:///var/run/docker.sock"


def _free_subnet(client, rng) -> ipaddress.IPv4Network:
    used = []
    for n in client.networks.list():
        for cfg in (n.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet") and ":" not in cfg["Subnet"]:
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    for _ in range(200):
        cand = ipaddress.ip_network(f"10.{rng.randint(200, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise RuntimeError("no free /24 for the test pod network")


class Env:
    def __init__(self) -> None:
        import docker
        from kbox.runtime.images import ensure_busybox_image
        self.client = docker.DockerClient(base_url=SOCK, timeout=30)
        ensure_busybox_image(self.client)
        self.rng = random.Random()
        self.cluster = f"kbox-test-{uuid.uuid4().hex[:8]}"
        self.subnets: dict[str, ipaddress.IPv4Network] = {}
        self.runtimes = []
        self.next_ip: dict[str, int] = {}

    def runtime(self, node: str = "n1", cluster: str | None = None, **kw):
        from kbox.runtime.docker import DockerRuntime
        cluster = cluster or self.cluster
        if node not in self.subnets:
            self.subnets[node] = _free_subnet(self.client, self.rng)
        rt = DockerRuntime(node, RealClock(), ClusterConfig(), base_url=SOCK, cluster=cluster,
                           network=f"kbox-pods-{self.cluster}-{node}", **kw)
        self.runtimes.append(rt)
        return rt

    def ip(self, node: str = "n1") -> str:
        n = self.next_ip.get(node, 2)
        self.next_ip[node] = n + 1
        return str(self.subnets[node].network_address + n)

    def pod(self, rt, name: str | None = None, ns: str = "default"):
        """A sandbox; returns (sandbox id, pod object, ip)."""
        name = name or f"p-{uuid.uuid4().hex[:6]}"
        uid = str(uuid.uuid4())
        ip = self.ip(rt.node_name)
        sid = rt.run_pod_sandbox(uid, name, ns, rt.node_name, ip, labels={"app": name})
        pod = {"metadata": {"name": name, "namespace": ns, "uid": uid}, "spec": {}}
        return sid, pod, ip

    def cleanup(self) -> None:
        for rt in self.runtimes:
            rt.shutdown()
        flt = {"label": f"io.kbox.cluster={self.cluster}"}
        for c in self.client.containers.list(all=True, filters=flt):
            c.remove(force=True)
        for n in self.client.networks.list(filters=flt):
            n.remove()
        self.client.close()


@pytest.fixture(scope="module")
def env():
    e = Env()
    try:
        yield e
    finally:
        e.cleanup()
        left = e.client.__class__(base_url=SOCK).containers.list(
            all=True, filters={"label": f"io.kbox.cluster={e.cluster}"})
        assert not left


@pytest.fixture(scope="module")
def rt(env):
    return env.runtime("n1")


@pytest.fixture(scope="module")
def box(env, rt):
    """One shared pod sandbox for the container tests."""
    return env.pod(rt, "shared")


def run(rt, box, name, command=None, args=None, *, env=None, attempt=0, start=True, **extra):
    sid, pod, _ = box
    spec = {"name": name, "image": IMAGE, **extra}
    if command is not None:
        spec["command"] = command
    if args is not None:
        spec["args"] = args
    cid = rt.create_container(sid, spec, pod, env or {}, attempt=attempt)
    if start:
        rt.start_container(cid)
    return cid


def wait_state(rt, cid, state=EXITED, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        st = rt.container_status(cid)
        if st.state == state:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid[:12]} still {st.state}, wanted {state}")
        time.sleep(0.05)


# ---- pods ---------------------------------------------------------------------------------

def test_sandbox_and_containers_share_localhost(env, rt):
    t0 = time.monotonic()
    sid, pod, ip = env.pod(rt, "web")
    t_box = time.monotonic() - t0
    st = rt.pod_sandbox_status(sid)
    assert (st.state, st.ip, st.name, st.namespace, st.node) == ("ready", ip, "web", "default", "n1")
    assert st.pod_uid == pod["metadata"]["uid"] and st.labels == {"app": "web"}
    t0 = time.monotonic()
    srv = run(rt, (sid, pod, ip), "srv", ["httpd", "-f", "-p", "8080", "-h", "/var/www"])
    t_ctr = time.monotonic() - t0
    assert rt.container_status(srv).state == RUNNING
    print(f"sandbox {t_box:.2f}s, container create+start {t_ctr:.2f}s")
    deadline = time.monotonic() + 5
    while True:       # httpd listens a moment after start
        cli = run(rt, (sid, pod, ip), "cli", ["sh", "-c", "wget -qO- 127.0.0.1:8080 && hostname"])
        st = wait_state(rt, cli)
        if st.exit_code == 0 or time.monotonic() > deadline:
            break
        rt.remove_container(cli)
        time.sleep(0.1)
    assert (st.exit_code, st.reason) == (0, "Completed")
    assert "".join(rt.container_logs(cli)) == "<h1>kbox busybox httpd</h1>\nweb\n"
    names = {c.name: c for c in rt.list_containers(sandbox_id=sid)}
    assert set(names) == {"srv", "cli"} and names["srv"].state == RUNNING
    # the container's name follows dockershim's
    assert env.client.containers.get(srv).name.startswith("k8s_srv_web_default_")
    # stopping the sandbox kills what is left in it; removing removes everything
    rt.stop_pod_sandbox(sid)
    assert rt.pod_sandbox_status(sid).state == "notready"
    assert rt.container_status(srv).state == EXITED
    rt.remove_pod_sandbox(sid)
    with pytest.raises(ContainerNotFound):
        rt.pod_sandbox_status(sid)
    with pytest.raises(ContainerNotFound):
        rt.container_status(srv)
    assert rt.list_containers(sandbox_id=sid) == []


def test_command_args_env_workdir(rt, box):
    # command replaces ENTRYPOINT and drops the image's CMD (sh): echo prints an empty line
    a = run(rt, box, "cmd-only", ["echo"])
    # args alone replace CMD
    b = run(rt, box, "args-only", None, ["echo", "from", "args"])
    # command + args, env, workingDir
    c = run(rt, box, "full", ["sh", "-c"], ['echo "$GREETING $WHO in $(pwd)"'],
            env={"GREETING": "hello", "WHO": "kbox"}, workingDir="/tmp")
    for cid, want in ((a, "\n"), (b, "from args\n"), (c, "hello kbox in /tmp\n")):
        st = wait_state(rt, cid)
        assert (st.exit_code, st.reason) == (0, "Completed")
        assert "".join(rt.container_logs(cid)) == want
        assert st.image == IMAGE and st.image_id.startswith("sha256:")
        assert st.sandbox_id == box[0] and st.pod_uid == box[1]["metadata"]["uid"]
        assert st.started_at and st.finished_at and st.created_at
        assert st.created_at <= st.started_at <= st.finished_at


def test_exit_codes_and_oom(rt, box):
    err = run(rt, box, "fails", ["sh", "-c", "echo boom >&2; exit 3"], attempt=2)
    oom = run(rt, box, "oom", ["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"],
              resources={"limits": {"memory": "16Mi"}})
    st = wait_state(rt, err)
    assert (st.exit_code, st.reason, st.attempt) == (3, "Error", 2)
    assert "".join(rt.container_logs(err)) == "boom\n"
    st = wait_state(rt, oom, timeout=20)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")
    info = rt.api.inspect_container(oom)
    assert info["HostConfig"]["Memory"] == 16 * 1024 * 1024


def test_cannot_run_and_stop_before_start(rt, box):
    # with an init (docker-init) in front, a missing program is an exit 127 with the reason
    # in the container's log, as a shell would report it
    bad = run(rt, box, "bad", ["/no/such/binary"])
    st = wait_state(rt, bad)
    assert (st.state, st.exit_code, st.reason) == (EXITED, 127, "Error")
    assert "/no/such/binary" in "".join(rt.container_logs(bad))
    never = run(rt, box, "never", ["sleep", "100"], start=False)
    assert rt.container_status(never).state == CREATED
    rt.stop_container(never, 10)
    st = rt.container_status(never)
    assert (st.state, st.reason) == (EXITED, "ContainerCannotRun")


def test_resources_and_labels(env, rt, box):
    cid = run(rt, box, "limits", ["sleep", "30"], attempt=4,
              resources={"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}})
    info = rt.api.inspect_container(cid)
    hc = info["HostConfig"]
    assert hc["NanoCpus"] == 500_000_000 and hc["Memory"] == 64 << 20 and hc["CpuShares"] == 256
    assert hc["NetworkMode"] == f"container:{box[0]}" and hc["IpcMode"] == f"container:{box[0]}"
    assert hc["Init"] is True and not hc.get("AutoRemove")
    lab = info["Config"]["Labels"]
    m = box[1]["metadata"]
    assert lab == {**lab, "io.kbox.cluster": env.cluster, "io.kbox.node": "n1",
                   "io.kbox.pod-uid": m["uid"], "io.kbox.pod-name": "shared",
                   "io.kbox.pod-namespace": "default", "io.kbox.role": "container",
                   "io.kbox.container": "limits", "io.kbox.attempt": "4"}
    assert rt.container_status(cid).attempt == 4
    rt.stop_container(cid, 0)
    assert rt.container_status(cid).exit_code == 137


# ---- logs ----------------------------------------------------------------------------------

def test_logs_tail_follow_and_stop(rt, box):
    cid = run(rt, box, "counter", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 1; "
                                               "echo late; sleep 30"])
    deadline = time.monotonic() + 5
    while len(list(rt.container_logs(cid))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(rt.container_logs(cid, tail=2)) == ["line 4\n", "line 5\n"]
    assert list(rt.container_logs(cid, tail=0)) == []
    ts = list(rt.container_logs(cid, tail=1, timestamps=True))[0]
    stamp, _, text = ts.partition(" ")
    assert text == "line 5\n" and stamp.endswith("Z") and len(stamp) == len("2024-01-01T00:00:00.000000Z")
    # follow: the late line arrives, then `stop` ends the stream
    stop = threading.Event()
    got: list[str] = []
    t0 = time.monotonic()

    def reader():
        for line in rt.container_logs(cid, follow=True, tail=1, stop=stop):
            got.append(line)
            if line == "late\n":
                stop.set()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    th.join(10)
    assert not th.is_alive() and got == ["line 5\n", "late\n"] and time.monotonic() - t0 < 5
    # follow ends by itself when the container exits
    short = run(rt, box, "short", ["sh", "-c", "echo a; sleep 0.5; echo b"])
    t0 = time.monotonic()
    assert list(rt.container_logs(short, follow=True)) == ["a\n", "b\n"]
    assert time.monotonic() - t0 < 5
    # a stop event set while nothing is written ends the stream too
    stop2 = threading.Event()
    threading.Timer(0.3, stop2.set).start()
    t0 = time.monotonic()
    assert list(rt.container_logs(cid, follow=True, tail=0, stop=stop2)) == []
    assert time.monotonic() - t0 < 3
    rt.stop_container(cid, 0)
    # an exited container keeps its logs (logs --previous reads them)
    assert "".join(rt.container_logs(cid)).startswith("line 1\n")
    with pytest.raises(ContainerNotFound):
        rt.container_logs("0" * 64)


# ---- exec ---------------------------------------------------------------------------------

def test_exec(rt, box):
    cid = run(rt, box, "exec-target", ["sleep", "60"], env={"X": "42"})
    assert rt.exec_sync(cid, ["sh", "-c", "echo out $X; echo err >&2; exit 7"]) == (7, b"out 42\n", b"err\n")
    assert rt.exec_sync(cid, ["cat"], stdin=b"from stdin\n") == (0, b"from stdin\n", b"")
    big = bytes(range(256)) * 1000
    rc, out, _ = rt.exec_sync(cid, ["cat"], stdin=big)
    assert rc == 0 and out == big
    t0 = time.monotonic()
    rc, out, err = rt.exec_sync(cid, ["sh", "-c", "echo before; sleep 10"], timeout=1)
    assert rc == 124 and out == b"before\n" and b"timed out" in err
    assert time.monotonic() - t0 < 3
    rc, _, err = rt.exec_sync(cid, ["no-such-command"])
    assert rc != 0
    rt.stop_container(cid, 0)
    with pytest.raises(ContainerNotFound):
        rt.exec_sync(cid, ["true"])


# ---- probes -------------------------------------------------------------------------------

def test_probes(env, rt):
    sid, pod, ip = env.pod(rt, "probed")
    cid = run(rt, (sid, pod, ip), "srv", ["httpd", "-f", "-p", "80", "-h", "/var/www"])
    deadline = time.monotonic() + 5
    while rt.probe_tcp(cid, host="", port=80, timeout=1)[0] is False and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rt.probe_tcp(cid, host="", port=80, timeout=1) == (True, "")
    assert rt.probe_http(cid, host="", port=80, path="/", timeout=1,
                         headers={"X-Probe": "yes"}) == (True, "")
    assert rt.probe_http(cid, host=ip, port=80, path="index.html", timeout=1) == (True, "")
    assert rt.probe_http(cid, host="", port=80, path="/missing", timeout=1) == \
        (False, "HTTP probe failed with statuscode: 404")
    assert rt.probe_http(cid, host="", port=81, path="/", timeout=1) == \
        (False, f'Get "http://{ip}:81/": dial tcp {ip}:81: connect: connection refused')
    assert rt.probe_tcp(cid, host="", port=81, timeout=1) == \
        (False, f"dial tcp {ip}:81: connect: connection refused")
    assert rt.probe_exec(cid, ["sh", "-c", "test -f /var/www/index.html"], 1) == (True, "")
    ok, msg = rt.probe_exec(cid, ["sh", "-c", "echo not healthy; exit 1"], 1)
    assert (ok, msg) == (False, "not healthy")
    t0 = time.monotonic()
    assert rt.probe_exec(cid, ["sleep", "5"], 1) == (False, 'command "sleep 5" timed out')
    assert time.monotonic() - t0 < 3


# ---- stop ----------------------------------------------------------------------------------

def test_graceful_stop_honours_grace_period(rt, box):
    polite = run(rt, box, "polite", ["sh", "-c", "trap 'echo got TERM; sleep 1; exit 0' TERM; "
                                                 "echo ready; while :; do sleep 0.1; done"])
    stubborn = run(rt, box, "stubborn", ["sh", "-c", "trap 'echo ignoring TERM' TERM; "
                                                     "echo ready; while :; do sleep 0.1; done"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
            "ready" in "".join(rt.container_logs(c)) for c in (polite, stubborn)):
        time.sleep(0.05)
    t0 = time.monotonic()
    rt.stop_container(polite, 10)
    rt.stop_container(stubborn, 2)
    assert time.monotonic() - t0 < 1          # returns at once; the kill comes later
    st = wait_state(rt, polite, timeout=5)
    t_polite = time.monotonic() - t0
    assert (st.exit_code, st.reason) == (0, "Completed") and 0.8 < t_polite < 4
    assert "got TERM" in "".join(rt.container_logs(polite))
    st = wait_state(rt, stubborn, timeout=6)
    t_stubborn = time.monotonic() - t0
    assert (st.exit_code, st.reason) == (137, "Error") and 1.8 < t_stubborn < 5
    assert "ignoring TERM" in "".join(rt.container_logs(stubborn))
    rt.stop_container(stubborn, 5)             # already stopped: nothing happens
    with pytest.raises(ContainerNotFound):
        rt.stop_container("0" * 64, 1)


# ---- images --------------------------------------------------------------------------------

def test_images_offline_never_pull(env, rt, box, monkeypatch):
    pulls = []
    monkeypatch.setattr(rt.api, "pull", lambda *a, **k: pulls.append(a) or pytest.fail("pulled"))
    assert rt.image_present(IMAGE) and IMAGE in rt.list_images()
    p = rt.pull_image(IMAGE)
    assert p.image_id.startswith("sha256:") and p.size_bytes > 0
    absent = f"kbox/absent-{uuid.uuid4().hex[:6]}:1.0"
    assert not rt.image_present(absent)
    with pytest.raises(ImagePullError) as e:
        rt.pull_image(absent)
    msg = str(e.value)
    assert absent in msg and "n1" in msg and f"kbox load image {absent}" in msg
    with pytest.raises(RuntimeError_) as e:
        rt.create_container(box[0], {"name": "x", "image": absent}, box[1], {})
    assert "not present" in str(e.value)
    assert pulls == []


def test_online_pull_errors_are_mapped(env, monkeypatch):
    import docker.errors
    rt = env.runtime("n1", offline=False)
    calls = []

    def fake_pull(repo, tag=None, **kw):
        calls.append((repo, tag))
        raise docker.errors.APIError("pull", explanation="pull access denied for kbox/absent")
    monkeypatch.setattr(rt.api, "pull", fake_pull)
    with pytest.raises(ImagePullError) as e:
        rt.pull_image("kbox/absent:2")
    assert calls == [("kbox/absent", "2")] and "pull access denied" in str(e.value)


# ---- stats ---------------------------------------------------------------------------------

def test_stats(env, rt):
    sid, pod, ip = env.pod(rt, "busy")
    cid = run(rt, (sid, pod, ip), "spin", ["sh", "-c", "while :; do :; done"],
              resources={"limits": {"cpu": "200m"}})
    time.sleep(0.5)
    t0 = time.monotonic()
    cpu, mem = rt.container_stats(cid)
    took = time.monotonic() - t0
    assert 20_000_000 < cpu < 400_000_000 and mem > 0, (cpu, mem)
    ncpu, nmem = rt.node_stats()
    assert ncpu >= cpu and nmem >= mem
    print(f"container_stats {took:.2f}s: {cpu / 1e6:.0f}m, {mem >> 10} KiB")
    rt.stop_pod_sandbox(sid)
    assert rt.container_stats(cid) == (0, 0)
    rt.remove_pod_sandbox(sid)


# ---- several nodes and clusters in one engine; adoption ------------------------------------------

def test_listing_is_per_node_and_cluster_and_adoption(env, rt):
    sid, pod, ip = env.pod(rt, "adopted")
    uid = pod["metadata"]["uid"]
    a0 = run(rt, (sid, pod, ip), "app", ["sh", "-c", "exit 1"], attempt=0)
    a1 = run(rt, (sid, pod, ip), "app", ["sleep", "60"], attempt=1)
    n2 = env.runtime("n2")
    sid2, pod2, _ = env.pod(n2, "other")
    other_cluster = env.runtime("n1", cluster=env.cluster + "-x")
    assert sid in {b.id for b in rt.list_pod_sandboxes()}
    assert sid not in {b.id for b in n2.list_pod_sandboxes()}
    assert {b.id for b in n2.list_pod_sandboxes()} == {sid2}
    assert other_cluster.list_pod_sandboxes() == [] and other_cluster.list_containers() == []
    # a restarted kbox: a new runtime object finds the pod by its labels
    again = env.runtime("n1")
    boxes = [b for b in again.list_pod_sandboxes() if b.pod_uid == uid]
    assert [(b.id, b.ip, b.state, b.name) for b in boxes] == [(sid, ip, "ready", "adopted")]
    cs = sorted(again.list_containers(pod_uid=uid), key=lambda c: c.attempt)
    assert [(c.id, c.name, c.attempt) for c in cs] == [(a0, "app", 0), (a1, "app", 1)]
    assert cs[1].state == RUNNING
    assert [c.id for c in again.list_containers(sandbox_id=sid2)] == []
    # a second sandbox for the same pod (SandboxChanged) gets its own name
    rt.stop_pod_sandbox(sid)
    sid_b = rt.run_pod_sandbox(uid, "adopted", "default", "n1", ip)
    assert sid_b != sid and rt.pod_sandbox_status(sid_b).state == "ready"
    assert env.client.containers.get(sid_b).name.endswith("_1")


# ---- the engine gone ------------------------------------------------------------------------

def test_engine_gone(tmp_path):
    from kbox.runtime.docker import DockerRuntime
    rt = DockerRuntime("ghost", RealClock(), ClusterConfig(), base_url=f"unix://{tmp_path}/docker.sock",
                       cluster="kbox-test-none", timeout=3)
    t0 = time.monotonic()
    assert rt.healthy() is False
    assert rt.version() == ("docker", "unknown")
    for call in (lambda: rt.list_pod_sandboxes(), lambda: rt.container_status("abc"),
                 lambda: rt.run_pod_sandbox("u", "p", "default", "ghost", "10.9.9.2"),
                 lambda: rt.image_present(IMAGE), lambda: rt.node_stats(),
                 lambda: rt.exec_sync("abc", ["true"])):
        with pytest.raises(RuntimeUnavailable):
            call()
    # a socket file nobody listens on (a killed node) answers "connection refused"
    import socket as s
    path = tmp_path / "dead.sock"
    srv = s.socket(s.AF_UNIX)
    srv.bind(str(path))
    srv.close()
    dead = DockerRuntime("dead", RealClock(), ClusterConfig(), base_url=str(path),
                         cluster="kbox-test-none", timeout=3)
    assert dead.healthy() is False
    with pytest.raises(RuntimeUnavailable):
        dead.list_containers()
    assert time.monotonic() - t0 < 5
    rt.shutdown()
    dead.shutdown()


def test_missing_ids(rt):
    for call in (lambda: rt.container_status("f" * 64), lambda: rt.pod_sandbox_status("f" * 64),
                 lambda: rt.exec_sync("f" * 64, ["true"]),
                 lambda: rt.create_container("f" * 64, {"name": "x", "image": IMAGE}, {}, {})):
        with pytest.raises(ContainerNotFound):
            call()
    rt.remove_container("f" * 64)          # removing what is gone is not an error


def test_pod_ip_in_use_is_a_clear_error(env, rt):
    sid, pod, ip = env.pod(rt, "first")
    with pytest.raises(RuntimeError_) as e:
        rt.run_pod_sandbox(str(uuid.uuid4()), "second", "default", "n1", ip)
    assert ip in str(e.value) and "second" in str(e.value)
    assert not isinstance(e.value, (RuntimeUnavailable, ContainerNotFound))
    # nothing of the failed sandbox is left behind
    assert [b.name for b in rt.list_pod_sandboxes() if b.ip == ip] == ["first"]
