"""The main screen's panes: header, the central resource view, side tables, activity.

Every pane is fed by keyed diffs: the app drains the feeds' changed UIDs once
per batch and hands them to each pane, which recomputes only those rows (the
nodes pane and the tree recompute their few parent rows). Rows live in
`ResourceTable`s, so an unchanged row is never repainted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import RichLog, Static

from kbox.api import tables
from kbox.api.selectors import LabelSelector, parse_label_selector
from kbox.tui.data import ClusterData
from kbox.tui.table import LazyRow, ResourceTable, cell_text
from kbox.tui.views import (TREE_COLUMNS, UNSCOPED, VIEWS, RowContext, Scope, TreeIndex, ViewSpec,
                            component_role, event_time, status_role, node_state, owner_uid, tree_deploy, tree_pod,
                            tree_rs)

Obj = dict[str, Any]
Changes = dict[str, tuple[set[str], set[str]]]


class Model:
    """The app-thread side of the data: feeds plus what rows need across objects."""

    def __init__(self, data: ClusterData) -> None:
        self.data = data
        self.rc = RowContext()
        self.pod_roles: dict[str, str] = {}
        self.pod_counts: Counter[str] = Counter()
        self.nodes_touched: set[str] = set()     # node names whose usage the last cycle changed

    def feed(self, resource: str):
        return self.data[resource]

    def account(self, changes: Changes) -> None:
        """Keep node usage sums and pod counts current from the pod diffs (every pod of a
        first fill passes here: the loop keeps its lookups local)."""
        changed, removed = changes.get("pods", (set(), set()))
        usage = self.rc.usage
        roles, counts = self.pod_roles, self.pod_counts
        items = self.data["pods"].items
        pod_status = tables.pod_status
        for uid in removed:
            usage.update(uid, None)
            old = roles.pop(uid, None)
            if old is not None:
                counts[old] -= 1
        for uid in changed:
            pod = items.get(uid)
            usage.update(uid, pod)
            old = roles.pop(uid, None)
            if old is not None:
                counts[old] -= 1
            if pod is not None:
                role = roles[uid] = status_role(pod_status(pod)[0])
                counts[role] += 1
        self.nodes_touched = usage.take_touched()

    def touched(self, resource: str, changes: Changes) -> tuple[set[str], set[str]]:
        """(changed, removed) keys of `resource` whose rows this cycle must redo: its own
        changes, and for nodes, every node whose pods' usage moved."""
        changed, removed = changes.get(resource, (set(), set()))
        if resource == "nodes" and self.nodes_touched:
            names = self.nodes_touched
            changed = changed | {uid for uid, n in self.data["nodes"].items.items()
                                 if n["metadata"].get("name") in names}
        return changed, removed

    def names(self, resource: str) -> list[str]:
        try:
            feed = self.data[resource]
        except KeyError:
            return []
        return sorted({(o.get("metadata") or {}).get("name", "") for o in feed.values()})


@dataclass
class Filter:
    """`/` filter: text matched against a row's cells, and `-l` label selectors."""
    raw: str = ""
    text: str = ""
    selector: LabelSelector | None = None

    @classmethod
    def parse(cls, raw: str) -> "Filter":
        """`TEXT`, `-l SELECTOR` or `TEXT -l SELECTOR` (the selector is the rest of the line,
        so `-l app in (web, api)` works); a bad selector raises ApiError naming the problem."""
        raw = raw.strip()
        text, selector = raw, None
        for flag in ("--selector=", "--selector ", "-l=", "-l "):
            head, found, tail = f" {raw}".partition(f" {flag}")
            if found:
                text, selector = head.strip(), parse_label_selector(tail.strip())
                break
        return cls(raw, text.lower(), selector)

    def __bool__(self) -> bool:
        return bool(self.raw)

    def matches(self, obj: Obj, row: tuple, now: float) -> bool:
        if self.selector is not None and not self.selector.matches((obj.get("metadata") or {}).get("labels")):
            return False
        if self.text:
            return any(self.text in cell_text(c, now).lower() for c in row)
        return True


