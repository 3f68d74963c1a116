"""In-process informers read the API's cached objects without copies; the guard
that proves no reader changes them in place must itself catch a change."""

from __future__ import annotations

import time

import orjson

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


def test_cached_objects_decode_on_first_read_with_their_resource_version():
    c = cache.CachedObject(stored=b'{"metadata":{"name":"a"},"data":{"k":"v"}}', revision=42)
    assert c._obj is None                     # nothing decoded until someone reads it
    obj = c.obj
    assert obj == {"metadata": {"name": "a", "resourceVersion": "42"}, "data": {"k": "v"}}
    assert c.obj is obj                       # every reader shares one decoded object
    assert c.raw == b'{"metadata":{"name":"a","resourceVersion":"42"},"data":{"k":"v"}}'
    gone = c.with_revision(50)
    assert gone.revision == 50 and gone.obj["metadata"]["resourceVersion"] == "50"
    assert obj["metadata"]["resourceVersion"] == "42"


def test_informer_moves_index_entries_only_when_index_values_change(client):
    from kbox.controllers.informer import InformerFactory
    f = InformerFactory(client)
    inf = f.informer("configmaps")
    inf.add_index("owner-label", lambda o: [o["metadata"].get("labels", {}).get("owner", "")])
    f.start()
    assert f.wait_for_sync(5)
    cm = _cm("a", "1")
    cm["metadata"]["labels"] = {"owner": "x"}
    client.create("configmaps", cm, "default")

    def names(value: str) -> list[str]:
        return [o["metadata"]["name"] for o in inf.by_index("owner-label", value)]

    def wait_for(cond) -> None:
        deadline = time.time() + 5
        while not cond() and time.time() < deadline:
            time.sleep(0.01)
        assert cond()

    wait_for(lambda: names("x") == ["a"])
    client.patch("configmaps", "a", {"data": {"k": "2"}}, "merge", "default")
    wait_for(lambda: (inf.get("default/a") or {}).get("data") == {"k": "2"})
    assert names("x") == ["a"]
    client.patch("configmaps", "a", {"metadata": {"labels": {"owner": "y"}}}, "merge", "default")
    wait_for(lambda: names("y") == ["a"])
    assert names("x") == []
    inf.add_index("data", lambda o: [o.get("data", {}).get("k", "")])   # added late: built from the cache
    assert [o["metadata"]["name"] for o in inf.by_index("data", "2")] == ["a"]
    client.delete("configmaps", "a", "default")
    wait_for(lambda: len(inf) == 0)
    assert names("y") == [] and inf.by_index("data", "2") == []
    f.stop()


def test_kept_encodings_hold_only_their_own_size():
    import tracemalloc
    from kbox.api.objects import dumps_kept
    obj = {"metadata": {"name": "p"}, "spec": {"note": "x" * 2000}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [dumps_kept(obj) for _ in range(200)]
        per_value = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert kept[0] == orjson.dumps(obj)
    # orjson's own result would hold its 32 KiB buffer
    assert per_value < 2 * len(kept[0])
