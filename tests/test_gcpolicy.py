"""kbox.gcpolicy.collection_paused: cyclic collection is off inside, back on after the last
block closes (nested, or open in two threads at once), and left off if it was off."""

from __future__ import annotations

import gc
import threading

import pytest

from kbox.gcpolicy import GcPolicy, collection_paused, ticking


def test_collection_resumes_after_the_last_block():
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_blocks_in_two_threads_closing_out_of_order():
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collection_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with collection_paused():
        t.start()
        inside.wait(5)
    assert not gc.isenabled()        # the other thread's block is still open
    release.set()
    t.join(5)
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_bulk_is_frozen_while_a_policy_runs():
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        with GcPolicy():
            with collection_paused():
                bulk = [[i] for i in range(1000)]     # container objects the collector tracks
            assert gc.get_freeze_count() >= frozen + len(bulk)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_without_a_policy_nothing_is_frozen():
    gc.unfreeze()
    with collection_paused():
        bulk = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == 0 and len(bulk) == 1000


def test_ticking_runs_a_policy_and_unfreezes_at_the_end():
    with ticking(period=0.01) as policy:
        assert isinstance(policy, GcPolicy)
        with collection_paused():
            bulk = [[i] for i in range(100)]
        assert gc.get_freeze_count() >= len(bulk)
    assert gc.get_freeze_count() == 0


def test_malloc_arenas_are_capped_where_the_c_library_is_glibc():
    import platform
    from kbox.gcpolicy import limit_malloc_arenas
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_ARENA_MAX) is glibc's")
    assert limit_malloc_arenas() is True
    assert limit_malloc_arenas() is True      # a second cluster in the process: still fine