@dataclass
class ViewState:
    name: str
    scope: Scope = field(default_factory=Scope)
    filter: Filter = field(default_factory=Filter)
    cursor: str | None = None


class ResourceView(Vertical):
    """The central pane: one view spec (or the tree) with its drill-down scope and filter."""

    DEFAULT_CSS = """
    ResourceView { height: 1fr; }
    ResourceView > #view-title { height: 1; }
    """

    def __init__(self, model: Model, **kw: Any) -> None:
        super().__init__(**kw)
        self.model = model
        self.state = ViewState("pods")
        self.stack: list[ViewState] = []
        self.table = ResourceTable(VIEWS["pods"].columns, id="view-table")
        self.title = Static("", id="view-title", markup=False)
        self._title_text = ""
        self._kinds: dict[str, ViewSpec] = {}         # tree row key -> spec (the tree mixes kinds)
        self._tree = TreeIndex()
        self._tree_rs: dict[str, tuple] = {}          # replicaset uid -> its tree sort key

    def compose(self) -> ComposeResult:
        yield self.title
        yield self.table

    @property
    def spec(self) -> ViewSpec | None:
        return VIEWS.get(self.state.name)

    # ---- navigation ------------------------------------------------------------
    def show(self, name: str, scope: Scope | None = None, push: bool = True) -> None:
        if push:
            self.state.cursor = self.table.cursor_key
            self.stack.append(self.state)
        self.state = ViewState(name, scope or Scope())
        self._switch()

    def back(self) -> bool:
        if not self.stack:
            return False
        self.state = self.stack.pop()
        self._switch()
        if self.state.cursor:
            self.table.move_cursor(self.state.cursor)
        return True

    def set_filter(self, f: Filter) -> None:
        self.state.filter = f
        self.rebuild()

    def _switch(self) -> None:
        columns = TREE_COLUMNS if self.state.name == "tree" else VIEWS[self.state.name].columns
        self.table.set_columns(columns)
        self._kinds.clear()
        self._tree = TreeIndex()
        self.rebuild()

    def update_title(self) -> None:
        st = self.state
        name = "tree: deployments → replicasets → pods" if st.name == "tree" else (
            self.spec.resource if self.spec else st.name)
        parts = [name]
        if st.scope.title:
            parts.append(f"of {st.scope.title}")
        parts.append(f"[{self.table.row_count}]")
        if st.filter:
            parts.append(f"/{st.filter.raw}")
        if self.stack:
            parts.append("(esc: back)")
        text = " ".join(parts)
        if text != self._title_text:         # one line, fixed height: never a layout pass
            self._title_text = text
            self.title.update(text, layout=False)

    # ---- rows ------------------------------------------------------------------
    def _diff(self, spec: ViewSpec, uids: Iterable[str], objs: dict[str, Obj]) -> tuple[list, list]:
        """Rows for these keys of `objs`: (upserts, keys to remove). Every pod of a first
        fill passes here, so the per-row work is the least it can be: a row that is a pure
        function of its object is made lazily (when drawn)."""
        scope, filt = self.state.scope, self.state.filter
        scoped = scope != UNSCOPED
        lazy = not filt and not spec.depends
        make, rc, sort_key, now = spec.row, self.model.rc, spec.sort_key, self.table.now
        ups, gone = [], []
        get = objs.get
        for uid in uids:
            obj = get(uid)
            if obj is None or (scoped and not scope.matches(obj)):
                gone.append(uid)
                continue
            if lazy:
                row = LazyRow(make, obj, rc)
            else:
                row = make(obj, rc)
                if filt and not filt.matches(obj, row, now):
                    gone.append(uid)
                    continue
            ups.append((uid, sort_key(obj), row))
        return ups, gone

    def rebuild(self) -> None:
        if self.state.name == "tree":
            self.table.replace_all(self._tree_rows())
        else:
            spec = VIEWS[self.state.name]
            objs = self.model.feed(spec.resource).snapshot()
            rows, _ = self._diff(spec, objs, objs)
            self.table.replace_all(rows)
        self.update_title()

    def apply(self, changes: Changes) -> None:
        if self.state.name == "tree":
            self._apply_tree(changes)
        else:
            spec = VIEWS[self.state.name]
            changed, removed = self.model.touched(spec.resource, changes)
            if not changed and not removed:
                return
            ups, gone = self._diff(spec, changed, self.model.feed(spec.resource).items)
            self.table.apply(ups, gone + list(removed))
        self.update_title()

    # ---- the tree --------------------------------------------------------------------
    def _tree_rows(self) -> list[tuple[str, Any, tuple]]:
        deps = self.model.feed("deployments")
        rss = self.model.feed("replicasets")
        pods = self.model.feed("pods")
        scope = self.state.scope
        rows: list[tuple[str, Any, tuple]] = []
        dkeys: dict[str, tuple] = {}
        for d in deps.values():
            if scope.namespace and d["metadata"].get("namespace") != scope.namespace:
                continue
            if scope.owner_uid is None or scope.owner_uid == d["metadata"].get("uid"):
                key, row = tree_deploy(d)
                dkeys[d["metadata"]["uid"]] = key
                self._add_tree_row(rows, d, key, row, VIEWS["deploy"])
        rskeys: dict[str, tuple] = {}
        for r in rss.values():
            dkey = dkeys.get(owner_uid(r) or "")
            if dkey is None:
                continue
            key, row = tree_rs(dkey, r)
            rskeys[r["metadata"]["uid"]] = key[:-1]
            self._add_tree_row(rows, r, key, row, VIEWS["rs"])
        self._tree = TreeIndex()
        self._tree_rs = rskeys
        for p in pods.values():
            owner = owner_uid(p)
            rskey = rskeys.get(owner or "")
            if rskey is None:
                continue
            self._tree.set_pod(p["metadata"]["uid"], owner)
            key, row = tree_pod(rskey, p, self.model.rc)
            self._add_tree_row(rows, p, key, row, VIEWS["pods"])
        return rows

    def _add_tree_row(self, rows: list, obj: Obj, key: Any, row: tuple, spec: ViewSpec) -> None:
        f = self.state.filter
        if f and not f.matches(obj, row, self.table.now):
            return
        uid = obj["metadata"]["uid"]
        rows.append((uid, key, row))
        self._kinds[uid] = spec

    def _apply_tree(self, changes: Changes) -> None:
        if "deployments" in changes or "replicasets" in changes:
            self.rebuild()
            return
        if "pods" not in changes:
            return
        changed, removed = changes["pods"]
        feed = self.model.feed("pods")
        ups, gone = [], list(removed)
        for uid in removed:
            self._tree.set_pod(uid, None)
        for uid in changed:
            p = feed.get(uid)
            owner = owner_uid(p) if p is not None else None
            rskey = self._tree_rs.get(owner or "")
            if p is None or rskey is None:
                gone.append(uid)
                self._tree.set_pod(uid, None)
                continue
            key, row = tree_pod(rskey, p, self.model.rc)
            f = self.state.filter
            if f and not f.matches(p, row, self.table.now):
                gone.append(uid)
                continue
            self._tree.set_pod(uid, owner)
            self._kinds[uid] = VIEWS["pods"]
            ups.append((uid, key, row))
        self.table.apply(ups, gone)

    # ---- selection ------------------------------------------------------------------
    def selected(self) -> tuple[ViewSpec, Obj] | None:
        key = self.table.cursor_key
        if key is None:
            return None
        spec = self._kinds.get(key) or self.spec
        if spec is None:
            return None
        obj = self.model.feed(spec.resource).get(key)
        return (spec, obj) if obj is not None else None


