"""Waiting in tests that run real threads, processes or containers: poll until true.

`wait_for(fn, timeout, what)` calls `fn` until it returns something truthy and
returns that, or fails the test naming `what` and the last value seen.
"""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition", *,
             every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
