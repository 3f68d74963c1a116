"""Services: defaults (ClusterIP, TCP, targetPort = port, single-stack IPv4,
traffic policies), cluster IP and node port allocation, and validation.

Allocation needs the whole cluster's view, so it happens in the strategy's
`admit(api, ...)` hook, which the ApiServer calls with itself before the
admission plugins. Used addresses are read from the store (the truth, so a
restarted server with a write-ahead log sees them too) plus the few this
server handed out moments ago and has not stored yet; that keeps concurrent
creates from ever sharing an address. Cluster IPs come from the cluster's
`networking.serviceSubnet` (the ApiServer's `service_cidr`, 10.96.0.0/12 by default);
its first address is the `kubernetes` service's and its tenth the cluster DNS's
(10.96.0.1 and 10.96.0.10, as in kubeadm clusters: the allocator never picks either
for another service); the first candidate is a hash of namespace/name, so one manifest
gets one address run after run, and collisions probe forward. A chosen address outside
the range is the allocator's refusal, as in Kubernetes.

An update that changes the type drops what the new type no longer needs and the
user left as it was (Kubernetes' dropTypeDependentFields, since 1.20): node ports
when leaving NodePort/LoadBalancer, the cluster IPs when turning ExternalName.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import weakref
import zlib
from typing import Any

import orjson

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import (Cause, duplicate, enum, forbidden, immutable, invalid,
                                   required, unsupported)
from kbox.api.kinds.podspec import PROTOCOLS, port_name_errors, port_number
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register
from kbox.api.validation import dns_label_errors, dns_subdomain_errors, validate_labels

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"     # kubeadm's and kind's, config.Networking's default
NODE_PORT_RANGE = (30000, 32767)
IN_FLIGHT_SECONDS = 30.0     # an allocation not stored by then belonged to a failed create
TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


class ServiceRange:
    """The cluster's service range and the two addresses kubeadm reserves in it: the first
    for the `kubernetes` service, the tenth for the cluster DNS (kube-system/kube-dns)."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        from kbox.dns import dns_service_ip
        self.network = ipaddress.ip_network(cidr)
        self.kubernetes_ip = str(self.network[1])
        self.dns_ip = dns_service_ip(cidr)

    def out_of_range(self, ip: str) -> Cause | None:
        """The allocator's refusal of a chosen address outside the range (None: inside, or
        not an address at all, which validation names)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr in self.network:
            return None
        return invalid("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP "
                       f"({ip}) is not in the valid range. The range of valid IPs is {self.network}")


class Allocator:
    """Cluster IPs and node ports of one API server."""

    def __init__(self, service_range: ServiceRange | None = None) -> None:
        self.range = service_range or ServiceRange()
        self.lock = threading.Lock()
        # handed out but perhaps not stored yet: value -> (service uid, monotonic time)
        self.recent_ips: dict[str, tuple[str, float]] = {}
        self.recent_ports: dict[int, tuple[str, float]] = {}

    def _recent(self, skip_uid: str | None) -> tuple[set[str], set[int]]:
        cutoff = time.monotonic() - IN_FLIGHT_SECONDS
        for d in (self.recent_ips, self.recent_ports):
            for k in [k for k, (_, t) in d.items() if t < cutoff]:
                del d[k]
        return ({k for k, (u, _) in self.recent_ips.items() if u != skip_uid},
                {k for k, (u, _) in self.recent_ports.items() if u != skip_uid})

    def release(self, uid: str) -> None:
        """A deleted service's addresses are free again at once."""
        with self.lock:
            for d in (self.recent_ips, self.recent_ports):
                for k in [k for k, (u, _) in d.items() if u == uid]:
                    del d[k]

    def forget(self, uid: str, ips: set[str], ports: set[int]) -> None:
        """Values an update dropped (a type change): free for others once the update is
        stored; until then the store still names them, so nobody can take them early."""
        with self.lock:
            for d, gone in ((self.recent_ips, ips), (self.recent_ports, ports)):
                for k in gone:
                    if k in d and d[k][0] == uid:
                        del d[k]

    @staticmethod
    def _in_use(api: Any, skip_uid: str | None) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        kvs, _ = api.store.range("/registry/services/")
        for kv in kvs:
            svc = orjson.loads(kv.value)
            if skip_uid and (svc.get("metadata") or {}).get("uid") == skip_uid:
                continue
            spec = svc.get("spec") or {}
            ips.update(_cluster_ips(spec))
            ports |= _node_ports(spec)
        return ips, ports

    def allocate(self, api: Any, obj: Obj, *, want_ip: bool, port_indexes: list[int]) -> None:
        m = obj.get("metadata") or {}
        spec = obj["spec"]
        seed = zlib.crc32(f"{m.get('namespace')}/{m.get('name')}".encode())
        with self.lock:
            ips, ports = self._in_use(api, m.get("uid"))
            rips, rports = self._recent(m.get("uid"))
            ips |= rips
            ports |= rports
            uid, now = m.get("uid", ""), time.monotonic()
            if want_ip:
                r = self.range
                if (m.get("namespace"), m.get("name")) == ("default", "kubernetes") \
                        and r.kubernetes_ip not in ips:
                    ip = r.kubernetes_ip
                elif (m.get("namespace"), m.get("name")) == ("kube-system", "kube-dns") \
                        and r.dns_ip not in ips:
                    ip = r.dns_ip
                else:
                    ip = _pick_ip(r.network, seed, ips | {r.dns_ip})
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                self.recent_ips[ip] = (uid, now)
            for i in port_indexes:
                port = _pick_port(seed + i, ports)
                spec["ports"][i]["nodePort"] = port
                ports.add(port)
                self.recent_ports[port] = (uid, now)

    def check_taken(self, api: Any, obj: Obj, *, check_ip: bool = True,
                    skip_ports: set[Any] = frozenset()) -> list[Cause]:  # type: ignore[assignment]
        """A user-chosen cluster IP or node port must be free."""
        m = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        ips, ports = self._in_use(api, m.get("uid"))
        with self.lock:
            rips, rports = self._recent(m.get("uid"))
        ips |= rips
        ports |= rports
        out: list[Cause] = []
        ip = spec.get("clusterIP")
        if check_ip and ip and ip != "None" and (ip in ips or ip == self.range.kubernetes_ip and
                                                 (m.get("namespace"), m.get("name")) != ("default", "kubernetes")):
            out.append(invalid("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP "
                               "is already allocated"))
        for i, p in enumerate(spec.get("ports") or []):
            if isinstance(p, dict) and p.get("nodePort") in ports and p["nodePort"] not in skip_ports:
                out.append(invalid(f"spec.ports[{i}].nodePort", p["nodePort"],
                                   "provided port is already allocated"))
        return out


