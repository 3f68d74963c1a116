"""Clock, work queue and informer: the machinery every loop stands on."""

from __future__ import annotations

import threading
import time

from kbox.clock import FakeClock
from kbox.controllers.workqueue import WorkQueue


def test_fake_clock_wakes_sleepers_only_when_advanced():
    clock = FakeClock()
    woke = threading.Event()
    t = threading.Thread(target=lambda: (clock.sleep(10), woke.set()))
    t.start()
    while clock.pending_sleepers() == 0:
        time.sleep(0.001)
    clock.advance(9)
    assert not woke.wait(0.05)
    clock.advance(1)
    assert woke.wait(1)


def test_workqueue_dedups_and_serialises_keys():
    q = WorkQueue(FakeClock())
    q.add("a"); q.add("a"); q.add("b")
    assert len(q) == 2
    k = q.try_get()
    assert k == "a"
    q.add("a")                      # re-added while processing: not handed out twice
    assert q.try_get() == "b"
    assert q.try_get() is None
    q.done("a")
    assert q.try_get() == "a"


def test_workqueue_rate_limited_backoff_on_fake_clock():
    clock = FakeClock()
    q = WorkQueue(clock, base_delay=1.0)
    for expected in (1.0, 2.0, 4.0):
        q.add_rate_limited("k")
        assert q.try_get() is None
        clock.advance(expected - 0.01)
        assert q.try_get() is None
        clock.advance(0.01)
        assert q.try_get() == "k"
        q.done("k")
    q.forget("k")
    assert q.num_requeues("k") == 0


def test_informer_follows_changes_and_indexes(client):
    from kbox.controllers.informer import InformerFactory
    f = InformerFactory(client)
    inf = f.informer("pods")
    seen = []
    inf.add_handler(lambda o: seen.append("add"), lambda o, n: seen.append("update"),
                    lambda o: seen.append("delete"))
    f.start()
    assert f.wait_for_sync(5)
    client.create("pods", {"metadata": {"name": "a"}, "spec": {"nodeName": "n1",
                                                               "containers": [{"name": "c", "image": "x"}]}})
    deadline = time.time() + 5
    while not inf.by_index("node", "n1") and time.time() < deadline:
        time.sleep(0.01)
    assert [o["metadata"]["name"] for o in inf.by_index("node", "n1")] == ["a"]
    client.delete("pods", "a", grace_period_seconds=0)
    while len(inf) and time.time() < deadline:
        time.sleep(0.01)
    assert len(inf) == 0 and seen == ["add", "delete"]
    f.stop()


def test_core_imports_without_textual():
    import subprocess
    import sys
    code = ("import sys, kbox.cli, kbox.api.server, kbox.cluster, kbox.controllers.informer; "
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
