"""Helpers about pods and owned objects shared by the workload controllers.

The ReplicaSet, Deployment, Job and DaemonSet controllers all need the same
small pieces of kube-controller-manager's `controller` package:

- what counts as an *active*, *ready* and *available* pod (minReadySeconds);
- the order in which to delete pods when scaling down (client-go's
  `ActivePods` / `ActivePodsWithRanks`: the cheapest pod to lose first);
- building a pod from a template with a controller ownerReference;
- *expectations*: remember the creations/deletions a controller asked for
  until its informer has seen them, so it never acts twice on a stale cache;
- slow-start batches for creations (1, 2, 4, ... so a failing quota or a
  terminating namespace costs one failed call, not a thousand);
- claiming objects through ownerReferences (adopt matching orphans, release
  owned objects whose labels stopped matching).

Everything here reads plain JSON-shaped dicts and never mutates its inputs.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, condition, controller_ref, deep_copy, owner_reference
from kbox.clock import Clock, parse_time

EXPECTATIONS_TTL = 300.0   # client-go: expectations older than 5 minutes are ignored
SLOW_START_INITIAL_BATCH = 1

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---- single pods ---------------------------------------------------------------

def is_pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def pod_ready_time(pod: Obj) -> float | None:
    """When the pod last became Ready (None when it is not ready or nobody said)."""
    c = condition(pod, "Ready")
    if not c or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int | float, now: float) -> bool:
    """Ready for at least `min_ready_seconds` (Kubernetes' IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = pod_ready_time(pod)
    return since is not None and since + float(min_ready_seconds) < now


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_pod_active(pod: Obj) -> bool:
    """Not finished and not being deleted: the pods a controller counts."""
    return pod_phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def filter_active_pods(pods: Iterable[Obj]) -> list[Obj]:
    return [p for p in pods if is_pod_active(p)]


def max_container_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _newest_first(ts: float | None) -> tuple[int, float]:
    """Sort component: missing time first, then newer before older."""
    return (0, 0.0) if ts is None else (1, -ts)


def deletion_cost_key(pod: Obj, rank: int = 0) -> tuple[Any, ...]:
    """Sort key: pods that sort first are the cheapest to delete.

    Kubernetes' ActivePodsWithRanks order: unassigned < assigned; Pending <
    Unknown < Running; not ready < ready; more pods of the same owner on the
    node (higher rank) first; ready for less time first; more restarts first;
    newer first.
    """
    node = (pod.get("spec") or {}).get("nodeName") or ""
    ready = is_pod_ready(pod)
    m = pod.get("metadata") or {}
    return (
        1 if node else 0,
        _PHASE_ORDINAL.get(pod_phase(pod), 0),
        1 if ready else 0,
        -rank,
        _newest_first(pod_ready_time(pod)) if ready else (0, 0.0),
        -max_container_restarts(pod),
        _newest_first(parse_time(m.get("creationTimestamp"))),
    )


def rank_pods_for_deletion(pods: list[Obj], related: list[Obj] | None = None) -> list[Obj]:
    """`pods` ordered cheapest-to-delete first.

    A pod's rank is how many of the `related` pods (e.g. every active pod of
    the owning Deployment) share its node: deleting from crowded nodes first
    spreads what remains, as kube's ReplicaSet controller does.
    """
    per_node: dict[str, int] = {}
    for p in related if related is not None else pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    def key(p: Obj) -> tuple[Any, ...]:
        node = (p.get("spec") or {}).get("nodeName")
        return deletion_cost_key(p, per_node.get(node, 0) if node else 0)
    return sorted(pods, key=key)


def pod_from_template(template: Obj, owner: Obj, *, namespace: str | None = None,
                      generate_name: str | None = None) -> Obj:
    """A new pod from a pod template, controlled by `owner` (GetPodFromTemplate)."""
    tmeta = template.get("metadata") or {}
    om = owner["metadata"]
    meta: dict[str, Any] = {
        "generateName": generate_name if generate_name is not None else f"{om['name']}-",
        "namespace": namespace or om.get("namespace"),
        "ownerReferences": [owner_reference(owner)],
    }
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": deep_copy(template.get("spec") or {})}


# ---- expectations ----------------------------------------------------------------

class _Expectation:
    __slots__ = ("add", "delete", "timestamp", "deleting")

    def __init__(self, add: int, delete: int, timestamp: float) -> None:
        self.add = add
        self.delete = delete
        self.timestamp = timestamp
        self.deleting: set[str] = set()


class Expectations:
    """client-go's UIDTrackingControllerExpectations, keyed by controller key.

    `expect_creations(key, n)` / `expect_deletions(key, pod_keys)` before
    writing; the informer handlers call `creation_observed` /
    `deletion_observed`; `satisfied(key)` says whether the controller may act
    on its cache again (also true once the record is 5 minutes old, so a lost
    watch event cannot wedge a controller forever).
    """

    def __init__(self, clock: Clock, ttl: float = EXPECTATIONS_TTL) -> None:
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        with self._lock:
            e = self._items.get(key)
            if e is None:
                return True
            if e.add <= 0 and e.delete <= 0:
                return True
            return self.clock.monotonic() - e.timestamp > self.ttl

    def expect_creations(self, key: str, n: int) -> None:
        with self._lock:
            self._items[key] = _Expectation(n, 0, self.clock.monotonic())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        keys = set(pod_keys)
        with self._lock:
            e = _Expectation(0, len(keys), self.clock.monotonic())
            e.deleting = keys
            self._items[key] = e

    def creation_observed(self, key: str) -> None:
        with self._lock:
            e = self._items.get(key)
            if e is not None:
                e.add -= 1

    def deletion_observed(self, key: str, pod_key: str | None = None) -> None:
        with self._lock:
            e = self._items.get(key)
            if e is None:
                return
            if pod_key is not None and e.deleting:
                if pod_key not in e.deleting:
                    return   # not one we deleted (or already counted)
                e.deleting.discard(pod_key)
            e.delete -= 1

    def pending(self, key: str) -> tuple[int, int] | None:
        """(creations, deletions) still expected, or None without a record (tests, debugging)."""
        with self._lock:
            e = self._items.get(key)
            return None if e is None else (e.add, e.delete)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


# ---- batches -------------------------------------------------------------------

def slow_start_batch(count: int, fn: Callable[[], None],
                     initial_batch: int = SLOW_START_INITIAL_BATCH) -> tuple[int, Exception | None]:
    """Call `fn` `count` times in batches of 1, 2, 4, ...; stop after the batch
    in which a call failed. Returns (successes, first error or None)."""
    remaining = count
    successes = 0
    batch = min(remaining, initial_batch)
    while batch > 0:
        error: Exception | None = None
        for _ in range(batch):
            try:
                fn()
                successes += 1
            except Exception as e:   # the caller reports it; later batches are skipped
                if error is None:
                    error = e
        if error is not None:
            return successes, error
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


# ---- ownership -----------------------------------------------------------------

#: informer index: namespace of objects with no controller (adoption candidates)
ORPHAN_INDEX = "orphans"


def orphan_namespace_index(obj: Obj) -> list[str]:
    if controller_ref(obj) is not None:
        return []
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owned_and_orphans(informer: Any, owner: Obj) -> list[Obj]:
    """What a controller may claim, from an informer carrying the "controller"
    and ORPHAN_INDEX indexes: its own objects plus its namespace's orphans,
    without scanning every object of the namespace."""
    m = owner["metadata"]
    return (informer.by_index("controller", m.get("uid", ""))
            + informer.by_index(ORPHAN_INDEX, m.get("namespace") or ""))


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return bool(ref and ref.get("uid") == (owner.get("metadata") or {}).get("uid"))


def claim_objects(client: Client, resource: str, owner: Obj, matches: Callable[[Obj], bool],
                  objs: Iterable[Obj], *, can_adopt: Callable[[], None] | None = None) -> list[Obj]:
    """Kubernetes' ControllerRefManager: the objects `owner` controls after
    adopting matching orphans and releasing owned ones that no longer match.

    Owned objects come back as cached; adopted ones as the API returned them.
    `can_adopt` raises (or returns normally) before the first adoption: it is
    where callers re-check, against the API, that the owner is not being
    deleted. Terminating objects are never adopted.
    """
    owner_meta = owner["metadata"]
    uid = owner_meta.get("uid")
    owner_deleting = bool(owner_meta.get("deletionTimestamp"))
    checked = False
    out: list[Obj] = []
    for obj in objs:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue   # someone else's
            if matches(obj):
                out.append(obj)
                continue
            if owner_deleting:
                continue   # let the garbage collector handle it
            try:
                _release(client, resource, obj, uid)
            except ApiError as e:
                if e.code not in (404, 409, 422):
                    raise
            continue
        if owner_deleting or is_terminating(obj) or not matches(obj):
            continue
        if not checked:
            if can_adopt is not None:
                can_adopt()
            checked = True
        try:
            out.append(_adopt(client, resource, obj, owner))
        except ApiError as e:
            if e.code in (404, 409):
                continue   # gone, or someone else got there first
            raise
    return out


def _adopt(client: Client, resource: str, obj: Obj, owner: Obj) -> Obj:
    m = obj["metadata"]
    refs = [r for r in m.get("ownerReferences") or []
            if r.get("uid") != owner["metadata"]["uid"]]
    refs.append(owner_reference(owner))
    # the resourceVersion precondition makes two controllers racing for one orphan safe
    patch = {"metadata": {"ownerReferences": refs, "resourceVersion": m.get("resourceVersion")}}
    return client.patch(resource, m["name"], patch, "merge", m.get("namespace"))


def _release(client: Client, resource: str, obj: Obj, owner_uid: str) -> Obj:
    m = obj["metadata"]
    refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != owner_uid]
    patch = {"metadata": {"ownerReferences": refs or None,
                          "resourceVersion": m.get("resourceVersion")}}
    return client.patch(resource, m["name"], patch, "merge", m.get("namespace"))


__all__ = [
    "is_pod_ready", "pod_ready_time", "is_pod_available", "is_terminating", "is_pod_active",
    "filter_active_pods", "max_container_restarts", "deletion_cost_key",
    "rank_pods_for_deletion", "pod_from_template", "Expectations", "slow_start_batch",
    "is_controlled_by", "claim_objects", "pod_phase", "ORPHAN_INDEX",
    "orphan_namespace_index", "owned_and_orphans",
]
