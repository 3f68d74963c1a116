"""Label and field selectors, parsed once and matched many times.

Label selector syntax is kubectl's: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x)`, `a` (exists), `!a` (does not exist), joined by commas. The
structured form (`matchLabels` / `matchExpressions`) used in workload specs
converts to the same requirements. Field selectors support `=`, `==`, `!=` on
the fields each resource declares (kube-apiserver rejects the others).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from kbox.api.errors import ApiError, bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str            # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        return False

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


class LabelSelector:
    """A parsed label selector. The empty selector matches everything."""

    def __init__(self, requirements: list[Requirement] | None = None, *,
                 match_nothing: bool = False) -> None:
        self.requirements = requirements or []
        self.match_nothing = match_nothing

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.match_nothing

    def equality_value(self, key: str) -> str | None:
        for r in self.requirements:
            if r.key == key and r.op == "=" and len(r.values) == 1:
                return r.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse kubectl's string form. Raises ApiError(400) naming what is wrong."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = [t for t in _TOKEN.findall(text)]
    reqs: list[Requirement] = []
    i = 0

    def err(msg: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {msg} (in label selector {text!r})")

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise err("unexpected end of selector")
        t = tokens[i]
        i += 1
        return t

    while i < len(tokens):
        t = take()
        if t == "!":
            key = take()
            _check_key(key, err)
            reqs.append(Requirement(key, "!"))
        else:
            key = t
            _check_key(key, err)
            if i >= len(tokens) or tokens[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = take()
                if op in ("=", "==", "!="):
                    val = take() if i < len(tokens) and tokens[i] != "," else ""
                    _check_value(val, err)
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (val,)))
                elif op in ("in", "notin"):
                    if take() != "(":
                        raise err(f"expected '(' after '{op}'")
                    vals: list[str] = []
                    while True:
                        v = take()
                        if v == ")":
                            break
                        if v == ",":
                            continue
                        _check_value(v, err)
                        vals.append(v)
                    reqs.append(Requirement(key, op, tuple(vals)))
                else:
                    raise err(f"found '{op}', expected: '=', '!=', '==', 'in', notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise err(f"found '{tokens[i]}', expected: ','")
            i += 1
    return LabelSelector(reqs)


def _check_key(key: str, err: Callable[[str], ApiError]) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise err(f"invalid label key {key!r}: name part must consist of alphanumeric "
                  "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                  "character")


def _check_value(val: str, err: Callable[[str], ApiError]) -> None:
    if val and (len(val) > 63 or not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", val)):
        raise err(f"invalid label value {val!r}: must be 63 characters or less and consist "
                  "of alphanumeric characters, '-', '_' or '.'")


def selector_from_spec(spec: dict[str, Any] | None) -> LabelSelector:
    """Convert a structured selector (`matchLabels`, `matchExpressions`).

    As in Kubernetes, a missing selector matches nothing and an empty one everything.
    """
    if spec is None:
        return LabelSelector(match_nothing=True)
    reqs = [Requirement(k, "=", (str(v),)) for k, v in sorted((spec.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in spec.get("matchExpressions") or []:
        op = ops.get(e.get("operator", ""))
        if op is None:
            raise bad_request(f"{e.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(e["key"], op, tuple(e.get("values") or ())))
    return LabelSelector(reqs)


def selector_to_string(spec: dict[str, Any] | None) -> str:
    """`matchLabels` / `matchExpressions` as the string kubectl shows (Scale.status.selector)."""
    return str(selector_from_spec(spec)) if spec is not None else ""


# ---- field selectors ----------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str          # "=" or "!="
    value: str


class FieldSelector:
    def __init__(self, requirements: list[FieldRequirement] | None = None) -> None:
        self.requirements = requirements or []

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Callable[[str], str]) -> bool:
        for r in self.requirements:
            v = fields(r.field)
            if (v == r.value) != (r.op == "="):
                return False
        return True

    def equality_value(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None


def parse_field_selector(text: str | None, allowed: set[str] | None = None,
                         resource: str = "") -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    reqs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if allowed is not None and field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return FieldSelector(reqs)
