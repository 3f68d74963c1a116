"""The cluster's DNS records, as CoreDNS's kubernetes plugin serves them.

Names under the cluster domain (`cluster.local`), following the Kubernetes DNS
specification and what CoreDNS does where the spec leaves room:

    <svc>.<ns>.svc.<zone>            A      the ClusterIP; a headless Service: every ready
                                            endpoint address; ExternalName: CNAME
    <ep>.<svc>.<ns>.svc.<zone>       A      one endpoint, named by its `hostname` or its
                                            dashed IP (10-244-1-5)
    _<port>._<proto>.<svc>.<ns>.svc.<zone>
                                     SRV    a named port: the Service's port and name, or
                                            (headless) one record per endpoint address
    <svc>.<ns>.svc.<zone>            SRV    every port of the Service (CoreDNS's wildcard)
    <a-b-c-d>.<ns>.pod.<zone>        A      a pod address (`pods insecure`, kubeadm's
                                            Corefile; `verified` needs a pod with that IP)
    <zone>                           SOA NS the zone's apex; ns.dns.<zone> A → the DNS Service
    <d.c.b.a>.in-addr.arpa           PTR    a ClusterIP → its Service; a headless Service's
                                            endpoint address → its endpoint name

A name that does not exist is NXDOMAIN, a name that exists without records of
the asked type is NOERROR with no answer (both with the zone's SOA in the
authority section, TTL 5 as CoreDNS). Names outside the cluster domain and
the cluster's own address ranges are REFUSED: kbox's DNS never forwards.

The records are computed per query from a `ClusterView` (informer caches,
never a list call), so they are never staler than the caches.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kbox.api.objects import Obj
from kbox.dns import CLUSTER_DOMAIN

TTL = 5                        # CoreDNS's kubernetes plugin: records and the negative answer's SOA
SOA_TIMINGS = "7200 1800 86400 5"      # refresh retry expire minimum, as CoreDNS's SOA
POD_MODES = ("insecure", "verified", "disabled")

# informer index names (added to the shared informers the DNS reads)
INDEX_CLUSTER_IP = "dns-cluster-ip"
INDEX_ENDPOINT_IP = "dns-endpoint-ip"
INDEX_POD_IP = "dns-pod-ip"

A, AAAA, CNAME, NS, PTR, SOA, SRV, ANY = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME,
                                          dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.SOA,
                                          dns.rdatatype.SRV, dns.rdatatype.ANY)


# ---- what the records are computed from -------------------------------------------------------
def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def ready_addresses(ep: Obj | None) -> list[dict[str, Any]]:
    """Every ready address of an Endpoints object, each once (an address can be in several
    subsets, one per port set)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for sub in (ep or {}).get("subsets") or []:
        for addr in sub.get("addresses") or []:
            k = (addr.get("ip", ""), addr.get("hostname", ""))
            if k[0] and k not in seen:
                seen.add(k)
                out.append(addr)
    return out


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def endpoint_name(addr: dict[str, Any]) -> str:
    """CoreDNS's endpoint name: the address's hostname, else its IP with dashes."""
    return (addr.get("hostname") or dashed(addr["ip"])).lower()


def _cluster_ip_index(svc: Obj) -> list[str]:
    return cluster_ips(svc)


def _endpoint_ip_index(ep: Obj) -> list[str]:
    return sorted({a["ip"] for a in ready_addresses(ep)})


def _pod_ip_index(pod: Obj) -> list[str]:
    st = pod.get("status") or {}
    ips = [p.get("ip") for p in st.get("podIPs") or []] or [st.get("podIP")]
    return [ip for ip in ips if ip]


