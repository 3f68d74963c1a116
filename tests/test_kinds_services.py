"""Service defaulting, cluster IP / node port allocation and validation
(kbox.api.kinds.service)."""

from __future__ import annotations

import ipaddress
import random
import threading

import pytest

from kbox.api.errors import ApiError
from kbox.api.server import ApiServer
from kbox.store.memory import MemoryStore


def svc(name="web", **spec):
    s = {"selector": {"app": name}, "ports": [{"port": 80}]}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


def causes(api, body, ns="default"):
    with pytest.raises(ApiError) as ei:
        api.create("services", body, ns)
    assert ei.value.code == 422, ei.value.message
    return {c["field"]: c["message"] for c in ei.value.causes}


def test_cluster_ip_defaults(api):
    s = api.create("services", svc(ports=[{"port": 80, "name": "http"}, {"port": 443, "name": "https",
                                                                            "targetPort": 8443}]),
                   "default")["spec"]
    assert s["type"] == "ClusterIP" and s["sessionAffinity"] == "None"
    assert s["ports"] == [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 80},
                          {"port": 443, "name": "https", "targetPort": 8443, "protocol": "TCP"}]
    assert s["ipFamilies"] == ["IPv4"] and s["ipFamilyPolicy"] == "SingleStack"
    assert s["internalTrafficPolicy"] == "Cluster"
    assert ipaddress.ip_address(s["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert s["clusterIP"] != "10.96.0.1"
    assert s["clusterIPs"] == [s["clusterIP"]]
    assert "nodePort" not in s["ports"][0]
    assert "externalTrafficPolicy" not in s


def test_cluster_ips_are_unique(api):
    ips = [api.create("services", svc(f"s{i}"), "default")["spec"]["clusterIP"] for i in range(200)]
    assert len(set(ips)) == 200


def test_cluster_ip_is_deterministic_per_name():
    def first_ip():
        a = ApiServer(MemoryStore(), rng=random.Random(3))
        a.bootstrap()
        ip = a.create("services", svc("web"), "default")["spec"]["clusterIP"]
        a.stop()
        return ip
    assert first_ip() == first_ip()


def test_collision_probes_to_a_free_address(api):
    first = api.create("services", svc("web"), "default")["spec"]["clusterIP"]
    api.delete("services", "web", "default")
    # another service takes that address explicitly; "web" again must get a different one
    api.create("services", svc("taker", clusterIP=first), "default")
    again = api.create("services", svc("web"), "default")["spec"]["clusterIP"]
    assert again != first


def test_concurrent_creates_never_share_an_address(api):
    ips: list[str] = []
    lock = threading.Lock()

    def work(k):
        for i in range(25):
            ip = api.create("services", svc(f"t{k}-{i}"), "default")["spec"]["clusterIP"]
            with lock:
                ips.append(ip)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ips) == 100 and len(set(ips)) == 100


def test_headless_service_kept(api):
    s = api.create("services", svc("db", clusterIP="None"), "default")["spec"]
    assert s["clusterIP"] == "None" and s["clusterIPs"] == ["None"]
    s = api.create("services", {"metadata": {"name": "bare"}, "spec": {"clusterIP": "None",
                                                                       "selector": {"a": "b"}}},
                   "default")["spec"]
    assert s["clusterIP"] == "None" and "ports" not in s


def test_user_chosen_cluster_ip(api):
    s = api.create("services", svc("fixed", clusterIP="10.96.12.34"), "default")["spec"]
    assert s["clusterIP"] == "10.96.12.34" and s["clusterIPs"] == ["10.96.12.34"]
    with pytest.raises(ApiError) as ei:
        api.create("services", svc("dup", clusterIP="10.96.12.34"), "default")
    assert ei.value.code == 422
    assert "already allocated" in ei.value.causes[0]["message"]
    got = causes(api, svc("far", clusterIP="192.168.1.1"))
    assert "not in the valid range" in got["spec.clusterIPs"]


def test_kubernetes_service_gets_first_address(api):
    s = api.create("services", {"metadata": {"name": "kubernetes"},
                                "spec": {"ports": [{"name": "https", "port": 443,
                                                    "targetPort": 6443}]}}, "default")["spec"]
    assert s["clusterIP"] == "10.96.0.1"


def test_node_ports(api):
    a = api.create("services", svc("a", type="NodePort"), "default")["spec"]
    b = api.create("services", svc("b", type="LoadBalancer"), "default")["spec"]
    pa, pb = a["ports"][0]["nodePort"], b["ports"][0]["nodePort"]
    assert 30000 <= pa <= 32767 and 30000 <= pb <= 32767 and pa != pb
    assert a["externalTrafficPolicy"] == "Cluster"
    assert b["allocateLoadBalancerNodePorts"] is True
    c = api.create("services", svc("c", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
                   "default")["spec"]
    assert c["ports"][0]["nodePort"] == 30080
    with pytest.raises(ApiError) as ei:
        api.create("services", svc("d", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
                   "default")
    assert ei.value.causes[0]["field"] == "spec.ports[0].nodePort"
    got = causes(api, svc("e", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert "valid range" in got["spec.ports[0].nodePort"]


def test_validation(api):
    got = causes(api, {"metadata": {"name": "noports"}, "spec": {"selector": {"a": "b"}}})
    assert got["spec.ports"] == "Required value"
    got = causes(api, svc("big", ports=[{"port": 70000}]))
    assert got["spec.ports[0].port"] == "Invalid value: 70000: must be between 1 and 65535, inclusive"
    got = causes(api, svc("two", ports=[{"port": 80}, {"port": 81}]))
    assert got["spec.ports[0].name"] == "Required value"
    got = causes(api, svc("kind", type="Magic"))
    assert got["spec.type"].startswith('Unsupported value: "Magic"')
    got = causes(api, svc("proto", ports=[{"port": 80, "protocol": "ICMP"}]))
    assert got["spec.ports[0].protocol"].startswith('Unsupported value: "ICMP"')
    got = causes(api, svc("Bad.Name"))
    assert "metadata.name" in got


def test_external_name(api):
    s = api.create("services", {"metadata": {"name": "ext"},
                                "spec": {"type": "ExternalName", "externalName": "example.com"}},
                   "default")["spec"]
    assert "clusterIP" not in s and "ipFamilies" not in s
    got = causes(api, {"metadata": {"name": "ext2"}, "spec": {"type": "ExternalName"}})
    assert got["spec.externalName"] == "Required value"


def test_cluster_ip_immutable_and_kept_on_replace(api):
    s = api.create("services", svc(type="NodePort"), "default")
    ip, port = s["spec"]["clusterIP"], s["spec"]["ports"][0]["nodePort"]
    # a replace from the original manifest (no clusterIP, no nodePort) keeps both
    body = svc(type="NodePort")
    body["metadata"]["resourceVersion"] = s["metadata"]["resourceVersion"]
    out = api.update("services", body, "default")
    assert out["spec"]["clusterIP"] == ip and out["spec"]["ports"][0]["nodePort"] == port
    out["spec"]["clusterIP"] = "10.96.99.99"
    out["spec"]["clusterIPs"] = ["10.96.99.99"]
    with pytest.raises(ApiError) as ei:
        api.update("services", out, "default")
    assert any(c["message"].endswith("field is immutable") for c in ei.value.causes)


def test_type_change_to_node_port_allocates(api):
    s = api.create("services", svc(), "default")
    s["spec"]["type"] = "NodePort"
    out = api.update("services", s, "default")
    assert 30000 <= out["spec"]["ports"][0]["nodePort"] <= 32767
    assert out["spec"]["clusterIP"] == s["spec"]["clusterIP"]


# ---- a type change drops what the new type has no use for (Kubernetes since 1.20) -----------

def test_node_port_to_cluster_ip_drops_the_allocated_node_ports(api):
    api.create("services", svc("np", type="NodePort"), "default")
    # `kubectl patch svc np -p '{"spec":{"type":"ClusterIP"}}'`: the allocated nodePort is
    # still in the merged object, and the API drops it rather than refusing the update
    out = api.patch("services", "np", {"spec": {"type": "ClusterIP"}}, "strategic", "default")["spec"]
    assert out["type"] == "ClusterIP"
    assert "nodePort" not in out["ports"][0]
    assert "externalTrafficPolicy" not in out
    assert api.get("services", "np", "default")["spec"] == out


def test_load_balancer_to_cluster_ip_by_apply_frees_its_node_port(api):
    manifest = svc("lb", type="LoadBalancer", ports=[{"port": 8080, "nodePort": 30080}])
    s = api.create("services", manifest, "default")
    ip = s["spec"]["clusterIP"]
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}}
    api.update_status("services", s, "default")
    # kubectl apply of the manifest without a type or nodePort: the three-way patch removes
    # the type and the nodePort it applied before (the live object's other fields stay)
    out = api.patch("services", "lb", {"spec": {"type": None, "ports": [
        {"port": 8080, "nodePort": None}]}}, "strategic", "default")
    spec = out["spec"]
    assert spec["type"] == "ClusterIP" and spec["clusterIP"] == ip
    assert all("nodePort" not in p for p in spec["ports"])
    assert "allocateLoadBalancerNodePorts" not in spec and "externalTrafficPolicy" not in spec
    assert out["status"] == {"loadBalancer": {}}
    # the node port is free at once for another service
    other = api.create("services", svc("taker", type="NodePort",
                                       ports=[{"port": 80, "nodePort": 30080}]), "default")
    assert other["spec"]["ports"][0]["nodePort"] == 30080


def test_type_change_keeps_a_node_port_the_user_changed_and_validation_refuses_it(api):
    s = api.create("services", svc("np", type="NodePort"), "default")
    port = s["spec"]["ports"][0]["nodePort"]
    other = 30000 + (port - 30000 + 1) % 2768
    s["spec"]["type"] = "ClusterIP"
    s["spec"]["ports"][0]["nodePort"] = other
    with pytest.raises(ApiError) as ei:
        api.update("services", s, "default")
    assert ei.value.code == 422
    assert {c["field"]: c["message"] for c in ei.value.causes}["spec.ports[0].nodePort"] == \
        "Forbidden: may not be used when `type` is 'ClusterIP'"


def test_cluster_ip_to_external_name_drops_the_cluster_ips(api):
    ip = api.create("services", svc("db"), "default")["spec"]["clusterIP"]
    out = api.patch("services", "db", {"spec": {"type": "ExternalName",
                                                "externalName": "db.example.com"}},
                    "merge", "default")["spec"]
    assert out["type"] == "ExternalName" and out["externalName"] == "db.example.com"
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert field not in out, field
    # the address is free again, and turning back to ClusterIP allocates one anew
    api.create("services", svc("taker", clusterIP=ip), "default")
    back = api.patch("services", "db", {"spec": {"type": "ClusterIP", "externalName": None}},
                     "merge", "default")["spec"]
    assert back["clusterIP"] not in ("", None, ip) and back["clusterIPs"] == [back["clusterIP"]]


def test_external_name_may_not_carry_cluster_ips(api):
    got = causes(api, {"metadata": {"name": "ext"},
                       "spec": {"type": "ExternalName", "externalName": "example.com",
                                "clusterIP": "10.96.40.40"}})
    assert got["spec.clusterIPs"] == "Forbidden: may not be set for ExternalName services"
    s = api.create("services", svc("db"), "default")
    # changing the type and choosing an address: kept, so validation names it
    s["spec"].update(type="ExternalName", externalName="example.com",
                     clusterIP="10.96.40.41", clusterIPs=["10.96.40.41"])
    with pytest.raises(ApiError) as ei:
        api.update("services", s, "default")
    assert any(c["field"] == "spec.clusterIPs" for c in ei.value.causes)


# ---- the cluster's own service range (networking.serviceSubnet) ---------------------------

def test_a_cluster_allocates_from_its_configured_service_subnet():
    from kbox.cluster import Cluster
    from kbox.config import ClusterConfig
    config = ClusterConfig.model_validate({
        "name": "svcrange", "runtime": "sim", "seed": 5, "nodes": {"count": 1},
        "networking": {"serviceSubnet": "10.100.0.0/16"}})
    c = Cluster(config, serve_http=False).start(timeout=20)
    try:
        client = c.client
        dns = client.get("services", "kube-dns", "kube-system")["spec"]
        assert dns["clusterIP"] == "10.100.0.10"
        ips = [client.create("services", svc(f"s{i}"), "default")["spec"]["clusterIP"]
               for i in range(20)]
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.100.0.0/16") for ip in ips)
        assert "10.100.0.10" not in ips and "10.100.0.1" not in ips
        chosen = client.create("services", svc("fixed", clusterIP="10.100.7.7"), "default")
        assert chosen["spec"]["clusterIP"] == "10.100.7.7"
        # the default range's addresses are outside this cluster's
        with pytest.raises(ApiError) as ei:
            client.create("services", svc("far", clusterIP="10.96.0.20"), "default")
        assert ei.value.code == 422
        assert {c_["field"]: c_["message"] for c_ in ei.value.causes}["spec.clusterIPs"] == (
            'Invalid value: ["10.96.0.20"]: failed to allocate IP 10.96.0.20: the provided IP '
            "(10.96.0.20) is not in the valid range. The range of valid IPs is 10.100.0.0/16")
    finally:
        c.stop()


def test_an_api_server_without_a_range_uses_kubeadms_default(api):
    assert api.service_cidr == "10.96.0.0/12"
    got = causes(api, svc("far", clusterIP="10.112.0.20"))     # 10.96.0.0-10.111.255.255
    assert got["spec.clusterIPs"].endswith("The range of valid IPs is 10.96.0.0/12")
    assert api.create("services", svc("near", clusterIP="10.111.0.20"), "default")
