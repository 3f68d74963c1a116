"""`kbox <verb>` as a user runs it: main() finds the cluster through the state file
`kbox up` writes, talks to it over HTTP (HttpClient), and prints kubectl's output
and errors with kubectl's exit codes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from kbox.api.server import ApiServer
from kbox.clock import RealClock
from kbox.store.memory import MemoryStore

SAMPLES = Path(__file__).parent.parent / "samples"


@pytest.fixture
def served(tmp_path, monkeypatch):
    from kbox.api.http import HttpServer
    api = ApiServer(MemoryStore(clock=RealClock()), RealClock(), rng=random.Random(2))
    api.bootstrap()
    http = HttpServer(api, port=0).start()
    home = tmp_path / "home"
    state = home / "clusters" / "kbox" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"name": "kbox", "url": http.url, "pid": os.getpid(),
                                 "runtime": "sim", "token": None, "ca": None}))
    monkeypatch.setenv("KBOX_HOME", str(home))
    monkeypatch.delenv("KBOX_CLUSTER", raising=False)
    yield api
    http.stop()
    api.stop()


def test_get_apply_and_errors_over_http(served, capsys):
    from kbox.cli import main
    assert main(["get", "ns", "-o", "name"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"]
    assert main(["apply", "-f", str(SAMPLES / "web.yaml")]) == 0
    assert capsys.readouterr().out == "deployment.apps/web created\nservice/web created\n"
    assert main(["apply", "-f", str(SAMPLES / "web.yaml")]) == 0
    assert capsys.readouterr().out == "deployment.apps/web unchanged\nservice/web unchanged\n"
    assert main(["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]) == 0
    assert capsys.readouterr().out == "3"
    assert main(["get", "pod", "nope"]) == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): pods "nope" not found\n'
    assert main(["scale", "deploy/web", "--replicas=1"]) == 0
    assert capsys.readouterr().out == "deployment.apps/web scaled\n"
    assert main(["describe", "deploy", "web"]) == 0
    assert "Replicas:               1 desired" in capsys.readouterr().out


def test_other_cluster_name_is_not_running(served, capsys):
    from kbox.cli import main
    assert main(["get", "pods", "--cluster", "other"]) == 1
    assert capsys.readouterr().err == 'kbox: no running cluster "other" (start one with: kbox up)\n'
    assert main(["--cluster", "other", "get", "pods"]) == 1
    capsys.readouterr()
    # the leading global flag names the cluster for kbox's own verbs too
    assert main(["--cluster", "other", "status"]) == 1
    assert capsys.readouterr().err == 'kbox: no running cluster "other" (start one with: kbox up)\n'
    assert main(["--cluster", "other", "down"]) == 0
    assert 'No running cluster "other"' in capsys.readouterr().out


def test_stale_state_file_is_not_a_cluster(served, capsys, tmp_path):
    from kbox.cli import main
    state = Path(os.environ["KBOX_HOME"]) / "clusters" / "kbox" / "state.json"
    data = json.loads(state.read_text())
    data["pid"] = 2 ** 22 + 12345     # no such process
    state.write_text(json.dumps(data))
    assert main(["get", "pods"]) == 1
    assert 'no running cluster "kbox"' in capsys.readouterr().err


def test_version_client_needs_no_cluster(tmp_path, monkeypatch, capsys):
    from kbox.cli import main
    monkeypatch.setenv("KBOX_HOME", str(tmp_path))
    assert main(["version", "--client"]) == 0
    assert capsys.readouterr().out.startswith("Client Version: ")
