"""The kubectl-like verbs, registered in the one command registry.

Each verb follows kubectl's syntax, output and messages (`deployment.apps/web
created`, `Error from server (NotFound): pods "x" not found`), and talks to
the cluster only through the Client interface, so it behaves the same over
HTTP, in a script, or in the dashboard.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from kbox.api.errors import ApiError
from kbox.api.objects import deep_copy
from kbox.api.resources import RESOURCES, ResourceInfo, for_kind, lookup
from kbox.api.tables import age, human_duration
from kbox.cli import output
from kbox.cli.registry import CliError, Context, arguments, command
from kbox.clock import iso_time

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# `get all`: the "all" category in discovery order, as kubectl expands it
ALL_KINDS = [r.plural for r in sorted(RESOURCES, key=lambda r: (r.group, r.plural))
             if "all" in r.categories]


# ---- shared helpers -------------------------------------------------------------

def w(ctx: Context, text: str = "") -> None:
    ctx.out.write(text if text.endswith("\n") else text + "\n")  # type: ignore[union-attr]


def api_error(e: ApiError) -> CliError:
    """kubectl's wording for a server error."""
    from kbox.cli.util import api_error_text
    return CliError(api_error_text(e), 1)


def resolve(kind: str) -> ResourceInfo:
    info = lookup(kind)
    if info is None:
        raise CliError(f'the server doesn\'t have a resource type "{kind}"')
    return info


def namespace_of(ctx: Context, args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or ctx.namespace


def targets(words: list[str]) -> list[tuple[ResourceInfo, list[str]]]:
    """`pods a b`, `deploy/web rs/x`, `deploy,rs`, `all` → [(resource, names)]."""
    if not words:
        raise CliError("You must specify the type of resource to get. Use \"kbox api-resources\" "
                       "for a complete list of supported resources.")
    if "/" in words[0]:
        out: dict[str, tuple[ResourceInfo, list[str]]] = {}
        for wd in words:
            if "/" not in wd:
                raise CliError("there is no need to specify a resource type as a separate argument "
                               "when passing arguments in resource/name form (e.g. 'kbox get "
                               "resource/<resource_name>' instead of 'kbox get resource "
                               "resource/<resource_name>'")
            kind, name = wd.split("/", 1)
            info = resolve(kind)
            out.setdefault(info.plural, (info, []))[1].append(name)
        return list(out.values())
    kinds = []
    for k in words[0].split(","):
        if k == "all":
            kinds.extend(resolve(x) for x in ALL_KINDS)
        else:
            kinds.append(resolve(k))
    names = words[1:]
    if names and len(kinds) > 1:
        raise CliError("you may only specify a single resource type when naming resources")
    return [(k, list(names)) for k in kinds]


def ref(info: ResourceInfo, name: str) -> str:
    return f"{output.kind_prefix(info)}/{name}"


def wait_until(ctx: Context, predicate, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def parse_duration(text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    text = str(text)
    total, num = 0.0, ""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    i = 0
    if text.replace(".", "", 1).isdigit():
        return float(text)
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not num:
            raise CliError(f'invalid duration "{text}" (use e.g. 30s, 2m, 1h)')
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise CliError(f'invalid duration "{text}": missing unit in duration')
    return total


def add_ns(p: argparse.ArgumentParser, all_ns: bool = False) -> None:
    p.add_argument("-n", "--namespace")
    if all_ns:
        p.add_argument("-A", "--all-namespaces", action="store_true")


# ---- get --------------------------------------------------------------------------

def _get_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="*")
    add_ns(p, True)
    p.add_argument("-o", "--output")
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("-w", "--watch", action="store_true")
    p.add_argument("--watch-only", action="store_true")
    p.add_argument("--show-labels", action="store_true")
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--sort-by")
    p.add_argument("--timeout", help="stop watching after this long (e.g. 30s)")
    p.add_argument("--max-events", type=int, help="stop watching after this many changes")


def _sort(objs: list[dict[str, Any]], sort_by: str | None) -> list[dict[str, Any]]:
    if not sort_by:
        return objs
    path = sort_by.strip("{}")
    def key(o: dict[str, Any]) -> Any:
        v = output._eval(path, o, o)
        x = v[0] if v else ""
        return (0, x) if isinstance(x, (int, float)) else (1, str(x))
    return sorted(objs, key=key)


def print_objects(ctx: Context, info: ResourceInfo, objs: list[dict[str, Any]], fmt: str | None, *,
                  all_ns: bool = False, headers: bool = True, show_labels: bool = False,
                  show_kind: bool = False, single: bool = False) -> None:
    now = ctx.clock.now()
    if fmt in (None, "", "wide"):
        w(ctx, output.format_table(info, objs, now, wide=fmt == "wide", namespaced_col=all_ns,
                                   headers=headers, show_labels=show_labels, show_kind=show_kind).rstrip("\n"))
    elif fmt == "name":
        for o in objs:
            w(ctx, ref(info, o["metadata"]["name"]))
    elif fmt in ("yaml", "json"):
        data = objs[0] if single and len(objs) == 1 else output.as_list(objs)
        w(ctx, output.to_yaml(data) if fmt == "yaml" else output.to_json(data))
    elif fmt.startswith("jsonpath=") or fmt.startswith("jsonpath-as-json="):
        data = objs[0] if single and len(objs) == 1 else output.as_list(objs)
        ctx.out.write(output.jsonpath(fmt.split("=", 1)[1], data))  # type: ignore[union-attr]
        if not fmt.split("=", 1)[1].rstrip("'").endswith('\\n"}'):
            pass
    elif fmt.startswith("custom-columns="):
        w(ctx, output.custom_columns(fmt.split("=", 1)[1], objs, headers).rstrip("\n"))
    else:
        raise CliError(f'unable to match a printer suitable for the output format "{fmt}", allowed '
                       'formats are: custom-columns,json,jsonpath,name,wide,yaml')


@command("get", "Display one or many resources")
@arguments(_get_args)
def cmd_get(ctx: Context, args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else namespace_of(ctx, args)
    groups = targets(args.resource)
    multi = len(groups) > 1
    printed_any = False
    rc = 0
    # yaml, json and jsonpath print one document: the object, or one List of everything
    whole = (args.output or "").split("=", 1)[0] in ("yaml", "json", "jsonpath", "jsonpath-as-json")
    collected: list[dict[str, Any]] = []
    for info, names in groups:
        try:
            if names:
                objs = []
                for n in names:
                    try:
                        objs.append(ctx.client.get(info.plural, n, ns or ctx.namespace))
                    except ApiError as e:
                        ctx.err.write(api_error(e).message + "\n")  # type: ignore[union-attr]
                        rc = 1
            else:
                lst = ctx.client.list(info.plural, ns if info.namespaced else None,
                                      label_selector=args.selector, field_selector=args.field_selector)
                objs = lst["items"]
        except ApiError as e:
            raise api_error(e)
        objs = _sort(objs, args.sort_by)
        if whole:
            for o in objs:
                o.setdefault("kind", info.kind)
                o.setdefault("apiVersion", info.api_version)
            collected.extend(objs)
            continue
        if not objs:
            continue
        if printed_any and args.output in (None, "wide"):
            w(ctx, "")
        if not args.watch_only:
            print_objects(ctx, info, objs, args.output, all_ns=bool(args.all_namespaces) and info.namespaced,
                          headers=not args.no_headers, show_labels=args.show_labels,
                          show_kind=multi or (args.resource and args.resource[0] == "all"),
                          single=bool(names) and len(groups) == 1)
        printed_any = True
    if whole and (collected or not any(names for _, names in groups)) and not args.watch_only:
        single = len(groups) == 1 and bool(groups[0][1]) and len(groups[0][1]) == 1
        print_objects(ctx, groups[0][0], collected, args.output, single=single and len(collected) == 1)
        printed_any = True
    if not printed_any and rc == 0 and args.output in (None, "wide"):
        where = "" if args.all_namespaces or not groups[0][0].namespaced else f" in {ns} namespace"
        if not args.watch and not args.watch_only:
            ctx.err.write(f"No resources found{where}.\n")  # type: ignore[union-attr]
    if args.watch or args.watch_only:
        info, names = groups[0]
        _watch_rows(ctx, info, ns, args, names)
    return rc


def _watch_rows(ctx: Context, info: ResourceInfo, ns: str | None, args: argparse.Namespace,
                names: list[str]) -> None:
    lst = ctx.client.list(info.plural, ns if info.namespaced else None, label_selector=args.selector,
                          field_selector=args.field_selector)
    stream = ctx.client.watch(info.plural, ns if info.namespaced else None,
                              label_selector=args.selector, field_selector=args.field_selector,
                              resource_version=lst["metadata"]["resourceVersion"],
                              timeout_seconds=parse_duration(args.timeout, 0) or None)
    seen = 0
    import threading
    done = threading.Event()

    def interrupt() -> None:   # ctx.stop (dashboard, Ctrl-C handler) ends the watch
        while not done.wait(0.2):
            if ctx.stop.is_set():
                stream.close()
                return
    threading.Thread(target=interrupt, daemon=True, name="kbox-get-watch").start()
    try:
        for etype, obj in stream:
            if etype in ("BOOKMARK", "ERROR"):
                continue
            if names and obj["metadata"]["name"] not in names:
                continue
            print_objects(ctx, info, [obj], args.output, all_ns=bool(args.all_namespaces),
                          headers=False)
            ctx.out.flush()  # type: ignore[union-attr]
            seen += 1
            if args.max_events and seen >= args.max_events:
                break
    except KeyboardInterrupt:
        pass
    finally:
        done.set()
        stream.close()


# ---- describe -----------------------------------------------------------------------

def _describe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="+")
    add_ns(p, True)
    p.add_argument("-l", "--selector")


def _kv(d: dict[str, str] | None, indent: int) -> str:
    if not d:
        return "<none>"
    pad = " " * indent
    return ("\n" + pad).join(f"{k}={v}" for k, v in sorted(d.items()))


def _events_for(ctx: Context, obj: dict[str, Any]) -> str:
    m = obj["metadata"]
    sel = f"involvedObject.name={m['name']},involvedObject.uid={m.get('uid', '')}"
    if m.get("namespace"):
        sel += f",involvedObject.namespace={m['namespace']}"
    try:
        from kbox.cli.util import list_filtered
        evs = list_filtered(ctx.client, "events", m.get("namespace") or None, sel)
    except ApiError:
        evs = []
    if not evs:
        return "Events:            <none>\n"
    now = ctx.clock.now()
    evs.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    rows = []
    for e in evs:
        first, last = e.get("firstTimestamp"), e.get("lastTimestamp")
        count = e.get("count", 1)
        when = age(last, now) if count <= 1 else f"{age(last, now)} (x{count} over {age(first, now)})"
        rows.append(["", e.get("type", ""), e.get("reason", ""), when,
                     (e.get("source") or {}).get("component", "") + (f", {e['source']['host']}" if (e.get("source") or {}).get("host") and False else ""),
                     e.get("message", "")])
    table = output.render_rows(["", "Type", "Reason", "Age", "From", "Message"],
                               [["", "----", "------", "----", "----", "-------"]] + rows)
    return "Events:\n" + "\n".join("  " + line[3:] if line.startswith("   ") else line
                                   for line in table.splitlines()) + "\n"


def _describe_meta(obj: dict[str, Any]) -> list[str]:
    m = obj["metadata"]
    lines = [f"Name:{' ' * 14}{m['name']}"]
    if m.get("namespace"):
        lines.append(f"Namespace:{' ' * 9}{m['namespace']}")
    lines.append(f"Labels:{' ' * 12}{_kv(m.get('labels'), 19)}")
    lines.append(f"Annotations:{' ' * 7}{_kv({k: v for k, v in (m.get('annotations') or {}).items() if k != LAST_APPLIED}, 19)}")
    return lines


def _container_lines(c: dict[str, Any], cs: dict[str, Any] | None) -> list[str]:
    out = [f"  {c['name']}:"]
    if cs and cs.get("containerID"):
        out.append(f"    Container ID:  {cs['containerID']}")
    out.append(f"    Image:         {c.get('image', '')}")
    if c.get("command"):
        out.append("    Command:\n" + "\n".join(f"      {x}" for x in c["command"]))
    if c.get("args"):
        out.append("    Args:\n" + "\n".join(f"      {x}" for x in c["args"]))
    ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or [])
    out.append(f"    Port:          {ports or '<none>'}")
    if cs:
        st = cs.get("state") or {}
        if "running" in st:
            out.append(f"    State:          Running\n      Started:      {st['running'].get('startedAt')}")
        elif "waiting" in st:
            out.append(f"    State:          Waiting\n      Reason:       {st['waiting'].get('reason')}")
        elif "terminated" in st:
            t = st["terminated"]
            out.append(f"    State:          Terminated\n      Reason:       {t.get('reason')}\n"
                       f"      Exit Code:    {t.get('exitCode')}")
        last = (cs.get("lastState") or {}).get("terminated")
        if last:
            out.append(f"    Last State:     Terminated\n      Reason:       {last.get('reason')}\n"
                       f"      Exit Code:    {last.get('exitCode')}\n      Started:      {last.get('startedAt')}\n"
                       f"      Finished:     {last.get('finishedAt')}")
        out.append(f"    Ready:          {'True' if cs.get('ready') else 'False'}")
        out.append(f"    Restart Count:  {cs.get('restartCount', 0)}")
    res = c.get("resources") or {}
    for title in ("limits", "requests"):
        if res.get(title):
            out.append(f"    {title.capitalize()}:\n" + "\n".join(f"      {k}:  {v}" for k, v in res[title].items()))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe):
            p = c[probe]
            how = "exec " + str(p["exec"].get("command")) if "exec" in p else \
                f"http-get :{p['httpGet'].get('port')}{p['httpGet'].get('path', '/')}" if "httpGet" in p else \
                f"tcp-socket :{p.get('tcpSocket', {}).get('port')}"
            out.append(f"    {probe[:-5].capitalize()}:  {how} delay={p.get('initialDelaySeconds', 0)}s "
                       f"timeout={p.get('timeoutSeconds', 1)}s period={p.get('periodSeconds', 10)}s "
                       f"#success={p.get('successThreshold', 1)} #failure={p.get('failureThreshold', 3)}")
    env = c.get("env") or []
    out.append("    Environment:" + ("   <none>" if not env else "\n" + "\n".join(
        f"      {e['name']}:  {e.get('value', '<set from ' + str(list((e.get('valueFrom') or {}).keys())) + '>')}" for e in env)))
    return out


