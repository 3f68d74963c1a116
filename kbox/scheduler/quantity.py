"""Resource quantities as the scheduler counts them: cpu in millicores, the rest in units.

Kubernetes quantities are decimal or binary suffixed numbers (`250m`, `1.5`,
`128Mi`, `1G`, `2e3`). The scheduler compares sums of requests with node
allocatable many thousands of times a second, so it parses each quantity once
into an int (cpu rounded up to whole millicores, everything else rounded up
to whole units, as kube-scheduler's resource arithmetic does) and caches the
result by text.
"""

from __future__ import annotations

import math
from functools import lru_cache

_SUFFIX = {
    "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5, "Ei": 1024 ** 6,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18,
}


def _value(text: str) -> float:
    t = text.strip()
    if not t:
        raise ValueError("empty quantity")
    for suf in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        if t.endswith(suf):
            return float(t[:-2]) * _SUFFIX[suf]
    last = t[-1]
    if last in "numkMGTPE":
        # a lower-case exponent ("1e3") never ends in a suffix letter, so float() gets it below
        try:
            return float(t[:-1]) * _SUFFIX[last]
        except ValueError:
            pass
    return float(t)


@lru_cache(maxsize=4096)
def cpu_millis(text: str | float | None) -> int:
    """`250m` → 250, `2` → 2000, `0.1` → 100 (rounded up, as Kubernetes does)."""
    if text is None or text == "":
        return 0
    if isinstance(text, (int, float)):
        return int(math.ceil(text * 1000))
    return int(math.ceil(round(_value(str(text)) * 1000, 6)))


@lru_cache(maxsize=4096)
def units(text: str | float | None) -> int:
    """Memory, pods and other scalar resources: `128Mi` → 134217728, `110` → 110."""
    if text is None or text == "":
        return 0
    if isinstance(text, (int, float)):
        return int(math.ceil(text))
    return int(math.ceil(round(_value(str(text)), 6)))


def amount(resource: str, text: str | float | None) -> int:
    """A quantity of `resource` in the scheduler's unit (millicores for cpu)."""
    return cpu_millis(text) if resource == "cpu" else units(text)
