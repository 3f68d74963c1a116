"""The memory backend: the default store, in this process, thread-safe.

Keys live in a dict plus a sorted key list (range by prefix is a bisect);
every write appends a WatchEvent to the history, which watches replay from
and which `compact()` trims. With `data_dir` the store is durable: see
`kbox.store.wal` for the write-ahead log and snapshots (and the guarantee the
`fsync` option gives). Every write is logged while the store lock is held, so
the log order is the revision order.

In-process subscribers (the API's watch caches) are told of each write after
the store lock is released, in revision order, by whichever writer thread
delivers first (`_deliver`). The store lock then guards only the data itself:
it is held for a few microseconds, and a thread that loses the GIL while
holding it no longer makes every other writer queue behind it.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import logging
import queue
import threading
from typing import Callable

from sortedcontainers import SortedList

from kbox.clock import Clock, RealClock
from kbox.gil import GilLock
from kbox.store import (CompactedError, KeyExistsError, KeyNotFoundError, KeyValue,
                        LeaseNotFoundError, RevisionMismatchError, Store, Watch, WatchEvent,
                        drain_queue)

log = logging.getLogger(__name__)


class _MemoryWatch(Watch):
    def __init__(self, store: "MemoryStore", prefix: str) -> None:
        self._store = store
        self.prefix = prefix
        # SimpleQueue: a write publishes without taking a second lock while it holds
        # the store's, so a slow reader never stalls writers
        self._queue: queue.SimpleQueue[WatchEvent | None] = queue.SimpleQueue()
        self._closed = False

    def _push(self, ev: WatchEvent) -> None:
        self._queue.put(ev)

    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        return [] if self._closed else drain_queue(self._queue, timeout)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._store._remove_watch(self)

    def request_progress(self) -> None:
        with self._store._lock:   # ordered after every event already published
            rev = self._store._rev
            self._push(WatchEvent("PROGRESS", None, None, rev))

    @property
    def closed(self) -> bool:
        return self._closed


class _Lease:
    __slots__ = ("id", "ttl", "expires", "keys")

    def __init__(self, lease_id: int, ttl: float, expires: float) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.expires = expires
        self.keys: set[str] = set()


class MemoryStore(Store):
    def __init__(self, data_dir: str | None = None, clock: Clock | None = None,
                 history_limit: int | None = None, *, fsync: str = "periodic",
                 sync_interval: float = 0.005, snapshot_bytes: int = 64 << 20,
                 **_: object) -> None:
        self._clock = clock or RealClock()
        # taken by every read and write: a GilLock, or writers convoy (kbox.gil)
        self._lock = GilLock()
        self._data: dict[str, KeyValue] = {}
        # sorted, for range by prefix; a SortedList, since one plain list of every key
        # moves half of it (100,000s of pointers) on each create and delete
        self._keys: SortedList = SortedList()
        self._rev = 0
        self._compacted = 0
        self._history: list[WatchEvent] = []  # events with revision >= self._compacted
        self._watches: list[_MemoryWatch] = []
        # (prefix, callback, first revision it wants); replaced, never changed in place,
        # so a delivery can walk it while another thread subscribes
        self._subscribers: tuple[tuple[str, Callable[[WatchEvent], None], int], ...] = ()
        # committed writes not yet told to subscribers, in revision order, and the lock that
        # makes one thread at a time tell them
        self._undelivered: collections.deque[WatchEvent] = collections.deque()
        self._delivering = threading.RLock()
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(1)
        self._history_limit = history_limit
        self._wal = None
        if data_dir:
            from kbox.store.wal import WriteAheadLog
            wal = WriteAheadLog(data_dir, fsync=fsync, sync_interval=sync_interval,
                                snapshot_bytes=snapshot_bytes)
            with self._lock:
                wal.restore(self)      # replays through the store while self._wal is None
                self._wal = wal

    # ---- reads -------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def get(self, key: str) -> KeyValue | None:
        return self._data.get(key)

    def range(self, prefix: str, *, start_key: str | None = None,
              limit: int = 0) -> tuple[list[KeyValue], int]:
        with self._lock:
            out: list[KeyValue] = []
            data = self._data
            for key in self._keys.irange(minimum=max(prefix, start_key or "")):
                if not key.startswith(prefix):
                    break
                out.append(data[key])
                if limit and len(out) >= limit:
                    break
            return out, self._rev

    def count(self, prefix: str) -> int:
        with self._lock:
            lo = self._keys.bisect_left(prefix)
            hi = self._keys.bisect_left(prefix + "\U0010ffff")
            return hi - lo

    # ---- writes ------------------------------------------------------------
    def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        with self._lock:
            if key in self._data:
                raise KeyExistsError(key)
            self._check_lease(lease)
            rev = self._rev + 1
            kv = KeyValue(key, value, rev, rev, 1, lease)
            self._apply_put(kv, None)
        self._deliver()
        return kv

    def update(self, key: str, value: bytes, expected_mod_revision: int | None,
               *, lease: int = 0) -> KeyValue:
        with self._lock:
            old = self._data.get(key)
            if old is None:
                if expected_mod_revision:
                    raise RevisionMismatchError(key, expected_mod_revision, None)
                raise KeyNotFoundError(key)
            if expected_mod_revision is not None and old.mod_revision != expected_mod_revision:
                raise RevisionMismatchError(key, expected_mod_revision, old)
            self._check_lease(lease)
            rev = self._rev + 1
            kv = KeyValue(key, value, old.create_revision, rev, old.version + 1, lease)
            self._apply_put(kv, old)
        self._deliver()
        return kv

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        with self._lock:
            old = self._data.get(key)
            if old is None:
                raise KeyNotFoundError(key)
            if expected_mod_revision is not None and old.mod_revision != expected_mod_revision:
                raise RevisionMismatchError(key, expected_mod_revision, old)
            self._apply_delete(old, self._rev + 1)
        self._deliver()
        return old

    def _apply_put(self, kv: KeyValue, old: KeyValue | None, *, log: bool = True) -> None:
        """Install a put at kv.mod_revision (also used by WAL replay with log=False)."""
        self._rev = kv.mod_revision
        if old is None:
            self._keys.add(kv.key)
        elif old.lease and old.lease != kv.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(kv.key)
        self._data[kv.key] = kv
        if kv.lease and kv.lease in self._leases:
            self._leases[kv.lease].keys.add(kv.key)
        if log and self._wal is not None:
            self._wal.log_put(kv)
        self._publish(WatchEvent("PUT", kv, old, kv.mod_revision))

    def _apply_delete(self, old: KeyValue, rev: int, *, log: bool = True) -> None:
        self._rev = rev
        del self._data[old.key]
        self._keys.remove(old.key)
        if old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(old.key)
        if log and self._wal is not None:
            self._wal.log_delete(old.key, rev)
        tomb = KeyValue(old.key, b"", old.create_revision, rev, 0, 0)
        self._publish(WatchEvent("DELETE", tomb, old, rev))

    def _publish(self, ev: WatchEvent) -> None:
        self._history.append(ev)
        if self._history_limit and len(self._history) > self._history_limit * 2:
            self.compact(self._history[-self._history_limit].revision)
        key = ev.kv.key
        if self._subscribers:
            self._undelivered.append(ev)
        for w in self._watches:
            if key.startswith(w.prefix):
                w._push(ev)

    def _deliver(self) -> None:
        """Tell subscribers of every committed write, in revision order (store lock NOT held).

        Whoever finds the delivery lock free delivers everything waiting, its own write
        and other threads' writes alike; a thread that finds it taken returns at once,
        since the holder delivers its write too (it looks again after letting go)."""
        undelivered = self._undelivered
        while undelivered:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                self._deliver_locked()
            finally:
                self._delivering.release()

    def _deliver_locked(self) -> None:
        undelivered = self._undelivered
        while undelivered:
            try:
                ev = undelivered.popleft()
            except IndexError:
                return
            key = ev.kv.key  # type: ignore[union-attr]
            for prefix, callback, since in self._subscribers:
                if key.startswith(prefix) and ev.revision > since:
                    try:
                        callback(ev)
                    except Exception:  # a subscriber's bug must never fail a committed write
                        log.exception("store subscriber for %s failed", prefix)

    # ---- watch -------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int = 0) -> Watch:
        with self._lock:
            if start_revision and start_revision < self._compacted:
                raise CompactedError(start_revision, self._compacted)
            w = _MemoryWatch(self, prefix)
            if start_revision and start_revision <= self._rev:
                i = bisect.bisect_left(self._history, start_revision,
                                       key=lambda e: e.revision)
                for e in self._history[i:]:
                    if e.kv.key.startswith(prefix):  # type: ignore[union-attr]
                        w._push(e)
            self._watches.append(w)
            return w

    def subscribe(self, prefix: str, callback: Callable[[WatchEvent], None]
                  ) -> tuple[list[KeyValue], int, Callable[[], None]]:
        """For in-process readers that must see each write as it commits (the API's watch
        caches): `callback(event)` runs in a writer's thread right after the write, in
        revision order, one call at a time, so no thread hand-off sits between a write and
        its readers. Returns the keys under `prefix` now, the revision they are at, and a
        cancel function. Callbacks must be quick and must not call back into the store."""
        with self._delivering:
            with self._lock:
                kvs, rev = self.range(prefix)
                # writes up to `rev` are in kvs, even those still waiting to be delivered
                entry = (prefix, callback, rev)
                self._subscribers = (*self._subscribers, entry)
        self._deliver()     # writes that found the delivery lock taken while we held it

        def cancel() -> None:
            with self._delivering:
                self._subscribers = tuple(e for e in self._subscribers if e is not entry)
            self._deliver()
        return kvs, rev, cancel

    def sync_point(self) -> int:
        """The current revision, once every write up to it has reached the subscribers."""
        with self._lock:
            rev = self._rev
        with self._delivering:
            self._deliver_locked()
        self._deliver()
        return rev

    def _remove_watch(self, w: _MemoryWatch) -> None:
        with self._lock:
            try:
                self._watches.remove(w)
            except ValueError:
                pass

    # ---- leases ------------------------------------------------------------
    def grant_lease(self, ttl: float) -> int:
        with self._lock:
            lease_id = next(self._lease_ids)
            self._leases[lease_id] = _Lease(lease_id, ttl, self._clock.monotonic() + ttl)
            if self._wal is not None:
                self._wal.log_grant(lease_id, ttl)
            return lease_id

    def keep_alive(self, lease_id: int) -> None:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                raise LeaseNotFoundError(f"lease {lease_id} not found")
            lease.expires = self._clock.monotonic() + lease.ttl

    def revoke_lease(self, lease_id: int) -> None:
        self._revoke(lease_id)
        self._deliver()

    def _revoke(self, lease_id: int) -> None:
        with self._lock:
            lease = self._leases.pop(lease_id, None)
            if lease is None:
                raise LeaseNotFoundError(f"lease {lease_id} not found")
            for key in sorted(lease.keys):
                old = self._data.get(key)
                if old is not None:
                    self._apply_delete(old, self._rev + 1)
            # logged after the deletes: a crash in between leaves a lease without keys
            # (it expires again), never keys whose lease is gone
            if self._wal is not None:
                self._wal.log_revoke(lease_id)

    def expire_leases(self) -> int:
        """Revoke every lease past its TTL; returns how many. Called periodically."""
        now = self._clock.monotonic()
        with self._lock:
            expired = [lid for lid, lease in self._leases.items() if lease.expires <= now]
            for lid in expired:
                self._revoke(lid)
        self._deliver()
        return len(expired)

    def _check_lease(self, lease: int) -> None:
        if lease and lease not in self._leases:
            raise LeaseNotFoundError(f"lease {lease} not found")

    # ---- compaction --------------------------------------------------------
    def compact(self, revision: int) -> None:
        with self._lock:
            if revision <= self._compacted:
                return
            revision = min(revision, self._rev)
            self._trim_history(revision)
            if self._wal is not None:
                self._wal.log_compact(revision)

    def _trim_history(self, revision: int) -> None:
        i = bisect.bisect_left(self._history, revision, key=lambda e: e.revision)
        del self._history[:i]
        self._compacted = revision

    # ---- for the write-ahead log (store lock held) --------------------------
    def _state_before(self, revision: int) -> list[KeyValue]:
        """Every key as of revision-1, in key order: current state with history >= revision undone."""
        state = dict(self._data)
        i = bisect.bisect_left(self._history, revision, key=lambda e: e.revision)
        for ev in reversed(self._history[i:]):
            key = ev.kv.key  # type: ignore[union-attr]
            if ev.prev_kv is None:
                state.pop(key, None)
            else:
                state[key] = ev.prev_kv
        return [state[k] for k in sorted(state)]

    def _next_lease_id(self) -> int:
        nxt = next(self._lease_ids)
        self._lease_ids = itertools.count(nxt)
        return nxt

    def _install_snapshot(self, rev: int, compacted: int, next_lease: int,
                          leases: list[tuple[int, float]], kvs: list[KeyValue]) -> None:
        now = self._clock.monotonic()
        self._leases = {lid: _Lease(lid, ttl, now + ttl) for lid, ttl in leases}
        self._data = {kv.key: kv for kv in kvs}
        self._keys = SortedList(self._data)
        for kv in kvs:
            if kv.lease in self._leases:
                self._leases[kv.lease].keys.add(kv.key)
        self._rev = rev
        self._compacted = compacted
        self._history = []
        self._lease_ids = itertools.count(max(next_lease, 1))

    def _replay_put(self, kv: KeyValue) -> None:
        self._apply_put(kv, self._data.get(kv.key), log=False)

    def _replay_delete(self, key: str, rev: int) -> None:
        old = self._data.get(key)
        if old is None:   # cannot happen in a consistent log; keep the revision anyway
            self._rev = max(self._rev, rev)
            return
        self._apply_delete(old, rev, log=False)

    def _replay_compact(self, revision: int) -> None:
        if revision > self._compacted:
            self._trim_history(min(revision, self._rev))

    def _replay_grant(self, lease_id: int, ttl: float) -> None:
        if lease_id not in self._leases:
            self._leases[lease_id] = _Lease(lease_id, ttl, self._clock.monotonic() + ttl)
        nxt = self._next_lease_id()
        if lease_id >= nxt:
            self._lease_ids = itertools.count(lease_id + 1)

    def _replay_revoke(self, lease_id: int) -> None:
        self._leases.pop(lease_id, None)

    def close(self) -> None:
        with self._lock:
            for w in list(self._watches):
                w.close()
            if self._wal is not None:
                self._wal.close()
                self._wal = None
