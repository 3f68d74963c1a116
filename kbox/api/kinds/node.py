"""Nodes: taint and pod CIDR validation; `spec.unschedulable` is a
field-selector field (unset reads "false", as in Kubernetes)."""

from __future__ import annotations

import ipaddress

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, duplicate, enum, forbidden, invalid, required
from kbox.api.kinds.podspec import TAINT_EFFECTS
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register
from kbox.api.validation import label_value_errors, qualified_name_errors


@register("nodes")
class NodeStrategy(KindStrategy):
    model = core.Node
    field_labels = frozenset({"spec.unschedulable"})
    bool_fields = frozenset({"spec.unschedulable"})

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        seen: set[tuple[str, str]] = set()
        for i, t in enumerate(spec.get("taints") or []):
            f = f"spec.taints[{i}]"
            key = t.get("key")
            if not key:
                out.append(required(f"{f}.key"))
            else:
                for e in qualified_name_errors(key):
                    out.append(invalid(f"{f}.key", key, e))
            for e in label_value_errors(t.get("value") or ""):
                out.append(invalid(f"{f}.value", t.get("value"), e))
            enum(out, f"{f}.effect", t.get("effect"), TAINT_EFFECTS, required_if_empty=True)
            k = (key or "", t.get("effect") or "")
            if k in seen:
                out.append(duplicate(f"{f}", f"{k[0]}:{k[1]}"))
            seen.add(k)
        cidrs = list(spec.get("podCIDRs") or [])
        if spec.get("podCIDR"):
            cidrs.insert(0, spec["podCIDR"])
        for c in cidrs:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                out.append(invalid("spec.podCIDRs", c, "must be a valid CIDR value, "
                                   "(e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        if old is not None:
            ospec = old.get("spec") or {}
            if ospec.get("podCIDR") and spec.get("podCIDR") != ospec.get("podCIDR"):
                out.append(forbidden("spec.podCIDRs",
                                     "node updates may not change podCIDR except from \"\" to valid"))
        return out
