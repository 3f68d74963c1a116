"""Building blocks the per-kind strategies share: Kubernetes-worded causes,
label selector checks, int-or-percent checks and immutability.

Messages follow apimachinery's field errors ("Invalid value: -1: must be
greater than or equal to 0", "Unsupported value: ...", "Required value",
"Duplicate value", "Forbidden: ...", "Not found: ..."), so kubectl users
read the same text as against a real cluster.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from kbox.api.errors import cause
from kbox.api.models.base import go_string_map, go_value
from kbox.api.validation import label_value_errors, qualified_name_errors, validate_labels

Cause = dict[str, str]


def invalid(field: str, value: Any, rule: str) -> Cause:
    return cause(field, f"Invalid value: {go_value(value)}: {rule}", "FieldValueInvalid")


def required(field: str, detail: str = "") -> Cause:
    return cause(field, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def unsupported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    opts = ", ".join(json.dumps(s) for s in supported)
    return cause(field, f"Unsupported value: {go_value(value)}: supported values: {opts}",
                 "FieldValueNotSupported")


def duplicate(field: str, value: Any) -> Cause:
    return cause(field, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")


def forbidden(field: str, detail: str) -> Cause:
    return cause(field, f"Forbidden: {detail}", "FieldValueForbidden")


def not_found(field: str, value: Any) -> Cause:
    return cause(field, f"Not found: {go_value(value)}", "FieldValueNotFound")


def immutable(field: str, value: Any, shown: str | None = None) -> Cause:
    return cause(field, f"Invalid value: {shown if shown is not None else go_value(value)}: "
                        "field is immutable", "FieldValueInvalid")


def non_negative(out: list[Cause], field: str, value: Any) -> None:
    if isinstance(value, int) and value < 0:
        out.append(invalid(field, value, "must be greater than or equal to 0"))


def positive(out: list[Cause], field: str, value: Any) -> None:
    if isinstance(value, int) and value <= 0:
        out.append(invalid(field, value, "must be greater than 0"))


def enum(out: list[Cause], field: str, value: Any, supported: tuple[str, ...], *,
         required_if_empty: bool = False) -> None:
    if value is None or value == "":
        if required_if_empty:
            out.append(required(field))
        return
    if value not in supported:
        out.append(unsupported(field, value, supported))


def get(obj: Any, *path: str) -> Any:
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


# ---- label selectors ---------------------------------------------------------------

SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: dict[str, Any] | None, field: str) -> list[Cause]:
    out: list[Cause] = []
    if not sel:
        return out
    out += validate_labels(sel.get("matchLabels"), f"{field}.matchLabels")
    for i, e in enumerate(sel.get("matchExpressions") or []):
        f = f"{field}.matchExpressions[{i}]"
        op, values = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                out.append(required(f"{f}.values",
                                    "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                out.append(forbidden(f"{f}.values",
                                     "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            out.append(invalid(f"{f}.operator", op, "not a valid selector operator"))
        key = e.get("key")
        if not key:
            out.append(required(f"{f}.key"))
        else:
            for msg in qualified_name_errors(key):
                out.append(invalid(f"{f}.key", key, msg))
        for v in values:
            for msg in label_value_errors(v):
                out.append(invalid(f"{f}.values", v, msg))
    return out


def selector_matches(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    """Does a structured label selector select `labels`? (an empty selector selects all)"""
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def go_selector(sel: dict[str, Any] | None) -> str:
    """Go's %#v of a *metav1.LabelSelector, as Kubernetes prints it in immutability errors."""
    if sel is None:
        return "nil"
    ml = sel.get("matchLabels")
    labels = go_string_map(ml) if ml else "map[string]string(nil)"
    exprs = sel.get("matchExpressions")
    if exprs:
        parts = []
        for e in exprs:
            vals = e.get("values")
            shown = ("[]string{" + ", ".join(json.dumps(v) for v in vals) + "}") if vals else "[]string(nil)"
            parts.append(f'v1.LabelSelectorRequirement{{Key:{json.dumps(e.get("key", ""))}, '
                         f'Operator:{json.dumps(e.get("operator", ""))}, Values:{shown}}}')
        ex = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        ex = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{ex}}}"


# ---- int-or-percent ----------------------------------------------------------------

_PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
               "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


def int_or_percent(out: list[Cause], field: str, value: Any) -> int | None:
    """Check a maxSurge/maxUnavailable value; return it as a comparable amount (percent or int)."""
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            out.append(invalid(field, value, "must be greater than or equal to 0"))
        return value
    if isinstance(value, str):
        if not _PERCENT.match(value):
            out.append(invalid(field, value, PERCENT_MSG))
            return None
        return int(value[:-1])
    return None


def is_zero(value: Any) -> bool:
    return value == 0 or value in ("0%",)


__all__ = ["Cause", "invalid", "required", "unsupported", "duplicate", "forbidden", "not_found",
           "immutable", "non_negative", "positive", "enum", "get", "validate_label_selector",
           "selector_matches", "go_selector", "int_or_percent", "is_zero", "PERCENT_MSG"]
