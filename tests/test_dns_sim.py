"""The cluster DNS of a whole sim cluster, asked as a person would with
`dig @127.0.0.1 -p PORT` (dnspython here), about objects made through the API."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for


@pytest.fixture(scope="module")
def cluster():
    config = ClusterConfig.model_validate({
        "name": "dnssim", "runtime": "sim", "seed": 3, "nodes": {"count": 2},
        "timings": {"nodeLeaseRenewInterval": 0.3, "nodeStatusUpdateFrequency": 0.3,
                    "sim": {"pullDelay": 0.02, "createDelay": 0.02, "startDelay": 0.02}},
    })
    c = Cluster(config, serve_http=False).start(timeout=20)
    yield c
    c.stop()


def dig(cluster, name, rdtype="A"):
    host, port = cluster.status()["dns"].rsplit(":", 1)
    assert host == "127.0.0.1"
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=int(port), timeout=3)


def addresses(resp):
    return sorted(rd.to_text() for rr in resp.answer if rr.rdtype == dns.rdatatype.A for rd in rr)


def deployment(name, replicas, **pod_spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "busybox"}],
                                           **pod_spec}}}}


def service(name, selector, cluster_ip=None):
    spec = {"selector": selector, "ports": [{"name": "http", "port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def ready_ips(client, selector):
    pods = client.list("pods", "default", label_selector=selector)["items"]
    return sorted(p["status"]["podIP"] for p in pods
                  if any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in (p.get("status") or {}).get("conditions") or []))


def test_the_dns_service_is_kubeadms(cluster):
    svc = cluster.client.get("services", "kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert not svc["spec"].get("selector")
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == \
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    # on sim nodes the server is on 127.0.0.1, no address a pod could reach: no endpoint
    ep = cluster.client.get("endpoints", "kube-dns", "kube-system")
    assert not ep.get("subsets")
    assert addresses(dig(cluster, "kube-dns.kube-system.svc.cluster.local")) == ["10.96.0.10"]


def test_services_made_through_the_api_resolve(cluster):
    c = cluster.client
    c.create("deployments", deployment("web", 3), "default")
    c.create("services", service("web", {"app": "web"}), "default")
    c.create("services", service("web-pods", {"app": "web"}, cluster_ip="None"), "default")
    ips = wait_for(lambda: len(ready_ips(c, "app=web")) == 3 and ready_ips(c, "app=web"),
                   20, "3 ready web pods")
    cluster_ip = c.get("services", "web", "default")["spec"]["clusterIP"]
    assert cluster_ip != "10.96.0.10"
    r = dig(cluster, "web.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR and addresses(r) == [cluster_ip]
    # the headless one: every ready pod, once the endpoints controller has them
    wait_for(lambda: addresses(dig(cluster, "web-pods.default.svc.cluster.local")) == ips, 10,
             "the headless service's answer to list every pod")
    assert dig(cluster, "nothing.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert dig(cluster, "example.com").rcode() == dns.rcode.REFUSED
    # a scaled-down deployment: its pod leaves the headless answer
    c.patch("deployments", "web", {"spec": {"replicas": 1}}, "merge", "default")
    wait_for(lambda: len(addresses(dig(cluster, "web-pods.default.svc.cluster.local"))) == 1, 20,
             "the headless answer to shrink to one pod")
    # the service goes: NXDOMAIN
    c.delete("services", "web", "default")
    wait_for(lambda: dig(cluster, "web.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN,
             10, "NXDOMAIN for a deleted service")


def test_pods_get_the_kubelets_resolv_conf(cluster):
    c = cluster.client
    c.create("deployments", deployment("dnsclient", 1), "default")
    c.create("deployments", deployment("custom", 1, dnsPolicy="None", dnsConfig={
        "nameservers": ["10.96.0.10"], "searches": ["corp.example"],
        "options": [{"name": "ndots", "value": "2"}]}), "default")
    for app, want in (("dnsclient", "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                                    "nameserver 10.96.0.10\noptions ndots:5\n"),
                      ("custom", "search corp.example\nnameserver 10.96.0.10\noptions ndots:2\n")):
        wait_for(lambda: ready_ips(c, f"app={app}"), 20, f"a ready {app} pod")
        [pod] = c.list("pods", "default", label_selector=f"app={app}")["items"]
        code, out, _ = c.exec(pod["metadata"]["name"], "default", ["cat", "/etc/resolv.conf"])
        assert code == 0 and out.decode() == want


def test_no_service_takes_the_dns_address(cluster):
    c = cluster.client
    # "default/s53483" hashes to the service range's tenth address, its allocator's first pick;
    # a user-made service never gets it: it probes on to the next one
    c.create("services", service("s53483", {"app": "s"}), "default")
    assert c.get("services", "s53483", "default")["spec"]["clusterIP"] == "10.96.0.11"


def test_a_restarted_cluster_keeps_its_dns_service(tmp_path):
    """With a data dir, the second boot finds kube-dns in the store and keeps it (creating
    it again would fail on its own address)."""
    config = ClusterConfig.model_validate({
        "name": "dnsrestart", "runtime": "sim", "nodes": {"count": 1}, "dataDir": str(tmp_path)})
    first = Cluster(config, serve_http=False).start(timeout=20)
    uid = first.client.get("services", "kube-dns", "kube-system")["metadata"]["uid"]
    first.stop()
    second = Cluster(config, serve_http=False).start(timeout=20)
    try:
        svc = second.client.get("services", "kube-dns", "kube-system")
        assert svc["metadata"]["uid"] == uid and svc["spec"]["clusterIP"] == "10.96.0.10"
    finally:
        second.stop()
