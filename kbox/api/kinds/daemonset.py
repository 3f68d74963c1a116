"""DaemonSets (apps/v1): RollingUpdate maxUnavailable 1 / maxSurge 0 and
history defaults, selector/template validation, immutable selector."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, int_or_percent, invalid, is_zero, non_negative, unsupported
from kbox.api.kinds.workload import (default_template, replicas_rules, reset_status,
                                     selector_immutable, validate_selector_and_template)
from kbox.api.models import apps
from kbox.api.objects import Obj
from kbox.api.strategy import register

UPDATE_STRATEGIES = ("OnDelete", "RollingUpdate")


@register("daemonsets")
class DaemonSetStrategy(KindStrategy):
    model = apps.DaemonSet

    def prepare_create(self, obj: Obj) -> None:
        reset_status(obj)

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        us = spec.setdefault("updateStrategy", {})
        if isinstance(us, dict):
            us.setdefault("type", "RollingUpdate")
            if us["type"] == "RollingUpdate":
                ru = us.setdefault("rollingUpdate", {})
                if isinstance(ru, dict):
                    ru.setdefault("maxUnavailable", 1)
                    ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_template(spec)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        replicas_rules(out, spec)
        out += validate_selector_and_template(spec, "daemonset")
        us = spec.get("updateStrategy") or {}
        t = us.get("type")
        if t not in UPDATE_STRATEGIES:
            out.append(unsupported("spec.updateStrategy.type", t or "", UPDATE_STRATEGIES))
        ru = us.get("rollingUpdate")
        if t == "RollingUpdate" and ru is not None:
            f = "spec.updateStrategy.rollingUpdate"
            mu = int_or_percent(out, f"{f}.maxUnavailable", ru.get("maxUnavailable"))
            int_or_percent(out, f"{f}.maxSurge", ru.get("maxSurge"))
            if isinstance(ru.get("maxUnavailable"), str) and mu is not None and mu > 100:
                out.append(invalid(f"{f}.maxUnavailable", ru["maxUnavailable"],
                                   "must not be greater than 100%"))
            if is_zero(ru.get("maxUnavailable")) and is_zero(ru.get("maxSurge") or 0):
                out.append(invalid(f"{f}.maxUnavailable", ru["maxUnavailable"],
                                   "may not be 0 when `maxSurge` is 0"))
        non_negative(out, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
        if old is not None:
            selector_immutable(out, spec, old.get("spec") or {})
        return out
