"""The watch cache: one per resource, the API server's view of the store.

Like kube-apiserver's cacher, each resource keeps a decoded copy of every
object and a ring of recent events, fed by a single store watch. Lists are
served from it and watchers fan out from it, so N watchers cost one store
watch. Reads are consistent: before serving, the cache asks the store for a
progress marker and waits until it has applied every write up to the
store's revision at the time of the request.

Watchers that select pods by `spec.nodeName` are indexed by node name (as
kube-apiserver's cacher does), so a thousand node agents do not each look at
every pod event.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import orjson

from kbox.api.errors import ApiError, gone, timeout as timeout_error
from kbox.api.objects import dumps_kept
from kbox.api.resources import ResourceInfo
from kbox.store import Store, WatchEvent, drain_queue

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# Tests set KBOX_CHECK_SHARED=1: each cached object then keeps its bytes from the start
# and, when a newer version replaces it, must still encode to them; an in-place change
# by any reader (an informer handler, a controller) fails loudly instead of silently
# corrupting what every other client reads.
CHECK_SHARED = os.environ.get("KBOX_CHECK_SHARED") == "1"
SHARED_MUTATIONS: list[str] = []     # keys of objects found changed (the test suite asserts none)


class CachedObject:
    """One object version: decoded on first demand (then shared by every reader: never
    mutate) and encoded on first demand. A write's object is decoded by the first reader
    that looks at it, in that reader's thread, not by the writer while it holds the store
    lock; an object nobody reads (most Events) is never decoded at all."""
    __slots__ = ("_obj", "_raw", "_stored", "revision")

    def __init__(self, obj: Obj | None = None, raw: bytes | None = None, *,
                 stored: bytes | None = None, revision: int = 0) -> None:
        self._obj = obj
        self._raw = raw
        self._stored = stored       # the store's bytes: no resourceVersion in them
        self.revision = revision

    @property
    def obj(self) -> Obj:
        obj = self._obj
        if obj is None:
            # two readers may both decode: equal objects, and the first one set stays
            obj = orjson.loads(self._stored)  # type: ignore[arg-type]
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.revision)
            if self._obj is None:
                self._obj = obj
            obj = self._obj
        return obj

    @property
    def raw(self) -> bytes:
        raw = self._raw
        if raw is None:     # two threads may both encode: same bytes, no harm
            raw = self._raw = dumps_kept(self.obj)
        return raw

    def with_revision(self, rev: int) -> "CachedObject":
        """The same object as it stood at `rev` (a deletion's revision): a shallow copy."""
        obj = dict(self.obj)
        obj["metadata"] = {**(obj.get("metadata") or {}), "resourceVersion": str(rev)}
        return CachedObject(obj, revision=rev)


@dataclass(slots=True)
class CacheEvent:
    type: str                 # ADDED, MODIFIED, DELETED
    revision: int
    key: str
    new: CachedObject | None  # None for DELETED
    old: CachedObject | None  # None for ADDED


def _with_rv(raw: bytes, rev: int) -> CachedObject:
    c = CachedObject(stored=raw, revision=rev)
    if CHECK_SHARED:          # decoded and encoded now, to compare against later
        c._raw = dumps_kept(c.obj)
    return c


def _check_unchanged(c: CachedObject | None, key: str) -> None:
    if c is not None and c._raw is not None and orjson.dumps(c.obj) != c._raw:
        log.error("cached object %s was changed in place by a reader", key)
        SHARED_MUTATIONS.append(key)


class Watcher:
    """One API watch: a filtered queue of events for one client.

    `matches(obj)` decides membership; a MODIFIED event that moves an object
    out of the selection is delivered as DELETED, into it as ADDED.
    """

    def __init__(self, cache: "WatchCache", matches: Callable[[Obj], bool],
                 node_name: str | None, bookmarks: bool) -> None:
        self.cache = cache
        self.matches = matches
        self.matches_all = getattr(matches, "matches_all", False)
        self.node_name = node_name
        self.bookmarks = bookmarks
        # SimpleQueue: put never blocks and takes no Python-level lock, so the cache
        # thread hands events over without waiting on a reader that holds a lock
        self._queue: queue.SimpleQueue[tuple[str, CachedObject] | None] = queue.SimpleQueue()
        self.closed = False
        self.last_revision = 0

    def offer(self, ev: CacheEvent) -> None:
        if self.matches_all:      # no selector: no need to decode the object here
            new_in, old_in = ev.new is not None, ev.old is not None
        else:
            new_in = ev.new is not None and self.matches(ev.new.obj)
            old_in = ev.old is not None and self.matches(ev.old.obj)
        if new_in and old_in:
            item = ("MODIFIED", ev.new)
        elif new_in:
            item = ("ADDED", ev.new)
        elif old_in:
            item = ("DELETED", ev.new if ev.new is not None else ev.old)
        else:
            return
        self._push(item)  # type: ignore[arg-type]

    def _push(self, item: tuple[str, CachedObject]) -> None:
        self._queue.put(item)

    def next_batch(self, timeout: float | None) -> list[tuple[str, CachedObject]]:
        """Pending (type, object) pairs; [] after `timeout` seconds or when closed."""
        if self.closed:
            return []
        out: list[tuple[str, CachedObject]] = drain_queue(self._queue, timeout)
        if out:
            self.last_revision = out[-1][1].revision
        return out

    def bookmark(self) -> dict[str, Any]:
        info = self.cache.info
        rev = max(self.last_revision, self.cache.revision)
        return {"kind": info.kind, "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(rev)}}

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)
        self.cache.remove_watcher(self)


class WatchCache:
    def __init__(self, store: Store, info: ResourceInfo, ring_size: int = 10000) -> None:
        self.store = store
        self.info = info
        self.prefix = info.prefix()
        self._lock = threading.RLock()
        self._fresh = threading.Condition(self._lock)
        self.objects: dict[str, CachedObject] = {}
        self._ring: collections.deque[CacheEvent] = collections.deque(maxlen=ring_size)
        self._ring_start = 0          # every event after this revision is in the ring
        self.revision = 0
        self._watchers: set[Watcher] = set()
        self._by_node: dict[str, set[Watcher]] = {}
        self._stopped = False
        subscribe = getattr(store, "subscribe", None)
        self._cancel = None
        self._store_watch = None
        self._thread = None
        # held while filling: a write committed right after subscribing waits for the
        # snapshot below instead of being overwritten by it
        with self._lock:
            if subscribe is not None:
                # the memory store calls us right after each write, in revision order, from
                # the writing thread: no thread, no queue between
                kvs, rev, self._cancel = subscribe(self.prefix, self._on_store_event)
            else:
                kvs, rev = store.range(self.prefix)
            for kv in kvs:
                self.objects[kv.key] = _with_rv(kv.value, kv.mod_revision)
            self.revision = self._ring_start = rev
        if subscribe is None:
            self._store_watch = store.watch(self.prefix, rev + 1)
            self._thread = threading.Thread(target=self._run, name=f"watchcache-{info.plural}",
                                            daemon=True)
            self._thread.start()

    # ---- feeding -------------------------------------------------------------
    def _run(self) -> None:
        w = self._store_watch
        while not self._stopped:
            try:
                batch = w.get(timeout=1.0)
            except Exception:  # pragma: no cover - a backend failure must not kill the API
                log.exception("watch cache %s: store watch failed", self.info.plural)
                continue
            if batch:
                self._apply(batch)

    def _on_store_event(self, ev: WatchEvent) -> None:
        self._apply((ev,))

    def _apply(self, batch) -> None:
        with self._lock:
            for ev in batch:
                if ev.type == "PROGRESS":
                    self.revision = max(self.revision, ev.revision)
                    continue
                kv = ev.kv
                assert kv is not None
                key = kv.key
                old = self.objects.get(key)
                if CHECK_SHARED:
                    _check_unchanged(old, key)
                if ev.type == "PUT":
                    new = _with_rv(kv.value, kv.mod_revision)
                    self.objects[key] = new
                    cev = CacheEvent("MODIFIED" if old else "ADDED", ev.revision, key, new, old)
                else:
                    self.objects.pop(key, None)
                    if old is None and ev.prev_kv is not None:
                        old = _with_rv(ev.prev_kv.value, ev.prev_kv.mod_revision)
                    # the deleted object carries the deletion's revision, as in Kubernetes
                    gone_obj = old.with_revision(ev.revision) if old else None
                    cev = CacheEvent("DELETED", ev.revision, key, None, gone_obj)
                if len(self._ring) == self._ring.maxlen:
                    self._ring_start = self._ring[0].revision
                self._ring.append(cev)
                self.revision = ev.revision
                self._dispatch(cev)
            self._fresh.notify_all()

    def _dispatch(self, ev: CacheEvent) -> None:
        if self._by_node:
            targets = set()
            for c in (ev.new, ev.old):
                if c is not None:
                    node = (c.obj.get("spec") or {}).get("nodeName") or ""
                    targets |= self._by_node.get(node, set())
            for w in targets:
                w.offer(ev)
        for w in self._watchers:
            w.offer(ev)

    # ---- consistent reads -------------------------------------------------
    def wait_fresh(self, revision: int | None = None, timeout: float = 5.0) -> None:
        """Block until the cache has applied every write up to `revision` (default: now)."""
        if self._store_watch is None:
            self._wait_fresh_subscribed(revision, timeout)
            return
        target = self.store.revision if revision is None else revision
        if self.revision >= target:
            return
        self._store_watch.request_progress()
        with self._fresh:
            ok = self._fresh.wait_for(lambda: self.revision >= target, timeout)
        if not ok:
            raise timeout_error(f"Too large resource version: {target}, current: {self.revision}")

    def _wait_fresh_subscribed(self, revision: int | None, timeout: float) -> None:
        # sync_point returns once every write up to its revision was delivered to us:
        # fresh as of that revision
        deadline = None
        while True:
            rev = self.store.sync_point()
            with self._lock:
                if rev > self.revision:
                    self.revision = rev
                if revision is None or self.revision >= revision:
                    return
                if deadline is None:
                    deadline = time.monotonic() + timeout
                left = deadline - time.monotonic()
                if left <= 0:
                    raise timeout_error(f"Too large resource version: {revision}, "
                                        f"current: {self.revision}")
                self._fresh.wait(min(left, 0.05))

    def snapshot(self) -> tuple[list[CachedObject], int]:
        self.wait_fresh()
        with self._lock:
            return list(self.objects.values()), self.revision

    def items_sorted(self) -> tuple[list[tuple[str, CachedObject]], int]:
        self.wait_fresh()
        with self._lock:
            return sorted(self.objects.items()), self.revision

    # ---- watchers -----------------------------------------------------------
    def add_watcher(self, matches: Callable[[Obj], bool], *, since: int | None,
                    node_name: str | None = None, bookmarks: bool = False,
                    send_initial: bool = False) -> Watcher:
        """Register a watcher.

        `since=None` (or send_initial): ADDED events for every current object,
        then changes. `since=N`: every change after revision N (410 if too old).
        """
        if since is not None and not send_initial:
            self.wait_fresh(since)
        w = Watcher(self, matches, node_name, bookmarks)
        with self._lock:
            if since is None or send_initial:
                for cobj in sorted(self.objects.items()):
                    if matches(cobj[1].obj):
                        w._push(("ADDED", cobj[1]))
                w.last_revision = self.revision
            else:
                if since < self._ring_start:
                    raise gone(f"too old resource version: {since} ({self._ring_start})")
                for ev in self._ring:
                    if ev.revision > since:
                        w.offer(ev)
                w.last_revision = max(since, 0)
            if node_name is not None:
                self._by_node.setdefault(node_name, set()).add(w)
            else:
                self._watchers.add(w)
        return w

    def remove_watcher(self, w: Watcher) -> None:
        with self._lock:
            self._watchers.discard(w)
            if w.node_name is not None:
                s = self._by_node.get(w.node_name)
                if s is not None:
                    s.discard(w)
                    if not s:
                        del self._by_node[w.node_name]

    def watcher_count(self) -> int:
        with self._lock:
            return len(self._watchers) + sum(len(s) for s in self._by_node.values())

    def stop(self) -> None:
        self._stopped = True
        if self._cancel is not None:
            self._cancel()
        if self._store_watch is not None:
            self._store_watch.close()
        with self._lock:
            watchers = list(self._watchers) + [w for s in self._by_node.values() for w in s]
        for w in watchers:
            w.close()


def iter_watcher(w: Watcher, stop: threading.Event | None = None,
                 poll: float = 0.5) -> Iterator[tuple[str, CachedObject]]:
    while not w.closed and not (stop and stop.is_set()):
        for item in w.next_batch(poll):
            yield item


__all__ = ["WatchCache", "Watcher", "CachedObject", "CacheEvent", "ApiError"]