def describe_pod(ctx: Context, p: dict[str, Any]) -> str:
    spec, st = p.get("spec") or {}, p.get("status") or {}
    lines = _describe_meta(p)
    lines.insert(2, f"Priority:{' ' * 10}{spec.get('priority', 0)}")
    lines.insert(3, f"Service Account:{' ' * 3}{spec.get('serviceAccountName', 'default')}")
    lines.insert(4, f"Node:{' ' * 14}{spec.get('nodeName', '<none>')}" + (f"/{st['hostIP']}" if st.get("hostIP") else ""))
    lines.insert(5, f"Start Time:{' ' * 8}{st.get('startTime', '<none>')}")
    if p["metadata"].get("deletionTimestamp"):
        lines.append(f"Status:            Terminating (lasts {p['metadata'].get('deletionGracePeriodSeconds')}s)")
    else:
        lines.append(f"Status:{' ' * 12}{st.get('phase', 'Pending')}")
    lines.append(f"IP:{' ' * 16}{st.get('podIP', '')}")
    owner = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    lines.append(f"Controlled By:     {owner['kind']}/{owner['name']}" if owner else "")
    statuses = {c["name"]: c for c in st.get("containerStatuses") or []}
    istatuses = {c["name"]: c for c in st.get("initContainerStatuses") or []}
    if spec.get("initContainers"):
        lines.append("Init Containers:")
        for c in spec["initContainers"]:
            lines.extend(_container_lines(c, istatuses.get(c["name"])))
    lines.append("Containers:")
    for c in spec.get("containers") or []:
        lines.extend(_container_lines(c, statuses.get(c["name"])))
    lines.append("Conditions:\n  Type                        Status")
    for c in st.get("conditions") or []:
        lines.append(f"  {c['type']:<27} {c['status']}")
    lines.append(f"QoS Class:                   {st.get('qosClass', 'BestEffort')}")
    lines.append(f"Node-Selectors:              {_kv(spec.get('nodeSelector'), 29)}")
    tol = spec.get("tolerations") or []
    lines.append("Tolerations:                 " + ("<none>" if not tol else ("\n" + " " * 29).join(
        f"{t.get('key', '')}{':' + t['effect'] if t.get('effect') else ''} op={t.get('operator', 'Equal')}"
        + (f" for {t['tolerationSeconds']}s" if t.get("tolerationSeconds") is not None else "") for t in tol)))
    return "\n".join(l for l in lines if l != "") + "\n" + _events_for(ctx, p)


