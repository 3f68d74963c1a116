"""The dashboard's performance goals (issue 4), measured in this one process:

1. refresh: one refresh of the pods view with 5,000 pods on 50 nodes, held by a real
   in-process API server: list every resource through the client, keyed diff, table
   update (`KboxApp.refresh_now()`). First fill (every row new, a fresh app each run),
   unchanged re-list (steady state: no row written) and a re-list after 500 pods changed
   status. Median and p95 over several runs. Goal < 100 ms.
2. keys: key-to-action latency while a deployment scales 0 -> 1,000 pods on a live sim
   cluster (real clock, the dashboard's watch feeds and coalesced apply cycles running).
   A key is posted as the terminal driver would post it and timed until the table's cursor
   action runs (`pilot.press` also waits for the whole app to go idle, which a busy app
   never is). Goal < 100 ms.
3. scheduler: bench_scheduler's run (10,000 pending pods onto 1,000 Ready nodes, memory
   store, in-process client, shared informers) with and without the dashboard open on the
   same client in the same process (headless `App.run_test()` on its own thread, feeds and
   timers running). Each run is a fresh process; runs go without/with in ABBA order.
   Goal: < 10 % throughput lost.

The refresh and scheduler parts run twice by default: with kbox.gcpolicy ticking, as every
process that opens a dashboard runs it (`kbox up`: the cluster's housekeeping thread;
`kbox ui`: its own), and without it, for comparison (full collections then rescan the
store and the app's rows at moments no refresh chooses).

Prints figures, asserts nothing (the pilot tests in tests/test_tui_perf.py assert).

    python bench/bench_dashboard.py [--only refresh keys scheduler] [--runs 7] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from _common import cpu_by_thread, machine, percentile, rss_mib, thread_cpu
from bench_scheduler import node as sched_node
from bench_scheduler import pod as sched_pod

from textual import events

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import RealClock, iso_time
from kbox.controllers.informer import InformerFactory
from kbox.gcpolicy import ticking
from kbox.scheduler import Scheduler
from kbox.store.memory import MemoryStore
from kbox.tui.app import KboxApp

GOAL_MS = 100.0


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:6.1f} ms, p95 {percentile(values, 95) * 1000:6.1f} ms, "
            f"min {min(values) * 1000:6.1f} ms (n={len(values)})")


# ---- 1. refresh of 5,000 pods -------------------------------------------------------------

def _api() -> tuple[ApiServer, InProcessClient]:
    clock = RealClock()
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(1))
    api.bootstrap()
    return api, InProcessClient(api)


def _fill(client: InProcessClient, pods: int, nodes: int) -> list[tuple[str, str]]:
    now = iso_time(time.time())
    for j in range(nodes):
        client.create("nodes", sched_node(f"node-{j:03d}", now))
    names = []
    for i in range(pods):
        ns = f"ns{i % 7}"
        if i < 7:
            client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        p = sched_pod(f"web-{i:05d}", "rs-web-uid")
        p["metadata"]["namespace"] = ns
        p["spec"]["nodeName"] = f"node-{i % nodes:03d}"
        created = client.create("pods", p, ns)
        created["status"] = {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250}",
                             "startTime": now,
                             "conditions": [{"type": "Ready", "status": "True"}],
                             "containerStatuses": [{"name": "app", "image": "busybox", "ready": True,
                                                    "restartCount": 0, "started": True,
                                                    "state": {"running": {"startedAt": now}}}]}
        client.update_status("pods", created, ns)
        names.append((ns, p["metadata"]["name"]))
    return names


_CHANGES = itertools.count(1)


def _refresh(app: KboxApp, into: dict[str, list[float]], what: str) -> None:
    """`app.refresh_now()`, timed in its two parts: the lists and the diff + table update."""
    t0 = time.perf_counter()
    app.data.sync()
    t1 = time.perf_counter()
    app.apply_changes()
    t2 = time.perf_counter()
    into.setdefault(what, []).append(t2 - t0)
    into.setdefault(what + " / list", []).append(t1 - t0)
    into.setdefault(what + " / diff+table", []).append(t2 - t1)


def _refresh_runs(client: object, names: list[tuple[str, str]], runs: int, pods: int) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {}
    real: InProcessClient = getattr(client, "_client", client)  # type: ignore[assignment]

    async def one(run: int) -> None:
        app = KboxApp(client, meta={"name": "bench", "runtime": "sim"}, live=False, ticks=False,
                      cursor_blink=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            _refresh(app, got, "first fill")
            t = time.perf_counter()
            await pilot.pause()
            got.setdefault("repaint after it", []).append(time.perf_counter() - t)
            got.setdefault("rows", []).append(app.main_view.table.row_count)
            for _ in range(3):
                _refresh(app, got, "unchanged re-list")
                await pilot.pause()
            bump = next(_CHANGES)
            for i in range(run % 10, pods, 10):      # 500 pods change state (a new restart count)
                ns, name = names[i]
                real.patch("pods", name, {"status": {"containerStatuses": [{
                    "name": "app", "image": "busybox", "ready": False, "restartCount": bump,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}, "merge", ns,
                    subresource="status")
            _refresh(app, got, "500 changed")
            await pilot.pause()

    asyncio.run(one(0))          # warm-up: imports, caches; not counted
    got.clear()
    for run in range(runs):
        asyncio.run(one(run + 1))
    return got


def bench_refresh(runs: int, pods: int = 5000, nodes: int = 50, gc_policy: bool = False) -> None:
    if gc_policy:
        # the cluster behind `kbox up` runs the same policy on its housekeeping thread
        with ticking():
            print("  (with the GC policy ticking, as `kbox up` and `kbox ui` run it)", flush=True)
            return bench_refresh(runs, pods, nodes)
    api, client = _api()
    t0 = time.perf_counter()
    names = _fill(client, pods, nodes)
    print(f"refresh: {pods:,} pods on {nodes} nodes in a memory store (setup {time.perf_counter() - t0:.1f}s); "
          f"a fresh app per run: first fill, then 3 unchanged re-lists, then 500 pods changed", flush=True)
    # the dashboard lists read-only: an in-process client hands out the watch cache's own
    # objects instead of a private copy of each
    for label, c in (("InProcessClient, read-only lists", client),):
        got = _refresh_runs(c, names, runs, pods)
        print(f"  {label}: {int(got.pop('rows')[-1]):,} rows")
        for what in ("first fill", "unchanged re-list", "500 changed"):
            print(f"    {what + ':':<19} {ms(got[what])}")
            print(f"      {'list':<17} {ms(got[what + ' / list'])}")
            print(f"      {'diff+table':<17} {ms(got[what + ' / diff+table'])}")
        print(f"    {'repaint after the first fill (not part of the refresh):':<19} {ms(got['repaint after it'])}")
        worst = max(percentile(got[w], 95) for w in ("first fill", "unchanged re-list", "500 changed")) * 1000
        mine = max(percentile(got[w + " / diff+table"], 95)
                   for w in ("first fill", "unchanged re-list", "500 changed")) * 1000
        print(f"    goal < {GOAL_MS:.0f} ms: {'met' if worst < GOAL_MS else 'NOT met'} (worst p95 {worst:.1f} ms; "
              f"the dashboard's own diff+table worst p95 {mine:.1f} ms)", flush=True)
    api.stop()


# ---- 2. keys while a deployment scales 0 -> 1,000 -----------------------------------------

def bench_keys(replicas: int = 1000, nodes: int = 10) -> None:
    from kbox.cluster import Cluster
    from kbox.config import ClusterConfig
    cfg = ClusterConfig.model_validate({
        "name": "bench", "runtime": "sim", "seed": 1,
        "nodes": {"count": nodes, "cpu": "64", "memory": "256Gi", "pods": 110}})
    cluster = Cluster(cfg, serve_http=False, secure=False).start()
    latencies: list[float] = []
    took = 0.0
    running = 0

    async def run() -> None:
        nonlocal took, running
        app = KboxApp(cluster.client, ops=cluster, clock=cluster.clock, cluster=cluster,
                      meta={"name": "bench", "runtime": "sim"}, cursor_blink=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            cluster.client.create("deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "big"}},
                         "template": {"metadata": {"labels": {"app": "big"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
                "default")
            await pilot.pause(0.3)
            table = app.main_view.table
            acted: list[float] = []
            real = table.action_cursor
            table.action_cursor = lambda delta: acted.append(time.perf_counter()) or real(delta)
            started = time.perf_counter()
            cluster.client.scale("deployments", "big", replicas, "default")
            key = "down"
            while time.perf_counter() - started < 120:
                n = len(acted)
                t = time.perf_counter()
                app.post_message(events.Key(key, None))
                while len(acted) == n and time.perf_counter() - t < 5:
                    await asyncio.sleep(0.001)
                latencies.append(acted[-1] - t if len(acted) > n else 5.0)
                key = "up" if key == "down" else "down"
                running = table.column_texts(3).count("Running")
                if running >= replicas:
                    break
                await asyncio.sleep(0.02)
            took = time.perf_counter() - started

    try:
        asyncio.run(run())
    finally:
        cluster.stop()
    print(f"keys: a deployment scales 0 -> {replicas:,} on {nodes} sim nodes (real clock, feeds live); "
          f"{running:,} Running in the table after {took:.1f}s")
    print(f"  {len(latencies)} key presses: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {percentile(latencies, 95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    p95 = percentile(latencies, 95) * 1000
    print(f"  goal < {GOAL_MS:.0f} ms: {'met' if p95 < GOAL_MS else 'NOT met'} (p95)", flush=True)


# ---- 3. the scheduler with and without the dashboard -----------------------------------------

class OpenDashboard:
    """The dashboard over `client`, headless, on its own thread with its own event loop:
    feeds (list + watch threads), coalesced apply cycles and timers run as in `kbox up`."""

    def __init__(self, client: InProcessClient, live: bool = True) -> None:
        self.client = client
        self.live = live
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.app: KboxApp | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-dashboard")

    def _run(self) -> None:
        async def main() -> None:
            self.app = app = KboxApp(self.client, meta={"name": "bench", "runtime": "sim"},
                                     cursor_blink=False, live=self.live)
            async with app.run_test(size=(160, 50)) as pilot:
                if not self.live:
                    app.refresh_now()
                while not all(f.synced.is_set() for f in app.data.feeds.values()) or app.applied == 0:
                    await pilot.pause(0.05)
                self.ready.set()
                while not self.stop.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(main())

    def __enter__(self) -> "OpenDashboard":
        self.thread.start()
        if not self.ready.wait(120):
            raise RuntimeError("the dashboard did not sync")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


MODES = {"without": "without dashboard", "with": "with    dashboard",
         "idle": "dashboard open, feeds stopped after its first list",
         "feeds": "the dashboard's feeds only (list + watch threads, no app)"}


def schedule(num_nodes: int, num_pods: int, mode: str, timeout: float = 300,
             gc_policy: bool = False) -> tuple[float, float]:
    """bench_scheduler's measurement, without or with (a part of) the dashboard: (pods/s, CPU-s)."""
    if gc_policy:
        with ticking():
            return schedule(num_nodes, num_pods, mode, timeout)
    clock = RealClock()
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(1))
    api.bootstrap()
    client = InProcessClient(api)
    now = iso_time(clock.now())
    for i in range(num_nodes):
        client.create("nodes", sched_node(f"node-{i:05d}", now))
    for i in range(num_pods):
        client.create("pods", sched_pod(f"bench-{i:06d}", "rs-bench-uid"), "default")
    informers = InformerFactory(client)
    sched = Scheduler(client, informers, clock, rng=random.Random(42))
    informers.start()
    informers.wait_for_sync(60)
    deadline = time.monotonic() + 60
    while (len(sched.queue) < num_pods or len(sched._node_list) < num_nodes) and time.monotonic() < deadline:
        time.sleep(0.01)
    board = OpenDashboard(client, live=mode != "idle") if mode in ("with", "idle") else None
    feeds = None
    if mode == "feeds":
        from kbox.tui.data import ClusterData
        feeds = ClusterData(client, on_change=lambda: None)
        feeds.start()
        while not all(f.synced.is_set() for f in feeds.feeds.values()):
            time.sleep(0.05)
        # nothing drains them here: keep the changed-key sets from growing without bound
        threading.Thread(target=lambda: [feeds.drain() or time.sleep(0.1) for _ in iter(int, 1)],
                         daemon=True).start()
    applied = 0
    try:
        if board is not None:
            board.__enter__()
            time.sleep(1.0)          # let the first fill's repaint pass
            applied = board.app.applied if board.app else 0
        t1 = time.perf_counter()
        c1 = time.process_time()
        threads_before = thread_cpu()
        sched.start()
        deadline = time.monotonic() + timeout
        while sched.scheduled < num_pods and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t1
        cpu = time.process_time() - c1
        by_thread = cpu_by_thread(threads_before, thread_cpu())
        if board is not None and board.app is not None:
            applied = board.app.applied - applied
    finally:
        if board is not None:
            board.__exit__()
        if feeds is not None:
            feeds.stop()
        sched.stop()
        informers.stop()
        sched.recorder.flush(30)
        api.stop()
    rate = sched.scheduled / elapsed if elapsed > 0 else 0.0
    extra = f"; the dashboard ran {applied} apply cycles meanwhile" if mode == "with" else ""
    print(f"  {MODES[mode]}: {sched.scheduled:,} bound in {elapsed:.2f}s = "
          f"{rate:,.0f} pods/s; {cpu:.2f} CPU-s for the process{extra}; "
          f"load {os.getloadavg()[0]:.1f}; RSS {rss_mib():.0f} MiB\n    CPU by thread: {by_thread}", flush=True)
    return rate, cpu


