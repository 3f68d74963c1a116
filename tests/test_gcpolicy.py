"""kbox.gcpolicy.collection_paused: cyclic collection is off inside, back on after the last
block closes (nested, or open in two threads at once), and left off if it was off."""

from __future__ import annotations

import gc
import threading

from kbox.gcpolicy import collection_paused


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
