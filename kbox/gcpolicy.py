"""How a process that holds a cluster uses CPython's cyclic garbage collector.

A busy cluster keeps millions of long-lived objects (every cached object is a
tree of dicts and lists). CPython's cyclic collector rescans all of them on
each full collection, and full collections come more often as the heap grows:
on the 1,000-node benchmark they took a quarter of the run. Those JSON trees
have no cycles: reference counting frees them the moment they are replaced.
So the cluster's housekeeping thread freezes what has survived every
second (`gc.freeze()`: frozen objects are never scanned, yet still freed by
reference counting), and once in a long while unfreezes and collects
everything, so a rare cycle that was frozen is still reclaimed.

glibc's malloc also gives threads their own arenas (up to 8 per core), and
memory freed into one arena serves only that arena: with a dozen control
plane threads each writing objects another one frees, the 1,000-node
benchmark ended ~200 MiB larger than with two arenas. The threads take turns
under the GIL anyway, so `limit_malloc_arenas()` caps them at two.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


_pause_lock = threading.Lock()
_running = 0               # GcPolicy blocks open in this process (collection_paused asks)


class GcPolicy:
    """Tick it often; while it is entered (`with GcPolicy() as policy:`), a bulk built under
    `collection_paused()` is frozen at once instead of being scanned by the next young
    collection, since the policy's full collection reclaims what freezing keeps."""

    def __init__(self, freeze_every: float = 1.0, full_every: float = 900.0) -> None:
        self.freeze_every = freeze_every
        self.full_every = full_every
        now = time.monotonic()
        self._last_freeze = now
        self._last_full = now

    def tick(self) -> None:
        """Call often (the housekeeping loop does, every second)."""
        now = time.monotonic()
        if now - self._last_full >= self.full_every:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full = self._last_freeze = now
        elif now - self._last_freeze >= self.freeze_every:
            gc.collect(1)      # young cycles die here, before anything is frozen
            gc.freeze()
            self._last_freeze = now

    def __enter__(self) -> "GcPolicy":
        global _running
        with _pause_lock:
            _running += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _running
        with _pause_lock:
            _running -= 1


@contextmanager
def ticking(period: float = 1.0) -> Iterator[GcPolicy]:
    """A GcPolicy ticked on its own thread for the block, for a process that holds many
    objects but no cluster (`kbox ui`: a dashboard of thousands of rows). Everything is
    unfrozen and collected at the end."""
    stop = threading.Event()
    with GcPolicy() as policy:
        def run() -> None:
            while not stop.wait(period):
                policy.tick()
        thread = threading.Thread(target=run, daemon=True, name="kbox-gc-policy")
        thread.start()
        try:
            yield policy
        finally:
            stop.set()
            thread.join(5)
            gc.unfreeze()
            gc.collect()


_pauses = 0                 # how many collection_paused() blocks are open (any thread)
_resume = False             # whether the last one to close turns collection back on


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic collection while a bulk of objects that all survive is built (a first fill
    of thousands of table rows): the young generations would be rescanned and promoted
    over and over on the way (half of a 5,000-row fill). Reference counting still frees
    garbage meanwhile. At the end, with a GcPolicy running, the bulk is frozen at once (what
    its next tick would do); without one, collection just resumes."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                if _running:
                    gc.freeze()
                gc.enable()


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc malloc's arenas for this process (see the module's notes). Call before the
    threads start; True if it took effect (False where the C library is not glibc)."""
    global _arenas_limited
    if _arenas_limited:
        return True
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        _arenas_limited = bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        _arenas_limited = False
    return _arenas_limited


M_ARENA_MAX = -8            # glibc's mallopt parameter number
_arenas_limited = False


__all__ = ["GcPolicy", "collection_paused", "limit_malloc_arenas", "ticking"]
