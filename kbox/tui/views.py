"""Views per kind, k9s-style: one spec per resource kind, registered in VIEWS.

A spec says which feed it reads, its columns, how one object becomes a row
(cells carry theme roles, never colours), how rows sort, which actions its
keys may run, and where `enter` drills down to. Adding a kind to the
dashboard is one spec here. The dashboard's own `:` words (`:pods`,
`:deploy`, ...) are each spec's aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kbox.api import tables
from kbox.clock import parse_time
from kbox.scheduler.quantity import cpu_millis, units
from kbox.tui.table import Age, Bar, Column, Row, Span
from kbox.tui import theme

Obj = dict[str, Any]

# rows are recomputed for every changed object: the pure lookups they repeat are cached
status_role = lru_cache(maxsize=2048)(theme.status_role)
component_role = lru_cache(maxsize=256)(theme.component_role)
parse_ts = lru_cache(maxsize=8192)(parse_time)

# actions a key can run on a row (the app maps them to registry commands)
DESCRIBE, YAML, LOGS, DELETE, SCALE, RESTART, CORDON, KILL = (
    "describe", "yaml", "logs", "delete", "scale", "restart", "cordon", "kill")
COMMON = frozenset({DESCRIBE, YAML, DELETE})


_EMPTY: Obj = {}
_FINISHED = ("Succeeded", "Failed")


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _st(o: Obj) -> Obj:
    return o.get("status") or {}


def _sp(o: Obj) -> Obj:
    return o.get("spec") or {}


def created(o: Obj) -> Age:
    return Age(parse_ts(_meta(o).get("creationTimestamp")))


def by_name(o: Obj) -> str:
    """Namespace, then name: one string (NUL never occurs in either, and sorts first), so a
    first fill of 5,000 rows sorts on string compares instead of tuple ones (a third of it)."""
    m = _meta(o)
    return f"{m.get('namespace') or ''}\x00{m.get('name') or ''}"


def owner_uid(o: Obj) -> str | None:
    for ref in _meta(o).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


@dataclass(frozen=True)
class Scope:
    """What a drilled-down view shows: the children of one object (k9s's drill-down)."""
    title: str = ""
    owner_uid: str | None = None
    node: str | None = None
    namespace: str | None = None
    selector: tuple[tuple[str, str], ...] | None = None

    def matches(self, o: Obj) -> bool:
        if self.owner_uid is not None and owner_uid(o) != self.owner_uid:
            return False
        if self.node is not None and _sp(o).get("nodeName") != self.node:
            return False
        m = _meta(o)
        if self.namespace is not None and m.get("namespace") != self.namespace:
            return False
        if self.selector is not None:
            labels = m.get("labels") or {}
            if not self.selector or any(labels.get(k) != v for k, v in self.selector):
                return False
        return True


UNSCOPED = Scope()


class RowContext:
    """What row renderers may read besides the object: node usage sums (nodes pane)."""

    def __init__(self) -> None:
        self.usage: NodeUsage = NodeUsage()


@dataclass(frozen=True)
class ViewSpec:
    name: str                           # the view's name, also its `:` word
    resource: str                       # the feed it reads (plural)
    kind: str                           # the word commands take (`pod`, `deployment`)
    columns: tuple[Column, ...]
    row: Callable[[Obj, RowContext], Row]
    aliases: tuple[str, ...] = ()
    sort_key: Callable[[Obj], Any] = by_name
    actions: frozenset[str] = COMMON
    drill: Callable[[Obj], tuple[str, Scope] | None] | None = None
    namespaced: bool = True
    depends: tuple[str, ...] = ()       # other feeds its rows read (Model.touched says which rows)

    def target(self, o: Obj) -> list[str]:
        """`kind name [-n ns]` words for registry commands about this object."""
        m = _meta(o)
        words = [self.kind, m.get("name", "")]
        if self.namespaced and m.get("namespace"):
            words += ["-n", m["namespace"]]
        return words


# ---- pods --------------------------------------------------------------------------

def pod_row(p: Obj, rc: RowContext) -> Row:
    reason, ready, total, restarts, _ = tables.pod_status(p)
    m, st = _meta(p), _st(p)
    return (m.get("namespace", ""), m.get("name", ""), f"{ready}/{total}",
            (reason, status_role(reason)), str(restarts), created(p),
            st.get("podIP") or "<none>", _sp(p).get("nodeName") or "<none>")


POD_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 20), Column("READY", 5),
               Column("STATUS", 17), Column("RESTARTS", 8, priority=3), Column("AGE", 6),
               Column("IP", 13, priority=4), Column("NODE", 14, priority=1))