def _cluster_ips(spec: dict[str, Any]) -> list[str]:
    return [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]


def _node_ports(spec: dict[str, Any]) -> set[int]:
    return {p["nodePort"] for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}


def _pick_ip(network: ipaddress.IPv4Network | ipaddress.IPv6Network, seed: int, used: set[str]) -> str:
    base = int(network.network_address)
    size = network.num_addresses
    # skip the network address, the kubernetes service's .1 and the broadcast address
    start = 2 + seed % (size - 3)
    for step in range(size - 3):
        off = 2 + (start - 2 + step) % (size - 3)
        ip = str(ipaddress.ip_address(base + off))
        if ip not in used:
            return ip
    raise _full("Internal error occurred: failed to allocate a serviceIP: range is full")


def _pick_port(seed: int, used: set[int]) -> int:
    lo, hi = NODE_PORT_RANGE
    n = hi - lo + 1
    for step in range(n):
        port = lo + (seed + step) % n
        if port not in used:
            return port
    raise _full("Internal error occurred: failed to allocate a nodePort: range is full")


def _full(message: str) -> Exception:
    from kbox.api.errors import ApiError
    return ApiError(500, "InternalError", message)


_ALLOCATORS: "weakref.WeakKeyDictionary[Any, Allocator]" = weakref.WeakKeyDictionary()
_ALLOCATORS_LOCK = threading.Lock()


