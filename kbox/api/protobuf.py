"""Request bodies in Kubernetes' protobuf encoding, turned into the JSON objects kbox stores.

kubectl 1.32 and later send the objects they build themselves (`kubectl create
deployment`, `create service`, `create secret`, `drain`'s Evictions, `create
token`...) as `application/vnd.kubernetes.protobuf`; older kubectl and every
apply/patch send JSON. kube-apiserver accepts both, so kbox must too.

The encoding: the bytes `k8s\\x00`, then a `runtime.Unknown` message whose
`typeMeta` names the apiVersion and kind and whose `raw` holds the object's own
message. Messages are proto2: each field is a key (field number << 3 | wire
type) followed by a varint, a fixed 32/64-bit value or a length-delimited
blob (strings, bytes, nested messages, map entries, packed numbers). The
field numbers, names and types come from kbox.api.protoschema; a few
messages have their own JSON form (Time as RFC 3339, Quantity and
IntOrString as their value, bytes as base64, FieldsV1 as its JSON).

Responses stay JSON: kubectl asks for `protobuf,json` and takes either.
"""

from __future__ import annotations

import base64
import datetime
import struct
from typing import Any

import orjson

from kbox.api.protoschema import MESSAGES

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# (group of apiVersion, kind) → message; the core group is "" ("v1")
_GROUP_PACKAGE = {"": "core", "apps": "apps", "batch": "batch", "policy": "policy",
                  "coordination.k8s.io": "coordination", "autoscaling": "autoscaling",
                  "authentication.k8s.io": "authentication"}

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object kbox can read."""


Field = tuple[str, str, bool, bool]    # (json name, type, repeated, zero value kept)
_SCHEMA: dict[str, dict[int, Field]] = {}


def _schema(message: str) -> dict[int, Field]:
    fields = _SCHEMA.get(message)
    if fields is None:
        text = MESSAGES.get(message)
        if text is None:
            raise ProtobufError(f"kbox cannot decode protobuf message {message}")
        fields = {}
        for part in text.split("; "):
            words = part.split()
            fields[int(words[0])] = (words[1], words[2], "*" in words[3:], "!" in words[3:])
        _SCHEMA[message] = fields
    return fields


def message_for(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    package = _GROUP_PACKAGE.get(group)
    name = f"{package}.{version}.{kind}"
    if package is None or name not in MESSAGES:
        raise ProtobufError(f"kbox cannot decode {kind} ({api_version}) from protobuf; "
                            f"send it as application/json")
    return name


def decode_object(body: bytes) -> dict[str, Any]:
    """A whole request body → the object as JSON would give it (apiVersion and kind set)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body is not in Kubernetes' protobuf encoding "
                            "(it does not start with k8s\\x00)")
    # runtime.Unknown read by hand: its raw field is the object's own message, read in place
    # (through the schema it would become base64 text, to be decoded again)
    meta: dict[str, Any] = {}
    raw: memoryview = memoryview(b"")
    for number, wire, value in _fields(memoryview(body)[len(MAGIC):]):
        if wire != _BYTES:
            raise ProtobufError(f"malformed protobuf body (field {number} of runtime.Unknown)")
        if number == 1:
            meta = _message(value, "runtime.TypeMeta")
        elif number == 2:
            raw = value
        elif number == 3 and len(value):
            raise ProtobufError(f"unsupported protobuf content encoding {bytes(value).decode(errors='replace')!r}")
    api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
    obj = _message(raw, message_for(api_version, kind))
    return {"apiVersion": api_version, "kind": kind, **obj}


# ---- the wire format ---------------------------------------------------------------------------

def encode_varint(n: int) -> bytes:
    """A base-128 varint (negative numbers as their 64-bit two's complement, as Go writes)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes, an embedded message or a map entry."""
    return encode_varint(number << 3 | _BYTES) + encode_varint(len(payload)) + payload


def encode_varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | _VARINT) + encode_varint(value)


def read_fields(data: bytes) -> list[tuple[int, int, Any]]:
    """One message level: (field number, wire type, value): an int for a varint, bytes
    otherwise."""
    return [(n, w, v if isinstance(v, int) else bytes(v)) for n, w, v in _fields(memoryview(data))]


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated protobuf body (a varint runs past the end)")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ProtobufError("malformed protobuf body (a varint longer than 10 bytes)")