def schedule_in_subprocess(num_nodes: int, num_pods: int, mode: str, gc_policy: bool) -> float:
    """schedule() in a fresh Python process (it prints its own line); its pods/s."""
    out = subprocess.run([sys.executable, __file__, "--one-run", mode, "--nodes", str(num_nodes),
                          "--pods", str(num_pods), "--gc-policy", "on" if gc_policy else "off"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    lines = out.strip().splitlines()
    print("\n".join(lines[:-1]), flush=True)
    return float(lines[-1])


def bench_scheduler(rounds: int, num_nodes: int = 1000, num_pods: int = 10000,
                    parts: bool = False, gc_policy: bool = False) -> None:
    how = ("with the cluster's GC policy ticking (as in `kbox up`)" if gc_policy
           else "as bench_scheduler runs (no GC policy)")
    print(f"scheduler: {num_pods:,} pending pods onto {num_nodes:,} nodes, without / with the dashboard "
          f"open on the same client ({rounds} rounds, ABBA, a fresh process per run), {how}", flush=True)
    without: list[float] = []
    with_: list[float] = []
    for r in range(rounds):
        # each run in a fresh process (a process that has run one grows its heap, and every
        # later run in it pays more for memory), in ABBA order
        for mode in ("without", "with") if r % 2 == 0 else ("with", "without"):
            rate = schedule_in_subprocess(num_nodes, num_pods, mode, gc_policy)
            (without if mode == "without" else with_).append(rate)
    a, b = statistics.median(without), statistics.median(with_)
    loss = (a - b) / a * 100 if a else float("nan")
    print(f"  median without {a:,.0f} pods/s, with {b:,.0f} pods/s: {loss:+.1f} % lost "
          f"(best of each: {max(without):,.0f} / {max(with_):,.0f} pods/s)")
    print(f"  goal < 10 % lost: {'met' if loss < 10 else 'NOT met'}", flush=True)
    if parts:        # where the loss comes from
        for mode in ("idle", "feeds"):
            rate = schedule_in_subprocess(num_nodes, num_pods, mode, gc_policy)
            print(f"    -> {(a - rate) / a * 100:+.1f} % against the median without", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=["refresh", "keys", "scheduler"],
                    default=["refresh", "keys", "scheduler"])
    ap.add_argument("--runs", type=int, default=5, help="refresh runs (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="scheduler rounds (each: without, then with)")
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--gc-policy", choices=["off", "on", "both"], default="both",
                    help="run the refresh and scheduler parts without / with kbox.gcpolicy ticking, or both")
    ap.add_argument("--parts", action="store_true",
                    help="also run the scheduler with only the idle app, and with only the feeds")
    ap.add_argument("--one-run", choices=list(MODES), help=argparse.SUPPRESS)
    ap.add_argument("--nodes", type=int, default=1000, help=argparse.SUPPRESS)
    ap.add_argument("--pods", type=int, default=10000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_run:          # one scheduler run for schedule_in_subprocess: its rate last
        rate, _ = schedule(args.nodes, args.pods, args.one_run, gc_policy=args.gc_policy == "on")
        print(rate)
        return
    print(f"machine: {machine()}", flush=True)
    policies = {"off": [False], "on": [True], "both": [False, True]}[args.gc_policy]
    if "refresh" in args.only:
        for policy in policies:
            bench_refresh(args.runs, gc_policy=policy)
    if "keys" in args.only:
        bench_keys(args.replicas)
    if "scheduler" in args.only:
        for policy in policies:
            bench_scheduler(args.rounds, parts=args.parts, gc_policy=policy)


if __name__ == "__main__":
    main()
