"""The DaemonSet controller: one pod of a template on every eligible node.

Behaviour copied from kube-controller-manager's daemon controller:

- A node is eligible when it matches the pod template's nodeSelector and
  required node affinity and has no NoSchedule/NoExecute taint the pod does
  not tolerate. A pod already running stays unless a NoExecute taint it does
  not tolerate appears (NoSchedule only keeps new pods away).
- Daemon pods get automatic tolerations: node.kubernetes.io/not-ready and
  unreachable (NoExecute, no tolerationSeconds: they are never evicted for
  those), disk-pressure, memory-pressure, pid-pressure, unschedulable and
  network-unavailable (NoSchedule).
- The controller does not pick nodes itself: each pod is pinned with a
  required nodeAffinity term `matchFields metadata.name In [<node>]` and the
  scheduler places it, as in Kubernetes since 1.12.
- Extra pods on a node (the oldest stays), failed pods and pods on nodes no
  longer eligible are deleted.
- Each template version is a ControllerRevision `<ds>-<hash>`; pods carry
  the hash in the `controller-revision-hash` label (and
  `pod-template-generation`). RollingUpdate replaces old pods while at most
  `maxUnavailable` (default 1; a number or a percentage of the desired
  count) daemon pods are unavailable; OnDelete waits for the user.
- Status: desiredNumberScheduled, currentNumberScheduled,
  numberMisscheduled, numberReady, updatedNumberScheduled, numberAvailable,
  numberUnavailable, observedGeneration.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, dumps, key_of, owner_reference
from kbox.clock import Clock, parse_time
from kbox.controllers import podutil
from kbox.controllers.base import Controller, OwnedPodHandlers
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.controllers.nodelifecycle import untolerated

log = logging.getLogger(__name__)

HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"

DAEMON_TOLERATIONS: list[dict[str, Any]] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"},
]

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    """A short, stable name-safe hash of a pod template."""
    digest = hashlib.sha256(dumps(_sorted(template))).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(_SAFE))
        out.append(_SAFE[r])
    return "".join(out)


def _sorted(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _sorted(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_sorted(x) for x in v]
    return v


def with_daemon_tolerations(tolerations: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = list(tolerations or [])
    for t in DAEMON_TOLERATIONS:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in out):
            out.append(dict(t))
    return out


def _requirement_matches(req: dict[str, Any], value: str | None) -> bool:
    op = req.get("operator")
    values = req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        try:
            v, lim = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return v > lim if op == "Gt" else v < lim
    return False


def node_matches_term(node: Obj, term: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False   # an empty term matches nothing
    for r in exprs:
        if not _requirement_matches(r, labels.get(r.get("key", ""))):
            return False
    for r in fields:
        value = node["metadata"].get("name") if r.get("key") == "metadata.name" else None
        if not _requirement_matches(r, value):
            return False
    return True


def node_matches_pod(node: Obj, pod_spec: Obj) -> bool:
    """nodeSelector and required node affinity (terms ORed, requirements ANDed)."""
    labels = node["metadata"].get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    terms = required.get("nodeSelectorTerms")
    if terms is not None:
        return any(node_matches_term(node, t) for t in terms)
    return True


def pinned_node(pod: Obj) -> str | None:
    """The node a daemon pod belongs to: where it runs, or where its affinity pins it."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return None


