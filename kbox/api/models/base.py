"""Shared pieces of the typed API models: the base model, the few value types
Kubernetes has beyond JSON's (int-or-string, quantity), and the conversion of
pydantic errors into Kubernetes Status causes.

The models only *check* shapes: the API server validates the user's dict
with them and then keeps storing that dict (plus defaults), never a
re-serialised model, so no field is reordered, dropped or invented. Every
model therefore allows unknown fields (`extra="allow"`), makes every field
optional (required fields are reported by the per-kind rules with
Kubernetes' wording) and is strict, so `replicas: "3"` is an error as it is
in Kubernetes rather than being silently coerced.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from kbox.api.errors import cause
from kbox.api.quantity import QuantityError, parse_nanos


class K8sModel(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True,
                              protected_namespaces=())


def go_value(value: Any) -> str:
    """A value as Kubernetes prints it in "Invalid value: ..." messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return go_string_map(value)
    return json.dumps(value, separators=(",", ":"))


def go_string_map(value: dict[str, Any]) -> str:
    """`map[string]string{"app":"web"}`, Go's %#v of a label map."""
    inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
    return "map[string]string{" + inner + "}"


def _invalid(value: Any, rule: str) -> PydanticCustomError:
    return PydanticCustomError("k8s", "Invalid value: {shown}: {rule}",
                               {"shown": go_value(value), "rule": rule,
                                "reason": "FieldValueInvalid"})


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _invalid(value, "must be an integer or a string")
    return value


def _quantity(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _invalid(value, "must be a quantity (a number or a string such as \"250m\" or \"128Mi\")")
    try:
        parse_nanos(value)     # cached by text
    except QuantityError as e:
        raise _invalid(value, str(e))
    return value


IntOrString = Annotated[Any, PlainValidator(_int_or_string)]
Quantity = Annotated[Any, PlainValidator(_quantity)]
StrMap = dict[str, str]
Loose = dict[str, Any]

_TYPE_WORDS = {
    "int_type": "must be an integer", "int_parsing": "must be an integer",
    "int_from_float": "must be an integer", "float_type": "must be a number",
    "string_type": "must be a string", "bool_type": "must be a boolean",
    "list_type": "must be a list", "dict_type": "must be an object",
    "model_type": "must be an object", "model_attributes_type": "must be an object",
    "none_required": "must be null",
}


_KEYED = frozenset({"requests", "limits", "overhead"})


def path_of(loc: tuple[Any, ...], prefix: str = "") -> str:
    """('spec', 'containers', 0, 'name') → "spec.containers[0].name"."""
    out = prefix
    prev: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif prev in _KEYED:
            out += f"[{part}]"    # map keys: resources.requests[cpu]
        else:
            out = f"{out}.{part}" if out else str(part)
        prev = part
    return out


def causes_from(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors as Status causes with Kubernetes field paths and wording."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        field = path_of(tuple(err["loc"]), prefix)
        if field in seen:
            continue
        seen.add(field)
        etype = err["type"]
        ctx = err.get("ctx") or {}
        if etype == "k8s":
            out.append(cause(field, err["msg"], ctx.get("reason", "FieldValueInvalid")))
        elif etype == "missing":
            out.append(cause(field, "Required value", "FieldValueRequired"))
        elif etype in _TYPE_WORDS:
            out.append(cause(field, f"Invalid value: {go_value(err.get('input'))}: {_TYPE_WORDS[etype]}",
                             "FieldValueTypeInvalid"))
        else:
            msg = str(err["msg"])
            msg = msg[:1].lower() + msg[1:]
            out.append(cause(field, f"Invalid value: {go_value(err.get('input'))}: {msg}"))
    return out


def check(model: type[BaseModel], data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Validate `data` against `model`; Status causes, empty when the shape is right."""
    try:
        model.model_validate(data)
    except ValidationError as e:
        return causes_from(e, prefix)
    return []