class SideTable(ResourceTable):
    """A summary table (nodes pane, workloads pane) whose rows resolve to objects."""

    def __init__(self, model: Model, columns, **kw: Any) -> None:
        super().__init__(columns, **kw)
        self.model = model
        self.kinds: dict[str, ViewSpec] = {}

    def selected(self) -> tuple[ViewSpec, Obj] | None:
        key = self.cursor_key
        spec = self.kinds.get(key or "")
        if spec is None:
            return None
        obj = self.model.feed(spec.resource).get(key or "")
        return (spec, obj) if obj is not None else None


NODES_PANE_COLUMNS = VIEWS["nodes"].columns


class NodesPane(SideTable):
    def __init__(self, model: Model, **kw: Any) -> None:
        super().__init__(model, NODES_PANE_COLUMNS, **kw)

    def sync(self, changes: Changes | None) -> None:
        """Redo the rows of changed nodes and of nodes whose usage moved (all: changes None)."""
        spec = VIEWS["nodes"]
        items = self.model.feed("nodes").items
        if changes is None:
            changed, removed = set(items), {k for k in self._rows if k not in items}
        else:
            changed, removed = self.model.touched("nodes", changes)
        if not changed and not removed:
            return
        rows = []
        for uid in changed:
            n = items.get(uid)
            if n is None:
                removed = removed | {uid}
                continue
            self.kinds[uid] = spec
            rows.append((uid, spec.sort_key(n), spec.row(n, self.model.rc)))
        for uid in removed:
            self.kinds.pop(uid, None)
        self.apply(rows, removed)


