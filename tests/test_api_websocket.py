"""pods/exec and pods/attach over WebSocket (kbox.api.streams), driven by a plain
WebSocket client (the `websockets` library's sync client) against a sim cluster
over HTTPS with tokens.

Checks the channel framing byte by byte (1 stdout, 2 stderr, 3 the closing
Status, 0 stdin, 255 close), v5 and v4 subprotocols, the refusals before the
upgrade (401, 403 for the viewer, 404 pod, 400 container, unknown
subprotocol, port-forward on a sim node) as HTTP Status responses, the SPDY
refusal older kubectl gets,
the session adapters, and measures an exec round trip.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from kbox.api.streams import exit_status, internal_status
from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from kbox.runtime import STDERR, STDOUT, BufferedExecSession, ExecStartError, LinesSession


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ClusterConfig.model_validate({"name": f"ws{uuid.uuid4().hex[:5]}", "runtime": "sim",
                                              "nodes": {"count": 1}}))
    c.start()
    c.client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"}, "spec": {
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]},
                       {"name": "side", "image": "busybox"}]}}, "default")
    deadline = time.monotonic() + 20
    while c.client.get("pods", "box", "default").get("status", {}).get("phase") != "Running":
        assert time.monotonic() < deadline, "box did not start"
        time.sleep(0.05)
    yield c
    c.stop()


def _ctx(cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cluster.credentials.ca_path)


def _url(cluster, query: str, sub: str = "exec", pod: str = "box") -> str:
    return cluster.url.replace("https://", "wss://") + f"/api/v1/namespaces/default/pods/{pod}/{sub}?{query}"


def _open(cluster, query: str, *, sub: str = "exec", pod: str = "box", token: str | None = "admin",
          protocols=("v5.channel.k8s.io",)):
    headers = {}
    if token == "admin":
        headers["Authorization"] = f"Bearer {cluster.credentials.admin_token}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return connect(_url(cluster, query, sub, pod), ssl=_ctx(cluster), additional_headers=headers,
                   subprotocols=list(protocols), open_timeout=10, close_timeout=5)


def _drain(ws) -> tuple[list[tuple[int, bytes]], dict]:
    """Every frame until the error channel's Status; the socket is closed after it."""
    frames = []
    while True:
        msg = ws.recv(timeout=10)
        assert isinstance(msg, bytes), "every message is binary"
        frames.append((msg[0], msg[1:]))
        if msg[0] == 3:
            return frames, json.loads(msg[1:])


def test_exec_frames_output_on_its_channels_and_ends_with_a_status(cluster):
    with _open(cluster, "command=sh&command=-c&command=echo%20hi;%20exit%200&container=main"
                        "&stdout=true&stderr=true") as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        frames, status = _drain(ws)
    assert frames[0] == (1, b"hi\n")
    assert status == {"metadata": {}, "status": "Success"}


def test_a_non_zero_exit_code_is_a_NonZeroExitCode_status(cluster):
    with _open(cluster, "command=sh&command=-c&command=exit%203&container=main&stdout=true") as ws:
        frames, status = _drain(ws)
    assert frames == [(3, frames[0][1])]               # no output, only the Status
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert status == exit_status(3, ["sh", "-c", "exit 3"])


def test_stdin_passes_through_and_v5_close_ends_it(cluster):
    with _open(cluster, "command=cat&container=main&stdin=true&stdout=true&stderr=true") as ws:
        ws.send(b"\x00hello ")
        ws.send(b"\x00world\n")
        ws.send(b"\xff\x00")                            # v5: the client closed stdin
        frames, status = _drain(ws)
    assert b"".join(d for ch, d in frames if ch == 1) == b"hello world\n"
    assert status["status"] == "Success"


