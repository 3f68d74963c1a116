"""The Deployment controller: rolls a pod template out through ReplicaSets.

Behaviour copied from kube-controller-manager's deployment controller:

- Each distinct pod template gets a ReplicaSet named
  `<deployment>-<pod-template-hash>`, where the hash depends only on the
  template (and `status.collisionCount`), never on replicas. The hash is
  added as the `pod-template-hash` label to the ReplicaSet's selector and
  template. ReplicaSets carry `deployment.kubernetes.io/revision`,
  `desired-replicas` and `max-replicas` annotations; the Deployment carries
  the current revision. A rollback to an old template reuses its ReplicaSet
  with a new revision number and records the old ones in
  `deployment.kubernetes.io/revision-history`.
- RollingUpdate: the new ReplicaSet grows while the total stays within
  replicas + maxSurge; old ones shrink while availability stays above
  replicas - maxUnavailable (unhealthy old replicas are cleaned up first).
- Recreate: scale every old ReplicaSet to 0, wait until none of their pods
  runs, then scale the new one up.
- A replicas change during a rollout is spread proportionally over the
  active ReplicaSets (using the max-replicas annotations).
- Paused deployments still scale but do not roll out.
- Old ReplicaSets with no replicas beyond `revisionHistoryLimit` are deleted.
- Status and the Available / Progressing conditions, including
  ProgressDeadlineExceeded once `progressDeadlineSeconds` pass without progress
  (measured on the controller's clock).
- Orphan ReplicaSets matching the selector are adopted.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable

import orjson

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, controller_ref, deep_copy, key_of, owner_reference
from kbox.api.selectors import LabelSelector, selector_from_spec
from kbox.clock import Clock, iso_time, parse_time
from kbox.controllers import podutil
from kbox.controllers.base import Controller
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
#: deployment annotations that are not copied onto its ReplicaSets
SKIP_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                              MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
# Progressing reasons
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "FailedRSCreate"
# Available reasons
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
_NO_DEADLINE = 2**31 - 1      # kube's "no progress deadline" (MaxInt32)

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ---- template hash ----------------------------------------------------------------

def _canonical(value: Any) -> Any:
    """Drop nulls and empty maps/lists so equivalent templates compare equal."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            c = _canonical(v)
            if c is None or c == {} or c == []:
                continue
            out[k] = c
        return out
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """The pod-template-hash: fnv-1a 32 over the canonical JSON of the template
    (plus the collision count), written in Kubernetes' safe alphabet (no
    vowels, so it never spells a word)."""
    data = orjson.dumps(_canonical(template), option=orjson.OPT_SORT_KEYS)
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    if collision_count is not None:
        for b in int(collision_count).to_bytes(4, "little") + b"\0\0\0\0":
            h ^= b
            h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(h))


def template_without_hash(template: Obj | None) -> Obj:
    t = deep_copy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return _canonical(template_without_hash(a)) == _canonical(template_without_hash(b))


# ---- small accessors -----------------------------------------------------------------

def _spec(obj: Obj) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


def replicas_of(obj: Obj) -> int:
    r = _spec(obj).get("replicas")
    return 1 if r is None else int(r)