def describe_deployment(ctx: Context, d: dict[str, Any]) -> str:
    spec, st = d.get("spec") or {}, d.get("status") or {}
    lines = _describe_meta(d)
    from kbox.api.selectors import selector_to_string
    lines.append(f"Selector:          {selector_to_string(spec.get('selector')) or '<none>'}")
    lines.append(f"Replicas:          {spec.get('replicas', 1)} desired | {st.get('updatedReplicas', 0)} updated | "
                 f"{st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} available | "
                 f"{st.get('unavailableReplicas', 0)} unavailable")
    strat = spec.get("strategy") or {}
    lines.append(f"StrategyType:      {strat.get('type', 'RollingUpdate')}")
    lines.append(f"MinReadySeconds:   {spec.get('minReadySeconds', 0)}")
    if strat.get("type", "RollingUpdate") == "RollingUpdate":
        ru = strat.get("rollingUpdate") or {}
        lines.append(f"RollingUpdateStrategy:  {ru.get('maxUnavailable', '25%')} max unavailable, "
                     f"{ru.get('maxSurge', '25%')} max surge")
    tmpl = spec.get("template") or {}
    lines.append("Pod Template:")
    lines.append(f"  Labels:  {_kv((tmpl.get('metadata') or {}).get('labels'), 11)}")
    lines.append("  Containers:")
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        lines.extend("  " + l for l in _container_lines(c, None))
    lines.append("Conditions:\n  Type           Status  Reason\n  ----           ------  ------")
    for c in st.get("conditions") or []:
        lines.append(f"  {c['type']:<14} {c['status']:<7} {c.get('reason', '')}")
    try:
        rss = ctx.client.list("replicasets", d["metadata"].get("namespace"))["items"]
        owned = [r for r in rss if any(o.get("uid") == d["metadata"].get("uid") for o in r["metadata"].get("ownerReferences") or [])]
        rev = (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        new = [r for r in owned if (r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == rev]
        old = [r for r in owned if r not in new and (r.get("spec") or {}).get("replicas")]
        fmt = lambda rs: ", ".join(f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}/{(r.get('spec') or {}).get('replicas', 0)} replicas created)" for r in rs) or "<none>"
        lines.append(f"OldReplicaSets:  {fmt(old)}")
        lines.append(f"NewReplicaSet:   {fmt(new)}")
    except ApiError:
        pass
    return "\n".join(lines) + "\n" + _events_for(ctx, d)


def describe_node(ctx: Context, n: dict[str, Any]) -> str:
    spec, st = n.get("spec") or {}, n.get("status") or {}
    lines = _describe_meta(n)
    taints = spec.get("taints") or []
    lines.append("Taints:             " + ("<none>" if not taints else ("\n" + " " * 20).join(
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in taints)))
    lines.append(f"Unschedulable:      {'true' if spec.get('unschedulable') else 'false'}")
    lines.append("Conditions:\n  Type             Status  LastHeartbeatTime     Reason                       Message")
    for c in st.get("conditions") or []:
        lines.append(f"  {c['type']:<16} {c['status']:<7} {c.get('lastHeartbeatTime', ''):<21} "
                     f"{c.get('reason', ''):<28} {c.get('message', '')}")
    lines.append("Addresses:")
    for a in st.get("addresses") or []:
        lines.append(f"  {a['type']}:  {a['address']}")
    for title in ("capacity", "allocatable"):
        lines.append(f"{title.capitalize()}:")
        for k, v in (st.get(title) or {}).items():
            lines.append(f"  {k}:{' ' * max(1, 18 - len(k))}{v}")
    info = st.get("nodeInfo") or {}
    lines.append("System Info:")
    for k in ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
              "kubeletVersion", "operatingSystem", "architecture"):
        lines.append(f"  {k[0].upper() + k[1:]}:  {info.get(k, '')}")
    if spec.get("podCIDR"):
        lines.append(f"PodCIDR:                      {spec['podCIDR']}")
    try:
        pods = ctx.client.list("pods", field_selector=f"spec.nodeName={n['metadata']['name']}")["items"]
    except ApiError:
        pods = []
    lines.append(f"Non-terminated Pods:          ({len(pods)} in total)")
    if pods:
        rows = [[p["metadata"].get("namespace", ""), p["metadata"]["name"],
                 age(p["metadata"].get("creationTimestamp"), ctx.clock.now())] for p in pods]
        lines.append("\n".join("  " + l for l in output.render_rows(["Namespace", "Name", "Age"], rows).splitlines()))
    return "\n".join(lines) + "\n" + _events_for(ctx, n)


def describe_generic(ctx: Context, obj: dict[str, Any]) -> str:
    lines = _describe_meta(obj)
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    if body:
        text = output.to_yaml(body)
        lines.extend(l[0].upper() + l[1:] if l and not l.startswith(" ") else l for l in text.splitlines())
    return "\n".join(lines) + "\n" + _events_for(ctx, obj)


DESCRIBERS = {"pods": describe_pod, "deployments": describe_deployment, "nodes": describe_node}


