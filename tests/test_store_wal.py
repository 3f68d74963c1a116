"""The memory store's write-ahead log: reopen, torn tails, snapshots, leases."""

from __future__ import annotations

import os

import pytest

from kbox.clock import FakeClock
from kbox.store import CompactedError, KeyNotFoundError
from kbox.store.memory import MemoryStore
from kbox.store.wal import WalCorruptError, iter_log_records


def _open(path, **kw) -> MemoryStore:
    kw.setdefault("fsync", "never")
    return MemoryStore(data_dir=str(path), **kw)


def _dump(s: MemoryStore):
    kvs, rev = s.range("")
    return kvs, rev, s.compacted_revision


def _events(w):
    return [(e.type, e.kv.key, e.revision, e.prev_kv.mod_revision if e.prev_kv else None)
            for e in w.get(0) if e.type != "PROGRESS"]


def _segments(path):
    return sorted(n for n in os.listdir(path) if n.endswith(".log"))


def test_round_trip_create_update_delete_compact(tmp_path):
    s = _open(tmp_path)
    a = s.create("/r/a", b"1")
    s.create("/r/b", b"2")
    s.update("/r/a", b"11", a.mod_revision)
    s.create("/r/c", b"3")
    s.delete("/r/b")
    s.update("/r/c", b"33", None)
    s.compact(3)
    before = _dump(s)
    w0 = s.watch("/r/", 3)
    history = _events(w0)
    s.close()

    s2 = _open(tmp_path)
    assert _dump(s2) == before
    assert s2.revision == 6 and s2.compacted_revision == 3
    assert s2.get("/r/a").version == 2 and s2.get("/r/a").create_revision == 1
    assert s2.get("/r/b") is None
    # history back to the compaction point, with previous values
    assert _events(s2.watch("/r/", 3)) == history
    with pytest.raises(CompactedError):
        s2.watch("/r/", 2)
    # the revision keeps counting from where it was
    assert s2.create("/r/d", b"4").mod_revision == 7
    s2.close()
    assert _open(tmp_path).get("/r/d").mod_revision == 7


def test_torn_last_record_is_dropped(tmp_path):
    s = _open(tmp_path)
    for i in range(5):
        s.create(f"/k/{i}", b"x" * 100)
    s.close()
    seg = os.path.join(tmp_path, _segments(tmp_path)[-1])
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size - 30)          # killed in the middle of writing the 5th put
    s2 = _open(tmp_path)
    assert s2.revision == 4 and s2.get("/k/4") is None and s2.get("/k/3") is not None
    # appending after the truncated tail works and survives another reopen
    assert s2.create("/k/4", b"again").mod_revision == 5
    s2.close()
    s3 = _open(tmp_path)
    assert s3.get("/k/4").value == b"again" and s3.revision == 5


def test_garbage_tail_and_bad_checksum(tmp_path):
    s = _open(tmp_path)
    s.create("/k/a", b"1")
    s.create("/k/b", b"2")
    s.close()
    seg = os.path.join(tmp_path, _segments(tmp_path)[-1])
    with open(seg, "r+b") as f:       # flip a byte of the last record's value
        f.seek(-1, os.SEEK_END)
        f.write(b"X")
    with open(seg, "ab") as f:
        f.write(b"\x01\x02\x03")
    s2 = _open(tmp_path)
    assert s2.revision == 1 and s2.get("/k/b") is None


def test_corruption_before_the_tail_is_an_error(tmp_path):
    s = _open(tmp_path, snapshot_bytes=0)
    for i in range(5):
        s.create(f"/k/{i}", b"x")
    s.compact(3)                        # snapshot + a new segment
    s._wal.snapshot(wait=True)
    s.create("/k/z", b"z")
    s.close()
    segs = _segments(tmp_path)
    assert len(segs) == 2
    with open(os.path.join(tmp_path, segs[0]), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"X")
    with pytest.raises(WalCorruptError):
        _open(tmp_path)


def test_snapshot_plus_log_replay(tmp_path):
    s = _open(tmp_path, snapshot_bytes=1)   # every compaction snapshots
    for i in range(50):
        s.create(f"/s/{i:02d}", b"v%d" % i)
    for i in range(0, 50, 2):
        s.update(f"/s/{i:02d}", b"w", None)
    for i in range(0, 50, 5):
        s.delete(f"/s/{i:02d}")
    s.compact(60)
    s._wal._snap_thread.join()
    assert s._wal.snapshots_written == 1
    for i in range(5):
        s.create(f"/t/{i}", b"t")
    s.compact(90)
    s._wal._snap_thread.join()
    assert s._wal.snapshots_written == 2
    s.create("/t/last", b"l")
    before = _dump(s)
    hist = _events(s.watch("/", 90))
    s.close()
    files = sorted(os.listdir(tmp_path))
    snaps = [f for f in files if f.endswith(".snap")]
    assert snaps == ["snap-%016d.snap" % 89]
    # segments holding only revisions below the compaction point are gone
    assert "wal-0000000000000001.log" not in files

    s2 = _open(tmp_path)
    assert _dump(s2) == before
    assert _events(s2.watch("/", 90)) == hist
    with pytest.raises(CompactedError):
        s2.watch("/", 89)
    s2.close()


