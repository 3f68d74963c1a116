"""ConfigMaps: key names and `immutable` (the size limit is the server's object limit)."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, duplicate, forbidden, invalid
from kbox.api.kinds.secret import key_errors
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register


@register("configmaps")
class ConfigMapStrategy(KindStrategy):
    model = core.ConfigMap

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        for field, values in (("data", data), ("binaryData", binary)):
            for k, v in values.items():
                for e in key_errors(k):
                    out.append(invalid(field, k, e))
        for k in set(data) & set(binary):
            out.append(duplicate("data", k))
        if old is not None and old.get("immutable") is True:
            if data != (old.get("data") or {}) or binary != (old.get("binaryData") or {}):
                out.append(forbidden("data", "field is immutable when `immutable` is set"))
            if obj.get("immutable") is not True:
                out.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        return out
