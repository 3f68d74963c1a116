"""`kbox route` against an in-process sim cluster, over its HTTP API as the CLI talks to it:
which backend a request to a Service reaches, by kube-proxy's table and choice."""

from __future__ import annotations

import io
import re

import pytest

from kbox.cli.registry import Context, execute
from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for


@pytest.fixture(scope="module")
def cluster():
    config = ClusterConfig.model_validate({
        "name": "rt", "runtime": "sim", "seed": 11, "nodes": {"count": 3},
        "timings": {"nodeLeaseRenewInterval": 0.3, "nodeStatusUpdateFrequency": 0.3,
                    "sim": {"pullDelay": 0.02, "createDelay": 0.01, "startDelay": 0.02}}})
    c = Cluster(config).start(timeout=20)
    client = c.client
    client.create("deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "httpd", "image": "kbox/busybox:latest",
                      "ports": [{"name": "web", "containerPort": 8080}]}]}}}}, "default")
    client.create("services", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "type": "NodePort",
        "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                  {"name": "alt", "port": 81, "targetPort": 8080}]}}, "default")
    client.create("services", {"metadata": {"name": "sticky"}, "spec": {
        "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
        "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
    client.create("pods", {"metadata": {"name": "client"}, "spec": {"containers": [
        {"name": "c", "image": "kbox/busybox:latest"}]}}, "default")
    wait_for(lambda: len(_ready(client, "web")) == 3, 20, "3 ready web endpoints")
    wait_for(lambda: (client.get("pods", "client", "default").get("status") or {}).get("podIP"),
             20, "the client pod's IP")
    yield c
    c.stop()


def _ready(client, name):
    ep = next(iter(client.list("endpoints", "default", field_selector=f"metadata.name={name}")["items"]), {})
    return [a for s in ep.get("subsets") or [] for a in s.get("addresses") or []]


def route(cluster, line: str) -> tuple[int, str, str]:
    client = cluster.http_client()
    ctx = Context(client=client, out=io.StringIO(), err=io.StringIO())
    rc = execute(ctx, "route " + line)
    return rc, ctx.out.getvalue(), ctx.err.getvalue()


def test_requests_spread_over_every_ready_backend(cluster):
    rc, out, err = route(cluster, "svc/web --port 80 --requests 300 --seed 4")
    assert rc == 0, err
    svc = cluster.client.get("services", "web", "default")
    lines = out.splitlines()
    assert lines[0] == f"service default/web port 80/TCP (http) at {svc['spec']['clusterIP']}:80"
    assert lines[1] == "3 ready endpoints; each new connection picks one at random (1/3 each)"
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("BACKEND"))) + 1:]
    pods = {p["metadata"]["name"]: p for p in cluster.client.list(
        "pods", "default", label_selector="app=web")["items"]}
    assert len(table) == 3
    for row in table:
        address, pod, node, count, share = row.split()
        assert address == pods[pod]["status"]["podIP"] + ":8080"       # named targetPort resolved
        assert node == pods[pod]["spec"]["nodeName"]
        assert 70 <= int(count) <= 130 and share.endswith("%")
    # one request: one backend, named with its pod and node
    rc, out, _ = route(cluster, "web --port http --seed 1")
    assert rc == 0 and re.search(r"^-> 10\.244\.\d+\.\d+:8080  pod web-\S+ on node rt-worker\d?$", out, re.M)
    # the same seed gives the same answer
    assert route(cluster, "web --port http --seed 1")[1] == out


def test_client_ip_affinity_sticks_to_one_backend(cluster):
    rc, out, err = route(cluster, "svc/sticky --from client --requests 50 --seed 2")
    assert rc == 0, err
    ip = cluster.client.get("pods", "client", "default")["status"]["podIP"]
    assert f"client: pod client ({ip}, on node " in out
    assert "session affinity ClientIP (10800s): a client sticks to the backend it first reached" in out
    assert f"source: {ip} (pod to pod keeps its address)" in out
    counts = sorted(int(row.split()[3]) for row in out.splitlines() if row.startswith("10.244."))
    assert counts == [0, 0, 50]
    # from outside the pod network: still sticky, and masqueraded
    rc, out, _ = route(cluster, "svc/sticky --client-ip 192.0.2.7 --requests 20")
    assert "masqueraded to the node's address (192.0.2.7 is outside the pod network)" in out
    assert sorted(int(row.split()[3]) for row in out.splitlines() if row.startswith("10.244.")) == [0, 0, 20]


def test_node_port_form_finds_the_service_by_its_port(cluster):
    node = cluster.client.get("nodes", "rt-worker2")
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    rc, out, err = route(cluster, "--node rt-worker2 --node-port 30080 --requests 30 --seed 3")
    assert rc == 0, err
    assert out.splitlines()[0] == (f"service default/web port 80/TCP (http): node port 30080/TCP "
                                   f"on node rt-worker2 ({ip}:30080)")
    assert "source: masqueraded to the node's address (NodePort traffic)" in out


def test_selectorless_endpoints_and_not_ready_addresses(cluster):
    c = cluster.client
    c.create("services", {"metadata": {"name": "dns", "namespace": "kube-system"}, "spec": {
        "clusterIP": "10.96.0.53", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
             "kube-system")
    c.create("endpoints", {"metadata": {"name": "dns", "namespace": "kube-system"}, "subsets": [{
        "addresses": [{"ip": "172.18.0.1"}], "notReadyAddresses": [{"ip": "172.18.0.99"}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}]}, "kube-system")
    rc, out, err = route(cluster, "svc/dns -n kube-system --port 53 --protocol UDP --requests 10")
    assert rc == 0, err
    assert out.splitlines()[0] == "service kube-system/dns port 53/UDP (dns) at 10.96.0.53:53"
    assert "172.18.0.1:53  -    -     10" in out and "172.18.0.99" not in out
    # the sim cluster's kube-proxy table (nothing to program on sim nodes) has it too
    wait_for(lambda: any(r.name == "dns" and r.protocol == "UDP" and r.backends
                         for r in cluster.nodes.proxies.rules), 5, "the dns rule in the table")


def test_errors_name_what_is_wrong(cluster):
    c = cluster.client
    c.create("services", {"metadata": {"name": "nobody"}, "spec": {
        "selector": {"app": "none"}, "ports": [{"port": 80}]}}, "default")
    c.create("services", {"metadata": {"name": "hl"}, "spec": {
        "clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}, "default")
    c.create("services", {"metadata": {"name": "ext"}, "spec": {
        "type": "ExternalName", "externalName": "db.example.test"}}, "default")
    cases = {
        "svc/nobody": 'error: no endpoints available for service "nobody" (default/nobody): '
                      "kube-proxy rejects the connection (connection refused)",
        "svc/missing": 'Error from server (NotFound): services "missing" not found',
        "svc/web --port 90": 'error: service "web" has no port 90; its ports: 80/TCP (http), 81/TCP (alt)',
        "svc/web": 'error: service "web" has several ports (80/TCP (http), 81/TCP (alt)): '
                   "choose one with --port (and --protocol)",
        "svc/hl": 'error: service "hl" is headless (clusterIP None): it has no virtual IP; '
                  "clients reach its pods directly by their DNS records",
        "svc/ext": 'error: service "ext" is of type ExternalName (db.example.test): '
                   "it is a DNS alias, nothing proxies it",
        "deploy/web": 'error: cannot route to "deploy/web": give a Service as svc/NAME or NAME',
        "svc/web --port 80 --requests 0": "error: --requests: must be >= 1",
        "svc/web --port 80 --client-ip nope": 'error: --client-ip: "nope" is not an IP address',
        "svc/web --port 80 --from nosuch": 'Error from server (NotFound): pods "nosuch" not found',
        "svc/sticky --node rt-worker --node-port 30080":
            'error: service "sticky" is of type ClusterIP: it has no node ports',
        "--node rt-worker --node-port 31999": "error: no service has node port 31999",
        "svc/web --node-port 30080": "error: --node and --node-port go together "
                                     "(a request to NODE's IP on the node port)",
        "svc/web --node nosuch --node-port 30080": 'Error from server (NotFound): nodes "nosuch" not found',
    }
    for line, want in cases.items():
        rc, out, err = route(cluster, line)
        assert (rc, err.strip()) == (1, want), line
