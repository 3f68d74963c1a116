"""Printers for `get` and friends: table, wide, yaml, json, name, jsonpath,
custom-columns — laid out as kubectl lays them out.

Tables come from `kbox.api.tables` (the same column definitions the API
server serves as meta.k8s.io Tables); this module only arranges cells into
text: columns padded to the widest cell plus three spaces, as kubectl's
tabwriter does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from kbox.api.resources import ResourceInfo
from kbox.api.tables import table_for
from kbox.cli.registry import CliError


class _Dumper(yaml.SafeDumper):
    """YAML as kubectl writes it: block style, sorted keys, lines folded at 80 columns,
    double quotes where a plain scalar would read back as another type."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))
    if value == "" or tag != "tag:yaml.org,2002:str":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(obj: Any) -> str:
    # width 80 folds long strings where kubectl's YAML emitter (a port of the same libyaml) does
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True)


def to_json(obj: Any) -> str:
    """kubectl's -o json: 4-space indent, sorted keys, and Go's HTML-safe escapes of <, > and &."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def kind_prefix(info: ResourceInfo) -> str:
    """`deployment.apps` or `pod`: how kubectl names a kind in messages."""
    return f"{info.singular}.{info.group}" if info.group else info.singular


def table_rows(info: ResourceInfo, objs: list[dict[str, Any]], now: float, *, wide: bool = False,
               namespaced_col: bool = False, show_labels: bool = False,
               show_kind: bool = False, label_columns: list[str] | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of kubectl's table for these objects."""
    columns, cells = table_for(info.plural)
    keep = [i for i, c in enumerate(columns) if wide or c[2] == 0]
    head = [columns[i][0] for i in keep]
    rows = []
    for o in objs:
        cs = cells(o, now)
        row = [_cell(cs[i]) for i in keep]
        if show_kind:
            row[0] = f"{kind_prefix(info)}/{row[0]}"
        if namespaced_col:
            row.insert(0, o["metadata"].get("namespace", ""))
        labels = o["metadata"].get("labels") or {}
        for lc in label_columns or []:
            row.append(labels.get(lc, ""))
        if show_labels:
            row.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        rows.append(row)
    if namespaced_col:
        head.insert(0, "NAMESPACE")
    for lc in label_columns or []:
        head.append(lc.rsplit("/", 1)[-1].upper())
    if show_labels:
        head.append("LABELS")
    return head, rows


def _cell(v: Any) -> str:
    if v is None:
        return "<none>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def format_table(info: ResourceInfo, objs: list[dict[str, Any]], now: float, *, wide: bool = False,
                 namespaced_col: bool = False, headers: bool = True, show_labels: bool = False,
                 show_kind: bool = False, label_columns: list[str] | None = None) -> str:
    head, rows = table_rows(info, objs, now, wide=wide, namespaced_col=namespaced_col,
                            show_labels=show_labels, show_kind=show_kind,
                            label_columns=label_columns)
    return render_rows(head if headers else None, rows)


def render_rows(head: list[str] | None, rows: list[list[str]]) -> str:
    """kubectl's table tabwriter (minwidth 6, padding 3): every cell but the last is padded
    to its column's widest cell plus three spaces, so an empty last cell leaves the padding
    of the one before it, exactly as kubectl prints."""
    table = ([head] if head else []) + rows
    if not table:
        return ""
    ncol = max(len(r) for r in table)
    widths = [max(6, max((len(r[i]) for r in table if i < len(r)), default=0) + 3)
              for i in range(ncol)]
    lines = []
    for r in table:
        lines.append("".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)))
    return "\n".join(lines) + "\n"


# ---- jsonpath (the subset kubectl users reach for) --------------------------------

def jsonpath(template: str, data: Any) -> str:
    template = template.strip()
    if template.startswith("'") and template.endswith("'"):
        template = template[1:-1]
    out: list[str] = []
    _render(_tokens(template), data, data, out)
    return "".join(out)


