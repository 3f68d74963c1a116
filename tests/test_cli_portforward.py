"""`kbox port-forward` against a sim cluster over HTTPS (its HTTP client, as `kbox` on a
terminal uses): kubectl's port syntax and errors, which pod a svc/deploy/rs picks, a
Service port translated to the pod's (named) target port, local port 0, and each
connection going through pods/portforward over WebSocket — which sim nodes refuse, so
the connection is closed with the server's reason. Bytes through a real pod: see
tests/test_docker_hostaccess.py."""

from __future__ import annotations

import io
import re
import socket
import threading
import time

import pytest

from kbox.cli.registry import Context, execute
from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for

NS = "default"


class _Out(io.StringIO):
    """stdout / stderr shared with the command's threads."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            return super().write(s)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ClusterConfig.model_validate({"name": "pf", "runtime": "sim", "nodes": {"count": 1}}))
    c.start(timeout=30)
    client = c.client
    client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "lonely", "labels": {"app": "none"}},
                           "spec": {"nodeSelector": {"nowhere": "true"},
                                    "containers": [{"name": "c", "image": "busybox"}]}}, NS)
    client.create("deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "httpd", "image": "busybox",
                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}, NS)
    client.create("services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "front", "port": 80, "targetPort": "http"},
            {"name": "plain", "port": 81, "targetPort": 9090}]}}, NS)
    client.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bare"},
                               "spec": {"ports": [{"port": 80}]}}, NS)
    wait_for(lambda: sum((p.get("status") or {}).get("phase") == "Running"
                         for p in client.list("pods", NS, label_selector="app=web")["items"]) == 2,
             timeout=30, what="the web pods to run")
    yield c
    c.stop()


def run(cluster, *argv: str) -> tuple[int, str, str]:
    """A command that ends by itself (errors)."""
    out, err = _Out(), _Out()
    ctx = Context(client=cluster.http_client(), out=out, err=err)
    rc = execute(ctx, ["port-forward", *argv])
    return rc, out.text(), err.text()


class Running:
    """A port-forward running in a thread until stop()."""

    def __init__(self, cluster, *argv: str) -> None:
        self.out, self.err = _Out(), _Out()
        self.ctx = Context(client=cluster.http_client(), out=self.out, err=self.err)
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self.thread.start()

    def _run(self, argv) -> None:
        self.rc = execute(self.ctx, ["port-forward", *argv])

    def forwarding(self, count: int = 1) -> list[tuple[int, int]]:
        """(local, remote) of each "Forwarding from" line, once `count` are printed."""
        wait_for(lambda: len(re.findall("Forwarding from", self.out.text())) >= count
                 or self.rc is not None, timeout=10, what="port-forward to listen")
        return [(int(a), int(b)) for a, b in
                re.findall(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", self.out.text())]

    def stop(self) -> int | None:
        self.ctx.stop.set()
        self.thread.join(10)
        return self.rc


def test_bad_input_is_refused_in_kubectls_words(cluster):
    assert run(cluster)[0] == 1
    assert run(cluster, "pod/lonely")[2] == \
        "error: TYPE/NAME and list of ports are required for port-forward\n"
    for spec, why in [("abc", "error parsing local port 'abc': strconv.ParseUint: parsing \"abc\": "
                              "invalid syntax"),
                      ("70000", "error parsing local port '70000': strconv.ParseUint: parsing "
                                "\"70000\": value out of range"),
                      ("8080:0", "remote port must be > 0"),
                      ("1:2:3", "invalid port format '1:2:3'"),
                      ("8080:x", "Pod 'web-x' does not have a named port 'x'")]:
        target = "deploy/web" if spec == "8080:x" else "pod/lonely"
        rc, _, err = run(cluster, target, spec)
        assert rc == 1
        assert re.fullmatch("error: " + re.escape(why).replace("web\\-x", "web-[a-z0-9-]+") + "\n",
                            err), err
    assert run(cluster, "pod/lonely", "80", "--address", "example")[2] == \
        "error: example is not a valid IP\n"


def test_missing_objects_and_pods_not_running(cluster):
    assert run(cluster, "pod/nope", "80")[1:] == ("", 'Error from server (NotFound): pods "nope" not found\n')
    assert run(cluster, "nope", "80")[2] == 'Error from server (NotFound): pods "nope" not found\n'
    assert run(cluster, "svc/nope", "80")[2] == \
        'Error from server (NotFound): services "nope" not found\n'
    assert run(cluster, "deploy/nope", "80")[2] == \
        'Error from server (NotFound): deployments.apps "nope" not found\n'
    assert run(cluster, "pod/lonely", "80")[2] == \
        "error: unable to forward port because pod is not running. Current status=Pending\n"
    assert run(cluster, "svc/bare", "80")[2] == ("error: cannot attach to *v1.Service: invalid "
                                                 "service 'bare': Service is defined without a selector\n")
    assert run(cluster, "svc/web", "82")[2] == "error: Service web does not have a service port 82\n"
    assert run(cluster, "svc/web", "0:back")[2] == \
        "error: Service 'web' does not have a named port 'back'\n"


def test_service_ports_become_the_pods_target_ports(cluster):
    # 0:80 -> the named target port "http" = 8080; :plain -> 81 -> 9090; local 0 picks a port
    pf = Running(cluster, "svc/web", "0:80", ":plain")
    try:
        fwd = pf.forwarding(2)
        assert [r for _, r in fwd] == [8080, 9090]
        assert all(local > 0 for local, _ in fwd)
        assert pf.err.text() == ""
    finally:
        assert pf.stop() == 0


def test_each_connection_goes_through_pods_portforward(cluster):
    """Over the API's WebSocket: the sim node refuses, and the local connection is closed
    with the server's reason on stderr, as kubectl reports a failed forward."""
    pf = Running(cluster, "deploy/web", "0:8080")
    try:
        [(local, remote)] = pf.forwarding()
        assert remote == 8080
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            assert s.recv(10) == b""
        wait_for(lambda: "an error occurred" in pf.err.text(), timeout=10, what="the error")
        assert f"Handling connection for {local}\n" in pf.out.text()
        assert pf.err.text().startswith(f"an error occurred forwarding {local} -> 8080: sim nodes "
                                        "run no processes and have no pod network to forward port 8080")
        assert pf.rc is None            # one failed connection does not end port-forward
    finally:
        assert pf.stop() == 0
    # stopped: the listener is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", local), timeout=5)


def test_a_taken_local_port(cluster):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        rc, out, err = run(cluster, "deploy/web", f"{port}:8080")
        assert rc == 1 and out == ""
        assert err == (f"Unable to listen on port {port}: Listeners failed to create with the "
                       f"following errors: [unable to create listener: Error listen tcp4 "
                       f"127.0.0.1:{port}: bind: address already in use]\n"
                       f"error: unable to listen on any of the requested ports: [{{{port} 8080}}]\n")
        # another port still works: only the taken one is reported
        pf = Running(cluster, "deploy/web", f"{port}:8080", "0:8080")
        try:
            assert len(pf.forwarding(1)) == 1
            time.sleep(0.2)
            assert pf.rc is None and f"Unable to listen on port {port}" in pf.err.text()
        finally:
            assert pf.stop() == 0
    finally:
        holder.close()


def test_the_command_is_registered_with_kubectls_help():
    from kbox.cli.registry import lookup
    cmd = lookup("port-forward")
    assert cmd.help == "Forward one or more local ports to a pod"
