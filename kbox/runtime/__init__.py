"""The container runtime interface (the CRI's shape) the node agent drives.

A runtime runs pod sandboxes and containers on one node. The node agent
(`kbox.node`) uses only this interface, so the same kubelet logic drives the
`sim` runtime (no processes; states advance on the clock, kwok-style) and,
later, the `docker` runtime (real containers inside a Docker-in-Docker node).

States are read, not pushed: `container_status()` answers what a container
is doing *now* by the runtime's clock, and `next_change()` says when that
answer may change by itself, so the agent can set a timer on the clock
instead of polling.

Exec streams: `exec_stream` starts a command and hands back an `ExecSession`
(stdin in, stdout/stderr chunks out, then the exit code), the shape of the
CRI's streaming Exec that kubectl's WebSocket exec needs. A runtime whose exec
is a single call (the sim) gets `BufferedExecSession`, which gathers stdin
until it is closed, runs `exec_sync` once and hands its output back as chunks.
`port_forward` opens a connection to a pod's port in the same shape (the
docker runtime: busybox `nc` from the pod's sandbox); the sim has no network.

Probes go through the runtime (`probe_exec`, `probe_http`, `probe_tcp`) so a
real runtime can run them from inside the node's network; `kind`
("liveness", "readiness", "startup") is a hint a real runtime ignores and
the sim uses to pick the outcome its pod annotations ask for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


class RuntimeError_(Exception):
    """A runtime call failed (the message is the engine's)."""


class ImagePullError(RuntimeError_):
    """The image could not be pulled; the message is the registry's / engine's."""


class ContainerNotFound(RuntimeError_):
    pass


class RuntimeUnavailable(RuntimeError_):
    """The runtime (the node's engine) does not answer."""


class ExecStartError(RuntimeError_):
    """An exec could not start its process (e.g. no such executable); the message is the
    runtime's, as the CRI reports it (kubectl shows it as an InternalError)."""


STDOUT, STDERR = 1, 2       # the stream of an output chunk (also the exec channel numbers)


class ExecSession:
    """A running exec (interface). Blocking calls: the API server runs them in worker
    threads. `read` and `write_stdin` may be called from two threads at once."""

    def write_stdin(self, data: bytes) -> None:
        raise NotImplementedError

    def close_stdin(self) -> None:
        raise NotImplementedError

    def resize(self, width: int, height: int) -> None:
        """The terminal's size changed (tty sessions; best effort)."""

    def read(self) -> tuple[int, bytes] | None:
        """The next output chunk as (STDOUT or STDERR, bytes); None once the output ended.
        Raises ExecStartError when the process could not start."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (after `read` gave None)."""
        raise NotImplementedError

    def close(self) -> None:
        """The client went away: release everything; a blocked `read` returns None."""


class BufferedExecSession(ExecSession):
    """An ExecSession over a one-shot exec: `run(stdin bytes or None)` gives
    (exit code, stdout, stderr). With stdin, it runs once stdin is closed; with a tty,
    stderr is merged into stdout (a terminal has one output)."""

    def __init__(self, run: Callable[[bytes | None], tuple[int, bytes, bytes]], *,
                 stdin: bool = False, tty: bool = False) -> None:
        self._run = run
        self._stdin = bytearray() if stdin else None
        self._tty = tty
        self._stdin_closed = threading.Event()
        self._closed = False
        self._chunks: list[tuple[int, bytes]] | None = None
        self._code: int | None = None

    def write_stdin(self, data: bytes) -> None:
        if self._stdin is not None and not self._stdin_closed.is_set():
            self._stdin.extend(data)

    def close_stdin(self) -> None:
        self._stdin_closed.set()

    def read(self) -> tuple[int, bytes] | None:
        if self._chunks is None:
            if self._stdin is not None:
                while not self._stdin_closed.wait(0.2):
                    if self._closed:
                        return None
            if self._closed:
                return None
            code, out, err = self._run(bytes(self._stdin) if self._stdin is not None else None)
            self._code = code
            if self._tty:
                out, err = out + err, b""
            self._chunks = [(s, d) for s, d in ((STDOUT, out), (STDERR, err)) if d]
        return self._chunks.pop(0) if self._chunks else None

    def wait(self, timeout: float | None = None) -> int:
        return self._code if self._code is not None else -1

    def close(self) -> None:
        self._closed = True
        self._stdin_closed.set()


class LinesSession(ExecSession):
    """Output only: the lines of an iterator on stdout (attach follows a container's
    output this way); `stop` is set on close so a following reader ends."""

    def __init__(self, lines: Iterator[str], stop: threading.Event) -> None:
        self._lines = lines
        self._stop = stop

    def write_stdin(self, data: bytes) -> None:
        pass

    def close_stdin(self) -> None:
        pass

    def read(self) -> tuple[int, bytes] | None:
        if self._stop.is_set():
            return None
        try:
            line = next(self._lines)
        except StopIteration:
            return None
        return STDOUT, line.encode() if isinstance(line, str) else line

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def close(self) -> None:
        self._stop.set()


EXEC_STREAM_TIMEOUT = 3600.0      # a one-shot exec behind a stream: as long as a session may be

# container states, as CRI names them (lower case here)
CREATED, RUNNING, EXITED = "created", "running", "exited"


@dataclass
class ContainerStatus:
    id: str
    name: str
    image: str
    state: str                     # created / running / exited
    image_id: str = ""
    exit_code: int | None = None
    reason: str = ""               # Completed, Error, OOMKilled, ContainerCannotRun
    message: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0               # CRI metadata.attempt: the kubelet's restart count at creation
    sandbox_id: str = ""
    pod_uid: str = ""


@dataclass
class PodSandboxStatus:
    id: str
    pod_uid: str
    name: str
    namespace: str
    node: str
    ip: str
    state: str = "ready"           # ready / notready
    created_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PulledImage:
    """What a pull gives back. `seconds` counts from the request (a sim pull may still be
    "in flight" on the clock; a real pull has already taken that long)."""
    image: str
    image_id: str
    size_bytes: int = 0
    seconds: float = 0.0


class Runtime:
    """Interface. Every method may raise RuntimeUnavailable when the node is down."""

    name = "runtime"
    #: a real runtime cannot say when a container will change (next_change is None): the
    #: agent then looks again every syncFrequency, as the kubelet's pod workers do
    needs_polling = True
    #: the runtime can start sandboxes ahead of their pods (`start_warm_sandbox`), so a new
    #: pod only renames one (`claim_sandbox`) instead of waiting for its network to be set up
    supports_warm_sandboxes = False

    # ---- sandboxes
    def run_pod_sandbox(self, pod_uid: str, name: str, namespace: str, node: str,
                        ip: str | None = None, *, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None) -> str:
        raise NotImplementedError

    def start_warm_sandbox(self, ip: str) -> str:
        """A running sandbox with address `ip` that belongs to no pod yet."""
        raise NotImplementedError

    def claim_sandbox(self, sandbox_id: str, pod_uid: str, name: str, namespace: str) -> None:
        """Give a warm sandbox to a pod: from now on it lists as that pod's sandbox."""
        raise NotImplementedError

    def stop_pod_sandbox(self, sandbox_id: str) -> None: raise NotImplementedError
    def remove_pod_sandbox(self, sandbox_id: str) -> None: raise NotImplementedError
    def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus: raise NotImplementedError
    def list_pod_sandboxes(self) -> list[PodSandboxStatus]: raise NotImplementedError

    # ---- containers
    def create_container(self, sandbox_id: str, container: dict[str, Any], pod: dict[str, Any],
                         env: dict[str, str], *, attempt: int = 0,
                         resolv_conf: str | None = None) -> str:
        """`resolv_conf`: the pod's /etc/resolv.conf as the kubelet formed it (kbox.dns.resolvconf;
        CRI's DNSConfig); None leaves the runtime's own."""
        raise NotImplementedError

    def start_container(self, container_id: str) -> None: raise NotImplementedError
    def stop_container(self, container_id: str, timeout_seconds: float) -> None: raise NotImplementedError
    def remove_container(self, container_id: str) -> None: raise NotImplementedError
    def container_status(self, container_id: str) -> ContainerStatus: raise NotImplementedError

    def list_containers(self, sandbox_id: str | None = None,
                        pod_uid: str | None = None) -> list[ContainerStatus]:
        raise NotImplementedError

    def next_change(self, container_id: str) -> float | None:
        """Clock time at which the container's status may change by itself (None: not known)."""
        return None

    # ---- logs, exec
    def container_logs(self, container_id: str, *, tail: int | None = None, follow: bool = False,
                       timestamps: bool = False, stop: Any = None) -> Iterator[str]:
        """Lines (each ending in a newline); with follow, until the container exits or `stop`
        (a threading.Event) is set."""
        raise NotImplementedError

    def exec_sync(self, container_id: str, cmd: list[str], stdin: bytes | None = None,
                  timeout: float = 10) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool = False,
                    tty: bool = False) -> ExecSession:
        """Start `cmd` in the container, streaming (kubectl exec). Raises ContainerNotFound
        when the container is not running. The default adapts `exec_sync`."""
        return BufferedExecSession(
            lambda data: self.exec_sync(container_id, cmd, data, timeout=EXEC_STREAM_TIMEOUT),
            stdin=stdin, tty=tty)

    def attach(self, container_id: str, *, stdin: bool = False, tty: bool = False) -> ExecSession:
        """Attach to the container's own process from now on (kubectl attach, run -i).
        Raises RuntimeError_ when the runtime cannot (the agent then follows the logs)."""
        raise RuntimeError_(f"the {self.name} runtime cannot attach")

    def port_forward(self, container_id: str, port: int) -> ExecSession:
        """A TCP connection to `port` on the pod of `container_id`, as a session: stdin is
        what the client sends, stdout what the pod answers, stderr (with a non-zero exit
        code) why the connection failed. Raises RuntimeError_ when the runtime has no network."""
        raise RuntimeError_(f"the {self.name} runtime cannot forward ports")

    # ---- probes (a real runtime runs them from inside the node)
    def probe_exec(self, container_id: str, cmd: list[str], timeout: float, *,
                   kind: str = "") -> tuple[bool, str]:
        rc, out, err = self.exec_sync(container_id, cmd, None, timeout)
        if rc == 0:
            return True, ""
        text = (out + err).decode(errors="replace").strip()
        return False, text or f"command {cmd!r} exited with {rc}"

    def probe_http(self, container_id: str, *, host: str, port: int, path: str = "/",
                   scheme: str = "HTTP", headers: dict[str, str] | None = None,
                   timeout: float = 1, kind: str = "") -> tuple[bool, str]:
        raise NotImplementedError

    def probe_tcp(self, container_id: str, *, host: str, port: int, timeout: float = 1,
                  kind: str = "") -> tuple[bool, str]:
        raise NotImplementedError

    # ---- images
    def pull_image(self, image: str, *, pod: dict[str, Any] | None = None,
                   container: str = "") -> PulledImage:
        """Pull (pod and container are the CRI's sandbox config: context, not required).
        Raises ImagePullError with the engine's message."""
        raise NotImplementedError

    def image_present(self, image: str) -> bool: raise NotImplementedError
    def list_images(self) -> list[str]: raise NotImplementedError

    # ---- stats, node
    def container_stats(self, container_id: str) -> tuple[int, int]:
        """(cpu nanocores, memory bytes) in use now."""
        raise NotImplementedError

    def node_stats(self) -> tuple[int, int]:
        """(cpu nanocores, memory bytes) the whole node uses now, containers included."""
        raise NotImplementedError

    def version(self) -> tuple[str, str]:
        """(runtime name, runtime version), e.g. ("sim", "0.1.0")."""
        raise NotImplementedError

    def healthy(self) -> bool:
        return True

    def shutdown(self) -> None:
        pass


RUNTIMES = ("sim", "docker")


def check_runtime_name(name: str) -> None:
    if name not in RUNTIMES:
        raise RuntimeError_(f"unknown runtime {name!r} (choose sim or docker)")


def make_runtime(name: str, *, node_name: str, clock, config, **options: Any) -> Runtime:
    """The runtime factory the NodePool uses: one runtime per node. The docker runtime
    needs `base_url` (the node's inner engine) and `cluster` in `options`."""
    check_runtime_name(name)
    if name == "sim":
        from kbox.runtime.sim import SimRuntime
        return SimRuntime(node_name, clock, config.timings.sim)
    from kbox.runtime.docker import DockerRuntime
    return DockerRuntime(node_name, clock, config, **options)