def pin_to_node(spec: Obj, node: str) -> None:
    aff = spec.setdefault("affinity", {})
    na = aff.setdefault("nodeAffinity", {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}


class DaemonSetController(OwnedPodHandlers, Controller):
    owner_kind = "DaemonSet"
    name = "daemonset-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None, burst: int = 250) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.burst = burst
        self.expectations = podutil.Expectations(self.clock)
        self.ds_informer = informers.informer("daemonsets")
        self.node_informer = informers.informer("nodes")
        self.pod_informer = informers.informer("pods")
        self.rev_informer = informers.informer("controllerrevisions")
        self.ds_informer.add_handler(self._ds, lambda o, n: self._ds(n), self._ds_deleted)
        self.node_informer.add_handler(self._node_added, self._node_updated, self._node_added)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ---- handlers (enqueue only) -----------------------------------------------------
    def _ds(self, ds: Obj) -> None:
        self.enqueue(key_of(ds))

    def _ds_deleted(self, ds: Obj) -> None:
        self.expectations.delete(key_of(ds))

    def _all(self) -> None:
        for k in self.ds_informer.keys():
            self.enqueue(k)

    def _node_added(self, node: Obj) -> None:
        self._all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (old["metadata"].get("labels") != new["metadata"].get("labels")
                or (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")
                or (old.get("spec") or {}).get("unschedulable") != (new.get("spec") or {}).get("unschedulable")):
            self._all()

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        super()._pod_updated(old, new)
        key = self._owner_key(new)
        if key:
            # availability is reached minReadySeconds after readiness: look again then
            mrs = int((((self.ds_informer.get(key) or {}).get("spec") or {}).get("minReadySeconds")) or 0)
            if mrs and not podutil.is_pod_ready(old) and podutil.is_pod_ready(new):
                self.queue.add_after(key, mrs + 1)

    # ---- reconcile --------------------------------------------------------------------
    def sync(self, key: str) -> None:
        ds = self.ds_informer.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        h = template_hash(template)
        if not podutil.is_terminating(ds):
            self._ensure_revision(ds, template, h)
        uid = ds["metadata"].get("uid", "")
        pods = [p for p in self.pod_informer.by_index("controller", uid) if not podutil.is_terminating(p)]
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault(pinned_node(p) or "", []).append(p)
        nodes = {n["metadata"]["name"]: n for n in self.node_informer.list()}
        pod_spec = deep_copy(template.get("spec") or {})
        pod_spec["tolerations"] = with_daemon_tolerations(pod_spec.get("tolerations"))
        now = self.clock.now()
        mrs = int(spec.get("minReadySeconds") or 0)

        to_create: list[str] = []
        to_delete: list[Obj] = []
        desired_nodes: dict[str, Obj | None] = {}   # node → its daemon pod (None: missing)
        for name, node in sorted(nodes.items()):
            should_run, should_continue = self._node_should_run(node, pod_spec)
            mine = sorted(by_node.get(name, []),
                          key=lambda p: (parse_time(p["metadata"].get("creationTimestamp")) or 0,
                                         p["metadata"]["name"]))
            failed = [p for p in mine if podutil.pod_phase(p) == "Failed"]
            alive = [p for p in mine if podutil.pod_phase(p) != "Failed"]
            to_delete.extend(failed)
            if should_run:
                desired_nodes[name] = alive[0] if alive else None
                if not alive and not failed:
                    to_create.append(name)
                elif len(alive) > 1:
                    to_delete.extend(alive[1:])
            elif not should_continue:
                to_delete.extend(alive)
        for name, ps in by_node.items():
            if name not in nodes:
                to_delete.extend(ps)   # its node is gone (or never was)
        # rolling update: replace old-hash pods within the maxUnavailable budget
        strategy = spec.get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") == "RollingUpdate" and not podutil.is_terminating(ds):
            max_unavail = _scaled((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                                  len(desired_nodes))
            unavailable = sum(1 for p in desired_nodes.values()
                              if p is None or not podutil.is_pod_available(p, mrs, now))
            for n, p in sorted(desired_nodes.items()):
                if p is None or p in to_delete or (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h:
                    continue
                if not podutil.is_pod_available(p, mrs, now):
                    to_delete.append(p)
                elif unavailable < max_unavail:
                    to_delete.append(p)
                    unavailable += 1
        err: Exception | None = None
        if self.expectations.satisfied(key) and not podutil.is_terminating(ds):
            err = self._manage(ds, key, to_create[:self.burst], to_delete, pod_spec, h)
        self._update_status(ds, nodes, by_node, pod_spec, h, mrs, now)
        if err is not None:
            raise err

    def _node_should_run(self, node: Obj, pod_spec: Obj) -> tuple[bool, bool]:
        """(should a new daemon pod run here, may an existing one keep running)."""
        if not node_matches_pod(node, pod_spec):
            return False, False
        taints = (node.get("spec") or {}).get("taints") or []
        tolerations = pod_spec.get("tolerations") or []
        if untolerated(tolerations, taints, ("NoExecute",)):
            return False, False
        if untolerated(tolerations, taints, ("NoSchedule",)):
            return False, True
        return True, True

    def _manage(self, ds: Obj, key: str, create_on: list[str], delete: list[Obj], pod_spec: Obj,
                h: str) -> Exception | None:
        ns = ds["metadata"].get("namespace")
        first: Exception | None = None
        if delete:
            self.expectations.expect_deletions(key, [key_of(p) for p in delete])
            for p in delete:
                pname = p["metadata"]["name"]
                try:
                    self.client.delete("pods", pname, ns)
                    self.recorder.normal(ds, "SuccessfulDelete", f"Deleted pod: {pname}")
                except ApiError as e:
                    self.expectations.deletion_observed(key, key_of(p))
                    if e.code != 404:
                        self.recorder.warning(ds, "FailedDelete", f"Error deleting: {e.message}")
                        first = first or e
        if create_on:
            self.expectations.expect_creations(key, len(create_on))
            template = deep_copy((ds.get("spec") or {}).get("template") or {})
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            labels[HASH_LABEL] = h
            labels[GENERATION_LABEL] = str(ds["metadata"].get("generation") or 1)
            nodes = iter(create_on)

            def create_one() -> None:
                node = next(nodes)
                pod = podutil.pod_from_template(template, ds)
                spec = deep_copy(pod_spec)
                pin_to_node(spec, node)
                pod["spec"] = spec
                try:
                    created = self.client.create("pods", pod, ns)
                except ApiError as e:
                    self.recorder.warning(ds, "FailedCreate", f"Error creating: {e.message}")
                    raise
                self.recorder.normal(ds, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

            ok, err = podutil.slow_start_batch(len(create_on), create_one)
            for _ in range(len(create_on) - ok):
                self.expectations.creation_observed(key)
            first = first or err
        return first

    def _ensure_revision(self, ds: Obj, template: Obj, h: str) -> None:
        m = ds["metadata"]
        name = f"{m['name']}-{h}"
        ns = m.get("namespace")
        if self.rev_informer.get(f"{ns}/{name}") is not None:
            return
        revs = [r for r in self.rev_informer.by_index("controller", m.get("uid", ""))]
        revision = max((int(r.get("revision") or 0) for r in revs), default=0) + 1
        sel_labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        cr = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
              "metadata": {"name": name, "namespace": ns,
                           "labels": {**sel_labels, HASH_LABEL: h},
                           "ownerReferences": [owner_reference(ds)]},
              "data": {"spec": {"template": {**deep_copy(template), "$patch": "replace"}}},
              "revision": revision}
        try:
            self.client.create("controllerrevisions", cr, ns)
        except ApiError as e:
            if e.code not in (409, 403):
                raise

    def _update_status(self, ds: Obj, nodes: dict[str, Obj], by_node: dict[str, list[Obj]],
                       pod_spec: Obj, h: str, mrs: int, now: float) -> None:
        desired = current = mis = ready = updated = available = 0
        for name, node in nodes.items():
            should_run, _ = self._node_should_run(node, pod_spec)
            ps = [p for p in by_node.get(name, []) if podutil.pod_phase(p) != "Failed"]
            if should_run:
                desired += 1
                if ps:
                    current += 1
                    p = ps[0]
                    if podutil.is_pod_ready(p):
                        ready += 1
                    if podutil.is_pod_available(p, mrs, now):
                        available += 1
                    if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h:
                        updated += 1
            elif ps:
                mis += 1
        status: dict[str, Any] = {
            "currentNumberScheduled": current, "numberMisscheduled": mis,
            "desiredNumberScheduled": desired, "numberReady": ready,
            "observedGeneration": int(ds["metadata"].get("generation") or 0),
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": max(0, desired - available),
        }
        old = ds.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        new = deep_copy(ds)
        new["status"] = {**old, **status}
        try:
            self.client.update_status("daemonsets", new, ds["metadata"].get("namespace"))
        except ApiError as e:
            if e.code != 404:
                raise


def _scaled(value: Any, total: int) -> int:
    """maxUnavailable: an int, or a percentage of `total` rounded up (at least 1)."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            n = math.ceil(total * int(value[:-1]) / 100)
        except ValueError:
            n = 1
    else:
        n = int(value or 0)
    return max(1, n)


__all__ = [
    "DAEMON_TOLERATIONS",
    "DaemonSetController",
    "node_matches_pod",
    "pinned_node",
    "template_hash",
    "with_daemon_tolerations",
]
