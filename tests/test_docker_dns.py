"""The cluster DNS seen from real pods on Docker-in-Docker nodes.

A 2-node cluster: busybox httpd pods behind a Service and a headless Service,
and a client pod on the other node. The client's /etc/resolv.conf is the
kubelet's; its lookups go to 10.96.0.10:53, which kube-proxy's rules in the
node send to kbox's DNS server on the host's address on the cluster network.
Traffic goes only to kbox's own containers and that address.
"""

from __future__ import annotations

import uuid

import pytest

from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for

try:
    from test_docker_services import FAST       # the Services tests' node timings
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_docker_services import FAST

pytestmark = pytest.mark.docker

SERVE = "mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"


def _web(nodes: list[str]) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "nodeSelector": {"kubernetes.io/hostname": nodes[1]},
                     "containers": [{
                         "name": "httpd", "image": "kbox/busybox:latest",
                         "command": ["sh", "-c", SERVE],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                            "periodSeconds": 1}}]}}}}


def _service(name: str, **spec) -> dict:
    return {"metadata": {"name": name},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}


def _client(name: str, node: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [
            {"name": "c", "image": "kbox/busybox:latest", "command": ["sleep", "36000"]}], **spec}}


def _ready_ips(cluster, ns, name) -> list[str]:
    try:
        ep = cluster.client.get("endpoints", name, ns)
    except Exception:
        return []
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


@pytest.fixture(scope="module")
def env():
    name = f"kd{uuid.uuid4().hex[:6]}"
    config = ClusterConfig.model_validate({"name": name, "runtime": "docker",
                                           "nodes": {"count": 2}, "timings": FAST})
    cluster = Cluster(config, serve_http=False)
    try:
        cluster.start(timeout=180)
        c = cluster.client
        nodes = sorted(cluster.nodes.agents)
        c.create("deployments", _web(nodes), "default")
        c.create("services", _service("web"), "default")
        c.create("services", _service("web-pods", clusterIP="None"), "default")
        c.create("pods", _client("client", nodes[0]), "default")
        c.create("pods", _client("custom", nodes[0], dnsPolicy="None", dnsConfig={
            "nameservers": ["10.96.0.10"], "searches": ["default.svc.cluster.local"],
            "options": [{"name": "ndots", "value": "2"}]}), "default")
        wait_for(lambda: len(_ready_ips(cluster, "default", "web")) == 2, 120, "2 ready web pods")
        for pod in ("client", "custom"):
            wait_for(lambda: c.get("pods", pod, "default")["status"].get("phase") == "Running",
                     60, f"{pod} running")
        yield cluster
    finally:
        cluster.stop()
    import docker
    host = docker.from_env()
    flt = {"label": f"io.kbox.cluster={name}"}
    assert not host.containers.list(all=True, filters=flt)
    host.close()


def _exec(cluster, pod_name: str, cmd: list[str]) -> tuple[int, str]:
    pod = cluster.client.get("pods", pod_name, "default")
    code, out, err = cluster.nodes.agents[pod["spec"]["nodeName"]].exec(pod, "c", cmd)
    return code, (out + err).decode(errors="replace")


def test_the_dns_server_is_the_kube_dns_endpoint(env):
    host, port = env.status()["dns"].rsplit(":", 1)
    assert host == env.machines.gateway_ip() and port == "53"
    assert _ready_ips(env, "kube-system", "kube-dns") == [host]


def test_pods_get_the_kubelets_resolv_conf(env):
    code, out = _exec(env, "client", ["cat", "/etc/resolv.conf"])
    assert code == 0 and out == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                 "nameserver 10.96.0.10\noptions ndots:5\n")
    code, out = _exec(env, "custom", ["cat", "/etc/resolv.conf"])
    assert code == 0 and out == ("search default.svc.cluster.local\nnameserver 10.96.0.10\n"
                                 "options ndots:2\n")
    # the file lives in the node's host folder, one per pod
    pod = env.client.get("pods", "client", "default")
    path = env.machines.socket_dir(pod["spec"]["nodeName"]) / "pods" / pod["metadata"]["uid"] / "resolv.conf"
    assert path.read_text() == out.replace("search default.svc.cluster.local\n",
                                           "search default.svc.cluster.local svc.cluster.local "
                                           "cluster.local\n").replace("ndots:2", "ndots:5")


def test_names_resolve_from_a_pod_on_another_node(env):
    web_ip = env.client.get("services", "web", "default")["spec"]["clusterIP"]
    pod_ips = _ready_ips(env, "default", "web")
    # straight to the server's address ...
    gateway = env.machines.gateway_ip()
    code, out = _exec(env, "client", ["nslookup", "web.default.svc.cluster.local", gateway])
    assert code == 0 and web_ip in out, out
    # ... and through the Service address in resolv.conf (kube-proxy's DNAT to the server)
    code, out = wait_for(lambda: (lambda r: r[0] == 0 and r)(
        _exec(env, "client", ["nslookup", "web.default.svc.cluster.local"])), 30,
        "a lookup through 10.96.0.10")
    assert web_ip in out and "10.96.0.10" in out, out
    # the headless service: every pod
    code, out = _exec(env, "client", ["nslookup", "web-pods.default.svc.cluster.local"])
    assert code == 0 and all(ip in out for ip in pod_ips), out
    # a missing name: NXDOMAIN; a name outside the cluster: refused, never forwarded
    code, out = _exec(env, "client", ["nslookup", "nothing.default.svc.cluster.local"])
    assert code != 0 and "NXDOMAIN" in out, out
    code, out = _exec(env, "client", ["nslookup", "example.com"])
    assert code != 0 and "REFUSED" in out, out


def test_wget_by_service_name_reaches_the_pods(env):
    names = {p["metadata"]["name"] for p in env.client.list(
        "pods", "default", label_selector="app=web")["items"]}
    seen = set()
    for _ in range(12):
        code, out = _exec(env, "client", ["timeout", "5", "wget", "-q", "-O", "-", "http://web/"])
        assert code == 0, out
        seen.add(out.strip())
        if seen == names:
            break
    assert seen == names
    # the full name and a headless endpoint's dashed-IP name
    code, out = _exec(env, "client", ["timeout", "5", "wget", "-q", "-O", "-",
                                      "http://web.default.svc.cluster.local/"])
    assert code == 0 and out.strip() in names, out
    ip = _ready_ips(env, "default", "web")[0]
    code, out = _exec(env, "client", ["timeout", "5", "wget", "-q", "-O", "-",
                                      f"http://{ip.replace('.', '-')}.web-pods:8080/"])
    assert code == 0 and out.strip() in names, out


def test_a_deleted_pods_resolv_conf_goes_with_it(env):
    pod = env.client.get("pods", "custom", "default")
    folder = env.machines.socket_dir(pod["spec"]["nodeName"]) / "pods" / pod["metadata"]["uid"]
    assert (folder / "resolv.conf").exists()
    env.client.delete("pods", "custom", "default")
    wait_for(lambda: not folder.exists(), 30, "the pod's folder to go")
