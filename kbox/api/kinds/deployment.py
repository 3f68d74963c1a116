"""Deployments (apps/v1): defaults (replicas, RollingUpdate 25%/25%, history
and progress deadline, template defaults) and validation (selector matching
the template, strategy, immutable selector)."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import (Cause, forbidden, int_or_percent, invalid, is_zero, non_negative,
                                   unsupported)
from kbox.api.kinds.workload import (default_template, replicas_rules, reset_status,
                                     selector_immutable, validate_selector_and_template)
from kbox.api.models import apps
from kbox.api.objects import Obj
from kbox.api.strategy import register

STRATEGIES = ("Recreate", "RollingUpdate")


@register("deployments")
class DeploymentStrategy(KindStrategy):
    model = apps.Deployment

    def prepare_create(self, obj: Obj) -> None:
        reset_status(obj)

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                if isinstance(ru, dict):
                    ru.setdefault("maxUnavailable", "25%")
                    ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_template(spec)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        replicas_rules(out, spec)
        out += validate_selector_and_template(spec, "deployment")
        strategy = spec.get("strategy") or {}
        stype = strategy.get("type")
        if stype not in STRATEGIES:
            out.append(unsupported("spec.strategy.type", stype or "", STRATEGIES))
        ru = strategy.get("rollingUpdate")
        if stype == "Recreate" and ru is not None:
            out.append(forbidden("spec.strategy.rollingUpdate",
                                 "may not be specified when strategy `type` is 'Recreate'"))
        elif stype == "RollingUpdate" and ru is not None:
            f = "spec.strategy.rollingUpdate"
            mu = int_or_percent(out, f"{f}.maxUnavailable", ru.get("maxUnavailable"))
            int_or_percent(out, f"{f}.maxSurge", ru.get("maxSurge"))
            if isinstance(ru.get("maxUnavailable"), str) and mu is not None and mu > 100:
                out.append(invalid(f"{f}.maxUnavailable", ru["maxUnavailable"],
                                   "must not be greater than 100%"))
            if is_zero(ru.get("maxUnavailable")) and is_zero(ru.get("maxSurge")):
                out.append(invalid(f"{f}.maxUnavailable", ru["maxUnavailable"],
                                   "may not be 0 when `maxSurge` is 0"))
        non_negative(out, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
        pds = spec.get("progressDeadlineSeconds")
        non_negative(out, "spec.progressDeadlineSeconds", pds)
        if isinstance(pds, int) and pds <= (spec.get("minReadySeconds") or 0):
            out.append(invalid("spec.progressDeadlineSeconds", pds,
                               "must be greater than minReadySeconds"))
        if old is not None:
            selector_immutable(out, spec, old.get("spec") or {})
        return out
