"""The dashboard's view of the cluster: one list + watch feed per resource.

Each `Feed` keeps a dict of objects keyed by UID, filled by `client.list`
and kept current by `client.watch` from the list's resourceVersion (a 410 or
a broken stream means: list again). It records which UIDs changed since the
dashboard last looked, so the app applies keyed diffs instead of rebuilding.

Why not the controllers' `Informer`: the dashboard also needs a synchronous
`sync()` (a deterministic refresh for tests and snapshots) that may run while
the watch thread is live, so updates are applied only when their
resourceVersion is newer, and it needs the set of changed keys, not handlers.

Nothing here imports Textual: a feed calls `on_change()` (once per batch of
changes, until the app drains them) and the app turns that into one message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kbox.api.errors import ApiError

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# what the dashboard watches; views read only these
FEED_PERIOD = 0.1     # seconds an in-process feed waits after a batch before taking the next
RESOURCES = ("nodes", "pods", "deployments", "replicasets", "services", "endpoints", "events",
             "namespaces", "jobs", "daemonsets")


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def uid_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class Feed:
    """One resource's objects, by UID, with the UIDs changed since the last `drain()`."""

    def __init__(self, client: Any, resource: str, on_change: Callable[[], None]) -> None:
        self.client = client
        self.resource = resource
        self.on_change = on_change
        self.items: dict[str, Obj] = {}
        self.error: str | None = None          # the last list/watch failure, for the header
        self.synced = threading.Event()
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._removed: set[str] = set()
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._rv = ""

    # ---- reading (app thread) -------------------------------------------------
    def values(self) -> list[Obj]:
        with self._lock:
            return list(self.items.values())

    def snapshot(self) -> dict[str, Obj]:
        with self._lock:
            return dict(self.items)

    def get(self, uid: str) -> Obj | None:
        return self.items.get(uid)

    def drain(self) -> tuple[set[str], set[str]]:
        """(changed UIDs, removed UIDs) since the last drain."""
        with self._lock:
            changed, removed = self._changed, self._removed
            self._changed, self._removed = set(), set()
        return changed - removed, removed

    def requeue(self, changed: set[str], removed: set[str]) -> None:
        """Give back drained keys the app had no time for this cycle (still current ones only)."""
        with self._lock:
            self._changed.update(u for u in changed if u in self.items)
            self._removed.update(u for u in removed if u not in self.items)

    # ---- writing (feed thread or sync) ----------------------------------------
    def _put(self, obj: Obj, uid: str | None = None) -> bool:
        if uid is None:
            uid = uid_of(obj)
        old = self.items.get(uid)
        if old is not None and _rv(old) >= _rv(obj):
            return False
        self.items[uid] = obj
        self._changed.add(uid)
        self._removed.discard(uid)
        return True

    def _drop(self, uid: str) -> bool:
        if self.items.pop(uid, None) is None:
            return False
        self._removed.add(uid)
        self._changed.discard(uid)
        return True

    def sync(self) -> None:
        """List now and make the cache match (objects newer than the list are kept)."""
        lst = self.client.list(self.resource, read_only=True)    # the feed never changes them
        list_rv = int(lst["metadata"].get("resourceVersion") or 0)
        try:
            fresh: dict[str, Obj] | None = {o["metadata"]["uid"]: o for o in lst["items"]}
        except KeyError:
            fresh = None
        if fresh is None or "" in fresh:         # an object without a UID (a test double)
            fresh = {uid_of(o): o for o in lst["items"]}
        with self._lock:
            items = self.items
            dirty = False
            if not items:                        # the first list: every object is new
                items.update(fresh)
                self._changed.update(fresh)
                self._removed.difference_update(fresh)
                dirty = bool(fresh)
            for uid, obj in fresh.items():
                if items.get(uid) is not obj:    # a read-only list hands unchanged objects back
                    dirty |= self._put(obj, uid)
            for uid in [u for u, o in items.items() if u not in fresh and _rv(o) <= list_rv]:
                dirty |= self._drop(uid)
            self._rv = lst["metadata"].get("resourceVersion") or ""
        self.error = None
        self.synced.set()
        if dirty:
            self.on_change()

    def apply(self, events: Iterable[tuple[str, Obj]]) -> None:
        dirty = False
        with self._lock:
            for etype, obj in events:
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if etype == "BOOKMARK":
                    pass
                elif etype == "DELETED":
                    dirty |= self._drop(uid_of(obj))
                else:
                    dirty |= self._put(obj)
                if rv:
                    self._rv = rv
        if dirty:
            self.on_change()

    # ---- the watch thread -------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"kbox-tui-{self.resource}")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        s = self._stream
        if s is not None:
            try:
                s.close()
            except Exception:
                pass

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self.sync()
                    need_list = False
                need_list = self._watch()
            except ApiError as e:
                if self._stop.is_set():
                    break
                self.error = e.message
                need_list = need_list or e.code == 410
                self._stop.wait(0.5)
            except Exception as e:   # the API went away or the stream broke: list again
                if self._stop.is_set():
                    break
                self.error = str(e) or type(e).__name__
                log.debug("dashboard feed %s failed", self.resource, exc_info=True)
                need_list = True
                self._stop.wait(1.0)

    def _watch(self) -> bool:
        """Follow the watch from the last resourceVersion; True when a list is needed."""
        self._stream = stream = self.client.watch(self.resource, resource_version=self._rv or None,
                                                  allow_bookmarks=True, read_only=True)
        try:
            batch: list[tuple[str, Obj]] = []
            next_batch = getattr(stream, "next_batch", None)
            if next_batch is not None:           # in-process: take what is there in one go
                while not self._stop.is_set() and not stream.closed:
                    batch = next_batch(0.5)
                    if any(t == "ERROR" for t, _ in batch):
                        return True
                    if batch:
                        self.apply(batch)
                        # then let events pile up for a while: in the control plane's own
                        # process, a thread waking for every event of a burst costs the
                        # scheduler and controllers more (GIL hand-offs) than the work itself
                        self._stop.wait(FEED_PERIOD)
                return False
            for etype, obj in stream:
                if self._stop.is_set():
                    return False
                if etype == "ERROR":
                    return True
                self.apply([(etype, obj)])
        finally:
            stream.close()
        return False


