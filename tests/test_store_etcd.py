"""EtcdStore against a real etcd started on 127.0.0.1 (skips when etcd is not installed)."""

from __future__ import annotations

import threading
import time

import pytest

from kbox.store import (CompactedError, KeyExistsError, KeyNotFoundError, LeaseNotFoundError,
                        RevisionMismatchError)
from kbox.store.etcd import EtcdStore, LocalEtcd, etcd_binary, prefix_end

pytestmark = [pytest.mark.etcd,
              pytest.mark.skipif(etcd_binary() is None,
                                 reason="etcd is not installed (apt-get install etcd-server)")]


@pytest.fixture(scope="module")
def endpoint():
    with LocalEtcd() as ep:
        yield ep


@pytest.fixture
def store(endpoint):
    s = EtcdStore(endpoint)
    yield s
    s.close()


_n = iter(range(10**6))


@pytest.fixture
def pfx():
    return f"/t{next(_n)}/"


def _drain(w, n, timeout=5.0):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out.extend(w.get(timeout=0.2))
    return out


def test_prefix_end():
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"") == b"\x00"


def test_crud_and_compare_and_swap(store, pfx):
    a = store.create(pfx + "a", b"1")
    assert (a.create_revision, a.mod_revision, a.version) == (a.mod_revision, a.mod_revision, 1)
    with pytest.raises(KeyExistsError):
        store.create(pfx + "a", b"again")
    b = store.update(pfx + "a", b"2", a.mod_revision)
    assert b.version == 2 and b.create_revision == a.create_revision and b.mod_revision > a.mod_revision
    assert store.get(pfx + "a") == b
    with pytest.raises(RevisionMismatchError) as ei:
        store.update(pfx + "a", b"3", a.mod_revision)
    assert ei.value.actual == b
    with pytest.raises(KeyNotFoundError):
        store.update(pfx + "missing", b"", None)
    with pytest.raises(RevisionMismatchError):
        store.update(pfx + "missing", b"", 5)
    c = store.update(pfx + "a", b"4", None)
    assert c.version == 3
    store.create(pfx + "b", b"")
    store.create(pfx + "c", b"")
    kvs, rev = store.range(pfx)
    assert [kv.key for kv in kvs] == [pfx + "a", pfx + "b", pfx + "c"] and rev == store.revision
    assert [kv.key for kv in store.range(pfx, start_key=pfx + "b", limit=1)[0]] == [pfx + "b"]
    assert store.count(pfx) == 3
    with pytest.raises(RevisionMismatchError):
        store.delete(pfx + "a", a.mod_revision)
    gone = store.delete(pfx + "a", c.mod_revision)
    assert gone == c and store.get(pfx + "a") is None
    with pytest.raises(KeyNotFoundError):
        store.delete(pfx + "a")


def test_watch_from_revision_and_live(store, pfx):
    a = store.create(pfx + "a", b"1")
    store.create("/elsewhere" + pfx, b"")
    store.update(pfx + "a", b"2", None)
    store.delete(pfx + "a")
    w = store.watch(pfx, a.mod_revision)
    evs = _drain(w, 3)
    assert [(e.type, e.kv.key) for e in evs] == [("PUT", pfx + "a")] * 2 + [("DELETE", pfx + "a")]
    assert evs[1].prev_kv.value == b"1" and evs[2].prev_kv.value == b"2"
    assert evs[2].kv.create_revision == a.create_revision and evs[2].kv.value == b""
    live = store.watch(pfx)
    kv = store.create(pfx + "b", b"x")
    got = _drain(live, 1)
    assert got[0].revision == kv.mod_revision
    w.close()
    live.close()
    assert live.closed


def test_progress_is_ordered_after_events(store, pfx):
    w = store.watch(pfx)
    quiet = store.watch(pfx + "quiet/")
    writes = [store.create(f"{pfx}{i}", b"") for i in range(20)]
    for _ in range(3):
        store.create(f"/noise{pfx}{time.monotonic_ns()}", b"")
    w.request_progress()
    quiet.request_progress()
    evs = _drain(w, 21)
    assert [e.revision for e in evs[:-1]] == [kv.mod_revision for kv in writes]
    assert evs[-1].type == "PROGRESS" and evs[-1].revision == store.revision
    q = _drain(quiet, 1)
    assert [e.type for e in q] == ["PROGRESS"]
    # events after the progress are still delivered, once each
    kv = store.create(pfx + "after", b"")
    assert [e.revision for e in _drain(w, 1)] == [kv.mod_revision]
    assert w.get(timeout=0.3) == []
    w.close()
    quiet.close()


def test_progress_under_concurrent_writes(store, pfx):
    w = store.watch(pfx)
    stop = threading.Event()
    written: list[int] = []

    def writer():
        i = 0
        while not stop.is_set():
            written.append(store.create(f"{pfx}{i}", b"").mod_revision)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    seen: list[int] = []
    try:
        for _ in range(5):
            w.request_progress()
            batch = []
            while not any(e.type == "PROGRESS" for e in batch):
                got = w.get(timeout=5)
                assert got
                batch.extend(got)
            prog = [e for e in batch if e.type == "PROGRESS"][-1].revision
            seen.extend(e.revision for e in batch if e.type == "PUT")
            # everything written at or before the progress revision was delivered before it
            upto = [r for r in list(written) if r <= prog]
            assert set(upto) <= set(seen)
    finally:
        stop.set()
        t.join()
    seen.extend(e.revision for e in _drain(w, len(written) - len(seen)) if e.type == "PUT")
    assert seen == sorted(seen) == written
    w.close()


def test_compaction(store, pfx):
    first = store.create(pfx + "a", b"")
    for i in range(5):
        store.update(pfx + "a", b"%d" % i, None)
    store.compact(first.mod_revision + 3)
    assert store.compacted_revision == first.mod_revision + 3
    with pytest.raises(CompactedError) as ei:
        store.watch(pfx, first.mod_revision)
    assert ei.value.compacted >= first.mod_revision + 3
    w = store.watch(pfx, first.mod_revision + 3)
    assert len(_drain(w, 3)) == 3
    w.close()
    store.compact(1)      # backwards: nothing


def test_leases(store, pfx):
    lease = store.grant_lease(30)
    store.create(pfx + "l", b"", lease=lease)
    assert store.get(pfx + "l").lease == lease
    store.keep_alive(lease)
    store.revoke_lease(lease)
    assert store.get(pfx + "l") is None
    with pytest.raises(LeaseNotFoundError):
        store.keep_alive(lease)
    with pytest.raises(LeaseNotFoundError):
        store.revoke_lease(lease)
    with pytest.raises(LeaseNotFoundError):
        store.create(pfx + "m", b"", lease=lease)


def test_api_server_over_etcd(store):
    from kbox.api.server import ApiServer
    api = ApiServer(store)
    try:
        api.create("namespaces", {"metadata": {"name": "etcdns"}})
        cm = api.create("configmaps", {"metadata": {"name": "c"}, "data": {"k": "v"}}, "etcdns")
        assert int(cm["metadata"]["resourceVersion"]) == store.get(
            "/registry/configmaps/etcdns/c").mod_revision
        names = [o["metadata"]["name"] for o in api.list("configmaps", "etcdns")["items"]]
        assert names == ["c"]
    finally:
        close = getattr(api, "close", None) or getattr(api, "stop", None)
        if close:
            close()
