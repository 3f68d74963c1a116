"""The garbage collector: deletes what nobody owns any more.

As kube-controller-manager's garbage collector, over the ownerReference
graph of every resource the API serves except events (as kube ignores
them), read from the shared informers. Every kind must be watched, not only
the workloads: a delete with propagationPolicy Foreground or Orphan puts a
finalizer on *any* object, and only the collector ever takes it off (a
ConfigMap or Namespace deleted with --cascade=foreground would otherwise
hang); and dependents are often not workloads (a node's Lease is owned by
its Node, an operator's ConfigMap by its Deployment).

- Background: when an object's owners are all gone (absent, or replaced by
  a new object with another uid — checked against the API before acting,
  never only the cache) the object is deleted. Owners that are gone are
  dropped from an object that still has a live owner.
- Foreground: an owner being deleted with the `foregroundDeletion`
  finalizer has its dependents deleted first (themselves in the foreground
  when they own things too); once no dependent with blockOwnerDeletion is
  left, the finalizer is removed and the API server deletes the owner.
- Orphan: an owner being deleted with the `orphan` finalizer has its
  ownerReference stripped from every dependent, then the finalizer removed.
"""

from __future__ import annotations

import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, key_of, split_key
from kbox.api.resources import RESOURCES, for_kind
from kbox.clock import Clock
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

#: resources the collector never watches (high volume, never owners in practice)
IGNORED_RESOURCES = frozenset({"events"})


def default_resources() -> tuple[str, ...]:
    """Every listable, watchable, deletable resource in the table, minus the ignored."""
    return tuple(r.plural for r in RESOURCES
                 if r.plural not in IGNORED_RESOURCES
                 and {"list", "watch", "delete"} <= set(r.verbs))


GC_RESOURCES = default_resources()
OWNER_INDEX = "owner"
UID_INDEX = "uid"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def owner_uids_index(obj: Obj) -> list[str]:
    return [r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or []]


def uid_index(obj: Obj) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [uid] if uid else []


