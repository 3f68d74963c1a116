"""Services on Docker-in-Docker nodes: request latency through a ClusterIP against
straight to the pod, and the time from a pod turning Ready to receiving traffic.

Needs a Docker engine. Goals (issue 6): a request through a ClusterIP <= 1.2x the
same request to the pod's IP; a pod turning Ready receives traffic < 1 s later.

One backend pod (busybox httpd) on one node, a client pod on the other, a Service
with only that backend behind it. Everything is timed inside the client pod, so
`docker exec` is not measured: busybox has no `date +%N`, but `adjtimex` prints
the kernel's wall clock in microseconds, which is the host's clock too (containers
share the kernel), so pod timestamps compare with time.time() on the host.

    python bench/bench_services.py [--rounds 10] [--requests 30] [--flips 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, percentile  # noqa: E402

from kbox.api.objects import is_pod_ready  # noqa: E402
from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402

PORT = 8080
# prints the pod's wall clock as "tv_sec: S" / "tv_usec: U" lines (see parse_stamps)
STAMP = "adjtimex | grep tv_"
# the backend serves a 2-byte page and is Ready while /tmp/ready exists
SERVE = f"mkdir -p /www && echo ok > /www/index.html && touch /tmp/ready && exec httpd -f -p {PORT} -h /www"


def backend(node: str) -> dict:
    return {"metadata": {"name": "backend", "labels": {"app": "backend"}}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "httpd", "image": "kbox/busybox:latest", "command": ["sh", "-c", SERVE],
                        "ports": [{"name": "http", "containerPort": PORT}],
                        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                           "periodSeconds": 1, "failureThreshold": 1}}]}}


def client_pod(node: str) -> dict:
    return {"metadata": {"name": "client"}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "kbox/busybox:latest", "command": ["sleep", "36000"]}]}}


SERVICE = {"metadata": {"name": "backend"}, "spec": {
    "selector": {"app": "backend"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def parse_stamps(text: str) -> list[float]:
    """Every timestamp STAMP printed, in order."""
    secs = [int(s) for s in re.findall(r"tv_sec:\s*(\d+)", text)]
    usecs = [int(u) for u in re.findall(r"tv_usec:\s*(\d+)", text)]
    return [s + u / 1e6 for s, u in zip(secs, usecs)]


def wait(cond, timeout: float, what: str, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Bench:
    def __init__(self, cluster: Cluster, backend_node: str, client_node: str) -> None:
        self.cluster = cluster
        self.backend_node = backend_node
        self.client_node = client_node

    def sh(self, pod: str, script: str, container: str = "c") -> str:
        p = self.cluster.client.get("pods", pod, "default")
        rc, out, err = self.cluster.nodes.agents[p["spec"]["nodeName"]].exec(p, container, ["sh", "-c", script])
        if rc != 0:
            raise RuntimeError(f"exec in {pod} failed ({rc}): {script[:80]}...: {err.decode()[-300:]}")
        return out.decode()

    def stream(self, pod: str, script: str, container: str = "c"):
        p = self.cluster.client.get("pods", pod, "default")
        return self.cluster.nodes.agents[p["spec"]["nodeName"]].exec_stream(p, container, ["sh", "-c", script])

    # ---- 1. latency: pod IP against cluster IP (and the Service's name), interleaved ----
    def latency(self, targets: dict[str, str], rounds: int, requests: int, one_process: bool) -> dict[str, list[float]]:
        """Per-request seconds of each round, for each target URL. Rounds alternate the order
        (A B C, C B A, ...) so drift hits every target alike; an empty round (the stamps alone)
        is timed the same way and its time taken off."""
        if one_process:
            # one wget fetching the URL `requests` times: connection set-up, the request and the
            # answer, without a process start per request
            body = lambda url: "wget -qO /dev/null " + " ".join([url] * requests)   # noqa: E731
        else:
            body = lambda url: (f"i=0; while [ $i -lt {requests} ]; do wget -qO /dev/null {url}"   # noqa: E731
                                " || echo FAIL; i=$((i+1)); done")
        labels = list(targets) + ["empty"]
        spans: dict[str, list[float]] = {label: [] for label in labels}
        for r in range(rounds):              # one exec a round (an exec may last 10 s at most)
            order = labels if r % 2 == 0 else labels[::-1]
            out = self.sh("client", "\n".join(
                f"echo @{label}; {STAMP}; {body(targets[label]) if label != 'empty' else ':'}; {STAMP}"
                for label in order))
            if "FAIL" in out:
                raise RuntimeError(f"a request failed: {out[:500]}")
            for chunk in out.split("@")[1:]:
                label, rest = chunk.split("\n", 1)
                t0, t1 = parse_stamps(rest)
                spans[label].append(t1 - t0)
        empty = statistics.median(spans.pop("empty"))
        return {label: [(s - empty) / requests for s in v] for label, v in spans.items()}

    # ---- 2. Ready -> traffic ----------------------------------------------------------
    def ready_to_traffic(self, url: str, flips: int, poll_ms: int) -> list[dict[str, float]]:
        c = self.cluster
        backend_ip = c.client.get("pods", "backend", "default")["status"]["podIP"]
        marks: dict[str, float] = {}
        lock = threading.Lock()

        def mark(key: str) -> None:
            with lock:
                marks.setdefault(key, time.time())

        # host time of each step, as the updates arrive in this process
        def on_pod(_old, new):
            if new["metadata"]["name"] == "backend" and is_pod_ready(new):
                mark("ready")

        def on_endpoints(_old, new):
            if new["metadata"]["name"] == "backend" and any(
                    a.get("ip") == backend_ip for s in new.get("subsets") or [] for a in s.get("addresses") or []):
                mark("endpoints")
        c.informers.informer("pods").add_handler(None, on_pod, None)
        c.informers.informer("endpoints").add_handler(None, on_endpoints, None)
        # the client node's kube-proxy: the moment its restore returned (a sync that changed
        # the node's rules) counts as "rules in the node"
        proxy = c.nodes.proxies.proxies[self.client_node]
        serving = lambda rules: any(r.backends for r in rules if r.key.startswith("default/backend"))  # noqa: E731
        real_sync = proxy.sync

        def timed_sync(rules):
            done = real_sync(rules)
            if done:
                mark("rules" if serving(rules) else "rules gone")
            return done
        proxy.sync = timed_sync
        results = []
        try:
            for i in range(flips):
                # not ready: out of the Endpoints, the client node REJECTs the cluster IP
                with lock:
                    marks.clear()
                self.sh("backend", "rm -f /tmp/ready", container="httpd")
                wait(lambda: not is_pod_ready(c.client.get("pods", "backend", "default")), 10, "backend not Ready")
                wait(lambda: "rules gone" in marks, 10, "the client node's rules without the backend")
                with lock:
                    marks.clear()
                # the client polls in the pod (one streamed exec): a new request every poll_ms,
                # each in the background, as a packet sent before the rules land is dropped by the
                # node's black-hole route for the service range and its connection would wait for
                # a SYN retry (1 s); the first to get an answer stamps the pod's clock. It says
                # "polling" (and stamps) once 10 requests went out unanswered.
                session = self.stream("client", (
                    f"rm -rf /tmp/got /tmp/got.d; n=0; until [ -e /tmp/got ]; do "
                    f"(wget -qO /dev/null {url} 2>/dev/null && mkdir /tmp/got.d 2>/dev/null && "
                    f"{STAMP} > /tmp/got.t && mv /tmp/got.t /tmp/got) & "
                    f"n=$((n+1)); [ $n = 10 ] && {{ [ -e /tmp/got ] || {{ echo polling; {STAMP}; }}; }}; "
                    f"[ $n -gt {int(20000 / poll_ms)} ] && exit 3; usleep {poll_ms * 1000}; done; "
                    f"kill $(jobs -p) 2>/dev/null; cat /tmp/got; echo failed $n"))
                out = ""
                touched = None
                while (chunk := session.read()) is not None:
                    out += chunk[1].decode()
                    if touched is None and "polling" in out:
                        touched = time.time()
                        self.sh("backend", "touch /tmp/ready", container="httpd")
                session.close()
                stamps = parse_stamps(out)
                failed = re.search(r"failed (\d+)", out)
                if touched is None or len(stamps) != 2 or not failed:
                    raise RuntimeError(f"flip {i}: the client's poll went wrong: {out!r}")
                # the restore's exec may return after the node already answers
                wait(lambda: {"ready", "endpoints", "rules"} <= set(marks), 10,
                     f"flip {i}: Ready, Endpoints and the client node's sync (saw {sorted(marks)})")
                with lock:
                    m = dict(marks)
                if stamps[1] < touched:
                    raise RuntimeError(f"flip {i}: an answer came before the backend was made ready")
                # the client's loop: 10 requests out at stamps[0], the answer at stamps[1]
                period = (stamps[1] - stamps[0]) / max(1, int(failed.group(1)) - 10)
                results.append({"touched": touched, **m, "first": stamps[1], "period": period})
        finally:
            proxy.sync = real_sync
        return results


def fmt_ms(v: float) -> str:
    return f"{v * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--requests", type=int, default=30, help="requests per round, one wget each")
    ap.add_argument("--flips", type=int, default=5)
    ap.add_argument("--poll-ms", type=int, default=20, help="the client's pause between requests")
    args = ap.parse_args()
    import docker
    from kbox.runtime.images import ensure_busybox_image, ensure_node_image
    host = docker.from_env()
    ensure_busybox_image(host)
    ensure_node_image(host)
    host.close()
    started = time.monotonic()
    print(f"machine: {machine()}")
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())

    name = f"bsvc{uuid.uuid4().hex[:5]}"
    config = ClusterConfig.model_validate({"name": name, "runtime": "docker", "nodes": {"count": 2}})
    cluster = Cluster(config, serve_http=False)
    try:
        cluster.start(timeout=120)
        backend_node, client_node = sorted(cluster.nodes.agents)
        c = cluster.client
        c.create("pods", backend(backend_node), "default")
        c.create("pods", client_pod(client_node), "default")
        svc = c.create("services", SERVICE, "default")
        bench = Bench(cluster, backend_node, client_node)
        wait(lambda: is_pod_ready(c.get("pods", "backend", "default")), 60, "the backend Ready")
        wait(lambda: (c.get("pods", "client", "default").get("status") or {}).get("phase") == "Running",
             60, "the client Running")
        pod_ip = c.get("pods", "backend", "default")["status"]["podIP"]
        cluster_ip = svc["spec"]["clusterIP"]
        targets = {"pod IP": f"http://{pod_ip}:{PORT}/", "cluster IP": f"http://{cluster_ip}:80/",
                   "DNS name": "http://backend/"}
        wait(lambda: "ok" in bench.sh("client", f"wget -qO- {targets['cluster IP']} 2>&1 || true"), 10,
             "the cluster IP answering")
        bench.sh("client", f"wget -qO- {targets['DNS name']}")        # the name resolves too
        print(f"backend on {backend_node} ({pod_ip}), client pod on {client_node}; "
              f"Service backend {cluster_ip}:80 -> {PORT}, that pod only")

        # 1. latency
        for one_process, what in ((False, "one wget process per request (what a user times with wget; "
                                          "wget's process start is in every figure)"),
                                  (True, "one wget process fetching the URL again and again (a new "
                                         "connection and the request alone, no process start)")):
            # a request without a process start is ~3x quicker: 3x the requests and rounds
            n, rounds = (args.requests * 3, args.rounds * 3) if one_process else (args.requests, args.rounds)
            per = bench.latency(targets, rounds, n, one_process)
            print(f"request latency, {what}: {rounds} rounds x {n} requests per target, "
                  f"interleaved; per request: mean / p50 of the round means / best round")
            for label, v in per.items():
                print(f"  {label:10s} {fmt_ms(statistics.mean(v))} / {fmt_ms(percentile(v, 50))} / "
                      f"{fmt_ms(min(v))}")
            # each round's cluster IP time against the same round's pod IP time (they ran back to
            # back), the median of those; the ratio of the means as well
            paired = statistics.median(b / a for a, b in zip(per["pod IP"], per["cluster IP"]))
            of_means = statistics.mean(per["cluster IP"]) / statistics.mean(per["pod IP"])
            dns = statistics.median(b / a for a, b in zip(per["pod IP"], per["DNS name"]))
            print(f"  cluster IP / pod IP: {paired:.3f} (median of the rounds' ratios; {of_means:.3f} of the "
                  f"means) (goal <= 1.2: {'met' if paired <= 1.2 else 'NOT met'}); DNS name / pod IP: "
                  f"{dns:.3f} (the short name: a query per request to the "
                  f"cluster DNS through 10.96.0.10, not in the goal)")

        # 2. Ready -> traffic
        flips = bench.ready_to_traffic(targets["cluster IP"], args.flips, args.poll_ms)
        print(f"Ready -> traffic, {len(flips)} flips (not ready -> ready; host clock, the client "
              f"sends a new request to the cluster IP every ~{args.poll_ms} ms inside its pod, "
              f"the poll period column is what it managed):")
        print("  touch->Ready  Ready->Endpoints  Endpoints->node synced  synced->first answer  "
              "Ready->first answer  poll period")
        totals = []
        for f in flips:
            total = f["first"] - f["ready"]
            totals.append(total)
            print(f"  {(f['ready'] - f['touched']) * 1000:9.0f} ms  {(f['endpoints'] - f['ready']) * 1000:13.0f} ms"
                  f"  {(f['rules'] - f['endpoints']) * 1000:19.0f} ms  {(f['first'] - f['rules']) * 1000:17.0f} ms"
                  f"  {total * 1000:16.0f} ms  {f['period'] * 1000:8.1f} ms")
        print("  (touch->Ready: the readiness probe's period, 1 s; node synced: the client node's restore "
              "exec returned to kbox, which can come after the rules already answer)")
        med = statistics.median(totals)
        print(f"  Ready -> first answer: median {med * 1000:.0f} ms, worst {max(totals) * 1000:.0f} ms "
              f"(goal < 1 s: {'met' if max(totals) < 1 else 'NOT met'})")
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg()
              + f"; run took {time.monotonic() - started:.0f}s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
