"""Admission plugins: the mutations kube-apiserver makes to objects on their
way in, after defaulting and before validation.

- DefaultTolerationSeconds: every new pod tolerates the not-ready and
  unreachable taints for a while (300 s in Kubernetes, configurable here
  through `timings.defaultTolerationSeconds`), so a briefly lost node does
  not evict its pods at once.
- ServiceAccount: a pod with no service account runs as `default`
  (`spec.serviceAccount` mirrors `spec.serviceAccountName`). Unlike
  Kubernetes this never rejects a pod whose account does not exist yet: the
  ServiceAccount controller creates `default` moments after a namespace, and
  refusing pods in that window only makes demos flaky.
- NamespaceProtection: `default`, `kube-system` and `kube-public` may not
  be deleted (403 Forbidden), as the NamespaceLifecycle plugin refuses.
- EventDefaults: events written with only the new-style fields get the
  old-style ones kubectl prints (source, firstTimestamp, count), and the
  reverse.

`default_admission(config, clock)` returns them in kube-apiserver's order;
`Cluster` appends them to `ApiServer.admission`.
"""

from __future__ import annotations

from typing import Any

from kbox.api import errors
from kbox.api.objects import Obj
from kbox.api.resources import ResourceInfo
from kbox.api.server import Admission
from kbox.clock import Clock, iso_time

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _tolerates(tolerations: list[dict[str, Any]], key: str) -> bool:
    """Does some toleration already cover the NoExecute taint `key`?"""
    for t in tolerations:
        if not isinstance(t, dict):
            continue
        if t.get("effect") not in (None, "", "NoExecute"):
            continue
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == key:
            return True
    return False


class DefaultTolerationSeconds:
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __call__(self, op: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        if op != "CREATE" or info.plural != "pods":
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        tolerations = spec.get("tolerations")
        if tolerations is None:
            tolerations = []
        if not isinstance(tolerations, list):
            return
        added = [{"key": key, "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": self.seconds}
                 for key in (NOT_READY, UNREACHABLE) if not _tolerates(tolerations, key)]
        if added:
            spec["tolerations"] = tolerations + added


class ServiceAccountAdmission:
    def __call__(self, op: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        if op != "CREATE" or info.plural != "pods":
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name


PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


class NamespaceProtection:
    """The namespaces the cluster itself relies on cannot be deleted."""

    def __call__(self, op: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        if op != "DELETE" or info.plural != "namespaces":
            return
        name = (obj.get("metadata") or {}).get("name", "")
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                name, "namespaces")


class EventDefaults:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, op: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        if op != "CREATE" or info.plural != "events":
            return
        if not obj.get("source") and obj.get("reportingComponent"):
            src: dict[str, Any] = {"component": obj["reportingComponent"]}
            if obj.get("reportingInstance"):
                src["host"] = obj["reportingInstance"]
            obj["source"] = src
        if not obj.get("reportingComponent") and isinstance(obj.get("source"), dict) \
                and obj["source"].get("component"):
            obj["reportingComponent"] = obj["source"]["component"]
            obj.setdefault("reportingInstance", obj["source"].get("host", ""))
        if not obj.get("firstTimestamp") and not obj.get("eventTime"):
            now = iso_time(self.clock.now())
            obj["firstTimestamp"] = now
            obj.setdefault("lastTimestamp", now)
        if obj.get("firstTimestamp"):
            obj.setdefault("count", 1)
        obj.setdefault("type", "Normal")


def default_admission(config: Any, clock: Clock) -> list[Admission]:
    """The admission chain for a cluster built from `config` (a ClusterConfig)."""
    timings = getattr(config, "timings", None)
    seconds = int(getattr(timings, "default_toleration_seconds", 300))
    return [NamespaceProtection(), ServiceAccountAdmission(), DefaultTolerationSeconds(seconds),
            EventDefaults(clock)]


__all__ = ["default_admission", "DefaultTolerationSeconds", "ServiceAccountAdmission",
           "EventDefaults", "NamespaceProtection", "PROTECTED_NAMESPACES", "NOT_READY", "UNREACHABLE"]
