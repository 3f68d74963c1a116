"""The container runtime interface (the CRI's shape) the node agent drives.

A runtime runs pod sandboxes and containers on one node. The node agent
(`kbox.node`) uses only this interface, so the same kubelet logic drives the
`sim` runtime (no processes; states advance on the clock, kwok-style) and the
`docker` runtime (real containers inside a Docker-in-Docker node).

States are read, not pushed: `container_status()` answers what a container
is doing *now* by the runtime's clock, and `next_change()` says when that
answer may change next, so the agent can sleep on the clock until then
instead of polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator


class RuntimeError_(Exception):
    """A runtime call failed (the message is the engine's)."""


class ImagePullError(RuntimeError_):
    pass


class ContainerNotFound(RuntimeError_):
    pass


class RuntimeUnavailable(RuntimeError_):
    """The runtime (node) does not answer."""


@dataclass
class ContainerStatus:
    id: str
    name: str
    image: str
    state: str                     # "created", "running", "exited"
    exit_code: int | None = None
    reason: str = ""               # Completed, Error, OOMKilled
    message: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class PodSandbox:
    id: str
    pod_uid: str
    name: str
    namespace: str
    ip: str
    state: str = "ready"           # "ready", "notready"
    labels: dict[str, str] = field(default_factory=dict)


class Runtime:
    """Interface. Every method may raise RuntimeUnavailable when the node is down."""

    name = "runtime"

    # sandboxes
    def run_pod_sandbox(self, pod: dict[str, Any], ip: str) -> PodSandbox: raise NotImplementedError
    def stop_pod_sandbox(self, sandbox_id: str) -> None: raise NotImplementedError
    def remove_pod_sandbox(self, sandbox_id: str) -> None: raise NotImplementedError
    def list_pod_sandboxes(self) -> list[PodSandbox]: raise NotImplementedError

    # containers
    def create_container(self, sandbox_id: str, container: dict[str, Any], pod: dict[str, Any],
                         env: dict[str, str]) -> str: raise NotImplementedError
    def start_container(self, container_id: str) -> None: raise NotImplementedError
    def stop_container(self, container_id: str, timeout: float) -> None: raise NotImplementedError
    def remove_container(self, container_id: str) -> None: raise NotImplementedError
    def container_status(self, container_id: str) -> ContainerStatus: raise NotImplementedError
    def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: raise NotImplementedError
    def next_change(self, container_id: str) -> float | None:
        """Clock time at which the container's status may change next (None: not by itself)."""
        return None

    # probes (run from inside the node by real runtimes)
    def probe(self, container_id: str, kind: str, probe: dict[str, Any]) -> tuple[bool, str]:
        raise NotImplementedError

    # logs, exec, stats
    def container_logs(self, container_id: str, *, tail: int | None = None,
                       timestamps: bool = False, follow: bool = False,
                       stop: Any = None) -> Iterator[str]: raise NotImplementedError
    def exec_sync(self, container_id: str, cmd: list[str], stdin: bytes | None = None,
                  timeout: float = 10) -> tuple[int, bytes, bytes]: raise NotImplementedError
    def container_stats(self, container_id: str) -> tuple[int, int]:
        """(cpu nanocores, memory bytes)."""
        raise NotImplementedError

    # images
    def pull_image(self, image: str, pod: dict[str, Any] | None = None) -> float:
        """Pull; returns seconds it takes. Raises ImagePullError with the engine's message."""
        raise NotImplementedError
    def image_present(self, image: str) -> bool: raise NotImplementedError
    def list_images(self) -> list[str]: raise NotImplementedError

    # node
    def version(self) -> tuple[str, str]: raise NotImplementedError
    def healthy(self) -> bool: return True
    def shutdown(self) -> None: pass


def available_runtimes() -> list[str]:
    return ["sim"]


def make_runtime(name: str, *, node_name: str, clock, config) -> Runtime:
    if name == "sim":
        from kbox.runtime.sim import SimRuntime
        return SimRuntime(node_name, clock, config.timings.sim)
    if name == "docker":
        raise RuntimeError_("the docker runtime is not available yet in this version of kbox; "
                            "use --runtime sim")
    raise RuntimeError_(f"unknown runtime {name!r} (choose sim or docker)")
