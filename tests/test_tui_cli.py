"""The dashboard from the command line: the core never imports Textual, `kbox up` falls back
to headless when stdout is not a terminal, and `kbox ui` attaches to a running cluster
over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import pytest


def test_core_imports_without_textual():
    code = ("import sys, kbox.cli, kbox.api, kbox.api.server, kbox.api.httpclient, kbox.cluster, "
            "kbox.controllers.manager, kbox.scheduler, kbox.node.pool, kbox.runtime.sim, kbox.store; "
            "from kbox.cli import registry, up, lifecycle, script; registry.load_commands(); "
            "registry.parse('up --theme dark'); registry.parse('ui --cluster x'); "
            "print('textual' in sys.modules, any(m.startswith('kbox.tui') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def _kbox(env, *argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "kbox", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    e = {**os.environ, "KBOX_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    e.pop("KBOX_CLUSTER", None)
    return e


def _wait_ready(env, name, proc=None, timeout=30):
    from pathlib import Path
    import json
    state = Path(env["KBOX_HOME"]) / "clusters" / name / "state.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists():
            st = json.loads(state.read_text())
            if st.get("ready"):
                return st
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"kbox up exited: {proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError("cluster did not come up")


def test_up_without_a_terminal_runs_headless_and_says_so(env):
    name = f"tui-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "kbox", "up", "--runtime", "sim", "--name", name,
                             "--nodes", "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        _wait_ready(env, name, proc)
    finally:
        # reap `up` while `down` waits for it (a zombie would still look alive to `down`)
        down = subprocess.Popen([sys.executable, "-m", "kbox", "down", "--name", name], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=30)
        down.communicate(timeout=30)
    assert down.returncode == 0
    assert "stdout is not a terminal, so no dashboard: running headless" in err
    assert f'Cluster "{name}" is up' in out and f'Stopping cluster "{name}"' in out


def test_up_rejects_a_bad_theme_before_booting(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dark: maybe\n")
    from kbox.cli.up import cmd_up
    from kbox.cli.registry import parse
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True
    _, args = parse(["up", "--runtime", "sim", "--name", "never", "--theme", str(bad)])
    out, err = Tty(), io.StringIO()
    os.environ["KBOX_HOME"], saved = env["KBOX_HOME"], os.environ.get("KBOX_HOME")
    try:
        assert cmd_up(args, out, err) == 1
    finally:
        if saved is None:
            del os.environ["KBOX_HOME"]
        else:
            os.environ["KBOX_HOME"] = saved
    assert "error: --theme:" in err.getvalue() and "bad.yaml" in err.getvalue()
    _, args = parse(["up", "--runtime", "sim", "--name", "never", "--theme", "nope"])
    err = io.StringIO()
    assert cmd_up(args, Tty(), err) == 1
    assert "no such theme" in err.getvalue()


def test_ui_attaches_to_a_running_cluster(env, monkeypatch, capsys):
    pytest.importorskip("textual")
    name = f"tui-{uuid.uuid4().hex[:6]}"
    up = _kbox(env, "up", "-d", "--runtime", "sim", "--name", name, "--nodes", "2")
    assert up.returncode == 0, up.stderr
    monkeypatch.setenv("KBOX_HOME", env["KBOX_HOME"])
    try:
        assert _kbox(env, "--cluster", name, "create", "deployment", "web", "--image=busybox",
                     "--replicas=2").returncode == 0
        from kbox.cli import main
        from kbox.cli.connect import connect
        # not a terminal: kbox ui says so and exits 1
        assert main(["ui", "--cluster", name]) == 1
        assert "kbox ui needs a terminal" in capsys.readouterr().err
        from kbox.tui.launch import attach_app
        client, ops = connect(name)
        app = attach_app(client, ops, theme="high-contrast")
        st = _wait_ready(env, name)

        async def run():
            async with app.run_test(size=(120, 40)) as pilot:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    await pilot.pause(0.1)
                    if app.main_view.table.column_texts(3).count("Running") == 2:
                        break
                assert app.main_view.table.column_texts(3) == ["Running", "Running"]
                assert app.nodes_pane.column_texts(0) == [f"{name}-worker", f"{name}-worker2"]
                from kbox.tui.app import screen_text
                text = screen_text(app)
                assert name in text and st["url"] in text and "health ok" in text
                assert app.theme == "kbox-high-contrast"
                pilot.app.prompt.value = "scale deploy/web --replicas=3"
                await pilot.press("colon")
                pilot.app.prompt.value = "scale deploy/web --replicas=3"
                await pilot.press("enter")
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    await pilot.pause(0.1)
                    if app.main_view.table.column_texts(3).count("Running") == 3:
                        break
                assert "deployment.apps/web scaled" in app.output.text()
                assert app.main_view.table.column_texts(3).count("Running") == 3
        asyncio.run(run())
        client.close()
    finally:
        assert _kbox(env, "down", "--name", name).returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="uses a Linux pseudo-terminal")
def test_up_on_a_terminal_opens_the_dashboard_and_q_stops_the_cluster(env):
    """`kbox up` in a pseudo-terminal: the dashboard draws (nothing else is printed while it
    runs), a command typed at the prompt runs, `q` quits and the cluster stops."""
    import fcntl
    import json
    import pty
    import re
    import select
    import struct
    import termios
    from pathlib import Path
    name = f"tui-{uuid.uuid4().hex[:6]}"
    pid, fd = pty.fork()
    if pid == 0:     # the child: kbox up on the terminal
        os.environ.update(env, TERM="xterm-256color")
        os.execv(sys.executable, [sys.executable, "-m", "kbox", "up", "--runtime", "sim", "--name", name,
                                  "--nodes", "2"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    screen = b""

    def pump(seconds):
        nonlocal screen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    screen += os.read(fd, 1 << 16)
                except OSError:
                    return

    state = Path(env["KBOX_HOME"]) / "clusters" / name / "state.json"
    status = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (state.exists() and json.loads(state.read_text() or "{}").get("ready")):
            pump(0.1)
        pump(1.0)
        os.write(fd, b":get nodes -o name\r")
        pump(1.5)
        text = re.sub(rb"\x1b\[[0-9;?<>=]*[A-Za-z~]", b"", screen).decode("utf-8", "replace")
        assert "health ok" in text and f"{name}-worker2" in text and "activity" in text
        assert f"node/{name}-worker" in text                  # the command's output pane
        assert f'Cluster "{name}" is up' not in text           # no headless chatter on stdout
        os.write(fd, b"q")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pump(0.1)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        assert status == 0
        assert not state.exists()
    finally:
        if status is None:
            os.kill(pid, 15)
            os.waitpid(pid, 0)
        os.close(fd)
