"""The patch client-side `kubectl apply` sends: a three-way strategic merge patch.

Inputs are the last applied configuration (the annotation), the new manifest
and the live object. Fields the manifest sets and the live object lacks or
differs in are set; fields the last applied configuration had and the new
manifest dropped are deleted; fields nobody applied (defaults, other
writers' changes) are left alone. Lists Kubernetes declares mergeable
(containers by name, ports by containerPort, env by name...) are diffed item
by item with `$patch: delete` for dropped items and `$setElementOrder` when
the order changed, exactly the directives the API server's strategic merge
understands (kbox.api.patch). Everything else is replaced whole when it
differs.
"""

from __future__ import annotations

from typing import Any

from kbox.api.patch import schema_for

Obj = dict[str, Any]


def _spec(schema: Any, field: str) -> tuple[str, str | None, Any]:
    if schema and field in schema:
        return schema[field]
    return ("replace", None, None)


def three_way(original: Obj | None, modified: Obj, current: Obj | None, schema: Any) -> Obj:
    original = original if isinstance(original, dict) else {}
    current = current if isinstance(current, dict) else {}
    patch: Obj = {}
    for k in original:
        if k not in modified and k in current:
            patch[k] = None
    for k, v in modified.items():
        cur = current.get(k)
        strategy, key, child = _spec(schema, k)
        if isinstance(v, dict) and isinstance(cur, dict):
            sub = three_way(original.get(k), v, cur, child)
            if sub:
                patch[k] = sub
        elif isinstance(v, list) and isinstance(cur, list) and strategy == "merge":
            if key is None:
                _primitive_list(patch, k, original.get(k), v, cur)
            elif all(isinstance(x, dict) and key in x for x in v + cur):
                _keyed_list(patch, k, key, child, original.get(k), v, cur)
            elif v != cur:
                patch[k] = [{"$patch": "replace"}] + v
        elif v != cur:
            patch[k] = v
    return patch


def _primitive_list(patch: Obj, k: str, original: Any, modified: list, current: list) -> None:
    add = [x for x in modified if x not in current]
    drop = [x for x in (original or []) if x not in modified and x in current]
    if add:
        patch[k] = add
    if drop:
        patch[f"$deleteFromPrimitiveList/{k}"] = drop


def _keyed_list(patch: Obj, k: str, key: str, child: Any, original: Any, modified: list,
                current: list) -> None:
    cur_by = {c[key]: c for c in current}
    orig_by = {o[key]: o for o in original or [] if isinstance(o, dict) and key in o}
    items: list[Obj] = []
    for m in modified:
        c = cur_by.get(m[key])
        if c is None:
            items.append(m)
            continue
        sub = three_way(orig_by.get(m[key]), m, c, child)
        if sub:
            items.append({key: m[key], **sub})
    wanted = [m[key] for m in modified]
    for kv in orig_by:
        if kv not in wanted and kv in cur_by:
            items.append({key: kv, "$patch": "delete"})
    kept = [c[key] for c in current if c[key] in wanted]
    if items or kept != wanted[:len(kept)] or kept != [w for w in wanted if w in cur_by]:
        if kept != [w for w in wanted if w in cur_by]:
            patch[f"$setElementOrder/{k}"] = [{key: w} for w in wanted]
        if items:
            patch[k] = items


def apply_patch(info: Any, original: Obj | None, modified: Obj, current: Obj) -> Obj:
    """The strategic merge patch `kubectl apply` sends for this resource (status never)."""
    patch = three_way(original, modified, current, schema_for(info))
    patch.pop("status", None)
    return patch


__all__ = ["apply_patch", "three_way"]
