"""Server-side printing: `meta.k8s.io` Table and PartialObjectMetadata responses.

`kubectl get` does not know how to print a Pod or a Deployment: it asks the
server with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...` and
prints the columns the server sends (uppercased), hiding those of priority
1 unless `-o wide`. kube-apiserver always computes every column (wide
included) and lets the client choose. This module turns objects into those
Tables, using the columns and cells of `kbox.api.tables` (which kbox's own
CLI prints too), with the column names, types and formats kube-apiserver
uses in its Table documents.

It also negotiates the representation from the Accept header: a Table
(v1 or v1beta1), PartialObjectMetadata(List) (metadata-only clients), or
the plain object. Watches ask for Tables too (`kubectl get -w`): then every
event carries a one-row Table, with the column definitions in the first
event only, as kube-apiserver does to save bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kbox.api import errors
from kbox.api.tables import Column, table_for

META_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")

# kube-apiserver's column names (kubectl uppercases them): only those whose spelling is not
# simply the capitalised word of kbox.api.tables' uppercase header need listing
_SERVER_NAMES = {
    "UP-TO-DATE": "Up-to-date", "CLUSTER-IP": "Cluster-IP", "EXTERNAL-IP": "External-IP",
    "INTERNAL-IP": "Internal-IP", "OS-IMAGE": "OS-Image", "KERNEL-VERSION": "Kernel-Version",
    "CONTAINER-RUNTIME": "Container-Runtime", "PORT(S)": "Port(s)", "IP": "IP",
    "NOMINATED NODE": "Nominated Node", "READINESS GATES": "Readiness Gates",
    "NODE SELECTOR": "Node Selector", "LAST SEEN": "Last Seen", "FIRST SEEN": "First Seen",
}

# what each column shows (kube-apiserver fills these from the API's field docs)
_DESCRIPTIONS = {
    "NAME": "Name of the object, unique within its namespace (or the cluster).",
    "AGE": "Time since the object's creationTimestamp.",
    "READY": "Ready replicas or containers out of the desired number.",
    "STATUS": "The object's current state, as kubectl summarises it.",
    "RESTARTS": "Container restarts, with the time since the last one.",
    "IP": "The pod's IP address.",
    "NODE": "The node the pod is bound to (spec.nodeName).",
    "NOMINATED NODE": "The node a preempting pod is expected to run on.",
    "READINESS GATES": "Readiness gates that are true, out of those declared.",
    "ROLES": "The node-role.kubernetes.io labels of the node.",
    "VERSION": "The kubelet version the node reports.",
    "CONTAINERS": "Names of the containers in the pod template.",
    "IMAGES": "Images of the containers in the pod template.",
    "SELECTOR": "The label selector of the object.",
    "TYPE": "The type of the object.",
    "DATA": "Number of data entries.",
    "SECRETS": "Number of secrets referenced.",
    "MESSAGE": "A human-readable description of the event.",
    "REASON": "Short machine-readable reason of the event.",
    "OBJECT": "The object the event is about.",
    "COUNT": "How many times the event occurred.",
    "HOLDER": "The identity holding the lease.",
}


def server_name(header: str) -> str:
    """`NOMINATED NODE` → `Nominated Node`, `UP-TO-DATE` → `Up-to-date`: as kube-apiserver names it."""
    if header in _SERVER_NAMES:
        return _SERVER_NAMES[header]
    return " ".join(w[:1] + w[1:].lower() for w in header.split(" "))


def column_definitions(columns: list[Column]) -> list[dict[str, Any]]:
    return [{"name": server_name(n), "type": t, "format": "name" if n == "NAME" else "",
             "description": _DESCRIPTIONS.get(n, ""), "priority": p} for n, t, p in columns]


_COLUMN_CACHE: dict[str, list[dict[str, Any]]] = {}


def columns_for(plural: str) -> list[dict[str, Any]]:
    cols = _COLUMN_CACHE.get(plural)
    if cols is None:
        cols = _COLUMN_CACHE[plural] = column_definitions(table_for(plural)[0])
    return cols


# ---- content negotiation ----------------------------------------------------

@dataclass(frozen=True)
class Representation:
    """What the client asked for: as_ is "", "Table", "PartialObjectMetadata" or
    "PartialObjectMetadataList"; version is meta.k8s.io's version for the latter three."""
    as_: str = ""
    version: str = ""

    @property
    def table(self) -> bool:
        return self.as_ == "Table"

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"


PLAIN = Representation()


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        out.append((bits[0].lower(), params))
    return out


