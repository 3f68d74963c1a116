"""The cluster DNS: its records (CoreDNS's kubernetes plugin) and its answers on the wire.

Objects go through a real API server; the endpoints controller fills Endpoints
from pods; the DNS reads the shared informers' caches and answers over UDP and
TCP on 127.0.0.1, with dnspython as the client (what `dig @127.0.0.1 -p PORT` does).
"""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

try:
    from test_nodelifecycle_env import Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import Env

from kbox.clock import iso_time
from kbox.controllers.endpoints import EndpointsController
from kbox.dns import dns_service_ip, start_cluster_dns
from kbox.dns.records import TTL

NS = "default"
DNS_IP = "10.96.0.10"


@pytest.fixture
def env():
    e = Env()
    e.add(EndpointsController)
    e.server = start_cluster_dns(e.informers, host="127.0.0.1", port=0, nameserver_ip=DNS_IP,
                                 reverse_ranges=("10.96.0.0/12", "10.244.0.0/16"))
    e.start()
    yield e
    e.server.stop()
    e.close()


def ask(env, name, rdtype="A", *, tcp=False, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    fn = dns.query.tcp if tcp else dns.query.udp
    return fn(q, "127.0.0.1", port=env.server.port, timeout=3)


def values(resp, rdtype="A"):
    return sorted(rd.to_text() for rrset in resp.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rd in rrset)


def service(env, name, *, ports=None, selector=None, cluster_ip=None, ns=NS, **spec):
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    if selector:
        body["spec"]["selector"] = selector
    if cluster_ip:
        body["spec"]["clusterIP"] = cluster_ip
    env.client.create("services", body, ns)
    env.settle()
    return env.client.get("services", name, ns)


def pod(env, name, ip, *, labels, ready=True, hostname=None, subdomain=None, ns=NS):
    spec = {"containers": [{"name": "c", "image": "busybox",
                            "ports": [{"name": "http", "containerPort": 8080}]}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    env.client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": ns, "labels": labels},
                               "spec": spec}, ns)
    env.client.bind(name, ns, "n1")
    env.client.patch("pods", name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        "lastTransitionTime": iso_time(env.clock.now())}]}},
        "merge", ns, subresource="status")
    env.settle()


def test_dns_service_ip_is_the_tenth_address():
    assert dns_service_ip("10.96.0.0/12") == "10.96.0.10"
    assert dns_service_ip("172.30.0.0/16") == "172.30.0.10"


