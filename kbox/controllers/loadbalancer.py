"""The LoadBalancer controller: Services reached from the host on 127.0.0.1.

The cloud controller manager's service controller, with the host as the
cloud (as cloud-provider-kind, k3s's servicelb and Docker Desktop do): every
Service of type LoadBalancer gets `status.loadBalancer.ingress` =
[{ip: 127.0.0.1, ipMode: VIP, ports: [...]}], and its host port is the
Service's own port (as Docker Desktop and servicelb publish it). A port that
cannot be had on 127.0.0.1 (taken by another process or another Service)
carries an `error` in its port status, a SyncLoadBalancerFailed Warning says
why, and the controller tries again with a growing back-off. Events follow
the service controller's: EnsuringLoadBalancer / EnsuredLoadBalancer,
DeletingLoadBalancer / DeletedLoadBalancer when a Service stops being a
LoadBalancer or goes away, `Type` when its type changes, and
UpdatedLoadBalancer when the set of Ready nodes behind real listeners changes.

What stands on 127.0.0.1 is the provider's work:
- docker nodes: `kbox.runtime.hostports.HostPorts` runs real listeners that
  forward to a Ready node's nodePort (where kube-proxy's rules take over); every
  node port (NodePort and LoadBalancer Services alike) also gets
  127.0.0.1:nodePort, as kind's extraPortMappings would give it;
- sim nodes: `HostPortCheck` checks the port could be had and listens on nothing:
  the status is the same as on docker, and the event says nothing listens.

No finalizer holds a deleted Service back (the real controller adds
service.kubernetes.io/load-balancer-cleanup): the listeners live in this
process, so nothing outlives it that a finalizer would have to wait for.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, condition, deep_copy, is_terminating, key_of, split_key
from kbox.clock import Clock
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.runtime.hostports import LOCALHOST, bind_error_text, port_in_use

log = logging.getLogger(__name__)

INGRESS_IP = LOCALHOST
NODES_KEY = "\x00nodes"       # not a namespace/name: the Ready node set changed
RETRY_BASE = 5.0              # seconds before a port that could not be had is tried again
RETRY_MAX = 300.0
# PortStatus.error must be CamelCase, prefixed with a domain when not a built-in value
ERR_IN_USE = "kbox.io/HostPortInUse"
ERR_UNAVAILABLE = "kbox.io/HostPortUnavailable"
ERR_NO_NODE_PORT = "kbox.io/NoNodePort"
ERR_PROTOCOL = "kbox.io/ProtocolNotSupported"
LB_TYPES = ("LoadBalancer",)
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class HostPortCheck:
    """The sim's provider: a port is checked by binding it for a moment; nothing listens."""

    listens = False

    def listen(self, host_port: int, node_port: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # as asyncio's start_server binds: SO_REUSEADDR, so only a live socket conflicts
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((INGRESS_IP, host_port))
        finally:
            s.close()

    def close(self, host_port: int) -> None:
        pass

    def set_nodes(self, names: list[str]) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass(frozen=True)
class Mapping:
    """One host port a Service wants: 127.0.0.1:host_port -> nodes:node_port."""
    host_port: int
    protocol: str
    node_port: int | None
    load_balancer: bool        # a LoadBalancer port (in the status), else a bare node port


@dataclass
class Failure:
    reason: str               # the port status' error
    message: str              # the Warning's text


class LoadBalancerController(Controller):
    name = "service-controller"

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 provider: Any = None, recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.provider = provider if provider is not None else HostPortCheck()
        self.svc_informer = informers.informer("services")
        self.node_informer = informers.informer("nodes")
        self.svc_informer.add_handler(self._svc, lambda o, n: self._svc(n), self._svc)
        self.node_informer.add_handler(self._node, self._node_update, self._node)
        # host port -> the Service key holding it; per Service what it holds and what failed
        self._claims: dict[tuple[int, str], str] = {}
        self._held: dict[str, dict[tuple[int, str], Mapping]] = {}
        self._failed: dict[str, dict[tuple[int, str], Failure]] = {}
        self._ensured: dict[str, tuple[Any, ...]] = {}    # what the last Ensured event was for
        self._last: dict[str, Obj] = {}                   # last Service seen (types, deletions)
        self._retries: dict[str, int] = {}
        self._ready_nodes: list[str] | None = None

    # ---- handlers (enqueue only) ------------------------------------------------------
    def _svc(self, svc: Obj) -> None:
        self.enqueue(key_of(svc))

    def _node(self, node: Obj) -> None:
        self.enqueue(NODES_KEY)

    def _node_update(self, old: Obj, new: Obj) -> None:
        # heartbeats (every node, every few seconds) change nothing a load balancer uses:
        # as the service controller does, resync the hosts only when eligibility changed
        if _eligible(old) != _eligible(new):
            self.enqueue(NODES_KEY)

    # ---- reconcile ----------------------------------------------------------------------
    def sync(self, key: str) -> None:
        if key == NODES_KEY:
            self._sync_nodes()
            return
        svc = self.svc_informer.get(key)
        if svc is not None and is_terminating(svc):
            svc = None
        old = self._last.get(key)
        if svc is None:
            self._last.pop(key, None)
        else:
            self._last[key] = svc
        old_type = ((old or {}).get("spec") or {}).get("type")
        new_type = ((svc or {}).get("spec") or {}).get("type")
        if svc is not None and old is not None and old_type != new_type:
            self.recorder.normal(svc, "Type", f"{old_type} -> {new_type}")
        want = self._wanted(svc) if svc is not None else {}
        lb_ports = tuple(sorted((m.host_port, m.protocol, m.node_port) for m in want.values()
                                if m.load_balancer))
        if svc is not None and new_type in LB_TYPES and \
                (self._ensured.get(key) or (None,))[0] != lb_ports:
            self.recorder.normal(svc, "EnsuringLoadBalancer", "Ensuring load balancer")
        self._release(key, want)
        failed = self._acquire(key, want)

        if svc is None or new_type not in LB_TYPES:
            self._retries.pop(key, None)
            if key in self._ensured:
                self._ensured.pop(key)
                subject = svc or old
                if subject is not None:
                    self.recorder.normal(subject, "DeletingLoadBalancer", "Deleting load balancer")
                    self.recorder.normal(subject, "DeletedLoadBalancer", "Deleted load balancer")
            if svc is not None:
                self._write_status(svc, None)
            self._warn_node_ports(svc, failed)
            return
        self._write_status(svc, self._ingress(svc, want, failed))
        lb_failed = {pk: f for pk, f in failed.items() if want[pk].load_balancer}
        if lb_failed:
            why = "; ".join(f.message for f in lb_failed.values())
            self.recorder.warning(svc, "SyncLoadBalancerFailed",
                                  f"Error syncing load balancer: failed to ensure load balancer: {why}")
        self._warn_node_ports(svc, {pk: f for pk, f in failed.items() if pk not in lb_failed})
        state = (lb_ports, tuple(sorted(lb_failed)))
        if not lb_failed and self._ensured.get(key) != state:
            note = "" if self.provider.listens else \
                " (sim nodes: the address is assigned but nothing listens on the host)"
            self.recorder.normal(svc, "EnsuredLoadBalancer", f"Ensured load balancer{note}")
        self._ensured[key] = state
        if failed:
            n = self._retries.get(key, 0)
            self._retries[key] = n + 1
            self.queue.add_after(key, min(RETRY_BASE * 2 ** n, RETRY_MAX))
        else:
            self._retries.pop(key, None)

    def _wanted(self, svc: Obj) -> dict[tuple[int, str], Mapping]:
        """The host ports this Service should hold: its own ports when it is a
        LoadBalancer, and (with real listeners) every node port."""
        spec = svc.get("spec") or {}
        t = spec.get("type")
        out: dict[tuple[int, str], Mapping] = {}
        if t in NODE_PORT_TYPES and self.provider.listens:
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    proto = p.get("protocol") or "TCP"
                    out[(p["nodePort"], proto)] = Mapping(p["nodePort"], proto, p["nodePort"], False)
        if t in LB_TYPES:
            for p in spec.get("ports") or []:
                proto = p.get("protocol") or "TCP"
                out[(int(p["port"]), proto)] = Mapping(int(p["port"]), proto, p.get("nodePort"), True)
        return out

    def _release(self, key: str, want: dict[tuple[int, str], Mapping]) -> None:
        held = self._held.get(key, {})
        freed = False
        for pk in [pk for pk, m in held.items() if want.get(pk) != m]:
            held.pop(pk)
            if self._claims.get(pk) == key:
                del self._claims[pk]
                self.provider.close(pk[0])
                freed = True
        if not held:
            self._held.pop(key, None)
        if not want:
            self._failed.pop(key, None)
        if freed:
            self._free_waiters(key)

    def _acquire(self, key: str, want: dict[tuple[int, str], Mapping]) -> dict[tuple[int, str], Failure]:
        held = self._held.setdefault(key, {})
        failed: dict[tuple[int, str], Failure] = {}
        for pk, m in sorted(want.items()):
            if held.get(pk) == m:
                continue
            f = self._take(key, m)
            if f is None:
                held[pk] = m
            else:
                failed[pk] = f
        if not held:
            self._held.pop(key, None)
        if failed:
            self._failed[key] = failed
        else:
            self._failed.pop(key, None)
        return failed

    def _take(self, key: str, m: Mapping) -> Failure | None:
        where = f"port {m.host_port}/{m.protocol}"
        if m.protocol != "TCP":
            return Failure(ERR_PROTOCOL, f"{where}: kbox forwards only TCP from the host")
        if m.node_port is None:
            return Failure(ERR_NO_NODE_PORT, f"{where}: no node port to forward to "
                                             "(spec.allocateLoadBalancerNodePorts is false)")
        owner = self._claims.get((m.host_port, m.protocol))
        if owner is not None and owner != key:
            return Failure(ERR_IN_USE, f"{where}: {INGRESS_IP}:{m.host_port} is already used "
                                       f"by Service {owner}")
        try:
            self.provider.listen(m.host_port, m.node_port)
        except OSError as e:
            return Failure(ERR_IN_USE if port_in_use(e) else ERR_UNAVAILABLE,
                           f"{where}: {bind_error_text(INGRESS_IP, m.host_port, e)}")
        self._claims[(m.host_port, m.protocol)] = key
        return None

    def _free_waiters(self, releaser: str) -> None:
        """Services still waiting for a port: try again now that one may be free."""
        for other in list(self._failed):
            if other != releaser:
                self.enqueue(other)

    def _ingress(self, svc: Obj, want: dict[tuple[int, str], Mapping],
                 failed: dict[tuple[int, str], Failure]) -> list[dict[str, Any]]:
        ports = []
        for p in (svc.get("spec") or {}).get("ports") or []:
            pk = (int(p["port"]), p.get("protocol") or "TCP")
            st: dict[str, Any] = {"port": pk[0], "protocol": pk[1]}
            if pk in failed:
                st["error"] = failed[pk].reason
            ports.append(st)
        return [{"ip": INGRESS_IP, "ipMode": "VIP", "ports": ports}]

    def _write_status(self, svc: Obj, ingress: list[dict[str, Any]] | None) -> None:
        lb = {"ingress": ingress} if ingress else {}
        if ((svc.get("status") or {}).get("loadBalancer") or {}) == lb:
            return
        new = deep_copy(svc)
        new.setdefault("status", {})["loadBalancer"] = lb
        ns, _ = split_key(key_of(svc))
        try:
            self.client.update_status("services", new, ns)
        except ApiError as e:
            if e.code == 404:
                return          # gone meanwhile: its deletion event releases what it held
            raise

    def _warn_node_ports(self, svc: Obj | None, failed: dict[tuple[int, str], Failure]) -> None:
        if svc is not None and failed:
            self.recorder.warning(svc, "HostPortUnavailable",
                                  "node port not reachable from the host: "
                                  + "; ".join(f.message for f in failed.values()))

    def _sync_nodes(self) -> None:
        """Ready nodes are where host listeners send connections (they pick one per
        connection, failing over to the next)."""
        ready = sorted(n["metadata"]["name"] for n in self.node_informer.list() if _eligible(n))
        if ready == self._ready_nodes:
            return
        first = self._ready_nodes is None
        self._ready_nodes = ready
        self.provider.set_nodes(ready)
        if first or not self.provider.listens:
            return
        for key in list(self._ensured):
            svc = self.svc_informer.get(key)
            if svc is not None:
                self.recorder.normal(svc, "UpdatedLoadBalancer", "Updated load balancer with new hosts")

    def stop(self) -> None:
        super().stop()
        for pk in list(self._claims):
            self.provider.close(pk[0])
        self._claims.clear()
        self._held.clear()


def _eligible(node: Obj) -> bool:
    """A node connections may be sent to: Ready, not going away, not excluded by label."""
    return ((condition(node, "Ready") or {}).get("status") == "True"
            and not is_terminating(node)
            and "node.kubernetes.io/exclude-from-external-load-balancers"
            not in (node["metadata"].get("labels") or {}))


__all__ = ["LoadBalancerController", "HostPortCheck", "INGRESS_IP"]
