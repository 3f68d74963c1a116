"""How `kbox <verb>` reaches the running cluster: its state file → an HTTP client."""

from __future__ import annotations

from typing import Any

from kbox.cli import state as cluster_state
from kbox.cli.registry import CliError


class HttpNodeOps:
    """kbox's node operations over the API's /kbox/v1 routes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def node_action(self, action: str, name: str, **kw: Any) -> dict[str, Any]:
        return self.client.kbox_node_action(action, name, **kw)

    def status(self) -> dict[str, Any]:
        return self.client.kbox_status()


def connect(cluster: str | None = None) -> tuple[Any, HttpNodeOps]:
    name = cluster_state.cluster_name(cluster)
    st = cluster_state.read_state(name)
    if not st or not st.get("url"):
        raise CliError(f'kbox: no running cluster "{name}" (start one with: kbox up)')
    from kbox.api.httpclient import HttpClient
    client = HttpClient(st["url"], token=st.get("token"), verify=st.get("ca") or False)
    return client, HttpNodeOps(client)
