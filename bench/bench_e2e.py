"""End to end on sim nodes: N nodes and M pods from deployments, all Running.

Boots a cluster in this process (sim runtime, Kubernetes' own heartbeat
timings so 1,000 kubelets do not dominate), creates deployments whose
replicas add up to `--pods`, and measures the time until every pod is
Running, plus the process's resident memory at the end.
Goal (issue 2): 1,000 nodes and 30,000 pods in < 60 s with RSS < 2 GiB.

    python bench/bench_e2e.py [--nodes 1000] [--pods 30000] [--per-deployment 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import cpu_by_thread, host_speed, machine, rss_mib, thread_cpu  # noqa: E402

from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402


def deployment(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "kbox/busybox:latest",
                                                           "imagePullPolicy": "IfNotPresent",
                                                           "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=30000)
    ap.add_argument("--per-deployment", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    config = ClusterConfig.model_validate({
        "name": "bench-e2e", "runtime": "sim",
        "nodes": {"count": args.nodes, "cpu": "32", "memory": "64Gi", "pods": 110},
        # a /24 per node: kind's default /16 holds only 256 nodes
        "networking": {"podSubnet": "10.128.0.0/12"},
        "timings": {"nodeStatusUpdateFrequency": 10, "nodeLeaseRenewInterval": 10,
                    "nodeMonitorGracePeriod": 50, "defaultTolerationSeconds": 300,
                    "sim": {"pullDelay": 0, "createDelay": 0, "startDelay": 0.1}},
    })
    print(f"machine: {machine()}")
    print(f"host speed before: {host_speed():.1f} ms for the fixed loop (lower is faster)")
    t0 = time.perf_counter()
    cluster = Cluster(config, serve_http=False)
    cluster.start(timeout=args.timeout)
    boot = time.perf_counter() - t0
    print(f"{args.nodes} sim nodes Ready in {boot:.1f}s (RSS {rss_mib():.0f} MiB)")
    try:
        client = cluster.client
        # count phases from a watch (cheap per event) instead of rescanning every pod
        phase: dict[str, str] = {}
        bound: set[str] = set()
        watch = client.watch("pods", resource_version="0", read_only=True)
        t1 = time.perf_counter()
        threads_before = thread_cpu()
        remaining = args.pods
        i = 0
        while remaining > 0:
            n = min(args.per_deployment, remaining)
            client.create("deployments", deployment(f"app-{i}", n), "default")
            remaining -= n
            i += 1
        created = time.perf_counter() - t1
        last_report = 0.0
        running = 0
        while True:
            for etype, pod in watch.next_batch(0.2):
                key = pod["metadata"]["uid"]
                was = phase.pop(key, None) if etype == "DELETED" else phase.get(key)
                now = None if etype == "DELETED" else (pod.get("status") or {}).get("phase", "")
                if now is not None:
                    phase[key] = now
                running += (now == "Running") - (was == "Running")
                if now is not None and (pod.get("spec") or {}).get("nodeName"):
                    bound.add(key)
                elif now is None:
                    bound.discard(key)
            time.sleep(0.05)      # let events gather: a watch read per event would cost GIL
            el = time.perf_counter() - t1
            if running >= args.pods:
                break
            if el - last_report >= 5:
                print(f"  {el:5.1f}s: {len(phase)} pods, {len(bound)} bound, {running} Running, "
                      f"RSS {rss_mib():.0f} MiB", flush=True)
                last_report = el
            if el > args.timeout:
                print(f"timeout: {running}/{args.pods} Running")
                break
        watch.close()
        total = time.perf_counter() - t1
        print(f"{i} deployments created in {created:.1f}s; {running}/{args.pods} pods Running "
              f"after {total:.1f}s; RSS {rss_mib():.0f} MiB")
        print(f"CPU by thread: {cpu_by_thread(threads_before, thread_cpu(), top=12)}")
        print(f"goal < 60 s and RSS < 2 GiB: {'met' if total < 60 and rss_mib() < 2048 else 'NOT met'}")
    finally:
        cluster.stop()
    print(f"host speed after: {host_speed():.1f} ms for the fixed loop")


if __name__ == "__main__":
    main()
