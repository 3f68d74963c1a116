"""The memory store under concurrent writers, compaction and progress requests."""

from __future__ import annotations

import threading

import pytest

from kbox.store import CompactedError, KeyExistsError, RevisionMismatchError
from kbox.store.memory import MemoryStore


@pytest.fixture(params=["memory", "wal"])
def store(request, tmp_path):
    s = MemoryStore(data_dir=str(tmp_path) if request.param == "wal" else None)
    yield s
    s.close()


def test_concurrent_writers_cas_and_ordered_watch(store):
    watchers = [store.watch("/c/", 0) for _ in range(3)]
    store.create("/c/counter", b"0")
    conflicts = []
    threads_n, incs = 6, 60

    def worker(n: int) -> None:
        store.create(f"/c/own-{n}", b"")
        done = 0
        while done < incs:
            kv = store.get("/c/counter")
            try:
                store.update("/c/counter", b"%d" % (int(kv.value) + 1), kv.mod_revision)
                done += 1
            except RevisionMismatchError as e:
                conflicts.append(e)
            store.update(f"/c/own-{n}", b"%d" % done, None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(store.get("/c/counter").value) == threads_n * incs
    assert all(e.actual is not None and e.actual.mod_revision != e.expected for e in conflicts)
    # the counter's increments, each worker's create, and one own-key update per attempt
    expected_events = 1 + threads_n + threads_n * incs + (threads_n * incs + len(conflicts))
    assert store.revision == expected_events      # failed compare-and-swaps write nothing
    for w in watchers:
        events = []
        while len(events) < expected_events:
            got = w.get(timeout=2)
            assert got, "watcher missed events"
            events.extend(got)
        revs = [e.revision for e in events]
        assert revs == list(range(1, expected_events + 1))     # every event, in order
        values = [int(e.kv.value) for e in events if e.kv.key == "/c/counter"]
        assert values == list(range(threads_n * incs + 1))
        w.close()


def test_create_conflict(store):
    store.create("/x", b"1")
    with pytest.raises(KeyExistsError):
        store.create("/x", b"2")


def test_compaction_makes_old_watches_fail(store):
    for i in range(10):
        store.create(f"/p/{i}", b"")
    store.compact(6)
    with pytest.raises(CompactedError) as ei:
        store.watch("/p/", 5)
    assert ei.value.compacted == 6 and ei.value.requested == 5
    w = store.watch("/p/", 6)
    assert [e.revision for e in w.get(0)] == [6, 7, 8, 9, 10]
    store.compact(3)                        # going backwards is a no-op
    assert store.compacted_revision == 6


def test_progress_after_pending_events(store):
    w = store.watch("/q/", 0)
    store.create("/q/a", b"")
    store.create("/other", b"")
    w.request_progress()
    evs = w.get(0)
    assert [(e.type, e.revision) for e in evs] == [("PUT", 1), ("PROGRESS", 2)]