def _fields(buf: memoryview):
    """(field number, wire type, value) for each field of one message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _varint(buf, i)
        elif wire == _FIXED64:
            value, i = bytes(buf[i:i + 8]), i + 8
        elif wire == _FIXED32:
            value, i = bytes(buf[i:i + 4]), i + 4
        elif wire == _BYTES:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtobufError("truncated protobuf body (a field runs past the end)")
            value, i = buf[i:i + n], i + n
        else:
            raise ProtobufError(f"malformed protobuf body (wire type {wire} of field {number})")
        if i > len(buf):
            raise ProtobufError("truncated protobuf body")
        yield number, wire, value


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


_WIRE = {"string": _BYTES, "bytes": _BYTES, "double": _FIXED64, "float": _FIXED32}


def _scalar(typ: str, wire: int, value: Any) -> Any:
    if wire != _WIRE.get(typ, _VARINT):
        raise ProtobufError(f"malformed protobuf body (a {typ} sent with wire type {wire})")
    if typ == "string":
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtobufError(f"malformed protobuf body (a string that is not UTF-8: {e})") from None
    if typ == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if typ == "bool":
        return bool(value)
    if typ in ("int32", "int64"):
        return _signed(value, 64)
    if typ in ("uint32", "uint64"):
        return value
    if typ == "double":
        return struct.unpack("<d", value)[0]
    if typ == "float":
        return struct.unpack("<f", value)[0]
    raise ProtobufError(f"kbox cannot decode protobuf type {typ}")


_PACKABLE = {"int32", "int64", "uint32", "uint64", "bool", "double", "float"}


def _values(typ: str, wire: int, value: Any) -> list[Any]:
    """One field occurrence → its values (several for a packed repeated scalar)."""
    if typ in _PACKABLE and wire == _BYTES:
        out, buf, i = [], value, 0
        while i < len(buf):
            if typ == "double":
                out.append(struct.unpack("<d", bytes(buf[i:i + 8]))[0])
                i += 8
            elif typ == "float":
                out.append(struct.unpack("<f", bytes(buf[i:i + 4]))[0])
                i += 4
            else:
                v, i = _varint(buf, i)
                out.append(_scalar(typ, _VARINT, v))
        return out
    if typ in MESSAGES or typ in _SPECIAL:
        if wire != _BYTES:
            raise ProtobufError(f"malformed protobuf body ({typ} is not length-delimited)")
        return [_special_or_message(value, typ)]
    return [_scalar(typ, wire, value)]


def _time(buf: memoryview, _typ: str) -> str | None:
    seconds = nanos = 0
    for number, _wire, value in _fields(buf):
        if number == 1:
            seconds = _signed(value, 64)
        elif number == 2:
            nanos = _signed(value, 64)
    if seconds == 0 and nanos == 0:
        return None
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if _typ == "meta.v1.MicroTime":
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_string(buf: memoryview, _typ: str) -> str:
    for number, _wire, value in _fields(buf):
        if number == 1:
            return bytes(value).decode("utf-8")
    return ""


def _int_or_string(buf: memoryview, _typ: str) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for number, _wire, value in _fields(buf):
        if number == 1:
            kind = value
        elif number == 2:
            int_val = _signed(value, 64)
        elif number == 3:
            str_val = bytes(value).decode("utf-8")
    return str_val if kind == 1 else int_val


def _fields_v1(buf: memoryview, _typ: str) -> Any:
    for number, _wire, value in _fields(buf):
        if number == 1:
            return orjson.loads(bytes(value))
    return {}


_SPECIAL = {"meta.v1.Time": _time, "meta.v1.MicroTime": _time,
            "resource.Quantity": _first_string, "intstr.IntOrString": _int_or_string,
            "meta.v1.FieldsV1": _fields_v1}


def _special_or_message(buf: memoryview, typ: str) -> Any:
    special = _SPECIAL.get(typ)
    return special(buf, typ) if special else _message(buf, typ)


def _map_entry(buf: memoryview, key_type: str, value_type: str) -> tuple[Any, Any]:
    key: Any = "" if key_type == "string" else 0
    value: Any = None
    for number, wire, v in _fields(buf):
        if number == 1:
            key = _values(key_type, wire, v)[0]
        elif number == 2:
            value = _values(value_type, wire, v)[0]
    if value is None:           # an absent value is the type's zero value
        value = {"string": "", "bytes": ""}.get(value_type, {} if value_type in MESSAGES else 0)
    return key, value


def _message(buf: memoryview, message: str) -> dict[str, Any]:
    schema = _schema(message)
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        field = schema.get(number)
        if field is None:
            raise ProtobufError(f"kbox cannot decode field {number} of protobuf message {message}")
        name, typ, repeated, keep_zero = field
        if typ == "skip":
            continue
        if typ.startswith("map<"):
            key_type, _, value_type = typ[4:-1].partition(",")
            if wire != _BYTES:
                raise ProtobufError(f"malformed protobuf body (map {name} of {message})")
            k, v = _map_entry(value, key_type, value_type)
            out.setdefault(name, {})[k] = v
            continue
        values = _values(typ, wire, value)
        if repeated:
            out.setdefault(name, []).extend(values)
        elif not keep_zero and values[-1] in _ZEROS and type(values[-1]) is not dict:
            # Go writes non-pointer fields even when empty; JSON's omitempty leaves them
            # out, and defaulting (kube's and kbox's) reads an absent field as unset. (An
            # empty Time stays: Go's JSON writes it as null, as in a template's metadata.)
            out.pop(name, None)
        else:
            out[name] = values[-1]
    return out


_ZEROS = ("", 0, False)
