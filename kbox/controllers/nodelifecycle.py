"""The node lifecycle controller: notices dead nodes and moves their pods away.

What kube-controller-manager's node lifecycle, node IPAM, taint-eviction
and pod GC controllers do, at the scale of one machine:

- Health: every `node_monitor_period` it looks at each node's Lease
  (namespace kube-node-lease) and Ready heartbeat. When neither changed for
  `node_monitor_grace_period` (measured on our own clock from when we last
  *saw* a change, as kube does, so clock skew never matters) every condition
  becomes Unknown ("Kubelet stopped posting node status."), a NodeNotReady
  event is recorded. Whenever Ready leaves True (Unknown from here, or False
  from the kubelet) the node's pods are marked Ready=False, each with a
  Warning NodeNotReady "Node is not ready" event (MarkPodsNotReady).
- Taints from conditions: Ready=Unknown → node.kubernetes.io/unreachable,
  Ready=False → node.kubernetes.io/not-ready, both as NoExecute (with
  timeAdded) and NoSchedule; spec.unschedulable → unschedulable:NoSchedule;
  pressure conditions → their NoSchedule taints. Healthy again → removed.
- Taint eviction: a pod on a node with a NoExecute taint it does not
  tolerate is deleted at once; one tolerated for `tolerationSeconds` is
  deleted that long after the taint's timeAdded (TaintManagerEviction).
- IPAM: nodes without spec.podCIDR get a unique 10.244.N.0/24.
- Pod GC: pods bound to a deleted node are deleted.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, condition, deep_copy
from kbox.clock import Clock, iso_time, parse_time
from kbox.controllers import podutil
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

#: the taints this controller owns; anything else on a node is left alone
MANAGED_TAINT_KEYS = {TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
                      TAINT_MEMORY_PRESSURE, TAINT_DISK_PRESSURE, TAINT_PID_PRESSURE,
                      TAINT_NETWORK_UNAVAILABLE}
_PRESSURE_TAINTS = {"MemoryPressure": TAINT_MEMORY_PRESSURE, "DiskPressure": TAINT_DISK_PRESSURE,
                    "PIDPressure": TAINT_PID_PRESSURE,
                    "NetworkUnavailable": TAINT_NETWORK_UNAVAILABLE}

MONITOR_KEY = "monitor"
CIDR_BASE = "10.244.0.0/16"


# ---- taints and tolerations (shared with the DaemonSet controller) ------------------

def toleration_matches(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' ToleratesTaint: effect, key and (for Equal) value must match."""
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    op = tol.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    if not key:
        return False   # an empty key needs Exists
    return (tol.get("value") or "") == (taint.get("value") or "")


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(toleration_matches(t, taint) for t in tolerations or [])


