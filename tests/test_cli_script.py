"""The headless script runner: transcript, `expect`, comments, the first failing line
stops the run naming its number, paths relative to the script; and every demo in
samples/demos runs green against a freshly booted in-process cluster."""

from __future__ import annotations

import importlib
import io
import random
from pathlib import Path

import pytest

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.cli.registry import Context, execute
from kbox.cli.script import run_lines, run_script, script_runtime
from kbox.clock import FakeClock
from kbox.store.memory import MemoryStore

DEMOS = Path(__file__).parent.parent / "samples" / "demos"


@pytest.fixture
def ctx(tmp_path):
    clock = FakeClock()
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(5))
    api.bootstrap()
    c = Context(client=InProcessClient(api), out=io.StringIO(), err=io.StringIO(), clock=clock,
                base_dir=str(tmp_path))
    yield c
    api.stop()


def test_transcript_comments_and_expect(ctx):
    lines = ["# a comment", "", "kbox create configmap cfg --from-literal=a=1",
             "expect configmap/cfg created", "get cm   # trailing comment", "expect cfg"]
    assert run_lines(lines, ctx, "demo.kbox") == 0, ctx.err.getvalue()
    out = ctx.out.getvalue()
    assert "$ create configmap cfg --from-literal=a=1\nconfigmap/cfg created\n" in out
    assert "NAME   DATA   AGE\ncfg    1      0s\n" in out
    assert "a comment" not in out


def test_first_failing_line_stops_the_run(ctx):
    lines = ["create configmap one --from-literal=a=1", "", "get pod nope",
             "create configmap two --from-literal=a=1"]
    assert run_lines(lines, ctx, "demo.kbox") == 1
    err = ctx.err.getvalue()
    assert 'Error from server (NotFound): pods "nope" not found' in err
    assert "demo.kbox:3:" in err and "get pod nope" in err
    assert "configmap/two" not in ctx.out.getvalue()
    from kbox.api.errors import ApiError
    with pytest.raises(ApiError):
        ctx.client.get("configmaps", "two", "default")


def test_failed_expect_names_the_line(ctx):
    lines = ["create configmap one --from-literal=a=1", "expect something else"]
    assert run_lines(lines, ctx, "demo.kbox") == 1
    assert "demo.kbox:2:" in ctx.err.getvalue()
    assert "something else" in ctx.err.getvalue()


def test_unknown_command_in_a_script(ctx):
    assert run_lines(["gte pods"], ctx, "demo.kbox") == 1
    err = ctx.err.getvalue()
    assert 'unknown command "gte" for "kbox"' in err and "demo.kbox:1:" in err


def test_paths_are_relative_to_the_script(ctx, tmp_path):
    folder = tmp_path / "scripts"
    (folder / "manifests").mkdir(parents=True)
    (folder / "manifests" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-file}\n")
    script = folder / "demo.kbox"
    script.write_text("apply -f manifests/cm.yaml\nexpect configmap/from-file created\n")
    assert run_script(str(script), ctx) == 0, ctx.err.getvalue()


def test_sleep_line(ctx):
    assert run_lines(["sleep 10ms", "sleep 0.01"], ctx, "demo.kbox") == 0


def _cluster_parts_missing() -> str | None:
    for mod in ("kbox.api.admission", "kbox.controllers.manager", "kbox.scheduler", "kbox.node.pool",
                "kbox.runtime.sim"):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            return f"Cluster.start() cannot run yet: {mod} is missing ({e})"
    return None


FAST_DEMOS = ["rollout", "scale", "self-healing", "rolling-update-undo", "unschedulable",
              "cordon-drain", "crashloop", "job"]


def _run_demo(name: str) -> tuple[int, str, str]:
    missing = _cluster_parts_missing()
    if missing:
        pytest.xfail(missing)
    c = Context(client=None, out=io.StringIO(), err=io.StringIO())
    rc = execute(c, ["run", str(DEMOS / f"{name}.kbox"), "--runtime", "sim", "--seed", "1"])
    return rc, c.out.getvalue(), c.err.getvalue()


@pytest.mark.parametrize("name", FAST_DEMOS)
def test_demo_runs_green(name):
    rc, out, err = _run_demo(name)
    assert rc == 0, out[-3000:] + err
    assert out.startswith("$ ")


@pytest.mark.slow
def test_node_failure_demo():
    rc, out, err = _run_demo("node-failure")
    assert rc == 0, out[-3000:] + err
    assert "NotReady" in out and "Terminating" in out


# demos that need real nodes (their `# runtime: docker` line); each has a docker test
# (services: test_docker_demo_services.py)
DOCKER_DEMOS = sorted(p.stem for p in DEMOS.glob("*.kbox")
                      if script_runtime(p.read_text().splitlines()) == "docker")


def test_a_script_names_its_runtime_in_its_opening_comments():
    assert DOCKER_DEMOS == ["services"]
    assert script_runtime(["# a demo", "#  Runtime: docker", "get pods"]) == "docker"
    assert script_runtime(["", "# runtime: sim"]) == "sim"
    # only the opening comments count, and only known runtimes
    assert script_runtime(["get pods", "# runtime: docker"]) is None
    assert script_runtime(["# runtime: podman"]) is None


def test_every_demo_is_tested():
    names = {p.stem for p in DEMOS.glob("*.kbox")}
    assert names == set(FAST_DEMOS) | {"node-failure"} | set(DOCKER_DEMOS)


@pytest.mark.parametrize("name", DOCKER_DEMOS)
def test_docker_demo_on_sim_nodes_stops_at_once_saying_why(name):
    """Its first lines show the nodes and expect docker://, so a sim run stops there."""
    rc, out, err = _run_demo(name)
    assert rc == 1
    assert "expected the output of the previous command to contain 'docker://'" in err
    assert "apply -f" not in out
