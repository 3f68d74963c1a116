"""Store benchmark: the memory backend (with and without its write-ahead log) against a real etcd.

Why: the memory backend exists to be much faster than etcd for a one-process
cluster (goal: at least 50x etcd's single-client write rate). This prints

- memory backend writes/s (single client, sequential creates then
  compare-and-swap updates of 1 KiB values) and reads/s (get), without a WAL
  and with one in a temp dir (fsync "periodic", the default, and "always");
- watch delivery latency p50/p99 with 100 watchers (write -> each watcher's
  thread has the event);
- the same single-client write workload against a real etcd started here on
  127.0.0.1 (temp data dir, free ports) through EtcdStore, and the ratio.

Run: python bench/bench_store.py [--quick]. Takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kbox.store import Store
from kbox.store.memory import MemoryStore

VALUE = b"v" * 1024


def write_rate(store: Store, n: int, prefix: str = "/bench/") -> tuple[float, float]:
    """(creates/s, updates/s) for n sequential creates then n CAS updates."""
    keys = [f"{prefix}{i:08d}" for i in range(n)]
    t0 = time.perf_counter()
    revs = [store.create(k, VALUE).mod_revision for k in keys]
    t1 = time.perf_counter()
    for k, r in zip(keys, revs):
        store.update(k, VALUE, r)
    t2 = time.perf_counter()
    return n / (t1 - t0), n / (t2 - t1)


def read_rate(store: Store, n: int, prefix: str = "/bench/") -> float:
    keys = [f"{prefix}{i:08d}" for i in range(n)]
    t0 = time.perf_counter()
    for k in keys:
        store.get(k)
    return n / (time.perf_counter() - t0)


def watch_latency(watchers: int = 100, writes: int = 500, gap: float = 0.002
                  ) -> tuple[float, float, float]:
    """p50, p99, max (ms) from a write returning to each watcher's thread having the event."""
    store = MemoryStore()
    sent: dict[int, float] = {}
    lat: list[float] = []
    lock = threading.Lock()
    ws = [store.watch("/lat/") for _ in range(watchers)]

    def consume(w) -> None:
        got, mine = 0, []
        while got < writes:
            evs = w.get(timeout=5)
            if not evs:
                break
            now = time.perf_counter()
            for e in evs:
                mine.append((e.revision, now))
            got += len(evs)
        with lock:
            lat.extend((now - sent[rev]) * 1000 for rev, now in mine if rev in sent)

    threads = [threading.Thread(target=consume, args=(w,)) for w in ws]
    for t in threads:
        t.start()
    for i in range(writes):
        t = time.perf_counter()
        kv = store.create(f"/lat/{i}", VALUE)
        sent[kv.mod_revision] = t
        time.sleep(gap)
    for t in threads:
        t.join()
    store.close()
    lat.sort()
    return (statistics.median(lat), lat[int(len(lat) * 0.99) - 1], lat[-1])


def bench_memory(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    s = MemoryStore()
    out["mem create/s"], out["mem update/s"] = write_rate(s, n)
    out["mem get/s"] = read_rate(s, n)
    s.close()
    for mode, count in (("periodic", n), ("always", max(500, n // 50))):
        d = tempfile.mkdtemp(prefix="kbox-bench-wal-")
        try:
            s = MemoryStore(data_dir=d, fsync=mode)
            c, u = write_rate(s, count)
            out[f"wal({mode}) create/s"], out[f"wal({mode}) update/s"] = c, u
            if mode == "periodic":
                out["wal get/s"] = read_rate(s, count)
            s.close()
            if mode == "periodic":
                t0 = time.perf_counter()
                s = MemoryStore(data_dir=d)
                out["wal restore s"] = time.perf_counter() - t0
                assert s.count("/bench/") == count
                s.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


def bench_etcd(seconds: float) -> dict[str, float] | None:
    from kbox.store.etcd import EtcdStore, LocalEtcd, etcd_binary
    if etcd_binary() is None:
        print("\netcd: SKIPPED - the `etcd` binary is not installed.\n"
              "  Install it (Debian/Ubuntu): sudo apt-get install -y etcd-server\n"
              "  and run this benchmark again for the memory/etcd comparison.")
        return None
    with LocalEtcd() as endpoint:
        s = EtcdStore(endpoint)
        # calibrate: as many ops as fit in `seconds` per phase
        t0 = time.perf_counter()
        for i in range(50):
            s.create(f"/warm/{i}", VALUE)
        per = (time.perf_counter() - t0) / 50
        n = max(100, int(seconds / per))
        out: dict[str, float] = {}
        out["etcd create/s"], out["etcd update/s"] = write_rate(s, n)
        out["etcd get/s"] = read_rate(s, n)
        out["etcd ops"] = n
        s.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (a few seconds)")
    args = ap.parse_args()
    n = 20000 if args.quick else 100000
    print(f"memory backend: {n} sequential creates + {n} CAS updates of 1 KiB values, single client")
    mem = bench_memory(n)
    for k, v in mem.items():
        print(f"  {k:24s} {v:12,.2f}" if "restore" in k else f"  {k:24s} {v:12,.0f}")
    print("watch delivery latency, 100 watchers, one write every 2 ms:")
    p50, p99, mx = watch_latency(writes=200 if args.quick else 500)
    print(f"  p50 {p50:.3f} ms   p99 {p99:.3f} ms   max {mx:.3f} ms")
    et = bench_etcd(3.0 if args.quick else 10.0)
    if et:
        print(f"real etcd (single member, 127.0.0.1, fsync per commit), {int(et['etcd ops'])} ops per phase via EtcdStore:")
        for k in ("etcd create/s", "etcd update/s", "etcd get/s"):
            print(f"  {k:24s} {et[k]:12,.0f}")
        print("ratios memory/etcd (single-client writes; goal >= 50x):")
        for label, mk, ek in (("create, no WAL", "mem create/s", "etcd create/s"),
                              ("update, no WAL", "mem update/s", "etcd update/s"),
                              ("create, WAL periodic", "wal(periodic) create/s", "etcd create/s"),
                              ("update, WAL periodic", "wal(periodic) update/s", "etcd update/s"),
                              ("create, WAL always", "wal(always) create/s", "etcd create/s"),
                              ("get, no WAL", "mem get/s", "etcd get/s")):
            print(f"  {label:24s} {mem[mk] / et[ek]:10,.1f}x")


if __name__ == "__main__":
    main()
