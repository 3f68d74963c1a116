"""Reaching Services and pods from the host on Docker-in-Docker nodes: `kbox
port-forward` to a busybox httpd pod, and a LoadBalancer and a NodePort Service
answering on 127.0.0.1 (kbox's host listeners -> a Ready node's node port ->
kube-proxy's rules -> a pod). Every request goes to 127.0.0.1 only."""

from __future__ import annotations

import http.client
import re
import socket
import threading
import uuid

import pytest

from kbox.cli.registry import Context, execute
from kbox.cluster import Cluster
from waiting import wait_for

try:
    from test_cli_portforward import _Out
    from test_docker_cluster import _config, _ready_pods
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_cli_portforward import _Out
    from tests.test_docker_cluster import _config, _ready_pods

pytestmark = pytest.mark.docker

NS = "default"
# each pod serves its own name, so the answers tell which pod served them
SERVE_NAME = "hostname > /var/www/index.html; exec httpd -f -p 8080 -h /var/www"


def _web(replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{
                         "name": "httpd", "image": "kbox/busybox:latest",
                         "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", SERVE_NAME],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                            "periodSeconds": 1}}]}}}}


def _service(name: str, type_: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """GET http://127.0.0.1:PORT/ (straight to 127.0.0.1, never through a proxy)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def answers(port: int) -> tuple[int, str] | None:
    try:
        return get(port, timeout=5)
    except OSError:
        return None


@pytest.fixture(scope="module")
def cluster():
    name = f"kha{uuid.uuid4().hex[:5]}"
    c = Cluster(_config(name, nodes=2))
    try:
        c.start(timeout=180)
        c.client.create("deployments", _web(), NS)
        wait_for(lambda: len(_ready_pods(c)) == 2, timeout=120, what="two ready web pods")
        yield c
    finally:
        c.stop()


class Running:
    def __init__(self, cluster: Cluster, *argv: str) -> None:
        self.out, self.err = _Out(), _Out()
        self.ctx = Context(client=cluster.http_client(), out=self.out, err=self.err)
        self.rc: int | None = None
        self.thread = threading.Thread(target=lambda: setattr(
            self, "rc", execute(self.ctx, ["port-forward", *argv])), daemon=True)
        self.thread.start()

    def local_port(self) -> int:
        found = wait_for(lambda: re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)",
                                           self.out.text()) or self.rc is not None,
                         timeout=20, what="port-forward to listen")
        assert found is not True, self.err.text()
        return int(found.group(1))

    def stop(self) -> int | None:
        self.ctx.stop.set()
        self.thread.join(10)
        return self.rc


def test_port_forward_to_a_pod_and_to_a_service(cluster):
    pod = _ready_pods(cluster)[0]["metadata"]["name"]
    pf = Running(cluster, f"pod/{pod}", "0:8080")
    try:
        port = pf.local_port()
        assert get(port) == (200, f"{pod}\n")
        big = get(port, "/nothing-here")          # busybox's own 404 page, through the tunnel
        assert big[0] == 404
        assert f"Handling connection for {port}\n" in pf.out.text()
    finally:
        assert pf.stop() == 0
    # svc/web: service port 80 -> the pods' named target port "http" (8080)
    cluster.client.create("services", _service("web-pf", "ClusterIP", 80), NS)
    pf = Running(cluster, "svc/web-pf", "0:80")
    try:
        port = pf.local_port()
        assert "-> 8080" in pf.out.text()
        status, body = get(port)
        assert status == 200 and body.strip() in {p["metadata"]["name"] for p in _ready_pods(cluster)}
        assert pf.err.text() == ""
    finally:
        assert pf.stop() == 0
        cluster.client.delete("services", "web-pf", NS)


def test_loadbalancer_and_nodeport_answer_on_127_0_0_1_from_the_host(cluster):
    """Needs kube-proxy's NodePort rules in the nodes (kbox.node.proxy)."""
    lb_port = free_port()
    cluster.client.create("services", _service("web-lb", "LoadBalancer", lb_port), NS)
    np_svc = cluster.client.create("services", _service("web-np", "NodePort", 80), NS)
    node_port = np_svc["spec"]["ports"][0]["nodePort"]
    try:
        lb = wait_for(lambda: (cluster.client.get("services", "web-lb", NS).get("status") or {})
                      .get("loadBalancer", {}).get("ingress"), timeout=20, what="the LB status")
        assert lb == [{"ip": "127.0.0.1", "ipMode": "VIP",
                       "ports": [{"port": lb_port, "protocol": "TCP"}]}]
        pods = {p["metadata"]["name"] for p in _ready_pods(cluster)}
        for port in (lb_port, node_port):
            first = wait_for(lambda: answers(port), timeout=30, what=f"127.0.0.1:{port} to answer")
            assert first[0] == 200 and first[1].strip() in pods
            # kube-proxy's random balancing spreads repeated requests over both pods
            served = {get(port)[1].strip() for _ in range(30)}
            assert served == pods, (port, served)
        evs = [e["reason"] for e in cluster.client.list("events", NS)["items"]
               if e["involvedObject"]["name"] == "web-lb"]
        assert "EnsuredLoadBalancer" in evs
    finally:
        cluster.client.delete("services", "web-lb", NS)
        cluster.client.delete("services", "web-np", NS)
    # the Services gone, their host listeners close
    for port in (lb_port, node_port):
        wait_for(lambda: _refused(port), timeout=20, what=f"127.0.0.1:{port} to close")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_the_cluster_stopping_closes_every_listener():
    name = f"khb{uuid.uuid4().hex[:5]}"
    c = Cluster(_config(name, nodes=1), serve_http=False)
    port = free_port()
    try:
        c.start(timeout=180)
        c.client.create("services", _service("lb", "LoadBalancer", port), NS)
        wait_for(lambda: c.host_ports is not None and port in c.host_ports.listening(),
                 timeout=20, what="the host listener")
        svc = c.client.get("services", "lb", NS)
        node_port = svc["spec"]["ports"][0]["nodePort"]
        assert c.host_ports.listening() == {port: node_port, node_port: node_port}
        # a connection is accepted (no pod behind it: the node's rules reject it, or nothing answers)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        loop_thread = c.host_ports._thread
        assert loop_thread is not None and loop_thread.is_alive()
    finally:
        c.stop()
    assert _refused(port) and _refused(node_port)
    assert not loop_thread.is_alive()