@command("describe", "Show details of a specific resource or group of resources")
@arguments(_describe_args)
def cmd_describe(ctx: Context, args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else namespace_of(ctx, args)
    first = True
    for info, names in targets(args.resource):
        try:
            if names:
                objs = [ctx.client.get(info.plural, n, ns or ctx.namespace) for n in names]
            else:
                objs = ctx.client.list(info.plural, ns if info.namespaced else None,
                                       label_selector=args.selector)["items"]
        except ApiError as e:
            raise api_error(e)
        for o in objs:
            if not first:
                w(ctx, "\n")
            first = False
            w(ctx, DESCRIBERS.get(info.plural, describe_generic)(ctx, o).rstrip("\n"))
    return 0


# ---- apply / create / replace ------------------------------------------------------

def _file_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-f", "--filename", action="append", required=required, default=None)
    p.add_argument("-R", "--recursive", action="store_true")
    add_ns(p)
    p.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    p.add_argument("-o", "--output")


def _object_info(obj: dict[str, Any], source: str) -> ResourceInfo:
    info = for_kind(obj.get("kind", ""), obj.get("apiVersion", ""))
    if info is None:
        m = obj.get("metadata") or {}
        raise CliError(f'resource mapping not found for name: "{m.get("name", "")}" namespace: '
                       f'"{m.get("namespace", "")}" from "{source}": no matches for kind '
                       f'"{obj.get("kind")}" in version "{obj.get("apiVersion")}"\nensure CRDs are installed first')
    return info


def _target_ns(ctx: Context, args: argparse.Namespace, info: ResourceInfo, obj: dict[str, Any]) -> str | None:
    if not info.namespaced:
        return None
    body_ns = (obj.get("metadata") or {}).get("namespace")
    flag_ns = getattr(args, "namespace", None)
    if flag_ns and body_ns and flag_ns != body_ns:
        raise CliError(f"the namespace from the provided object \"{body_ns}\" does not match the "
                       f"namespace \"{flag_ns}\". You must pass '--namespace={body_ns}' to perform this operation.")
    return body_ns or flag_ns or ctx.namespace


def three_way_patch(original: Any, modified: Any, current: Any) -> dict[str, Any]:
    """The merge patch that makes `current` match `modified`, deleting what the
    last applied configuration (`original`) had and `modified` dropped."""
    patch: dict[str, Any] = {}
    original = original if isinstance(original, dict) else {}
    current = current if isinstance(current, dict) else {}
    for k in original:
        if k not in modified:
            patch[k] = None
    for k, v in modified.items():
        cur = current.get(k)
        if isinstance(v, dict) and isinstance(cur, dict):
            sub = three_way_patch(original.get(k), v, cur)
            if sub:
                patch[k] = sub
        elif v != cur:
            patch[k] = v
    return patch


def _loaded(ctx: Context, args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    from kbox.cli.manifests import load
    objs = list(load(args.filename, ctx.base_dir, ctx.stdin, args.recursive))
    if not objs:
        raise CliError("no objects passed to " + ("apply" if "apply" in str(args) else "create"))
    return objs


@command("apply", "Apply a configuration to a resource by file name or stdin")
@arguments(_file_args)
def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    rc = 0
    for source, obj in _loaded(ctx, args):
        info = _object_info(obj, source)
        ns = _target_ns(ctx, args, info, obj)
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise CliError(f"error when retrieving current configuration from {source}: resource name may not be empty")
        config = deep_copy(obj)
        config.setdefault("metadata", {}).pop(LAST_APPLIED, None)
        ann = {k: v for k, v in (config["metadata"].get("annotations") or {}).items() if k != LAST_APPLIED}
        applied = deep_copy(config)
        if ann:
            applied["metadata"]["annotations"] = ann
        last = json.dumps(applied, separators=(",", ":"), sort_keys=True)
        desired = deep_copy(applied)
        desired["metadata"].setdefault("annotations", {})[LAST_APPLIED] = last + "\n"
        if info.namespaced:
            desired["metadata"]["namespace"] = ns
        try:
            try:
                live = ctx.client.get(info.plural, name, ns)
            except ApiError as e:
                if e.code != 404:
                    raise
                if args.dry_run != "client":
                    ctx.client.create(info.plural, desired, ns, dry_run=args.dry_run == "server",
                                      field_manager="kubectl-client-side-apply")
                w(ctx, f"{ref(info, name)} created" + _dry(args))
                continue
            prev = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
            original = json.loads(prev) if prev else {}
            from kbox.cli.applypatch import apply_patch
            patch = apply_patch(info, original, desired, live)
            if not patch:
                w(ctx, f"{ref(info, name)} unchanged" + _dry(args))
                continue
            if args.dry_run == "client":
                w(ctx, f"{ref(info, name)} configured" + _dry(args))
                continue
            out = ctx.client.patch(info.plural, name, patch, "strategic", ns,
                                   field_manager="kubectl-client-side-apply",
                                   dry_run=args.dry_run == "server")
            same = out["metadata"].get("resourceVersion") == live["metadata"].get("resourceVersion") \
                and args.dry_run != "server"
            w(ctx, f"{ref(info, name)} {'unchanged' if same else 'configured'}" + _dry(args))
        except ApiError as e:
            ctx.err.write(api_error(e).message + "\n")  # type: ignore[union-attr]
            rc = 1
    return rc


def _dry(args: argparse.Namespace) -> str:
    mode = getattr(args, "dry_run", "none")
    return {"client": " (dry run)", "server": " (server dry run)"}.get(mode, "")


def _create_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", help="deployment, namespace, service, job, configmap, secret")
    p.add_argument("rest", nargs="*")
    _file_args(p, required=False)
    p.add_argument("--image")
    p.add_argument("--replicas", type=int)
    p.add_argument("--port", type=int)
    p.add_argument("--tcp", action="append")
    p.add_argument("--from-literal", action="append", default=[])
    p.add_argument("--from-file", action="append", default=[],
                   help="configmap/secret data from a file ([key=]path) or every file of a folder")
    p.add_argument("--type", help="secret type (default Opaque)")
    p.add_argument("--save-config", action="store_true")


def _client_shape(obj: dict[str, Any]) -> dict[str, Any]:
    """A generated object as kubectl prints it with --dry-run=client: the Go zero values
    its typed structs serialise (creationTimestamp: null, empty strategy/resources/status)."""
    o = deep_copy(obj)
    m = o.setdefault("metadata", {})
    m.pop("namespace", None)
    m["creationTimestamp"] = None
    kind = o.get("kind")
    if kind in ("Deployment", "Job"):
        spec = o.setdefault("spec", {})
        if kind == "Deployment":
            spec.setdefault("strategy", {})
        t = spec.setdefault("template", {})
        t.setdefault("metadata", {})["creationTimestamp"] = None
        for c in (t.get("spec") or {}).get("containers") or []:
            c.setdefault("resources", {})
        o["status"] = {}
    elif kind == "Service":
        o["status"] = {"loadBalancer": {}}
    elif kind == "Namespace":
        o["spec"], o["status"] = {}, {}
    return o


def _generated(ctx: Context, args: argparse.Namespace) -> tuple[ResourceInfo, dict[str, Any]]:
    kind = args.kind
    rest = list(args.rest)
    ns = getattr(args, "namespace", None) or ctx.namespace
    if kind in ("namespace", "ns"):
        if not rest:
            raise CliError("exactly one NAME is required, got 0")
        return resolve("namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": rest[0]}}
    if kind in ("deployment", "deploy"):
        if not rest or not args.image:
            raise CliError("required flag(s) \"image\" not set" if rest else "exactly one NAME is required, got 0")
        name = rest[0]
        container = {"name": args.image.rsplit("/", 1)[-1].split(":")[0].split("@")[0], "image": args.image}
        if args.command_args:
            container["command"] = args.command_args
        if args.port:
            container["ports"] = [{"containerPort": args.port}]
        return resolve("deployments"), {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"replicas": args.replicas if args.replicas is not None else 1,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}
    if kind in ("service", "svc"):
        if len(rest) < 2 or rest[0] not in ("clusterip", "nodeport", "loadbalancer"):
            raise CliError("usage: create service clusterip|nodeport|loadbalancer NAME --tcp=port:targetPort")
        stype, name = rest[0], rest[1]
        ports = []
        for spec in args.tcp or []:
            port, _, target = spec.partition(":")
            ports.append({"name": f"{port}-{target or port}", "port": int(port),
                          "targetPort": int(target or port), "protocol": "TCP"})
        return resolve("services"), {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"type": {"clusterip": "ClusterIP", "nodeport": "NodePort", "loadbalancer": "LoadBalancer"}[stype],
                     "selector": {"app": name}, "ports": ports}}
    if kind == "job":
        if not rest or not args.image:
            raise CliError("required flag(s) \"image\" not set" if rest else "exactly one NAME is required, got 0")
        c: dict[str, Any] = {"name": rest[0], "image": args.image}
        if args.command_args:
            c["command"] = args.command_args
        return resolve("jobs"), {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": rest[0], "namespace": ns},
                                 "spec": {"template": {"spec": {"containers": [c], "restartPolicy": "Never"}}}}
    if kind in ("configmap", "cm", "secret"):
        if kind == "secret":
            if not rest or rest[0] != "generic":
                raise CliError("usage: create secret generic NAME --from-literal=key=value")
            rest = rest[1:]
        if not rest:
            raise CliError("exactly one NAME is required, got 0")
        data = {}
        for lit in args.from_literal:
            k, sep, v = lit.partition("=")
            if not sep:
                raise CliError(f"invalid literal source {lit}, expected key=value")
            data[k] = v
        for src in args.from_file:
            key, sep, path = src.partition("=")
            if not sep:
                key, path = "", src
            full = path if os.path.isabs(path) else os.path.join(ctx.base_dir, path)
            if os.path.isdir(full):
                for f in sorted(os.listdir(full)):
                    if os.path.isfile(os.path.join(full, f)):
                        with open(os.path.join(full, f)) as fh:
                            data[f] = fh.read()
            elif os.path.isfile(full):
                with open(full) as fh:
                    data[key or os.path.basename(path)] = fh.read()
            else:
                raise CliError(f"error reading {path}: no such file or directory")
        if kind == "secret":
            import base64
            secret = {"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": rest[0], "namespace": ns},
                      "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
            if args.type:
                secret["type"] = args.type
            return resolve("secrets"), secret
            return resolve("secrets"), {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                        "metadata": {"name": rest[0], "namespace": ns},
                                        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        return resolve("configmaps"), {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": rest[0], "namespace": ns}, "data": data}
    raise CliError(f'unknown resource to create: "{kind}" (use -f FILE, or one of: deployment, '
                   "namespace, service, job, configmap, secret)")


@command("create", "Create a resource from a file or from stdin")
@arguments(_create_args)
def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    rc = 0
    if args.filename:
        items = [(_object_info(o, s), o) for s, o in _loaded(ctx, args)]
    elif args.kind:
        items = [_generated(ctx, args)]
    else:
        raise CliError("must specify one of -f and -k, or a resource kind to create")
    for info, obj in items:
        ns = _target_ns(ctx, args, info, obj)
        if args.dry_run == "client":
            # nothing is sent: show the object as kubectl would have sent it
            out = _client_shape(obj) if not args.filename else obj
            if args.output:
                print_objects(ctx, info, [out], args.output, single=True)
            else:
                w(ctx, f"{ref(info, out['metadata']['name'])} created (dry run)")
            continue
        try:
            out = ctx.client.create(info.plural, obj, ns, dry_run=args.dry_run == "server")
            name = out["metadata"]["name"]
            if args.output:
                print_objects(ctx, info, [out], args.output, single=True)
            else:
                w(ctx, f"{ref(info, name)} created" + _dry(args))
        except ApiError as e:
            ctx.err.write(api_error(e).message + "\n")  # type: ignore[union-attr]
            rc = 1
    return rc


@command("replace", "Replace a resource by file name (a stale resourceVersion is refused)")
@arguments(lambda p: _file_args(p))
def cmd_replace(ctx: Context, args: argparse.Namespace) -> int:
    rc = 0
    for source, obj in _loaded(ctx, args):
        info = _object_info(obj, source)
        try:
            out = ctx.client.update(info.plural, obj, _target_ns(ctx, args, info, obj))
            w(ctx, f"{ref(info, out['metadata']['name'])} replaced")
        except ApiError as e:
            ctx.err.write(api_error(e).message + "\n")  # type: ignore[union-attr]
            rc = 1
    return rc


# ---- delete ----------------------------------------------------------------------------

def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="*")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("-R", "--recursive", action="store_true")
    add_ns(p, True)
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("--all", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--now", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--cascade", default="background", choices=["background", "foreground", "orphan", "true", "false"])
    p.add_argument("--wait", default="true", choices=["true", "false"], nargs="?", const="true")
    p.add_argument("--timeout", default="60s")
    p.add_argument("--ignore-not-found", action="store_true")


@command("delete", "Delete resources by file names, stdin, resources and names, or by resources and label selector")
@arguments(_delete_args)
def cmd_delete(ctx: Context, args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else namespace_of(ctx, args)
    policy = {"background": "Background", "true": "Background", "foreground": "Foreground",
              "orphan": "Orphan", "false": "Orphan"}[args.cascade]
    grace: int | None = None if args.grace_period < 0 else args.grace_period
    if args.now:
        grace = 1
    if args.force and grace is None:
        grace = 0
    if args.force and grace == 0:
        ctx.err.write("Warning: Immediate deletion does not wait for confirmation that the running "  # type: ignore[union-attr]
                      "resource has been terminated. The resource may continue to run on the cluster indefinitely.\n")
    work: list[tuple[ResourceInfo, str, str | None]] = []
    if args.filename:
        from kbox.cli.manifests import load
        for source, obj in load(args.filename, ctx.base_dir, ctx.stdin, args.recursive):
            info = _object_info(obj, source)
            work.append((info, obj["metadata"]["name"], _target_ns(ctx, args, info, obj)))
    else:
        groups = targets(args.resource)
        for info, names in groups:
            if names:
                work.extend((info, n, ns or ctx.namespace) for n in names)
            elif args.selector or args.all or args.field_selector:
                try:
                    items = ctx.client.list(info.plural, ns if info.namespaced else None,
                                            label_selector=args.selector, field_selector=args.field_selector)["items"]
                except ApiError as e:
                    raise api_error(e)
                work.extend((info, o["metadata"]["name"], o["metadata"].get("namespace")) for o in items)
            else:
                raise CliError("resource(s) were provided, but no name was specified")
    if not work and (args.selector or args.all):
        ctx.err.write("No resources found\n")  # type: ignore[union-attr]
        return 0
    rc = 0
    deleted = []
    for info, name, ons in work:
        try:
            obj = ctx.client.delete(info.plural, name, ons, propagation_policy=policy,
                                    grace_period_seconds=grace)
            verb = "force deleted" if args.force and grace == 0 else "deleted"
            w(ctx, f'{info.singular}{"." + info.group if info.group else ""} "{name}" {verb}')
            deleted.append((info, name, ons, (obj.get("metadata") or {}).get("uid")))
        except ApiError as e:
            if e.code == 404 and args.ignore_not_found:
                continue
            ctx.err.write(api_error(e).message + "\n")  # type: ignore[union-attr]
            rc = 1
    if args.wait == "true" and deleted:
        timeout = parse_duration(args.timeout, 60)
        for info, name, ons, uid in deleted:
            def gone() -> bool:
                try:
                    cur = ctx.client.get(info.plural, name, ons)
                    return bool(uid) and cur["metadata"].get("uid") != uid
                except ApiError as e:
                    return e.code == 404
            if not wait_until(ctx, gone, timeout):
                ctx.err.write(f"error: timed out waiting for the condition on {info.plural}/{name}\n")  # type: ignore[union-attr]
                rc = 1
    return rc


# ---- scale / rollout / set image ------------------------------------------------------------

def _one_target(words: list[str], default_kind: str | None = None) -> tuple[ResourceInfo, str]:
    groups = targets(words)
    if len(groups) != 1 or len(groups[0][1]) != 1:
        raise CliError("exactly one resource name is required (TYPE NAME or TYPE/NAME)")
    return groups[0][0], groups[0][1][0]


def _scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="+")
    add_ns(p)
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--current-replicas", type=int)


@command("scale", "Set a new size for a deployment or replica set")
@arguments(_scale_args)
def cmd_scale(ctx: Context, args: argparse.Namespace) -> int:
    info, name = _one_target(args.resource)
    ns = namespace_of(ctx, args)
    if "scale" not in info.subresources:
        raise CliError(f'cannot scale {info.plural}: it has no scale subresource')
    if args.replicas < 0:
        raise CliError("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    try:
        if args.current_replicas is not None:
            cur = ctx.client.get_scale(info.plural, name, ns)
            if cur["spec"]["replicas"] != args.current_replicas:
                raise CliError(f"Expected replicas to be {args.current_replicas}, was {cur['spec']['replicas']}")
        ctx.client.patch(info.plural, name, {"spec": {"replicas": args.replicas}}, "merge", ns,
                         subresource="scale")
    except ApiError as e:
        if e.code == 404:   # kubectl's own (odd) wording for a missing target
            raise CliError(f"no objects passed to scale {e.message}")
        raise api_error(e)
    w(ctx, f"{ref(info, name)} scaled")
    return 0


def _rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status", "history", "undo", "restart", "pause", "resume"])
    p.add_argument("resource", nargs="+")
    add_ns(p)
    p.add_argument("--to-revision", type=int, default=0)
    p.add_argument("--revision", type=int, default=0)
    p.add_argument("--timeout", default="0s")
    p.add_argument("-w", "--watch", default="true", choices=["true", "false"], nargs="?", const="true")


@command("rollout", "Manage the rollout of a deployment: status, history, undo, restart, pause, resume")
@arguments(_rollout_args)
def cmd_rollout(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.controllers import rollout
    info, name = _one_target(args.resource)
    if info.plural != "deployments":
        raise CliError(f'no rollout support for {info.plural} yet; deployments are supported')
    ns = namespace_of(ctx, args)
    r = ref(info, name)
    try:
        if args.action == "status":
            timeout = parse_duration(args.timeout, 0) or 3600 * 24
            deadline = time.monotonic() + timeout
            last = None
            while True:
                d = ctx.client.get(info.plural, name, ns)
                msg, done = rollout.status(d)
                if msg != last:
                    w(ctx, msg)
                    ctx.out.flush()  # type: ignore[union-attr]
                    last = msg
                if done:
                    return 0
                if args.watch == "false":
                    return 0
                if time.monotonic() >= deadline:
                    raise CliError("timed out waiting for the condition")
                time.sleep(0.2)
        if args.action == "history":
            from kbox.cli import describe as describing
            from kbox.cli.tabwriter import render
            revisions = rollout.history(ctx.client, ns, name)
            if args.revision:
                found = [(cause, rs) for rev, cause, rs in revisions if rev == args.revision]
                if not found:
                    raise CliError("unable to find the specified revision")
                cause, rs = found[0]
                tmpl = json.loads(json.dumps((rs.get("spec") or {}).get("template") or {}))
                if cause:
                    tmpl.setdefault("metadata", {}).setdefault("annotations", {})[
                        rollout.CHANGE_CAUSE] = cause
                # kubectl prints the template with raw tabs here (no alignment)
                pw = describing._W()
                describing._pod_template(pw, tmpl)
                w(ctx, f"{r} with revision #{args.revision}\n" + "".join(pw.parts) + "\n")
                return 0
            table = "REVISION\tCHANGE-CAUSE\n" + "".join(
                f"{rev}\t{cause or '<none>'}\n" for rev, cause, _ in revisions)
            w(ctx, f"{r} \n" + render(table) + "\n")
            return 0
        if args.action == "undo":
            w(ctx, f"{r} {rollout.undo(ctx.client, ns, name, args.to_revision)}")
        elif args.action == "restart":
            w(ctx, f"{r} {rollout.restart(ctx.client, ns, name, iso_time(ctx.clock.now()))}")
        elif args.action == "pause":
            w(ctx, f"{r} {rollout.pause(ctx.client, ns, name)}")
        elif args.action == "resume":
            w(ctx, f"{r} {rollout.resume(ctx.client, ns, name)}")
    except ApiError as e:
        raise api_error(e)
    except rollout.RolloutError as e:
        msg = str(e)
        if msg.startswith("can't restart"):
            msg = f'{info.group_resource} "{name}" {msg}'   # kubectl names the object here
        raise CliError(msg)
    return 0


def _set_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["image"])
    p.add_argument("resource")
    p.add_argument("images", nargs="+", help="CONTAINER=IMAGE ...")
    add_ns(p)


@command("set", "Set specific features on objects: set image TYPE/NAME CONTAINER=IMAGE")
@arguments(_set_args)
def cmd_set(ctx: Context, args: argparse.Namespace) -> int:
    info, name = _one_target([args.resource])
    ns = namespace_of(ctx, args)
    try:
        obj = ctx.client.get(info.plural, name, ns)
        spec = obj["spec"]["template"]["spec"] if "template" in (obj.get("spec") or {}) else obj["spec"]
        names = {c["name"] for c in spec.get("containers", [])}
        changes = {}
        for pair in args.images:
            cname, sep, image = pair.partition("=")
            if not sep:
                raise CliError(f"invalid image argument {pair!r}: use CONTAINER=IMAGE")
            if cname != "*" and cname not in names:
                raise CliError(f'unable to find container named "{cname}"')
            changes[cname] = image
        for c in spec["containers"]:
            if c["name"] in changes or "*" in changes:
                c["image"] = changes.get(c["name"], changes.get("*"))
        ctx.client.update(info.plural, obj, ns)
    except ApiError as e:
        raise api_error(e)
    w(ctx, f"{ref(info, name)} image updated")
    return 0


# ---- logs / exec ----------------------------------------------------------------------------

def _pod_for(ctx: Context, target: str, ns: str) -> str:
    if "/" not in target:
        return target
    info, name = _one_target([target])
    if info.plural == "pods":
        return name
    obj = ctx.client.get(info.plural, name, ns)
    sel = (obj.get("spec") or {}).get("selector")
    from kbox.api.selectors import selector_to_string
    label = selector_to_string(sel) if isinstance(sel, dict) and ("matchLabels" in sel or "matchExpressions" in sel) \
        else ",".join(f"{k}={v}" for k, v in (sel or {}).items())
    pods = ctx.client.list("pods", ns, label_selector=label)["items"]
    pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise CliError(f"no pods found for {target}")
    pods.sort(key=lambda p: ((p.get("status") or {}).get("phase") != "Running", p["metadata"]["name"]))
    if len(pods) > 1:
        ctx.err.write(f"Found {len(pods)} pods, using pod/{pods[0]['metadata']['name']}\n")  # type: ignore[union-attr]
    return pods[0]["metadata"]["name"]


def _logs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod")
    p.add_argument("container_name", nargs="?")
    add_ns(p)
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int, default=-1)
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--timeout", help="stop following after this long")


@command("logs", "Print the logs for a container in a pod")
@arguments(_logs_args)
def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    import threading
    ns = namespace_of(ctx, args)
    container = args.container or args.container_name
    tail = None if args.tail < 0 else args.tail
    try:
        pod = _pod_for(ctx, args.pod, ns)
        if not args.follow:
            ctx.out.write(ctx.client.logs(pod, ns, container=container, previous=args.previous,  # type: ignore[union-attr]
                                          tail_lines=tail, timestamps=args.timestamps))
            return 0
        stop = threading.Event()
        if args.timeout:
            timer = threading.Timer(parse_duration(args.timeout, 0), stop.set)
            timer.daemon = True
            timer.start()

        def link() -> None:   # ctx.stop (dashboard, script end) also ends -f
            while not stop.wait(0.2):
                if ctx.stop.is_set():
                    stop.set()
        threading.Thread(target=link, daemon=True, name="kbox-logs-follow").start()
        for line in ctx.client.stream_logs(pod, ns, container=container, previous=args.previous,
                                           tail_lines=tail, timestamps=args.timestamps, stop=stop):
            ctx.out.write(line)  # type: ignore[union-attr]
            ctx.out.flush()  # type: ignore[union-attr]
            if stop.is_set():
                break
        stop.set()
    except ApiError as e:
        raise api_error(e)
    except KeyboardInterrupt:
        pass
    return 0


def _exec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod")
    add_ns(p)
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")


@command("exec", "Execute a command in a container: exec (POD | TYPE/NAME) [-c CONTAINER] -- COMMAND [args...]")
@arguments(_exec_args)
def cmd_exec(ctx: Context, args: argparse.Namespace) -> int:
    if not args.command_args:
        raise CliError("you must specify at least one command for the container")
    ns = namespace_of(ctx, args)
    stdin = ctx.stdin.read().encode() if args.stdin and ctx.stdin else None
    try:
        # kubectl's attachablePodForObject: TYPE/NAME (deploy, rs, svc, ...) takes the most
        # active pod its selector matches, silently (only logs says "Found N pods")
        from kbox.cli.portforward import pick_pod
        pod = pick_pod(ctx, args.pod, ns)[0]["metadata"]["name"]
        rc, out, err = ctx.client.exec(pod, ns, args.command_args, container=args.container, stdin=stdin)
    except ApiError as e:
        raise api_error(e)
    ctx.out.write(out.decode(errors="replace"))  # type: ignore[union-attr]
    ctx.err.write(err.decode(errors="replace"))  # type: ignore[union-attr]
    if rc:
        ctx.err.write(f"command terminated with exit code {rc}\n")  # type: ignore[union-attr]
    return rc


# ---- label / annotate ---------------------------------------------------------------------------

def _meta_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="+")
    add_ns(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--all", action="store_true")


def _change_meta(ctx: Context, args: argparse.Namespace, field: str, verb: str) -> int:
    words = list(args.resource)
    changes = [wd for wd in words if "=" in wd or wd.endswith("-")]
    rest = [wd for wd in words if wd not in changes]
    if not changes:
        raise CliError(f"at least one {field[:-1]} update is required")
    ns = namespace_of(ctx, args)
    groups = targets(rest)
    todo = []
    for info, names in groups:
        if not names:
            if not (args.selector or args.all or args.field_selector):
                raise CliError("resource(s) were provided, but no name was specified")
            from kbox.cli.util import list_filtered
            items = list_filtered(ctx.client, info.plural, ns if info.namespaced else None,
                                  args.field_selector, args.selector)
            names = [o["metadata"]["name"] for o in items]
        todo.extend((info, n) for n in names)
    for info, name in todo:
        try:
            obj = ctx.client.get(info.plural, name, ns)
            cur = dict(obj["metadata"].get(field) or {})
            patch: dict[str, Any] = {}
            for ch in changes:
                if ch.endswith("-") and "=" not in ch:
                    key = ch[:-1]
                    if key in cur:
                        patch[key] = None
                    elif field == "labels":
                        w(ctx, f'label "{key}" not found.')
                    continue
                k, _, v = ch.partition("=")
                if k in cur and cur[k] != v and not args.overwrite:
                    if field == "annotations":
                        raise CliError("--overwrite is false but found the following declared "
                                       f"annotation(s): '{k}' already has a value ({cur[k]})")
                    raise CliError(f"'{k}' already has a value ({cur[k]}), and --overwrite is false")
                if cur.get(k) != v:
                    patch[k] = v
            if not patch:
                w(ctx, f"{ref(info, name)} not {verb}")
                continue
            ctx.client.patch(info.plural, name, {"metadata": {field: patch}}, "merge", ns)
            # kubectl: removing labels only reads "unlabeled"
            only_removed = all(v is None for v in patch.values())
            w(ctx, f"{ref(info, name)} {'unlabeled' if verb == 'labeled' and only_removed else verb}")
        except ApiError as e:
            raise api_error(e)
    return 0


@command("label", "Update the labels on a resource")
@arguments(_meta_args)
def cmd_label(ctx: Context, args: argparse.Namespace) -> int:
    return _change_meta(ctx, args, "labels", "labeled")


@command("annotate", "Update the annotations on a resource")
@arguments(_meta_args)
def cmd_annotate(ctx: Context, args: argparse.Namespace) -> int:
    return _change_meta(ctx, args, "annotations", "annotated")


# ---- cordon / uncordon / drain --------------------------------------------------------------------

def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", nargs="+")


def _set_unschedulable(ctx: Context, nodes: list[str], value: bool) -> None:
    verb = "cordoned" if value else "uncordoned"
    for n in nodes:
        try:
            node = ctx.client.get("nodes", n)
            if bool((node.get("spec") or {}).get("unschedulable")) == value:
                w(ctx, f"node/{n} already {verb}")
                continue
            ctx.client.patch("nodes", n, {"spec": {"unschedulable": True if value else None}}, "merge")
            w(ctx, f"node/{n} {verb}")
        except ApiError as e:
            raise api_error(e)


@command("cordon", "Mark node as unschedulable")
@arguments(_node_args)
def cmd_cordon(ctx: Context, args: argparse.Namespace) -> int:
    _set_unschedulable(ctx, args.node, True)
    return 0


@command("uncordon", "Mark node as schedulable")
@arguments(_node_args)
def cmd_uncordon(ctx: Context, args: argparse.Namespace) -> int:
    _set_unschedulable(ctx, args.node, False)
    return 0


def _drain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", nargs="+")
    p.add_argument("--ignore-daemonsets", action="store_true")
    p.add_argument("--delete-emptydir-data", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--timeout", default="0s")


@command("drain", "Drain node in preparation for maintenance")
@arguments(_drain_args)
def cmd_drain(ctx: Context, args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout, 0) or 3600.0
    for n in args.node:
        _set_unschedulable(ctx, [n], True)
        from kbox.cli.util import list_filtered
        pods = list_filtered(ctx.client, "pods", None, f"spec.nodeName={n}")
        unmanaged, daemons, evict, local = [], [], [], []
        for p in pods:
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                evict.append(p)
                continue
            owner = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if owner is None:
                unmanaged.append(p)
            elif owner.get("kind") == "DaemonSet":
                daemons.append(p)
                continue
            else:
                evict.append(p)
            if any("emptyDir" in v for v in (p.get("spec") or {}).get("volumes") or []):
                local.append(p)
        problems = []
        if unmanaged and not args.force:
            problems.append("cannot delete Pods that declare no controller (use --force to override): "
                            + ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in unmanaged))
        if daemons and not args.ignore_daemonsets:
            problems.append("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                            + ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemons))
        if local and not getattr(args, "delete_emptydir_data", False):
            problems.append("cannot delete Pods with local storage (use --delete-emptydir-data to override): "
                            + ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in local))
        if problems:
            # kubectl aggregates several errors as [a, b]
            what = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise CliError(f"unable to drain node \"{n}\" due to error: {what}, continuing "
                           f"command...\nThere are pending nodes to be drained:\n {n}")
        if daemons:
            ctx.err.write("Warning: ignoring DaemonSet-managed Pods: " + ", ".join(  # type: ignore[union-attr]
                f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemons) + "\n")
        if unmanaged:
            ctx.err.write("Warning: deleting Pods that declare no controller: " + ", ".join(  # type: ignore[union-attr]
                f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in unmanaged) + "\n")
            evict.extend(unmanaged)
        grace = None if args.grace_period < 0 else args.grace_period
        for p in evict:
            m = p["metadata"]
            w(ctx, f"evicting pod {m['namespace']}/{m['name']}")
            try:
                ctx.client.evict(m["name"], m["namespace"], grace_period_seconds=grace)
            except ApiError as e:
                if e.code != 404:
                    raise api_error(e)
        for p in evict:
            m = p["metadata"]
            def gone() -> bool:
                try:
                    return ctx.client.get("pods", m["name"], m["namespace"])["metadata"]["uid"] != m["uid"]
                except ApiError as e:
                    return e.code == 404
            if not wait_until(ctx, gone, timeout):
                raise CliError(f"drain did not complete within {human_duration(timeout)}")
            w(ctx, f"pod/{m['name']} evicted")
        w(ctx, f"node/{n} drained")
    return 0


# ---- wait ---------------------------------------------------------------------------------------------

def _wait_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="*")
    add_ns(p, True)
    p.add_argument("--for", dest="for_", required=True)
    p.add_argument("--timeout", default="30s")
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("--all", action="store_true")


