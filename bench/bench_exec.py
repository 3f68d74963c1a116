"""exec over a WebSocket (the protocol kubectl 1.30+ uses): one command's round trip.

Each sample opens a fresh TLS WebSocket to pods/NAME/exec (v5.channel.k8s.io) on a sim
pod, runs `true`, and reads the closing Status, as one `kubectl exec` does after its
discovery requests. No goal in issue 5; the figure shows what exec adds to a kubectl run.

    python bench/bench_exec.py [--samples 50]
"""

from __future__ import annotations

import argparse
import os
import ssl
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, percentile  # noqa: E402

from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50)
    args = ap.parse_args()
    from websockets.sync.client import connect
    print(f"machine: {machine()}")
    config = ClusterConfig.model_validate({"name": "bench-exec", "runtime": "sim", "nodes": {"count": 1}})
    with Cluster(config) as cluster:
        cluster.client.create("pods", {"metadata": {"name": "box"}, "spec": {"containers": [
            {"name": "main", "image": "busybox"}]}}, "default")
        while cluster.client.get("pods", "box", "default").get("status", {}).get("phase") != "Running":
            time.sleep(0.05)
        url = cluster.url.replace("https://", "wss://") + \
            "/api/v1/namespaces/default/pods/box/exec?command=true&container=main&stdout=true"
        ctx = ssl.create_default_context(cafile=cluster.credentials.ca_path)
        headers = {"Authorization": f"Bearer {cluster.credentials.admin_token}"}
        times = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            with connect(url, ssl=ctx, additional_headers=headers, subprotocols=["v5.channel.k8s.io"],
                         open_timeout=10, close_timeout=5) as ws:
                while ws.recv(timeout=10)[0] != 3:      # channel 3: the Status ends the exec
                    pass
            times.append(time.perf_counter() - t0)
    ms = sorted(t * 1000 for t in times)
    print(f"exec round trip over wss, sim pod ({len(ms)} samples): p50 {statistics.median(ms):.1f} ms, "
          f"p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