def revision_of(obj: Obj) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(obj: Obj) -> float:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first; name breaks ties (Kubernetes' ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=lambda r: (_created(r), r["metadata"]["name"]))


def _active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [r for r in rss if r is not None and replicas_of(r) > 0]


def _sum_spec(rss: Iterable[Obj | None]) -> int:
    return sum(replicas_of(r) for r in rss if r is not None)


def _sum_status(rss: Iterable[Obj | None], field: str) -> int:
    return sum(int(_status(r).get(field) or 0) for r in rss if r is not None)


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        value = "25%"
    if isinstance(value, str) and value.endswith("%"):
        pct = float(value[:-1] or 0)
        x = pct * total / 100.0
        return int(math.ceil(x)) if round_up else int(math.floor(x))
    return int(value)


def is_rolling(d: Obj) -> bool:
    return ((_spec(d).get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers; never both 0."""
    ru = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(d)
    surge = _int_or_percent(ru.get("maxSurge"), desired, True)
    unavailable = _int_or_percent(ru.get("maxUnavailable"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(d)[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas_of(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas_of(d))


def progress_deadline(d: Obj) -> int | None:
    v = _spec(d).get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    if v is None:
        v = DEFAULT_PROGRESS_DEADLINE
    return None if int(v) >= _NO_DEADLINE else int(v)


def revision_history_limit(d: Obj) -> int | None:
    v = _spec(d).get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
    return None if v is None else int(v)


def get_condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def deployment_complete(d: Obj, status: dict[str, Any]) -> bool:
    want = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.d_informer = informers.informer("deployments")
        self.rs_informer = informers.informer("replicasets")
        # a sync reads its own ReplicaSets + orphans: never a scan of the namespace
        self.rs_informer.add_index(podutil.ORPHAN_INDEX, podutil.orphan_namespace_index)
        self.pod_informer = informers.informer("pods")
        self.d_informer.add_handler(self._d_added, self._d_updated, self._d_deleted)
        self.rs_informer.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_handler(None, None, self._pod_deleted)

    # ---- informer handlers ----------------------------------------------------------
    def _d_added(self, d: Obj) -> None:
        self.enqueue(key_of(d))

    def _d_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(key_of(new))

    def _d_deleted(self, d: Obj) -> None:
        self.enqueue(key_of(d))

    def _owner_deployment(self, obj: Obj, ref: dict[str, Any] | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.get_by_name(ref.get("name", ""), obj["metadata"].get("namespace"))
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _matching_deployments(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        if not labels:
            return []
        out = []
        for d in self.d_informer.by_index("namespace", rs["metadata"].get("namespace") or ""):
            sel = _selector(d)
            if sel is not None and not sel.empty and sel.matches(labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if podutil.is_terminating(rs):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self._owner_deployment(rs, ref)
            if d is not None:
                self.enqueue(key_of(d))
            return
        for d in self._matching_deployments(rs):
            self.enqueue(key_of(d))

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        if old_ref is not None and (cur_ref or {}).get("uid") != old_ref.get("uid"):
            d = self._owner_deployment(old, old_ref)
            if d is not None:
                self.enqueue(key_of(d))
        if cur_ref is not None:
            d = self._owner_deployment(new, cur_ref)
            if d is not None:
                self.enqueue(key_of(d))
            return
        if (old["metadata"].get("labels") != new["metadata"].get("labels")) or old_ref is not None:
            for d in self._matching_deployments(new):
                self.enqueue(key_of(d))

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._owner_deployment(rs, controller_ref(rs))
        if d is not None:
            self.enqueue(key_of(d))

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone: look again when one goes."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get_by_name(ref.get("name", ""), pod["metadata"].get("namespace"))
        if rs is None:
            return
        d = self._owner_deployment(rs, controller_ref(rs))
        if d is not None and not is_rolling(d):
            self.enqueue(key_of(d))

    # ---- reconcile ----------------------------------------------------------------------
    def sync(self, key: str) -> None:
        cached = self.d_informer.get(key)
        if cached is None:
            return
        d = deep_copy(cached)
        selector = _selector(d)
        if selector is None or selector.empty:
            self.recorder.warning(d, "SelectingAll", "This deployment is selecting all pods. "
                                  "A non-empty selector is required.")
            if int(_status(d).get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                st = deep_copy(_status(d))
                st["observedGeneration"] = int(d["metadata"].get("generation") or 0)
                self._write_status(d, st)
            return
        rss = self._replicasets_for(d, selector)
        if podutil.is_terminating(d):
            self._sync_status_only(d, rss)
            return
        d = self._check_paused_conditions(d)
        if _spec(d).get("paused"):
            self._sync_scale(d, rss)
            return
        if self._is_scaling_event(d, rss):
            self._sync_scale(d, rss)
            return
        if is_rolling(d):
            self._rollout_rolling(d, rss)
        else:
            self._rollout_recreate(d, rss)

    def _replicasets_for(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        ns = d["metadata"].get("namespace") or ""
        candidates = podutil.owned_and_orphans(self.rs_informer, d)

        def can_adopt() -> None:
            fresh = self.client.get("deployments", d["metadata"]["name"], ns)
            if fresh["metadata"].get("uid") != d["metadata"].get("uid"):
                raise ApiError(409, "Conflict", f"original Deployment {key_of(d)} is gone")
            if fresh["metadata"].get("deletionTimestamp"):
                raise ApiError(409, "Conflict", f"Deployment {key_of(d)} has just been deleted")

        return podutil.claim_objects(self.client, "replicasets", d,
                                     lambda rs: selector.matches(rs["metadata"].get("labels")),
                                     candidates, can_adopt=can_adopt)

    def _pods_by_rs(self, rss: list[Obj]) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for rs in rss:
            uid = rs["metadata"]["uid"]
            out[uid] = list(self.pod_informer.by_index("controller", uid))
        return out

    # ---- finding the new and old ReplicaSets --------------------------------------------
    @staticmethod
    def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
        template = _spec(d).get("template")
        for rs in _by_creation(rss):
            if equal_ignore_hash(_spec(rs).get("template"), template):
                return rs   # the oldest match wins, as in Kubernetes
        return None

    def _old_rss(self, d: Obj, rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        return [rs for rs in rss if rs["metadata"]["uid"] != new_uid]

    def _all_rss_and_sync_revision(self, d: Obj, rss: list[Obj],
                                   create: bool) -> tuple[Obj, Obj | None, list[Obj]]:
        """(deployment, new RS or None, old RSs); the deployment returned carries what was written."""
        existing = self.find_new_rs(d, rss)
        old = self._old_rss(d, rss, existing)
        d, new_rs = self._get_new_rs(d, rss, old, existing, create)
        return d, new_rs, old

    def _get_new_rs(self, d: Obj, rss: list[Obj], old: list[Obj], existing: Obj | None,
                    create: bool) -> tuple[Obj, Obj | None]:
        max_old = max((revision_of(r) for r in old), default=0)
        new_revision = str(max_old + 1)
        ns = d["metadata"].get("namespace")
        if existing is not None:
            rs = deep_copy(existing)
            changed = self._set_new_rs_annotations(d, rs, new_revision, exists=True)
            mrs = _spec(d).get("minReadySeconds") or 0
            if changed or (_spec(rs).get("minReadySeconds") or 0) != mrs:
                rs["spec"]["minReadySeconds"] = mrs
                rs = self.client.update("replicasets", rs, ns)
                return d, rs
            d = self._set_deployment_revision(d, rs["metadata"].get("annotations", {}).get(REVISION, ""))
            status = deep_copy(_status(d))
            if progress_deadline(d) is not None and get_condition(status, PROGRESSING) is None:
                _set_condition(status, self._condition(PROGRESSING, "True", FOUND_NEW_RS,
                                                       f'Found new replica set "{rs["metadata"]["name"]}"'))
                d = self._write_status(d, status)
            return d, rs
        if not create:
            return d, None
        template = deep_copy(_spec(d).get("template") or {})
        collision = _status(d).get("collisionCount")
        h = compute_hash(template, collision)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: h}
        selector = deep_copy(_spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
        name = f"{d['metadata']['name']}-{h}"
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "labels": dict(tmeta["labels"]),
                         "ownerReferences": [owner_reference(d)]},
            "spec": {"replicas": 0, "minReadySeconds": _spec(d).get("minReadySeconds") or 0,
                     "selector": selector, "template": template},
        }
        new_rs["spec"]["replicas"] = self._new_rs_new_replicas(d, old + [new_rs], new_rs)
        self._set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        already_exists = False
        try:
            created = self.client.create("replicasets", new_rs, ns)
        except ApiError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                try:
                    found = self.client.get("replicasets", name, ns)
                except ApiError:
                    raise e
                if podutil.is_controlled_by(found, d) and equal_ignore_hash(
                        _spec(found).get("template"), _spec(d).get("template")):
                    created, already_exists = found, True
                else:
                    # a hash collision: count it so the next hash differs
                    status = deep_copy(_status(d))
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    self._write_status(d, status)
                    raise e
            else:
                status = deep_copy(_status(d))
                msg = f'Failed to create new replica set "{name}": {e.message}'
                _set_condition(status, self._condition(PROGRESSING, "False", FAILED_RS_CREATE, msg))
                self.recorder.warning(d, FAILED_RS_CREATE, msg)
                self._write_status(d, status)
                raise
        if not already_exists and replicas_of(created) > 0:
            self.recorder.normal(d, "ScalingReplicaSet",
                                 f"Scaled up replica set {name} from 0 to {replicas_of(created)}")
        d = self._set_deployment_revision(d, new_revision)
        if not already_exists and progress_deadline(d) is not None:
            status = deep_copy(_status(d))
            _set_condition(status, self._condition(PROGRESSING, "True", NEW_RS_CREATED,
                                                   f'Created new replica set "{name}"'))
            d = self._write_status(d, status)
        return d, created

    def _set_new_rs_annotations(self, d: Obj, rs: Obj, new_revision: str, *, exists: bool) -> bool:
        ann = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in (d["metadata"].get("annotations") or {}).items():
            if k in SKIP_ANNOTATIONS or ann.get(k) == v:
                continue
            ann[k] = v
            changed = True
        old_revision = ann.get(REVISION)
        try:
            old_int = int(old_revision) if old_revision else 0
        except ValueError:
            old_int = 0
        if old_int < int(new_revision):
            ann[REVISION] = new_revision
            changed = True
            if old_revision:
                # a rollback to this template: keep the revisions it had before
                history = [h for h in (ann.get(REVISION_HISTORY) or "").split(",") if h]
                history.append(old_revision)
                while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                    history.pop(0)
                ann[REVISION_HISTORY] = ",".join(history)
        if not exists:
            changed = _set_replicas_annotations(rs, replicas_of(d), replicas_of(d) + max_surge(d)) or changed
        return changed

    def _set_deployment_revision(self, d: Obj, revision: str) -> Obj:
        """Record the current revision on the Deployment (a metadata-only write)."""
        if not revision or (d["metadata"].get("annotations") or {}).get(REVISION) == revision:
            return d
        patched = self.client.patch("deployments", d["metadata"]["name"],
                                    {"metadata": {"annotations": {REVISION: revision}}}, "merge",
                                    d["metadata"].get("namespace"))
        out = deep_copy(d)
        out["metadata"] = patched["metadata"]
        return out

    def _new_rs_new_replicas(self, d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
        if not is_rolling(d):
            return replicas_of(d)
        current = _sum_spec(all_rss)
        max_total = replicas_of(d) + max_surge(d)
        if current >= max_total:
            return replicas_of(new_rs)
        up = min(max_total - current, replicas_of(d) - replicas_of(new_rs))
        return replicas_of(new_rs) + up

    # ---- scaling ----------------------------------------------------------------------
    def _scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str | None = None) -> tuple[bool, Obj]:
        """Set replicas (and the replicas annotations); event when the size changes."""
        old_scale = replicas_of(rs)
        size_changed = old_scale != new_scale
        probe = deep_copy(rs)
        ann_changed = _set_replicas_annotations(probe, replicas_of(d), replicas_of(d) + max_surge(d))
        if not size_changed and not ann_changed:
            return False, rs
        probe.setdefault("spec", {})["replicas"] = new_scale
        updated = self.client.update("replicasets", probe, rs["metadata"].get("namespace"))
        if size_changed:
            op = operation or ("up" if new_scale > old_scale else "down")
            self.recorder.normal(d, "ScalingReplicaSet",
                                 f"Scaled {op} replica set {rs['metadata']['name']} from "
                                 f"{old_scale} to {new_scale}")
        return size_changed, updated

    def _scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if replicas_of(rs) == new_scale:
            return False, rs
        return self._scale_rs(rs, new_scale, d)

    def _is_scaling_event(self, d: Obj, rss: list[Obj]) -> bool:
        existing = self.find_new_rs(d, rss)
        all_rss = self._old_rss(d, rss, existing) + ([existing] if existing else [])
        for rs in _active(all_rss):
            desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
            if desired is None:
                continue
            try:
                if int(desired) != replicas_of(d):
                    return True
            except ValueError:
                continue
        return False

    def _scale(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        single = _active_or_latest(new_rs, old)
        if single is not None:
            if replicas_of(single) != replicas_of(d):
                self._scale_and_record(single, replicas_of(d), d)
            return
        if _is_saturated(d, new_rs):
            for rs in _active(old):
                self._scale_and_record(rs, 0, d)
            return
        if not is_rolling(d):
            return
        all_rss = _active(old + ([new_rs] if new_rs else []))
        allowed = replicas_of(d) + max_surge(d) if replicas_of(d) > 0 else 0
        to_add = allowed - _sum_spec(all_rss)
        if to_add > 0:
            # bigger first; among equals the newer one takes more
            all_rss.sort(key=lambda r: (-replicas_of(r), -_created(r), r["metadata"]["name"]))
        elif to_add < 0:
            all_rss.sort(key=lambda r: (-replicas_of(r), _created(r), r["metadata"]["name"]))
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_rss:
            name = rs["metadata"]["name"]
            if to_add != 0:
                p = self._proportion(rs, d, to_add, added)
                sizes[name] = replicas_of(rs) + p
                added += p
            else:
                sizes[name] = replicas_of(rs)
        leftover = to_add - added
        if leftover != 0 and all_rss:
            first = all_rss[0]["metadata"]["name"]
            sizes[first] = max(0, sizes[first] + leftover)
        for rs in all_rss:
            self._scale_rs(rs, sizes[rs["metadata"]["name"]], d)

    def _proportion(self, rs: Obj, d: Obj, to_add: int, added: int) -> int:
        if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        fraction = self._fraction(rs, d)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def _fraction(self, rs: Obj, d: Obj) -> int:
        if replicas_of(d) == 0:
            return -replicas_of(rs)
        total = replicas_of(d) + max_surge(d)
        try:
            annotated = int((rs["metadata"].get("annotations") or {})[MAX_REPLICAS])
        except (KeyError, ValueError):
            annotated = int(_status(d).get("replicas") or 0)
        if annotated == 0:
            return 0
        return _round_half_away(replicas_of(rs) * total / annotated) - replicas_of(rs)

    def _sync_scale(self, d: Obj, rss: list[Obj]) -> None:
        """Scaling (and paused deployments): resize, clean up, report; never roll out."""
        d, new_rs, old = self._all_rss_and_sync_revision(d, rss, create=False)
        self._scale(d, new_rs, old)
        if _spec(d).get("paused"):
            self._cleanup(d, self._fresh(old))
        all_rss = self._fresh(old + ([new_rs] if new_rs else []))
        new_rs = self._fresh_one(new_rs)
        self._sync_status(d, all_rss, new_rs)

    def _sync_status_only(self, d: Obj, rss: list[Obj]) -> None:
        d, new_rs, old = self._all_rss_and_sync_revision(d, rss, create=False)
        self._sync_status(d, old + ([new_rs] if new_rs else []), new_rs)

    def _fresh(self, rss: list[Obj]) -> list[Obj]:
        """The cached copies may be older than what this sync just wrote; re-read."""
        return [self._fresh_one(r) for r in rss]  # type: ignore[misc]

    def _fresh_one(self, rs: Obj | None) -> Obj | None:
        if rs is None:
            return None
        try:
            return self.client.get("replicasets", rs["metadata"]["name"], rs["metadata"].get("namespace"))
        except ApiError as e:
            if e.code == 404:
                return rs
            raise

    # ---- rolling update -----------------------------------------------------------------
    def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        d, new_rs, old = self._all_rss_and_sync_revision(d, rss, create=True)
        assert new_rs is not None
        all_rss = old + [new_rs]
        scaled, new_rs = self._reconcile_new_rs(all_rss, new_rs, d)
        if scaled:
            self._sync_rollout_status(d, old + [new_rs], new_rs)
            return
        scaled, old = self._reconcile_old_rss(old + [new_rs], old, new_rs, d)
        if scaled:
            self._sync_rollout_status(d, old + [new_rs], new_rs)
            return
        if deployment_complete(d, _status(d)):
            self._cleanup(d, old)
        self._sync_rollout_status(d, old + [new_rs], new_rs)

    def _reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj, d: Obj) -> tuple[bool, Obj]:
        want = replicas_of(d)
        if replicas_of(new_rs) == want:
            return False, new_rs
        if replicas_of(new_rs) > want:
            return self._scale_and_record(new_rs, want, d)
        return self._scale_and_record(new_rs, self._new_rs_new_replicas(d, all_rss, new_rs), d)

    def _reconcile_old_rss(self, all_rss: list[Obj], old: list[Obj], new_rs: Obj,
                           d: Obj) -> tuple[bool, list[Obj]]:
        active_old = _active(old)
        if _sum_spec(active_old) == 0:
            return False, old
        all_count = _sum_spec(all_rss)
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = replicas_of(new_rs) - int(_status(new_rs).get("availableReplicas") or 0)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False, old
        updated: dict[str, Obj] = {}
        active_old, cleaned = self._cleanup_unhealthy(active_old, d, max_scaled_down)
        for rs in active_old:
            updated[rs["metadata"]["uid"]] = rs
        scaled_down, active_old = self._scale_down_old_for_rolling(active_old + [new_rs], active_old, d)
        for rs in active_old:
            updated[rs["metadata"]["uid"]] = rs
        old = [updated.get(rs["metadata"]["uid"], rs) for rs in old]
        return cleaned + scaled_down > 0, old

    def _cleanup_unhealthy(self, old: list[Obj], d: Obj, max_cleanup: int) -> tuple[list[Obj], int]:
        """Scale down old replicas that are not available first: they cost no availability."""
        out = _by_creation(old)
        total = 0
        for i, rs in enumerate(out):
            if total >= max_cleanup:
                break
            unhealthy = replicas_of(rs) - int(_status(rs).get("availableReplicas") or 0)
            if replicas_of(rs) == 0 or unhealthy <= 0:
                continue
            n = min(max_cleanup - total, unhealthy)
            _, out[i] = self._scale_and_record(rs, replicas_of(rs) - n, d)
            total += n
        return out, total

    def _scale_down_old_for_rolling(self, all_rss: list[Obj], old: list[Obj],
                                    d: Obj) -> tuple[int, list[Obj]]:
        min_available = replicas_of(d) - max_unavailable(d)
        available = _sum_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0, old
        out = _by_creation(old)
        budget = available - min_available
        total = 0
        for i, rs in enumerate(out):
            if total >= budget:
                break
            if replicas_of(rs) == 0:
                continue
            n = min(replicas_of(rs), budget - total)
            _, out[i] = self._scale_and_record(rs, replicas_of(rs) - n, d)
            total += n
        return total, out

    # ---- recreate --------------------------------------------------------------------
    def _rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        d, new_rs, old = self._all_rss_and_sync_revision(d, rss, create=False)
        scaled = False
        for i, rs in enumerate(old):
            if replicas_of(rs) != 0:
                _, old[i] = self._scale_and_record(rs, 0, d)
                scaled = True
        if scaled:
            self._sync_rollout_status(d, old + ([new_rs] if new_rs else []), new_rs)
            return
        if self._old_pods_running(new_rs, old):
            self._sync_rollout_status(d, old + ([new_rs] if new_rs else []), new_rs)
            return
        if new_rs is None:
            d, new_rs, old = self._all_rss_and_sync_revision(d, rss, create=True)
        assert new_rs is not None
        _, new_rs = self._scale_and_record(new_rs, replicas_of(d), d)
        if deployment_complete(d, _status(d)):
            self._cleanup(d, old)
        self._sync_rollout_status(d, old + [new_rs], new_rs)

    def _old_pods_running(self, new_rs: Obj | None, old: list[Obj]) -> bool:
        if _sum_status(old, "replicas") > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs else None
        for uid, pods in self._pods_by_rs(old).items():
            if uid == new_uid:
                continue
            for p in pods:
                if podutil.pod_phase(p) not in ("Failed", "Succeeded"):
                    return True   # Running, Pending, Unknown or still terminating
        return False

    # ---- history cleanup ---------------------------------------------------------------
    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        limit = revision_history_limit(d)
        if limit is None:
            return
        alive = [rs for rs in old if not podutil.is_terminating(rs)]
        diff = len(alive) - limit
        if diff <= 0:
            return
        alive.sort(key=lambda r: (revision_of(r), _created(r), r["metadata"]["name"]))
        for rs in alive[:diff]:
            st = _status(rs)
            if (int(st.get("replicas") or 0) != 0 or replicas_of(rs) != 0
                    or int(rs["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0)):
                continue
            try:
                self.client.delete("replicasets", rs["metadata"]["name"], rs["metadata"].get("namespace"))
            except ApiError as e:
                if e.code != 404:
                    raise

    # ---- status --------------------------------------------------------------------------
    def _condition(self, ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
        now = iso_time(self.clock.now())
        return {"type": ctype, "status": status, "lastUpdateTime": now,
                "lastTransitionTime": now, "reason": reason, "message": message}

    def _calculate_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> dict[str, Any]:
        available = _sum_status(all_rss, "availableReplicas")
        total = _sum_spec(all_rss)
        status: dict[str, Any] = {
            "observedGeneration": int(d["metadata"].get("generation") or 0),
            "replicas": _sum_status(all_rss, "replicas"),
            "updatedReplicas": _sum_status([new_rs], "replicas"),
            "readyReplicas": _sum_status(all_rss, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        if _status(d).get("collisionCount") is not None:
            status["collisionCount"] = _status(d)["collisionCount"]
        status["conditions"] = [dict(c) for c in _status(d).get("conditions") or []]
        if available >= replicas_of(d) - max_unavailable(d):
            _set_condition(status, self._condition(AVAILABLE, "True", MIN_AVAILABLE,
                                                   "Deployment has minimum availability."))
        else:
            _set_condition(status, self._condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                                   "Deployment does not have minimum availability."))
        return status

    def _sync_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        status = self._calculate_status(d, all_rss, new_rs)
        if _status_equal(_status(d), status):
            return
        self._write_status(d, status)

    def _sync_rollout_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        status = self._calculate_status(d, all_rss, new_rs)
        deadline = progress_deadline(d)
        if deadline is None:
            _remove_condition(status, PROGRESSING)
        current = get_condition(_status(d), PROGRESSING)
        complete = (status["replicas"] == status["updatedReplicas"] and current is not None
                    and current.get("reason") == NEW_RS_AVAILABLE)
        if deadline is not None and not complete:
            rs_name = new_rs["metadata"]["name"] if new_rs else None
            if deployment_complete(d, status):
                msg = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                       else f'Deployment "{d["metadata"]["name"]}" has successfully progressed.')
                _set_condition(status, self._condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg))
            elif _deployment_progressing(d, status):
                msg = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                       else f'Deployment "{d["metadata"]["name"]}" is progressing.')
                cond = self._condition(PROGRESSING, "True", RS_UPDATED, msg)
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                _remove_condition(status, PROGRESSING)
                _set_condition(status, cond)
            elif self._timed_out(d, status):
                msg = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                       else f'Deployment "{d["metadata"]["name"]}" has timed out progressing.')
                _set_condition(status, self._condition(PROGRESSING, "False", TIMED_OUT, msg))
        failure = _replica_failure(all_rss, new_rs)
        if failure is not None:
            _set_condition(status, self._condition(REPLICA_FAILURE, failure.get("status", "True"),
                                                   failure.get("reason", ""), failure.get("message", "")))
        else:
            _remove_condition(status, REPLICA_FAILURE)
        if _status_equal(_status(d), status):
            self._requeue_stuck(d, status)
            return
        self._write_status(d, status)

    def _timed_out(self, d: Obj, status: dict[str, Any]) -> bool:
        deadline = progress_deadline(d)
        cond = get_condition(status, PROGRESSING)
        if deadline is None or cond is None:
            return False
        if cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        since = parse_time(cond.get("lastUpdateTime"))
        return since is not None and since + deadline < self.clock.now()

    def _requeue_stuck(self, d: Obj, status: dict[str, Any]) -> None:
        """Nothing changed: make sure a sync happens when the progress deadline passes."""
        deadline = progress_deadline(d)
        cond = get_condition(_status(d), PROGRESSING)
        if deadline is None or cond is None or deployment_complete(d, status):
            return
        if cond.get("reason") == TIMED_OUT:
            return
        since = parse_time(cond.get("lastUpdateTime")) or self.clock.now()
        after = since + deadline - self.clock.now()
        self.queue.add_after(key_of(d), max(after, 0) + 1)

    def _check_paused_conditions(self, d: Obj) -> Obj:
        if progress_deadline(d) is None:
            return d
        cond = get_condition(_status(d), PROGRESSING)
        paused_exists = cond is not None and cond.get("reason") == PAUSED
        status = deep_copy(_status(d))
        if _spec(d).get("paused") and not paused_exists:
            _set_condition(status, self._condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused"))
        elif not _spec(d).get("paused") and paused_exists:
            _set_condition(status, self._condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed"))
        else:
            return d
        return self._write_status(d, status)

    def _write_status(self, d: Obj, status: dict[str, Any]) -> Obj:
        new = deep_copy(d)
        new["status"] = status
        return self.client.update_status("deployments", new, d["metadata"].get("namespace"))


# ---- module helpers ----------------------------------------------------------------------

def _selector(obj: Obj) -> LabelSelector | None:
    try:
        return selector_from_spec(_spec(obj).get("selector"))
    except ApiError:
        return None


def _set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def _set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason → keep the old one."""
    conds = status.setdefault("conditions", [])
    cur = next((c for c in conds if c.get("type") == cond["type"]), None)
    if cur is not None and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    if cur is not None and cur.get("status") == cond["status"]:
        cond["lastTransitionTime"] = cur.get("lastTransitionTime")
    status["conditions"] = [c for c in conds if c.get("type") != cond["type"]] + [cond]


def _remove_condition(status: dict[str, Any], ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def _deployment_progressing(d: Obj, new: dict[str, Any]) -> bool:
    old = _status(d)
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(new.get("replicas") or 0) - int(new.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or new_old < old_old
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def _replica_failure(all_rss: list[Obj], new_rs: Obj | None) -> dict[str, Any] | None:
    ordered = ([new_rs] if new_rs is not None else []) + [r for r in all_rss if r is not new_rs]
    for rs in ordered:
        c = get_condition(_status(rs), REPLICA_FAILURE)
        if c is not None and c.get("status") == "True":
            return c
    return None


def _active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    """The single ReplicaSet that should take a resize alone, if there is one."""
    if new_rs is None and not old:
        return None
    old_sorted = sorted(old, key=lambda r: (-_created(r), r["metadata"]["name"]))
    active = _active(old_sorted + ([new_rs] if new_rs else []))
    if len(active) == 0:
        return new_rs if new_rs is not None else (old_sorted[0] if old_sorted else None)
    if len(active) == 1:
        return active[0]
    return None


def _is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
    try:
        desired_int = int(desired) if desired is not None else None
    except ValueError:
        return False
    return (desired_int == replicas_of(d) and replicas_of(rs) == replicas_of(d)
            and int(_status(rs).get("availableReplicas") or 0) == replicas_of(d))


def _status_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
            "availableReplicas", "unavailableReplicas", "collisionCount")
    if any((a.get(k) or 0) != (b.get(k) or 0) for k in keys):
        return False
    return (a.get("conditions") or []) == (b.get("conditions") or [])


__all__ = ["DeploymentController", "compute_hash", "equal_ignore_hash", "max_surge",
           "max_unavailable", "resolve_fenceposts", "revision_of", "deployment_complete",
           "HASH_LABEL", "REVISION", "REVISION_HISTORY", "DESIRED_REPLICAS", "MAX_REPLICAS"]
