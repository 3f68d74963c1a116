"""Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic
merge patch, and server-side apply with managed fields.

kubectl and controllers change objects with these four PATCH flavours, so
kbox must merge exactly as kube-apiserver does:

- "json": a list of operations on JSON pointers; any failure (including a
  failed `test`) rejects the whole patch.
- "merge": maps merge recursively, null deletes, lists are replaced.
- "strategic": like merge, but lists that Kubernetes declares mergeable
  (containers by name, ports by containerPort, ...) are merged item by item
  by their merge key, and the `$patch`, `$retainKeys`,
  `$deleteFromPrimitiveList/` and `$setElementOrder/` directives apply.
  The merge keys come from a small schema of the built-in types below
  (Kubernetes reads them from the Go struct tags).
- "apply": server-side apply. The applied configuration is merged with
  strategic semantics, each manager's fields are tracked in
  `metadata.managedFields` (FieldsV1), fields a manager stops applying are
  removed when nobody else owns them, and changing a field another manager
  owns is a 409 conflict unless forced.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from kbox.api import errors
from kbox.api.objects import deep_copy
from kbox.clock import iso_time


class PatchError(Exception):
    """A patch that cannot be applied. `invalid` → 422 Invalid, else 400 BadRequest."""

    def __init__(self, message: str, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


# ---- schema: patch strategies and merge keys of the built-in types ----------
# A schema node is a dict: field name → FieldSpec. FieldSpec = (strategy, merge_key, child)
# where strategy is "merge", "replace" or "retainKeys" (a map that honours
# $retainKeys), merge_key names the key of a list of maps (None for a list of
# primitives merged as a set), child is the schema of the value / of list items.

Schema = dict[str, tuple[str, "str | None", "Schema | None"]]

_CONTAINER: Schema = {
    "ports": ("merge", "containerPort", None),
    "env": ("merge", "name", None),
    "volumeMounts": ("merge", "mountPath", None),
    "volumeDevices": ("merge", "devicePath", None),
}
_POD_SPEC: Schema = {
    "containers": ("merge", "name", _CONTAINER),
    "initContainers": ("merge", "name", _CONTAINER),
    "ephemeralContainers": ("merge", "name", _CONTAINER),
    "volumes": ("merge", "name", None),          # merge,retainKeys: honoured through $retainKeys
    "imagePullSecrets": ("merge", "name", None),
    "hostAliases": ("merge", "ip", None),
    "topologySpreadConstraints": ("merge", "topologyKey", None),
    # tolerations, readinessGates, ... have no strategy: replaced whole
}
_META: Schema = {
    "ownerReferences": ("merge", "uid", None),
    "finalizers": ("merge", None, None),
}
_CONDITIONS = ("merge", "type", None)
_TEMPLATE: Schema = {"metadata": ("map", None, _META), "spec": ("map", None, _POD_SPEC)}
_WORKLOAD_SPEC: Schema = {"template": ("map", None, _TEMPLATE), "strategy": ("retainKeys", None, None)}
_STATUS_CONDITIONS: Schema = {"conditions": _CONDITIONS}

_KIND_SCHEMAS: dict[str, Schema] = {
    "Pod": {"spec": ("map", None, _POD_SPEC),
            "status": ("map", None, {"conditions": _CONDITIONS, "podIPs": ("merge", "ip", None)})},
    "PodTemplate": {"template": ("map", None, _TEMPLATE)},
    "Deployment": {"spec": ("map", None, _WORKLOAD_SPEC), "status": ("map", None, _STATUS_CONDITIONS)},
    "ReplicaSet": {"spec": ("map", None, _WORKLOAD_SPEC), "status": ("map", None, _STATUS_CONDITIONS)},
    "DaemonSet": {"spec": ("map", None, _WORKLOAD_SPEC), "status": ("map", None, _STATUS_CONDITIONS)},
    "StatefulSet": {"spec": ("map", None, _WORKLOAD_SPEC), "status": ("map", None, _STATUS_CONDITIONS)},
    "Job": {"spec": ("map", None, _WORKLOAD_SPEC), "status": ("map", None, _STATUS_CONDITIONS)},
    "CronJob": {"spec": ("map", None, {"jobTemplate": ("map", None, {
        "spec": ("map", None, _WORKLOAD_SPEC)})})},
    "Service": {"spec": ("map", None, {"ports": ("merge", "port", None)}),
                "status": ("map", None, _STATUS_CONDITIONS)},
    "Node": {"spec": ("map", None, {"podCIDRs": ("merge", None, None)}),
             "status": ("map", None, {"conditions": _CONDITIONS,
                                      "addresses": ("merge", "type", None)})},
    "Namespace": {"status": ("map", None, _STATUS_CONDITIONS)},
}


def schema_for(info: Any) -> Schema:
    """The schema of a resource's objects (info may be None: metadata only)."""
    kind = getattr(info, "kind", None) or ""
    base: Schema = {"metadata": ("map", None, _META)}
    extra = _KIND_SCHEMAS.get(kind)
    if extra is None:
        extra = {"status": ("map", None, _STATUS_CONDITIONS)}
    base.update(extra)
    return base


