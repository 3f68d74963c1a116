"""The etcd backend: the Store interface against a real etcd v3 server.

Why: DESIGN.md promises that the store is replaceable by the real thing, and
a real etcd is the yardstick for the memory backend's speed. It talks to etcd's
gRPC-gateway JSON API (etcd 3.4 serves it under /v3/) with httpx, so it needs
no gRPC stack: keys and values travel base64-encoded, int64s as strings.

Mapping:

- create / update / delete are one transaction each, conditional on the key's
  create revision (absent), version (present) or mod revision (the caller's
  expected one); the failure branch reads the key so the error says why.
- watch is a streaming POST /v3/watch read by a thread; a broken stream is
  resumed from the last delivered revision, as clientv3 does.
- `request_progress()`: the gateway reads the whole request body before it
  answers, so etcd's own progress request cannot be sent on an open watch
  stream. It is emulated: read the current revision R; if the watch already
  delivered everything up to R, emit PROGRESS(R) at once; otherwise give the
  stream ~10 ms to catch up, and failing that, open a short probe watch over
  the whole key space from the last delivered revision to R (an event at R
  always exists, so the probe knows when it is done), deliver the probe's
  events for this prefix that the stream has not delivered yet, and then
  PROGRESS(R). Delivery dedupes by revision, so the stream and the probe can
  race safely and the order is always by revision. The probe costs up to
  etcd's 100 ms watcher-sync tick.
- Leases: etcd expires them itself (TTLs in whole seconds), so there is no
  `expire_leases` here; the clock argument is accepted for the interface.

`LocalEtcd` starts a throwaway etcd on 127.0.0.1 (temp data dir, free ports)
for tests and benchmarks.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

import httpx

from kbox.clock import Clock, RealClock
from kbox.store import (CompactedError, KeyExistsError, KeyNotFoundError, KeyValue,
                        LeaseNotFoundError, RevisionMismatchError, Store, StoreError, Watch,
                        WatchEvent)

log = logging.getLogger(__name__)

_SENTINEL = b"\x00kbox-revision"   # ranged (never written) to learn the current revision


def _b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def _unb64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's range_end)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\x00"      # "" or all 0xff: to the end of the key space


def _kv(d: dict[str, Any]) -> KeyValue:
    return KeyValue(_unb64(d.get("key")).decode(), _unb64(d.get("value")),
                    int(d.get("create_revision", 0)), int(d.get("mod_revision", 0)),
                    int(d.get("version", 0)), int(d.get("lease", 0)))


def _event(d: dict[str, Any]) -> WatchEvent:
    prev = _kv(d["prev_kv"]) if d.get("prev_kv") else None
    kv = _kv(d["kv"])
    if d.get("type") == "DELETE":
        tomb = KeyValue(kv.key, b"", prev.create_revision if prev else 0, kv.mod_revision, 0, 0)
        return WatchEvent("DELETE", tomb, prev, kv.mod_revision)
    return WatchEvent("PUT", kv, prev, kv.mod_revision)


class _EtcdWatch(Watch):
    def __init__(self, store: "EtcdStore", prefix: str, start_revision: int) -> None:
        self._store = store
        self.prefix = prefix
        self._key = prefix.encode() or b"\x00"
        self._end = prefix_end(prefix.encode())
        self._queue: collections.deque[WatchEvent] = collections.deque()
        self._cond = threading.Condition()
        self._deliver_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._closed = False
        self._error: StoreError | None = None
        self._response: httpx.Response | None = None
        self._client = httpx.Client(base_url=store.endpoint, timeout=httpx.Timeout(
            10.0, read=None))
        # every event with a revision <= _delivered has been queued
        resp, created = self._open(start_revision)
        self._delivered = (start_revision - 1) if start_revision else int(
            created["header"]["revision"])
        self._thread = threading.Thread(target=self._run, args=(resp,), daemon=True,
                                        name=f"etcd-watch{prefix}")
        self._thread.start()

    # ---- the stream -------------------------------------------------------------------
    def _open(self, start_revision: int) -> tuple[httpx.Response, dict[str, Any]]:
        req = {"create_request": {"key": _b64(self._key), "range_end": _b64(self._end),
                                  "prev_kv": True}}
        if start_revision:
            req["create_request"]["start_revision"] = str(start_revision)
        resp = self._client.send(self._client.build_request("POST", "/v3/watch", json=req),
                                 stream=True)
        self._response = resp
        lines = resp.iter_lines()
        created = self._read_result(lines)
        if not created.get("created"):
            resp.close()
            raise StoreError(f"etcd watch was not created: {created}")
        self._lines = lines
        return resp, created

    def _read_result(self, lines) -> dict[str, Any]:
        for line in lines:
            if not line.strip():
                continue
            msg = json.loads(line)
            if "error" in msg:
                raise _error(msg["error"])
            return msg.get("result", {})
        raise StoreError("etcd watch stream ended")

    def _run(self, resp: httpx.Response) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                while not self._closed:
                    res = self._read_result(self._lines)
                    backoff = 0.05
                    if res.get("compact_revision") and int(res["compact_revision"]) > 0:
                        rev = int(res["compact_revision"])
                        self._store._saw_compaction(rev)
                        raise CompactedError(self._delivered + 1, rev)
                    if res.get("canceled"):
                        raise StoreError(f"etcd canceled the watch: {res.get('cancel_reason')}")
                    evs = res.get("events")
                    if evs:
                        self._deliver([_event(e) for e in evs])
            except CompactedError as e:
                self._fail(e)
                return
            except Exception as e:  # noqa: BLE001 - the stream broke: resume it
                if self._closed:
                    return
                log.debug("etcd watch %s broke (%s); resuming", self.prefix, e)
                try:
                    resp.close()
                except Exception:  # noqa: BLE001
                    pass
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                try:
                    resp, _ = self._open(self._delivered + 1)
                except CompactedError as ce:
                    self._fail(ce)
                    return
                except Exception:  # noqa: BLE001 - etcd still down: retry
                    continue

    def _fail(self, err: StoreError) -> None:
        with self._cond:
            self._error = err
            self._closed = True
            self._cond.notify_all()

    def _deliver(self, events: list[WatchEvent], progress: int | None = None) -> None:
        with self._deliver_lock:
            floor = self._delivered
            fresh = [e for e in events if e.revision > floor]
            if fresh:
                self._delivered = max(e.revision for e in fresh)
            if progress is not None:
                self._delivered = max(self._delivered, progress)
                fresh.append(WatchEvent("PROGRESS", None, None, progress))
            if fresh:
                with self._cond:
                    self._queue.extend(fresh)
                    self._cond.notify()

    # ---- Watch interface -------------------------------------------------------------
    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            out = list(self._queue)
            self._queue.clear()
            if not out and self._error is not None:
                err, self._error = self._error, None
                raise err
            return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        resp = self._response
        if resp is not None:
            try:
                resp.close()
            except Exception:  # noqa: BLE001
                pass
        self._client.close()
        self._store._forget(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def request_progress(self) -> None:
        rev = self._store.revision
        with self._probe_lock:
            if self._closed:
                return
            deadline = time.monotonic() + 0.01
            while self._delivered < rev and time.monotonic() < deadline:
                time.sleep(0.002)          # events up to rev are usually in flight
            if self._delivered >= rev:
                self._deliver([], progress=rev)
                return
            self._deliver(self._probe(self._delivered + 1, rev), progress=rev)

    def _probe(self, start: int, rev: int) -> list[WatchEvent]:
        """Events for this prefix in [start, rev], from a one-off watch on every key."""
        req = {"create_request": {"key": _b64(b"\x00"), "range_end": _b64(b"\x00"),
                                  "start_revision": str(start), "prev_kv": True}}
        out: list[WatchEvent] = []
        with self._client.stream("POST", "/v3/watch", json=req,
                                 timeout=httpx.Timeout(10.0, read=10.0)) as resp:
            lines = resp.iter_lines()
            while True:
                res = self._read_result(lines)
                if res.get("compact_revision") and int(res["compact_revision"]) > 0:
                    raise CompactedError(start, int(res["compact_revision"]))
                evs = [_event(e) for e in res.get("events", ())]
                out.extend(e for e in evs if e.revision <= rev
                           and e.kv.key.startswith(self.prefix))  # type: ignore[union-attr]
                if evs and evs[-1].revision >= rev:
                    return out


class EtcdStore(Store):
    def __init__(self, endpoint: str = "http://127.0.0.1:2379", clock: Clock | None = None,
                 timeout: float = 10.0, **_: object) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._clock = clock or RealClock()
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout)
        self._compacted = 0
        self._watches: set[_EtcdWatch] = set()
        self._lock = threading.Lock()

    # ---- plumbing ----------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self._http.post(path, json=body)
        data = r.json()
        if r.status_code != 200 or "error" in data and "header" not in data:
            raise _error(data)
        return data

    def _saw_compaction(self, rev: int) -> None:
        self._compacted = max(self._compacted, rev)

    def _forget(self, w: _EtcdWatch) -> None:
        with self._lock:
            self._watches.discard(w)

    # ---- reads ---------------------------------------------------------------------------
    @property
    def revision(self) -> int:
        data = self._post("/v3/kv/range", {"key": _b64(_SENTINEL), "count_only": True})
        return int(data["header"]["revision"])

    @property
    def compacted_revision(self) -> int:
        """The highest compaction this client has seen (etcd does not report it on reads)."""
        return self._compacted

    def get(self, key: str) -> KeyValue | None:
        kvs = self._post("/v3/kv/range", {"key": _b64(key)}).get("kvs")
        return _kv(kvs[0]) if kvs else None

    def range(self, prefix: str, *, start_key: str | None = None,
              limit: int = 0) -> tuple[list[KeyValue], int]:
        start = max(prefix, start_key or "").encode() or b"\x00"
        body: dict[str, Any] = {"key": _b64(start), "range_end": _b64(prefix_end(prefix.encode()))}
        if limit:
            body["limit"] = str(limit)
        data = self._post("/v3/kv/range", body)
        return [_kv(d) for d in data.get("kvs", ())], int(data["header"]["revision"])

    def count(self, prefix: str) -> int:
        data = self._post("/v3/kv/range", {"key": _b64(prefix.encode() or b"\x00"),
                                           "range_end": _b64(prefix_end(prefix.encode())),
                                           "count_only": True})
        return int(data.get("count", 0))

    # ---- writes --------------------------------------------------------------------------
    def _txn(self, key: str, compare: dict[str, Any], success: dict[str, Any]
             ) -> tuple[bool, dict[str, Any], int]:
        k = _b64(key)
        data = self._post("/v3/kv/txn", {
            "compare": [{"key": k, **compare}],
            "success": [success],
            "failure": [{"request_range": {"key": k}}]})
        resp = (data.get("responses") or [{}])[0]
        return bool(data.get("succeeded")), resp, int(data["header"]["revision"])

    @staticmethod
    def _compare(expected_mod_revision: int | None) -> dict[str, Any]:
        if expected_mod_revision is None:
            return {"target": "VERSION", "result": "GREATER", "version": "0"}
        return {"target": "MOD", "result": "EQUAL", "mod_revision": str(expected_mod_revision)}

    @staticmethod
    def _mismatch(key: str, expected: int | None, resp: dict[str, Any]) -> StoreError:
        kvs = resp.get("response_range", {}).get("kvs")
        actual = _kv(kvs[0]) if kvs else None
        if actual is None and not expected:
            return KeyNotFoundError(key)
        return RevisionMismatchError(key, expected or 0, actual)

    def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        ok, _, rev = self._txn(
            key, {"target": "CREATE", "result": "EQUAL", "create_revision": "0"},
            {"request_put": {"key": _b64(key), "value": _b64(value), "lease": str(lease)}})
        if not ok:
            raise KeyExistsError(key)
        return KeyValue(key, value, rev, rev, 1, lease)

    def update(self, key: str, value: bytes, expected_mod_revision: int | None,
               *, lease: int = 0) -> KeyValue:
        ok, resp, rev = self._txn(
            key, self._compare(expected_mod_revision),
            {"request_put": {"key": _b64(key), "value": _b64(value), "lease": str(lease),
                             "prev_kv": True}})
        if not ok:
            raise self._mismatch(key, expected_mod_revision, resp)
        prev = resp.get("response_put", {}).get("prev_kv")
        old = _kv(prev) if prev else None
        return KeyValue(key, value, old.create_revision if old else rev, rev,
                        old.version + 1 if old else 1, lease)

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KeyValue:
        ok, resp, _ = self._txn(
            key, self._compare(expected_mod_revision),
            {"request_delete_range": {"key": _b64(key), "prev_kv": True}})
        if not ok:
            raise self._mismatch(key, expected_mod_revision, resp)
        prev = resp.get("response_delete_range", {}).get("prev_kvs")
        if not prev:      # deleted by someone else between compare and delete cannot happen
            raise KeyNotFoundError(key)
        return _kv(prev[0])

    # ---- watch -----------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int = 0) -> Watch:
        if start_revision:
            self._check_not_compacted(start_revision)
        w = _EtcdWatch(self, prefix, start_revision)
        with self._lock:
            self._watches.add(w)
        return w

    def _check_not_compacted(self, start_revision: int) -> None:
        """etcd reports a compacted watch start asynchronously; a read at it fails at once."""
        try:
            self._post("/v3/kv/range", {"key": _b64(_SENTINEL), "count_only": True,
                                        "revision": str(start_revision)})
        except CompactedError:
            raise CompactedError(start_revision, self._find_compacted(start_revision)) from None
        except StoreError as e:
            if "future revision" not in str(e):
                raise

    def _find_compacted(self, at_least: int) -> int:
        """The compaction point, from the cancel reply of a watch at revision 1."""
        req = {"create_request": {"key": _b64(_SENTINEL), "start_revision": "1"}}
        try:
            with self._http.stream("POST", "/v3/watch", json=req,
                                   timeout=httpx.Timeout(5.0, read=2.0)) as resp:
                for line in resp.iter_lines():
                    res = json.loads(line).get("result", {}) if line.strip() else {}
                    if int(res.get("compact_revision", 0) or 0):
                        self._saw_compaction(int(res["compact_revision"]))
                        break
        except httpx.HTTPError:
            pass
        return max(self._compacted, at_least + 1)

    # ---- leases ----------------------------------------------------------------------------
    def grant_lease(self, ttl: float) -> int:
        data = self._post("/v3/lease/grant", {"TTL": str(max(1, math.ceil(ttl)))})
        return int(data["ID"])

    def keep_alive(self, lease_id: int) -> None:
        with self._http.stream("POST", "/v3/lease/keepalive", json={"ID": str(lease_id)}) as r:
            for line in r.iter_lines():
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "error" in msg:
                    raise _error(msg["error"])
                if int(msg.get("result", {}).get("TTL", 0) or 0) <= 0:
                    raise LeaseNotFoundError(f"lease {lease_id} not found")
                return
        raise StoreError("etcd keepalive stream ended")

    def revoke_lease(self, lease_id: int) -> None:
        self._post("/v3/lease/revoke", {"ID": str(lease_id)})

    # ---- compaction ------------------------------------------------------------------------
    def compact(self, revision: int) -> None:
        revision = min(revision, self.revision)
        if revision <= self._compacted or revision <= 0:
            return
        try:
            self._post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except CompactedError:
            pass                # someone compacted further already
        self._saw_compaction(revision)

    def close(self) -> None:
        with self._lock:
            watches = list(self._watches)
        for w in watches:
            w.close()
        self._http.close()


def _error(data: dict[str, Any]) -> StoreError:
    msg = data.get("message") or data.get("error") or str(data)
    if "lease not found" in msg:
        return LeaseNotFoundError(msg)
    if "has been compacted" in msg:
        return CompactedError(0, 0)
    return StoreError(f"etcd: {msg}")


# ---- a throwaway local etcd ---------------------------------------------------------------

def etcd_binary() -> str | None:
    return shutil.which("etcd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalEtcd:
    """An etcd process on 127.0.0.1 with a temp data dir; `with LocalEtcd() as endpoint:`."""

    def __init__(self, binary: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary or etcd_binary()
        if not self.binary:
            raise FileNotFoundError("etcd is not installed (Debian: apt-get install etcd-server)")
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.dir: str | None = None
        self.endpoint = ""

    def start(self, timeout: float = 20.0) -> str:
        self.dir = tempfile.mkdtemp(prefix="kbox-etcd-")
        client, peer = _free_port(), _free_port()
        self.endpoint = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        args = [self.binary, "--name", "kbox", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"kbox={peer_url}", "--log-level", "error",
                *self.extra_args]
        self._log = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.endpoint + "/health", timeout=1).json().get("health") == "true":
                    return self.endpoint
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        out = open(os.path.join(self.dir, "etcd.log"), errors="replace").read()[-2000:]
        self.stop()
        raise RuntimeError(f"etcd did not become healthy: {out}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
