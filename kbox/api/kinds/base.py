"""The common shape of a kind's strategy: a pydantic model for the shape
check, then the kind's semantic rules.

`KindStrategy.validate` runs the model once per write and stops there when
the shape is wrong (Kubernetes would not even have decoded such a body);
otherwise it returns `rules(obj, old)`. Defaulting must survive a malformed
body (validation reports it afterwards), so `default` swallows type errors
raised by `apply_defaults` on shapes it did not expect.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kbox.api.kinds.common import Cause
from kbox.api.models.base import check
from kbox.api.objects import Obj
from kbox.api.strategy import Strategy


class KindStrategy(Strategy):
    model: type[BaseModel] | None = None
    #: field-selector fields whose unset value reads "false" (Go bools)
    bool_fields: frozenset[str] = frozenset()

    def default(self, obj: Obj) -> None:
        try:
            self.apply_defaults(obj)
        except (AttributeError, TypeError, KeyError, ValueError):
            pass   # a malformed body: validation names the field

    def apply_defaults(self, obj: Obj) -> None:
        """Fill Kubernetes defaults in place."""

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        if self.model is not None:
            causes = check(self.model, _body(obj))
            if causes:
                return causes
        return self.rules(obj, old)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return []

    def field_value(self, obj: Obj, field: str) -> str:
        value = super().field_value(obj, field)
        if value == "" and field in self.bool_fields:
            return "false"
        return value


def _body(obj: Obj) -> dict[str, Any]:
    """The object without metadata (checked by kbox.api.validation for every kind)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "kind", "apiVersion")}