class ClusterView:
    """The Services, Endpoints, Namespaces (and Pods) the DNS answers from: shared informer
    caches, with indexes by address for reverse and pod lookups."""

    def __init__(self, informers: Any, *, pods: bool = False) -> None:
        self.services = informers.informer("services")
        self.endpoints = informers.informer("endpoints")
        self.namespaces = informers.informer("namespaces")
        self.services.add_index(INDEX_CLUSTER_IP, _cluster_ip_index)
        self.endpoints.add_index(INDEX_ENDPOINT_IP, _endpoint_ip_index)
        self.pods = None
        if pods:       # only `pods verified` reads pods: no index on the busiest informer otherwise
            self.pods = informers.informer("pods")
            self.pods.add_index(INDEX_POD_IP, _pod_ip_index)

    def service(self, ns: str, name: str) -> Obj | None:
        return self.services.get(f"{ns}/{name}")

    def endpoints_of(self, ns: str, name: str) -> Obj | None:
        return self.endpoints.get(f"{ns}/{name}")

    def namespace_exists(self, ns: str) -> bool:
        return self.namespaces.get(ns) is not None

    def services_with_ip(self, ip: str) -> list[Obj]:
        return self.services.by_index(INDEX_CLUSTER_IP, ip)

    def endpoints_with_ip(self, ip: str) -> list[Obj]:
        return self.endpoints.by_index(INDEX_ENDPOINT_IP, ip)

    def pods_with_ip(self, ip: str) -> list[Obj]:
        return self.pods.by_index(INDEX_POD_IP, ip) if self.pods is not None else []


# ---- answers ----------------------------------------------------------------------------------
@dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True


# a name's records: rdata texts by type ({} = the name exists with no records: NODATA)
Records = dict[int, list[str]]


