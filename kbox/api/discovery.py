"""Discovery documents: what kubectl reads first to learn which resources exist.

Two dialects, as kube-apiserver serves them:

- legacy: `GET /api` (APIVersions), `GET /apis` (APIGroupList), then one
  `APIResourceList` per group version (`/api/v1`, `/apis/apps/v1`, ...),
  listing resources and their subresources (`pods/log`, `deployments/scale`)
  with verbs, short names, categories and the kind they answer with;
- aggregated (`apidiscovery.k8s.io` v2, and v2beta1 for kubectl 1.26-1.29):
  `GET /api` and `GET /apis` each answer one `APIGroupDiscoveryList` holding
  every version's resources, when the Accept header asks for it. The answer's
  Content-Type says which dialect it is; kubectl falls back to legacy
  requests when it sees plain `application/json`.

Everything is derived from the resource table (`kbox.api.resources`) plus
the metrics.k8s.io group; the documents are computed once and cached as
bytes, since they only change when a resource is registered.
"""

from __future__ import annotations

from typing import Any

from kbox.api import metrics
from kbox.api.objects import dumps_kept
from kbox.api.resources import RESOURCES, ResourceInfo, groups

DISCOVERY_GROUP = "apidiscovery.k8s.io"
AGGREGATED_VERSIONS = ("v2", "v2beta1")

# subresource → (group, version, kind, verbs); group "" and kind None: the parent's
_SUB_KINDS: dict[str, tuple[str, str, str | None, list[str]]] = {
    "status": ("", "", None, ["get", "patch", "update"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    "binding": ("", "", "Binding", ["create"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "log": ("", "", "Pod", ["get"]),
    "exec": ("", "", "PodExecOptions", ["create", "get"]),
    "attach": ("", "", "PodAttachOptions", ["create", "get"]),
    "portforward": ("", "", "PodPortForwardOptions", ["create", "get"]),
    "proxy": ("", "", None, ["create", "delete", "get", "patch", "update"]),
    "finalize": ("", "", None, ["update"]),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
}
_PROXY_KINDS = {"Node": "NodeProxyOptions", "Service": "ServiceProxyOptions",
                "Pod": "PodProxyOptions"}


def verbs_of(r: ResourceInfo) -> list[str]:
    return sorted(r.verbs)


def _sub_kind(r: ResourceInfo, sub: str) -> tuple[str, str, str, list[str]]:
    group, version, kind, verbs = _SUB_KINDS.get(sub, ("", "", None, ["get"]))
    if sub == "proxy":
        kind = _PROXY_KINDS.get(r.kind, kind)
    return group, version, kind or r.kind, verbs


# ---- legacy ------------------------------------------------------------------

def _api_resource(r: ResourceInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                         "kind": r.kind, "verbs": verbs_of(r)}
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    return d


def _sub_resource(r: ResourceInfo, sub: str) -> dict[str, Any]:
    group, version, kind, verbs = _sub_kind(r, sub)
    d: dict[str, Any] = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced}
    if group:
        d["group"], d["version"] = group, version
    d["kind"], d["verbs"] = kind, verbs
    return d


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group version; None when kbox does not serve it."""
    gv = f"{group}/{version}" if group else version
    if group == metrics.GROUP and version == metrics.VERSION:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": metrics.RESOURCES}
    rs = sorted((r for r in RESOURCES if r.group == group and r.version == version),
                key=lambda r: r.plural)
    if not rs:
        return None
    out = []
    for r in rs:
        out.append(_api_resource(r))
        out += [_sub_resource(r, s) for s in sorted(r.subresources)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def group_list() -> dict[str, Any]:
    """The APIGroupList of /apis (every named group; the core group is /api's)."""
    gs = [_group(g, vs) for g, vs in groups().items() if g]
    gs.append(_group(metrics.GROUP, [metrics.VERSION]))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


# ---- aggregated --------------------------------------------------------------

def _aggregated_resource(r: ResourceInfo) -> dict[str, Any]:
    d: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": verbs_of(r),
    }
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    subs = []
    for s in sorted(r.subresources):
        group, version, kind, verbs = _sub_kind(r, s)
        subs.append({"subresource": s,
                     "responseKind": {"group": group or r.group, "version": version or r.version,
                                      "kind": kind},
                     "verbs": verbs})
    if subs:
        d["subresources"] = subs
    return d


def _metrics_resources() -> list[dict[str, Any]]:
    return [{"resource": m["name"],
             "responseKind": {"group": metrics.GROUP, "version": metrics.VERSION, "kind": m["kind"]},
             "scope": "Namespaced" if m["namespaced"] else "Cluster",
             "singularResource": "", "verbs": list(m["verbs"])} for m in metrics.RESOURCES]


def aggregated(core: bool, version: str = "v2") -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (core=True) or /apis."""
    items = []
    for g, versions in groups().items():
        if bool(g) == core:
            continue
        vs = []
        for v in versions:
            rs = sorted((r for r in RESOURCES if r.group == g and r.version == v),
                        key=lambda r: r.plural)
            vs.append({"version": v, "resources": [_aggregated_resource(r) for r in rs],
                       "freshness": "Current"})
        meta: dict[str, Any] = {"creationTimestamp": None}
        if g:
            meta["name"] = g
        items.append({"metadata": meta, "versions": vs})
    if not core:
        items.append({"metadata": {"name": metrics.GROUP, "creationTimestamp": None},
                      "versions": [{"version": metrics.VERSION, "resources": _metrics_resources(),
                                    "freshness": "Current"}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"{DISCOVERY_GROUP}/{version}",
            "metadata": {}, "items": items}


def negotiate_aggregated(accept: str | None) -> str | None:
    """The apidiscovery version the Accept header asks for first ("v2", "v2beta1"), or None
    when the client wants (or accepts first) the legacy documents."""
    for part in (accept or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        params = dict(b.partition("=")[::2] for b in bits[1:])
        params = {k.strip(): v.strip() for k, v in params.items()}
        if bits[0] not in ("application/json", "*/*", "application/*"):
            continue
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == DISCOVERY_GROUP \
                and params.get("v") in AGGREGATED_VERSIONS:
            return params["v"]
        if not params.get("as"):
            return None
    return None


def content_type(version: str) -> str:
    return f"application/json;g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"


_CACHE: dict[tuple[Any, ...], bytes] = {}


def cached(key: tuple[Any, ...], build: Any) -> bytes:
    """Documents as bytes, built once per resource table (a registration starts afresh)."""
    full = key + (len(RESOURCES),)
    data = _CACHE.get(full)
    if data is None:
        data = _CACHE[full] = dumps_kept(build())
    return data


def aggregated_bytes(core: bool, version: str) -> bytes:
    return cached(("aggregated", core, version), lambda: aggregated(core, version))


__all__ = ["resource_list", "group_list", "api_versions", "aggregated", "aggregated_bytes",
           "negotiate_aggregated", "content_type", "verbs_of"]