# ---- nodes ---------------------------------------------------------------------------


class NodeUsage:
    """CPU and memory requested on each node: the sum over its pods, kept by pod diffs."""

    def __init__(self) -> None:
        self.by_pod: dict[str, tuple[str, int, int]] = {}     # pod uid -> (node, millicpu, bytes)
        self.by_node: dict[str, list[int]] = {}               # node -> [millicpu, bytes, pods]
        self.touched: set[str] = set()                        # nodes whose sums changed

    def take_touched(self) -> set[str]:
        """The nodes whose sums changed since the last call."""
        touched, self.touched = self.touched, set()
        return touched

    def _add(self, node: str, cpu: int, mem: int, sign: int) -> None:
        self.touched.add(node)
        acc = self.by_node.get(node)
        if acc is None:
            acc = self.by_node[node] = [0, 0, 0]
        acc[0] += sign * cpu
        acc[1] += sign * mem
        acc[2] += sign

    def update(self, uid: str, pod: Obj | None) -> None:
        """Account one pod (None: gone)."""
        new = None
        if pod is not None:
            spec = pod.get("spec") or _EMPTY
            node = spec.get("nodeName")
            if node and (pod.get("status") or _EMPTY).get("phase") not in _FINISHED:
                cpu = mem = 0
                for c in spec.get("containers") or ():
                    res = c.get("resources")
                    req = res.get("requests") if res else None
                    if req:
                        cpu += cpu_millis(req.get("cpu"))
                        mem += units(req.get("memory"))
                new = (node, cpu, mem)
        old = self.by_pod.get(uid)
        if old == new:
            return
        if old is not None:
            self._add(old[0], old[1], old[2], -1)
            del self.by_pod[uid]
        if new is not None:
            self._add(new[0], new[1], new[2], 1)
            self.by_pod[uid] = new

    def of(self, node: str) -> tuple[int, int, int]:
        acc = self.by_node.get(node) or [0, 0, 0]
        return acc[0], acc[1], acc[2]


def node_state(n: Obj) -> tuple[str, str]:
    """(STATUS text, role) as kubectl shows it, with its node role."""
    text = tables._node_status(n)
    if text.startswith("NotReady") or text.startswith("Unknown"):
        return text, "node-notready"
    if "SchedulingDisabled" in text:
        return text, "node-cordoned"
    return text, "node-ready"


def _fmt_mem(b: int) -> str:
    for suf, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if b >= size:
            v = b / size
            return f"{v:.0f}{suf}" if v >= 10 or v == int(v) else f"{v:.1f}{suf}"
    return str(b)


def _bar(used: int, total: int) -> Bar:
    frac = used / total if total else 0.0
    role = "status-failed" if frac > 0.9 else "status-pending" if frac > 0.7 else "status-running"
    return Bar(frac, f"{round(frac * 100):3d}%", role)


def node_row(n: Obj, rc: RowContext) -> Row:
    m = _meta(n)
    name = m.get("name", "")
    alloc = _st(n).get("allocatable") or _st(n).get("capacity") or {}
    cpu, mem, pods = rc.usage.of(name)
    taints = _sp(n).get("taints") or []
    taint_text = ",".join(f"{t.get('key', '').rsplit('/', 1)[-1]}:{t.get('effect', '')}"
                          for t in taints) or "<none>"
    text, role = node_state(n)
    max_pods = units(alloc.get("pods")) or 0
    return (name, (text, role), tables._node_roles(n), _bar(cpu, cpu_millis(alloc.get("cpu"))),
            _bar(mem, units(alloc.get("memory"))), f"{pods}/{max_pods}" if max_pods else str(pods),
            taint_text, created(n))