class ClusterRecords:
    """Answers one question (name, type) about the cluster's names."""

    def __init__(self, view: ClusterView, *, zone: str = CLUSTER_DOMAIN,
                 nameserver_ip: str | None = None, pod_mode: str = "insecure",
                 reverse_ranges: tuple[str, ...] = ()) -> None:
        if pod_mode not in POD_MODES:
            raise ValueError(f"pod_mode: must be one of {', '.join(POD_MODES)}, not {pod_mode!r}")
        self.view = view
        self.zone = dns.name.from_text(zone)
        self.zone_text = self.zone.to_text()            # "cluster.local."
        self.nameserver_ip = nameserver_ip
        self.pod_mode = pod_mode
        # reverse lookups answered for these ranges (service and pod CIDRs); others: REFUSED
        self.reverse_ranges = [ipaddress.ip_network(r) for r in reverse_ranges]
        self.serial = int(time.time())

    # -- the entry point --
    def answer(self, qname: dns.name.Name, qtype: int) -> Answer:
        if qname.is_subdomain(_REVERSE_V4):
            ip = _reverse_ip(qname.relativize(_REVERSE_V4).labels)
            # only the cluster's own ranges are ours; the rest of the reverse tree is not
            if ip is None or not any(ip in net for net in self.reverse_ranges):
                return Answer(dns.rcode.REFUSED, authoritative=False)
            return self._reverse(qname, qtype, str(ip))
        if not qname.is_subdomain(self.zone):
            return Answer(dns.rcode.REFUSED, authoritative=False)
        out = Answer()
        name, chased = qname, 0
        while True:
            records = self.records(name)
            if records is None:
                if not out.answer:        # NXDOMAIN for the asked name (not a CNAME's target)
                    out.rcode = dns.rcode.NXDOMAIN
                out.authority.append(self._soa())
                return out
            if CNAME in records and qtype != CNAME:
                target = records[CNAME][0]
                out.answer.append(_rrset(name, CNAME, records[CNAME]))
                target_name = dns.name.from_text(target)
                # chase a target inside the zone (CoreDNS does), never one outside it
                if not target_name.is_subdomain(self.zone) or chased >= 8:
                    return out
                name, chased = target_name, chased + 1
                continue
            types = sorted(records) if qtype == ANY else [qtype]
            for t in types:
                if records.get(t):
                    out.answer.append(_rrset(name, t, records[t]))
            if not any(records.get(t) for t in types):
                out.authority.append(self._soa())
            elif qtype == SRV:
                self._srv_targets(records[SRV], out)
            return out

    # -- one name's records (None: no such name) --
    def records(self, name: dns.name.Name) -> Records | None:
        rel = [lab.decode("ascii", "replace").lower()
               for lab in name.relativize(self.zone).labels if lab]
        if name == self.zone:
            rel = []
        if not rel:
            out: Records = {SOA: [self._soa_text()], NS: [f"ns.dns.{self.zone_text}"]}
            return out
        kind = rel[-1]
        if kind == "svc":
            return self._svc_records(rel[:-1])
        if kind == "pod":
            return self._pod_records(rel[:-1])
        if kind == "dns" and self.nameserver_ip:
            if rel == ["dns"]:
                return {}
            if rel == ["ns", "dns"]:
                return {A: [self.nameserver_ip]}
        return None

    def _svc_records(self, rel: list[str]) -> Records | None:
        if not rel:
            return {}                                    # svc.<zone>: an empty non-terminal
        ns = rel[-1]
        if len(rel) == 1:
            return {} if self.view.namespace_exists(ns) else None
        svc = self.view.service(ns, rel[-2])
        if svc is None:
            return None
        spec = svc.get("spec") or {}
        base = f"{rel[-2]}.{ns}.svc.{self.zone_text}"
        if len(rel) == 2:
            if spec.get("type") == "ExternalName":
                target = (spec.get("externalName") or "").rstrip(".")
                return {CNAME: [target + "."]} if target else {}
            out: Records = {}
            if is_headless(svc):
                addrs = ready_addresses(self.view.endpoints_of(ns, rel[-2]))
                ips = sorted({a["ip"] for a in addrs})
            else:
                ips = cluster_ips(svc)
            v4 = [ip for ip in ips if ":" not in ip]
            v6 = [ip for ip in ips if ":" in ip]
            if v4:
                out[A] = v4
            if v6:
                out[AAAA] = v6
            srv = self._srv(svc, ns, rel[-2], base, None, None)
            if srv:
                out[SRV] = srv
            return out
        if spec.get("type") == "ExternalName":
            return None
        if len(rel) == 3:
            # an endpoint of the service, by hostname or dashed IP
            ep = self.view.endpoints_of(ns, rel[-2])
            ips = sorted({a["ip"] for a in ready_addresses(ep) if endpoint_name(a) == rel[0]})
            if not ips:
                return None
            return {A: [ip for ip in ips if ":" not in ip]} | (
                {AAAA: [ip for ip in ips if ":" in ip]} if any(":" in ip for ip in ips) else {})
        if len(rel) == 4 and rel[0].startswith("_") and rel[1].startswith("_"):
            srv = self._srv(svc, ns, rel[-2], base, rel[0][1:], rel[1][1:])
            return {SRV: srv} if srv else None
        return None

    def _srv(self, svc: Obj, ns: str, name: str, base: str, port_name: str | None,
             proto: str | None) -> list[str]:
        """SRV rdata for the service's ports matching `_port._proto` (None: any), CoreDNS's
        weights: 100 split evenly between the records."""
        ports = [p for p in (svc.get("spec") or {}).get("ports") or []
                 if (port_name is None or (p.get("name") or "").lower() == port_name)
                 and (proto is None or (p.get("protocol") or "TCP").lower() == proto)]
        if not ports:
            return []
        targets: list[tuple[int, str]] = []
        if is_headless(svc):
            ep = self.view.endpoints_of(ns, name)
            wanted = {((p.get("name") or ""), (p.get("protocol") or "TCP")) for p in ports}
            for sub in (ep or {}).get("subsets") or []:
                for ep_port in sub.get("ports") or []:
                    if ((ep_port.get("name") or ""), (ep_port.get("protocol") or "TCP")) not in wanted:
                        continue
                    for addr in sub.get("addresses") or []:
                        targets.append((int(ep_port["port"]), f"{endpoint_name(addr)}.{base}"))
        else:
            targets = [(int(p["port"]), base) for p in ports]
        targets = sorted(set(targets))
        weight = max(1, 100 // len(targets)) if targets else 100
        return [f"0 {weight} {port} {target}" for port, target in targets]

    def _pod_records(self, rel: list[str]) -> Records | None:
        if not rel:
            return {}
        ns = rel[-1]
        if self.pod_mode == "disabled" or not self.view.namespace_exists(ns):
            return None
        if len(rel) == 1:
            return {}
        if len(rel) != 2:
            return None
        ip = _undashed(rel[0])
        if ip is None:
            return None
        if self.pod_mode == "verified" and not any(
                (p.get("metadata") or {}).get("namespace") == ns
                for p in self.view.pods_with_ip(ip)):
            return None
        return {AAAA if ":" in ip else A: [ip]}

    def _reverse(self, qname: dns.name.Name, qtype: int, ip: str) -> Answer:
        ptrs = self.ptr_names(ip)
        if not ptrs:
            return Answer(dns.rcode.NXDOMAIN, authority=[self._soa()])
        if qtype not in (PTR, ANY):
            return Answer(authority=[self._soa()])
        return Answer(answer=[_rrset(qname, PTR, ptrs)])

    def ptr_names(self, ip: str) -> list[str]:
        """A ClusterIP → its Service; an address of a headless Service → its endpoint name."""
        names = set()
        for svc in self.view.services_with_ip(ip):
            m = svc["metadata"]
            names.add(f"{m['name']}.{m['namespace']}.svc.{self.zone_text}")
        for ep in self.view.endpoints_with_ip(ip):
            m = ep["metadata"]
            svc = self.view.service(m["namespace"], m["name"])
            if svc is None or not is_headless(svc):
                continue
            for addr in ready_addresses(ep):
                if addr["ip"] == ip:
                    names.add(f"{endpoint_name(addr)}.{m['name']}.{m['namespace']}.svc.{self.zone_text}")
        return sorted(names)

    # -- helpers --
    def _srv_targets(self, srv: list[str], out: Answer) -> None:
        """SRV targets' addresses in the additional section, as CoreDNS adds them."""
        for target in sorted({r.split()[3] for r in srv}):
            name = dns.name.from_text(target)
            records = self.records(name)
            for t in (A, AAAA):
                if records and records.get(t):
                    out.additional.append(_rrset(name, t, records[t]))

    def _soa_text(self) -> str:
        return f"ns.dns.{self.zone_text} hostmaster.{self.zone_text} {self.serial} {SOA_TIMINGS}"

    def _soa(self) -> dns.rrset.RRset:
        return _rrset(self.zone, SOA, [self._soa_text()])


def _rrset(name: dns.name.Name, rdtype: int, texts: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, texts)


_REVERSE_V4 = dns.name.from_text("in-addr.arpa.")


def _reverse_ip(labels: tuple[bytes, ...]) -> ipaddress.IPv4Address | None:
    """The address of a full IPv4 reverse name's labels (d, c, b, a), else None."""
    try:
        if len(labels) != 4:
            return None
        return ipaddress.IPv4Address(".".join(lab.decode("ascii") for lab in reversed(labels)))
    except (ValueError, UnicodeDecodeError):
        return None


def _undashed(label: str) -> str | None:
    """A pod name's dashed IPv4 (10-244-1-5) back to an address, or None."""
    try:
        return str(ipaddress.IPv4Address(label.replace("-", ".")))
    except ValueError:
        return None


__all__ = ["ClusterRecords", "ClusterView", "Answer", "CLUSTER_DOMAIN", "TTL", "POD_MODES",
           "endpoint_name", "ready_addresses"]
