"""What `kubectl get` shows for each kind: column definitions and cells.

Each kind has a list of columns (name, type, priority: 1 marks the extra
`-o wide` columns) and a function turning an object into cells, computed as
kubectl / kube-apiserver's printers compute them (a pod's STATUS, READY
counts, ages). The CLI prints these; the API server can serve the same as
meta.k8s.io Table responses. No CLI or terminal code here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbox.clock import parse_time

Column = tuple[str, str, int]          # (name, type, priority)


def age(ts: str | None, now: float) -> str:
    """kubectl's human duration: 5s, 3m12s, 2d3h, 45d."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration(max(0.0, now - t))


def human_duration(s: float) -> str:
    s = int(s)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d"


_EMPTY: dict[str, Any] = {}


def _sidecars(pod: dict[str, Any]) -> set[str]:
    """Names of the sidecars: init containers with restartPolicy Always."""
    return {c.get("name", "") for c in (pod.get("spec") or _EMPTY).get("initContainers") or ()
            if c.get("restartPolicy") == "Always"}


def _condition_true(pod: dict[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (pod.get("status") or _EMPTY).get("conditions") or [])


def _last_finished(cs: dict[str, Any], last: str) -> str:
    """The later of `last` and when this container's previous run finished."""
    prev = cs.get("lastState")
    if prev:
        term = prev.get("terminated")
        if term:
            fin = term.get("finishedAt") or ""
            if fin > last:
                return fin
    return last


def pod_status(pod: dict[str, Any]) -> tuple[str, int, int, int, str]:
    """(STATUS, ready, total, restarts, last restart time) as kubectl computes them for a pod.
    Every pod of a listing (and of the dashboard) goes through here: the common case, no
    init containers and running containers, takes the fewest lookups."""
    status = pod.get("status") or _EMPTY
    spec = pod.get("spec") or _EMPTY
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or ():
        if c.get("reason") == "SchedulingGated" and c.get("type") == "PodScheduled":
            reason = "SchedulingGated"
    total = len(spec.get("containers") or ())
    ready = 0
    restarts = 0
    last = ""
    sidecar_restarts = 0
    sidecar_last = ""
    initializing = False
    init_statuses = status.get("initContainerStatuses")
    if init_statuses:
        sidecars = _sidecars(pod)
        n_init = len(spec.get("initContainers") or ())
        total += sum(1 for cs in init_statuses if cs.get("name", "") in sidecars)
        for i, cs in enumerate(init_statuses):
            count = int(cs.get("restartCount") or 0)
            restarts += count
            last = _last_finished(cs, last)
            sidecar = cs.get("name", "") in sidecars
            if sidecar:
                sidecar_restarts += count
                sidecar_last = _last_finished(cs, sidecar_last)
            st = cs.get("state") or _EMPTY
            term, wait = st.get("terminated"), st.get("waiting")
            if term is not None and term.get("exitCode") == 0:
                continue
            if sidecar and cs.get("started"):
                if cs.get("ready"):
                    ready += 1
                continue
            if term is not None:
                if term.get("reason"):
                    reason = "Init:" + term["reason"]
                elif term.get("signal"):
                    reason = f"Init:Signal:{term['signal']}"
                else:
                    reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
            elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
                reason = "Init:" + wait["reason"]
            else:
                reason = f"Init:{i}/{n_init}"
            initializing = True
            break
    if not initializing or _condition_true(pod, "Initialized"):
        restarts, last = sidecar_restarts, sidecar_last
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            count = cs.get("restartCount")
            if count:
                restarts += int(count)
            last = _last_finished(cs, last)
            st = cs.get("state") or _EMPTY
            wait = st.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
                continue
            term = st.get("terminated")
            if term is not None:
                if term.get("reason"):
                    reason = term["reason"]
                else:
                    reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and st.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(pod, "Ready") else "NotReady"
    if (pod.get("metadata") or _EMPTY).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, total, restarts, last


def _cond(obj: dict[str, Any], t: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == t:
            return c.get("status")
    return None


def _selector(sel: dict[str, Any] | None) -> str:
    if not sel:
        return "<none>"
    from kbox.api.selectors import selector_to_string
    return selector_to_string(sel) or "<none>"


def _images(template: dict[str, Any]) -> tuple[str, str]:
    cs = ((template or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _node_roles(n: dict[str, Any]) -> str:
    roles = sorted(k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    return ",".join(roles) or "<none>"


def _node_status(n: dict[str, Any]) -> str:
    ready = _cond(n, "Ready")
    s = "Ready" if ready == "True" else "NotReady" if ready in ("False", "Unknown") else "Unknown"
    if (n.get("spec") or {}).get("unschedulable"):
        s += ",SchedulingDisabled"
    return s


def _ports(svc: dict[str, Any]) -> str:
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(svc: dict[str, Any]) -> str:
    spec = svc.get("spec") or {}
    if spec.get("externalIPs"):
        return ",".join(spec["externalIPs"])
    if spec.get("type") == "LoadBalancer":
        ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return ",".join(i.get("ip") or i.get("hostname", "") for i in ing) or "<pending>"
    return "<none>"


def _endpoints(ep: dict[str, Any]) -> str:
    out = []
    for s in ep.get("subsets") or []:
        ports = s.get("ports") or [{}]
        for a in s.get("addresses") or []:
            for p in ports:
                out.append(f"{a.get('ip')}:{p.get('port')}" if p.get("port") else a.get("ip"))
    if not out:
        return "<none>"
    shown = ",".join(out[:3])
    return shown + (f" + {len(out) - 3} more..." if len(out) > 3 else "")


def _job_duration(job: dict[str, Any], now: float) -> str:
    st = job.get("status") or {}
    start = parse_time(st.get("startTime"))
    if start is None:
        return ""
    end = parse_time(st.get("completionTime")) or now
    return human_duration(end - start)


def _job_completions(job: dict[str, Any]) -> str:
    """`3/3`; without completions, `N/1` (or `N/1 of P` when parallel), as kubectl prints."""
    succeeded = _st(job).get("succeeded", 0)
    completions = _sp(job).get("completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = _sp(job).get("parallelism", 1)
    return f"{succeeded}/1 of {parallelism}" if parallelism and parallelism > 1 else f"{succeeded}/1"


def _job_status(job: dict[str, Any]) -> str:
    for t, label in (("Complete", "Complete"), ("Failed", "Failed"), ("FailureTarget", "FailureTarget"),
                     ("Suspended", "Suspended")):
        if _cond(job, t) == "True":
            return label
    return "Running"


def _event_object(ev: dict[str, Any]) -> str:
    inv = ev.get("involvedObject") or {}
    return f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}"


def _event_last_seen(ev: dict[str, Any], now: float) -> str:
    ts = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp")
    return age(ts, now)


def _event_first_seen(ev: dict[str, Any], now: float) -> str:
    return age(ev.get("firstTimestamp") or ev.get("eventTime"), now)


def _event_source(ev: dict[str, Any]) -> str:
    """`kubelet, node-1`: the source component and host (or the reporting controller and
    instance of events.k8s.io-style events)."""
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ""
    host = src.get("host") or ev.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_count(ev: dict[str, Any]) -> int:
    series = ev.get("series") or {}
    if series.get("count"):
        return int(series["count"])
    return int(ev.get("count") or 0) or 1


def _controller_of(obj: dict[str, Any]) -> str:
    for r in obj["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            group = r.get("apiVersion", "").split("/")[0] if "/" in r.get("apiVersion", "") else ""
            kind = r.get("kind", "").lower()
            return f"{kind}.{group}/{r.get('name')}" if group else f"{kind}/{r.get('name')}"
    return "<none>"


Cells = Callable[[dict[str, Any], float], list[Any]]

_st = lambda o: o.get("status") or {}
_sp = lambda o: o.get("spec") or {}


def _pod_cells(p: dict[str, Any], now: float) -> list[Any]:
    reason, ready, total, restarts, last = pod_status(p)
    st = _st(p)
    restarts_s = str(restarts)
    if restarts and last:
        restarts_s = f"{restarts} ({age(last, now)} ago)"
    gates = (_sp(p).get("readinessGates") or [])
    if gates:
        true = sum(1 for g in gates if _condition_true(p, g.get("conditionType", "")))
        gates_s = f"{true}/{len(gates)}"
    else:
        gates_s = "<none>"
    return [p["metadata"]["name"], f"{ready}/{total}", reason, restarts_s,
            age(p["metadata"].get("creationTimestamp"), now),
            st.get("podIP") or "<none>", _sp(p).get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>", gates_s]


TABLES: dict[str, tuple[list[Column], Cells]] = {
    "pods": ([("NAME", "string", 0), ("READY", "string", 0), ("STATUS", "string", 0),
              ("RESTARTS", "string", 0), ("AGE", "string", 0), ("IP", "string", 1),
              ("NODE", "string", 1), ("NOMINATED NODE", "string", 1),
              ("READINESS GATES", "string", 1)], _pod_cells),
    "nodes": ([("NAME", "string", 0), ("STATUS", "string", 0), ("ROLES", "string", 0),
               ("AGE", "string", 0), ("VERSION", "string", 0), ("INTERNAL-IP", "string", 1),
               ("EXTERNAL-IP", "string", 1), ("OS-IMAGE", "string", 1),
               ("KERNEL-VERSION", "string", 1), ("CONTAINER-RUNTIME", "string", 1)],
              lambda n, now: [n["metadata"]["name"], _node_status(n), _node_roles(n),
                              age(n["metadata"].get("creationTimestamp"), now),
                              (_st(n).get("nodeInfo") or {}).get("kubeletVersion", ""),
                              next((a["address"] for a in _st(n).get("addresses") or [] if a.get("type") == "InternalIP"), "<none>"),
                              next((a["address"] for a in _st(n).get("addresses") or [] if a.get("type") == "ExternalIP"), "<none>"),
                              (_st(n).get("nodeInfo") or {}).get("osImage", ""),
                              (_st(n).get("nodeInfo") or {}).get("kernelVersion", ""),
                              (_st(n).get("nodeInfo") or {}).get("containerRuntimeVersion", "")]),
    "deployments": ([("NAME", "string", 0), ("READY", "string", 0), ("UP-TO-DATE", "integer", 0),
                     ("AVAILABLE", "integer", 0), ("AGE", "string", 0), ("CONTAINERS", "string", 1),
                     ("IMAGES", "string", 1), ("SELECTOR", "string", 1)],
                    lambda d, now: [d["metadata"]["name"],
                                    f"{_st(d).get('readyReplicas', 0)}/{_sp(d).get('replicas', 1)}",
                                    _st(d).get("updatedReplicas", 0), _st(d).get("availableReplicas", 0),
                                    age(d["metadata"].get("creationTimestamp"), now),
                                    *_images(_sp(d).get("template")), _selector(_sp(d).get("selector"))]),
    "replicasets": ([("NAME", "string", 0), ("DESIRED", "integer", 0), ("CURRENT", "integer", 0),
                     ("READY", "integer", 0), ("AGE", "string", 0), ("CONTAINERS", "string", 1),
                     ("IMAGES", "string", 1), ("SELECTOR", "string", 1)],
                    lambda r, now: [r["metadata"]["name"], _sp(r).get("replicas", 1),
                                    _st(r).get("replicas", 0), _st(r).get("readyReplicas", 0),
                                    age(r["metadata"].get("creationTimestamp"), now),
                                    *_images(_sp(r).get("template")), _selector(_sp(r).get("selector"))]),
    "daemonsets": ([("NAME", "string", 0), ("DESIRED", "integer", 0), ("CURRENT", "integer", 0),
                    ("READY", "integer", 0), ("UP-TO-DATE", "integer", 0), ("AVAILABLE", "integer", 0),
                    ("NODE SELECTOR", "string", 0), ("AGE", "string", 0), ("CONTAINERS", "string", 1),
                    ("IMAGES", "string", 1), ("SELECTOR", "string", 1)],
                   lambda d, now: [d["metadata"]["name"], _st(d).get("desiredNumberScheduled", 0),
                                   _st(d).get("currentNumberScheduled", 0), _st(d).get("numberReady", 0),
                                   _st(d).get("updatedNumberScheduled", 0), _st(d).get("numberAvailable", 0),
                                   ",".join(f"{k}={v}" for k, v in (((_sp(d).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}).items()) or "<none>",
                                   age(d["metadata"].get("creationTimestamp"), now),
                                   *_images(_sp(d).get("template")), _selector(_sp(d).get("selector"))]),
    "jobs": ([("NAME", "string", 0), ("STATUS", "string", 0), ("COMPLETIONS", "string", 0),
              ("DURATION", "string", 0), ("AGE", "string", 0), ("CONTAINERS", "string", 1),
              ("IMAGES", "string", 1), ("SELECTOR", "string", 1)],
             lambda j, now: [j["metadata"]["name"], _job_status(j), _job_completions(j),
                             _job_duration(j, now), age(j["metadata"].get("creationTimestamp"), now),
                             *_images(_sp(j).get("template")), _selector(_sp(j).get("selector"))]),
    "services": ([("NAME", "string", 0), ("TYPE", "string", 0), ("CLUSTER-IP", "string", 0),
                  ("EXTERNAL-IP", "string", 0), ("PORT(S)", "string", 0), ("AGE", "string", 0),
                  ("SELECTOR", "string", 1)],
                 lambda s, now: [s["metadata"]["name"], _sp(s).get("type", "ClusterIP"),
                                 _sp(s).get("clusterIP") or "<none>", _external_ip(s), _ports(s),
                                 age(s["metadata"].get("creationTimestamp"), now),
                                 ",".join(f"{k}={v}" for k, v in (_sp(s).get("selector") or {}).items()) or "<none>"]),
    "endpoints": ([("NAME", "string", 0), ("ENDPOINTS", "string", 0), ("AGE", "string", 0)],
                  lambda e, now: [e["metadata"]["name"], _endpoints(e),
                                  age(e["metadata"].get("creationTimestamp"), now)]),
    "namespaces": ([("NAME", "string", 0), ("STATUS", "string", 0), ("AGE", "string", 0)],
                   lambda n, now: [n["metadata"]["name"], _st(n).get("phase", "Active"),
                                   age(n["metadata"].get("creationTimestamp"), now)]),
    "events": ([("LAST SEEN", "string", 0), ("TYPE", "string", 0), ("REASON", "string", 0),
                ("OBJECT", "string", 0), ("SUBOBJECT", "string", 1), ("SOURCE", "string", 1),
                ("MESSAGE", "string", 0), ("FIRST SEEN", "string", 1), ("COUNT", "string", 1),
                ("NAME", "string", 1)],
               lambda e, now: [_event_last_seen(e, now), e.get("type", ""), e.get("reason", ""),
                               _event_object(e), (e.get("involvedObject") or {}).get("fieldPath", ""),
                               _event_source(e), (e.get("message") or "").strip(),
                               _event_first_seen(e, now), _event_count(e),
                               e["metadata"]["name"]]),
    "configmaps": ([("NAME", "string", 0), ("DATA", "integer", 0), ("AGE", "string", 0)],
                   lambda c, now: [c["metadata"]["name"], len(c.get("data") or {}) + len(c.get("binaryData") or {}),
                                   age(c["metadata"].get("creationTimestamp"), now)]),
    "secrets": ([("NAME", "string", 0), ("TYPE", "string", 0), ("DATA", "integer", 0), ("AGE", "string", 0)],
                lambda s, now: [s["metadata"]["name"], s.get("type", "Opaque"), len(s.get("data") or {}),
                                age(s["metadata"].get("creationTimestamp"), now)]),
    "serviceaccounts": ([("NAME", "string", 0), ("SECRETS", "integer", 0), ("AGE", "string", 0)],
                        lambda s, now: [s["metadata"]["name"], len(s.get("secrets") or []),
                                        age(s["metadata"].get("creationTimestamp"), now)]),
    "controllerrevisions": ([("NAME", "string", 0), ("CONTROLLER", "string", 0),
                             ("REVISION", "integer", 0), ("AGE", "string", 0)],
                            lambda r, now: [r["metadata"]["name"], _controller_of(r),
                                            r.get("revision", 0),
                                            age(r["metadata"].get("creationTimestamp"), now)]),
    "leases": ([("NAME", "string", 0), ("HOLDER", "string", 0), ("AGE", "string", 0)],
               lambda l, now: [l["metadata"]["name"], _sp(l).get("holderIdentity", ""),
                               age(l["metadata"].get("creationTimestamp"), now)]),
}

DEFAULT_TABLE: tuple[list[Column], Cells] = (
    [("NAME", "string", 0), ("AGE", "string", 0)],
    lambda o, now: [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"), now)])


def table_for(plural: str) -> tuple[list[Column], Cells]:
    return TABLES.get(plural, DEFAULT_TABLE)


def to_table(plural: str, objs: list[dict[str, Any]], now: float, *,
             include_object: str = "Metadata", resource_version: str = "",
             continue_token: str | None = None) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table, as kube-apiserver answers `Accept: ...;as=Table`.

    include_object: "None", "Metadata" (PartialObjectMetadata, kubectl's default) or
    "Object" (the full object), as the `includeObject` query parameter asks.
    """
    columns, cells = table_for(plural)
    descriptions = {"NAME": "Name must be unique within a namespace.",
                    "AGE": "CreationTimestamp is a timestamp representing the server time when "
                           "this object was created."}
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": cells(o, now)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata") or {}}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "NAME" else "",
                                   "description": descriptions.get(n, ""), "priority": p}
                                  for n, t, p in columns],
            "rows": rows}