@command("wait", "Wait for a condition on one or many resources")
@arguments(_wait_args)
def cmd_wait(ctx: Context, args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else namespace_of(ctx, args)
    timeout = parse_duration(args.timeout, 30)
    cond = args.for_
    groups = targets(args.resource)
    todo: list[tuple[ResourceInfo, str, str | None]] = []
    for info, names in groups:
        if names:
            todo.extend((info, n, ns or ctx.namespace) for n in names)
        else:
            if not (args.selector or args.all or args.field_selector):
                raise CliError("resource(s) were provided, but no name was specified")
            from kbox.cli.util import list_filtered
            items = list_filtered(ctx.client, info.plural, ns if info.namespaced else None,
                                  args.field_selector, args.selector)
            todo.extend((info, o["metadata"]["name"], o["metadata"].get("namespace")) for o in items)
    if not todo:
        raise CliError("no matching resources found")

    if cond == "delete":
        check = lambda o: o is None
        verb = "condition met"
    elif cond.startswith("condition="):
        ctype, _, want = cond[len("condition="):].partition("=")
        want = want or "True"
        def check(o: dict[str, Any] | None) -> bool:
            for c in ((o or {}).get("status") or {}).get("conditions") or []:
                if c.get("type", "").lower() == ctype.lower():
                    return str(c.get("status", "")).lower() == want.lower()
            return False
        verb = "condition met"
    elif cond.startswith("jsonpath="):
        expr = cond[len("jsonpath="):]
        path, sep, want = expr.rpartition("=")
        if not sep or not path:
            path, want = expr, None
        path = path.strip("'")
        if not path.startswith("{"):
            path = "{" + path + "}"
        want = want.strip("'\"") if want is not None else None
        def check(o: dict[str, Any] | None) -> bool:
            if o is None:
                return False
            got = output.jsonpath(path, o)
            return got == want if want is not None else got != ""
        verb = "condition met"
    else:
        raise CliError(f'unrecognized condition: "{cond}" (use delete, condition=TYPE[=VALUE], or jsonpath=EXPR=VALUE)')

    deadline = time.monotonic() + timeout
    rc = 0
    for info, name, ons in todo:
        def current() -> dict[str, Any] | None:
            try:
                return ctx.client.get(info.plural, name, ons)
            except ApiError as e:
                if e.code == 404:
                    return None
                raise
        if cond != "delete" and current() is None:
            ctx.err.write(f'Error from server (NotFound): {info.group_resource} "{name}" not found\n')  # type: ignore[union-attr]
            rc = 1
            continue
        ok = wait_until(ctx, lambda: check(current()), max(0.0, deadline - time.monotonic()))
        if ok:
            w(ctx, f"{ref(info, name)} {verb}")
        else:
            ctx.err.write(f"error: timed out waiting for the condition on {info.plural}/{name}\n")  # type: ignore[union-attr]
            rc = 1
    return rc


# ---- top / events / api-resources / version ---------------------------------------------------------

def _top_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["nodes", "node", "no", "pods", "pod", "po"])
    p.add_argument("name", nargs="?")
    add_ns(p, True)
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("-l", "--selector", help="label selector")
    p.add_argument("--containers", action="store_true", help="pods: one row per container")
    p.add_argument("--sort-by", choices=["cpu", "memory"], help="highest usage first")


