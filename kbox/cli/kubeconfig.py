"""kubeconfig files: what `kbox kubeconfig` prints and what `kbox up` / `kbox down` merge
into the user's kubeconfig, the way kind does.

A cluster named NAME appears as a cluster, a user and a context all called
`kbox-NAME` (kind uses `kind-NAME`), with the API's CA inline
(`certificate-authority-data`) and the admin bearer token. `kbox up` merges
them into the first file of $KUBECONFIG (or ~/.kube/config), makes the
context current and keeps the file private (0600); `kbox down` takes them
out again, leaving every other entry as it was.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path
from typing import Any

import yaml

from kbox.cli import state as cluster_state
from kbox.cli.registry import CliError, Context, command


def entry_name(cluster: str) -> str:
    return f"kbox-{cluster}"


def kubeconfig_path() -> Path:
    """The file kubectl writes to: the first of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def kubeconfig_for(cluster: str, url: str, ca_pem: bytes | None, token: str | None,
                   user: str | None = None) -> dict[str, Any]:
    name = entry_name(cluster)
    server: dict[str, Any] = {"server": url}
    if ca_pem:
        server["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": server}],
            "users": [{"name": user or name, "user": {"token": token} if token else {}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": user or name}}],
            "current-context": name}


def for_state(st: dict[str, Any], *, viewer: bool = False) -> dict[str, Any]:
    """The kubeconfig of a running cluster, from its state file (admin or read-only user)."""
    ca = Path(st["ca"]).read_bytes() if st.get("ca") else None
    token = st.get("viewer_token") if viewer else st.get("token")
    user = f"{entry_name(st['name'])}-viewer" if viewer else None
    return kubeconfig_for(st["name"], st["url"], ca, token, user)


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise CliError(f"cannot read kubeconfig {path}: {e}")
    if not isinstance(data, dict):
        raise CliError(f"cannot read kubeconfig {path}: not a mapping")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".kbox-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def _others(items: Any, names: set[str]) -> list[Any]:
    return [i for i in items or [] if not (isinstance(i, dict) and i.get("name") in names)]


def merge(new: dict[str, Any], path: Path | None = None) -> Path:
    """Put `new`'s clusters, users and contexts into the kubeconfig at `path` (replacing
    entries of the same names) and make its context current."""
    path = path or kubeconfig_path()
    data = _load(path)
    for key in ("clusters", "users", "contexts"):
        names = {i["name"] for i in new[key]}
        data[key] = _others(data.get(key), names) + new[key]
    data.setdefault("apiVersion", "v1")
    data.setdefault("kind", "Config")
    data.setdefault("preferences", {})
    data["current-context"] = new["current-context"]
    _write(path, data)
    return path


def remove(cluster: str, path: Path | None = None) -> bool:
    """Take cluster `cluster`'s entries out of the kubeconfig; True when there were any."""
    path = path or kubeconfig_path()
    data = _load(path)
    if not data:
        return False
    name = entry_name(cluster)
    names = {name, f"{name}-viewer"}
    before = sum(len(data.get(k) or []) for k in ("clusters", "users", "contexts"))
    for key in ("clusters", "users", "contexts"):
        if key in data:
            data[key] = _others(data.get(key), names)
    after = sum(len(data.get(k) or []) for k in ("clusters", "users", "contexts"))
    if data.get("current-context") == name:
        data["current-context"] = ""
    if before == after:
        return False
    _write(path, data)
    return True


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="cluster name (default: kbox, or $KBOX_CLUSTER)")
    p.add_argument("--viewer", action="store_true",
                   help="the read-only user (get, list, watch; no secrets, no exec)")


@command("kubeconfig", "Print a kubeconfig for a running cluster (as `kind get kubeconfig`)",
         needs_cluster=False, group="Cluster Management", arguments=_arguments,
         usage="kbox kubeconfig > ~/.kube/kbox.yaml")
def cmd_kubeconfig(ctx: Context, args: argparse.Namespace) -> int:
    name = cluster_state.cluster_name(args.name or getattr(args, "cluster", None))
    st = cluster_state.read_state(name)
    if not st or not st.get("url"):
        raise CliError(f'no running cluster "{name}" (start one with: kbox up --name {name})')
    ctx.out.write(yaml.safe_dump(for_state(st, viewer=args.viewer), default_flow_style=False,
                                 sort_keys=False))
    return 0
