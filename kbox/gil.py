"""Thread helpers for a control plane whose threads all share one GIL.

On a busy cluster the process can spend more time switching threads than
working: every hand-off between threads is a futex wake, a GIL hand-off and
a context switch. Two helpers cut the hand-offs:

- `Pacer`: a consumer thread that wakes for every item (an informer for each
  watch event, an event recorder for each event) costs two or more switches
  per item. A Pacer notices items arriving back to back and then waits a
  moment before taking the next batch, so one wake-up takes many items. When
  items come one at a time it never waits: an idle cluster reacts at once.
- `GilLock`: a lock that many threads take briefly (the store's) forms a
  convoy under the GIL. A thread blocked in a plain lock is handed the lock by
  the OS while it does not hold the GIL; it then holds the lock while waiting
  for the GIL, so the next thread to want the lock blocks too, and from then
  on every acquisition is a thread switch (measured: 3 in 4 store writes found
  the lock taken). A GilLock is only ever taken by a thread that holds the
  GIL: a waiter sleeps briefly (letting the holder run) and tries again.
"""

from __future__ import annotations

import threading
import time

# how long a busy consumer lets items gather; what counts as busy: a batch taken within
# BUSY_GAP of the previous one; and a batch so big that there is surely more waiting
LINGER = 0.002
BUSY_GAP = 0.005
BACKLOG = 64


class Pacer:
    __slots__ = ("linger", "_last")

    def __init__(self, linger: float = LINGER) -> None:
        self.linger = linger
        self._last = -1.0

    def before_next(self, taken: int) -> None:
        """Call before waiting for the next batch; `taken`: how many items the last one had."""
        now = time.monotonic()
        if self.linger > 0 and now - self._last < BUSY_GAP and taken < BACKLOG:
            time.sleep(self.linger)
            now = time.monotonic()
        self._last = now


class GilLock:
    """A re-entrant lock taken only by a thread holding the GIL (see the module's notes).

    Uncontended it costs what an RLock costs; contended, a waiter polls with
    sleeps from 50 µs growing to 1 ms instead of queueing in the OS."""
    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        return self._wait(timeout)

    def _wait(self, timeout: float) -> bool:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        delay = 0.00005
        while True:
            time.sleep(delay)
            if self._lock.acquire(False):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            delay = min(delay * 2, 0.001)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "GilLock":
        if not self._lock.acquire(False):
            self._wait(-1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
