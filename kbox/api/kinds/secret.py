"""Secrets: type Opaque by default; `stringData` is merged into `data`
(base64) and dropped, as kube-apiserver does on every write; `data` values
must be base64; well-known types need their keys."""

from __future__ import annotations

import base64
import binascii
import re

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, forbidden, invalid, required
from kbox.api.models import core
from kbox.api.objects import Obj
from kbox.api.strategy import register

_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
           "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
           "'[-._a-zA-Z0-9]+')")
REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/basic-auth": (),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def key_errors(key: str) -> list[str]:
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _KEY.match(key):
        errs.append(KEY_MSG)
    if key in (".", ".."):
        errs.append("must not be '.' or '..'" if key == "." else "must not be '..'")
    return errs


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@register("secrets")
class SecretStrategy(KindStrategy):
    model = core.Secret
    field_labels = frozenset({"type"})

    def apply_defaults(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        sd = obj.get("stringData")
        if isinstance(sd, dict) and all(isinstance(v, str) for v in sd.values()):
            data = obj.get("data")
            if not isinstance(data, dict):
                data = obj["data"] = {}
            for k, v in sd.items():
                data[k] = base64.b64encode(v.encode()).decode()
            del obj["stringData"]

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        data = obj.get("data") or {}
        total = 0
        for k, v in data.items():
            for e in key_errors(k):
                out.append(invalid("data", k, e))
            if not _is_base64(v):
                out.append(invalid(f"data[{k}]", "<secret contents redacted>",
                                   "must be a valid base64 string (illegal base64 data)"))
            total += len(v) * 3 // 4
        if total > 1024 * 1024:
            out.append(cause_too_long())
        t = obj.get("type")
        for key in REQUIRED_KEYS.get(t, ()):
            if key not in data:
                out.append(required(f"data[{key}]"))
        if old is not None and old.get("immutable") is True:
            if obj.get("data") != old.get("data"):
                out.append(forbidden("data", "field is immutable when `immutable` is set"))
            if obj.get("immutable") is not True:
                out.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if old is not None and t != old.get("type"):
            out.append(invalid("type", t, "field is immutable"))
        return out


def cause_too_long() -> Cause:
    return {"reason": "FieldValueTooLong", "field": "data",
            "message": "Too long: must have at most 1048576 bytes"}