def untolerated(tolerations: list[dict[str, Any]], taints: list[dict[str, Any]],
                effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> list[dict[str, Any]]:
    return [t for t in taints or [] if t.get("effect") in effects and not tolerates(tolerations, t)]


def eviction_time(pod: Obj, taints: list[dict[str, Any]]) -> float | None:
    """When taint eviction should delete `pod` (epoch seconds; -inf: now), None: never."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints or []:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if toleration_matches(t, taint)]
        if not matching:
            return float("-inf")
        seconds = [t.get("tolerationSeconds") for t in matching]
        if any(s is None for s in seconds):
            continue   # tolerated forever
        added = parse_time(taint.get("timeAdded")) or 0.0
        at = added + max(0, min(int(s) for s in seconds))
        due = at if due is None else min(due, at)
    return due


def _cond_states(node: Obj) -> list[tuple[Any, Any]]:
    return [(c.get("type"), c.get("status")) for c in (node.get("status") or {}).get("conditions") or []]


class _Health:
    __slots__ = ("heartbeat", "renew", "probe")

    def __init__(self, heartbeat: str | None, renew: str | None, probe: float) -> None:
        self.heartbeat = heartbeat
        self.renew = renew
        self.probe = probe


class NodeLifecycleController(Controller):
    name = "node-controller"
    workers = 1   # one worker keeps CIDR allocation and health bookkeeping race-free

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 monitor_period: float = 1.0, grace_period: float = 10.0,
                 recorder: EventRecorder | None = None, cidr: str = CIDR_BASE) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.monitor_period = monitor_period
        self.grace_period = grace_period
        self.cidr = ipaddress.ip_network(cidr)
        self.node_informer = informers.informer("nodes")
        # all namespaces: the same shared informer the garbage collector watches
        self.lease_informer = informers.informer("leases")
        self.pod_informer = informers.informer("pods")
        self._health: dict[str, _Health] = {}
        # the Ready status each node had when we last synced it: pods are marked
        # not ready on the transition away from True, once
        self._ready_seen: dict[str, str | None] = {}
        # CIDRs handed out by us, so two nodes never get one before the cache shows it
        self._allocated: dict[str, str] = {}
        self._cidr_cursor = 0
        self._cidrs_exhausted = False   # until a node goes away, nothing new can be free
        self._cidr_of: dict[str, str] = {}     # node -> its CIDR (the inverse of _allocated)
        self._cidr_warned: set[str] = set()
        self.node_informer.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, None)
        self.queue.add(MONITOR_KEY)

    # ---- handlers (enqueue only) --------------------------------------------------
    def _node_added(self, node: Obj) -> None:
        self.enqueue("node:" + node["metadata"]["name"])

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # heartbeats rewrite the conditions every few seconds: only status flips matter here
        if old.get("spec") != new.get("spec") or _cond_states(old) != _cond_states(new):
            self.enqueue("node:" + new["metadata"]["name"])

    def _node_deleted(self, node: Obj) -> None:
        self.enqueue("gone:" + node["metadata"]["name"])

    def _pod_added(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self._node_needs_pod_care(node):
            self.enqueue("node:" + node)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        node = (new.get("spec") or {}).get("nodeName")
        if node and node != (old.get("spec") or {}).get("nodeName") and \
                self._node_needs_pod_care(node):
            self.enqueue("node:" + node)

    def _node_needs_pod_care(self, name: str) -> bool:
        """A pod landing on a Ready, untainted node gives the node's sync nothing to do
        (as the taint manager only looks at pods of tainted nodes); skip the sync."""
        node = self.node_informer.get(name)
        if node is None:
            return True
        if (condition(node, "Ready") or {}).get("status") != "True":
            return True
        return any(t.get("effect") == "NoExecute"
                   for t in (node.get("spec") or {}).get("taints") or [])

    # ---- reconcile ---------------------------------------------------------------
    def sync(self, key: str) -> None:
        if key == MONITOR_KEY:
            try:
                self._monitor()
            finally:
                self.queue.add_after(MONITOR_KEY, self.monitor_period)
            return
        kind, _, name = key.partition(":")
        if kind == "node":
            self._sync_node(name)
        elif kind == "gone":
            self._node_gone(name)

    def _monitor(self) -> None:
        now = self.clock.now()
        names = set()
        for node in self.node_informer.list():
            name = node["metadata"]["name"]
            names.add(name)
            ready = condition(node, "Ready") or {}
            lease = self.lease_informer.get_by_name(name, LEASE_NAMESPACE)
            renew = ((lease or {}).get("spec") or {}).get("renewTime")
            hb = ready.get("lastHeartbeatTime")
            h = self._health.get(name)
            if h is None:
                h = self._health[name] = _Health(hb, renew, now)
                self.recorder.normal(node, "RegisteredNode",
                                     f"Node {name} event: Registered Node {name} in Controller")
            elif h.heartbeat != hb or h.renew != renew:
                h.heartbeat, h.renew, h.probe = hb, renew, now
            if now - h.probe > self.grace_period and ready.get("status") != "Unknown":
                self._mark_unknown(node, ready)
        for gone in set(self._health) - names:
            del self._health[gone]

    def _mark_unknown(self, node: Obj, ready: dict[str, Any]) -> None:
        """The kubelet went quiet: every condition becomes Unknown."""
        now = iso_time(self.clock.now())
        new = deep_copy(node)
        status = new.setdefault("status", {})
        conds = status.setdefault("conditions", [])
        never = not ready
        if never:
            conds.append({"type": "Ready"})
        for c in conds:
            if c.get("status") == "Unknown":
                continue
            c["status"] = "Unknown"
            c["reason"] = "NodeStatusNeverUpdated" if never else "NodeStatusUnknown"
            c["message"] = ("Kubelet never posted node status." if never
                            else "Kubelet stopped posting node status.")
            c["lastTransitionTime"] = now
            c.setdefault("lastHeartbeatTime", c.get("lastHeartbeatTime") or now)
        try:
            self.client.update_status("nodes", new)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        self.recorder.normal(node, "NodeNotReady",
                             f"Node {node['metadata']['name']} status is now: NodeNotReady")
        # the transition itself (pods not ready, taints) is handled by the node's sync
        self.enqueue("node:" + node["metadata"]["name"])

    def _mark_pods_not_ready(self, node_name: str) -> None:
        now = iso_time(self.clock.now())
        for pod in self.pod_informer.by_index("node", node_name):
            if not podutil.is_pod_active(pod):
                continue
            c = condition(pod, "Ready")
            if c is not None and c.get("status") == "False":
                continue
            new = deep_copy(pod)
            conds = new.setdefault("status", {}).setdefault("conditions", [])
            conds[:] = [x for x in conds if x.get("type") != "Ready"]
            conds.append({"type": "Ready", "status": "False", "lastTransitionTime": now})
            try:
                self.client.update_status("pods", new, pod["metadata"].get("namespace"))
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                continue
            self.recorder.warning(pod, "NodeNotReady", "Node is not ready")

    # ---- one node: CIDR, taints, evictions -------------------------------------------
    def _sync_node(self, name: str) -> None:
        node = self.node_informer.get(name)
        if node is None:
            return
        spec = node.get("spec") or {}
        if not spec.get("podCIDR"):
            node = self._allocate_cidr(node) or node
            spec = node.get("spec") or {}
        ready_now = (condition(node, "Ready") or {}).get("status")
        ready_before = self._ready_seen.get(name)
        self._ready_seen[name] = ready_now
        if ready_before == "True" and ready_now != "True":
            if ready_now == "False":   # Unknown was announced by _mark_unknown already
                self.recorder.normal(node, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            self._mark_pods_not_ready(name)
        want = self._desired_taints(node)
        if want != (spec.get("taints") or []):
            new = deep_copy(node)
            new.setdefault("spec", {})["taints"] = want
            if not want:
                new["spec"].pop("taints")
            node = self.client.update("nodes", new)
            was = {t.get("key") for t in spec.get("taints") or []}
            if TAINT_UNREACHABLE in was or TAINT_NOT_READY in was:
                ready = condition(node, "Ready") or {}
                if ready.get("status") == "True":
                    self.recorder.normal(node, "NodeReady",
                                         f"Node {name} status is now: NodeReady")
        self._evict(node)

    def _desired_taints(self, node: Obj) -> list[dict[str, Any]]:
        spec = node.get("spec") or {}
        current = list(spec.get("taints") or [])
        ready = (condition(node, "Ready") or {}).get("status")
        wanted: list[tuple[str, str]] = []
        if ready == "Unknown":
            wanted += [(TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")]
        elif ready == "False":
            wanted += [(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")]
        if spec.get("unschedulable"):
            wanted.append((TAINT_UNSCHEDULABLE, "NoSchedule"))
        for ctype, tkey in _PRESSURE_TAINTS.items():
            if (condition(node, ctype) or {}).get("status") == "True":
                wanted.append((tkey, "NoSchedule"))
        out = [t for t in current if t.get("key") not in MANAGED_TAINT_KEYS
               or (t.get("key"), t.get("effect")) in wanted]
        have = {(t.get("key"), t.get("effect")) for t in out}
        now = iso_time(self.clock.now())
        for k, effect in wanted:
            if (k, effect) not in have:
                t: dict[str, Any] = {"key": k, "effect": effect}
                if effect == "NoExecute":
                    t["timeAdded"] = now
                out.append(t)
        return out

    def _evict(self, node: Obj) -> None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") == "NoExecute"]
        if not taints:
            return
        now = self.clock.now()
        name = node["metadata"]["name"]
        next_due: float | None = None
        for pod in self.pod_informer.by_index("node", name):
            if podutil.is_terminating(pod):
                continue
            due = eviction_time(pod, taints)
            if due is None:
                continue
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            m = pod["metadata"]
            self.recorder.normal(pod, "TaintManagerEviction",
                                 f"Marking for deletion Pod {m.get('namespace')}/{m['name']}")
            try:
                self.client.delete("pods", m["name"], m.get("namespace"),
                                   preconditions={"uid": m.get("uid")})
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
        if next_due is not None:
            self.queue.add_after("node:" + name, next_due - now)

    def _allocate_cidr(self, node: Obj) -> Obj | None:
        name = node["metadata"]["name"]
        # a node we already gave a CIDR to (the cache may not show it yet) keeps it
        c = self._cidr_of.get(name)
        if c is None and not self._cidrs_exhausted:
            c = self._free_cidr()
            self._cidrs_exhausted = c is None
        if c is None:
            if name not in self._cidr_warned:      # once per node, not on every heartbeat
                self._cidr_warned.add(name)
                self.recorder.warning(node, "CIDRNotAvailable",
                                      f"Node {name} status is now: CIDRNotAvailable")
            return None
        new = deep_copy(node)
        new.setdefault("spec", {})["podCIDR"] = c
        new["spec"]["podCIDRs"] = [c]
        try:
            out = self.client.update("nodes", new)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        self._allocated[c] = name
        self._cidr_of[name] = c
        self._cidr_warned.discard(name)
        return out

    def _free_cidr(self) -> str | None:
        """The next /24 of the cluster CIDR nobody holds, searching on from the last one
        handed out (as kube's range allocator does), so a thousand nodes cost O(n), not O(n²)."""
        used = set(self._allocated)
        for n in self.node_informer.list():
            spec = n.get("spec") or {}
            used.update(spec.get("podCIDRs") or ())
            if spec.get("podCIDR"):
                used.add(spec["podCIDR"])
        size = 1 << (24 - self.cidr.prefixlen) if self.cidr.prefixlen <= 24 else 0
        base = int(self.cidr.network_address)
        for step in range(size):
            i = (self._cidr_cursor + step) % size
            c = f"{ipaddress.IPv4Address(base + (i << 8))}/24"
            if c not in used:
                self._cidr_cursor = i + 1
                return c
        return None

    def _node_gone(self, name: str) -> None:
        """Pod GC: nothing will ever run or finish the pods of a deleted node."""
        self._health.pop(name, None)
        self._ready_seen.pop(name, None)
        c = self._cidr_of.pop(name, None)
        if c is not None:
            self._allocated.pop(c, None)
            self._cidrs_exhausted = False
        self._cidr_warned.discard(name)
        if self.node_informer.get(name) is not None:
            return   # re-created meanwhile
        for pod in list(self.pod_informer.by_index("node", name)):
            m = pod["metadata"]
            try:
                self.client.delete("pods", m["name"], m.get("namespace"), grace_period_seconds=0,
                                   preconditions={"uid": m.get("uid")})
            except ApiError as e:
                if e.code not in (404, 409):
                    raise


__all__ = ["NodeLifecycleController", "toleration_matches", "tolerates", "untolerated",
           "eviction_time", "MANAGED_TAINT_KEYS", "TAINT_NOT_READY", "TAINT_UNREACHABLE"]
