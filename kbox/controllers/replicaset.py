"""The ReplicaSet controller: keeps `spec.replicas` pods of a template running.

Behaviour copied from kube-controller-manager's replicaset controller:

- A ReplicaSet controls pods through an ownerReference (controller: true,
  blockOwnerDeletion: true). It adopts orphan pods its selector matches
  (never terminating ones) and releases owned pods whose labels stopped
  matching.
- Expectations: after asking for N creations or deletions it does not act
  again until its informer has observed them (or 5 minutes pass), so a
  stale cache never makes it create or delete twice.
- Creations go in slow-start batches (1, 2, 4, ... at most `burst` per sync)
  and stop at the first failure, which becomes a Warning FailedCreate event
  and the ReplicaFailure status condition.
- Scale-down deletes the cheapest pods first (`podutil.rank_pods_for_deletion`).
- Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
  (ready for minReadySeconds), observedGeneration, conditions.

Pods that are Succeeded, Failed or terminating are not active and not counted.
"""

from __future__ import annotations

import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, condition, controller_ref, deep_copy, key_of
from kbox.api.selectors import LabelSelector, selector_from_spec
from kbox.clock import Clock, iso_time
from kbox.controllers import podutil
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

REPLICA_FAILURE = "ReplicaFailure"


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None, burst: int = 500) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.burst = burst
        self.expectations = podutil.Expectations(self.clock)
        self.rs_informer = informers.informer("replicasets")
        self.pod_informer = informers.informer("pods")
        # sync reads owned pods + orphans only: never a scan of a namespace's pods
        self.pod_informer.add_index(podutil.ORPHAN_INDEX, podutil.orphan_namespace_index)
        self.rs_informer.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ---- informer handlers (enqueue only) -----------------------------------------
    def _rs_added(self, rs: Obj) -> None:
        self.enqueue(key_of(rs))

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(key_of(new))

    def _rs_deleted(self, rs: Obj) -> None:
        key = key_of(rs)
        self.expectations.delete(key)
        self.enqueue(key)

    def _owner_rs(self, pod: Obj, ref: dict[str, Any] | None) -> Obj | None:
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        ns = pod["metadata"].get("namespace")
        rs = self.rs_informer.get_by_name(ref.get("name", ""), ns)
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return rs

    def _matching_rss(self, pod: Obj) -> list[Obj]:
        """ReplicaSets that could adopt this orphan pod."""
        ns = pod["metadata"].get("namespace") or ""
        labels = pod["metadata"].get("labels") or {}
        if not labels:
            return []
        out = []
        for rs in self.rs_informer.by_index("namespace", ns):
            sel = _selector(rs)
            if sel is not None and not sel.empty and sel.matches(labels):
                out.append(rs)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if podutil.is_terminating(pod):
            # a pod created already terminating (e.g. on a relist): count it as gone
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            rs = self._owner_rs(pod, ref)
            if rs is not None:
                key = key_of(rs)
                self.expectations.creation_observed(key)
                self.enqueue(key)
            return
        for rs in self._matching_rss(pod):
            self.enqueue(key_of(rs))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if _what_a_replicaset_sees(old) == _what_a_replicaset_sees(new):
            return      # e.g. the binding, or a kubelet write before the pod is ready
        labels_changed = (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {})
        if podutil.is_terminating(new) and not podutil.is_terminating(old):
            # graceful deletion started: for expectations the pod is already gone
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        if (cur_ref or {}).get("uid") != (old_ref or {}).get("uid") and old_ref is not None:
            rs = self._owner_rs(old, old_ref)
            if rs is not None:
                self.enqueue(key_of(rs))
        if cur_ref is not None:
            rs = self._owner_rs(new, cur_ref)
            if rs is not None:
                key = key_of(rs)
                self.enqueue(key)
                mrs = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
                if mrs > 0 and not podutil.is_pod_ready(old) and podutil.is_pod_ready(new):
                    # it becomes available minReadySeconds from now: look again then
                    self.queue.add_after(key, mrs + 1)
            return
        if labels_changed or old_ref is not None:
            for rs in self._matching_rss(new):
                self.enqueue(key_of(rs))

    def _pod_deleted(self, pod: Obj) -> None:
        rs = self._owner_rs(pod, controller_ref(pod))
        if rs is None:
            return
        key = key_of(rs)
        self.expectations.deletion_observed(key, key_of(pod))
        self.enqueue(key)

    # ---- reconcile -----------------------------------------------------------------
    def sync(self, key: str) -> None:
        rs = self.rs_informer.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        selector = _selector(rs)
        if selector is None or selector.empty:
            log.warning("replicaset %s has an empty or invalid selector; not managing pods", key)
            return
        pods = podutil.filter_active_pods(podutil.owned_and_orphans(self.pod_informer, rs))
        pods = podutil.claim_objects(self.client, "pods", rs,
                                     lambda p: selector.matches(p["metadata"].get("labels")),
                                     pods, can_adopt=lambda: self._can_adopt(rs))
        manage_error: Exception | None = None
        diff = 0
        if needs_sync and not podutil.is_terminating(rs):
            diff, manage_error = self._manage_replicas(pods, rs, key)
        status = self._calculate_status(rs, pods, selector, manage_error, diff)
        new_rs = self._update_status(rs, status)
        mrs = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if (manage_error is None and mrs > 0 and new_rs is not None
                and status["readyReplicas"] == _replicas(rs)
                and status["availableReplicas"] != _replicas(rs)):
            self.queue.add_after(key, mrs + 1)
        if manage_error is not None:
            raise manage_error

    def _can_adopt(self, rs: Obj) -> None:
        """Re-read the ReplicaSet: never adopt for a deleted or replaced owner."""
        fresh = self.client.get("replicasets", rs["metadata"]["name"], rs["metadata"].get("namespace"))
        if fresh["metadata"].get("uid") != rs["metadata"].get("uid"):
            raise ApiError(409, "Conflict", f"original ReplicaSet {key_of(rs)} is gone: got uid "
                           f"{fresh['metadata'].get('uid')}, wanted {rs['metadata'].get('uid')}")
        if fresh["metadata"].get("deletionTimestamp"):
            raise ApiError(409, "Conflict", f"ReplicaSet {key_of(rs)} has just been deleted at "
                           f"{fresh['metadata']['deletionTimestamp']}")

    def _manage_replicas(self, pods: list[Obj], rs: Obj, key: str) -> tuple[int, Exception | None]:
        want = _replicas(rs)
        diff = len(pods) - want
        ns = rs["metadata"].get("namespace")
        if diff < 0:
            n = min(-diff, self.burst)
            self.expectations.expect_creations(key, n)
            template = (rs.get("spec") or {}).get("template") or {}

            def create_one() -> None:
                pod = podutil.pod_from_template(template, rs)
                try:
                    created = self.client.create("pods", pod, ns)
                except ApiError as e:
                    self.recorder.warning(rs, "FailedCreate", f"Error creating: {e.message}")
                    raise
                self.recorder.normal(rs, "SuccessfulCreate",
                                     f"Created pod: {created['metadata']['name']}")

            ok, err = podutil.slow_start_batch(n, create_one)
            for _ in range(n - ok):
                # the informer will never see these: lower what we wait for
                self.expectations.creation_observed(key)
            return diff, err
        if diff > 0:
            n = min(diff, self.burst)
            victims = podutil.rank_pods_for_deletion(pods, self._related_pods(rs, pods))[:n]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            first_error: Exception | None = None
            for pod in victims:
                pname = pod["metadata"]["name"]
                try:
                    self.client.delete("pods", pname, ns)
                    self.recorder.normal(rs, "SuccessfulDelete", f"Deleted pod: {pname}")
                except ApiError as e:
                    self.expectations.deletion_observed(key, key_of(pod))
                    if e.code != 404:
                        self.recorder.warning(rs, "FailedDelete", f"Error deleting: {e.message}")
                        first_error = first_error or e
            return diff, first_error
        return 0, None

    def _related_pods(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Active pods of every ReplicaSet with the same controller (a Deployment's)."""
        ref = controller_ref(rs)
        if ref is None:
            return pods
        related: list[Obj] = []
        for sibling in self.rs_informer.by_index("controller", ref.get("uid", "")):
            related.extend(p for p in self.pod_informer.by_index("controller", sibling["metadata"]["uid"])
                           if podutil.is_pod_active(p))
        return related or pods

    # ---- status -------------------------------------------------------------------
    def _calculate_status(self, rs: Obj, pods: list[Obj], selector: LabelSelector,
                          manage_error: Exception | None, diff: int) -> dict[str, Any]:
        old = rs.get("status") or {}
        template_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        mrs = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.clock.now()
        fully = ready = available = 0
        for p in pods:
            labels = p["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if podutil.is_pod_ready(p):
                ready += 1
                if podutil.is_pod_available(p, mrs, now):
                    available += 1
        conditions = [dict(c) for c in old.get("conditions") or []]
        failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
        if manage_error is not None and failure is None:
            reason = "FailedCreate" if diff < 0 else "FailedDelete"
            msg = manage_error.message if isinstance(manage_error, ApiError) else str(manage_error)
            conditions.append({"type": REPLICA_FAILURE, "status": "True",
                               "lastTransitionTime": iso_time(now), "reason": reason,
                               "message": msg})
        elif manage_error is None and failure is not None:
            conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation") or 0),
        }
        if conditions:
            status["conditions"] = conditions
        return status

    def _update_status(self, rs: Obj, status: dict[str, Any]) -> Obj | None:
        cur = rs
        for attempt in range(2):
            if _status_equal(cur.get("status") or {}, status):
                return cur
            new = deep_copy(cur)
            new["status"] = status
            status["observedGeneration"] = int(cur["metadata"].get("generation") or 0)
            new["status"] = status
            try:
                return self.client.update_status("replicasets", new, cur["metadata"].get("namespace"))
            except ApiError as e:
                if e.code == 404:
                    return None
                if e.code != 409 or attempt == 1:
                    raise
                cur = self.client.get("replicasets", cur["metadata"]["name"],
                                      cur["metadata"].get("namespace"))
        return None


def _what_a_replicaset_sees(pod: Obj) -> tuple[Any, ...]:
    """Everything of a pod that a ReplicaSet's sync reads to count, adopt and report it;
    a change elsewhere (its node, container details) cannot change what the sync does,
    so it need not cost a sync of every pod of the ReplicaSet."""
    m = pod.get("metadata") or {}
    ready = condition(pod, "Ready") or {}
    return (m.get("labels"), m.get("ownerReferences"), m.get("deletionTimestamp"),
            (pod.get("status") or {}).get("phase"), ready.get("status"),
            ready.get("lastTransitionTime"))


def _replicas(rs: Obj) -> int:
    r = (rs.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def _selector(obj: Obj) -> LabelSelector | None:
    try:
        return selector_from_spec((obj.get("spec") or {}).get("selector"))
    except ApiError:
        return None


def _status_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
            "observedGeneration")
    if any(int(a.get(k) or 0) != int(b.get(k) or 0) for k in keys):
        return False
    return (a.get("conditions") or []) == (b.get("conditions") or [])


__all__ = ["ReplicaSetController"]
