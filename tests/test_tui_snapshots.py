"""SVG snapshots of every demo in samples/demos running inside the dashboard (issue 4, item 6).

Each demo script runs against a sim cluster as `kbox up --script FILE` runs it (the
script's transcript in the output pane, the cluster in every other pane), and
pytest-textual-snapshot's `snap_compare` takes a picture at named stages of the demo
(after the first apply has settled, mid-way, at the end) at 80x24 and 160x50. The
pictures live in tests/__snapshots__/test_tui_snapshots/; after a deliberate change to the
dashboard, review the report and refresh them with
`python -m pytest tests/test_tui_snapshots.py --snapshot-update`.

Deterministic from run to run, and from process to process (Python's string hashing is
salted per process), because nothing races the shot:

- the cluster runs on a FakeClock with seeded names (ClusterConfig seed), and nothing in
  it runs on a thread: `DemoCluster` boots it with the controllers', scheduler's and node
  pool's workers and the informers' watch threads left unstarted, then drives it itself
  as kbox/node/testing.py's NodeEnv drives a node pool: it pumps every pending watch event
  to the informers in the API's write order (the memory store hands each write to the
  watchers before the write returns), runs every work queue until idle, and moves fake
  time in 0.1 s steps (kubelet heartbeats, back-offs and grace periods fire at their
  clock times). Event recorders write synchronously;
- informer index lookups are sorted by key: the index keeps sets, whose order follows the
  per-process string hash, and the ReplicaSet controller breaks ranking ties (equal
  creation seconds) by that order;
- the script runs on the test thread: its `sleep`, and the polls of `wait`, `rollout
  status`, `delete` and `drain` (kbox.cli waits on `time.sleep`/`time.monotonic` or on the
  context's clock), move the fake time instead of waiting;
- each snapshot is a fresh KboxApp over the same cluster with live=False (no feed
  threads), ticks=False (no timers), no cursor blink and no animations, filled by its
  synchronous `refresh_now()`; ages and the activity pane's times come from the fake
  clock; the dashboard shows notes in its hint line, never as toasts.

No hook in kbox/tui was needed: KboxApp already takes live/ticks/cursor_blink and a clock.
The snapshot tests live in this module of their own: a test elsewhere that calls
asyncio.run() can break later snap_compare calls (Textual #5788).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from rich.text import Text  # noqa: E402

from kbox.cli.registry import Context  # noqa: E402
from kbox.cli.script import run_lines, script_runtime  # noqa: E402
from kbox.clock import Clock, FakeClock  # noqa: E402
from kbox.cluster import Cluster  # noqa: E402
from kbox.config import ClusterConfig  # noqa: E402
from kbox.controllers.events import EventRecorder  # noqa: E402
from kbox.controllers.informer import Informer, InformerFactory  # noqa: E402
from kbox.controllers.manager import ControllerManager  # noqa: E402
from kbox.node.pool import NodePool  # noqa: E402
from kbox.scheduler import Scheduler  # noqa: E402
from kbox.tui.app import KboxApp, ScriptDone  # noqa: E402

ROOT = Path(__file__).parent.parent
DEMOS = ROOT / "samples" / "demos"
SIZES = {"80x24": (80, 24), "160x50": (160, 50)}

# Per demo: (stage, the script line after which the picture is taken (its `expect` lines
# included), the dashboard view to show). None: the end of the script.
STAGES: dict[str, list[tuple[str, str | None, str | None]]] = {
    "rollout": [("v1-ready", "get pods -l app=web -o wide", None),
                ("v2-rolled-tree", None, ":tree web")],
    "scale": [("six", "get pods -l app=web -o wide", None),
              ("two", None, None)],
    "self-healing": [("running", "get pods -l app=web", None),
                     ("replaced", None, None)],
    "rolling-update-undo": [("v2", "rollout history deploy/web", None),
                            ("stalled", "get deploy web -o wide", ":tree web"),
                            ("undone", None, None)],
    "unschedulable": [("pending", "describe pod too-big", None),
                      ("placed", None, None)],
    "cordon-drain": [("cordoned", "get nodes", None),
                     ("drained", "get pods -o wide", None),
                     ("uncordoned", None, ":nodes")],
    "crashloop": [("created", "apply -f ../crashloop.yaml", None),
                  ("backoff", None, None)],
    "job": [("started", "apply -f ../job.yaml", None),
            ("complete", None, ":jobs")],
    "node-failure": [("six", "get pods -l app=web -o wide", None),
                     ("notready", "get pods -l app=web -o wide", None),
                     ("replaced", None, None)],
}


# ---- a cluster nothing runs in but the test thread ---------------------------------------------

class DemoCluster:
    """A sim cluster on a FakeClock, driven synchronously (see the module docstring)."""

    STEP = 0.1

    def __init__(self, seed: int = 1) -> None:
        self.clock = FakeClock()
        config = ClusterConfig.model_validate({"name": "kbox", "runtime": "sim", "seed": seed})
        with _unthreaded():
            self.cluster = Cluster(config, clock=self.clock, serve_http=False,
                                   secure=False).start(wait_ready=False)
        self.client = self.cluster.client
        self._streams: dict[int, tuple[Informer, Any]] = {}
        self.settle()

    # -- watch events, in write order
    def _informers(self) -> list[Informer]:
        return list(self.cluster.informers._informers.values())

    def _open(self, inf: Informer) -> None:
        old = self._streams.pop(id(inf), None)
        if old is not None:
            old[1].close()
        if "by_index" not in inf.__dict__:
            inf.by_index = _sorted_index(inf)  # type: ignore[method-assign]
        inf._relist()
        stream = self.client.watch(inf.resource, inf.namespace, label_selector=inf.label_selector,
                                   field_selector=inf.field_selector,
                                   resource_version=inf.last_resource_version,
                                   allow_bookmarks=True, read_only=True)
        self._streams[id(inf)] = (inf, stream)

    def pump(self) -> int:
        """Hand every pending watch event to its informer (and so to the handlers that fill
        the work queues), ordered by resourceVersion across informers."""
        delivered = 0
        while True:
            for inf in self._informers():
                if id(inf) not in self._streams:
                    self._open(inf)
            pending = []
            for i, (inf, stream) in enumerate(list(self._streams.values())):
                for etype, obj in stream.next_batch(0):
                    rv = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
                    pending.append((rv, i, etype, obj, inf))
            if not pending:
                return delivered
            pending.sort(key=lambda p: (p[0], p[1]))
            for rv, _, etype, obj, inf in pending:
                if etype == "ERROR":
                    self._open(inf)
                    continue
                if etype != "BOOKMARK":
                    inf._apply(etype, obj)
                    delivered += 1
                if rv:
                    inf.last_resource_version = str(rv)

    # -- work and time
    def settle(self) -> None:
        """Run every component until nothing is left to do at the current fake time."""
        c = self.cluster
        assert c.controllers is not None and c.scheduler is not None and c.nodes is not None
        for _ in range(10000):
            n = self.pump() + c.controllers.run_until_idle()
            n += self.pump() + c.scheduler.run_until_idle()
            n += self.pump() + c.nodes.run_until_idle()
            if n == 0 and self.pump() == 0:
                return
        raise AssertionError("the demo cluster did not settle")

    def advance(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            self.clock.advance(min(self.STEP, end - self.clock.monotonic()))
            assert self.cluster.nodes is not None
            self.cluster.nodes.heartbeat_once()
            self.settle()

    def close(self) -> None:
        for _, stream in self._streams.values():
            stream.close()
        self.cluster.stop()


@contextlib.contextmanager
def _unthreaded() -> Iterator[None]:
    """While a Cluster starts: build every part, start no worker or watch thread, and make
    every event recorder write synchronously."""
    saved = [(cls, name, cls.__dict__[name]) for cls, name in (
        (ControllerManager, "start"), (Scheduler, "start"), (NodePool, "start"),
        (InformerFactory, "start"), (InformerFactory, "wait_for_sync"), (EventRecorder, "__init__"))]
    real_init = EventRecorder.__init__

    def synchronous_init(self: EventRecorder, *args: Any, **kw: Any) -> None:
        kw["synchronous"] = True
        real_init(self, *args, **kw)
    for cls, name, _ in saved[:-1]:
        setattr(cls, name, lambda self, *a, **kw: True)
    EventRecorder.__init__ = synchronous_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)


def _sorted_index(inf: Informer):
    def by_index(name: str, value: str) -> list[dict]:
        with inf._lock:
            keys = sorted(inf._indices.get(name, {}).get(value, ()))
            return [inf._items[k] for k in keys if k in inf._items]
    return by_index


class DrivingClock(Clock):
    """The script's clock: waiting on it moves the demo cluster's fake time instead."""

    def __init__(self, demo: DemoCluster) -> None:
        self.demo = demo

    def now(self) -> float:
        return self.demo.clock.now()

    def monotonic(self) -> float:
        return self.demo.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.demo.advance(max(seconds, 0.0))

    def wait(self, cond: Any, timeout: float | None) -> None:
        self.demo.advance(timeout or self.demo.STEP)

    def wait_event(self, event: Any, timeout: float | None) -> bool:
        if not event.is_set():
            self.demo.advance(timeout if timeout is not None else self.demo.STEP)
        return event.is_set()


class _FakeTime:
    """Stands in for the `time` module of kbox.cli's waiting code while a script runs."""

    def __init__(self, demo: DemoCluster) -> None:
        self.demo = demo

    def sleep(self, seconds: float) -> None:
        self.demo.advance(max(seconds, 0.0))

    def monotonic(self) -> float:
        return self.demo.clock.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _script_time(demo: DemoCluster) -> Iterator[None]:
    import kbox.cli.commands as commands
    import kbox.cli.script as script
    saved = [(m, m.time) for m in (commands, script)]
    fake = _FakeTime(demo)
    for m, _ in saved:
        m.time = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        for m, real in saved:
            m.time = real  # type: ignore[assignment]


