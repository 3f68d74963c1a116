"""Durability for the memory store: a write-ahead log plus snapshots.

Why: `kbox up --data-dir D` must come back after a restart (or a crash) with
every object at the same resourceVersion, the same global revision and the
same compaction point, so clients' resourceVersions and watches stay valid.

Layout of the data directory:

- ``wal-<first revision>.log``: log segments. Every write appends one record:
  a put carries the whole KeyValue (create/mod revision, version, lease), a
  delete its key and revision; compactions and lease grants/revokes are logged
  too. Each record is framed as ``length (u32) | crc32 (u32) | payload`` so a
  torn last record (the process was killed in the middle of a write) is
  detected on restore, dropped, and the file truncated before appending again.
  A bad record anywhere else is real corruption and raises `WalCorruptError`.
- ``snap-<revision>.snap``: the whole state (every key, the leases, the
  revision, the compaction point, the next lease id) as the same framed
  records, written to a temp file, fsynced and renamed into place.

Snapshots are taken *at the compaction point*, not at the current revision:
the store keeps history from the compaction point on (watches may start
anywhere from there, as with etcd), and that history is exactly the log after
the compaction point. So when `compact(C)` is logged and the log has grown by
`snapshot_bytes` since the last snapshot, the state as of revision C-1 is
computed (current state with the retained history undone, which is cheap:
every history event carries its previous value), a new segment is started,
the snapshot is written by a background thread, and then the segments that
hold only revisions below C are deleted. Restore loads the newest snapshot
and replays the remaining segments through the store, which rebuilds the
state *and* the watch history back to the compaction point. Disk use is thus
bounded by state + retained history, like etcd's own backend; without
compaction nothing can be dropped (neither can etcd).

Durability guarantee (the `fsync` option):

- ``"periodic"`` (default): each record is written to the file with one
  `write(2)` before the store call returns, and a background thread fsyncs at
  most every `sync_interval` (5 ms) when something was written (group
  commit). Acknowledged writes survive a kill of the process; a power loss or
  kernel crash may lose the last ~5 ms of acknowledged writes.
- ``"always"``: fdatasync after every record before the write is
  acknowledged: survives power loss, at roughly the disk's sync rate.
- ``"never"``: left to the OS page cache (tests, benchmarks).

Leases come back with their TTL restarted from the time of the restore (etcd
does the same on a leader change or restart).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from typing import TYPE_CHECKING, Iterator

from kbox.store import KeyValue, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from kbox.store.memory import MemoryStore

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")        # payload length, crc32(payload)
_PUT = struct.Struct("<qqqqI")       # create_revision, mod_revision, version, lease, key length
_REV = struct.Struct("<q")
_GRANT = struct.Struct("<qd")        # lease id, ttl
_HEADER = struct.Struct("<qqq")      # revision, compacted revision, next lease id
_MAX_RECORD = 1 << 30

_SEGMENT_RE = re.compile(r"^wal-(\d{16})\.log$")
_SNAP_RE = re.compile(r"^snap-(\d{16})\.snap$")

FSYNC_MODES = ("periodic", "always", "never")


class WalCorruptError(StoreError):
    """A record that is not the torn tail of the last segment failed its checks."""


# ---- record encoding --------------------------------------------------------------

def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def encode_put(kv: KeyValue) -> bytes:
    key = kv.key.encode()
    return _frame(b"P" + _PUT.pack(kv.create_revision, kv.mod_revision, kv.version,
                                   kv.lease, len(key)) + key + kv.value)


def encode_delete(key: str, rev: int) -> bytes:
    return _frame(b"D" + _REV.pack(rev) + key.encode())


def encode_compact(rev: int) -> bytes:
    return _frame(b"C" + _REV.pack(rev))


def encode_grant(lease_id: int, ttl: float) -> bytes:
    return _frame(b"G" + _GRANT.pack(lease_id, ttl))


def encode_revoke(lease_id: int) -> bytes:
    return _frame(b"R" + _REV.pack(lease_id))


def decode(payload: bytes) -> tuple:
    """A record payload as a tuple: ("P", kv) ("D", key, rev) ("C", rev) ("G", id, ttl)
    ("R", id) ("H", rev, compacted, next_lease) ("E", count)."""
    t = payload[:1]
    if t == b"P":
        c, m, v, lease, klen = _PUT.unpack_from(payload, 1)
        off = 1 + _PUT.size
        key = payload[off:off + klen].decode()
        return ("P", KeyValue(key, payload[off + klen:], c, m, v, lease))
    if t == b"D":
        (rev,) = _REV.unpack_from(payload, 1)
        return ("D", payload[1 + _REV.size:].decode(), rev)
    if t == b"C":
        return ("C", _REV.unpack_from(payload, 1)[0])
    if t == b"G":
        return ("G", *_GRANT.unpack_from(payload, 1))
    if t == b"R":
        return ("R", _REV.unpack_from(payload, 1)[0])
    if t == b"H":
        return ("H", *_HEADER.unpack_from(payload, 1))
    if t == b"E":
        return ("E", _REV.unpack_from(payload, 1)[0])
    raise ValueError(f"unknown record type {t!r}")


def read_records(data: bytes) -> tuple[list[tuple], int]:
    """Decode framed records; returns them and the length of the valid prefix."""
    out: list[tuple] = []
    off, n = 0, len(data)
    unpack = _FRAME.unpack_from
    while off + _FRAME.size <= n:
        length, crc = unpack(data, off)
        start = off + _FRAME.size
        end = start + length
        if length > _MAX_RECORD or end > n:
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(decode(payload))
        except Exception:  # noqa: BLE001 - a checksum collision on garbage
            break
        off = end
    return out, off


# ---- the log ----------------------------------------------------------------------

class WriteAheadLog:
    def __init__(self, data_dir: str, *, fsync: str = "periodic", sync_interval: float = 0.005,
                 snapshot_bytes: int = 64 << 20) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {FSYNC_MODES}, not {fsync!r}")
        self.dir = data_dir
        self.fsync = fsync
        self.sync_interval = sync_interval
        self.snapshot_bytes = snapshot_bytes
        os.makedirs(data_dir, exist_ok=True)
        self._store: MemoryStore | None = None
        self._fd = -1
        self._segment_start = 0
        self._bytes_since_snapshot = 0
        self._dirty = False
        self._closed = False
        self._sync_lock = threading.Lock()        # guards the fd against rotation while fsyncing
        self._snap_lock = threading.Lock()        # one snapshot writer at a time
        self._snap_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.snapshots_written = 0

    # ---- files ----------------------------------------------------------------------
    def _segments(self) -> list[tuple[int, str]]:
        out = []
        for name in os.listdir(self.dir):
            m = _SEGMENT_RE.match(name)
            if m:
                out.append((int(m.group(1)), os.path.join(self.dir, name)))
        return sorted(out)

    def _snapshots(self) -> list[tuple[int, str]]:
        out = []
        for name in os.listdir(self.dir):
            m = _SNAP_RE.match(name)
            if m:
                out.append((int(m.group(1)), os.path.join(self.dir, name)))
        return sorted(out)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _open_segment(self, start: int) -> None:
        path = os.path.join(self.dir, f"wal-{start:016d}.log")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment_start = start
        self._fsync_dir()

    # ---- restore --------------------------------------------------------------------
    def restore(self, store: "MemoryStore") -> None:
        """Load the newest snapshot and replay the log into `store` (which must not log)."""
        self._store = store
        snap_rev = 0
        for rev, path in reversed(self._snapshots()):
            try:
                self._load_snapshot(store, path)
                snap_rev = rev
                break
            except WalCorruptError:
                log.warning("snapshot %s is unreadable, trying an older one", path)
        segments = self._segments()
        if segments and segments[0][0] > snap_rev + 1:
            raise WalCorruptError(
                f"{self.dir}: the log starts at revision {segments[0][0]} but no readable "
                f"snapshot covers the revisions before it")
        for i, (start, path) in enumerate(segments):
            with open(path, "rb") as f:
                data = f.read()
            records, valid = read_records(data)
            if valid < len(data):
                if i != len(segments) - 1:
                    raise WalCorruptError(f"{path}: bad record at offset {valid}")
                log.warning("%s: dropping a torn record at offset %d (%d bytes)",
                            path, valid, len(data) - valid)
                with open(path, "r+b") as f:
                    f.truncate(valid)
                    os.fsync(f.fileno())
            self._replay(store, records, snap_rev)
            self._bytes_since_snapshot += valid
        if segments:
            start, path = segments[-1]
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_start = start
        else:
            self._open_segment(store._rev + 1)
        if self.fsync == "periodic":
            self._flusher = threading.Thread(target=self._flush_loop, name="kbox-wal-sync",
                                             daemon=True)
            self._flusher.start()

    def _load_snapshot(self, store: "MemoryStore", path: str) -> None:
        with open(path, "rb") as f:
            data = f.read()
        records, valid = read_records(data)
        if (valid != len(data) or not records or records[0][0] != "H" or records[-1][0] != "E"
                or records[-1][1] != len(records) - 2):
            raise WalCorruptError(f"{path}: incomplete snapshot")
        _, rev, compacted, next_lease = records[0]
        leases = [(r[1], r[2]) for r in records if r[0] == "G"]
        kvs = [r[1] for r in records if r[0] == "P"]
        store._install_snapshot(rev, compacted, next_lease, leases, kvs)

    @staticmethod
    def _replay(store: "MemoryStore", records: list[tuple], snap_rev: int) -> None:
        for rec in records:
            t = rec[0]
            if t == "P":
                kv = rec[1]
                if kv.mod_revision > snap_rev:
                    store._replay_put(kv)
            elif t == "D":
                if rec[2] > snap_rev:
                    store._replay_delete(rec[1], rec[2])
            elif t == "C":
                store._replay_compact(rec[1])
            elif t == "G":
                store._replay_grant(rec[1], rec[2])
            elif t == "R":
                store._replay_revoke(rec[1])

    # ---- appending (called with the store's lock held) ---------------------------------
    def _append(self, rec: bytes) -> None:
        if self._closed:
            raise StoreError("write-ahead log is closed")
        os.write(self._fd, rec)
        self._bytes_since_snapshot += len(rec)
        if self.fsync == "always":
            os.fdatasync(self._fd)
        else:
            self._dirty = True

    def log_put(self, kv: KeyValue) -> None:
        self._append(encode_put(kv))

    def log_delete(self, key: str, rev: int) -> None:
        self._append(encode_delete(key, rev))

    def log_grant(self, lease_id: int, ttl: float) -> None:
        self._append(encode_grant(lease_id, ttl))

    def log_revoke(self, lease_id: int) -> None:
        self._append(encode_revoke(lease_id))

    def log_compact(self, rev: int) -> None:
        self._append(encode_compact(rev))
        if self._bytes_since_snapshot >= self.snapshot_bytes:
            self.snapshot()

    # ---- snapshots ------------------------------------------------------------------
    def snapshot(self, wait: bool = False) -> bool:
        """Snapshot at the compaction point; False if one is already being written."""
        store = self._store
        if store is None or self._closed or store._compacted <= 0:
            return False
        if not self._snap_lock.acquire(blocking=wait):
            return False
        try:
            with store._lock:
                self._prepare_snapshot(store)
        except BaseException:
            self._snap_lock.release()
            raise
        t = self._snap_thread
        if wait and t is not None:
            t.join()
        return True

    def _prepare_snapshot(self, store: "MemoryStore") -> None:
        """Capture the state at the compaction point, rotate, start the writer thread."""
        compacted = store._compacted
        snap_rev = max(0, compacted - 1)
        kvs = store._state_before(compacted)
        leases = [(lease.id, lease.ttl) for lease in store._leases.values()]
        next_lease = store._next_lease_id()
        # a new segment from the next revision: the old ones become deletable once
        # the snapshot covers every revision they hold
        with self._sync_lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self._open_segment(store._rev + 1)
        self._bytes_since_snapshot = 0
        t = threading.Thread(target=self._write_snapshot,
                             args=(snap_rev, compacted, next_lease, leases, kvs),
                             name="kbox-wal-snapshot", daemon=True)
        self._snap_thread = t
        t.start()

    def _write_snapshot(self, snap_rev: int, compacted: int, next_lease: int,
                        leases: list[tuple[int, float]], kvs: list[KeyValue]) -> None:
        try:
            final = os.path.join(self.dir, f"snap-{snap_rev:016d}.snap")
            tmp = final + ".tmp"
            with open(tmp, "wb", buffering=1 << 20) as f:
                f.write(_frame(b"H" + _HEADER.pack(snap_rev, compacted, next_lease)))
                for lease_id, ttl in leases:
                    f.write(encode_grant(lease_id, ttl))
                for kv in kvs:
                    f.write(encode_put(kv))
                f.write(_frame(b"E" + _REV.pack(len(leases) + len(kvs))))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            self._fsync_dir()
            self.snapshots_written += 1
            # drop what the snapshot covers: older snapshots, and segments whose every
            # revision is <= snap_rev (the next segment starts at or below compacted)
            for rev, path in self._snapshots():
                if rev < snap_rev:
                    os.unlink(path)
            segs = self._segments()
            for (start, path), (next_start, _) in zip(segs, segs[1:]):
                if next_start <= compacted and start != self._segment_start:
                    os.unlink(path)
        except Exception:  # pragma: no cover - disk full etc.: the log still has everything
            log.exception("writing a snapshot failed")
        finally:
            self._snap_lock.release()

    # ---- syncing --------------------------------------------------------------------
    def _flush_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            self.sync()

    def sync(self) -> None:
        if not self._dirty:
            return
        with self._sync_lock:
            if self._fd < 0:
                return
            self._dirty = False
            try:
                os.fdatasync(self._fd)
            except OSError:  # pragma: no cover
                log.exception("fsync of the write-ahead log failed")

    def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        t = self._snap_thread
        if t is not None:
            t.join()
        with self._sync_lock:
            self._closed = True
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


def iter_log_records(data_dir: str) -> Iterator[tuple]:
    """Every record of every segment, in order (for debugging and tests)."""
    wal = WriteAheadLog.__new__(WriteAheadLog)
    wal.dir = data_dir
    for _, path in wal._segments():
        with open(path, "rb") as f:
            yield from read_records(f.read())[0]