def _tokens(t: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    i = 0
    while i < len(t):
        if t[i] == "{":
            j = t.find("}", i)
            if j < 0:
                raise CliError(f"error parsing jsonpath {t}, unclosed action")
            toks.append(("expr", t[i + 1:j].strip()))
            i = j + 1
        else:
            j = t.find("{", i)
            j = len(t) if j < 0 else j
            toks.append(("text", t[i:j]))
            i = j
    return toks


def _render(toks: list[tuple[str, str]], data: Any, root: Any, out: list[str]) -> None:
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "text":
            out.append(val)
        elif val.startswith("range "):
            depth, j = 1, i + 1
            while j < len(toks):
                if toks[j][0] == "expr" and toks[j][1].startswith("range "):
                    depth += 1
                if toks[j] == ("expr", "end"):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            body = toks[i + 1:j]
            for item in _eval(val[6:].strip(), data, root):
                _render(body, item, root, out)
            i = j
        elif val.startswith('"') and val.endswith('"'):
            out.append(val[1:-1].encode().decode("unicode_escape"))
        else:
            vals = _eval(val, data, root)
            out.append(" ".join(_scalar(v) for v in vals))
        i += 1


def _scalar(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)   # Go's compact JSON
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


_STEP = re.compile(r"\.?([A-Za-z0-9_\-/]+|\*)|\[([^\]]*)\]")


def _eval(expr: str, data: Any, root: Any) -> list[Any]:
    if expr.startswith("$"):
        cur, expr = [root], expr[1:]
    elif expr.startswith("@"):
        cur, expr = [data], expr[1:]
    else:
        cur = [data]
    if expr in ("", "."):
        return cur
    pos = 0
    while pos < len(expr):
        m = _STEP.match(expr, pos)
        if not m:
            raise CliError(f"error parsing jsonpath {{{expr}}}: unexpected {expr[pos:]!r}")
        pos = m.end()
        name, index = m.group(1), m.group(2)
        nxt: list[Any] = []
        for c in cur:
            if name is not None:
                if name == "*":
                    nxt.extend(c.values() if isinstance(c, dict) else c if isinstance(c, list) else [])
                elif isinstance(c, dict) and name in c:
                    nxt.append(c[name])
            else:
                if not isinstance(c, list):
                    continue
                if index == "*":
                    nxt.extend(c)
                elif index.startswith("?(") and index.endswith(")"):
                    nxt.extend(x for x in c if _filter(index[2:-1], x, root))
                elif ":" in index:
                    a, b = (index.split(":") + [""])[:2]
                    nxt.extend(c[int(a) if a else None:int(b) if b else None])
                else:
                    try:
                        nxt.append(c[int(index)])
                    except (ValueError, IndexError):
                        pass
        cur = nxt
    return cur


def _filter(cond: str, item: Any, root: Any) -> bool:
    m = re.match(r"^(@[^=!<>]*)\s*(==|!=)\s*(.+)$", cond.strip())
    if not m:
        return bool(_eval(cond.strip(), item, root))
    left = _eval(m.group(1).strip(), item, root)
    right = m.group(3).strip().strip("'\"")
    got = _scalar(left[0]) if left else None
    return (got == right) if m.group(2) == "==" else (got != right)


def custom_columns(spec: str, objs: list[dict[str, Any]], headers: bool = True) -> str:
    cols = []
    for part in spec.split(","):
        if ":" not in part:
            raise CliError(f'custom-columns format specified but no custom columns given: "{part}"')
        name, path = part.split(":", 1)
        cols.append((name, path if path.startswith("{") else "{" + path + "}"))
    rows = [[jsonpath(p, o) or "<none>" for _, p in cols] for o in objs]
    return render_rows([n for n, _ in cols] if headers else None, rows)


def jsonpath_values(template: str, data: Any) -> list[Any]:
    """The values one `{expr}` template selects (for --sort-by and wait --for=jsonpath)."""
    t = template.strip()
    if t.startswith("'") and t.endswith("'"):
        t = t[1:-1]
    if t.startswith("{") and t.endswith("}"):
        t = t[1:-1]
    return _eval(t.strip(), data, data)
