"""`kubectl rollout` for Deployments, done client-side as kubectl does it.

These are plain functions over a `Client`; the CLI and the dashboard call
them and print what they return:

- `history(client, ns, name)` → [(revision, change_cause, replicaset)], oldest first
- `undo(client, ns, name, to_revision=0)` → "rolled back" / "skipped rollback (...)"
- `restart(client, ns, name, now_iso)` → "restarted"
- `pause(...)` → "paused", `resume(...)` → "resumed"
- `status(deployment)` → (message, done), kubectl's rollout-status texts

A rollback is nothing but a write of an old ReplicaSet's template back into
the Deployment; the Deployment controller then finds that ReplicaSet again,
gives it a new revision number and scales it up. The CLI prints results as
kubectl does: `deployment.apps/web rolled back`. Failures raise
`RolloutError` with kubectl's wording.
"""

from __future__ import annotations

from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy
from kbox.controllers.deployment import (DESIRED_REPLICAS, HASH_LABEL, LAST_APPLIED, MAX_REPLICAS,
                                         PROGRESSING, REVISION, REVISION_HISTORY, ROLLBACK_TO,
                                         TIMED_OUT, equal_ignore_hash, get_condition)
from kbox.controllers.podutil import is_controlled_by

CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: annotations a rollback keeps from the Deployment rather than taking from the ReplicaSet
_ROLLBACK_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                            MAX_REPLICAS, ROLLBACK_TO})


class RolloutError(Exception):
    """A rollout command that cannot be done; the message is kubectl's."""


def _replicasets(client: Client, d: Obj) -> list[Obj]:
    """The ReplicaSets this Deployment controls (kubectl's GetAllReplicaSets)."""
    ns = d["metadata"].get("namespace")
    items = client.list("replicasets", ns)["items"]
    return [rs for rs in items if is_controlled_by(rs, d)]


def _revision(rs: Obj) -> int | None:
    v = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def history(client: Client, namespace: str, name: str) -> list[tuple[int, str | None, Obj]]:
    """Revisions of a Deployment, oldest first: (revision, change-cause or None, its ReplicaSet)."""
    d = client.get("deployments", name, namespace)
    out: dict[int, tuple[int, str | None, Obj]] = {}
    for rs in _replicasets(client, d):
        rev = _revision(rs)
        if rev is None:
            continue
        cause = ((rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)) or None
        out[rev] = (rev, cause, rs)
    return [out[k] for k in sorted(out)]


def revision_template(client: Client, namespace: str, name: str, revision: int) -> Obj:
    """The pod template of one revision (`kubectl rollout history --revision=N`)."""
    for rev, _, rs in history(client, namespace, name):
        if rev == revision:
            t = deep_copy((rs.get("spec") or {}).get("template") or {})
            (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
            return t
    raise RolloutError("unable to find the specified revision")


def _revision_rs(client: Client, d: Obj, to_revision: int) -> Obj:
    latest: tuple[int, Obj | None] = (-1, None)
    previous: tuple[int, Obj | None] = (-1, None)
    for rs in _replicasets(client, d):
        v = _revision(rs)
        if v is None:
            continue
        if to_revision == 0:
            if latest[0] < v:
                previous, latest = latest, (v, rs)
            elif previous[0] < v:
                previous = (v, rs)
        elif v == to_revision:
            return rs
    if to_revision > 0:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    if previous[1] is None:
        raise RolloutError(f'no rollout history found for deployment "{d["metadata"]["name"]}"')
    return previous[1]


def undo(client: Client, namespace: str, name: str, to_revision: int = 0) -> str:
    """Put the template of `to_revision` (0: the previous one) back into the Deployment."""
    d = client.get("deployments", name, namespace)
    if (d.get("spec") or {}).get("paused"):
        raise RolloutError("you cannot rollback a paused deployment; resume it first with "
                           "'kubectl rollout resume' and try again")
    rs = _revision_rs(client, d, to_revision)
    template = deep_copy((rs.get("spec") or {}).get("template") or {})
    if equal_ignore_hash(template, (d.get("spec") or {}).get("template")):
        return f"skipped rollback (current template already matches revision {to_revision})"
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    annotations: dict[str, Any] = {}
    for k in _ROLLBACK_SKIP:
        v = (d["metadata"].get("annotations") or {}).get(k)
        if v is not None:
            annotations[k] = v
    for k, v in (rs["metadata"].get("annotations") or {}).items():
        if k not in _ROLLBACK_SKIP:
            annotations[k] = v
    # kubectl sends a JSON patch replacing both; an update guarded by resourceVersion is the same
    d["spec"]["template"] = template
    d["metadata"]["annotations"] = annotations
    try:
        client.update("deployments", d, namespace)
    except ApiError as e:
        raise RolloutError(f"failed restoring revision {to_revision}: {e.message}") from e
    return "rolled back"


def restart(client: Client, namespace: str, name: str, now_iso: str) -> str:
    """Stamp the template with restartedAt: a new template means a new rollout."""
    d = client.get("deployments", name, namespace)
    if (d.get("spec") or {}).get("paused"):
        raise RolloutError("can't restart paused deployment (run rollout resume first)")
    client.patch("deployments", name,
                 {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now_iso}}}}},
                 "merge", namespace)
    return "restarted"


def pause(client: Client, namespace: str, name: str) -> str:
    d = client.get("deployments", name, namespace)
    if (d.get("spec") or {}).get("paused"):
        raise RolloutError(f'deployments.apps "{name}" is already paused')
    client.patch("deployments", name, {"spec": {"paused": True}}, "merge", namespace)
    return "paused"


def resume(client: Client, namespace: str, name: str) -> str:
    d = client.get("deployments", name, namespace)
    if not (d.get("spec") or {}).get("paused"):
        raise RolloutError(f'deployments.apps "{name}" is not paused')
    client.patch("deployments", name, {"spec": {"paused": False}}, "merge", namespace)
    return "resumed"


def status(d: Obj) -> tuple[str, bool]:
    """kubectl rollout status for one Deployment: (message, done).

    Raises RolloutError once the Deployment exceeded its progress deadline.
    """
    name = d["metadata"]["name"]
    st = d.get("status") or {}
    spec = d.get("spec") or {}
    if int(d["metadata"].get("generation") or 0) <= int(st.get("observedGeneration") or 0):
        cond = get_condition(st, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
        want = spec.get("replicas", 1)
        updated = int(st.get("updatedReplicas") or 0)
        replicas = int(st.get("replicas") or 0)
        available = int(st.get("availableReplicas") or 0)
        if want is not None and updated < int(want):
            return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                    f'{want} new replicas have been updated...', False)
        if replicas > updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} '
                    f'old replicas are pending termination...', False)
        if available < updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {available} of '
                    f'{updated} updated replicas are available...', False)
        return f'deployment "{name}" successfully rolled out', True
    return "Waiting for deployment spec update to be observed...", False


__all__ = ["history", "undo", "restart", "pause", "resume", "status", "revision_template",
           "RolloutError", "CHANGE_CAUSE", "RESTARTED_AT"]