def test_unreadable_snapshot(tmp_path):
    s = _open(tmp_path)
    for i in range(10):
        s.create(f"/k/{i}", b"x")
    s.compact(5)
    s._wal.snapshot(wait=True)          # rotates at 11; wal-1 still holds revisions >= 5
    s.create("/k/10", b"x")
    before = _dump(s)
    s.close()
    snap = os.path.join(tmp_path, [f for f in os.listdir(tmp_path) if f.endswith(".snap")][0])
    # a snapshot cut short (rename makes this unlikely, but a disk can lie)
    with open(snap, "r+b") as f:
        f.truncate(40)
    assert _dump(_open(tmp_path)) == before     # the log alone still reaches back

    s = _open(tmp_path)
    for i in range(5):
        s.create(f"/m/{i}", b"x")
    s.compact(13)
    s._wal.snapshot(wait=True)          # now wal-1 is covered and deleted
    s.close()
    assert "wal-0000000000000001.log" not in os.listdir(tmp_path)
    snap = os.path.join(tmp_path, [f for f in os.listdir(tmp_path) if f.endswith(".snap")][0])
    with open(snap, "r+b") as f:
        f.truncate(40)
    # the log no longer reaches back far enough: an error, not a wrong store
    with pytest.raises(WalCorruptError):
        _open(tmp_path)


def test_leases_survive_with_restarted_ttl(tmp_path):
    clock = FakeClock()
    s = _open(tmp_path, clock=clock)
    lease = s.grant_lease(30)
    gone = s.grant_lease(10)
    s.create("/ev/a", b"a", lease=lease)
    s.create("/ev/b", b"b", lease=gone)
    s.revoke_lease(gone)
    clock.advance(25)
    s.close()

    s2 = _open(tmp_path, clock=clock)
    assert s2.get("/ev/a").lease == lease
    assert s2.get("/ev/b") is None
    assert set(s2._leases) == {lease}
    assert s2.grant_lease(5) > gone          # ids are never reused
    clock.advance(25)                        # 50 s after the grant, 25 s after the restart
    assert s2.expire_leases() == 1           # the 5 s one
    assert s2.get("/ev/a") is not None
    clock.advance(6)
    assert s2.expire_leases() == 1
    assert s2.get("/ev/a") is None
    rev = s2.revision
    s2.close()
    s3 = _open(tmp_path, clock=clock)
    assert s3.get("/ev/a") is None and s3.revision == rev and not s3._leases


def test_log_records_and_fsync_modes(tmp_path):
    for mode in ("always", "periodic", "never"):
        d = tmp_path / mode
        s = MemoryStore(data_dir=str(d), fsync=mode, sync_interval=0.001)
        s.create("/a", b"1")
        s.update("/a", b"2", 1)
        with pytest.raises(KeyNotFoundError):
            s.delete("/missing")
        s.delete("/a")
        s.close()
        kinds = [r[0] for r in iter_log_records(str(d))]
        assert kinds == ["P", "P", "D"]
        assert MemoryStore(data_dir=str(d), fsync=mode).revision == 3
    with pytest.raises(ValueError):
        MemoryStore(data_dir=str(tmp_path / "x"), fsync="sometimes")


def test_history_limit_compaction_snapshots_and_reopens(tmp_path):
    s = _open(tmp_path, history_limit=100, snapshot_bytes=2000)
    for i in range(1000):
        s.update("/hot", b"v%d" % i, None) if i else s.create("/hot", b"v0")
    if s._wal._snap_thread:
        s._wal._snap_thread.join()
    assert s._wal.snapshots_written > 0
    before = _dump(s)
    s.close()
    assert len(_segments(tmp_path)) <= 3
    s2 = _open(tmp_path)
    assert _dump(s2) == before
    assert s2.get("/hot").version == 1000


def test_acknowledged_writes_survive_sigkill(tmp_path):
    """A writer process is killed -9 mid-stream: every write it acknowledged is back."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys\n"
        "from kbox.store.memory import MemoryStore\n"
        f"s = MemoryStore(data_dir={str(tmp_path)!r})\n"
        "i = 0\n"
        "while True:\n"
        "    kv = s.create('/kill/%08d' % i, b'x' * 3000)\n"
        "    if i % 50 == 0:\n"
        "        sys.stdout.write('%d\\n' % kv.mod_revision); sys.stdout.flush()\n"
        "    i += 1\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=root)
    acked = 0
    deadline = time.monotonic() + 20
    while acked < 3000 and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        acked = int(line)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert acked >= 3000
    s = _open(tmp_path)
    assert s.revision >= acked
    assert s.count("/kill/") == s.revision
    assert s.get("/kill/%08d" % (acked - 1)).mod_revision == acked
