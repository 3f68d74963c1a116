"""Services: defaults (ClusterIP, TCP, targetPort = port, single-stack IPv4,
traffic policies), cluster IP and node port allocation, and validation.

Allocation needs the whole cluster's view, so it happens in the strategy's
`admit(api, ...)` hook, which the ApiServer calls with itself before the
admission plugins. Used addresses are read from the store (the truth, so a
restarted server with a write-ahead log sees them too) plus the few this
server handed out moments ago and has not stored yet; that keeps concurrent
creates from ever sharing an address. Cluster IPs come from 10.96.0.0/12
(10.96.0.1 is the `kubernetes` service's and 10.96.0.10 the cluster DNS's, as in
kubeadm clusters: the allocator never picks either for another service); the first
candidate is a hash of namespace/name, so one manifest gets one address run
after run, and collisions probe forward.
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
from kbox.api.kinds.common import (Cause, duplicate, enum, immutable, invalid, required,
                                   unsupported)
from kbox.api.kinds.podspec import PROTOCOLS, port_name_errors, port_number
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register
from kbox.api.validation import dns_label_errors, dns_subdomain_errors, validate_labels

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
KUBERNETES_SERVICE_IP = "10.96.0.1"
# the cluster DNS's (kube-system/kube-dns), the tenth address as kubeadm's: never handed out
DNS_SERVICE_IP = str(SERVICE_CIDR.network_address + 10)
NODE_PORT_RANGE = (30000, 32767)
IN_FLIGHT_SECONDS = 30.0     # an allocation not stored by then belonged to a failed create
TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


class Allocator:
    """Cluster IPs and node ports of one API server."""

    def __init__(self) -> None:
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
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip and ip != "None":
                    ips.add(ip)
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and p.get("nodePort"):
                    ports.add(p["nodePort"])
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
                if (m.get("namespace"), m.get("name")) == ("default", "kubernetes") \
                        and KUBERNETES_SERVICE_IP not in ips:
                    ip = KUBERNETES_SERVICE_IP
                elif (m.get("namespace"), m.get("name")) == ("kube-system", "kube-dns") \
                        and DNS_SERVICE_IP not in ips:
                    ip = DNS_SERVICE_IP
                else:
                    ip = _pick_ip(seed, ips | {DNS_SERVICE_IP})
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
        if check_ip and ip and ip != "None" and (ip in ips or ip == KUBERNETES_SERVICE_IP and
                                                 (m.get("namespace"), m.get("name")) != ("default", "kubernetes")):
            out.append(invalid("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP "
                               "is already allocated"))
        for i, p in enumerate(spec.get("ports") or []):
            if isinstance(p, dict) and p.get("nodePort") in ports and p["nodePort"] not in skip_ports:
                out.append(invalid(f"spec.ports[{i}].nodePort", p["nodePort"],
                                   "provided port is already allocated"))
        return out


def _pick_ip(seed: int, used: set[str]) -> str:
    base = int(SERVICE_CIDR.network_address)
    size = SERVICE_CIDR.num_addresses
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
    with _ALLOCATORS_LOCK:
        a = _ALLOCATORS.get(api)
        if a is None:
            a = _ALLOCATORS[api] = Allocator()
        return a


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    t = spec.get("type")
    if t == "NodePort":
        return True
    return t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


@register("services")
class ServiceStrategy(KindStrategy):
    model = core.Service

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        spec, ospec = obj.get("spec"), old.get("spec") or {}
        if not isinstance(spec, dict):
            return
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
        chosen_ip = spec.get("clusterIP") not in (None, "", "None", ospec.get("clusterIP"))
        old_ports = {p.get("nodePort") for p in ospec.get("ports") or [] if isinstance(p, dict)}
        chosen_port = any(isinstance(p, dict) and p.get("nodePort") and p["nodePort"] not in old_ports
                          for p in spec.get("ports") or [])
        if chosen_ip or chosen_port:
            taken = alloc.check_taken(api, obj, check_ip=chosen_ip, skip_ports=old_ports)
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
                addr = ipaddress.ip_address(ip)
            except ValueError:
                out.append(invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, "
                                   "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
            else:
                if addr not in SERVICE_CIDR:
                    out.append(invalid("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the "
                                       f"provided IP ({ip}) is not in the valid range. The range "
                                       f"of valid IPs is {SERVICE_CIDR}"))
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
                    out.append(invalid(f"{f}.nodePort", np_,
                                       "may not be used when `type` is 'ClusterIP'"))
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

