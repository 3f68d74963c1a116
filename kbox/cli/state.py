"""Where a running cluster tells the CLI how to reach it.

`kbox up` writes `$KBOX_HOME/clusters/<name>/state.json` (KBOX_HOME defaults
to ~/.kbox) with the API address and the process id; `kbox <verb>` reads it,
`kbox down` signals that process and the file goes away when it stops.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_CLUSTER = "kbox"


from kbox.config import kbox_home  # noqa: E402  (re-exported: one definition)


def cluster_name(name: str | None = None) -> str:
    return name or os.environ.get("KBOX_CLUSTER") or DEFAULT_CLUSTER


def cluster_dir(name: str | None = None) -> Path:
    return kbox_home() / "clusters" / cluster_name(name)


def state_path(name: str | None = None) -> Path:
    return cluster_dir(name) / "state.json"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(name: str | None = None) -> dict[str, Any] | None:
    """The state of a live cluster, or None (a stale file of a dead process counts as none)."""
    path = state_path(name)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(state.get("pid")):
        return None
    return state


def write_state(state: dict[str, Any]) -> Path:
    path = state_path(state["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def remove_state(name: str | None = None, pid: int | None = None) -> None:
    """Remove the state file (only if it still belongs to `pid`, when given)."""
    path = state_path(name)
    try:
        if pid is not None and json.loads(path.read_text()).get("pid") != pid:
            return
        path.unlink()
    except (OSError, ValueError):
        pass


def list_clusters() -> list[dict[str, Any]]:
    root = kbox_home() / "clusters"
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            st = read_state(d.name)
            if st:
                out.append(st)
    return out
