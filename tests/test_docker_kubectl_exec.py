"""The real kubectl's exec and logs into real containers (a one-node docker cluster), and
port-forward with the official Python client.

`kubectl exec` reaches the pod's container through a `docker exec` whose
socket is streamed both ways (DockerRuntime.exec_stream): output on stdout and
stderr, the exit code, stdin passed through, a tty, `kubectl cp` both ways,
and an executable that is not there reported as containerd does; `kubectl run
-i --rm` attaches to the container's own stdin (docker attach). Needs a Docker engine (marked `docker`)
and kubectl (marked `kubectl`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from kbox.cli import kubeconfig
from kbox.cluster import Cluster
from kbox.config import ClusterConfig

pytestmark = [pytest.mark.docker, pytest.mark.kubectl]

FAST = {"nodeStatusUpdateFrequency": 1, "nodeLeaseRenewInterval": 1, "syncFrequency": 0.5}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("docker-exec")
    name = f"kde{uuid.uuid4().hex[:5]}"
    c = Cluster(ClusterConfig.model_validate({"name": name, "runtime": "docker",
                                              "nodes": {"count": 1}, "timings": FAST}))
    try:
        c.start(timeout=120)
        c.client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb"}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "sh", "image": "kbox/busybox:latest", "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", "echo booted; exec sleep 3600"]}]}}, "default")
        c.client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "httpd", "image": "kbox/busybox:latest", "imagePullPolicy": "IfNotPresent",
                            "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"]}]}}, "default")
        deadline = time.monotonic() + 90
        while any(c.client.get("pods", p, "default").get("status", {}).get("phase") != "Running"
                  for p in ("bb", "web")):
            assert time.monotonic() < deadline, "the busybox pods did not start"
            time.sleep(0.2)
        path = tmp / "config"
        kubeconfig.merge(kubeconfig.kubeconfig_for(name, c.url, c.credentials.ca_pem,
                                                   c.credentials.admin_token), path)
        yield {"cluster": c, "config": path, "cache": tmp / "cache"}
    finally:
        c.stop()


def kubectl(env, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [shutil.which("kubectl"), "--kubeconfig", str(env["config"]), "--cache-dir", str(env["cache"]),
           *args]
    return subprocess.run(cmd, input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


def test_exec_in_a_real_container(env):
    r = kubectl(env, "exec", "bb", "--", "sh", "-c", "echo out; echo err 1>&2; cat /etc/hostname; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\nbb\n"
    assert "err\n" in r.stderr and "command terminated with exit code 7" in r.stderr

    r = kubectl(env, "exec", "-i", "bb", "--", "sh", "-c", "tr a-z A-Z; echo done", stdin="shout\n")
    assert (r.returncode, r.stdout) == (0, "SHOUT\ndone\n")

    big = "".join(f"line {i}\n" for i in range(20000))       # ~200 kB each way
    r = kubectl(env, "exec", "-i", "bb", "--", "cat", stdin=big)
    assert r.returncode == 0 and r.stdout == big

    # -it on a terminal: a tty exec (kubectl also sends the terminal's size)
    rc, out = _in_pty([shutil.which("kubectl"), "--kubeconfig", str(env["config"]), "--cache-dir",
                       str(env["cache"]), "exec", "-it", "bb", "--", "sh", "-c",
                       "test -t 0 && test -t 1 && echo a-tty; "
                       # the size arrives just after the start (as with the kubelet)
                       "for i in 1 2 3 4 5 6 7 8 9 10; do stty -a | grep -q 'rows [1-9]' && break; "
                       "sleep 0.2; done; stty -a | head -1"])
    assert rc == 0, out
    lines = out.replace("\r", "").splitlines()
    assert "a-tty" in lines, out
    assert "rows 24; columns 80;" in lines[-1], out


def _in_pty(cmd: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run `cmd` on a pseudo-terminal (24x80); its exit code and everything it wrote."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:          # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        return proc.wait(10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_kubectl_cp_both_ways(env, tmp_path):
    """kubectl cp is tar over exec: binary stdin and stdout through the stream."""
    blob = os.urandom(300_000)
    (tmp_path / "blob").write_bytes(blob)
    r = kubectl(env, "cp", str(tmp_path / "blob"), "bb:/tmp/blob")
    assert r.returncode == 0, r.stderr
    r = kubectl(env, "cp", "bb:/tmp/blob", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == blob
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        assert kubectl(env, "exec", "bb", "--", "true").returncode == 0
        times.append(time.perf_counter() - t0)
    print(f"\nkubectl exec bb -- true on a docker node (whole kubectl run): "
          f"median {sorted(times)[2] * 1000:.0f} ms")


def test_kubectl_run_attaches_stdin_and_returns_the_exit_code(env):
    """kubectl run -i --rm: a pod with stdin, attached (docker attach) once it runs."""
    r = kubectl(env, "run", "once", "-i", "--rm", "--image=kbox/busybox:latest",
                "--image-pull-policy=IfNotPresent", "--restart=Never", "--",
                "sh", "-c", "read x; echo got $x; exit 3", stdin="hello\n", timeout=90)
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("got hello\n") and 'pod "once" deleted' in r.stdout
    assert "pod default/once terminated (Error)" in r.stderr


def test_a_missing_executable_is_the_runtimes_error(env):
    r = kubectl(env, "exec", "bb", "--", "no-such-program")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: Internal error occurred: error executing command in container: ")
    assert "no-such-program" in r.stderr and "executable file not found" in r.stderr


def test_logs_and_attach_of_a_real_container(env):
    r = kubectl(env, "logs", "bb")
    assert (r.returncode, r.stdout) == (0, "booted\n")
    r = kubectl(env, "logs", "bb", "--timestamps")
    assert r.stdout.split(" ", 1)[1] == "booted\n"
    # logs -f keeps following until kubectl is stopped
    proc = subprocess.Popen([shutil.which("kubectl"), "--kubeconfig", str(env["config"]),
                             "--cache-dir", str(env["cache"]), "logs", "-f", "bb"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "booted\n"
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_port_forward_with_the_official_client(env):
    """pods/portforward over WebSocket (v4.channel.k8s.io) as kubernetes.stream.portforward
    speaks it: an HTTP request through port 8080 of a busybox httpd pod, and the error of a
    port nothing listens on. (kubectl port-forward needs SPDY: refused, with a clear error.)"""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig
    from kubernetes.stream import portforward
    api = kconfig.new_client_from_config(config_file=str(env["config"]))
    try:
        v1 = kclient.CoreV1Api(api)
        pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default", ports="8080,9999")
        s = pf.socket(8080)
        s.settimeout(20)
        s.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
        dead = pf.socket(9999)
        dead.settimeout(20)
        assert dead.recv(100) == b""
        assert pf.error(9999).startswith("error forwarding port 9999 to pod web: ")
        assert "Connection refused" in pf.error(9999)
        assert pf.error(8080) is None
    finally:
        api.close()
    r = kubectl(env, "port-forward", "web", "18080:8080", timeout=20)
    assert r.returncode == 1 and "kbox does not serve kubectl port-forward" in r.stderr