def _child(schema: Schema | None, field: str) -> tuple[str, str | None, Schema | None]:
    if schema and field in schema:
        return schema[field]
    return ("replace", None, None)


# ---- JSON merge patch (RFC 7386) --------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        # scalars are immutable: only containers need a private copy
        return deep_copy(patch) if isinstance(patch, list) else patch
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- JSON patch (RFC 6902) ---------------------------------------------------

def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"invalid JSON pointer {path!r}: must be a string")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}": must start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list, token: str, path: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f'invalid array index "{token}" in path "{path}"', invalid=True)
    i = int(token)
    limit = len(container) if for_add else len(container) - 1
    if i > limit:
        raise PatchError(f'array index {i} out of bounds in path "{path}"', invalid=True)
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f'path "{path}" does not exist: missing "{t}"', invalid=True)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, path, for_add=False)]
        else:
            raise PatchError(f'path "{path}" does not exist: "{t}" is not in an object or array',
                             invalid=True)
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'path "{path}" does not exist', invalid=True)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_add=False)]
    raise PatchError(f'path "{path}" does not exist', invalid=True)


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchError(f'cannot add at "{path}": the parent is not an object or array',
                         invalid=True)
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document", invalid=True)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'unable to remove nonexistent key "{last}": path "{path}" does not exist',
                             invalid=True)
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, for_add=False))
    raise PatchError(f'path "{path}" does not exist', invalid=True)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = deep_copy(doc)
    for n, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"json patch operation {n} is not an object")
        kind = op.get("op")
        path = op.get("path")
        if "path" not in op:
            raise PatchError(f'json patch operation {n} ({kind}) is missing "path"')
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f'json patch operation {n} ({kind}) is missing "value"')
        if kind in ("move", "copy") and "from" not in op:
            raise PatchError(f'json patch operation {n} ({kind}) is missing "from"')
        if kind == "add":
            doc = _add(doc, path, deep_copy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            tokens = _pointer(path)
            if not tokens:
                doc = deep_copy(op["value"])
            else:
                parent = _parent(doc, tokens, path)
                if isinstance(parent, list):
                    parent[_index(parent, tokens[-1], path, for_add=False)] = deep_copy(op["value"])
                else:
                    parent[tokens[-1]] = deep_copy(op["value"])
        elif kind == "move":
            src = op["from"]
            if path != src and path.startswith(src + "/"):
                raise PatchError(f'cannot move "{src}" into its own child "{path}"', invalid=True)
            doc, value = _remove(doc, src)
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, deep_copy(_get(doc, op["from"])))
        elif kind == "test":
            actual = _get(doc, path)
            if not _json_equal(actual, op["value"]):
                raise PatchError(f'testing value {path} failed: have {json.dumps(actual)}, '
                                 f'want {json.dumps(op["value"])}', invalid=True)
        else:
            raise PatchError(f'json patch operation {n} has unknown op {kind!r} (want add, '
                             f'remove, replace, move, copy or test)')
    return doc


# ---- strategic merge patch ---------------------------------------------------

_DELETE = object()   # a map patch that said $patch: delete


def _strip_directives(value: Any) -> Any:
    """A patch value used as a plain value (no original to merge with)."""
    if isinstance(value, dict):
        if value.get("$patch") == "delete":
            return _DELETE
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [x for x in (_strip_directives(v) for v in value
                            if not (isinstance(v, dict) and v.get("$patch") in ("replace", "delete")
                                    and len(v) == 1))
                if x is not _DELETE]
    return value


