"""The real kubectl's exec, attach and logs against a sim cluster over HTTPS.

kubectl 1.30+ runs exec over WebSocket (v5.channel.k8s.io): output, exit
codes, stdin, container choice and the errors kubectl prints (missing pod,
missing container, an executable that is not there, a viewer's token). Older
kubectl (SPDY only) gets a clear refusal. logs: plain, -c, --tail,
--timestamps, --since, --previous after a restart, -f (first lines while the
container runs; kubectl ends when the container exits), --since-time,
--limit-bytes, deploy/NAME and -l.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest

from kbox.cli import kubeconfig
from kbox.cluster import Cluster
from kbox.config import ClusterConfig

pytestmark = pytest.mark.kubectl

SDK = pathlib.Path("/usr/lib/google-cloud-sdk/bin")


def _pod(name: str, containers: list[str], **extra) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **extra.pop("meta", {})},
           "spec": {"terminationGracePeriodSeconds": 0,
                    "containers": [{"name": c, "image": "busybox", "command": ["sleep", "3600"]}
                                   for c in containers], **extra}}
    return pod


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("kubectl-exec")
    c = Cluster(ClusterConfig.model_validate({
        "name": f"kx{uuid.uuid4().hex[:5]}", "runtime": "sim", "nodes": {"count": 1},
        "timings": {"restartBackoffBase": 0.5, "restartBackoffMax": 1}}))
    c.start()
    try:
        cl = c.client
        cl.create("pods", _pod("box", ["main"]), "default")
        cl.create("pods", _pod("duo", ["a", "b"]), "default")
        cl.create("pods", _pod("flaky", ["app"], meta={"annotations": {"kbox.io/sim-run-seconds": "1"}}),
                  "default")
        cl.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}},
            "default")
        admin, viewer = tmp / "admin", tmp / "viewer"
        creds = c.credentials
        kubeconfig.merge(kubeconfig.kubeconfig_for("t", c.url, creds.ca_pem, creds.admin_token), admin)
        kubeconfig.merge(kubeconfig.kubeconfig_for("t", c.url, creds.ca_pem, creds.viewer_token), viewer)

        def running() -> bool:
            pods = cl.list("pods", "default")["items"]
            return len(pods) == 5 and all(p.get("status", {}).get("phase") == "Running" for p in pods)
        deadline = time.monotonic() + 30
        while not running():
            assert time.monotonic() < deadline, "the pods did not start"
            time.sleep(0.1)
        yield {"cluster": c, "admin": admin, "viewer": viewer, "cache": tmp / "cache"}
    finally:
        c.stop()


def kubectl(env, *args: str, binary: str | None = None, kubeconfig_path=None, stdin: str | None = None,
            extra_env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    cmd = [binary or shutil.which("kubectl"), "--kubeconfig", str(kubeconfig_path or env["admin"]),
           "--cache-dir", str(env["cache"]), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(extra_env or {})})


# ---- exec ------------------------------------------------------------------------------------

def test_exec_prints_the_output(env):
    r = kubectl(env, "exec", "box", "--", "echo", "hello", "world")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello world\n", "")


def test_exec_exits_with_the_commands_exit_code(env):
    r = kubectl(env, "exec", "box", "--", "sh", "-c", "echo before; exit 3")
    assert r.returncode == 3 and r.stdout == "before\n"
    assert r.stderr.strip() == "command terminated with exit code 3"


def test_exec_passes_stdin_through(env):
    r = kubectl(env, "exec", "-i", "box", "--", "cat", stdin="hi from stdin\nline two\n")
    assert (r.returncode, r.stdout) == (0, "hi from stdin\nline two\n")


def test_exec_tty_is_best_effort(env):
    r = kubectl(env, "exec", "-t", "box", "--", "echo", "tty")
    assert r.returncode == 0 and r.stdout.replace("\r", "") == "tty\n"


def test_exec_chooses_the_container(env):
    r = kubectl(env, "exec", "duo", "-c", "b", "--", "hostname")
    assert (r.returncode, r.stdout) == (0, "duo\n")
    r = kubectl(env, "exec", "duo", "--", "hostname")
    # kubectl picks the first container itself and says so
    assert r.returncode == 0 and 'Defaulted container "a" out of: a, b' in r.stderr


def test_exec_errors_are_kubectls(env):
    r = kubectl(env, "exec", "missing", "--", "ls")
    assert r.returncode == 1 and r.stderr.strip() == 'Error from server (NotFound): pods "missing" not found'
    r = kubectl(env, "exec", "box", "-c", "nope", "--", "ls")
    assert r.returncode == 1
    assert r.stderr.strip() == "Error from server (BadRequest): container nope is not valid for pod box"
    r = kubectl(env, "exec", "box", "--", "no-such-program")
    assert r.returncode == 1
    assert r.stderr.startswith("error: Internal error occurred: error executing command in container: ")
    assert 'exec: "no-such-program": executable file not found in $PATH' in r.stderr


def test_a_viewer_may_not_exec(env):
    r = kubectl(env, "exec", "box", "--", "ls", kubeconfig_path=env["viewer"])
    assert r.returncode == 1
    # the WebSocket upgrade is refused (403), kubectl falls back to SPDY's POST: refused too
    assert r.stderr.strip() == ('Error from server (Forbidden): pods "box" is forbidden: User '
                                '"kbox-viewer" cannot create resource "pods/exec" in API group "" '
                                'in the namespace "default"'), r.stderr


def _versions() -> list[str]:
    return sorted(p.name.rsplit(".", 2)[-2] + "." + p.name.rsplit(".", 1)[-1]
                  for p in SDK.glob("kubectl.1.*")) if SDK.is_dir() else []


@pytest.mark.parametrize("version", _versions() or ["none"])
def test_exec_with_every_kubectl_version(env, version):
    binary = SDK / f"kubectl.{version}"
    if not binary.exists():
        pytest.skip("no versioned kubectl binaries on this machine")
    minor = int(version.split(".")[1])
    r = kubectl(env, "exec", "box", "--", "sh", "-c", "echo v; exit 4", binary=str(binary))
    if minor >= 30:
        assert (r.returncode, r.stdout) == (4, "v\n"), r.stderr
        return
    # SPDY only: a clear refusal naming what to do
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: unable to upgrade connection: unable to upgrade: unable to "
                               "negotiate protocol: client supports SPDY/3.1"), r.stderr
    assert "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true" in r.stderr
    if minor == 29:
        r = kubectl(env, "exec", "box", "--", "echo", "ws", binary=str(binary),
                    extra_env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true"})
        assert (r.returncode, r.stdout) == (0, "ws\n"), r.stderr


def test_spdy_forced_on_a_new_kubectl_is_refused_clearly(env):
    r = kubectl(env, "exec", "box", "--", "echo", "x",
                extra_env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert r.returncode == 1 and "unable to negotiate protocol" in r.stderr


def test_port_forward_is_refused_clearly(env):
    r = kubectl(env, "port-forward", "box", "18080:80", timeout=20)
    assert r.returncode == 1 and "kbox does not serve kubectl port-forward" in r.stderr, r.stderr


# ---- logs ------------------------------------------------------------------------------------

def test_logs(env):
    r = kubectl(env, "logs", "box")
    assert r.returncode == 0 and r.stdout.startswith("main: started image busybox command: sleep 3600\n")
    r = kubectl(env, "logs", "duo", "-c", "b")
    assert r.returncode == 0 and r.stdout.startswith("b: started image busybox")
    r = kubectl(env, "logs", "duo", "-c", "zz")
    assert r.returncode == 1 and "container zz is not valid for pod duo" in r.stderr


def test_logs_tail_timestamps_since(env):
    full = kubectl(env, "logs", "box").stdout.splitlines()
    r = kubectl(env, "logs", "box", "--tail=1")
    assert r.stdout.splitlines() == full[-1:]
    r = kubectl(env, "logs", "box", "--timestamps")
    first = r.stdout.splitlines()[0]
    stamp, _, text = first.partition(" ")
    assert text == full[0] and stamp.endswith("Z") and "T" in stamp
    assert kubectl(env, "logs", "box", "--since=1h").stdout.splitlines()[:1] == full[:1]


def test_logs_since_time_and_limit_bytes(env):
    deadline = time.monotonic() + 15          # the sim logs a line every 5 s: wait for two
    while len(stamped := kubectl(env, "logs", "box", "--timestamps").stdout.splitlines()) < 2:
        assert time.monotonic() < deadline, stamped
        time.sleep(0.5)
    full = kubectl(env, "logs", "box").stdout
    second = stamped[1].split(" ", 1)[0]
    r = kubectl(env, "logs", "box", f"--since-time={second}")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == stamped[1].split(" ", 1)[1]
    r = kubectl(env, "logs", "box", "--since-time=2020-01-01T00:00:00Z")
    assert r.stdout.splitlines()[0] == full.splitlines()[0]
    r = kubectl(env, "logs", "box", "--limit-bytes=10")
    assert (r.returncode, r.stdout) == (0, full[:10])
    r = kubectl(env, "logs", "-f", "box", "--limit-bytes=12", timeout=20)   # ends at the limit
    assert (r.returncode, r.stdout) == (0, full[:12])


def test_logs_of_a_deployment_and_by_label(env):
    r = kubectl(env, "logs", "deploy/web")
    assert r.returncode == 0 and r.stdout.startswith("nginx: started image nginx")
    r = kubectl(env, "logs", "-l", "app=web")
    assert r.returncode == 0 and r.stdout.count("nginx: started image nginx") == 2


def test_logs_previous_after_a_restart(env):
    cl = env["cluster"].client
    deadline = time.monotonic() + 30
    while cl.get("pods", "flaky", "default")["status"]["containerStatuses"][0]["restartCount"] < 1:
        assert time.monotonic() < deadline, "flaky did not restart"
        time.sleep(0.1)
    r = kubectl(env, "logs", "flaky", "--previous")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("app: started image busybox")
    assert r.stdout.splitlines()[-1] == "app: exited with code 0"
    r = kubectl(env, "logs", "box", "--previous")
    assert r.returncode == 1
    assert 'previous terminated container "main" in pod "box" not found' in r.stderr


def test_logs_follow_streams_while_the_container_runs(env):
    cmd = [shutil.which("kubectl"), "--kubeconfig", str(env["admin"]), "--cache-dir", str(env["cache"]),
           "logs", "-f", "box"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=15), "no line within 15 s"
        assert proc.stdout.readline().startswith("main: started image busybox")
        assert proc.poll() is None, "kubectl logs -f keeps following a running container"
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_follow_ends_when_the_container_exits(env):
    # flaky's containers run 1 s: following one ends with its exit line
    r = kubectl(env, "logs", "-f", "flaky", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "app: exited with code 0"


def test_attach_follows_the_output(env):
    cmd = [shutil.which("kubectl"), "--kubeconfig", str(env["admin"]), "--cache-dir", str(env["cache"]),
           "attach", "box"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=15), "no line within 15 s"
        assert proc.stdout.readline().startswith("main: running for")
    finally:
        proc.terminate()
        proc.wait(10)