NODE_COLUMNS = (Column("NAME", 0, 11), Column("STATUS", 9), Column("ROLES", 7, priority=3),
                Column("CPU", 10), Column("MEM", 10), Column("PODS", 7, priority=1),
                Column("TAINTS", 18, priority=4), Column("AGE", 6, priority=2))

# ---- workloads -------------------------------------------------------------------------


def _ready_role(ready: int, want: int) -> str:
    return "status-running" if ready >= want else "status-pending"


def deploy_row(d: Obj, rc: RowContext) -> Row:
    m, st = _meta(d), _st(d)
    want = _sp(d).get("replicas", 1)
    ready = st.get("readyReplicas", 0)
    _, images = tables._images(_sp(d).get("template"))
    return (m.get("namespace", ""), m.get("name", ""), (f"{ready}/{want}", _ready_role(ready, want)),
            str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)), created(d), images)


DEPLOY_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 16), Column("READY", 7),
                  Column("UP-TO-DATE", 10), Column("AVAILABLE", 9), Column("AGE", 6),
                  Column("IMAGES", 24, priority=1))


def rs_row(r: Obj, rc: RowContext) -> Row:
    m, st = _meta(r), _st(r)
    want = _sp(r).get("replicas", 1)
    ready = st.get("readyReplicas", 0)
    _, images = tables._images(_sp(r).get("template"))
    return (m.get("namespace", ""), m.get("name", ""), str(want), str(st.get("replicas", 0)),
            (str(ready), _ready_role(ready, want)), created(r), images)


RS_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 20), Column("DESIRED", 7),
              Column("CURRENT", 7), Column("READY", 5), Column("AGE", 6), Column("IMAGES", 24, priority=1))


def ds_row(d: Obj, rc: RowContext) -> Row:
    m, st = _meta(d), _st(d)
    want, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
    return (m.get("namespace", ""), m.get("name", ""), str(want), str(st.get("currentNumberScheduled", 0)),
            (str(ready), _ready_role(ready, want)), str(st.get("updatedNumberScheduled", 0)),
            str(st.get("numberAvailable", 0)), created(d))


DS_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 16), Column("DESIRED", 7),
              Column("CURRENT", 7), Column("READY", 5), Column("UP-TO-DATE", 10, priority=1),
              Column("AVAILABLE", 9), Column("AGE", 6))


def job_row(j: Obj, rc: RowContext) -> Row:
    m = _meta(j)
    status = tables._job_status(j)
    return (m.get("namespace", ""), m.get("name", ""), (status, status_role(status)),
            tables._job_completions(j),
            Span(parse_ts(_st(j).get("startTime")), parse_ts(_st(j).get("completionTime"))),
            created(j))


JOB_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 16), Column("STATUS", 10),
               Column("COMPLETIONS", 11), Column("DURATION", 8, priority=1), Column("AGE", 6))

# ---- services, endpoints, namespaces, events ---------------------------------------------


def svc_row(s: Obj, rc: RowContext) -> Row:
    m, sp = _meta(s), _sp(s)
    sel = ",".join(f"{k}={v}" for k, v in (sp.get("selector") or {}).items()) or "<none>"
    return (m.get("namespace", ""), m.get("name", ""), sp.get("type", "ClusterIP"),
            sp.get("clusterIP") or "<none>", tables._ports(s), sel, created(s))


SVC_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 0, 14), Column("TYPE", 9),
               Column("CLUSTER-IP", 13), Column("PORT(S)", 14), Column("SELECTOR", 16, priority=1),
               Column("AGE", 6))


def ep_row(e: Obj, rc: RowContext) -> Row:
    m = _meta(e)
    return (m.get("namespace", ""), m.get("name", ""), tables._endpoints(e), created(e))


EP_COLUMNS = (Column("NAMESPACE", 11, priority=2), Column("NAME", 16), Column("ENDPOINTS", 0, 20),
              Column("AGE", 6))


