"""Clocks: every component takes one, so tests and demos can run on fake time.

`RealClock` is wall time. `FakeClock` only moves when a test calls
`advance()`; threads blocked in `sleep()` or `wait()` on a fake clock wake
when fake time passes their deadline, so timing logic (backoff, heartbeats,
grace periods) is asserted exactly without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from datetime import datetime, timezone
from functools import lru_cache


class Clock:
    """Interface. `now()` is epoch seconds; `monotonic()` never goes back."""

    def now(self) -> float:
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Wait on `cond` (held by the caller) for at most `timeout` clock seconds."""
        raise NotImplementedError

    def wait_event(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until `event` is set or `timeout` clock seconds pass; return event state."""
        raise NotImplementedError

    # helpers shared by both clocks
    def iso_now(self) -> str:
        return iso_time(self.now())


@lru_cache(maxsize=4096)
def _iso_second(sec: int) -> str:
    return datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_time(epoch: float) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps. Thousands of
    writes a second share a few seconds' timestamps (now, and when each container started):
    the text of each second is made once."""
    return _iso_second(int(epoch // 1))


def iso_micro(epoch: float) -> str:
    """RFC 3339 with microseconds (MicroTime, used by Leases and events.k8s.io)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """Parse a Kubernetes timestamp back to epoch seconds (None stays None)."""
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


class RealClock(Clock):
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        cond.wait(timeout)

    def wait_event(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


class FakeClock(Clock):
    """Time moves only with `advance()`. Thread-safe.

    Sleepers register a deadline; `advance` wakes every sleeper whose deadline
    has passed, in deadline order.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, object]] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def _register(self, timeout: float, waker: object) -> None:
        with self._lock:
            heapq.heappush(self._sleepers, (self._mono + timeout, next(self._seq), waker))

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        ev = threading.Event()
        self._register(seconds, ev)
        ev.wait()

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        if timeout is not None:
            if timeout <= 0:
                return
            self._register(timeout, cond)
        cond.wait()

    def wait_event(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return event.wait()
        if timeout <= 0:
            return event.is_set()
        waker = _EventOrDeadline(event)
        self._register(timeout, waker)
        return waker.wait()

    def advance(self, seconds: float) -> None:
        """Move fake time forward and wake everyone whose deadline passed."""
        with self._lock:
            self._now += seconds
            self._mono += seconds
            due = []
            while self._sleepers and self._sleepers[0][0] <= self._mono:
                due.append(heapq.heappop(self._sleepers)[2])
        for waker in due:
            if isinstance(waker, threading.Event):
                waker.set()
            elif isinstance(waker, _EventOrDeadline):
                waker.expire()
            else:  # a Condition
                with waker:  # type: ignore[attr-defined]
                    waker.notify_all()  # type: ignore[attr-defined]

    def pending_sleepers(self) -> int:
        with self._lock:
            return len(self._sleepers)


class _EventOrDeadline:
    """Wakes when the watched event is set or the fake deadline passes."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self._expired = False
        # Poll the real event in short real-time slices; only the deadline is fake.
        self._cond = threading.Condition()

    def expire(self) -> None:
        with self._cond:
            self._expired = True
            self._cond.notify_all()

    def wait(self) -> bool:
        with self._cond:
            while not self._expired and not self.event.is_set():
                self._cond.wait(0.01)
        return self.event.is_set()
