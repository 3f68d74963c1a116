"""The resource table: every kind the API serves, with its REST names.

One row per resource, as kube-apiserver's discovery documents describe them:
group, version, kind, plural, singular, namespaced, short names, categories
and subresources. Everything that needs to turn `po`, `pod`, `Pod`,
`pods.v1.` or `deploy` into a resource uses `lookup()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)
    has_status: bool = True            # status is a subresource: updates keep it, status updates keep spec
    has_generation: bool = True        # generation bumps on spec changes

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        """`pods` or `deployments.apps`, as kubectl prints in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str) -> str:
        """The store key of one object."""
        if self.namespaced:
            return f"/registry/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.plural}/{name}"

    def prefix(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"/registry/{self.plural}/{namespace}/"
        return f"/registry/{self.plural}/"

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """REST path, e.g. /apis/apps/v1/namespaces/default/deployments/web/scale."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


_R = ResourceInfo
RESOURCES: list[ResourceInfo] = [
    _R("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
       subresources=("status", "finalize"), has_generation=False,
       verbs=tuple(v for v in VERBS if v != "deletecollection")),   # as kube-apiserver serves
    _R("", "v1", "Node", "nodes", "node", False, ("no",), subresources=("status", "proxy"),
       has_generation=False),
    _R("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",),
       subresources=("status", "binding", "eviction", "log", "exec", "attach", "portforward"),
       has_generation=True),
    _R("", "v1", "Service", "services", "service", True, ("svc",), ("all",),
       subresources=("status", "proxy"), has_generation=False),
    _R("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",), has_status=False,
       has_generation=False),
    _R("", "v1", "Event", "events", "event", True, ("ev",), has_status=False,
       has_generation=False),
    _R("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",),
       subresources=("token",), has_status=False, has_generation=False),
    _R("", "v1", "Secret", "secrets", "secret", True, (), has_status=False, has_generation=False),
    _R("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",), has_status=False,
       has_generation=False),
    _R("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("all",),
       subresources=("status", "scale")),
    _R("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("all",),
       subresources=("status", "scale")),
    _R("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("all",),
       subresources=("status",)),
    _R("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True, (),
       has_status=False, has_generation=False),
    _R("batch", "v1", "Job", "jobs", "job", True, (), ("all",), subresources=("status",)),
    _R("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, (), has_status=False,
       has_generation=False),
]

_BY_NAME: dict[str, ResourceInfo] = {}
_BY_KIND: dict[tuple[str, str], ResourceInfo] = {}


def _index() -> None:
    for r in RESOURCES:
        for n in (r.plural, r.singular, r.kind.lower(), *r.short_names):
            _BY_NAME.setdefault(n, r)
            _BY_NAME.setdefault(f"{n}.{r.group}" if r.group else f"{n}.", r)
            _BY_NAME.setdefault(f"{n}.{r.version}.{r.group}", r)
        _BY_KIND[(r.api_version, r.kind)] = r
        _BY_KIND.setdefault(("", r.kind), r)


_index()


def lookup(name: str) -> ResourceInfo | None:
    """Resolve what a user typed (`po`, `pods`, `Pod`, `deployments.apps`) to a resource."""
    return _BY_NAME.get(name) or _BY_NAME.get(name.lower())


def for_kind(kind: str, api_version: str = "") -> ResourceInfo | None:
    """Resolve a manifest's apiVersion + kind."""
    return _BY_KIND.get((api_version, kind)) or (None if api_version else _BY_KIND.get(("", kind)))


def by_group_version(group: str, version: str) -> list[ResourceInfo]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def groups() -> dict[str, list[str]]:
    """Group name → versions served (core group is "")."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def find(group: str, version: str, plural: str) -> ResourceInfo | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def register(info: ResourceInfo) -> None:
    """Add a resource (later issues add kinds this way)."""
    RESOURCES.append(info)
    _index()