def ns_row(n: Obj, rc: RowContext) -> Row:
    phase = _st(n).get("phase", "Active")
    role = "status-running" if phase == "Active" else "status-terminating"
    return (_meta(n).get("name", ""), (phase, role), created(n))


NS_COLUMNS = (Column("NAME", 0, 20), Column("STATUS", 12), Column("AGE", 6))


def event_time(e: Obj) -> float:
    return parse_ts(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
                      or _meta(e).get("creationTimestamp")) or 0.0


def event_row(e: Obj, rc: RowContext) -> Row:
    etype = e.get("type", "") or "Normal"
    src = (e.get("source") or {}).get("component", "") or e.get("reportingComponent", "")
    host = (e.get("source") or {}).get("host")
    return (Age(event_time(e) or None),
            (etype, "event-warning" if etype == "Warning" else "event-normal"),
            (e.get("reason", ""), "event-warning" if etype == "Warning" else "event-normal"),
            (f"{src} {host}" if host else src, component_role(src)),
            tables._event_object(e), str(e.get("count") or 1), e.get("message", ""))


EVENT_COLUMNS = (Column("LAST SEEN", 9), Column("TYPE", 7), Column("REASON", 17),
                 Column("SOURCE", 22, priority=2), Column("OBJECT", 26, priority=1),
                 Column("COUNT", 5, priority=3), Column("MESSAGE", 0, 20))


def event_sort(e: Obj) -> tuple:
    m = _meta(e)
    return (-event_time(e), m.get("namespace") or "", m.get("name") or "")


# ---- drill-downs --------------------------------------------------------------------------

def _drill_deploy(d: Obj) -> tuple[str, Scope]:
    m = _meta(d)
    return "rs", Scope(f"deploy/{m.get('name')}", owner_uid=m.get("uid"))


def _drill_owned_pods(kind: str) -> Callable[[Obj], tuple[str, Scope]]:
    def drill(o: Obj) -> tuple[str, Scope]:
        m = _meta(o)
        return "pods", Scope(f"{kind}/{m.get('name')}", owner_uid=m.get("uid"))
    return drill


def _drill_node(n: Obj) -> tuple[str, Scope]:
    name = _meta(n).get("name", "")
    return "pods", Scope(f"node/{name}", node=name)


def _drill_svc(s: Obj) -> tuple[str, Scope] | None:
    m = _meta(s)
    sel = tuple(sorted((_sp(s).get("selector") or {}).items()))
    return "pods", Scope(f"svc/{m.get('name')}", namespace=m.get("namespace"), selector=sel)


def _drill_ns(n: Obj) -> tuple[str, Scope]:
    name = _meta(n).get("name", "")
    return "pods", Scope(f"ns/{name}", namespace=name)


VIEWS: dict[str, ViewSpec] = {}


def register(spec: ViewSpec) -> ViewSpec:
    VIEWS[spec.name] = spec
    return spec


register(ViewSpec("pods", "pods", "pod", POD_COLUMNS, pod_row, aliases=("po", "pod"),
                  actions=COMMON | {LOGS}))
register(ViewSpec("nodes", "nodes", "node", NODE_COLUMNS, node_row, aliases=("no", "node"),
                  actions=frozenset({DESCRIBE, YAML, CORDON, KILL}), drill=_drill_node,
                  namespaced=False, depends=("pods",)))
register(ViewSpec("deploy", "deployments", "deployment", DEPLOY_COLUMNS, deploy_row,
                  aliases=("deployments", "deployment", "dp"),
                  actions=COMMON | {SCALE, RESTART, LOGS}, drill=_drill_deploy))
register(ViewSpec("rs", "replicasets", "replicaset", RS_COLUMNS, rs_row,
                  aliases=("replicasets", "replicaset"), actions=COMMON | {SCALE},
                  drill=_drill_owned_pods("rs")))
register(ViewSpec("svc", "services", "service", SVC_COLUMNS, svc_row, aliases=("services", "service"),
                  drill=_drill_svc))