class ClusterData:
    """Every feed the dashboard reads, with one 'something changed' signal for all."""

    def __init__(self, client: Any, resources: Iterable[str] = RESOURCES,
                 on_change: Callable[[], None] | None = None) -> None:
        self.client = client
        self._notify = on_change
        self._pending = threading.Event()
        self.feeds = {r: Feed(client, r, self._changed) for r in resources}

    def _changed(self) -> None:
        # one signal per batch: the app clears it when it drains
        if not self._pending.is_set():
            self._pending.set()
            if self._notify is not None:
                self._notify()

    def __getitem__(self, resource: str) -> Feed:
        return self.feeds[resource]

    def start(self) -> None:
        for f in self.feeds.values():
            f.start()

    def stop(self) -> None:
        for f in self.feeds.values():
            f.stop()

    def sync(self) -> None:
        """List every resource now (the deterministic refresh)."""
        for f in self.feeds.values():
            try:
                f.sync()
            except ApiError as e:
                f.error = e.message
            except Exception as e:  # an unreachable API shows in the header, never raises
                f.error = str(e) or type(e).__name__

    def drain(self, limit: int | None = None) -> dict[str, tuple[set[str], set[str]]]:
        """Changed and removed keys per resource. With `limit`, at most that many keys per
        resource; the rest stay queued and signal again, so one cycle stays short."""
        self._pending.clear()
        out = {}
        again = False
        for r, f in self.feeds.items():
            changed, removed = f.drain()
            if limit is not None and len(changed) + len(removed) > limit:
                keys = sorted(removed) + sorted(changed)
                keep = set(keys[:limit])
                f.requeue(changed - keep, removed - keep)
                changed, removed = changed & keep, removed & keep
                again = True
            if changed or removed:
                out[r] = (changed, removed)
        if again:
            self._changed()
        return out

    def errors(self) -> list[str]:
        return [f"{r}: {f.error}" for r, f in self.feeds.items() if f.error]
