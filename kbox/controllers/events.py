"""The event recorder: how components tell people what they decided.

It correlates events as client-go's recorder does before writing them:
- spam filter: each source may say at most 25 things about one object, then
  one more every 5 minutes; the rest are dropped;
- aggregation: once 10 events of the same source, object, type and reason
  but different messages arrive within 10 minutes, further ones fold into one
  Event whose message starts "(combined from similar events): ";
- deduplication: an event identical to one written in the last 10 minutes
  bumps that Event's `count` and `lastTimestamp` instead of making a new one.
Writes happen on a background thread so a controller never waits for its
events (at most 1,000 wait; more are dropped); tests call `flush()`.
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj
from kbox.clock import Clock, RealClock, iso_micro, iso_time
from kbox.gil import Pacer

log = logging.getLogger(__name__)

NAME_LANES = 1024
NORMAL = "Normal"
WARNING = "Warning"
AGGREGATE_WINDOW = 600.0
MAX_SEEN = 4096
# client-go's broadcaster holds at most 1,000 events and drops new ones when full:
# under a flood a component keeps working and loses events, never the other way round
MAX_QUEUED = 1000
SPAM_BURST = 25
SPAM_REFILL_PER_SECOND = 1 / 300
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_PREFIX = "(combined from similar events): "


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
        # each component numbers its events in its own lane: two components reporting on the
        # same object in the same instant (the kubelet's Starting and the node controller's
        # RegisteredNode) must not make the same name, or one event is lost to a conflict
        self._lane = zlib.crc32(component.encode()) % NAME_LANES
        self.dropped = 0          # lost to a full queue
        self.spam_dropped = 0     # lost to the per-object spam filter
        self._spam: dict[tuple[Any, ...], list[float]] = {}           # key -> [tokens, last]
        self._similar: dict[tuple[Any, ...], tuple[set[str], float]] = {}  # key -> (messages, last)

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
        # events wait for no one: let them gather longer than watch events do
        pacer = Pacer(0.02)
        batch: list = []
        while True:
            pacer.before_next(len(batch))
            batch = [self._queue.get()]
            try:
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            for item in batch:
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
        obj_id = (m.get("uid") or m.get("name"), obj.get("kind"), m.get("namespace"),
                  obj.get("apiVersion"), host)
        if not self._spam_allows(obj_id, now):
            self.spam_dropped += 1
            return
        key = self._aggregate(obj_id, type_, reason, message, now)
        if key[-1] is None:           # aggregated: one Event for all similar ones
            message = AGGREGATE_PREFIX + message
        prev = self._seen.get(key)
        if prev is not None and now - prev[3] < AGGREGATE_WINDOW:
            name, evns, count, _ = prev
            try:
                self.client.patch("events", name, {"count": count + 1, "message": message,
                                                   "lastTimestamp": iso_time(now)}, "merge", evns)
                self._seen.pop(key, None)   # most recently used goes last (LRU order)
                self._seen[key] = (name, evns, count + 1, now)
                return
            except ApiError as e:
                if e.code != 404:
                    raise
        self._seq += 1
        name = f"{m.get('name', 'unknown')}.{int(now * 1e9) + self._seq * NAME_LANES + self._lane:x}"
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

    def _spam_allows(self, obj_id: tuple[Any, ...], now: float) -> bool:
        """A token bucket per source+object: SPAM_BURST, refilled one per 5 minutes."""
        b = self._spam.get(obj_id)
        if b is None:
            b = self._spam[obj_id] = [float(SPAM_BURST), now]
            if len(self._spam) > MAX_SEEN:
                del self._spam[next(iter(self._spam))]
        else:
            b[0] = min(float(SPAM_BURST), b[0] + (now - b[1]) * SPAM_REFILL_PER_SECOND)
            b[1] = now
        if b[0] < 1:
            return False
        b[0] -= 1
        return True

    def _aggregate(self, obj_id: tuple[Any, ...], type_: str, reason: str, message: str,
                   now: float) -> tuple[Any, ...]:
        """The deduplication key: per message, or (ending in None) one for every similar event
        once AGGREGATE_MAX_EVENTS different messages came within the window."""
        akey = (*obj_id, type_, reason)
        rec = self._similar.get(akey)
        if rec is None or now - rec[1] > AGGREGATE_WINDOW:
            rec = (set(), now)
        messages = rec[0]
        messages.add(message)
        self._similar.pop(akey, None)
        self._similar[akey] = (messages, now)
        while len(self._similar) > MAX_SEEN:
            del self._similar[next(iter(self._similar))]
        if len(messages) >= AGGREGATE_MAX_EVENTS:
            return (*akey, None)
        return (*akey, message)


__all__ = ["EventRecorder", "NORMAL", "WARNING", "iso_micro"]