register(ViewSpec("ep", "endpoints", "endpoints", EP_COLUMNS, ep_row, aliases=("endpoints",)))
register(ViewSpec("events", "events", "event", EVENT_COLUMNS, event_row, aliases=("ev", "event"),
                  sort_key=event_sort, actions=frozenset({DESCRIBE, YAML})))
register(ViewSpec("ns", "namespaces", "namespace", NS_COLUMNS, ns_row,
                  aliases=("namespaces", "namespace"), drill=_drill_ns, namespaced=False))
register(ViewSpec("jobs", "jobs", "job", JOB_COLUMNS, job_row, aliases=("job",),
                  drill=_drill_owned_pods("job")))
register(ViewSpec("ds", "daemonsets", "daemonset", DS_COLUMNS, ds_row,
                  aliases=("daemonsets", "daemonset"), actions=COMMON | {RESTART},
                  drill=_drill_owned_pods("ds")))


def lookup_view(word: str) -> ViewSpec | None:
    word = word.lower().lstrip(":")
    for spec in VIEWS.values():
        if word == spec.name or word in spec.aliases:
            return spec
    return None


def view_words() -> list[str]:
    return sorted({w for s in VIEWS.values() for w in (s.name, *s.aliases)})


# ---- the tree: Deployment → ReplicaSets → Pods -------------------------------------------

TREE_COLUMNS = (Column("NAME", 0, 30), Column("KIND", 10, priority=2), Column("READY", 7),
                Column("STATUS", 17), Column("NODE", 14, priority=1), Column("AGE", 6))


def rs_revision(r: Obj) -> int:
    try:
        return int((_meta(r).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
    except ValueError:
        return 0


def tree_deploy(d: Obj) -> tuple[Any, Row]:
    m, st = _meta(d), _st(d)
    want, ready = _sp(d).get("replicas", 1), st.get("readyReplicas", 0)
    updated = st.get("updatedReplicas", 0)
    state = "Available" if ready >= want and updated >= want else "Progressing"
    key = (m.get("namespace", ""), m.get("name", ""), 0, 0, "", "")
    return key, (f"▾ {m.get('namespace', '')}/{m.get('name', '')}", "Deployment",
                 (f"{ready}/{want}", _ready_role(ready, want)), (state, status_role(state)), "", created(d))


def tree_rs_key(dkey: tuple, r: Obj) -> tuple:
    """Sort keys of the tree, all the same shape: (ns, deployment, level, -revision, rs, pod)."""
    return (dkey[0], dkey[1], 1, -rs_revision(r), _meta(r).get("name", ""))


def tree_rs(dkey: tuple, r: Obj) -> tuple[Any, Row]:
    m, st = _meta(r), _st(r)
    want, ready = _sp(r).get("replicas", 1), st.get("readyReplicas", 0)
    return (*tree_rs_key(dkey, r), ""), (
        f"  ▾ {m.get('name', '')}", f"RS rev {rs_revision(r)}",
        (f"{ready}/{want}", _ready_role(ready, want)),
        ("Active" if want else "ScaledDown", "status-running" if want else "status-unknown"), "", created(r))


def tree_pod(rskey: tuple, p: Obj, rc: RowContext) -> tuple[Any, Row]:
    reason, ready, total, _, _ = tables.pod_status(p)
    m = _meta(p)
    return (*rskey, m.get("name", "")), (
        f"      {m.get('name', '')}", "Pod", f"{ready}/{total}", (reason, status_role(reason)),
        _sp(p).get("nodeName") or "<none>", created(p))


@dataclass
class TreeIndex:
    """Which pods hang under which ReplicaSet (by owner UID), for keyed tree updates."""
    pods_of: dict[str, set[str]] = field(default_factory=dict)
    owner_of: dict[str, str] = field(default_factory=dict)

    def set_pod(self, uid: str, owner: str | None) -> None:
        old = self.owner_of.get(uid)
        if old == owner:
            return
        if old is not None:
            self.pods_of.get(old, set()).discard(uid)
            del self.owner_of[uid]
        if owner is not None:
            self.pods_of.setdefault(owner, set()).add(uid)
            self.owner_of[uid] = owner
