"""Issue 6's "done when", on real nodes: `kbox run samples/demos/services.kbox --runtime
docker` boots a Docker-in-Docker cluster, puts three busybox httpd replicas behind the
LoadBalancer Service `web`, and reaches it by name from a client pod (short name through
the search path, and the full name 30 times) and from the host (kbox curl to
127.0.0.1:8080, the load balancer, and 127.0.0.1:30080, the node port). Every web pod
serves its own name, so the transcript shows which replica answered each request: every
replica must answer from the pod and from the host. Requests go to 127.0.0.1 and to
kbox's own containers only."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import pytest

from kbox.cli.registry import Context, execute

try:
    from test_docker_cluster import _leftovers
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_docker_cluster import _leftovers

pytestmark = pytest.mark.docker

DEMO = Path(__file__).parent.parent / "samples" / "demos" / "services.kbox"


def _sections(transcript: str) -> dict[str, str]:
    """Each command of the transcript (the `$ ` line) -> the output that followed it."""
    out: dict[str, str] = {}
    parts = re.split(r"^\$ (.*)$", transcript, flags=re.M)
    for command, output in zip(parts[1::2], parts[2::2]):
        out[command] = out.get(command, "") + output
    return out


def _one(sections: dict[str, str], start: str) -> str:
    found = [out for cmd, out in sections.items() if cmd.startswith(start)]
    assert len(found) == 1, f"one command starting {start!r} expected: {list(sections)}"
    return found[0]


def _table_counts(output: str) -> dict[str, int]:
    """kbox curl --requests N's table: answer -> requests."""
    rows = [ln.split() for ln in output.strip().splitlines()]
    assert rows and rows[0][:1] == ["ANSWER"], output
    return {r[0]: int(r[1]) for r in rows[1:]}


def test_services_demo_reaches_every_replica_by_name_and_from_the_host():
    import docker
    name = f"kdemo{uuid.uuid4().hex[:5]}"
    ctx = Context(client=None, out=io.StringIO(), err=io.StringIO())
    host = docker.from_env()
    try:
        # no --runtime: the script's `# runtime: docker` line picks real nodes
        rc = execute(ctx, ["run", str(DEMO), "--name", name])
        transcript, err = ctx.out.getvalue(), ctx.err.getvalue()
        assert rc == 0, transcript[-4000:] + err
        # the script stopped its cluster: nothing of it is left on the host engine
        assert _leftovers(host, name) == []
    finally:
        from kbox.runtime.dind import remove_cluster
        remove_cluster(host, name)
        host.close()

    sections = _sections(transcript)
    pods = re.findall(r"^(web-\S+)\s+1/1\s+Running", _one(sections, "get pods"), flags=re.M)
    assert len(pods) == 3, _one(sections, "get pods")
    assert "127.0.0.1" in _one(sections, "get svc,ep")

    # from the client pod: the short name through resolv.conf's search path...
    short = _one(sections, "exec deploy/client -- timeout 5 wget -qO- http://web:8080").strip()
    assert short in pods, short
    # ...and the full name 30 times (busybox `uniq -c`: count, name), over every replica
    loop = _one(sections, "exec deploy/client -- sh -c")
    by_name = {n: int(c) for c, n in re.findall(r"^\s*(\d+) (\S+)$", loop, flags=re.M)}
    assert set(by_name) == set(pods), loop
    assert sum(by_name.values()) == 30

    # from the host: one request, then 30 to the load balancer and 30 to the node port
    assert sections["curl http://127.0.0.1:8080/"].strip() in pods
    for url in ("http://127.0.0.1:8080/", "http://127.0.0.1:30080/"):
        counts = _table_counts(_one(sections, f"curl {url} --requests 30"))
        assert set(counts) == set(pods), (url, counts)
        assert sum(counts.values()) == 30


def test_services_demo_runs_inside_the_dashboard():
    """`kbox up --runtime docker --script samples/demos/services.kbox`: the same demo inside
    the dashboard (issue 4: every demo runs in it). Its pods and Services show in the views."""
    import asyncio

    from kbox.cluster import Cluster
    from kbox.tui.launch import cluster_app

    try:
        from test_docker_cluster import _config
    except ImportError:  # pragma: no cover
        from tests.test_docker_cluster import _config

    cluster = Cluster(_config(f"kdash{uuid.uuid4().hex[:5]}", nodes=3)).start(timeout=120)
    try:
        app = cluster_app(cluster, script=str(DEMO))

        async def run() -> None:
            async with app.run_test(size=(160, 50)) as pilot:
                for _ in range(1800):                       # up to 3 minutes
                    if "# script finished" in app.output.text() or "# script failed" in app.output.text():
                        break
                    await pilot.pause(0.1)
                await pilot.pause(0.5)
                app.refresh_now()
                names = app.main_view.table.column_texts(1)
                assert sum(n.startswith("web-") for n in names) == 3, names
                await pilot.press("colon")
                app.prompt.value = ":svc"
                await pilot.press("enter")
                await pilot.pause(0.3)
                app.refresh_now()
                assert app.main_view.state.name == "svc"
                assert "web" in app.main_view.table.column_texts(1)
                out = app.output.text()
                assert "script finished" in out, out[-3000:]
                assert "curl http://127.0.0.1:8080/ --requests 30" in out
        asyncio.run(run())
    finally:
        cluster.stop()
