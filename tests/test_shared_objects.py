"""In-process informers read the API's cached objects without copies; the guard
that proves no reader changes them in place must itself catch a change."""

from __future__ import annotations

import time

from kbox.api import cache
from kbox.api.client import InProcessClient


def _cm(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}


def test_read_only_watch_shares_cached_objects_and_copying_watch_does_not(api):
    client = InProcessClient(api)
    shared = client.watch("configmaps", "default", resource_version="0", read_only=True)
    private = client.watch("configmaps", "default", resource_version="0")
    client.create("configmaps", _cm("a", "1"), "default")
    (_, s_obj), = shared.next_batch(2.0)
    (_, p_obj), = private.next_batch(2.0)
    cached = api.cache(api.resource("configmaps")).objects["/registry/configmaps/default/a"].obj
    assert s_obj is cached
    assert p_obj == cached and p_obj is not cached
    shared.close()
    private.close()


def test_the_guard_catches_a_reader_that_changes_a_shared_object(api):
    assert cache.CHECK_SHARED, "the suite runs with KBOX_CHECK_SHARED=1 (tests/conftest.py)"
    client = InProcessClient(api)
    w = client.watch("configmaps", "default", resource_version="0", read_only=True)
    client.create("configmaps", _cm("b", "1"), "default")
    (_, obj), = w.next_batch(2.0)
    obj["data"]["k"] = "changed by a careless reader"
    client.patch("configmaps", "b", {"data": {"k": "2"}}, "merge", "default")
    deadline = time.monotonic() + 2
    while not cache.SHARED_MUTATIONS and time.monotonic() < deadline:
        time.sleep(0.01)
    found = list(cache.SHARED_MUTATIONS)
    cache.SHARED_MUTATIONS.clear()      # expected here: keep the suite's own check green
    w.close()
    assert found == ["/registry/configmaps/default/b"]