class WorkloadsPane(SideTable):
    """Deployments with their live ReplicaSets under them (old, empty ones hidden)."""

    def __init__(self, model: Model, **kw: Any) -> None:
        from kbox.tui.table import Column
        super().__init__(model, (Column("WORKLOAD", 0, 16), Column("READY", 5),
                                 Column("UP-TO-DATE", 10, priority=1),
                                 Column("AVAILABLE", 9, priority=2)), **kw)

    def sync(self, changes: Changes | None) -> None:
        if changes is not None and "deployments" not in changes and "replicasets" not in changes:
            return
        deps = {d["metadata"]["uid"]: d for d in self.model.feed("deployments").values()}
        rows = []
        for uid, d in deps.items():
            m, st = d["metadata"], d.get("status") or {}
            want = (d.get("spec") or {}).get("replicas", 1)
            ready = st.get("readyReplicas", 0)
            self.kinds[uid] = VIEWS["deploy"]
            rows.append((uid, (m.get("namespace", ""), m["name"], 0, 0, ""),
                         (f"deploy/{m['name']}", (f"{ready}/{want}", status_role(f"{ready}/{want}")),
                          str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)))))
        from kbox.tui.views import rs_revision
        for r in self.model.feed("replicasets").values():
            m, st = r["metadata"], r.get("status") or {}
            want = (r.get("spec") or {}).get("replicas", 1)
            if not want and not st.get("replicas"):
                continue
            d = deps.get(owner_uid(r) or "")
            top = (m.get("namespace", ""), d["metadata"]["name"]) if d else (m.get("namespace", ""), m["name"])
            ready = st.get("readyReplicas", 0)
            self.kinds[m["uid"]] = VIEWS["rs"]
            rows.append((m["uid"], (*top, 1, -rs_revision(r), m["name"]),
                         (f"  rs/{m['name']}" if d else f"rs/{m['name']}",
                          (f"{ready}/{want}", status_role(f"{ready}/{want}")), "",
                          str(st.get("availableReplicas", 0)))))
        self.replace_all(rows)


