"""API over HTTP: latency of create and update calls at a fixed request rate.

Boots a cluster with no nodes (only the API matters here), then for
`--seconds` sends `--rate` requests per second, alternating creates and
updates of ConfigMaps, from one client thread on a fixed schedule (so slow
answers show up as latency, not as a lower rate). Prints p50 / p99 / max.
Goal (issue 2): p99 < 50 ms at 100 requests/s.

    python bench/bench_api_http.py [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, percentile  # noqa: E402

from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    config = ClusterConfig.model_validate({"name": "bench-api", "runtime": "sim", "nodes": {"count": 0}})
    with Cluster(config) as cluster:
        client = cluster.http_client()        # HTTPS with the admin token
        n = int(args.rate * args.seconds)
        creates: list[float] = []
        updates: list[float] = []
        live: list[dict] = []
        start = time.perf_counter()
        for i in range(n):
            due = start + i / args.rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            t0 = time.perf_counter()
            if i % 2 == 0 or not live:
                obj = client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": f"cm-{i}"},
                                                   "data": {"i": str(i), "pad": "x" * 512}}, "default")
                live.append(obj)
                creates.append(time.perf_counter() - t0)
            else:
                obj = live.pop(0)
                obj["data"]["i"] = "updated"
                client.update("configmaps", obj, "default")
                updates.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        client.close()
    ms = lambda v: f"{v * 1000:.1f} ms"
    print(f"machine: {machine()}")
    print(f"API over HTTPS with a bearer token (127.0.0.1): {n} calls in {elapsed:.1f}s ({n / elapsed:.0f} req/s)")
    for label, vals in (("create", creates), ("update", updates), ("all mutating", creates + updates)):
        print(f"  {label:13} p50 {ms(percentile(vals, 50))}  p99 {ms(percentile(vals, 99))}  "
              f"max {ms(max(vals))}  (n={len(vals)})")
    p99 = percentile(creates + updates, 99)
    print(f"goal p99 < 50 ms: {'met' if p99 < 0.05 else 'NOT met'} ({ms(p99)})")


if __name__ == "__main__":
    main()