def strategic_merge(original: Any, patch: Any, schema: Schema | None) -> Any:
    """Merge `patch` into `original` (neither is changed); returns the result."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    out = _merge_map(original if isinstance(original, dict) else {}, patch, schema)
    return {} if out is _DELETE else out


def _merge_map(orig: dict, patch: dict, schema: Schema | None) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch directive $patch: {directive!r} (want replace, delete or merge)")
    out = dict(orig)
    orders: dict[str, list] = {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if not isinstance(v, list):
                raise PatchError(f"{k}: must be a list")
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in v]
        elif k.startswith("$setElementOrder/"):
            if not isinstance(v, list):
                raise PatchError(f"{k}: must be a list")
            orders[k.split("/", 1)[1]] = v
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
            continue
        strategy, key, child = _child(schema, k)
        cur = out.get(k)
        if isinstance(v, dict):
            merged = _merge_map(cur if isinstance(cur, dict) else {}, v, child)
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _merge_list(cur if isinstance(cur, list) else [], v, strategy, key, child, k)
        else:
            out[k] = v
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _order(out[field], order, _child(schema, field)[1])
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("$retainKeys: must be a list of field names")
        for k in [k for k in patch if not k.startswith("$") and patch[k] is not None]:
            if k not in retain:
                raise PatchError(f"$retainKeys does not include {k!r}, which the patch sets", invalid=True)
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(orig: list, patch: list, strategy: str, key: str | None,
                child: Schema | None, field: str) -> list:
    # a {"$patch": "replace"} element replaces the whole list with the others
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return _strip_directives([x for x in patch
                                  if not (isinstance(x, dict) and x.get("$patch") == "replace")])
    if strategy != "merge":
        return _strip_directives(patch)
    if key is None:   # a set of primitives
        out = list(orig)
        for x in patch:
            if isinstance(x, (dict, list)):
                raise PatchError(f"{field}: a list of primitives cannot hold objects")
            if x not in out:
                out.append(x)
        return out
    out = [deep_copy(x) for x in orig]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{field}: list items must be objects with the merge key {key!r}")
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            new = _merge_map({}, item, child)
            if new is not _DELETE:
                out.append(new)
        else:
            new = _merge_map(out[idx], item, child)
            if new is _DELETE:
                out.pop(idx)
            else:
                out[idx] = new
    return out


def _order(items: list, order: list, key: str | None) -> list:
    """$setElementOrder: listed items first in the given order, the rest after, as they were."""
    def ident(x: Any) -> Any:
        if key is not None and isinstance(x, dict):
            return json.dumps(x.get(key), sort_keys=True)
        return json.dumps(x, sort_keys=True)
    rank = {}
    for i, o in enumerate(order):
        rank.setdefault(ident(o), i)
    indexed = list(enumerate(items))
    indexed.sort(key=lambda p: (rank.get(ident(p[1]), len(order)), p[0]))
    return [x for _, x in indexed]


# ---- entry point for PATCH ------------------------------------------------

def apply(info: Any, obj: dict, patch: Any, patch_type: str) -> dict:
    """Apply a json / merge / strategic patch to `obj` (not changed); returns the result."""
    if patch_type == "json":
        out = json_patch(obj, patch)
        if not isinstance(out, dict):
            raise PatchError("the patched object must be a JSON object", invalid=True)
        return out
    if patch_type == "merge":
        if not isinstance(patch, dict):
            raise PatchError("merge patch must be a JSON object")
        return merge_patch(obj, patch)
    if patch_type == "strategic":
        return strategic_merge(obj, patch, schema_for(info))
    raise PatchError(f"unsupported patch type {patch_type!r} (want json, merge, strategic or apply)")


# ---- managed fields (FieldsV1) ---------------------------------------------------
# A field path is a tuple of FieldsV1 elements: "f:spec", 'k:{"name":"web"}', 'v:"x"'.

Path = tuple[str, ...]

# what managedFields never track: identity and server-owned metadata
_IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation",
                 "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "managedFields", "selfLink"}


def _key_element(item: dict, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"))


def field_set(obj: dict, schema: Schema | None, *, status: bool | None = False) -> set[Path]:
    """The fields an object sets. status=False: skip status, True: only status, None: both."""
    out: set[Path] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if status is False and k == "status" or status is True and k not in ("status",):
            continue
        if k == "metadata" and isinstance(v, dict):
            v = {mk: mv for mk, mv in v.items() if mk not in _IGNORED_META}
            if not v:
                continue
        _fields(v, ("f:" + k,), _child(schema, k), out)
    return out


def _fields(value: Any, path: Path, spec: tuple, out: set[Path]) -> None:
    strategy, key, child = spec
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _fields(v, path + ("f:" + k,), _child(child, k), out)
    elif isinstance(value, list) and strategy == "merge":
        out.add(path) if not value else None
        for item in value:
            if key is None:
                out.add(path + ("v:" + json.dumps(item, separators=(",", ":")),))
            elif isinstance(item, dict):
                ipath = path + (_key_element(item, key),)
                out.add(ipath)
                for k, v in item.items():
                    _fields(v, ipath + ("f:" + k,), _child(child, k), out)
    else:
        out.add(path)


def fields_to_v1(paths: Iterable[Path]) -> dict:
    tree: dict = {}
    for p in sorted(paths, key=len):
        node = tree
        for el in p:
            node = node.setdefault(el, {})
    members = set(paths)

    def finish(node: dict, path: Path) -> dict:
        out: dict = {}
        if path in members and node:
            out["."] = {}
        for k in sorted(node):
            out[k] = finish(node[k], path + (k,))
        return out
    return finish(tree, ())


def fields_from_v1(tree: Any, path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for k, sub in tree.items():
        if k == ".":
            out.add(path)
            continue
        p = path + (k,)
        if not sub:
            out.add(p)
        else:
            out |= fields_from_v1(sub, p)
    return out


_MISSING = object()


def _step(cur: Any, el: str) -> Any:
    tag, _, rest = el.partition(":")
    if tag == "f":
        return cur.get(rest, _MISSING) if isinstance(cur, dict) else _MISSING
    if not isinstance(cur, list):
        return _MISSING
    want = json.loads(rest)
    if tag == "v":
        return want if want in cur else _MISSING
    for item in cur:
        if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
            return item
    return _MISSING


def value_at(obj: Any, path: Path) -> Any:
    cur = obj
    for el in path:
        cur = _step(cur, el)
        if cur is _MISSING:
            return _MISSING
    return cur


def _remove_path(obj: Any, path: Path) -> None:
    parent = value_at(obj, path[:-1])
    if parent is _MISSING:
        return
    tag, _, rest = path[-1].partition(":")
    if tag == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif isinstance(parent, list):
        target = _step(parent, path[-1])
        if target is not _MISSING:
            for i, x in enumerate(parent):
                if x is target or (tag == "v" and x == target):
                    parent.pop(i)
                    break


def path_string(path: Path) -> str:
    """Kubernetes' printed form: .spec.containers[name="web"].image, .metadata.finalizers[="x"]."""
    out = ""
    for el in path:
        tag, _, rest = el.partition(":")
        if tag == "f":
            out += "." + rest
        elif tag == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        else:
            out += f"[={rest}]"
    return out