def allocator_for(api: Any) -> Allocator:
    """The API server's allocator, over the server's service range (`api.service_cidr`)."""
    with _ALLOCATORS_LOCK:
        a = _ALLOCATORS.get(api)
        if a is None:
            cidr = getattr(api, "service_cidr", None) or DEFAULT_SERVICE_CIDR
            a = _ALLOCATORS[api] = Allocator(ServiceRange(cidr))
        return a


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    t = spec.get("type")
    if t == "NodePort":
        return True
    return t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def _drop_type_dependent_fields(obj: Obj, spec: dict[str, Any], ospec: dict[str, Any]) -> None:
    """A type change drops what the new type has no use for, when the update left it as it
    was (so an allocated value does not block `kubectl apply` / `patch` of the new type);
    a value the user changed stays and validation judges it. As Kubernetes since 1.20."""
    old_type, new_type = ospec.get("type", "ClusterIP"), spec.get("type", "ClusterIP")
    if old_type == new_type:
        return
    if old_type != "ExternalName" and new_type == "ExternalName":
        if spec.get("clusterIP") == ospec.get("clusterIP") and \
                spec.get("clusterIPs", ospec.get("clusterIPs")) == ospec.get("clusterIPs"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for f in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(f) == ospec.get(f):
                spec.pop(f, None)
    if old_type in ("NodePort", "LoadBalancer") and new_type not in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in ospec.get("ports") or [] if isinstance(p, dict)}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        if all(not p.get("nodePort") or
               p["nodePort"] == old_ports.get((p.get("port"), p.get("protocol", "TCP")))
               for p in ports):
            for p in ports:
                p.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)
    if old_type == "LoadBalancer" and new_type != "LoadBalancer" and \
            spec.get("allocateLoadBalancerNodePorts") == ospec.get("allocateLoadBalancerNodePorts"):
        spec.pop("allocateLoadBalancerNodePorts", None)
    if new_type != "LoadBalancer" and isinstance(obj.get("status"), dict):
        # the load balancer goes away with the type (its controller closes the listeners)
        obj["status"]["loadBalancer"] = {}


