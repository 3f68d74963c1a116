"""Golden tests of the CLI's output: tables for each kind (plain and -o wide),
yaml/json/name/jsonpath/custom-columns, describe and events, on a fixed set of
objects written straight into an ApiServer on a FakeClock (no controllers), so
every age and every column is deterministic.

To accept new output after a deliberate change: KBOX_UPDATE_GOLDEN=1 pytest tests/test_cli_golden.py
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
import yaml

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.cli.registry import Context, execute
from kbox.clock import FakeClock
from kbox.store.memory import MemoryStore

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_700_000_000.0            # 2023-11-14T22:13:20Z: "now" in every golden file


def _resolve_uids(api: ApiServer, value, namespace: str):
    """Replace "@uid:RESOURCE/NAME" strings (anywhere in the object) with that object's uid."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and v.startswith("@uid:"):
                res, name = v[5:].split("/")
                value[k] = api.get(res, name, namespace)["metadata"]["uid"]
            else:
                _resolve_uids(api, v, namespace)
    elif isinstance(value, list):
        for v in value:
            _resolve_uids(api, v, namespace)


def load_objects(api: ApiServer, clock: FakeClock, path: Path = GOLDEN / "objects.yaml") -> None:
    """Create the fixture objects, each `x-age` seconds before NOW."""
    docs = yaml.safe_load(path.read_text())
    docs.sort(key=lambda d: -d["x-age"])          # stable: file order within one age
    for doc in docs:
        age = doc.pop("x-age")
        target = NOW - age
        if clock.now() < target:
            clock.advance(target - clock.now())
        status = doc.pop("status", None) if doc["kind"] != "Event" else None
        _resolve_uids(api, doc, doc["metadata"].get("namespace") or "default")
        from kbox.api.resources import for_kind
        info = for_kind(doc["kind"], doc["apiVersion"])
        obj = api.create(info.plural, doc, doc["metadata"].get("namespace"))
        if status is not None:
            obj["status"] = status
            api.update(info.plural, obj, obj["metadata"].get("namespace"), subresource="status")
    clock.advance(NOW - clock.now())


@pytest.fixture
def golden_ctx():
    clock = FakeClock(start=NOW - 100_000)
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(7))
    api.bootstrap()
    load_objects(api, clock)
    ctx = Context(client=InProcessClient(api), out=io.StringIO(), err=io.StringIO(), clock=clock,
                  base_dir=str(Path(__file__).parent.parent / "samples"))
    yield ctx
    api.stop()


def transcript(ctx: Context, lines: list[str]) -> str:
    """Run each line; record `$ line`, stdout, stderr and a non-zero exit code."""
    parts = []
    for line in lines:
        ctx.out, ctx.err = io.StringIO(), io.StringIO()
        rc = execute(ctx, line)
        parts.append(f"$ {line}\n{ctx.out.getvalue()}{ctx.err.getvalue()}"
                     + (f"[exit {rc}]\n" if rc else ""))
    return "\n".join(parts)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("KBOX_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_text(text)
        return
    assert text == path.read_text(), f"output differs from {path} (KBOX_UPDATE_GOLDEN=1 to accept)"


TABLES = [
    "get nodes",
    "get nodes -o wide",
    "get pods",
    "get pods -o wide",
    "get pods -A",
    "get pods -n shop --show-labels",
    "get pods -l app=web",
    "get pods --field-selector metadata.name=too-big",
    "get pods --no-headers -l app=web",
    "get deploy",
    "get deployments.apps -o wide",
    "get rs",
    "get rs -o wide",
    "get ds",
    "get ds -o wide",
    "get jobs",
    "get jobs -o wide",
    "get svc",
    "get svc -o wide",
    "get ns",
    "get cm",
    "get secrets",
    "get events",
    "get deploy,rs",
    "get all",
    "get po/too-big deploy/web",
    "get deploy web",
    "get pods missing",
    "get foos",
    "get pods -n nowhere",
]

FORMATS = [
    "get deploy web -o name",
    "get pods -l app=web -o name",
    "get cm web-config -o yaml",
    "get cm web-config -o json",
    "get secret web-token -o jsonpath={.data.token}",
    "get deploy web -o jsonpath='{.spec.template.spec.containers[0].image}'",
    """get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}'""",
    "get pods -l app=web -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP",
    "get pods --sort-by=.metadata.creationTimestamp -o name",
    "get cm -o yaml",
    "get deploy web -o bogus",
]

DESCRIBE = [
    "describe pod too-big",
    "describe pod web-5d9c7b8f6-abcde",
    "describe pod web-5d9c7b8f6-fghij",
    "describe deploy web",
    "describe rs web-5d9c7b8f6",
    "describe node kbox-worker",
    "describe node kbox-worker2",
    "describe svc web",
    "describe ns shop",
    "describe job compute",
    "describe ds node-agent",
    "describe cm web-config",
    "describe pod nope",
]

EVENTS = [
    "events",
    "events --for pod/too-big",
    "events --types=Warning",
    "events -A",
    "events -n shop",
    "api-resources",
]


@pytest.mark.parametrize("name,lines", [("get-tables.txt", TABLES), ("get-formats.txt", FORMATS),
                                        ("describe.txt", DESCRIBE), ("events.txt", EVENTS)])
def test_golden(golden_ctx, name, lines):
    check_golden(name, transcript(golden_ctx, lines))


def test_ages_follow_the_clock(golden_ctx):
    golden_ctx.clock.advance(3 * 86400)
    golden_ctx.out = io.StringIO()
    assert execute(golden_ctx, "get ns shop --no-headers") == 0
    assert golden_ctx.out.getvalue().split() == ["shop", "Active", "3d2h"]


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (192, "3m12s"), (600, "10m"),
    (10799, "179m"), (10800, "3h"), (4 * 3600 + 1800, "4h30m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (2 * 86400 + 3 * 3600, "2d3h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
])
def test_human_duration(seconds, text):
    from kbox.api.tables import human_duration
    assert human_duration(seconds) == text