def negotiate(accept: str | None, *, item: bool) -> Representation:
    """The first media range of `accept` kbox can serve (kube-apiserver's order: the client's).

    `item` is True for a single object (PartialObjectMetadata applies), False for a list
    (PartialObjectMetadataList applies). Plain JSON when nothing special is asked; 406
    NotAcceptable when only unservable representations are."""
    if not accept:
        return PLAIN
    ranges = _media_ranges(accept)
    if not ranges:
        return PLAIN
    for mtype, params in ranges:
        if mtype not in ("application/json", "application/*", "*/*", "application/yaml"):
            continue
        as_ = params.get("as")
        if not as_:
            return PLAIN
        if params.get("g") != META_GROUP or params.get("v") not in TABLE_VERSIONS:
            continue
        if as_ == "Table":
            return Representation("Table", params["v"])
        if as_ == "PartialObjectMetadata" and item:
            return Representation(as_, params["v"])
        if as_ == "PartialObjectMetadataList" and not item:
            return Representation(as_, params["v"])
    if any(m in ("application/vnd.kubernetes.protobuf",) for m, _ in ranges):
        return PLAIN    # kbox speaks JSON only; clients that offer protobuf also take JSON
    raise errors.ApiError(406, "NotAcceptable",
                          f"only the following media types are accepted: application/json, "
                          f"application/json;as=Table;v=v1;g=meta.k8s.io, "
                          f"application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")


def include_object(query: Any) -> str:
    v = query.get("includeObject") or "Metadata"
    if v not in ("None", "Metadata", "Object"):
        raise errors.bad_request(f'unsupported includeObject value "{v}": supported values: '
                                 f'"None", "Metadata", "Object"')
    return v


# ---- building ----------------------------------------------------------------

def _partial(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": obj.get("metadata") or {}}


def rows(plural: str, objs: list[dict[str, Any]], now: float, include: str = "Metadata",
         api_version: str = "meta.k8s.io/v1") -> list[dict[str, Any]]:
    cells = table_for(plural)[1]
    out = []
    for o in objs:
        row: dict[str, Any] = {"cells": cells(o, now)}
        if include == "Object":
            row["object"] = o
        elif include == "Metadata":
            row["object"] = _partial(o, api_version)
        out.append(row)
    return out


def table(plural: str, objs: list[dict[str, Any]], now: float, *, include: str = "Metadata",
          version: str = "v1", resource_version: str = "", continue_token: str | None = None,
          remaining: int | None = None, headers: bool = True) -> dict[str, Any]:
    """A meta.k8s.io Table of `objs` (shared objects are fine: nothing is changed)."""
    api_version = f"{META_GROUP}/{version}"
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    out: dict[str, Any] = {"kind": "Table", "apiVersion": api_version, "metadata": meta}
    out["columnDefinitions"] = columns_for(plural) if headers else None
    out["rows"] = rows(plural, objs, now, include, api_version)
    if not headers:
        del out["columnDefinitions"]
    return out


def list_as(rep: Representation, plural: str, lst: dict[str, Any], now: float,
            include: str = "Metadata") -> dict[str, Any]:
    """A list response (kind XList) in the representation the client asked for."""
    meta = lst.get("metadata") or {}
    if rep.as_ == "PartialObjectMetadataList":
        out_meta = dict(meta)
        return {"kind": "PartialObjectMetadataList", "apiVersion": rep.api_version,
                "metadata": out_meta,
                "items": [_partial(o, rep.api_version) for o in lst.get("items") or []]}
    return table(plural, lst.get("items") or [], now, include=include, version=rep.version,
                 resource_version=meta.get("resourceVersion", ""),
                 continue_token=meta.get("continue"), remaining=meta.get("remainingItemCount"))


def item_as(rep: Representation, plural: str, obj: dict[str, Any], now: float,
            include: str = "Metadata") -> dict[str, Any]:
    """A single object in the representation the client asked for."""
    if rep.as_ == "PartialObjectMetadata":
        return _partial(obj, rep.api_version)
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    return table(plural, [obj], now, include=include, version=rep.version, resource_version=rv)


class WatchTables:
    """Turns watch events' objects into one-row Tables; headers in the first event only."""

    def __init__(self, rep: Representation, plural: str, include: str, clock: Any) -> None:
        self.rep = rep
        self.plural = plural
        self.include = include
        self.clock = clock
        self.sent_headers = False

    def convert(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.rep.as_ == "PartialObjectMetadata" or self.rep.as_ == "PartialObjectMetadataList":
            return _partial(obj, self.rep.api_version)
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        out = table(self.plural, [obj], self.clock.now(), include=self.include,
                    version=self.rep.version, resource_version=rv, headers=not self.sent_headers)
        self.sent_headers = True
        return out


__all__ = ["Representation", "PLAIN", "negotiate", "include_object", "table", "list_as",
           "item_as", "WatchTables", "columns_for", "server_name"]
