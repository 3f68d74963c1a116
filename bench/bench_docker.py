"""Docker-in-Docker nodes: boot time, pod start latency, a 100-replica deployment, memory.

Needs a Docker engine; builds (or reuses) the node and busybox images first,
so the boot figure is with the images cached, as the goal states.
Goals (issue 3): 3 nodes Ready < 10 s; pod start latency <= 1.3x a raw
`docker create` + `start` of the same image in the same node; 100 replicas
on 3 nodes all Running < 30 s.

    python bench/bench_docker.py [--nodes 3] [--replicas 100] [--samples 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, rss_mib  # noqa: E402

from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "kbox/busybox:latest",
                                     "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}}


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "many"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "many"}},
                     "template": {"metadata": {"labels": {"app": "many"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "c", "image": "kbox/busybox:latest",
                                                           "command": ["sleep", "3600"]}]}}}}


def phase(cluster: Cluster, name: str) -> str:
    return (cluster.client.get("pods", name, "default").get("status") or {}).get("phase", "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    import docker
    from kbox.runtime.images import ensure_busybox_image, ensure_node_image
    host = docker.from_env()
    t = time.perf_counter()
    ensure_busybox_image(host)
    image = ensure_node_image(host)
    print(f"machine: {machine()}")
    print(f"images ready ({image}) in {time.perf_counter() - t:.1f}s")

    name = f"bench{uuid.uuid4().hex[:5]}"
    config = ClusterConfig.model_validate({"name": name, "runtime": "docker",
                                           "nodes": {"count": args.nodes},
                                           "timings": {"syncFrequency": 0.2}})
    t0 = time.perf_counter()
    cluster = Cluster(config, serve_http=False)
    try:
        cluster.start(timeout=120)
        boot = time.perf_counter() - t0
        print(f"boot: {args.nodes} docker nodes Ready in {boot:.1f}s (goal < 10 s: "
              f"{'met' if boot < 10 else 'NOT met'})")

        # pod start latency: API create -> Running, against raw create+start in that node.
        # Each pod is created on an idle node; first with the node's warm sandbox ready (the
        # normal case: the pool refills within a second), then with warm sandboxes off (every
        # pod sets up its sandbox's network), so both figures come from one run.
        node = f"{name}-worker"
        agent = cluster.nodes.agents[node]
        inner = cluster.machines.inner(node)
        raw, raw_net = [], []

        def raw_baselines() -> None:
            # the node's engine runs with --bridge=none, so a plain `docker run` there gets no
            # network at all; with a network, as any docker run on a bridge has, it joins the
            # node's pod bridge (what a pod's sandbox joins)
            for network, out in ((None, raw), ("kbox-pods", raw_net)):
                t = time.perf_counter()
                c = inner.containers.create("kbox/busybox:latest", ["sleep", "3600"], init=True,
                                            network=network,
                                            labels={"io.kbox.cluster": name, "io.kbox.bench": "raw"})
                c.start()
                out.append(time.perf_counter() - t)
                c.remove(force=True)

        def pod_start(label: str, warm: bool) -> float:
            times = []
            for i in range(args.samples):
                if warm:
                    deadline = time.monotonic() + 10
                    while agent.warm_deficit() > 0 and time.monotonic() < deadline:
                        time.sleep(0.02)
                time.sleep(0.3)                     # the node idle, as a user's next pod finds it
                p = pod(f"{label}-{i}")
                p["spec"]["nodeName"] = node
                t = time.perf_counter()
                cluster.client.create("pods", p, "default")
                while phase(cluster, f"{label}-{i}") != "Running":
                    time.sleep(0.005)
                times.append(time.perf_counter() - t)
                raw_baselines()
            return statistics.median(times)

        k_warm = pod_start("warm", True)
        config.nodes.warm_sandboxes = 0
        agent.drop_warm(remove=True)
        k_cold = pod_start("cold", False)
        config.nodes.warm_sandboxes = 1
        r, rn = statistics.median(raw), statistics.median(raw_net)
        print(f"raw docker create+start in the node (median of {len(raw)}): no network {r * 1000:.0f} ms; "
              f"on the node's pod bridge {rn * 1000:.0f} ms")
        for label, k in (("warm sandbox", k_warm), ("cold sandbox", k_cold)):
            print(f"pod start, {label} (created -> Running, median of {args.samples}): {k * 1000:.0f} ms: "
                  f"ratio {k / r:.2f} to the unnetworked raw container, {k / rn:.2f} to the networked "
                  f"one (goal <= 1.3: {'met' if k / r <= 1.3 else 'NOT met'} / "
                  f"{'met' if k / rn <= 1.3 else 'NOT met'})")
        inner.close()

        # a 100-replica deployment
        t = time.perf_counter()
        cluster.client.create("deployments", deployment(args.replicas), "default")
        while True:
            pods = cluster.client.list("pods", "default", label_selector="app=many")["items"]
            running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
            if running >= args.replicas:
                break
            time.sleep(0.2)
        took = time.perf_counter() - t
        print(f"{args.replicas} replicas on {args.nodes} nodes all Running in {took:.1f}s "
              f"(goal < 30 s: {'met' if took < 30 else 'NOT met'})")

        # memory
        cluster.client.delete("deployments", "many", "default")
        for label in ("warm", "cold"):
            for i in range(args.samples):
                cluster.client.delete("pods", f"{label}-{i}", "default")
        time.sleep(5)
        mem = []
        for spec in config.node_specs():
            c = host.containers.get(cluster.machines.container_name(spec.name))
            st = c.stats(stream=False)
            mem.append(st["memory_stats"].get("usage", 0) - (st["memory_stats"].get("stats") or {}).get("cache", 0))
        print(f"memory: idle node container {statistics.median(mem) / 2**20:.0f} MiB (median of "
              f"{len(mem)}); kbox process with {args.nodes} nodes {rss_mib():.0f} MiB RSS")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
