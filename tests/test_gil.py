"""Thread helpers for one GIL (kbox.gil) and the store's delivery to subscribers."""

from __future__ import annotations

import threading
import time

from kbox.gil import GilLock, Pacer
from kbox.store.memory import MemoryStore


def test_gil_lock_excludes_reenters_and_times_out():
    lock = GilLock()
    inside = [0]
    most = [0]
    totals = [0]

    def worker() -> None:
        for _ in range(300):
            with lock:
                with lock:            # re-entrant, like the RLock it replaces
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                    n = totals[0]
                    time.sleep(0)     # let another thread run while we hold it
                    totals[0] = n + 1
                    inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and totals[0] == 1200

    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    started = time.monotonic()
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0.05) is False
    assert 0.04 <= time.monotonic() - started < 2
    release.set()
    t.join()
    assert lock.acquire(timeout=1) is True
    lock.release()


def test_pacer_waits_only_when_items_come_back_to_back():
    pacer = Pacer(linger=0.03)
    started = time.monotonic()
    pacer.before_next(1)            # first batch: never waits
    assert time.monotonic() - started < 0.02
    started = time.monotonic()
    pacer.before_next(1)            # right after the previous one, small: lets items gather
    assert time.monotonic() - started >= 0.025
    started = time.monotonic()
    pacer.before_next(500)          # a backlog: more is surely waiting, no pause
    assert time.monotonic() - started < 0.02
    time.sleep(0.02)
    started = time.monotonic()
    pacer.before_next(1)            # a quiet stream: react at once
    assert time.monotonic() - started < 0.02


def test_subscribers_see_every_write_once_in_revision_order_under_concurrent_writers():
    store = MemoryStore()
    seen_early: list[int] = []
    _, rev0, cancel_early = store.subscribe("/s/", lambda ev: seen_early.append(ev.revision))
    late: dict[str, object] = {}
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set() or i < 200:
            key = f"/s/{n}-{i % 20}"
            if store.get(key) is None:
                store.create(key, b"x")
            else:
                store.update(key, b"%d" % i, None)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    # subscribing while writes fly: the snapshot plus the events after it, no gap, no repeat
    seen_late: list[int] = []
    kvs, rev, cancel_late = store.subscribe("/s/", lambda ev: seen_late.append(ev.revision))
    late["rev"] = rev
    stop.set()
    for t in threads:
        t.join()
    final = store.sync_point()     # returns once every write up to it reached subscribers
    assert final == store.revision
    assert seen_early == list(range(rev0 + 1, final + 1))
    assert seen_late == list(range(rev + 1, final + 1))
    cancel_early()
    cancel_late()
    store.create("/s/after-cancel", b"")
    assert seen_early[-1] == final and seen_late[-1] == final


def test_a_failing_subscriber_does_not_fail_the_write_or_starve_others():
    store = MemoryStore()
    got: list[str] = []

    def broken(ev) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe("/f/", broken)
    store.subscribe("/f/", lambda ev: got.append(ev.kv.key))
    store.create("/f/a", b"1")
    store.update("/f/a", b"2", None)
    store.delete("/f/a")
    store.sync_point()
    assert got == ["/f/a", "/f/a", "/f/a"]
    assert store.get("/f/a") is None