def _cpu_m(q: str) -> int:
    if q.endswith("n"):
        return int(q[:-1]) // 1_000_000
    if q.endswith("u"):
        return int(q[:-1]) // 1000
    if q.endswith("m"):
        return int(q[:-1])
    return int(float(q) * 1000)


def _mem_mi(q: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    for u, f in units.items():
        if q.endswith(u):
            return int(float(q[:-2]) * f)
    return int(float(q) / 1024 / 1024)


@command("top", "Display resource (CPU/memory) usage of nodes or pods")
@arguments(_top_args)
def cmd_top(ctx: Context, args: argparse.Namespace) -> int:
    try:
        if args.what in ("nodes", "node", "no"):
            metrics = ctx.client.get_metrics("nodes")["items"]
            nodes = {n["metadata"]["name"]: n for n in ctx.client.list("nodes")["items"]}
            rows = []
            for m in sorted(metrics, key=lambda x: x["metadata"]["name"]):
                name = m["metadata"]["name"]
                if args.name and name != args.name:
                    continue
                alloc = ((nodes.get(name) or {}).get("status") or {}).get("allocatable") or {}
                cpu, mem = _cpu_m(m["usage"]["cpu"]), _mem_mi(m["usage"]["memory"])
                cpu_a = _cpu_m(alloc.get("cpu", "0")) or 1
                mem_a = _mem_mi(alloc.get("memory", "0")) or 1
                rows.append([name, f"{cpu}m", f"{cpu * 100 // cpu_a}%", f"{mem}Mi", f"{mem * 100 // mem_a}%"])
            w(ctx, output.render_rows(None if args.no_headers else ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows).rstrip("\n"))
        else:
            ns = None if args.all_namespaces else namespace_of(ctx, args)
            metrics = ctx.client.get_metrics("pods", ns)["items"]
            from kbox.api.selectors import parse_label_selector
            sel = parse_label_selector(args.selector) if args.selector else None
            scored = []
            for m in sorted(metrics, key=lambda x: (x["metadata"].get("namespace", ""), x["metadata"]["name"])):
                if args.name and m["metadata"]["name"] != args.name:
                    continue
                if sel is not None and not sel.matches(m["metadata"].get("labels") or {}):
                    continue
                pre = [m["metadata"].get("namespace", "")] if ns is None else []
                if args.containers:
                    for c in m.get("containers") or []:
                        cpu, mem = _cpu_m(c["usage"]["cpu"]), _mem_mi(c["usage"]["memory"])
                        scored.append((cpu, mem, pre + [m["metadata"]["name"], c["name"], f"{cpu}m", f"{mem}Mi"]))
                    continue
                cpu = sum(_cpu_m(c["usage"]["cpu"]) for c in m.get("containers") or [])
                mem = sum(_mem_mi(c["usage"]["memory"]) for c in m.get("containers") or [])
                scored.append((cpu, mem, pre + [m["metadata"]["name"], f"{cpu}m", f"{mem}Mi"]))
            if args.sort_by:
                scored.sort(key=lambda r: -(r[0] if args.sort_by == "cpu" else r[1]))
            rows = [r[2] for r in scored]
            head = (["NAMESPACE"] if ns is None else []) + (["POD", "NAME"] if args.containers else ["NAME"]) \
                + ["CPU(cores)", "MEMORY(bytes)"]
            if not rows:
                ctx.err.write(f"No resources found{f' in {ns} namespace' if ns else ''}.\n")  # type: ignore[union-attr]
                return 0
            w(ctx, output.render_rows(None if args.no_headers else head, rows).rstrip("\n"))
    except ApiError as e:
        raise api_error(e)
    return 0


def _events_args(p: argparse.ArgumentParser) -> None:
    add_ns(p, True)
    p.add_argument("--for", dest="for_")
    p.add_argument("--types")
    p.add_argument("-w", "--watch", action="store_true")
    p.add_argument("--timeout")
    p.add_argument("--max-events", type=int)
    p.add_argument("-o", "--output")


def _events_table(evs: list[dict[str, Any]], now: float, all_ns: bool, headers: bool = True) -> str:
    """`kubectl events` rows: LAST SEEN with repeat counts, OBJECT as Kind/name."""
    rows = []
    for e in evs:
        inv = e.get("involvedObject") or {}
        first = e.get("firstTimestamp") or e.get("eventTime")
        last = e.get("lastTimestamp") or first
        seen = age(last, now)
        if int(e.get("count") or 0) > 1:
            seen = f"{seen} (x{e['count']} over {age(first, now)})"
        row = [seen, e.get("type", ""), e.get("reason", ""),
               f"{inv.get('kind', '')}/{inv.get('name', '')}", (e.get("message") or "").strip()]
        rows.append(([e["metadata"].get("namespace", "")] if all_ns else []) + row)
    head = (["NAMESPACE"] if all_ns else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    return output.render_rows(head if headers else None, rows)


@command("events", "List events")
@arguments(_events_args)
def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else namespace_of(ctx, args)
    sel = None
    if args.for_:
        info, name = _one_target([args.for_])
        sel = f"involvedObject.kind={info.kind},involvedObject.name={name}"
    types = {t.strip().lower() for t in args.types.split(",")} if args.types else None
    from kbox.cli.util import list_filtered
    evs = list_filtered(ctx.client, "events", ns, sel)
    evs = [e for e in evs if not types or e.get("type", "").lower() in types]
    evs.sort(key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "", e["metadata"].get("creationTimestamp", "")))
    info = resolve("events")
    if args.output:
        print_objects(ctx, info, evs, args.output)
    elif evs:
        w(ctx, _events_table(evs, ctx.clock.now(), ns is None).rstrip("\n"))
    elif not args.watch:
        ctx.err.write(f"No events found{f' in {ns} namespace' if ns else ''}.\n")  # type: ignore[union-attr]
    if args.watch:
        ns_args = argparse.Namespace(selector=None, field_selector=sel, timeout=args.timeout,
                                     max_events=args.max_events, output=None, all_namespaces=ns is None)
        _watch_rows(ctx, info, ns, ns_args, [])
    return 0


def _api_resources_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespaced", choices=["true", "false"], help="only (non-)namespaced resources")
    p.add_argument("--api-group", help="only this API group ('' for the core group)")
    p.add_argument("-o", "--output", choices=["wide", "name"])
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--sort-by", choices=["name", "kind"])


@command("api-resources", "Print the supported API resources on the server", needs_cluster=False)
@arguments(_api_resources_args)
def cmd_api_resources(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.api import metrics
    # (name, shortnames, group, apiVersion, namespaced, kind, verbs, categories), discovery order
    items = [(r.plural, ",".join(r.short_names), r.group, r.api_version, r.namespaced, r.kind,
              ",".join(sorted(r.verbs)), ",".join(r.categories))
             for r in sorted(RESOURCES, key=lambda r: (r.group, r.plural))]
    items += [(m["name"], "", metrics.GROUP, metrics.API_VERSION, m["namespaced"], m["kind"],
               ",".join(m["verbs"]), "") for m in metrics.RESOURCES]
    if args.namespaced:
        items = [i for i in items if i[4] == (args.namespaced == "true")]
    if args.api_group is not None:
        items = [i for i in items if i[2] == args.api_group]
    if args.sort_by == "name":
        items.sort(key=lambda i: i[0])
    elif args.sort_by == "kind":
        items.sort(key=lambda i: i[5])
    if args.output == "name":
        for i in items:
            w(ctx, f"{i[0]}.{i[2]}" if i[2] else i[0])
        return 0
    head = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = [[i[0], i[1], i[3], str(i[4]).lower(), i[5]] for i in items]
    if args.output == "wide":
        head += ["VERBS", "CATEGORIES"]
        rows = [r + [i[6], i[7]] for r, i in zip(rows, items)]
    ctx.out.write(output.render_rows(None if args.no_headers else head, rows))  # type: ignore[union-attr]
    return 0


@command("version", "Print the client and server version information", needs_cluster=False)
@arguments(lambda p: p.add_argument("--client", action="store_true"))
def cmd_version(ctx: Context, args: argparse.Namespace) -> int:
    import kbox
    from kbox.api.version import KUBERNETES_VERSION
    w(ctx, f"Client Version: kbox {kbox.__version__} (Kubernetes API {KUBERNETES_VERSION})")
    if not args.client and ctx.client is not None:
        try:
            w(ctx, f"Server Version: {ctx.client.version()['gitVersion']}")
        except ApiError as e:
            raise api_error(e)
    return 0


# ---- kbox's own node operations ------------------------------------------------------------------------

def _kbox_node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["add", "remove", "stop", "start", "kill"])
    p.add_argument("name")
    p.add_argument("--cpu")
    p.add_argument("--memory")
    p.add_argument("--pods", type=int)


@command("node", "kbox's node operations: node add|remove|stop|start|kill NAME")
@arguments(_kbox_node_args)
def cmd_node(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.ops is None:
        raise CliError("node operations need a kbox cluster (not available here)")
    kw = {k: v for k, v in (("cpu", args.cpu), ("memory", args.memory), ("pods", args.pods)) if v is not None}
    try:
        ctx.ops.node_action(args.action, args.name, **kw)
    except ApiError as e:
        raise api_error(e)
    except (ValueError, LookupError) as e:
        raise CliError(str(e).strip("'\""))
    past = {"add": "added", "remove": "removed", "stop": "stopped", "start": "started", "kill": "killed"}
    w(ctx, f"node/{args.name} {past[args.action]}")
    return 0


def all_commands() -> Iterable[str]:
    from kbox.cli.registry import names
    return names()
