"""A rate-limited work queue with client-go's semantics.

- A key added several times before a worker takes it is processed once.
- A key being processed is never handed to a second worker; if it is added
  meanwhile it is processed again after `done()`.
- `add_rate_limited` requeues with per-key exponential backoff (5 ms doubling
  to 1000 s, as client-go's default controller rate limiter); `forget`
  resets it after a success.
- `add_after` delays a key on the queue's clock, so a fake clock drives
  delays in tests.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from typing import Hashable

from kbox.clock import Clock, RealClock

log = logging.getLogger(__name__)


class SyncError(Exception):
    """An expected failure of one sync (a node that is down, a command that failed):
    logged in one line, without a traceback, and retried with back-off."""


class WorkQueue:
    def __init__(self, clock: Clock | None = None, *, name: str = "",
                 base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.clock = clock or RealClock()
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._queue: list[Hashable] = []
        self._head = 0
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._delayed_at: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._shutdown = False

    # ---- adding ----------------------------------------------------------
    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            due = self.clock.monotonic() + delay
            prev = self._delayed_at.get(key)
            if prev is not None and prev <= due:
                return   # already due sooner
            self._delayed_at[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: Hashable) -> None:
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2 ** n), self.max_delay))

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # ---- taking ----------------------------------------------------------
    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys onto the queue; return seconds until the next one."""
        now = self.clock.monotonic()
        while self._delayed:
            due, _, key = self._delayed[0]
            if self._delayed_at.get(key) != due:
                heapq.heappop(self._delayed)      # superseded by an earlier due time
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            del self._delayed_at[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> Hashable | None:
        """Next key to process, or None on shutdown (or when `timeout` real seconds pass)."""
        with self._cond:
            waited = False
            while True:
                wait_for = self._promote_due_locked()
                if self._head < len(self._queue):
                    key = self._queue[self._head]
                    self._head += 1
                    if self._head > 1024 and self._head * 2 > len(self._queue):
                        del self._queue[:self._head]
                        self._head = 0
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutdown or (waited and timeout is not None):
                    return None
                if wait_for is not None:
                    self.clock.wait(self._cond, wait_for if timeout is None else min(wait_for, timeout))
                else:
                    self._cond.wait(timeout)
                waited = True

    def try_get(self) -> Hashable | None:
        """A key that is ready now, or None (never blocks): for synchronous test drivers."""
        with self._cond:
            self._promote_due_locked()
            if self._head < len(self._queue):
                key = self._queue[self._head]
                self._head += 1
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            return None

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def process_next(self, sync, *, timeout: float | None = None, name: str = "") -> bool:
        """Take one key and run `sync(key)` on it, as every reconcile loop does.

        Success forgets the key's back-off; a failure requeues it rate-limited
        (a 409 Conflict quietly: the next sync reads the fresh object). Returns
        False when no key was ready (timeout 0: never blocks) or on shutdown.
        """
        from kbox.api.errors import ApiError
        key = self.get(timeout) if timeout != 0 else self.try_get()
        if key is None:
            return False
        try:
            sync(key)
            self.forget(key)
        except ApiError as e:
            if e.code == 409:
                log.debug("%s: conflict on %s, requeueing", name or self.name, key)
            else:
                log.warning("%s: sync %s failed: %s", name or self.name, key, e)
            self.add_rate_limited(key)
        except SyncError as e:
            log.warning("%s: sync %s failed: %s", name or self.name, key, e)
            self.add_rate_limited(key)
        except Exception:
            log.exception("%s: sync %s crashed", name or self.name, key)
            self.add_rate_limited(key)
        finally:
            self.done(key)
        return True

    def run_until_idle(self, sync, *, limit: int = 100000, name: str = "") -> int:
        """Process every key that is ready now, synchronously (tests); returns how many."""
        n = 0
        while n < limit and self.process_next(sync, timeout=0, name=name):
            n += 1
        return n

    # ---- state -------------------------------------------------------------
    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) - self._head

    def pending_delayed(self) -> int:
        with self._cond:
            return len(self._delayed_at)

    def next_delay(self) -> float | None:
        with self._cond:
            if not self._delayed_at:
                return None
            return max(0.0, min(self._delayed_at.values()) - self.clock.monotonic())

    def idle(self) -> bool:
        with self._cond:
            return self._head >= len(self._queue) and not self._processing

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown
