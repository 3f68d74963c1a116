"""Per-resource behaviour the generic registry calls: defaulting, validation,
preparation on create and update, and the fields a field selector may use.

kube-apiserver gives each resource a "strategy"; so does kbox. The generic
code in `kbox.api.server` handles names, uids, timestamps, resourceVersion,
generation, finalizers and deletion for every kind; a strategy adds only what
is particular to its kind. Strategies register themselves by plural name
(see `kbox.api.kinds`).
"""

from __future__ import annotations

from typing import Any

from kbox.api.objects import Obj
from kbox.api.resources import ResourceInfo


class Strategy:
    """Default behaviour; subclass per kind and `register()` it."""

    #: fields a field selector may name beyond metadata.name / metadata.namespace
    field_labels: frozenset[str] = frozenset()

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info

    def default(self, obj: Obj) -> None:
        """Fill defaulted fields in place (after prepare, before validate)."""

    def validate(self, obj: Obj, old: Obj | None) -> list[dict[str, str]]:
        """Return Status causes ({field, reason, message}); empty when valid.

        `old` is None on create; on update it is the stored object, so
        immutability rules can compare.
        """
        return []

    def prepare_create(self, obj: Obj) -> None:
        """Adjust a new object before defaulting (e.g. reset status)."""

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        """Adjust an update before defaulting (the generic code already kept status)."""

    def prepare_status_update(self, obj: Obj, old: Obj) -> None:
        """Adjust a status update (the generic code already kept spec and metadata)."""

    def field_value(self, obj: Obj, field: str) -> str:
        """The string value of `field` for field selectors."""
        cur: Any = obj
        for part in field.split("."):
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(part)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)


_STRATEGIES: dict[str, type[Strategy]] = {}
_INSTANCES: dict[str, Strategy] = {}


def register(plural: str):
    """Class decorator: `@register("pods") class PodStrategy(Strategy): ...`."""
    def deco(cls: type[Strategy]) -> type[Strategy]:
        _STRATEGIES[plural] = cls
        _INSTANCES.pop(plural, None)
        return cls
    return deco


def strategy_for(info: ResourceInfo) -> Strategy:
    inst = _INSTANCES.get(info.plural)
    if inst is None:
        cls = _STRATEGIES.get(info.plural, Strategy)
        inst = _INSTANCES[info.plural] = cls(info)
    return inst
