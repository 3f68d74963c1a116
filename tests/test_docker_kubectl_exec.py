"""The real kubectl's exec, logs and attach into real containers (a one-node docker cluster).

`kubectl exec` reaches the pod's container through a `docker exec` whose
socket is streamed both ways (DockerRuntime.exec_stream): output on stdout and
stderr, the exit code, stdin passed through, a tty, and an executable that is
not there reported as containerd does. Needs a Docker engine (marked `docker`)
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
        deadline = time.monotonic() + 90
        while c.client.get("pods", "bb", "default").get("status", {}).get("phase") != "Running":
            assert time.monotonic() < deadline, "the busybox pod did not start"
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
                       "for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>/dev/null) && "
                       "[ \"$s\" != '0 0' ] && break; sleep 0.2; done; echo $s"])
    assert rc == 0, out
    lines = out.replace("\r", "").splitlines()
    assert "a-tty" in lines, out
    assert lines[-1] == "24 80", out


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
