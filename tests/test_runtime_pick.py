"""`kbox up` picks its runtime: docker when an engine answers, otherwise it says
plainly that it starts simulated nodes and how to get real ones."""

from __future__ import annotations

import io

from kbox.cli import up


def test_auto_falls_back_to_sim_and_says_so(monkeypatch):
    monkeypatch.setattr(up, "_docker_answers", lambda: False)
    err = io.StringIO()
    assert up._pick_runtime(None, err) == "sim"
    msg = err.getvalue()
    assert "no Docker engine answers" in msg and "starting simulated nodes" in msg
    assert "kbox up --runtime docker" in msg


def test_auto_uses_docker_when_an_engine_answers(monkeypatch):
    monkeypatch.setattr(up, "_docker_answers", lambda: True)
    err = io.StringIO()
    assert up._pick_runtime(None, err) == "docker" and err.getvalue() == ""


def test_an_explicit_choice_is_kept(monkeypatch):
    monkeypatch.setattr(up, "_docker_answers", lambda: False)
    assert up._pick_runtime("sim", io.StringIO()) == "sim"
    assert up._pick_runtime("docker", io.StringIO()) == "docker"
