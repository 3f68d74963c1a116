"""OpenAPI documents: /openapi/v2 and /openapi/v3, generated from kbox's models.

kubectl reads them for three things:

- `kubectl explain` renders a kind's fields, types and descriptions (v3 since
  kubectl 1.28, v2 before);
- client-side `kubectl apply` computes a strategic merge patch with the
  patch metadata of the schema (`x-kubernetes-patch-merge-key` and
  `x-kubernetes-patch-strategy`: containers merged by name, ports by
  containerPort, ...);
- before a write, kubectl checks whether the server validates fields
  itself: it looks for a `fieldValidation` query parameter on the PATCH
  operation of the kind's path (an operation carrying
  `x-kubernetes-group-version-kind`). If it is there, kubectl sends
  `fieldValidation=Strict` and lets the server report unknown fields;
  otherwise it validates against the schema itself.

kubectl 1.27 and 1.28 read only the v2 document and only in protobuf
(`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, falling back
to `/swagger-2.0.0.pb-v1`, protobuf as well), so v2 is served in both JSON
and the gnostic `openapi.v2.Document` protobuf encoding, written here with a
minimal protobuf wire encoder (no generated code, no protobuf dependency).

v3 is one document per group version (`/openapi/v3/api/v1`,
`/openapi/v3/apis/apps/v1`), listed by `/openapi/v3` with a content hash in
each URL, as kube-apiserver does.

The type definitions come from `kbox.api.schema` and are named as upstream
(`io.k8s.api.core.v1.Pod`, ...). Everything is generated once per process
and kept as serialized bytes: the documents do not change while kbox runs.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import yaml

from kbox.api import errors, protobuf, schema
from kbox.api.objects import dumps_kept
from kbox.api.resources import RESOURCES, ResourceInfo
from kbox.api.version import KUBERNETES_VERSION

PB_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PB_V2_ALT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
JSON = "application/json"

PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"]

PARAM_DOCS = {
    "pretty": "If 'true', then the output is pretty printed.",
    "dryRun": "When present, indicates that modifications should not be persisted. "
              "The only valid value is All.",
    "fieldManager": "A name associated with the actor or entity making these changes.",
    "fieldValidation": "How the server handles fields of the request body the object does not "
                       "have: Ignore, Warn (the default) or Strict.",
    "force": "Force is going to \"force\" Apply requests: the conflicts with other managers "
             "are overridden. Only for apply patches.",
    "labelSelector": "Restrict the list of returned objects by their labels.",
    "fieldSelector": "Restrict the list of returned objects by their fields.",
    "limit": "The maximum number of responses to return for a list call.",
    "continue": "The continue token of a previous paged list call.",
    "resourceVersion": "Which version of the resource the request is about.",
    "watch": "Watch for changes to the described resources and return them as a stream.",
    "allowWatchBookmarks": "Ask for watch events of type BOOKMARK.",
    "timeoutSeconds": "Timeout for the list/watch call.",
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "propagationPolicy": "Whether and how garbage collection is performed: Orphan, Background "
                         "or Foreground.",
    "name": "name of the object",
    "namespace": "object name and auth scope, such as for teams and projects",
}


# ---- schemas -------------------------------------------------------------------------

def _ref(name: str, v3: bool) -> str:
    return f"#/components/schemas/{name}" if v3 else f"#/definitions/{name}"


def _type_schema(t: schema.TypeRef, v3: bool) -> dict[str, Any]:
    if isinstance(t, schema.Scalar):
        d: dict[str, Any] = {"type": t.type}
        if t.format:
            d["format"] = t.format
        return d
    if isinstance(t, (schema.Ref, schema.Special)):
        return {"$ref": _ref(t.name, v3)}
    if isinstance(t, schema.Array):
        items = _type_schema(t.items, v3)
        if v3 and "$ref" in items:
            items = {"allOf": [items], "default": {}}
        return {"type": "array", "items": items}
    if isinstance(t, schema.Map):
        vals = _type_schema(t.values, v3)
        if v3 and "$ref" in vals:
            vals = {"allOf": [vals], "default": {}}
        return {"type": "object", "additionalProperties": vals}
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _field_schema(f: schema.Field, v3: bool) -> dict[str, Any]:
    d = _type_schema(f.type, v3)
    if "$ref" in d and v3 and isinstance(f.type, schema.Ref):
        d = {"allOf": [d], "default": {}}     # kube-openapi: a $ref with a default (objects)
    if f.description:
        d["description"] = f.description
    if f.list_type:
        d["x-kubernetes-list-type"] = f.list_type
    if f.list_map_keys:
        d["x-kubernetes-list-map-keys"] = list(f.list_map_keys)
    if f.patch_merge_key:
        d["x-kubernetes-patch-merge-key"] = f.patch_merge_key
    if f.patch_strategy:
        d["x-kubernetes-patch-strategy"] = f.patch_strategy
    return dict(sorted(d.items()))


def _gvk(g: str, v: str, k: str) -> dict[str, str]:
    return {"group": g, "kind": k, "version": v}


def definition(ot: schema.ObjectType, v3: bool) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if ot.description:
        d["description"] = ot.description
    d["type"] = "object"
    d["properties"] = {n: _field_schema(f, v3) for n, f in sorted(ot.fields.items())}
    if ot.required:
        d["required"] = list(ot.required)
    if ot.gvk:
        d["x-kubernetes-group-version-kind"] = [_gvk(*ot.gvk)]
    return d


def _special_defs() -> dict[str, dict[str, Any]]:
    return {n: dict(s) for n, s in schema.SPECIALS.items()}


def _special_v3(name: str) -> dict[str, Any]:
    """v3 spells the two-typed leaves with oneOf and no `type` (kubectl explain then names
    them by their reference: <IntOrString>, <Quantity>)."""
    d = dict(schema.SPECIALS[name])
    if name == schema.INT_OR_STRING:
        del d["type"]
        d["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    elif name == schema.QUANTITY:
        del d["type"]
        d["oneOf"] = [{"type": "string"}, {"type": "number"}]
    return d


def _patch_def(v3: bool) -> dict[str, Any]:
    return {"description": "A patch: a JSON patch, a merge patch, a strategic merge patch or an "
                           "apply configuration, as the Content-Type says.", "type": "object"}


def _reachable(roots: list[str], s: schema.Schema) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        ot = s.types.get(n)
        if ot is None:
            continue
        for f in ot.fields.values():
            t = f.type
            while isinstance(t, (schema.Array, schema.Map)):
                t = t.items if isinstance(t, schema.Array) else t.values
            if isinstance(t, (schema.Ref, schema.Special)):
                todo.append(t.name)
    return seen


# ---- paths -----------------------------------------------------------------------------

def _op_id(verb: str, r: ResourceInfo, namespaced_path: bool, collection: bool) -> str:
    g = "".join(p.capitalize() for p in (r.group.split(".")[0] if r.group else "core").split("-"))
    kind = r.kind + ("List" if collection and verb == "list" else "")
    ns = "Namespaced" if namespaced_path else ""
    suffix = "Collection" if verb == "deletecollection" else ""
    v = {"deletecollection": "delete"}.get(verb, verb)
    return f"{v}{g}{r.version.capitalize()}{suffix}{ns}{kind}"


def _param_v2(name: str, where: str = "query", typ: str = "string",
              required: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"description": PARAM_DOCS.get(name, ""), "in": where, "name": name,
                         "type": typ}
    if required:
        d["required"] = True
    if where == "query":
        d["uniqueItems"] = True
    return d


def _param_v3(name: str, where: str = "query", typ: str = "string",
              required: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "in": where, "description": PARAM_DOCS.get(name, ""),
                         "schema": {"type": typ, "uniqueItems": True}}
    if required:
        d["required"] = True
    return d


_WRITE_PARAMS = [("dryRun", "string"), ("fieldManager", "string"), ("fieldValidation", "string")]
_LIST_PARAMS = [("allowWatchBookmarks", "boolean"), ("continue", "string"),
                ("fieldSelector", "string"), ("labelSelector", "string"), ("limit", "integer"),
                ("resourceVersion", "string"), ("timeoutSeconds", "integer"),
                ("watch", "boolean")]
_DELETE_PARAMS = [("dryRun", "string"), ("gracePeriodSeconds", "integer"),
                  ("propagationPolicy", "string")]


def _operations(r: ResourceInfo, v3: bool) -> dict[str, dict[str, Any]]:
    """path → path item for one resource (collection and item paths)."""
    root = schema.build()
    tname = root.kinds.get((r.group, r.version, r.kind))
    base = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
    param = _param_v3 if v3 else _param_v2
    tag = f"{(r.group.split('.')[0] if r.group else 'core')}_{r.version}"
    gvk = _gvk(r.group, r.version, r.kind)
    json_types = [JSON, "application/yaml"]

    def op(verb: str, action: str, params: list[tuple[str, str]], collection: bool,
           body: str | None = None, code: str = "200") -> dict[str, Any]:
        o: dict[str, Any] = {"description": f"{action} {r.kind}",
                             "operationId": _op_id(verb, r, r.namespaced, collection),
                             "tags": [tag]}
        ps = [param(n, typ=t) for n, t in params]
        if v3:
            if body:
                ctypes = PATCH_TYPES if body == "patch" else json_types
                ref = _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch" if body == "patch"
                           else (tname or ""), True)
                o["requestBody"] = {"content": {c: {"schema": {"$ref": ref}} for c in ctypes},
                                    "required": True}
            o["parameters"] = ps
            if tname:
                o["responses"] = {code: {"description": "OK", "content": {
                    JSON: {"schema": {"$ref": _ref(tname, True)}}}}}
            else:
                o["responses"] = {code: {"description": "OK"}}
        else:
            if body:
                ref = _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch" if body == "patch"
                           else (tname or ""), False)
                ps = [{"in": "body", "name": "body", "required": True,
                       "schema": {"$ref": ref}}] + ps
                o["consumes"] = PATCH_TYPES if body == "patch" else ["*/*"]
            o["parameters"] = ps
            o["produces"] = json_types
            o["schemes"] = ["https"]
            o["responses"] = {code: {"description": "OK", **(
                {"schema": {"$ref": _ref(tname, False)}} if tname else {})}}
        o["x-kubernetes-action"] = action
        o["x-kubernetes-group-version-kind"] = gvk
        return o

    out: dict[str, dict[str, Any]] = {}
    for namespaced in ((True, False) if r.namespaced else (False,)):
        prefix = f"{base}/namespaces/{{namespace}}" if namespaced else base
        common = [param("pretty")]
        if namespaced:
            common = [param("namespace", "path", required=True)] + common
        coll: dict[str, Any] = {}
        if namespaced or not r.namespaced:
            if "list" in r.verbs:
                coll["get"] = op("list", "list", _LIST_PARAMS, True)
            if "create" in r.verbs:
                coll["post"] = op("create", "post", _WRITE_PARAMS, True, body="object", code="201")
            if "deletecollection" in r.verbs:
                coll["delete"] = op("deletecollection", "deletecollection",
                                    _DELETE_PARAMS + _LIST_PARAMS[:-1], True)
        else:    # /api/v1/pods: the all-namespaces list
            coll["get"] = op("list", "list", _LIST_PARAMS, True)
            coll["get"]["operationId"] = _op_id("list", r, False, True) + "ForAllNamespaces"
        coll["parameters"] = common
        out[f"{prefix}/{r.plural}"] = coll
        if not namespaced and r.namespaced:
            continue
        item: dict[str, Any] = {}
        if "get" in r.verbs:
            item["get"] = op("get", "get", [], False)
        if "update" in r.verbs:
            item["put"] = op("update", "put", _WRITE_PARAMS, False, body="object")
        if "patch" in r.verbs:
            item["patch"] = op("patch", "patch", _WRITE_PARAMS + [("force", "boolean")], False,
                               body="patch")
        if "delete" in r.verbs:
            item["delete"] = op("delete", "delete", _DELETE_PARAMS, False)
        item["parameters"] = [param("name", "path", required=True)] + common
        out[f"{prefix}/{r.plural}/{{name}}"] = item
    return out


# ---- documents ---------------------------------------------------------------------------

def v2_document() -> dict[str, Any]:
    s = schema.build()
    defs: dict[str, Any] = {n: definition(ot, False) for n, ot in sorted(s.types.items())}
    defs.update(_special_defs())
    defs["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = _patch_def(False)
    paths: dict[str, Any] = {}
    for r in sorted(RESOURCES, key=lambda r: (r.group, r.plural)):
        paths.update(_operations(r, False))
    return {"swagger": "2.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": dict(sorted(paths.items())),
            "definitions": dict(sorted(defs.items()))}


def group_versions() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in RESOURCES:
        if (r.group, r.version) not in out:
            out.append((r.group, r.version))
    return out


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_document(group: str, version: str) -> dict[str, Any] | None:
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rs:
        return None
    s = schema.build()
    roots = [s.kinds[(r.group, r.version, r.kind)] for r in rs
             if (r.group, r.version, r.kind) in s.kinds]
    names = _reachable(roots, s)
    schemas: dict[str, Any] = {}
    for n in sorted(names):
        if n in s.types:
            schemas[n] = definition(s.types[n], True)
        elif n in schema.SPECIALS:
            schemas[n] = _special_v3(n)
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = _patch_def(True)
    paths: dict[str, Any] = {}
    for r in sorted(rs, key=lambda r: r.plural):
        paths.update(_operations(r, True))
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted(schemas.items()))}}


# ---- protobuf (gnostic openapi.v2.Document) ------------------------------------------------
# Field numbers of github.com/google/gnostic's OpenAPIv2.proto; only what kbox's document uses.

_varint = protobuf.encode_varint
_ld = protobuf.encode_bytes_field          # a length-delimited field (string, bytes, message)


def _str(field: int, s: str) -> bytes:
    return _ld(field, s.encode()) if s else b""


def _bool(field: int, b: bool) -> bytes:
    return _varint(field << 3) + b"\x01" if b else b""


def _any_yaml(value: Any) -> bytes:
    """gnostic Any{yaml=2}."""
    return _str(2, yaml.safe_dump(value, default_flow_style=False, sort_keys=True))


def _named_any(field: int, name: str, value: Any) -> bytes:
    return _ld(field, _str(1, name) + _ld(2, _any_yaml(value)))


def _vendor(field: int, d: dict[str, Any]) -> bytes:
    return b"".join(_named_any(field, k, v) for k, v in d.items() if k.startswith("x-"))


def _pb_schema(d: dict[str, Any]) -> bytes:
    out = bytearray()
    out += _str(1, d.get("$ref", ""))
    out += _str(2, d.get("format", ""))
    out += _str(4, d.get("description", ""))
    if "default" in d:
        out += _ld(5, _any_yaml(d["default"]))
    for r in d.get("required", []):
        out += _str(19, r)
    ap = d.get("additionalProperties")
    if isinstance(ap, dict):
        out += _ld(21, _ld(1, _pb_schema(ap)))
    elif isinstance(ap, bool):
        out += _ld(21, _bool(2, ap))
    if "type" in d:
        types_ = d["type"] if isinstance(d["type"], list) else [d["type"]]
        out += _ld(22, b"".join(_str(1, t) for t in types_))
    if "items" in d:
        out += _ld(23, _ld(1, _pb_schema(d["items"])))
    for sub in d.get("allOf", []):
        out += _ld(24, _pb_schema(sub))
    if "properties" in d:
        props = b"".join(_ld(1, _str(1, k) + _ld(2, _pb_schema(v)))
                         for k, v in d["properties"].items())
        out += _ld(25, props)
    out += _vendor(31, d)
    return bytes(out)


def _pb_param(p: dict[str, Any]) -> bytes:
    if p.get("in") == "body":
        body = (_str(2, p["name"]) + _str(3, "body") + _bool(4, bool(p.get("required")))
                + _ld(5, _pb_schema(p.get("schema") or {})))
        param = _ld(1, body)                       # Parameter.body_parameter
    else:
        where = p.get("in", "query")
        if where == "path":     # PathParameterSubSchema: required=1 in=2 description=3 name=4 type=5
            sub = (_bool(1, bool(p.get("required"))) + _str(2, where) + _str(3, p.get("description", ""))
                   + _str(4, p["name"]) + _str(5, p.get("type", "")) + _bool(19, bool(p.get("uniqueItems"))))
            nb = _ld(4, sub)
        else:                   # QueryParameterSubSchema: ... name=4 type=6 unique_items=20
            sub = (_bool(1, bool(p.get("required"))) + _str(2, where) + _str(3, p.get("description", ""))
                   + _str(4, p["name"]) + _str(6, p.get("type", "")) + _bool(20, bool(p.get("uniqueItems"))))
            nb = _ld(3, sub)
        param = _ld(2, nb)                         # Parameter.non_body_parameter
    return _ld(1, param)                           # ParametersItem.parameter


def _pb_operation(o: dict[str, Any]) -> bytes:
    out = bytearray()
    for t in o.get("tags", []):
        out += _str(1, t)
    out += _str(3, o.get("description", ""))
    out += _str(5, o.get("operationId", ""))
    for c in o.get("produces", []):
        out += _str(6, c)
    for c in o.get("consumes", []):
        out += _str(7, c)
    for p in o.get("parameters", []):
        out += _ld(8, _pb_param(p))
    responses = bytearray()
    for code, resp in o.get("responses", {}).items():
        r = _str(1, resp.get("description", ""))
        if "schema" in resp:
            r += _ld(2, _ld(1, _pb_schema(resp["schema"])))     # SchemaItem.schema
        responses += _ld(1, _str(1, code) + _ld(2, _ld(1, r)))  # NamedResponseValue{ResponseValue.response}
    out += _ld(9, bytes(responses))
    for s in o.get("schemes", []):
        out += _str(10, s)
    out += _vendor(13, o)
    return bytes(out)


_PB_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _pb_path_item(item: dict[str, Any]) -> bytes:
    out = bytearray()
    for m, num in _PB_METHODS.items():
        if m in item:
            out += _ld(num, _pb_operation(item[m]))
    for p in item.get("parameters", []):
        out += _ld(9, _pb_param(p))
    return bytes(out)


def v2_protobuf(doc: dict[str, Any]) -> bytes:
    """The v2 document as a serialized gnostic openapi.v2.Document."""
    out = bytearray()
    out += _str(1, doc["swagger"])
    info = doc.get("info") or {}
    out += _ld(2, _str(1, info.get("title", "")) + _str(2, info.get("version", "")))
    paths = b"".join(_ld(2, _str(1, p) + _ld(2, _pb_path_item(item)))
                     for p, item in doc.get("paths", {}).items())
    out += _ld(8, paths)
    defs = b"".join(_ld(1, _str(1, n) + _ld(2, _pb_schema(d)))
                    for n, d in doc.get("definitions", {}).items())
    out += _ld(9, defs)
    return bytes(out)


# ---- serving ----------------------------------------------------------------------------------

class _Docs:
    """The serialized documents, built on first demand (thread-safe, once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: int | None = None
        self.v2_json = b""
        self.v2_pb = b""
        self.v2_etag = ""
        self.v3: dict[str, tuple[bytes, str]] = {}      # "api/v1" → (bytes, hash)
        self.v3_root = b""

    def ensure(self) -> "_Docs":
        key = len(RESOURCES)
        if self._key == key:
            return self
        with self._lock:
            if self._key == key:
                return self
            doc = v2_document()
            self.v2_json = dumps_kept(doc)
            self.v2_pb = v2_protobuf(doc)
            self.v2_etag = hashlib.sha512(self.v2_json).hexdigest()[:32].upper()
            v3: dict[str, tuple[bytes, str]] = {}
            for g, v in group_versions():
                d = v3_document(g, v)
                if d is None:
                    continue
                data = dumps_kept(d)
                v3[gv_path(g, v)] = (data, hashlib.sha512(data).hexdigest()[:128].upper())
            self.v3 = v3
            self.v3_root = dumps_kept({"paths": {
                p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, (_, h) in v3.items()}})
            self._key = key
        return self


DOCS = _Docs()


def _accepts(accept: str | None, mtype: str) -> bool:
    for part in (accept or "").split(","):
        m = part.split(";")[0].strip().lower()
        if m == mtype.lower():
            return True
    return False


def respond(parts: list[str], accept: str | None, query: Any) -> tuple[bytes, str, dict[str, str]]:
    """(body, content type, headers) of GET /openapi/<parts...>; 404/406 as ApiError.

    v2 answers protobuf when the client lists the gnostic protobuf type (kubectl
    1.27/1.28 ask for nothing else), JSON otherwise."""
    docs = DOCS.ensure()
    if parts == ["v2"] or parts == ["swagger-2.0.0.pb-v1"]:
        headers = {"ETag": f'"{docs.v2_etag}"', "Vary": "Accept"}
        if _accepts(accept, PB_V2) or _accepts(accept, PB_V2_ALT) or parts[0].endswith("pb-v1"):
            return docs.v2_pb, PB_V2_ALT, headers    # Go's mime parser refuses the "@" form
        return docs.v2_json, JSON, headers
    if parts == ["v3"]:
        return docs.v3_root, JSON, {}
    if parts[:1] == ["v3"] and len(parts) > 1:
        key = "/".join(parts[1:])
        got = docs.v3.get(key)
        if got is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        data, h = got
        headers = {"ETag": f'"{h}"'}
        if query.get("hash") == h:
            headers["Cache-Control"] = "public, immutable"
        else:
            headers["Cache-Control"] = "no-cache, private"
        return data, JSON, headers
    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")


__all__ = ["v2_document", "v3_document", "v2_protobuf", "respond", "DOCS", "group_versions"]