class HeaderBar(Static):
    """Cluster name, runtime, API address, node and pod counts, health."""

    def __init__(self, meta: dict[str, Any], **kw: Any) -> None:
        super().__init__("", markup=False, **kw)
        self.meta = meta
        self._shown: Text | None = None

    def sync(self, model: Model) -> None:
        app = self.app
        style = getattr(app, "role_style", None)
        nodes = model.feed("nodes").values()
        states = [node_state(n)[1] for n in nodes]
        ready = sum(1 for s in states if s != "node-notready")
        counts = model.pod_counts
        total = sum(counts.values())
        errors = model.data.errors()
        t = Text()
        t.append(" kbox ", "bold reverse")
        t.append(f" {self.meta.get('name', '?')} ", "bold")
        if errors:
            t.append(f"│ API unreachable: {errors[0]} ", style("status-failed") if style else "")
        elif ready < len(states):
            t.append(f"│ {len(states) - ready} node(s) not ready ", style("status-pending") if style else "")
        else:
            t.append("│ health ok ", style("status-running") if style else "")
        t.append("│ ")
        t.append(f"nodes {ready}/{len(states)}",
                 style("node-ready" if ready == len(states) else "node-notready") if style else "")
        t.append(f" │ pods {total}")
        parts = [(counts.get("status-running", 0), "running", "status-running"),
                 (counts.get("status-pending", 0), "pending", "status-pending"),
                 (counts.get("status-failed", 0), "failed", "status-failed")]
        shown = [(n, w, r) for n, w, r in parts if n]
        if shown:
            t.append(" (")
            for i, (n, w, r) in enumerate(shown):
                t.append((", " if i else "") + f"{n} {w}", style(r) if style else "")
            t.append(")")
        t.append(f" │ {self.meta.get('runtime', '?')} │ api {self.meta.get('url') or 'in-process'}")
        if t != self._shown:                 # one line, fixed height: never a layout pass
            self._shown = t
            self.update(t, layout=False)


class ActivityPane(RichLog):
    """Events as they happen, coloured by source component and by Warning."""

    MAX_PER_BATCH = 60

    def __init__(self, **kw: Any) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, auto_scroll=True, **kw)
        self._seen: dict[str, Any] = {}

    def sync(self, model: Model, changes: Changes | None) -> None:
        feed = model.feed("events")
        if changes is None:
            uids = list(feed.items)
            removed: set[str] = set()
        else:
            if "events" not in changes:
                return
            changed, removed = changes["events"]
            uids = list(changed)
        for uid in removed:
            self._seen.pop(uid, None)
        fresh = []
        for uid in uids:
            ev = feed.get(uid)
            if ev is None:
                continue
            mark = (ev.get("count"), ev.get("lastTimestamp"))
            if self._seen.get(uid) == mark:
                continue
            self._seen[uid] = mark
            fresh.append(ev)
        if not fresh:
            return
        fresh.sort(key=lambda e: (event_time(e), e["metadata"].get("name", "")))
        skipped = len(fresh) - self.MAX_PER_BATCH
        lines = []
        if skipped > 0:
            lines.append(Text(f"… {skipped} earlier events", style="italic"))
            fresh = fresh[skipped:]
        lines.extend(self.line(ev) for ev in fresh)
        # one write of many lines: RichLog renders, resizes and scrolls once per write
        self.write(Text("\n").join(lines))

    def line(self, ev: Obj) -> Text:
        from datetime import datetime, timezone
        style = getattr(self.app, "role_style", lambda r: "")
        src = ev.get("source") or {}
        comp = src.get("component", "") or ev.get("reportingComponent", "")
        who = f"{comp}/{src['host']}" if src.get("host") else comp
        inv = ev.get("involvedObject") or {}
        warn = ev.get("type") == "Warning"
        ts = event_time(ev)
        t = Text(no_wrap=True)
        t.append(datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S") if ts else "--:--:--",
                 "dim")
        t.append(f" {who:<24.24}", style(component_role(comp)))
        t.append(f" {(inv.get('kind') or '').lower()}/{inv.get('name', '')}")
        t.append(f" {ev.get('reason', '')}", style("event-warning" if warn else "event-normal"))
        t.append(f": {ev.get('message', '')}", style("event-warning") if warn else "")
        if (ev.get("count") or 1) > 1:
            t.append(f" (x{ev['count']})", "dim")
        return t