def test_v4_is_accepted_and_v5_preferred(cluster):
    with _open(cluster, "command=echo&command=four&container=main&stdout=true",
               protocols=("v4.channel.k8s.io",)) as ws:
        assert ws.subprotocol == "v4.channel.k8s.io"
        frames, status = _drain(ws)
    assert frames[0] == (1, b"four\n") and status["status"] == "Success"
    with _open(cluster, "command=true&container=main&stdout=true",
               protocols=("v4.channel.k8s.io", "v5.channel.k8s.io")) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"


def test_a_missing_executable_is_an_internal_error_status(cluster):
    with _open(cluster, "command=nope&container=main&stdout=true") as ws:
        frames, status = _drain(ws)
    assert status["reason"] == "InternalError" and status["code"] == 500
    assert 'exec: "nope": executable file not found in $PATH' in status["message"]
    assert status["message"].startswith("Internal error occurred: error executing command in container:")


def _refused(cluster, query: str, **kw) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as e:
        _open(cluster, query, **kw)
    r = e.value.response
    return r.status_code, json.loads(r.body)


def test_refusals_before_the_upgrade_are_http_statuses(cluster):
    code, body = _refused(cluster, "command=ls", token=None)
    assert (code, body["reason"]) == (401, "Unauthorized")
    code, body = _refused(cluster, "command=ls", token=cluster.credentials.viewer_token)
    assert (code, body["reason"]) == (403, "Forbidden")
    assert 'cannot get resource "pods/exec"' in body["message"]
    code, body = _refused(cluster, "command=ls", pod="missing")
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "missing" not found')
    code, body = _refused(cluster, "command=ls&container=nope")
    assert (code, body["message"]) == (400, "container nope is not valid for pod box")
    code, body = _refused(cluster, "command=ls")          # two containers, none chosen
    assert code == 400 and "a container name must be specified" in body["message"]
    code, body = _refused(cluster, "container=main")      # no command
    assert (code, body["reason"]) == (422, "Invalid")
    code, body = _refused(cluster, "command=ls&container=main", protocols=("base64.channel.k8s.io",))
    assert code == 400 and "requested protocol(s) are not supported" in body["message"]


def test_port_forward_on_a_sim_node_is_refused_before_the_upgrade(cluster):
    code, body = _refused(cluster, "ports=8080", sub="portforward", protocols=("v4.channel.k8s.io",))
    assert (code, body["reason"]) == (400, "BadRequest")
    assert "sim nodes run no processes and have no pod network to forward port 8080" in body["message"]
    code, body = _refused(cluster, "", sub="portforward", protocols=("v4.channel.k8s.io",))
    assert (code, body["message"]) == (400, 'query parameter "ports" is required')
    code, body = _refused(cluster, "ports=http", sub="portforward", protocols=("v4.channel.k8s.io",))
    assert code == 400 and "invalid port number" in body["message"]
    code, body = _refused(cluster, "ports=80", sub="portforward", pod="missing",
                          protocols=("v4.channel.k8s.io",))
    assert code == 404


