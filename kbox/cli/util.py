"""Helpers shared by the commands: resource names as kubectl reads them,
error texts as kubectl prints them, durations, and clock-driven waiting."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kbox.api.errors import ApiError
from kbox.api.resources import RESOURCES, ResourceInfo, lookup
from kbox.cli.registry import CliError, Context

# `kubectl get all`: the "all" category, in discovery order
ALL_ORDER = ("pods", "services", "daemonsets", "deployments", "replicasets", "statefulsets",
             "jobs", "cronjobs")


def resource(name: str) -> ResourceInfo:
    info = lookup(name)
    if info is None:
        raise CliError(f'the server doesn\'t have a resource type "{name}"')
    return info


def kinds(text: str) -> list[ResourceInfo]:
    """`pods`, `deploy,rs`, `all` → resources."""
    out: list[ResourceInfo] = []
    for part in text.split(","):
        if not part:
            continue
        if part == "all":
            for plural in ALL_ORDER:
                info = lookup(plural)
                if info is not None and "all" in info.categories and info not in out:
                    out.append(info)
            continue
        info = resource(part)
        if info not in out:
            out.append(info)
    return out


def targets(words: list[str], *, allow_empty: bool = False) -> list[tuple[ResourceInfo, str | None]]:
    """kubectl's resource arguments: `TYPE [NAME...]`, `TYPE/NAME ...`, `TYPE1,TYPE2 [NAME...]`.

    Returns (resource, name) pairs; name None means "every object of that kind".
    """
    if not words:
        if allow_empty:
            return []
        raise CliError("you must specify the type of resource to get. Use \"kbox api-resources\" "
                       "for a complete list of supported resources.")
    if any("/" in w for w in words):
        out: list[tuple[ResourceInfo, str | None]] = []
        for w in words:
            if "/" not in w:
                raise CliError("there is no need to specify a resource type as a separate "
                               "argument when passing arguments in resource/name form (e.g. "
                               "'kbox get resource/<resource_name>' instead of 'kbox get resource "
                               "resource/<resource_name>'")
            t, name = w.split("/", 1)
            if not name:
                raise CliError("arguments in resource/name form must have a single resource and name")
            out.append((resource(t), name))
        return out
    infos = kinds(words[0])
    names = words[1:]
    if not names:
        return [(i, None) for i in infos]
    return [(i, n) for i in infos for n in names]


def kind_prefix(info: ResourceInfo) -> str:
    """`deployment.apps` or `pod`: how kubectl names a kind in messages."""
    return f"{info.singular}.{info.group}" if info.group else info.singular


def ref(info: ResourceInfo, name: str) -> str:
    return f"{kind_prefix(info)}/{name}"


def api_error_text(e: ApiError) -> str:
    """What kubectl prints for an API error (without the trailing newline).

    Invalid: `The Kind "name" is invalid: field: message`, several causes as
    kubectl aggregates them: `[a: x, b: y]` (duplicates dropped).
    """
    if e.reason == "Invalid" and e.details:
        kind = e.details.get("kind") or ""
        name = e.details.get("name") or ""
        head = f'The {kind} "{name}" is invalid' if kind or name else "The request is invalid"
        msgs: list[str] = []
        for c in e.causes:
            m = f"{c.get('field', '')}: {c.get('message', '')}"
            if m not in msgs:
                msgs.append(m)
        if not msgs:
            return head
        return f"{head}: {msgs[0] if len(msgs) == 1 else '[' + ', '.join(msgs) + ']'}"
    if e.reason and e.reason not in ("Unknown", "Failure"):
        return f"Error from server ({e.reason}): {e.message}"
    return f"Error from server: {e.message}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str | None, default: float | None = None) -> float | None:
    """Go durations as kubectl flags take them: `30s`, `1m30s`, `500ms`, `0`, or plain seconds."""
    if text is None or text == "":
        return default
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise CliError(f'invalid duration "{text}" (examples: 30s, 5m, 1h30m)')
    return total


def wait_until(ctx: Context, check: Callable[[], Any], timeout: float | None) -> Any:
    """Poll `check()` on the context's clock until it returns something truthy.

    Returns that value, or None when `timeout` (clock seconds; None: forever)
    passes first or ctx.stop is set. Polling through the client keeps this
    correct over HTTP and in-process alike.
    """
    start = ctx.clock.monotonic()
    while True:
        got = check()
        if got:
            return got
        if ctx.stop.is_set():
            return None
        if timeout is not None and ctx.clock.monotonic() - start >= timeout:
            return None
        step = ctx.poll_interval
        if timeout is not None:
            step = max(0.0, min(step, timeout - (ctx.clock.monotonic() - start)))
        if step > 0:
            ctx.clock.wait_event(ctx.stop, step)


def parse_kv(items: list[str], what: str = "label") -> tuple[dict[str, str], list[str]]:
    """`a=b c- d=e` → ({a: b, d: e}, [c])."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for it in items:
        if it.endswith("-") and "=" not in it:
            removes.append(it[:-1])
        elif "=" in it:
            k, v = it.split("=", 1)
            if not k:
                raise CliError(f"invalid {what} spec: {it}")
            sets[k] = v
        else:
            raise CliError(f"invalid {what} spec: {it}")
    return sets, removes


def all_resources() -> list[ResourceInfo]:
    return list(RESOURCES)


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def list_filtered(client: Any, resource: str, namespace: str | None,
                  field_selector: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
    """List with a field selector; if the server does not index a field (400), filter
    on this side instead, as older kube-apiservers forced clients to do."""
    try:
        return client.list(resource, namespace, field_selector=field_selector or None,
                           label_selector=label_selector or None)["items"]
    except ApiError as e:
        if e.code != 400 or not field_selector:
            raise
    items = client.list(resource, namespace, label_selector=label_selector or None)["items"]
    reqs = []
    for part in field_selector.split(","):
        neg = "!=" in part
        k, _, v = part.partition("!=" if neg else "==" if "==" in part else "=")
        reqs.append((k.strip(), v.strip(), neg))
    return [o for o in items if all((_field(o, k) != v) if neg else (_field(o, k) == v)
                                    for k, v, neg in reqs)]
