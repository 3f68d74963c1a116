"""The images kbox makes (busybox, node) and the Docker-in-Docker node they give.

The Docker tests build the node image (cached by recipe, so only the first run on a
machine pays for it), start one node container with kbox's own flags (no --privileged
where the machine refuses it), and prove the inner engine: overlay2 storage, an image
loaded from the host engine, a pod-like container serving HTTP to another one on an inner
network, the black-hole routes, and a restart after a kill. Everything they create is
removed, also on failure. No engine ever pulls: containers are created from images that
are known to be present.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from kbox.runtime import images, nodeflags

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
INNER_SUBNET = "10.244.7.0/24"
TEST_LABEL = "io.kbox.test"


# ---- without an engine ---------------------------------------------------------------------

def test_node_rootfs_plan_has_the_engine_iptables_and_a_shell():
    plan = images.node_rootfs()
    e = plan.entries
    assert plan.tag == f"kbox/node:{plan.recipe[:12]}"
    for binary in ("usr/sbin/dockerd", "usr/bin/containerd", "usr/bin/containerd-shim-runc-v2",
                   "usr/sbin/runc", "usr/sbin/docker-proxy", "usr/sbin/xtables-nft-multi",
                   "usr/bin/docker-init", "usr/bin/busybox"):
        assert e[binary][0] == "file", binary
    for name in ("iptables", "iptables-save", "iptables-restore", "ip6tables"):
        assert e[f"usr/sbin/{name}"] == ("link", "xtables-nft-multi")
    assert e["usr/bin/sh"][0] == "link" and e["usr/bin/sh"][1].endswith("/busybox")
    assert e["usr/lib/x86_64-linux-gnu/libc.so.6"][0] == "file"
    # soname links stay links next to their files
    soname = [p for p, (k, v) in e.items() if k == "link" and ".so." in p and "x86_64" in p]
    assert soname and all(os.path.dirname(p) + "/" + e[p][1] in e for p in soname
                          if not e[p][1].startswith("/"))
    assert any(p.startswith("usr/lib/x86_64-linux-gnu/xtables/libxt_") for p in e)
    assert e[images.NODE_ENTRYPOINT.lstrip("/")][0] == "data"
    assert 100e6 < plan.size() < 250e6


def test_entrypoint_black_holes_the_cluster_before_anything_else():
    script = images.NODE_ENTRYPOINT_SCRIPT
    hole = script.index("ip route replace unreachable")
    for later in ("remount", "ip_forward", "exec dockerd"):
        assert hole < script.index(later), later
    assert "KBOX_CLUSTER_CIDR" in script and "KBOX_SERVICE_CIDR" in script
    for flag in ("--host unix:///kbox/docker.sock", "--userland-proxy=false", "--bridge=none",
                 "--exec-opt native.cgroupdriver=cgroupfs", "--log-level"):
        assert flag in script
    assert "/kbox/dockerd.log" in script


def _pod_runtime(tmp_path, spec_hostname: str, env_hostname: str | None):
    """Run the pod runtime script (with busybox's sh, the node's shell) on a bundle shaped as
    the inner dockerd writes it, with a fake runc that only records its arguments."""
    import json
    import shutil
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (Debian's busybox-static) is not installed")
    (tmp_path / "bin").mkdir()
    runc = tmp_path / "bin" / "runc"
    runc.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/runc-args\n')
    runc.chmod(0o755)
    script = tmp_path / "kbox-runc"
    script.write_text(images.POD_RUNTIME_SCRIPT)
    (tmp_path / "hostname").write_text(f"{spec_hostname}\n")
    (tmp_path / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                                    f"10.244.0.9\t{spec_hostname}\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    env = ["PATH=/usr/bin"] + ([f"HOSTNAME={env_hostname}"] if env_hostname else [])
    spec = {"ociVersion": "1.0.2-dev", "process": {"env": env}, "hostname": spec_hostname,
            "mounts": [{"destination": "/etc/hostname", "type": "bind",
                        "source": str(tmp_path / "hostname"), "options": ["rbind"]},
                       {"destination": "/etc/hosts", "type": "bind",
                        "source": str(tmp_path / "hosts"), "options": ["rbind"]}]}
    (bundle / "config.json").write_text(json.dumps(spec, separators=(",", ":")))
    args = ["--root", "/run/x", "create", "--bundle", str(bundle), "--pid-file", "pid", "c1"]
    subprocess.run([busybox, "sh", str(script), *args], check=True,
                   env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert (tmp_path / "runc-args").read_text().split() == args      # runc runs, unchanged
    return (json.loads((bundle / "config.json").read_text()), (tmp_path / "hostname").read_text(),
            (tmp_path / "hosts").read_text())


def test_pod_runtime_gives_a_warm_sandboxs_container_the_pods_hostname(tmp_path):
    spec, hostname, hosts = _pod_runtime(tmp_path, "kbox-warm", "web-7d4b9.x")
    assert spec["hostname"] == "web-7d4b9.x"
    assert spec["process"]["env"][-1] == "HOSTNAME=web-7d4b9.x"
    assert hostname == "web-7d4b9.x\n"
    assert hosts.splitlines() == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost",
                                  "10.244.0.9\tweb-7d4b9.x"]


@pytest.mark.parametrize("env_hostname", ["same", None])
def test_pod_runtime_leaves_other_containers_alone(tmp_path, env_hostname):
    spec, hostname, hosts = _pod_runtime(tmp_path, "same", env_hostname)
    assert spec["hostname"] == "same" and hostname == "same\n"
    assert hosts.splitlines()[-1] == "10.244.0.9\tsame"


def test_node_image_has_the_pod_runtime_and_dockerd_knows_it():
    plan = images.node_rootfs()
    kind, (data, mode) = plan.entries[images.POD_RUNTIME_PATH.strip("/")]
    assert kind == "data" and mode == 0o755 and data.decode() == images.POD_RUNTIME_SCRIPT
    assert f"--add-runtime {images.POD_RUNTIME}={images.POD_RUNTIME_PATH}" in images.NODE_ENTRYPOINT_SCRIPT


def test_recipe_covers_the_script(monkeypatch):
    before = images.node_rootfs().recipe
    monkeypatch.setattr(images, "NODE_ENTRYPOINT_SCRIPT", images.NODE_ENTRYPOINT_SCRIPT + "# x\n")
    assert images.node_rootfs().recipe != before


def test_recipe_covers_file_contents(monkeypatch, tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(open(images.find_busybox(), "rb").read())
    fake.chmod(0o755)
    monkeypatch.setenv("KBOX_BUSYBOX", str(fake))
    first = images.node_rootfs().recipe
    with open(fake, "ab") as f:
        f.write(b"\0")                      # an "upgraded" package
    assert images.node_rootfs().recipe != first


def test_missing_binary_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(images, "NODE_BINARIES", (("kbox-no-such-dockerd", "docker.io"),))
    with pytest.raises(images.ImageBuildError, match=r"apt-get install docker\.io"):
        images.node_rootfs()


def test_capabilities_follow_the_bounding_set(monkeypatch):
    monkeypatch.delenv("KBOX_NODE_PRIVILEGED", raising=False)
    here = 0x000001fffeffffff                      # these machines: no CAP_SYS_RESOURCE
    full = 0x000001ffffffffff
    assert not nodeflags.privileged_allowed(here, 40)
    assert nodeflags.privileged_allowed(full, 40)
    caps = nodeflags.node_capabilities(here)
    assert "SYS_RESOURCE" not in caps and "SYS_ADMIN" in caps and "NET_ADMIN" in caps
    assert len(caps) == 37 and not {"BPF", "PERFMON", "CHECKPOINT_RESTORE"} & set(caps)


def test_node_container_kwargs(monkeypatch):
    kw_args = dict(name="kbox-c-n1", image="kbox/node:abc", network="kbox-c", socket_dir="/tmp/s",
                   volume="kbox-c-n1-data", labels={"a": "b"},
                   env={"KBOX_CLUSTER_CIDR": CLUSTER_CIDR}, hostname="n1")
    monkeypatch.setenv("KBOX_NODE_PRIVILEGED", "0")
    kw = nodeflags.node_container_kwargs(**kw_args)
    assert "privileged" not in kw and "SYS_ADMIN" in kw["cap_add"]
    assert kw["cgroupns"] == "private" and kw["device_cgroup_rules"] == ["a *:* rwm"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(kw["security_opt"])
    assert set(kw["tmpfs"]) == {"/run", "/tmp"}
    assert kw["volumes"]["/tmp/s"]["bind"] == "/kbox"
    assert kw["volumes"]["kbox-c-n1-data"]["bind"] == "/var/lib/docker"
    assert kw["environment"] == {"KBOX_CLUSTER_CIDR": CLUSTER_CIDR} and kw["hostname"] == "n1"
    monkeypatch.setenv("KBOX_NODE_PRIVILEGED", "1")
    kw = nodeflags.node_container_kwargs(**kw_args)
    assert kw["privileged"] is True and "cap_add" not in kw


def test_image_verb_is_registered_and_parses():
    from kbox.cli.registry import parse
    cmd, args = parse("kbox image build-node --force")
    assert cmd.name == "image" and args.action == "build-node" and args.force
    assert not cmd.needs_cluster


def test_image_verb_without_engine_is_one_clear_line(monkeypatch):
    from kbox.cli.registry import Context, execute
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/kbox-test.sock")
    out, err = io.StringIO(), io.StringIO()
    assert execute(Context(client=None, out=out, err=err), "image ls") == 1
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Docker engine answers")


# ---- with the host's engine ------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine():
    import docker
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def node_tag(engine):
    images.ensure_busybox_image(engine)
    t0 = time.monotonic()
    result = images.node_image(engine)
    assert result.size < 250e6, result
    if result.built:
        assert result.seconds < 20, result
    assert time.monotonic() - t0 < 30
    return result.tag


def _wait_ping(base_url: str, timeout: float = 30) -> float:
    import docker
    t0 = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            c = docker.DockerClient(base_url=base_url, timeout=3)
            try:
                c.ping()
                return time.monotonic() - t0
            finally:
                c.close()
        except Exception as e:     # not up yet
            last = e
            time.sleep(0.1)
    raise AssertionError(f"the inner engine at {base_url} never answered: {last}")


@pytest.mark.docker
def test_ensure_node_image_reuses_a_current_image(engine, node_tag):
    img_id = engine.images.get(node_tag).id
    messages: list[str] = []
    assert images.ensure_node_image(engine, messages.append) == node_tag
    assert engine.images.get(node_tag).id == img_id
    assert not any(m.startswith("importing") for m in messages)
    labels = engine.images.get(node_tag).attrs["Config"]["Labels"]
    assert node_tag.endswith(labels[images.RECIPE_LABEL][:12])
    assert engine.images.get(node_tag).attrs["Config"]["Entrypoint"] == [images.NODE_ENTRYPOINT]


@pytest.mark.docker
def test_node_runs_an_inner_engine_that_serves_pods(engine, node_tag):
    import docker
    run = uuid.uuid4().hex[:8]
    name = f"kbox-test-{run}"
    labels = {TEST_LABEL: run}
    sock_dir = tempfile.mkdtemp(prefix=f"kbox-test-{run}-")
    base_url = f"unix://{sock_dir}/docker.sock"
    net = vol = node = inner = None
    try:
        net = engine.networks.create(f"{name}-net", driver="bridge", labels=labels)
        vol = engine.volumes.create(f"{name}-data", labels=labels)
        kwargs = nodeflags.node_container_kwargs(
            name=name, image=node_tag, network=net.name, socket_dir=sock_dir, volume=vol.name,
            labels=labels, env={"KBOX_CLUSTER_CIDR": CLUSTER_CIDR, "KBOX_SERVICE_CIDR": SERVICE_CIDR},
            hostname="node-1")
        node = engine.containers.create(**kwargs)
        node.start()
        try:
            _wait_ping(base_url)
        except AssertionError:
            node.reload()
            log = open(os.path.join(sock_dir, "dockerd.log"), errors="replace").read()[-2000:] \
                if os.path.exists(os.path.join(sock_dir, "dockerd.log")) else node.logs().decode()
            raise AssertionError(f"node {node.status}; log: {log}")

        inner = docker.DockerClient(base_url=base_url, timeout=60)
        info = inner.info()
        assert info["Driver"] == "overlay2", info["Driver"]
        assert info["CgroupDriver"] == "cgroupfs"
        assert info["ServerVersion"] == engine.version()["Version"]

        # load the busybox image from the host engine (never pulled)
        inner.images.load(engine.images.get(images.BUSYBOX_IMAGE).save(named=True))
        inner.images.get(images.BUSYBOX_IMAGE)

        pods = inner.networks.create(
            "pods", driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=INNER_SUBNET)]))
        server = inner.containers.create(
            images.BUSYBOX_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/var/www"],
            name="web", network=pods.name, init=True)
        server.start()
        server.reload()
        ip = server.attrs["NetworkSettings"]["Networks"]["pods"]["IPAddress"]
        assert ip.startswith("10.244.7."), ip
        client = inner.containers.create(
            images.BUSYBOX_IMAGE, ["sh", "-c", f"for i in 1 2 3 4 5; do timeout 5 wget -qO- http://{ip}/ && exit 0; sleep 0.3; done; exit 1"],
            name="client", network=pods.name, init=True)
        client.start()
        status = client.wait(timeout=60)
        body = client.logs().decode(errors="replace")
        assert status["StatusCode"] == 0 and "kbox busybox httpd" in body, body

        routes = node.exec_run(["ip", "route"]).output.decode()
        assert f"unreachable {CLUSTER_CIDR}" in routes, routes
        assert f"unreachable {SERVICE_CIDR}" in routes, routes
        assert f"{INNER_SUBNET} dev" in routes, routes      # the bridge's route still wins
        assert os.path.getsize(os.path.join(sock_dir, "dockerd.log")) > 0

        # a killed node starts again (stale pid files and socket are cleared)
        inner.close()
        inner = None
        node.kill()
        node.wait(timeout=30)
        node.start()
        _wait_ping(base_url)
        routes = node.exec_run(["ip", "route"]).output.decode()
        assert f"unreachable {CLUSTER_CIDR}" in routes, routes
    finally:
        if inner is not None:
            inner.close()
        if node is not None:
            node.remove(force=True, v=True)
        if vol is not None:
            vol.remove(force=True)
        if net is not None:
            net.remove()
        _remove_tree(sock_dir)


def _remove_tree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.docker
def test_image_cli_builds_and_lists(node_tag):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-m", "kbox", "image", "build"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith(f"{images.BUSYBOX_IMAGE} ") and " in " in lines[0]
    assert lines[1].startswith(f"{node_tag} reused (current): ")
    out = subprocess.run([sys.executable, "-m", "kbox", "image", "ls"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("IMAGE ")
    assert node_tag in out.stdout and images.BUSYBOX_IMAGE in out.stdout