@register("services")
class ServiceStrategy(KindStrategy):
    model = core.Service

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        spec, ospec = obj.get("spec"), old.get("spec") or {}
        if not isinstance(spec, dict):
            return
        _drop_type_dependent_fields(obj, spec, ospec)
        # an update that leaves out the allocated values keeps them (kubectl replace)
        if not spec.get("clusterIP") and ospec.get("clusterIP") and \
                spec.get("type", "ClusterIP") != "ExternalName":
            spec["clusterIP"] = ospec["clusterIP"]
            if not spec.get("clusterIPs") and ospec.get("clusterIPs"):
                spec["clusterIPs"] = list(ospec["clusterIPs"])
        if _needs_node_ports(spec):
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                         for p in ospec.get("ports") or [] if isinstance(p, dict)}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    np_ = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if np_:
                        p["nodePort"] = np_

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if spec is None:
            spec = obj["spec"] = {}
        if not isinstance(spec, dict):
            return
        t = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or ():
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if p.get("targetPort") in (None, 0, "") and "port" in p:
                    p["targetPort"] = p["port"]
        if t == "ExternalName":
            return
        ip = spec.get("clusterIP")
        if ip and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if t in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if t == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)

    def admit(self, api: Any, op: str, obj: Obj, old: Obj | None) -> None:
        if op == "DELETE":
            allocator_for(api).release((obj.get("metadata") or {}).get("uid", ""))
            return
        if op not in ("CREATE", "UPDATE"):
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("ports", []), list):
            return
        if old is not None and spec == (old.get("spec") or {}):
            return
        want_ip = spec.get("type") != "ExternalName" and not spec.get("clusterIP")
        idx = [i for i, p in enumerate(spec.get("ports") or [])
               if _needs_node_ports(spec) and isinstance(p, dict) and not p.get("nodePort")]
        alloc = allocator_for(api)
        ospec = (old or {}).get("spec") or {}
        if old is not None:
            alloc.forget((obj.get("metadata") or {}).get("uid", ""),
                         set(_cluster_ips(ospec)) - set(_cluster_ips(spec)),
                         _node_ports(ospec) - _node_ports(spec))
        chosen_ip = spec.get("clusterIP") not in (None, "", "None", ospec.get("clusterIP"))
        old_ports = {p.get("nodePort") for p in ospec.get("ports") or [] if isinstance(p, dict)}
        chosen_port = any(isinstance(p, dict) and p.get("nodePort") and p["nodePort"] not in old_ports
                          for p in spec.get("ports") or [])
        if chosen_ip or chosen_port:
            outside = alloc.range.out_of_range(spec["clusterIP"]) if chosen_ip else None
            taken = [outside] if outside else \
                alloc.check_taken(api, obj, check_ip=chosen_ip, skip_ports=old_ports)
            if taken:
                from kbox.api.errors import invalid as invalid_error
                raise invalid_error("Service", (obj.get("metadata") or {}).get("name", ""), taken)
        if want_ip or idx:
            alloc.allocate(api, obj, want_ip=want_ip, port_indexes=idx)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        t = spec.get("type")
        if t not in TYPES:
            out.append(unsupported("spec.type", t or "", TYPES))
        ip = spec.get("clusterIP")
        headless = ip == "None"
        ports = spec.get("ports") or []
        if t == "ExternalName":
            for f in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if spec.get(f) or (f == "clusterIPs" and ip):
                    out.append(forbidden(f"spec.{f}", "may not be set for ExternalName services"))
            name = spec.get("externalName")
            if not name:
                out.append(required("spec.externalName"))
            else:
                for e in dns_subdomain_errors(name):
                    out.append(invalid("spec.externalName", name, e))
        elif not ports and not headless:
            out.append(required("spec.ports"))
        if headless and t != "ClusterIP" and t != "ExternalName":
            out.append(invalid("spec.clusterIPs[0]", "None",
                               "may not be set to 'None' for LoadBalancer or NodePort services"))
        if ip and not headless:
            try:
                ipaddress.ip_address(ip)    # whether it is in the cluster's range: admit's
            except ValueError:
                out.append(invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, "
                                   "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
        names: set[str] = set()
        seen: set[tuple[Any, Any]] = set()
        for i, p in enumerate(ports):
            f = f"spec.ports[{i}]"
            pname = p.get("name")
            if len(ports) > 1 and not pname:
                out.append(required(f"{f}.name"))
            elif pname:
                for e in dns_label_errors(pname):
                    out.append(invalid(f"{f}.name", pname, e))
                if pname in names:
                    out.append(duplicate(f"{f}.name", pname))
                names.add(pname)
            if p.get("port") is None:
                out.append(required(f"{f}.port"))
            else:
                port_number(out, f"{f}.port", p["port"])
            enum(out, f"{f}.protocol", p.get("protocol"), PROTOCOLS, required_if_empty=True)
            key = (p.get("port"), p.get("protocol"))
            if key in seen:
                out.append(duplicate(f"{f}", {"port": p.get("port"), "protocol": p.get("protocol")}))
            seen.add(key)
            tp = p.get("targetPort")
            if isinstance(tp, int):
                port_number(out, f"{f}.targetPort", tp)
            elif isinstance(tp, str):
                for e in port_name_errors(tp):
                    out.append(invalid(f"{f}.targetPort", tp, e))
            np_ = p.get("nodePort")
            if np_ is not None:
                if t not in ("NodePort", "LoadBalancer") and np_ != 0:
                    out.append(forbidden(f"{f}.nodePort", f"may not be used when `type` is '{t}'"))
                elif np_ and not NODE_PORT_RANGE[0] <= np_ <= NODE_PORT_RANGE[1]:
                    out.append(invalid(f"{f}.nodePort", np_, "provided port is not in the valid "
                                       f"range. The range of valid ports is {NODE_PORT_RANGE[0]}-"
                                       f"{NODE_PORT_RANGE[1]}"))
        if spec.get("selector"):
            out += validate_labels(spec["selector"], "spec.selector")
        enum(out, "spec.sessionAffinity", spec.get("sessionAffinity"), AFFINITIES)
        enum(out, "spec.internalTrafficPolicy", spec.get("internalTrafficPolicy"), TRAFFIC_POLICIES)
        enum(out, "spec.externalTrafficPolicy", spec.get("externalTrafficPolicy"), TRAFFIC_POLICIES)
        enum(out, "spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"), IP_FAMILY_POLICIES)
        for i, fam in enumerate(spec.get("ipFamilies") or []):
            enum(out, f"spec.ipFamilies[{i}]", fam, ("IPv4", "IPv6"))
        if old is not None:
            ospec = old.get("spec") or {}
            oip = ospec.get("clusterIP")
            if oip and t != "ExternalName" and ospec.get("type") != "ExternalName" and ip != oip:
                out.append(immutable("spec.clusterIPs[0]", ip or ""))
        return out

