"""Resource quantities as the API server checks them.

Kubernetes writes amounts of cpu and memory as "quantities": a decimal number
with an optional suffix, binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), decimal
(`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or an exponent (`1e3`). The API
server rejects any other spelling when the object is written, so a typo like
`cpu: 1 core` fails at `kubectl apply` instead of confusing the scheduler
later. Validation runs on every write, so parsed values are cached by text.

Values are exact (`fractions.Fraction`); `parse_cpu` rounds up to whole
millicores and `parse_memory` up to whole bytes, as Kubernetes does.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_MSG = f"quantities must match the regular expression '{QUANTITY_REGEX}'"

_NUMBER = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity; str() is the message Kubernetes gives."""


@lru_cache(maxsize=8192)
def _parse_text(text: str) -> Fraction:
    m = _NUMBER.match(text)
    if not m:
        raise QuantityError(QUANTITY_MSG)
    sign, digits, suffix = m.groups()
    value = Fraction(digits if not digits.endswith(".") else digits[:-1] or "0")
    if suffix in _BINARY:
        value *= 1024 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
    else:
        e = _EXPONENT.match(suffix)
        if not e:
            raise QuantityError(QUANTITY_MSG)
        value *= Fraction(10) ** int(e.group(1))
    return -value if sign == "-" else value


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact amount a quantity denotes (`"1.5Gi"` → 1610612736)."""
    if isinstance(value, bool):
        raise QuantityError(QUANTITY_MSG)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise QuantityError(QUANTITY_MSG)
        return Fraction(value).limit_denominator(10 ** 9)
    if not isinstance(value, str):
        raise QuantityError(QUANTITY_MSG)
    return _parse_text(value.strip() if value[:1].isspace() or value[-1:].isspace() else value)


def parse_cpu(value: str | int | float) -> int:
    """CPU in millicores, rounded up (`"250m"` → 250, `"0.5"` → 500, `2` → 2000)."""
    return math.ceil(parse_quantity(value) * 1000)


def parse_memory(value: str | int | float) -> int:
    """Bytes, rounded up (`"128Mi"` → 134217728, `"1G"` → 10**9, `"1e3"` → 1000)."""
    return math.ceil(parse_quantity(value))


def format_cpu(millicores: int) -> str:
    """Canonical CPU text: whole cores without a suffix, else millicores (`1500` → "1500m")."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(nbytes: int) -> str:
    """Canonical memory text: the largest binary suffix that divides exactly (`134217728` → "128Mi")."""
    if nbytes == 0:
        return "0"
    for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        unit = 1024 ** power
        if nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


@lru_cache(maxsize=8192)
def _nanos_text(text: str) -> int:
    return math.ceil(_parse_text(text) * 1_000_000_000)


def parse_nanos(value: str | int | float) -> int:
    """The amount in billionths, rounded up: exact integer comparisons, cached by text."""
    if isinstance(value, str) and value and not value[0].isspace() and not value[-1].isspace():
        return _nanos_text(value)
    return math.ceil(parse_quantity(value) * 1_000_000_000)


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True


__all__ = ["parse_quantity", "parse_nanos", "parse_cpu", "parse_memory", "is_quantity", "format_cpu", "format_memory",
           "QuantityError",
           "QUANTITY_MSG", "QUANTITY_REGEX"]