def test_spdy_upgrades_are_refused_after_the_pod_is_checked(cluster):
    ca = _ctx(cluster)
    h = {"Authorization": f"Bearer {cluster.credentials.admin_token}"}
    base = cluster.url + "/api/v1/namespaces/default/pods"
    spdy = {**h, "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
    r = httpx.post(f"{base}/box/exec?command=ls&container=main", headers=spdy, verify=ca)
    assert r.status_code == 403
    assert r.text.startswith("unable to upgrade: unable to negotiate protocol: client supports SPDY/3.1")
    assert "WebSocket" in r.text and "KUBECTL_REMOTE_COMMAND_WEBSOCKETS" in r.text
    r = httpx.post(f"{base}/missing/exec?command=ls", headers=spdy, verify=ca)
    assert r.status_code == 404 and r.json()["message"] == 'pods "missing" not found'
    r = httpx.post(f"{base}/box/exec?command=ls&container=main", headers=h, verify=ca)
    assert (r.status_code, r.json()["message"]) == (400, "Upgrade request required")
    r = httpx.post(f"{base}/box/portforward?ports=80", headers=spdy, verify=ca)
    assert r.status_code == 403 and "port-forward" in r.text
    viewer = {**spdy, "Authorization": f"Bearer {cluster.credentials.viewer_token}"}
    assert httpx.post(f"{base}/box/exec?command=ls", headers=viewer, verify=ca).status_code == 403


def test_attach_streams_the_containers_output_from_now(cluster):
    # the sim writes a line every 5 s of clock time: attach waits for the next one
    with _open(cluster, "container=main&stdout=true", sub="attach") as ws:
        msg = ws.recv(timeout=10)
    assert msg[0] == 1 and b"main: running for" in msg[1:]


def test_the_client_going_away_ends_the_session(cluster):
    with _open(cluster, "command=cat&container=main&stdin=true&stdout=true") as ws:
        ws.send(b"\x00half")                     # and goes away without closing stdin
    # the server is still fine afterwards
    with _open(cluster, "command=echo&command=ok&container=main&stdout=true") as ws:
        frames, status = _drain(ws)
    assert frames[0] == (1, b"ok\n")


# ---- the session adapters ------------------------------------------------------------------

def test_buffered_session_runs_once_stdin_is_closed_and_merges_a_tty():
    calls = []

    def run(data):
        calls.append(data)
        return 5, b"out:" + (data or b""), b"err"

    s = BufferedExecSession(run, stdin=True)
    s.write_stdin(b"ab")
    s.write_stdin(b"c")
    got = []
    t = threading.Thread(target=lambda: got.extend(iter(s.read, None)))
    t.start()
    time.sleep(0.1)
    assert calls == [] and t.is_alive()          # still waiting for stdin's end
    s.close_stdin()
    t.join(5)
    assert got == [(STDOUT, b"out:abc"), (STDERR, b"err")] and s.wait() == 5
    tty = BufferedExecSession(run, tty=True)
    assert list(iter(tty.read, None)) == [(STDOUT, b"out:err")] and calls[-1] is None

    abandoned = BufferedExecSession(run, stdin=True)
    abandoned.close()
    assert abandoned.read() is None


def test_buffered_session_raises_the_start_error_from_read():
    def run(data):
        raise ExecStartError("no such file")
    with pytest.raises(ExecStartError):
        BufferedExecSession(run).read()


def test_lines_session_stops_when_closed():
    stop = threading.Event()
    s = LinesSession(iter(["a\n", "b\n"]), stop)
    assert s.read() == (STDOUT, b"a\n")
    s.close()
    assert s.read() is None and stop.is_set()


def test_internal_status_shape():
    st = internal_status("boom")
    assert st["status"] == "Failure" and st["reason"] == "InternalError" and st["code"] == 500
    assert st["message"] == "Internal error occurred: error executing command in container: boom"


def test_the_official_python_clients_exec(cluster, tmp_path):
    """kubernetes.stream.stream() (it offers v5 and v4) over the same WebSocket."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig
    from kubernetes.stream import stream

    from kbox.cli import kubeconfig
    path = tmp_path / "config"
    kubeconfig.merge(kubeconfig.kubeconfig_for("py", cluster.url, cluster.credentials.ca_pem,
                                               cluster.credentials.admin_token), path)
    api = kconfig.new_client_from_config(config_file=str(path))
    try:
        v1 = kclient.CoreV1Api(api)
        out = stream(v1.connect_get_namespaced_pod_exec, "box", "default", container="main",
                     command=["echo", "from python"], stderr=True, stdin=False, stdout=True, tty=False)
        assert out == "from python\n"
        resp = stream(v1.connect_get_namespaced_pod_exec, "box", "default", container="main",
                      command=["sh", "-c", "echo x; exit 4"], stderr=True, stdin=False, stdout=True,
                      tty=False, _preload_content=False)
        resp.run_forever(timeout=10)
        assert resp.read_stdout() == "x\n" and resp.returncode == 4
    finally:
        api.close()
