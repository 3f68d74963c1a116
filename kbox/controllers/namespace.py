"""The namespace controller: empties a namespace being deleted, then lets it go.

As kube-controller-manager's namespace controller: a Namespace with a
deletionTimestamp is Terminating (the API refuses new objects in it). The
controller deletes every object of every namespaced resource in it — pods
with their own grace period, everything else with background propagation —
and waits until nothing is left: it looks again as soon as a pod of the
namespace is gone (pods leave when their kubelet has stopped them, so this
keeps `kubectl delete ns` as quick as the pods' shutdown), and otherwise
after a delay estimated from the grace periods (objects with finalizers
leave when the finalizers are done). Then it removes the `kubernetes` finalizer from
spec.finalizers through the `finalize` subresource, and the API server
deletes the Namespace. Status conditions say what is still holding it up.
"""

from __future__ import annotations

import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy
from kbox.api.resources import RESOURCES
from kbox.clock import Clock, iso_time, parse_time
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
#: how long to wait before looking again while content remains (seconds)
RECHECK_MIN = 1.0
RECHECK_MAX = 15.0


def finalize_namespace(client: Client, obj: Obj) -> Obj:
    """PUT the finalize subresource: in process when possible, else over HTTP."""
    api = getattr(client, "api", None)
    if api is not None:
        return api.update("namespaces", obj, subresource="finalize")
    return client.finalize_namespace(obj)  # type: ignore[attr-defined]


class NamespaceController(Controller):
    name = "namespace-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.ns_informer = informers.informer("namespaces")
        self.ns_informer.add_handler(self._ns, lambda o, n: self._ns(n), None)
        self.pod_informer = informers.informer("pods")
        self.pod_informer.add_handler(None, None, self._pod_deleted)

    def _ns(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns["metadata"]["name"])

    def _pod_deleted(self, pod: Obj) -> None:
        ns = self.ns_informer.get(pod["metadata"].get("namespace") or "")
        if ns is not None and ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns["metadata"]["name"])

    def sync(self, key: str) -> None:
        try:
            ns = self.client.get("namespaces", key)   # live: the cache may lag a finalize
        except ApiError as e:
            if e.code == 404:
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        remaining, wait = self._delete_content(key)
        self._set_conditions(ns, remaining)
        if remaining:
            self.queue.add_after(key, min(RECHECK_MAX, max(RECHECK_MIN, wait)))
            return
        fins = list((ns.get("spec") or {}).get("finalizers") or [])
        if FINALIZER in fins:
            new = deep_copy(ns)
            new.setdefault("spec", {})["finalizers"] = [f for f in fins if f != FINALIZER]
            try:
                finalize_namespace(self.client, new)
            except ApiError as e:
                if e.code != 404:
                    raise

    def _delete_content(self, ns: str) -> tuple[dict[str, int], float]:
        """Delete everything in `ns`; return what is left per resource and a wait estimate."""
        remaining: dict[str, int] = {}
        wait = 0.0
        now = self.clock.now()
        for info in list(RESOURCES):
            if not info.namespaced or "delete" not in info.verbs:
                continue
            try:
                items = self.client.list(info.plural, ns)["items"]
            except ApiError as e:
                if e.code in (404, 405):
                    continue
                raise
            left = 0
            for obj in items:
                m = obj["metadata"]
                if m.get("deletionTimestamp"):
                    left += 1
                    due = parse_time(m["deletionTimestamp"])
                    if due is not None:
                        wait = max(wait, due - now)
                    continue
                try:
                    out = self.client.delete(info.plural, m["name"], ns,
                                             propagation_policy=None if info.plural == "pods" else "Background",
                                             preconditions={"uid": m.get("uid")})
                except ApiError as e:
                    if e.code in (404, 409):
                        continue
                    raise
                if (out.get("metadata") or {}).get("deletionTimestamp"):
                    left += 1   # graceful or finalizer-gated: still there for now
                    if info.plural == "pods":
                        wait = max(wait, float(out["metadata"].get("deletionGracePeriodSeconds") or 0))
            if left:
                remaining[info.group_resource] = left
        return remaining, wait

    def _set_conditions(self, ns: Obj, remaining: dict[str, int]) -> None:
        now = iso_time(self.clock.now())
        status = "True" if remaining else "False"
        if remaining:
            msg = "Some resources are remaining: " + ", ".join(
                f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
            reason = "SomeResourcesRemain"
        else:
            msg, reason = "All content successfully removed", "ContentRemoved"
        conds: list[dict[str, Any]] = [dict(c) for c in (ns.get("status") or {}).get("conditions") or []]
        cur = next((c for c in conds if c.get("type") == "NamespaceContentRemaining"), None)
        if cur is not None and cur.get("status") == status and cur.get("message") == msg:
            return
        conds = [c for c in conds if c.get("type") != "NamespaceContentRemaining"]
        conds.append({"type": "NamespaceContentRemaining", "status": status,
                      "lastTransitionTime": now, "reason": reason, "message": msg})
        new = deep_copy(ns)
        new.setdefault("status", {})["conditions"] = conds
        try:
            self.client.update_status("namespaces", new)
        except ApiError as e:
            if e.code not in (404, 409):
                raise


__all__ = ["NamespaceController", "finalize_namespace"]
