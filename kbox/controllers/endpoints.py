"""The Endpoints controller: which pod IPs stand behind each Service.

As kube-controller-manager's endpoint controller: for every Service with a
selector it keeps an Endpoints object of the same name whose subsets list
the matching pods' IPs — ready pods under `addresses`, the others under
`notReadyAddresses` (all under `addresses` with publishNotReadyAddresses),
with the pod's hostname when its spec.subdomain names the Service —
and the ports, with each Service port's targetPort resolved (a number, or a
container port name looked up in each pod). Pods without an IP, finished
pods and terminating pods are left out. Pods are grouped into subsets by
their resolved ports; everything is sorted so that the same world always
gives the same object, and the controller writes only when it changed.
Services without a selector are left alone (their Endpoints are the user's);
when a Service goes, its Endpoints go.
"""

from __future__ import annotations

import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, key_of, split_key
from kbox.clock import Clock
from kbox.controllers import podutil
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)


def _selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _resolve_port(svc_port: dict[str, Any], pod: Obj) -> int | None:
    target = svc_port.get("targetPort")
    if target is None or target == "":
        return int(svc_port.get("port") or 0) or None
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def compute_subsets(service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The Endpoints subsets for `service` over candidate `pods` (already selected)."""
    spec = service.get("spec") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or podutil.is_terminating(pod) or podutil.pod_phase(pod) in ("Succeeded", "Failed"):
            continue
        ports: list[dict[str, Any]] = []
        for sp in spec.get("ports") or []:
            num = _resolve_port(sp, pod)
            if num is None:
                continue
            ep: dict[str, Any] = {"port": num, "protocol": sp.get("protocol") or "TCP"}
            if sp.get("name"):
                ep["name"] = sp["name"]
            if sp.get("appProtocol"):
                ep["appProtocol"] = sp["appProtocol"]
            ports.append(ep)
        if spec.get("ports") and not ports:
            continue   # none of the service's ports exist on this pod
        m = pod["metadata"]
        addr: dict[str, Any] = {"ip": ip}
        pspec = pod.get("spec") or {}
        # a pod naming this service as its subdomain gets a DNS name under it
        if pspec.get("hostname") and pspec.get("subdomain") == service["metadata"].get("name") \
                and m.get("namespace") == service["metadata"].get("namespace"):
            addr["hostname"] = pspec["hostname"]
        node = pspec.get("nodeName")
        if node:
            addr["nodeName"] = node
        addr["targetRef"] = {"kind": "Pod", "namespace": m.get("namespace"), "name": m["name"],
                             "uid": m.get("uid")}
        ports.sort(key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        gkey = tuple((p.get("name", ""), p["port"], p["protocol"]) for p in ports)
        g = groups.setdefault(gkey, {"ports": ports, "ready": [], "notready": []})
        (g["ready"] if publish_all or podutil.is_pod_ready(pod) else g["notready"]).append(addr)
    subsets = []
    for gkey in sorted(groups):
        g = groups[gkey]
        sub: dict[str, Any] = {}
        order = lambda a: (tuple(int(x) if x.isdigit() else 0 for x in a["ip"].replace(":", ".").split(".")),
                           a["ip"], a["targetRef"]["name"])
        if g["ready"]:
            sub["addresses"] = sorted(g["ready"], key=order)
        if g["notready"]:
            sub["notReadyAddresses"] = sorted(g["notready"], key=order)
        if g["ports"]:
            sub["ports"] = g["ports"]
        subsets.append(sub)
    return subsets


class EndpointsController(Controller):
    name = "endpoint-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.svc_informer = informers.informer("services")
        self.pod_informer = informers.informer("pods")
        self.ep_informer = informers.informer("endpoints")
        self.svc_informer.add_handler(self._svc, lambda o, n: self._svc(n), self._svc)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_added)
        self.ep_informer.add_handler(None, lambda o, n: self._ep(n), self._ep)

    # ---- handlers (enqueue only) ----------------------------------------------------
    def _svc(self, svc: Obj) -> None:
        self.enqueue(key_of(svc))

    def _ep(self, ep: Obj) -> None:
        # someone changed or removed an Endpoints we manage: put it right
        if self.svc_informer.get(key_of(ep)) is not None:
            self.enqueue(key_of(ep))

    def _services_for(self, pod: Obj) -> list[str]:
        ns = pod["metadata"].get("namespace") or ""
        labels = pod["metadata"].get("labels") or {}
        out = []
        for svc in self.svc_informer.by_index("namespace", ns):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and _selector_matches(sel, labels):
                out.append(key_of(svc))
        return out

    def _pod_added(self, pod: Obj) -> None:
        for k in self._services_for(pod):
            self.enqueue(k)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        keys = set(self._services_for(new))
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            keys |= set(self._services_for(old))
        for k in keys:
            self.enqueue(k)

    # ---- reconcile ------------------------------------------------------------------
    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.svc_informer.get(key)
        if svc is None:
            try:
                self.client.delete("endpoints", name, ns)
            except ApiError as e:
                if e.code != 404:
                    raise
            return
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            return
        pods = [p for p in self.pod_informer.by_index("namespace", ns or "")
                if _selector_matches(selector, p["metadata"].get("labels") or {})]
        subsets = compute_subsets(svc, pods)
        labels = dict(svc["metadata"].get("labels") or {})
        if not (svc.get("spec") or {}).get("clusterIP") or svc["spec"].get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        cur = self.ep_informer.get(key)
        if cur is None:
            ep = {"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": name, "namespace": ns, **({"labels": labels} if labels else {})},
                  "subsets": subsets}
            try:
                self.client.create("endpoints", ep, ns)
                return
            except ApiError as e:
                if e.code != 409:
                    raise
                cur = self.client.get("endpoints", name, ns)
        if (cur.get("subsets") or []) == subsets and (cur["metadata"].get("labels") or {}) == labels:
            return
        new = deep_copy(cur)
        new["subsets"] = subsets
        new["metadata"]["labels"] = labels or None
        if not labels:
            new["metadata"].pop("labels")
        self.client.update("endpoints", new, ns)


__all__ = ["EndpointsController", "compute_subsets"]