class _Transcript:
    """The script's stdout and stderr as one ordered list of chunks (what the dashboard's
    script sink collects for its output pane)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, str]] = []

    def stream(self, which: str) -> Any:
        chunks = self.chunks

        class Stream:
            def write(self, text: str) -> int:
                chunks.append((which, text))
                return len(text)

            def flush(self) -> None:
                pass
        return Stream()


# ---- one demo, stage by stage ---------------------------------------------------------------

class DemoRun:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = DEMOS / f"{name}.kbox"
        self.lines = self.path.read_text().splitlines()
        self.demo = DemoCluster(seed=1)
        self.transcript = _Transcript()
        self.ctx = Context(client=self.demo.client, ops=self.demo.cluster,
                           out=self.transcript.stream("out"), err=self.transcript.stream("err"),
                           clock=DrivingClock(self.demo), base_dir=str(DEMOS), cluster=self.demo.cluster)
        self.pos = 0
        self.stage = -1
        self.finished = False

    def _stop_after(self, marker: str | None) -> int:
        if marker is None:
            return len(self.lines)
        for i in range(self.pos, len(self.lines)):
            if self.lines[i].strip() == marker:
                end = i + 1
                while end < len(self.lines) and self.lines[end].strip().startswith("expect "):
                    end += 1
                return end
        raise AssertionError(f"{self.name}: no line {marker!r} after line {self.pos}")

    def run_to(self, stage: int) -> None:
        while self.stage < stage:
            self.stage += 1
            marker = STAGES[self.name][self.stage][1]
            end = self._stop_after(marker)
            with _script_time(self.demo):
                rc = run_lines(self.lines[self.pos:end], self.ctx, f"{self.path.name} (from line {self.pos + 1})")
            text = "".join(t for _, t in self.transcript.chunks)
            assert rc == 0, f"{self.name} failed:\n{text[-3000:]}"
            self.pos = end
            self.finished = end >= len(self.lines)

    def app(self, view: str | None) -> tuple[KboxApp, Any]:
        app = KboxApp(self.demo.client, ops=self.demo.cluster, clock=self.demo.clock,
                      cluster=self.demo.cluster, meta={"name": "kbox", "runtime": "sim", "url": None},
                      live=False, ticks=False, cursor_blink=False, animations=False)
        chunks = list(self.transcript.chunks)
        shown = f"samples/demos/{self.path.name}"
        finished = self.finished

        async def before(pilot: Any) -> None:
            app.refresh_now()
            if view:
                app.run_line(view)
            # the output pane as `kbox up --script` fills it (KboxApp._start_script)
            app._show_output_pane()
            app.output.write(Text(f"# script {shown}", style="bold"))
            app.output.write_chunks(chunks, final=finished)
            if finished:
                app.post_message(ScriptDone(0))
            await pilot.pause()
            app.refresh_now()
            await pilot.pause()
            # the pane's scrollbars appear after the first layout: end on the last line
            app.output.scroll_end(animate=False, immediate=True)
            await pilot.pause()
        return app, before

    def close(self) -> None:
        self.demo.close()


_RUNS: dict[str, DemoRun] = {}


@pytest.fixture(scope="module")
def demo_runs() -> Iterator[dict[str, DemoRun]]:
    yield _RUNS
    for run in _RUNS.values():
        run.close()
    _RUNS.clear()


def _run_at(runs: dict[str, DemoRun], name: str, stage: int) -> DemoRun:
    """The demo advanced to `stage`; the parametrised tests come in stage order, so each
    demo runs once, from a fresh cluster, whatever the sizes."""
    run = runs.get(name)
    if run is None or run.stage > stage:
        if run is not None:
            run.close()
        run = runs[name] = DemoRun(name)
    run.run_to(stage)
    return run


CASES = [pytest.param(name, i, size, id=f"{name}-{i + 1}-{stage}-{size}")
         for name, stages in STAGES.items()
         for i, (stage, _, _) in enumerate(stages)
         for size in SIZES]


def test_every_demo_has_stages():
    """Every sim demo is snapshotted. A demo that needs real containers (`# runtime: docker`)
    cannot run on the fake clock with seeded names; tests/test_docker_demo_services.py runs
    the services demo in the dashboard on real nodes instead."""
    sim = {p.stem for p in DEMOS.glob("*.kbox")
           if script_runtime(p.read_text().splitlines()) != "docker"}
    assert sim == set(STAGES)


@pytest.mark.parametrize("name, stage, size", CASES)
def test_demo_snapshot(snap_compare, demo_runs, name, stage, size):
    run = _run_at(demo_runs, name, stage)
    app, before = run.app(STAGES[name][stage][2])
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)
