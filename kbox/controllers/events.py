"""The event recorder: how components tell people what they decided.

Like client-go's recorder, repeated events (same object, reason, message,
type and source) within ten minutes are folded into one Event whose `count`
and `lastTimestamp` grow, instead of a new object each time. Writes happen
on a background thread so a controller never waits for its events; tests
call `flush()` to see them.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj
from kbox.clock import Clock, RealClock, iso_micro, iso_time

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
AGGREGATE_WINDOW = 600.0
MAX_SEEN = 4096
# client-go's broadcaster holds at most 1,000 events and drops new ones when full:
# under a flood a component keeps working and loses events, never the other way round
MAX_QUEUED = 1000


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str | None = None,
                 clock: Clock | None = None, *, synchronous: bool = False) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock or RealClock()
        self.synchronous = synchronous
        self._seen: dict[tuple[Any, ...], tuple[str, str, int, float]] = {}
        self._queue: queue.Queue[tuple[Obj, str, str, str, str | None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self.dropped = 0

    def event(self, obj: Obj, type_: str, reason: str, message: str, *,
              host: str | None = None) -> None:
        """Record an event about `obj` (Normal or Warning); `host` overrides the source host."""
        if self.synchronous:
            self._write(obj, type_, reason, message, host)
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name=f"events-{self.component}")
                    self._thread.start()
        if self._queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10000 == 0:
                log.warning("%s: event queue full, %d event(s) dropped", self.component, self.dropped)
            return
        self._queue.put((obj, type_, reason, message, host))

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.event(obj, NORMAL, reason, message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.event(obj, WARNING, reason, message)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event is written."""
        if self._thread is not None:
            done = threading.Event()
            self._queue.put(("__flush__", done))  # type: ignore[arg-type]
            done.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item[0] == "__flush__":
                item[1].set()  # type: ignore[index,misc]
                continue
            try:
                self._write(*item)
            except Exception:
                log.exception("could not record event")

    def _write(self, obj: Obj, type_: str, reason: str, message: str,
               host: str | None = None) -> None:
        host = host or self.host
        m = obj.get("metadata") or {}
        ns = m.get("namespace") or "default"
        involved = {"kind": obj.get("kind"), "namespace": m.get("namespace"),
                    "name": m.get("name"), "uid": m.get("uid"),
                    "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": m.get("resourceVersion")}
        if not involved["namespace"]:
            involved.pop("namespace")
        now = self.clock.now()
        key = (m.get("uid") or m.get("name"), obj.get("kind"), reason, message, type_, host)
        prev = self._seen.get(key)
        if prev is not None and now - prev[3] < AGGREGATE_WINDOW:
            name, evns, count, _ = prev
            try:
                self.client.patch("events", name, {"count": count + 1,
                                                   "lastTimestamp": iso_time(now)}, "merge", evns)
                self._seen.pop(key, None)   # most recently used goes last (LRU order)
                self._seen[key] = (name, evns, count + 1, now)
                return
            except ApiError as e:
                if e.code != 404:
                    raise
        self._seq += 1
        name = f"{m.get('name', 'unknown')}.{int(now * 1e9) + self._seq:x}"
        ev = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": host} if host else {})},
            "firstTimestamp": iso_time(now), "lastTimestamp": iso_time(now), "count": 1,
            "reportingComponent": self.component, "reportingInstance": host or "",
            "eventTime": None,
        }
        try:
            self.client.create("events", ev, ns)
            self._seen[key] = (name, ns, 1, now)
        except ApiError as e:
            # the namespace may be going away; an event must never break its component
            log.debug("event %s/%s not recorded: %s", reason, m.get("name"), e)
        # an LRU of 4096 entries, as client-go's event correlator keeps: dropping the least
        # recently used one is O(1), where rebuilding the dict on every event past 4096 was O(n)
        while len(self._seen) > MAX_SEEN:
            del self._seen[next(iter(self._seen))]


__all__ = ["EventRecorder", "NORMAL", "WARNING", "iso_micro"]
