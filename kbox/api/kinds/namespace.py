"""Namespaces: the `kubernetes` finalizer (the namespace controller empties a
terminating namespace and then removes it through /finalize), phase Active,
and the `kubernetes.io/metadata.name` label every namespace carries."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, invalid
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register
from kbox.api.validation import qualified_name_errors

NAME_LABEL = "kubernetes.io/metadata.name"


@register("namespaces")
class NamespaceStrategy(KindStrategy):
    model = core.Namespace
    field_labels = frozenset({"status.phase"})

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        fins = spec.get("finalizers")
        if not isinstance(fins, list):
            fins = []
        if "kubernetes" not in fins:
            fins = fins + ["kubernetes"]
        spec["finalizers"] = fins

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        # spec.finalizers changes only through the finalize subresource
        ospec = old.get("spec")
        if ospec is None:
            obj.pop("spec", None)
        else:
            obj["spec"] = ospec

    def apply_defaults(self, obj: Obj) -> None:
        m = obj.setdefault("metadata", {})
        name = m.get("name")
        if name:
            labels = m.get("labels")
            if not isinstance(labels, dict):
                labels = m["labels"] = {}
            labels[NAME_LABEL] = name

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        for i, f in enumerate((obj.get("spec") or {}).get("finalizers") or []):
            for e in qualified_name_errors(f):
                out.append(invalid(f"spec.finalizers[{i}]", f, e))
        return out
