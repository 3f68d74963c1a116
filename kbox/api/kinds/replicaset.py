"""ReplicaSets (apps/v1): replicas default, selector/template validation,
immutable selector; `status.replicas` is a field-selector field."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause
from kbox.api.kinds.workload import (default_template, replicas_rules, reset_status,
                                     selector_immutable, validate_selector_and_template)
from kbox.api.models import apps
from kbox.api.objects import Obj
from kbox.api.strategy import register


@register("replicasets")
class ReplicaSetStrategy(KindStrategy):
    model = apps.ReplicaSet
    field_labels = frozenset({"status.replicas"})

    def prepare_create(self, obj: Obj) -> None:
        reset_status(obj)

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        default_template(spec)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        replicas_rules(out, spec)
        out += validate_selector_and_template(spec, "replicaset")
        if old is not None:
            selector_immutable(out, spec, old.get("spec") or {})
        return out

    def field_value(self, obj: Obj, field: str) -> str:
        if field == "status.replicas":
            return str((obj.get("status") or {}).get("replicas") or 0)
        return super().field_value(obj, field)