def test_cluster_ip_service_a_record(env):
    svc = service(env, "web", selector={"app": "web"})
    ip = svc["spec"]["clusterIP"]
    r = ask(env, "web.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA
    assert values(r) == [ip]
    assert r.answer[0].ttl == TTL
    # case does not matter, and the answer keeps the question's spelling
    r = ask(env, "WeB.Default.SVC.Cluster.Local")
    assert values(r) == [ip]
    assert r.answer[0].name.to_text() == "WeB.Default.SVC.Cluster.Local."
    # the name exists: another type is an empty NOERROR with the SOA (negative TTL 5)
    r = ask(env, "web.default.svc.cluster.local", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    [soa] = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 5 and soa[0].minimum == 5


def test_missing_names_are_nxdomain_with_soa(env):
    service(env, "web", selector={"app": "web"})
    for name in ("nope.default.svc.cluster.local", "web.nosuchns.svc.cluster.local",
                 "nosuchns.svc.cluster.local", "a.b.web.default.svc.cluster.local",
                 "web.default.svc.cluster.local.default.svc.cluster.local",  # a search path try
                 "something.cluster.local"):
        r = ask(env, name)
        assert r.rcode() == dns.rcode.NXDOMAIN, name
        assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA], name
        assert r.authority[0].name.to_text() == "cluster.local."
    # names that exist with nothing of that type: NOERROR
    for name in ("default.svc.cluster.local", "svc.cluster.local", "default.pod.cluster.local"):
        r = ask(env, name)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer, name
    # the zone's apex
    r = ask(env, "cluster.local", "SOA")
    assert r.answer[0].rdtype == dns.rdatatype.SOA
    assert values(ask(env, "ns.dns.cluster.local")) == [DNS_IP]


def test_outside_the_cluster_domain_is_refused_never_forwarded(env):
    for name, rdtype in (("example.com", "A"), ("kubernetes.io", "AAAA"), ("localhost", "A"),
                         ("cluster.local.example.com", "A")):
        r = ask(env, name, rdtype)
        assert r.rcode() == dns.rcode.REFUSED, name
        assert not r.answer and not r.flags & dns.flags.AA
    # reverse names outside the cluster's ranges too
    r = ask(env, dns.reversename.from_address("8.8.8.8"), "PTR")
    assert r.rcode() == dns.rcode.REFUSED


def test_headless_service_answers_every_ready_endpoint(env):
    service(env, "db", selector={"app": "db"}, cluster_ip="None",
            ports=[{"name": "pg", "port": 5432, "targetPort": 8080}])
    pod(env, "db-0", "10.244.1.5", labels={"app": "db"}, hostname="db-0", subdomain="db")
    pod(env, "db-1", "10.244.2.6", labels={"app": "db"}, hostname="db-1", subdomain="db")
    pod(env, "db-x", "10.244.2.7", labels={"app": "db"})            # no hostname
    pod(env, "db-slow", "10.244.2.9", labels={"app": "db"}, ready=False)
    r = ask(env, "db.default.svc.cluster.local")
    assert values(r) == ["10.244.1.5", "10.244.2.6", "10.244.2.7"]   # not the unready one
    # endpoints by hostname (spec.hostname + subdomain) and by dashed IP
    assert values(ask(env, "db-0.db.default.svc.cluster.local")) == ["10.244.1.5"]
    assert values(ask(env, "10-244-2-7.db.default.svc.cluster.local")) == ["10.244.2.7"]
    assert ask(env, "db-9.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(env, "10-244-2-9.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    # SRV: one per endpoint, targets named as above, their addresses in the additional section
    r = ask(env, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert values(r, "SRV") == [
        "0 33 8080 10-244-2-7.db.default.svc.cluster.local.",
        "0 33 8080 db-0.db.default.svc.cluster.local.",
        "0 33 8080 db-1.db.default.svc.cluster.local."]
    extra = {rr.name.to_text(): [rd.to_text() for rd in rr] for rr in r.additional
             if rr.rdtype == dns.rdatatype.A}
    assert extra["db-0.db.default.svc.cluster.local."] == ["10.244.1.5"]
    # PTR for a headless service's endpoint address; an unknown pod address is NXDOMAIN
    r = ask(env, dns.reversename.from_address("10.244.1.5"), "PTR")
    assert values(r, "PTR") == ["db-0.db.default.svc.cluster.local."]
    assert values(ask(env, dns.reversename.from_address("10.244.2.7"), "PTR"), "PTR") == \
        ["10-244-2-7.db.default.svc.cluster.local."]
    r = ask(env, dns.reversename.from_address("10.244.9.9"), "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN
    # the pod turns unready: it leaves the answer
    env.client.patch("pods", "db-1", {"status": {"conditions": [
        {"type": "Ready", "status": "False"}]}}, "merge", NS, subresource="status")
    env.settle()
    assert values(ask(env, "db.default.svc.cluster.local")) == ["10.244.1.5", "10.244.2.7"]


def test_srv_for_named_ports_of_a_cluster_ip_service(env):
    svc = service(env, "api", selector={"app": "api"},
                  ports=[{"name": "http", "port": 80, "targetPort": 8080},
                         {"name": "dns", "port": 53, "protocol": "UDP"}])
    r = ask(env, "_http._tcp.api.default.svc.cluster.local", "SRV")
    assert values(r, "SRV") == ["0 100 80 api.default.svc.cluster.local."]
    assert [rd.to_text() for rr in r.additional for rd in rr] == [svc["spec"]["clusterIP"]]
    assert values(ask(env, "_dns._udp.api.default.svc.cluster.local", "SRV"), "SRV") == \
        ["0 100 53 api.default.svc.cluster.local."]
    # a port name or protocol the service does not have
    assert ask(env, "_dns._tcp.api.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(env, "_ftp._tcp.api.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    # SRV on the service's own name: every port
    assert len(values(ask(env, "api.default.svc.cluster.local", "SRV"), "SRV")) == 2
    # PTR for the ClusterIP
    r = ask(env, dns.reversename.from_address(svc["spec"]["clusterIP"]), "PTR")
    assert values(r, "PTR") == ["api.default.svc.cluster.local."]


def test_external_name_is_a_cname(env):
    env.client.create("services", {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "ext", "namespace": NS},
                                   "spec": {"type": "ExternalName",
                                            "externalName": "db.example.com"}}, NS)
    env.settle()
    r = ask(env, "ext.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR
    [cname] = r.answer
    assert cname.rdtype == dns.rdatatype.CNAME and cname[0].target.to_text() == "db.example.com."
    # the target is outside the cluster: not chased, not forwarded
    assert len(r.answer) == 1


def test_pod_records(env):
    assert values(ask(env, "10-244-1-5.default.pod.cluster.local")) == ["10.244.1.5"]
    assert ask(env, "10-244-1-5.nosuchns.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(env, "not-an-ip.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_pod_records_verified_mode():
    e = Env()
    e.server = start_cluster_dns(e.informers, host="127.0.0.1", port=0, nameserver_ip=DNS_IP,
                                 reverse_ranges=(), pod_mode="verified")
    e.start()
    try:
        assert ask(e, "10-244-1-5.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
        pod(e, "p", "10.244.1.5", labels={})
        assert values(ask(e, "10-244-1-5.default.pod.cluster.local")) == ["10.244.1.5"]
        assert ask(e, "10-244-1-5.kube-system.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
    finally:
        e.server.stop()
        e.close()


def test_changes_show_at_once(env):
    service(env, "web", selector={"app": "web"})
    assert ask(env, "web.default.svc.cluster.local").rcode() == dns.rcode.NOERROR
    env.client.delete("services", "web", NS)
    env.settle()
    assert ask(env, "web.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_big_udp_answers_are_truncated_and_complete_over_tcp(env):
    # a selector-less headless service with 120 addresses: too big for 512 bytes of UDP
    service(env, "many", cluster_ip="None", ports=[{"name": "http", "port": 80}])
    ips = [f"10.244.{i // 200}.{i % 200 + 2}" for i in range(120)]
    env.client.create("endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                    "metadata": {"name": "many", "namespace": NS},
                                    "subsets": [{"addresses": [{"ip": ip} for ip in ips],
                                                 "ports": [{"name": "http", "port": 80}]}]}, NS)
    env.settle()
    name = "many.default.svc.cluster.local"
    r = ask(env, name)                                   # no EDNS: 512 bytes
    assert r.flags & dns.flags.TC
    assert 0 < len(values(r)) < 120
    assert len(r.to_wire()) <= 512
    r = ask(env, name, use_edns=0, payload=4096)         # EDNS: we send at most 1232
    assert r.flags & dns.flags.TC and len(r.to_wire()) <= 1232
    r = ask(env, name, tcp=True)
    assert not r.flags & dns.flags.TC
    assert values(r) == sorted(ips)
    # dnspython's resolver-style helper retries over TCP on TC
    r, used_tcp = dns.query.udp_with_fallback(dns.message.make_query(name, "A"), "127.0.0.1",
                                              port=env.server.port, timeout=3)
    assert used_tcp and len(values(r)) == 120


def test_malformed_packets_do_not_break_the_server(env):
    service(env, "web", selector={"app": "web"})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    addr = ("127.0.0.1", env.server.port)
    try:
        # a header claiming a question that is not there: FORMERR with the same ID
        s.sendto(struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07garbage", addr)
        reply = s.recv(512)
        qid, flags = struct.unpack("!HH", reply[:4])
        assert qid == 0x1234 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
        # too short for a header: dropped
        s.sendto(b"\x01\x02\x03", addr)
        with pytest.raises(socket.timeout):
            s.recv(512)
        # a response is never answered (no loops between servers)
        resp = dns.message.make_response(dns.message.make_query("web.default.svc.cluster.local", "A"))
        s.sendto(resp.to_wire(), addr)
        with pytest.raises(socket.timeout):
            s.recv(512)
    finally:
        s.close()
    # an opcode we do not do: NOTIMP
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    r = dns.query.udp(q, "127.0.0.1", port=env.server.port, timeout=3)
    assert r.rcode() == dns.rcode.NOTIMP
    # zone transfers are refused
    r = ask(env, "cluster.local", "AXFR", tcp=True)
    assert r.rcode() == dns.rcode.REFUSED
    # garbage over TCP: the connection ends, the server goes on
    with socket.create_connection(addr, timeout=2) as c:
        c.sendall(struct.pack("!H", 5) + b"\xff" * 5)
        assert c.recv(512) == b""
    assert ask(env, "web.default.svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert ask(env, "web.default.svc.cluster.local", tcp=True).rcode() == dns.rcode.NOERROR


def test_the_dns_address_is_kept_for_kube_dns(api):
    """The service range's tenth address is the cluster DNS's: the allocator never hands it to
    another service, even before kube-dns exists ("default/s53483" hashes to it)."""
    from kbox.api.client import InProcessClient
    client = InProcessClient(api)

    def make(name, ns="default"):
        return client.create("services", {"apiVersion": "v1", "kind": "Service",
                                          "metadata": {"name": name, "namespace": ns},
                                          "spec": {"ports": [{"port": 53}]}}, ns)

    assert make("s53483")["spec"]["clusterIP"] == "10.96.0.11"
    assert make("kube-dns", "kube-system")["spec"]["clusterIP"] == DNS_IP
