"""The store: a versioned key-value store shaped like etcd v3.

One global revision counts every write. Each key remembers the revision that
created it and the one that last modified it; updates and deletes can be
conditional on the latter (compare-and-swap), which is how the API server
implements resourceVersion concurrency. A watch replays history from a
revision and then follows new writes; history older than the compaction point
is gone, and asking for it raises `CompactedError` (etcd's "required revision
has been compacted"), which the API turns into 410 Gone.

Values are opaque bytes, as in etcd, so a real etcd backend fits behind the
same interface.
"""

from __future__ import annotations

import queue

from dataclasses import dataclass
from typing import Any, Iterator, Literal


class StoreError(Exception):
    pass


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StoreError):
    """The key's mod revision is not the one the caller expected."""

    def __init__(self, key: str, expected: int, actual: "KeyValue | None") -> None:
        super().__init__(f"revision mismatch on {key}: expected {expected}, have "
                         f"{actual.mod_revision if actual else 'deleted'}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (compacted revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class LeaseNotFoundError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["PUT", "DELETE", "PROGRESS"]
    kv: KeyValue | None   # None for PROGRESS; for DELETE: the key with the deleting revision as mod_revision, empty value
    prev_kv: KeyValue | None
    revision: int


class Watch:
    """A stream of events for one prefix. Iterate it, or call `get()` for batches.

    `request_progress()` asks for a PROGRESS event carrying the store's current
    revision, delivered after every event up to that revision (etcd's
    RequestProgress): a consumer that sees it knows it is up to date.
    """

    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        """Events available now (waiting up to `timeout` real seconds); [] on timeout."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def request_progress(self) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def __iter__(self) -> Iterator[WatchEvent]:
        while not self.closed:
            for ev in self.get(timeout=0.5):
                yield ev

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store:
    """The interface every backend implements (memory, etcd)."""

    @property
    def revision(self) -> int:
        raise NotImplementedError

    @property
    def compacted_revision(self) -> int:
        raise NotImplementedError

    def get(self, key: str) -> KeyValue | None:
        raise NotImplementedError

    def range(self, prefix: str, *, start_key: str | None = None,
              limit: int = 0) -> tuple[list[KeyValue], int]:
        """Keys under `prefix` in key order (from `start_key` inclusive), and the revision read at."""
        raise NotImplementedError

    def count(self, prefix: str) -> int:
        raise NotImplementedError

    def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        raise NotImplementedError

    def update(self, key: str, value: bytes, expected_mod_revision: int | None,
               *, lease: int = 0) -> KeyValue:
        """Replace `key` if its mod revision is `expected_mod_revision` (None: unconditional)."""
        raise NotImplementedError

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        """Delete `key`; return the deleted key-value (its last state)."""
        raise NotImplementedError

    def watch(self, prefix: str, start_revision: int = 0) -> Watch:
        """Events under `prefix` with revision >= start_revision (0: only future writes)."""
        raise NotImplementedError

    def grant_lease(self, ttl: float) -> int:
        raise NotImplementedError

    def keep_alive(self, lease_id: int) -> None:
        raise NotImplementedError

    def revoke_lease(self, lease_id: int) -> None:
        raise NotImplementedError

    def compact(self, revision: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def drain_queue(q: "queue.SimpleQueue[Any]", timeout: float | None) -> list[Any]:
    """Everything waiting in `q`, waiting up to `timeout` seconds (None: forever; 0: not at
    all) for the first item. `None` items are wake-ups (a close) and are dropped."""
    out: list[Any] = []
    try:
        item = q.get(timeout=timeout) if timeout is None or timeout > 0 else q.get_nowait()
        while True:
            if item is not None:
                out.append(item)
            item = q.get_nowait()
    except queue.Empty:
        pass
    return out


def open_store(backend: str = "memory", *, data_dir: str | None = None, clock=None,
               **options) -> Store:
    """Build a store backend by name."""
    if backend == "memory":
        from kbox.store.memory import MemoryStore
        return MemoryStore(data_dir=data_dir, clock=clock, **options)
    if backend == "etcd":
        from kbox.store.etcd import EtcdStore
        return EtcdStore(clock=clock, **options)
    raise ValueError(f"unknown store backend {backend!r} (choose memory or etcd)")
