"""Services on real Docker-in-Docker nodes: the pod network between nodes and
kube-proxy's iptables rules in each node.

One 3-node cluster for the module: busybox httpd pods (one per node, each
serving its own name, and its client's address through a CGI script) behind
Services; a client pod on one node. Traffic goes only to kbox's own containers
(pod and node addresses on kbox's Docker networks).
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest

from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for

pytestmark = pytest.mark.docker

FAST = {"nodeStatusUpdateFrequency": 1, "nodeLeaseRenewInterval": 1,
        "nodeMonitorGracePeriod": 6, "syncFrequency": 0.5}

# each pod serves its name at /, its client's address at /cgi-bin/ip (httpd gives it as
# [::ffff:10.244.0.2]), and is Ready while /www/healthz.html exists
SERVE = ("mkdir -p /www/cgi-bin && echo $HOSTNAME > /www/index.html && echo ok > /www/healthz.html"
         " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\na=${REMOTE_ADDR##*:}\\necho ${a%%]}\\n'"
         " > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www")


def _web() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     # one per node, so requests cross nodes
                     "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                         {"labelSelector": {"matchLabels": {"app": "web"}},
                          "topologyKey": "kubernetes.io/hostname"}]}},
                     "containers": [{
                         "name": "httpd", "image": "kbox/busybox:latest",
                         "command": ["sh", "-c", SERVE],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/healthz.html", "port": 8080},
                                            "periodSeconds": 1, "failureThreshold": 1}}]}}}}


def _service(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": "web"},
                                                 "ports": [{"name": "web", "port": 80,
                                                            "targetPort": "http"}], **spec}}


@pytest.fixture(scope="module")
def env():
    name = f"ks{uuid.uuid4().hex[:6]}"
    config = ClusterConfig.model_validate({"name": name, "runtime": "docker",
                                           "nodes": {"count": 3}, "timings": FAST})
    cluster = Cluster(config, serve_http=False)
    try:
        cluster.start(timeout=180)
        c = cluster.client
        c.create("deployments", _web(), "default")
        c.create("services", _service("web", type="NodePort"), "default")
        nodes = sorted(cluster.nodes.agents)
        c.create("pods", {"metadata": {"name": "client"}, "spec": {
            "nodeName": nodes[0], "terminationGracePeriodSeconds": 0, "containers": [
                {"name": "c", "image": "kbox/busybox:latest", "command": ["sleep", "36000"]}]}},
            "default")
        wait_for(lambda: len(_endpoint_ips(cluster, "web")) == 3, 120, "3 ready web endpoints")
        wait_for(lambda: _pod(cluster, "client")["status"].get("phase") == "Running", 60, "client running")
        yield cluster
    finally:
        cluster.stop()
    import docker
    host = docker.from_env()
    flt = {"label": f"io.kbox.cluster={name}"}
    assert not host.containers.list(all=True, filters=flt) and not host.networks.list(filters=flt)
    host.close()


def _pod(cluster, name):
    return cluster.client.get("pods", name, "default")


def _web_pods(cluster) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in cluster.client.list(
        "pods", "default", label_selector="app=web")["items"] if not p["metadata"].get("deletionTimestamp")}


def _endpoint_ips(cluster, name) -> list[str]:
    items = cluster.client.list("endpoints", "default", field_selector=f"metadata.name={name}")["items"]
    return [a["ip"] for e in items for s in e.get("subsets") or [] for a in s.get("addresses") or []]


def _sh(cluster, pod: str, script: str, container: str = "c") -> str:
    p = _pod(cluster, pod)
    rc, out, err = cluster.nodes.agents[p["spec"]["nodeName"]].exec(p, container, ["sh", "-c", script])
    return out.decode()


def _fetch(cluster, url: str, n: int) -> list[str]:
    """`n` requests from the client pod (busybox wget -T crashes: timeout does the job)."""
    out = _sh(cluster, "client", f"for i in $(seq {n}); do timeout 5 wget -qO- {url} || echo FAIL; done")
    return out.split()


def _iptables(cluster, node: str) -> str:
    rc, out = cluster.machines.node_exec(node, ["iptables-save"])
    assert rc == 0, out
    return out


def test_cluster_ip_reaches_every_backend_from_a_pod_on_another_node(env):
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    pods = _web_pods(env)
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 3
    got = wait_for(lambda: set(r := _fetch(env, f"http://{ip}:80/", 30)) == set(pods) and r, 30,
                   "every backend answering through the cluster IP")
    assert "FAIL" not in got


def test_pods_reach_pods_on_other_nodes_by_ip_and_see_the_real_source(env):
    client = _pod(env, "client")
    client_ip = client["status"]["podIP"]
    for name, p in _web_pods(env).items():
        addr = p["status"]["podIP"]
        assert _fetch(env, f"http://{addr}:8080/", 1) == [name]
        assert _fetch(env, f"http://{addr}:8080/cgi-bin/ip", 1) == [client_ip], \
            f"{name} on {p['spec']['nodeName']} should see the client pod's own address"
    # through the Service too: pod to pod through a cluster IP is not masqueraded
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    assert set(_fetch(env, f"http://{ip}/cgi-bin/ip", 10)) == {client_ip}
    # the routes: each node has one to every peer's pod CIDR, via that peer's address
    nodes = {n["metadata"]["name"]: n for n in env.client.list("nodes")["items"]}
    for name in nodes:
        rc, routes = env.machines.node_exec(name, ["ip", "-4", "route", "show"])
        for peer, n in nodes.items():
            if peer != name:
                internal = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
                assert internal == env.machines.node_ip(peer)
                assert f"{n['spec']['podCIDR']} via {internal} " in routes, (name, routes)


def test_node_port_answers_on_every_node_from_the_host_and_from_a_pod(env):
    svc = env.client.get("services", "web", "default")
    port = svc["spec"]["ports"][0]["nodePort"]
    pods = set(_web_pods(env))
    client_ip = _pod(env, "client")["status"]["podIP"]
    for node in env.client.list("nodes")["items"]:
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        seen = set()
        for _ in range(30):        # the host reaches node containers on kbox's network
            with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as r:
                seen.add(r.read().decode().strip())
            if seen == pods:
                break
        assert seen == pods, node["metadata"]["name"]
        # NodePort traffic is masqueraded: the backend sees one of the node's addresses (on
        # the cluster network, or its pod bridge for a local backend), not the client pod's
        src = _fetch(env, f"http://{ip}:{port}/cgi-bin/ip", 3)
        assert len(src) == 3 and "FAIL" not in src and client_ip not in src, src


def test_session_affinity_client_ip_sticks(env):
    svc = env.client.create("services", _service("sticky", sessionAffinity="ClientIP"), "default")
    ip = svc["spec"]["clusterIP"]
    got = wait_for(lambda: "FAIL" not in (r := _fetch(env, f"http://{ip}/", 20)) and r, 30,
                   "the sticky service answering")
    assert len(set(got)) == 1 and got[0] in _web_pods(env)
    text = _iptables(env, sorted(env.nodes.agents)[1])
    assert "-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-" in text


def test_a_pod_failing_readiness_stops_receiving_traffic(env):
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    pods = _web_pods(env)
    victim = sorted(pods)[0]
    victim_ip = pods[victim]["status"]["podIP"]
    _sh(env, victim, "rm /www/healthz.html", container="httpd")
    wait_for(lambda: victim_ip not in _endpoint_ips(env, "web"), 20, f"{victim} out of the endpoints")
    t0 = time.monotonic()
    # every node's rules drop it, soon after the Endpoints did
    wait_for(lambda: all(victim_ip not in _iptables(env, n) for n in env.nodes.agents), 5,
             f"{victim} out of every node's rules")
    dropped_after = time.monotonic() - t0
    got = _fetch(env, f"http://{ip}/", 30)
    assert victim not in got and set(got) == set(pods) - {victim}, got
    assert dropped_after < 2.0
    _sh(env, victim, "echo ok > /www/healthz.html", container="httpd")
    wait_for(lambda: victim_ip in _endpoint_ips(env, "web"), 20, f"{victim} back in the endpoints")
    wait_for(lambda: victim in _fetch(env, f"http://{ip}/", 20), 10, f"{victim} serving again")


def test_a_pod_reaches_itself_through_its_service(env):
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    me = sorted(_web_pods(env))[1]
    out = _sh(env, me, f"for i in $(seq 30); do timeout 5 wget -qO- http://{ip}/ || echo FAIL; done",
              container="httpd").split()
    assert me in out and "FAIL" not in out          # hairpin: masqueraded back to itself


def _dns_answer(query: bytes, address: str) -> bytes:
    """A DNS response giving `address` (one A record) to an A `query`, none to others."""
    import socket
    import struct
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    if question[-4:-2] != b"\x00\x01":           # not an A query: no records
        return query[:2] + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + question
    header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(address)
    return header + question + answer


def test_udp_through_a_selectorless_service_to_a_server_on_the_host(env):
    """What the cluster DNS does: a Service without selector whose Endpoints point at the
    host's address on the cluster's Docker network; UDP queries from a pod reach it."""
    import socket
    import threading
    net = env.machines.client.networks.get(env.machines.network)
    gateway = net.attrs["IPAM"]["Config"][0]["Gateway"].split("/")[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((gateway, 0))
    sock.settimeout(0.5)
    seen: list[str] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except OSError:
                continue
            seen.append(peer[0])
            sock.sendto(_dns_answer(data, "10.1.2.3"), peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        svc = env.client.create("services", {"metadata": {"name": "udp"}, "spec": {
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}, "default")
        env.client.create("endpoints", {"metadata": {"name": "udp"}, "subsets": [{
            "addresses": [{"ip": gateway}],
            "ports": [{"name": "dns", "port": sock.getsockname()[1], "protocol": "UDP"}]}]}, "default")
        ip = svc["spec"]["clusterIP"]
        out = wait_for(lambda: "10.1.2.3" in (o := _sh(env, "client", f"timeout 5 nslookup web.test {ip}")) and o,
                       20, "an answer through the UDP service")
        assert "Address: 10.1.2.3" in out or "Address 1: 10.1.2.3" in out, out
        # the node masqueraded the pod's query to its own address on the cluster network
        client_node = _pod(env, "client")["spec"]["nodeName"]
        assert env.machines.node_ip(client_node) in seen
    finally:
        stop.set()
        t.join(2)
        sock.close()


def test_an_added_node_joins_the_pod_network_and_a_removed_one_leaves_it(env):
    env.node_action("add", "extra")
    node = wait_for(lambda: (n := env.client.get("nodes", "extra"))["spec"].get("podCIDR") and n, 30,
                    "the new node's pod CIDR")
    cidr = node["spec"]["podCIDR"]
    others = [n for n in env.nodes.agents if n != "extra"]
    wait_for(lambda: all(f"{cidr} via {env.machines.node_ip('extra')} " in
                         env.machines.node_exec(n, ["ip", "-4", "route", "show"])[1] for n in others),
             30, "every peer's route to the new node")
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    wait_for(lambda: f"-d {ip}/32" in _iptables(env, "extra"), 30, "the service rules on the new node")
    env.node_action("remove", "extra")
    wait_for(lambda: not any(cidr in env.machines.node_exec(n, ["ip", "-4", "route", "show"])[1]
                             for n in others), 30, "the removed node's route gone from every peer")


def test_a_restarted_node_gets_its_routes_and_rules_back(env):
    node = sorted(env.nodes.agents)[2]
    ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    env.node_action("kill", node)
    env.node_action("start", node)
    wait_for(lambda: f"{ip}/32" in _iptables(env, node), 30, f"the web rules back on {node}")
    peers = [n for n in env.client.list("nodes")["items"] if n["metadata"]["name"] != node]
    wait_for(lambda: all(f"{p['spec']['podCIDR']} via " in env.machines.node_exec(node, ["ip", "route"])[1]
                         for p in peers), 30, f"{node}'s routes to its peers")
    text = _iptables(env, node)
    assert "kbox: pod to pod keeps its source" in text and "-A DOCKER-USER -d 10.244.0.0/16 -j ACCEPT" in text
    assert text.count("-j KUBE-SERVICES") == 4       # nat PREROUTING, OUTPUT; filter FORWARD, OUTPUT


def test_deleting_the_service_removes_its_rules_from_every_node(env):
    svc = env.client.get("services", "web", "default")
    ip = svc["spec"]["clusterIP"]
    port = svc["spec"]["ports"][0]["nodePort"]
    for n in env.nodes.agents:
        assert f"-d {ip}/32" in _iptables(env, n)
    env.client.delete("services", "web", "default")
    wait_for(lambda: all("default/web:web" not in _iptables(env, n) and f"{ip}/32" not in _iptables(env, n)
                         and f"--dport {port}" not in _iptables(env, n) for n in env.nodes.agents),
             10, "the web service's rules gone from every node")
    assert all(r == "FAIL" for r in _fetch(env, f"http://{ip}/", 2))