def _entries(obj: dict) -> list[dict]:
    return [dict(e) for e in (obj.get("metadata") or {}).get("managedFields") or []]


def _entry(manager: str, operation: str, api_version: str, clock: Any, fields: set[Path],
           subresource: str | None) -> dict:
    e = {"manager": manager, "operation": operation, "apiVersion": api_version,
         "time": iso_time(clock.now()), "fieldsType": "FieldsV1", "fieldsV1": fields_to_v1(fields)}
    if subresource:
        e["subresource"] = subresource
    return e


def _describe(e: dict) -> str:
    s = json.dumps(e.get("manager", ""))
    if e.get("subresource"):
        s += f' with subresource {json.dumps(e["subresource"])}'
    if e.get("operation") == "Update":
        s += f' using {e.get("apiVersion", "")}'
    return s


def _leaves(paths: set[Path]) -> set[Path]:
    parents = {p[:i] for p in paths for i in range(1, len(p))}
    return {p for p in paths if p not in parents}


def record_update(old: dict | None, new: dict, manager: str, clock: Any, info: Any = None,
                  subresource: str | None = None) -> None:
    """Give `manager` (operation Update) the fields this write changed; others lose them."""
    schema = schema_for(info)
    status = True if subresource == "status" else (False if getattr(info, "has_status", True) else None)
    new_fields = field_set(new, schema, status=status)
    if old is None:
        changed = new_fields
        removed: set[Path] = set()
    else:
        old_fields = field_set(old, schema, status=status)
        changed = {p for p in _leaves(new_fields) if value_at(old, p) != value_at(new, p)}
        changed |= {p for p in new_fields - old_fields}
        removed = old_fields - new_fields
    entries = _entries(new)
    mine: dict | None = None
    kept = []
    for e in entries:
        if e.get("manager") == manager and e.get("operation") == "Update" \
                and e.get("subresource") == subresource:
            mine = e
            continue
        fs = fields_from_v1(e.get("fieldsV1"))
        left = fs - changed - removed
        if left != fs:
            if not left:
                continue
            e["fieldsV1"] = fields_to_v1(left)
        kept.append(e)
    owned = (fields_from_v1(mine.get("fieldsV1")) if mine else set()) - removed
    owned |= changed
    if owned and (mine is None or changed or owned != fields_from_v1(mine.get("fieldsV1"))):
        kept.append(_entry(manager, "Update", new.get("apiVersion", ""), clock, owned, subresource))
    elif mine is not None and owned:
        kept.append(mine)
    m = new.setdefault("metadata", {})
    if kept:
        m["managedFields"] = kept
    else:
        m.pop("managedFields", None)


