"""Opening the dashboard from the CLI: `kbox up` (in-process cluster) and `kbox ui` (attach).

The CLI imports this module only inside the functions that open a dashboard,
so headless kbox never loads Textual. While the dashboard runs nothing is
printed to stdout: kbox's log records and boot progress go to the cluster's
log file (`~/.kbox/clusters/NAME/kbox.log`) and to the activity pane.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

from kbox.tui.app import KboxApp


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Route every log record to `path` (and nowhere else) for the dashboard's lifetime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = root.handlers[:], root.level
    root.handlers = [handler]
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        handler.close()


def check_theme(name: str | None, err: TextIO) -> bool:
    """Validate --theme before anything boots; a bad name or file is a clear error."""
    if not name:
        return True
    from kbox.tui.theme import ThemeError, load_theme
    try:
        load_theme(name)
    except ThemeError as e:
        print(f"error: --theme: {e}", file=err)
        return False
    return True


def cluster_app(cluster: Any, *, theme: str | None = None, script: str | None = None,
                stop: threading.Event | None = None) -> KboxApp:
    """The dashboard over an in-process cluster (what `kbox up` opens)."""
    meta = {"name": cluster.config.name, "runtime": cluster.runtime_name, "url": cluster.url}
    return KboxApp(cluster.client, ops=cluster, clock=cluster.clock, cluster=cluster, meta=meta,
                   theme=theme, script=script, stop_event=stop)


def run_cluster_dashboard(cluster: Any, state: dict[str, Any], args: Any, stop: threading.Event,
                          wait_seconds: float, log_path: Path) -> int:
    """`kbox up` with a dashboard: open it at once while nodes come up; quitting it stops
    the cluster (as Ctrl-C does headless), and so does `kbox down` (SIGTERM sets `stop`)."""
    from kbox.cli import state as cluster_state

    def mark_ready() -> None:
        try:
            cluster.wait_nodes_ready(wait_seconds)
        except TimeoutError as e:
            logging.getLogger(__name__).warning("%s", e)
        except Exception:       # stopped while waiting
            return
        state["ready"] = True
        cluster_state.write_state(state)

    with log_to_file(log_path):
        cluster.on_progress = lambda msg: logging.getLogger("kbox.boot").info("%s", msg)
        threading.Thread(target=mark_ready, daemon=True, name="kbox-ready").start()
        app = cluster_app(cluster, theme=getattr(args, "theme", None), script=getattr(args, "script", None),
                          stop=stop)
        app.run()
    return 0


def attach_app(client: Any, ops: Any, *, theme: str | None = None) -> KboxApp:
    """The dashboard over a running cluster reached by HTTP (what `kbox ui` opens)."""
    try:
        info = ops.status()
    except Exception as e:    # the header says what it can; the feeds report the API's health
        info = {"name": "?", "runtime": "?", "url": getattr(client, "base_url", None), "error": str(e)}
    meta = {"name": info.get("name"), "runtime": info.get("runtime"),
            "url": info.get("url") or getattr(client, "base_url", None)}
    return KboxApp(client, ops=ops, meta=meta, theme=theme)


def run_attached(client: Any, ops: Any, *, theme: str | None, log_path: Path) -> int:
    from kbox.gcpolicy import ticking
    # no cluster in this process to run the GC policy, and the tables hold thousands of rows
    with log_to_file(log_path), ticking():
        attach_app(client, ops, theme=theme).run()
    return 0