class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None,
                 resources: tuple[str, ...] | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        if resources is None:
            resources = default_resources()   # resources registered since import count too
        self.informers_by_resource = {}
        for res in resources:
            inf = informers.informer(res)
            inf.add_index(OWNER_INDEX, owner_uids_index)
            inf.add_index(UID_INDEX, uid_index)
            self.informers_by_resource[res] = inf
            inf.add_handler(lambda o, r=res: self._changed(r, None, o),
                            lambda old, new, r=res: self._changed(r, old, new),
                            lambda o, r=res: self._deleted(r, o))

    # ---- handlers (enqueue only) ----------------------------------------------------
    def _changed(self, res: str, old: Obj | None, obj: Obj) -> None:
        m = obj["metadata"]
        refs = m.get("ownerReferences")
        if refs and (old is None or old["metadata"].get("ownerReferences") != refs) and \
                not self._owners_observed(refs):
            self.enqueue(f"dep|{res}|{key_of(obj)}")
        if m.get("deletionTimestamp") and {FOREGROUND, ORPHAN} & set(m.get("finalizers") or []):
            self.enqueue(f"own|{res}|{key_of(obj)}")

    def _owners_observed(self, refs: list[dict[str, Any]]) -> bool:
        """Every owner is in our caches, alive and with that uid: nothing to verify (kube's
        graph builder only asks about owners it has not observed). Its deletion later
        enqueues this dependent through _deleted."""
        for ref in refs:
            # the informer of the kind the reference names: one index read, not one per
            # watched resource (this runs for every new pod)
            info = for_kind(ref.get("kind", ""), ref.get("apiVersion", ""))
            inf = self.informers_by_resource.get(info.plural) if info is not None else None
            if inf is None:
                return False
            found = inf.by_index(UID_INDEX, ref.get("uid", ""))
            if not found or any(o["metadata"].get("deletionTimestamp") for o in found):
                return False
        return True

    def _deleted(self, res: str, obj: Obj) -> None:
        uid = obj["metadata"].get("uid", "")
        for dres, inf in self.informers_by_resource.items():
            for d in inf.by_index(OWNER_INDEX, uid):
                self.enqueue(f"dep|{dres}|{key_of(d)}")
        # an owner waiting in the foreground for this dependent may be done now
        for ref in obj["metadata"].get("ownerReferences") or []:
            for ores, o in self._find_cached(ref.get("uid", "")):
                if o["metadata"].get("deletionTimestamp"):
                    self.enqueue(f"own|{ores}|{key_of(o)}")

    def _find_cached(self, uid: str) -> list[tuple[str, Obj]]:
        out = []
        for res, inf in self.informers_by_resource.items():
            out.extend((res, o) for o in inf.by_index(UID_INDEX, uid))
        return out

    def _dependents(self, uid: str) -> list[tuple[str, Obj]]:
        out = []
        for res, inf in self.informers_by_resource.items():
            out.extend((res, o) for o in inf.by_index(OWNER_INDEX, uid))
        return out

    # ---- reconcile -------------------------------------------------------------------
    def sync(self, key: str) -> None:
        kind, res, okey = key.split("|", 2)
        if kind == "dep":
            self._sync_dependent(res, okey)
        else:
            self._sync_owner(res, okey)

    def _owner_state(self, ref: dict[str, Any], namespace: str | None) -> Obj | None:
        """The live owner named by `ref`, or None when it is gone (404 or another uid)."""
        info = for_kind(ref.get("kind", ""), ref.get("apiVersion", "")) or for_kind(ref.get("kind", ""))
        if info is None:
            return {}   # a kind we do not know: never collect because of it
        uid = ref.get("uid")
        inf = self.informers_by_resource.get(info.plural)
        if inf is not None:
            for o in inf.by_index(UID_INDEX, uid or ""):
                return o
        try:
            live = self.client.get(info.plural, ref.get("name", ""),
                                   namespace if info.namespaced else None)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        return live if live["metadata"].get("uid") == uid else None

    def _sync_dependent(self, res: str, key: str) -> None:
        obj = self.informers_by_resource[res].get(key)
        if obj is None:
            return
        m = obj["metadata"]
        refs = m.get("ownerReferences") or []
        if not refs:
            return
        ns = m.get("namespace")
        gone = []
        for ref in refs:
            if self._owner_state(ref, ns) is None:
                gone.append(ref)
        if not gone:
            return
        if len(gone) == len(refs):
            if m.get("deletionTimestamp"):
                return
            try:
                self.client.delete(res, m["name"], ns, propagation_policy="Background",
                                   preconditions={"uid": m.get("uid")})
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
            return
        # some owners live: drop only the dangling references
        gone_uids = {r.get("uid") for r in gone}
        keep = [r for r in refs if r.get("uid") not in gone_uids]
        self._patch_refs(res, obj, keep)

    def _patch_refs(self, res: str, obj: Obj, refs: list[dict[str, Any]]) -> None:
        m = obj["metadata"]
        try:
            # the resourceVersion precondition: never act on a stale copy
            self.client.patch(res, m["name"], {"metadata": {
                "ownerReferences": refs or None, "resourceVersion": m.get("resourceVersion")}},
                "merge", m.get("namespace"))
        except ApiError as e:
            if e.code != 404:
                raise

    def _sync_owner(self, res: str, key: str) -> None:
        ns, name = split_key(key)
        try:
            owner = self.client.get(res, name, ns)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        m = owner["metadata"]
        if not m.get("deletionTimestamp"):
            return
        fins = list(m.get("finalizers") or [])
        uid = m.get("uid", "")
        if ORPHAN in fins:
            for dres, d in self._dependents(uid):
                refs = [r for r in d["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                self._patch_refs(dres, d, refs)
            # the cache may lag: make sure no live dependent still points at the owner
            if self._dependents(uid) and not self._confirm_no_dependents(uid, ns):
                self.queue.add_after(f"own|{res}|{key}", 0.5)
                return
            self._remove_finalizer(res, owner, ORPHAN)
            return
        if FOREGROUND in fins:
            blocking = 0
            for dres, d in self._dependents(uid):
                dm = d["metadata"]
                ref = next((r for r in dm.get("ownerReferences") or [] if r.get("uid") == uid), {})
                if ref.get("blockOwnerDeletion"):
                    blocking += 1
                if dm.get("deletionTimestamp"):
                    continue
                has_own = bool(self._dependents(dm.get("uid", "")))
                try:
                    self.client.delete(dres, dm["name"], dm.get("namespace"),
                                       propagation_policy="Foreground" if has_own else "Background",
                                       preconditions={"uid": dm.get("uid")})
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise
            if blocking:
                return   # each dependent's deletion re-enqueues us
            self._remove_finalizer(res, owner, FOREGROUND)

    def _confirm_no_dependents(self, uid: str, ns: str | None) -> bool:
        for res in self.informers_by_resource:
            for o in self.client.list(res, ns)["items"]:
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                    return False
        return True

    def _remove_finalizer(self, res: str, owner: Obj, fin: str) -> None:
        new = deep_copy(owner)
        new["metadata"]["finalizers"] = [f for f in owner["metadata"].get("finalizers") or [] if f != fin]
        try:
            self.client.update(res, new, owner["metadata"].get("namespace"))
        except ApiError as e:
            if e.code != 404:
                raise


__all__ = ["GarbageCollector", "GC_RESOURCES"]