def apply_patch(info: Any, live: dict, applied: Any, manager: str, force: bool, clock: Any,
                subresource: str | None = None) -> dict:
    """Server-side apply of configuration `applied` by `manager` onto `live` ({} if missing)."""
    if not isinstance(applied, dict):
        raise PatchError("apply patch must be a YAML or JSON object")
    applied = deep_copy(applied)
    am = applied.get("metadata")
    if am is not None and not isinstance(am, dict):
        raise PatchError("metadata: must be an object")
    if info is not None:
        if applied.get("kind") and applied["kind"] != info.kind or \
                applied.get("apiVersion") and applied["apiVersion"] != info.api_version:
            raise PatchError(f"the apply configuration is a {applied.get('apiVersion')}/"
                             f"{applied.get('kind')}, not {info.api_version}/{info.kind}")
    (am or {}).pop("managedFields", None)
    schema = schema_for(info)
    has_status = getattr(info, "has_status", True)
    status = True if subresource == "status" else (False if has_status else None)
    mine = field_set(applied, schema, status=status)
    api_version = applied.get("apiVersion") or getattr(info, "api_version", "")

    if not live:
        new = strategic_merge({}, applied, schema)
        new.setdefault("metadata", {})["managedFields"] = [
            _entry(manager, "Apply", api_version, clock, mine, subresource)]
        return new

    rv = (am or {}).get("resourceVersion")
    if rv and rv != (live.get("metadata") or {}).get("resourceVersion"):
        raise errors.conflict(getattr(info, "plural", ""), (live.get("metadata") or {}).get("name", ""),
                              getattr(info, "group", ""))
    entries = _entries(live)
    previous: set[Path] = set()
    others: list[tuple[dict, set[Path]]] = []
    for e in entries:
        if e.get("manager") == manager and e.get("operation") == "Apply" \
                and e.get("subresource") == subresource:
            previous = fields_from_v1(e.get("fieldsV1"))
        else:
            others.append((e, fields_from_v1(e.get("fieldsV1"))))

    # conflicts: a field someone else owns, applied with a different value
    conflicts: list[tuple[dict, Path]] = []
    for leaf in sorted(_leaves(mine)):
        want = value_at(applied, leaf)
        have = value_at(live, leaf)
        if have is _MISSING or want == have:
            continue
        for e, fs in others:
            if leaf in fs:
                conflicts.append((e, leaf))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    taken = {p for _, p in conflicts}

    stripped = deep_copy(applied)
    for k in ("metadata",):
        for f in ("resourceVersion",):
            (stripped.get(k) or {}).pop(f, None)
    new = strategic_merge(deep_copy(live), stripped, schema)   # removals below must not touch live

    # fields this manager applied before and no longer applies: remove if nobody else owns them
    owned_by_others = set().union(*(fs - taken for _, fs in others)) if others else set()
    still = owned_by_others | mine
    removable = {p for p in previous - mine
                 if p not in owned_by_others and not any(q[:len(p)] == p for q in still)}
    for p in sorted(removable, key=len, reverse=True):
        if any(p[:i] in removable for i in range(1, len(p))):
            continue   # its parent goes as a whole
        _remove_path(new, p)

    kept = []
    for e, fs in others:
        left = fs - taken
        if left != fs:
            if not left:
                continue
            e["fieldsV1"] = fields_to_v1(left)
        kept.append(e)
    kept.append(_entry(manager, "Apply", api_version, clock, mine, subresource))
    new.setdefault("metadata", {})["managedFields"] = kept
    return new


def _conflict_error(conflicts: list[tuple[dict, Path]]) -> errors.ApiError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_describe(e)}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        msg = f"Apply failed with 1 conflict: conflict with {_describe(e)}: {path_string(p)}"
    else:
        by: dict[str, list[str]] = {}
        for e, p in conflicts:
            by.setdefault(_describe(e), []).append(path_string(p))
        lines = []
        for who in sorted(by):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {p}" for p in by[who]]
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.ApiError(409, "Conflict", msg, {"causes": causes})


__all__ = ["PatchError", "apply", "apply_patch", "merge_patch", "json_patch", "strategic_merge",
           "record_update", "field_set", "fields_to_v1", "fields_from_v1", "schema_for"]
