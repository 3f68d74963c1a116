"""Whole clusters on Docker-in-Docker nodes: real containers, node chaos,
re-adoption after a kbox restart, and teardown that leaves nothing behind.

Every test here needs a Docker engine (marked `docker`: skipped on a laptop
without one, a failure under CI). Nothing is pulled: the node and busybox
images are built from this machine's own packages.
"""

from __future__ import annotations

import time
import uuid

import pytest

from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for as _wait

pytestmark = pytest.mark.docker

FAST = {"nodeStatusUpdateFrequency": 1, "nodeLeaseRenewInterval": 1,
        "nodeMonitorGracePeriod": 4, "defaultTolerationSeconds": 2, "syncFrequency": 0.5}


def _config(name: str, nodes: int = 2, **extra) -> ClusterConfig:
    return ClusterConfig.model_validate({"name": name, "runtime": "docker",
                                         "nodes": {"count": nodes}, "timings": FAST, **extra})


def _web(replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 2,
                     "containers": [{
                         "name": "httpd", "image": "kbox/busybox:latest",
                         "imagePullPolicy": "IfNotPresent",
                         "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
                         "env": [{"name": "GREETING", "value": "hello"}],
                         "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                            "periodSeconds": 1}}]}}}}


def _ready_pods(cluster: Cluster, app: str = "web") -> list[dict]:
    pods = cluster.client.list("pods", "default", label_selector=f"app={app}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (p.get("status") or {}).get("conditions") or [])]


def _leftovers(client, name: str) -> list[str]:
    flt = {"label": f"io.kbox.cluster={name}"}
    return ([c.name for c in client.containers.list(all=True, filters=flt)]
            + [v.name for v in client.volumes.list(filters=flt)]
            + [n.name for n in client.networks.list(filters=flt)])


@pytest.fixture
def name() -> str:
    return f"kt{uuid.uuid4().hex[:6]}"


@pytest.fixture
def host():
    import docker
    client = docker.from_env()
    yield client
    client.close()


def test_pods_run_as_real_containers_and_a_killed_node_loses_its_pods(name, host):
    cluster = Cluster(_config(name), serve_http=False)
    try:
        cluster.start(timeout=120)
        nodes = cluster.client.list("nodes")["items"]
        assert len(nodes) == 2
        assert all(n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
                   for n in nodes)
        assert {c.name for c in host.containers.list(filters={"label": f"io.kbox.cluster={name}"})} \
            == {f"kbox-{name}-{name}-worker", f"kbox-{name}-{name}-worker2"}

        cluster.client.create("deployments", _web(2), "default")
        pods = _wait(lambda: len(_ready_pods(cluster)) == 2 and _ready_pods(cluster), 90, "2 ready pods")
        for p in pods:
            assert p["status"]["podIP"].startswith("10.244.")
            # the container really runs in its node's inner engine
            inner = cluster.machines.inner(p["spec"]["nodeName"])
            running = inner.containers.list(filters={"label": f"io.kbox.pod-uid={p['metadata']['uid']}"})
            inner.close()
            assert len(running) == 2       # the sandbox and httpd
        # exec and env inside a real container
        p = pods[0]
        rc, out, _ = cluster.nodes.agents[p["spec"]["nodeName"]].exec(
            p, "httpd", ["sh", "-c", "echo $GREETING; hostname"])
        assert rc == 0 and out.decode().split() == ["hello", p["metadata"]["name"]]

        # chaos: kill the node of one pod; it goes NotReady and its pod comes back elsewhere
        victim = p["spec"]["nodeName"]
        survivor = next(n["metadata"]["name"] for n in nodes if n["metadata"]["name"] != victim)
        cluster.node_action("kill", victim)
        assert not cluster.machines.running(victim)
        _wait(lambda: any(c["type"] == "Ready" and c["status"] != "True"
                          for c in cluster.client.get("nodes", victim)["status"]["conditions"]),
              30, f"{victim} NotReady")
        _wait(lambda: len(_ready_pods(cluster)) == 2
              and all(q["spec"]["nodeName"] == survivor for q in _ready_pods(cluster)),
              90, "both pods ready on the surviving node")

        # the node comes back and rejoins
        cluster.node_action("start", victim)
        _wait(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                          for c in cluster.client.get("nodes", victim)["status"]["conditions"]),
              60, f"{victim} Ready again")
    finally:
        cluster.stop()
    assert _leftovers(host, name) == []
    from kbox.config import kbox_home
    assert not (kbox_home() / "clusters" / name).exists()     # nor its host folders


def _warm(cluster: Cluster, node: str) -> list[tuple[str, str]]:
    agent = cluster.nodes.agents[node]
    return _wait(lambda: list(agent._warm), 60, f"a warm sandbox on {node}")


def test_a_pod_claims_a_warm_sandbox_and_gets_its_own_name_and_address(name, host):
    cluster = Cluster(_config(name, nodes=1), serve_http=False)
    try:
        cluster.start(timeout=120)
        node = f"{name}-worker"
        ((sandbox, ip),) = _warm(cluster, node)
        pod = {"metadata": {"name": "warm-pod"}, "spec": {"nodeName": node, "containers": [
            {"name": "a", "image": "kbox/busybox:latest", "command": ["sleep", "3600"]},
            {"name": "b", "image": "kbox/busybox:latest", "command": ["sleep", "3600"]}]}}
        cluster.client.create("pods", pod, "default")
        running = _wait(lambda: (p := cluster.client.get("pods", "warm-pod", "default"))["status"].get(
            "phase") == "Running" and p, 60, "the pod Running")
        agent = cluster.nodes.agents[node]
        assert agent.records["default/warm-pod"].sandbox_id == sandbox
        assert running["status"]["podIP"] == ip
        # both containers see the pod's name, not the placeholder the sandbox was started with
        for c in ("a", "b"):
            rc, out, _ = agent.exec(running, c, ["sh", "-c", "hostname; cat /etc/hostname; "
                                                             "grep -c kbox-warm /etc/hosts; "
                                                             "grep warm-pod /etc/hosts; echo $HOSTNAME"])
            assert out.decode().split() == ["warm-pod", "warm-pod", "0", ip, "warm-pod", "warm-pod"], out
        # the claimed sandbox lists as the pod's, and the node starts another one
        (box,) = [b for b in agent.runtime.list_pod_sandboxes() if b.id == sandbox]
        assert (box.pod_uid, box.name, box.namespace) == (running["metadata"]["uid"], "warm-pod", "default")
        ((again, ip2),) = _warm(cluster, node)
        assert again != sandbox and ip2 != ip
        # deleting the pod removes its (once warm) sandbox
        cluster.client.delete("pods", "warm-pod", "default", grace_period_seconds=0)
        _wait(lambda: sandbox not in {b.id for b in agent.runtime.list_pod_sandboxes()}, 60,
              "the claimed sandbox removed")
    finally:
        cluster.stop()
    assert _leftovers(host, name) == []


def test_a_restarted_kbox_adopts_running_node_and_pod_containers(name, host, tmp_path):
    cfg = _config(name, nodes=1, dataDir=str(tmp_path / "data"))
    first = Cluster(cfg, serve_http=False)
    node = f"{name}-worker"
    try:
        first.start(timeout=120)
        claimed = _warm(first, node)[0][0]
        first.client.create("deployments", _web(1), "default")
        (pod,) = _wait(lambda: _ready_pods(first), 90, "a ready pod")
        before = {c["containerID"] for c in pod["status"]["containerStatuses"]}
        assert first.nodes.agents[node].records[f"default/{pod['metadata']['name']}"].sandbox_id == claimed
        spare = _warm(first, node)[0][0]
    finally:
        first.stop()
    # with a data dir the nodes outlive the process
    assert f"kbox-{name}-{name}-worker" in {c.name for c in host.containers.list()}

    second = Cluster(cfg, serve_http=False)
    try:
        second.start(timeout=120)
        time.sleep(3)        # a few sync periods: an adopting agent must not restart anything
        (again,) = _wait(lambda: _ready_pods(second), 60, "the pod ready after the restart")
        assert again["metadata"]["uid"] == pod["metadata"]["uid"]
        assert {c["containerID"] for c in again["status"]["containerStatuses"]} == before
        assert all(c["restartCount"] == 0 for c in again["status"]["containerStatuses"])
        # the pod's sandbox was a claimed warm one (found by its name); the spare is reused
        agent = second.nodes.agents[node]
        assert agent.records[f"default/{pod['metadata']['name']}"].sandbox_id == claimed
        assert [sid for sid, _ in _warm(second, node)] == [spare]
    finally:
        second.stop()
        from kbox.runtime.dind import remove_cluster
        remove_cluster(host, name)
    assert _leftovers(host, name) == []


def test_kbox_down_removes_one_cluster_and_nothing_else(host):
    from kbox.runtime.dind import NodeMachines, remove_cluster
    a, b = f"kd{uuid.uuid4().hex[:6]}", f"kd{uuid.uuid4().hex[:6]}"
    ma, mb = NodeMachines(_config(a, 1)), NodeMachines(_config(b, 1))
    try:
        ma.ensure(f"{a}-worker")
        mb.ensure(f"{b}-worker")
        assert _leftovers(host, a) and _leftovers(host, b)
        gone = remove_cluster(host, a)
        assert gone["containers"] == 1 and gone["volumes"] == 1 and gone["networks"] == 1
        assert _leftovers(host, a) == []
        assert mb.running(f"{b}-worker")
    finally:
        remove_cluster(host, a)
        remove_cluster(host, b)
    assert _leftovers(host, b) == []


def test_the_samples_run_for_real_with_no_registry(name, host):
    """The same manifests the sim demos use, on docker nodes: a job completes, a crashing
    pod backs off, a hungry one is OOMKilled, a missing image is ErrImagePull, and init
    containers run in order."""
    import yaml
    from pathlib import Path
    samples = Path(__file__).parent.parent / "samples"
    cluster = Cluster(_config(name, nodes=1), serve_http=False)

    def pod_named(prefix: str) -> dict | None:
        for p in cluster.client.list("pods", "default")["items"]:
            if p["metadata"]["name"].startswith(prefix):
                return p
        return None

    def waiting_or_terminated(prefix: str) -> set[str]:
        p = pod_named(prefix) or {}
        out = set()
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            for part in ("state", "lastState"):
                st = cs.get(part) or {}
                out |= {(st.get(k) or {}).get("reason", "") for k in ("waiting", "terminated")}
        return out - {""}

    try:
        cluster.start(timeout=120)
        for f in ("job.yaml", "crashloop.yaml", "oom.yaml", "bad-image.yaml", "init-containers.yaml"):
            for doc in yaml.safe_load_all((samples / f).read_text()):
                if doc:
                    plural = {"Job": "jobs", "Pod": "pods"}[doc["kind"]]
                    cluster.client.create(plural, doc, "default")
        _wait(lambda: (cluster.client.get("jobs", "compute", "default").get("status") or {})
              .get("succeeded") == 3, 120, "the job's 3 completions")
        _wait(lambda: "OOMKilled" in waiting_or_terminated("hungry"), 60, "OOMKilled")
        _wait(lambda: "CrashLoopBackOff" in waiting_or_terminated("crashy"), 60, "CrashLoopBackOff")
        _wait(lambda: waiting_or_terminated("bad-image") & {"ErrImagePull", "ImagePullBackOff"},
              60, "ErrImagePull")
        _wait(lambda: (pod_named("with-init") or {}).get("status", {}).get("phase") == "Running",
              60, "the init-containers pod running")
    finally:
        cluster.stop()
    assert _leftovers(host, name) == []


def test_cli_up_detached_load_image_and_down(name, host, tmp_path, monkeypatch):
    """What a user types: kbox up -d --runtime docker, kbox get nodes, kbox load image,
    kbox down — and nothing of the cluster is left on the engine."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "KBOX_HOME": str(tmp_path / "home")}

    def kbox(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kbox", *argv], capture_output=True,
                              text=True, timeout=timeout, env=env)

    try:
        up = kbox("up", "-d", "--runtime", "docker", "--name", name, "--nodes", "1")
        assert up.returncode == 0, up.stderr
        assert f'Cluster "{name}" is up: 1 docker node(s)' in up.stdout
        nodes = kbox("--cluster", name, "get", "nodes")
        assert nodes.returncode == 0 and f"{name}-worker" in nodes.stdout and " Ready " in nodes.stdout
        load = kbox("load", "image", "kbox/busybox:latest", "--name", name)
        assert load.returncode == 0, load.stderr
        assert f'Image: "kbox/busybox:latest" already present on node "{name}-worker"' in load.stdout
        missing = kbox("load", "image", "kbox/no-such-image:1", "--name", name)
        assert missing.returncode == 1
        assert 'image "kbox/no-such-image:1" is not present on the host engine' in missing.stderr
    finally:
        down = kbox("down", "--name", name)
    assert down.returncode == 0 and f'Deleted cluster "{name}"' in down.stdout
    assert _leftovers(host, name) == []


DEMOS = ["rollout", "scale", "self-healing", "rolling-update-undo", "unschedulable",
         "cordon-drain", "crashloop", "job", "node-failure"]


@pytest.mark.parametrize("demo", DEMOS)
def test_every_demo_passes_on_docker_nodes(demo, host):
    """`kbox run DEMO --runtime docker`: the same scripts the sim runs, on real nodes."""
    import io
    from pathlib import Path
    from kbox.cli.registry import Context, execute
    # the demos name nodes kbox-worker...: they run as cluster "kbox", so never next to a
    # real cluster of that name on this engine
    name = "kbox"
    if _leftovers(host, name):
        pytest.skip('a cluster named "kbox" has containers on this engine; not touching it')
    ctx = Context(client=None, out=io.StringIO(), err=io.StringIO())
    script = Path(__file__).parent.parent / "samples" / "demos" / f"{demo}.kbox"
    rc = execute(ctx, ["run", str(script), "--runtime", "docker", "--name", name])
    assert rc == 0, ctx.out.getvalue()[-3000:] + ctx.err.getvalue()
    assert _leftovers(host, name) == []


def test_logs_probes_and_readiness_on_real_containers(name, host):
    """logs returns what the container printed (and --previous the dead instance's); a
    failing liveness probe restarts the container; readiness gates the Ready condition."""
    cluster = Cluster(_config(name, nodes=1), serve_http=False)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "app", "image": "kbox/busybox:latest",
            # serves /ready only once /srv/ready exists; prints a line per start
            "command": ["sh", "-c", "echo started at $(date +%s); mkdir -p /srv; "
                                    "exec httpd -f -p 8080 -h /srv"],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["test", "!", "-e", "/tmp/die"]},
                              "periodSeconds": 1, "failureThreshold": 2}}]}}

    def get() -> dict:
        return cluster.client.get("pods", "probed", "default")

    def ready(p: dict) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (p.get("status") or {}).get("conditions") or [])

    try:
        cluster.start(timeout=120)
        cluster.client.create("pods", pod, "default")
        _wait(lambda: get()["status"].get("phase") == "Running", 60, "Running")
        time.sleep(2)
        assert not ready(get()), "the readiness probe fails until /srv/ready exists"
        p = get()
        agent = cluster.nodes.agents[p["spec"]["nodeName"]]
        rc, _, _ = agent.exec(p, "app", ["touch", "/srv/ready"])
        assert rc == 0
        _wait(lambda: ready(get()), 30, "Ready once the readiness probe passes")
        assert "".join(agent.logs(get(), "app")).startswith("started at ")

        agent.exec(get(), "app", ["touch", "/tmp/die"])        # liveness now fails
        _wait(lambda: get()["status"]["containerStatuses"][0]["restartCount"] >= 1, 60,
              "a restart after the liveness probe failed")
        events = [e["reason"] for e in cluster.client.list("events", "default")["items"]
                  if e["involvedObject"].get("name") == "probed"]
        assert "Unhealthy" in events and "Killing" in events
        previous = "".join(agent.logs(get(), "app", previous=True))
        assert previous.startswith("started at ")
    finally:
        cluster.stop()
    assert _leftovers(host, name) == []
