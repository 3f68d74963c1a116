"""The sim runtime: containers without processes, kwok-style.

A sim container's life is a pure function of the clock: it starts after a
start delay, and exits when its pod's annotations say so. Every pod state
Kubernetes has can be demonstrated this way:

    kbox.io/sim-run-seconds: "5"     exit after running 5 s (default: run forever)
    kbox.io/sim-exit-code: "1"       exit with this code (alone: after 1 s)
    kbox.io/sim-start-seconds: "3"   take 3 s to start
    kbox.io/sim-readiness: fail      readiness probe fails ("fail-after=10": after 10 s)
    kbox.io/sim-liveness: fail       liveness probe fails ("fail-after=10": after 10 s)
    kbox.io/sim-oom: "true"          killed by the OOM killer 1 s after start (137)
    kbox.io/sim-pull: fail           image pull fails
    kbox.io/sim-ignore-sigterm: "true"  stopping takes the whole grace period
    kbox.io/sim-cpu / sim-memory     reported usage for `top`

Each annotation can be aimed at one container: `kbox.io/sim-exit-code.sidecar`.
Images whose tag is `missing` / `does-not-exist`, or whose name contains
`doesnotexist`, fail to pull as a registry would answer.

Logs are synthetic but follow the lifecycle: a start line, a line every
five seconds of clock time while running, an exit line.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from kbox.clock import Clock, iso_micro
from kbox.runtime import (ContainerNotFound, ContainerStatus, ImagePullError, PodSandbox,
                          Runtime, RuntimeUnavailable)

ANN = "kbox.io/sim-"
LOG_PERIOD = 5.0


def sim_setting(pod: dict[str, Any], container: str, key: str) -> str | None:
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    return ann.get(f"{ANN}{key}.{container}", ann.get(f"{ANN}{key}"))


def _num(text: str | None, default: float | None = None) -> float | None:
    if text is None:
        return default
    try:
        return float(str(text).rstrip("s"))
    except ValueError:
        return default


def _quantity_cpu_nano(text: str | None) -> int | None:
    if not text:
        return None
    t = str(text)
    if t.endswith("m"):
        return int(float(t[:-1]) * 1_000_000)
    return int(float(t) * 1_000_000_000)


_MEM = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "k": 1000, "M": 1000 ** 2,
        "G": 1000 ** 3, "T": 1000 ** 4}


def _quantity_bytes(text: str | None) -> int | None:
    if not text:
        return None
    t = str(text)
    for suf in ("Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"):
        if t.endswith(suf):
            return int(float(t[: -len(suf)]) * _MEM[suf])
    return int(float(t))


@dataclass
class SimContainer:
    id: str
    sandbox_id: str
    name: str
    image: str
    command: list[str]
    pod: dict[str, Any]
    created_at: float
    start_requested: float | None = None
    started_at: float | None = None        # when it is (or will be) running
    finished_at: float | None = None       # when it exits (may be in the future)
    exit_code: int | None = None
    reason: str = ""
    stop_requested: bool = False
    removed: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def setting(self, key: str) -> str | None:
        return sim_setting(self.pod, self.name, key)


class SimRuntime(Runtime):
    name = "sim"

    def __init__(self, node_name: str, clock: Clock, timings) -> None:
        self.node_name = node_name
        self.clock = clock
        self.timings = timings
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sandboxes: dict[str, PodSandbox] = {}
        self._containers: dict[str, SimContainer] = {}
        self._images: set[str] = set()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise RuntimeUnavailable(f"sim runtime on {self.node_name} is not running")

    def _new_id(self, kind: str) -> str:
        return f"{next(self._ids):012x}{hash((self.node_name, kind)) & 0xffffffffffff:012x}"

    # ---- sandboxes -----------------------------------------------------------
    def run_pod_sandbox(self, pod: dict[str, Any], ip: str) -> PodSandbox:
        self._check()
        m = pod["metadata"]
        sb = PodSandbox(self._new_id("sandbox"), m["uid"], m["name"], m.get("namespace", ""), ip)
        with self._lock:
            self._sandboxes[sb.id] = sb
        return sb

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        with self._lock:
            sb = self._sandboxes.get(sandbox_id)
            if sb:
                sb.state = "notready"

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox_id, None)
            for cid in [c.id for c in self._containers.values() if c.sandbox_id == sandbox_id]:
                del self._containers[cid]

    def list_pod_sandboxes(self) -> list[PodSandbox]:
        with self._lock:
            return list(self._sandboxes.values())

    # ---- containers ------------------------------------------------------------
    def create_container(self, sandbox_id: str, container: dict[str, Any], pod: dict[str, Any],
                         env: dict[str, str]) -> str:
        self._check()
        cid = self._new_id("container")
        cmd = list(container.get("command") or []) + list(container.get("args") or [])
        c = SimContainer(cid, sandbox_id, container["name"], container.get("image", ""), cmd, pod,
                         self.clock.now() + self.timings.create_delay, env=env)
        with self._lock:
            self._containers[cid] = c
        return cid

    def start_container(self, container_id: str) -> None:
        self._check()
        c = self._get(container_id)
        now = max(self.clock.now(), c.created_at)
        c.start_requested = now
        start = now + (_num(c.setting("start-seconds"), None) or self.timings.start_delay)
        c.started_at = start
        if c.setting("oom") in ("true", "1", "yes"):
            c.finished_at, c.exit_code, c.reason = start + 1.0, 137, "OOMKilled"
            return
        run = _num(c.setting("run-seconds"))
        code = c.setting("exit-code")
        if run is None and code is not None:
            run = 1.0
        if run is not None:
            exit_code = int(_num(code, 0) or 0)
            c.finished_at = start + run
            c.exit_code = exit_code
            c.reason = "Completed" if exit_code == 0 else "Error"

    def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._get(container_id)
        now = self.clock.now()
        if c.finished_at is not None and c.finished_at <= now:
            return
        c.stop_requested = True
        if c.started_at is None or c.started_at > now:
            c.started_at = c.started_at if c.started_at and c.started_at <= now else None
            c.finished_at, c.exit_code, c.reason = now, 137 if c.started_at else 0, "Error"
            if c.started_at is None:
                c.reason = "ContainerCannotRun"
            return
        if c.setting("ignore-sigterm") in ("true", "1", "yes"):
            c.finished_at, c.exit_code, c.reason = now + max(0.0, timeout), 137, "Error"
        else:
            c.finished_at = now + min(self.timings.stop_delay, max(0.0, timeout))
            c.exit_code, c.reason = 143, "Error"

    def kill_all(self) -> None:
        """The node died: every container stops now."""
        now = self.clock.now()
        with self._lock:
            for c in self._containers.values():
                if c.finished_at is None or c.finished_at > now:
                    c.finished_at, c.exit_code, c.reason = now, 137, "Error"

    def remove_container(self, container_id: str) -> None:
        with self._lock:
            self._containers.pop(container_id, None)

    def _get(self, container_id: str) -> SimContainer:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return c

    def container_status(self, container_id: str) -> ContainerStatus:
        self._check()
        c = self._get(container_id)
        now = self.clock.now()
        st = ContainerStatus(c.id, c.name, c.image, "created", created_at=c.created_at)
        if c.finished_at is not None and c.finished_at <= now:
            st.state, st.exit_code, st.reason = "exited", c.exit_code, c.reason
            st.started_at = c.started_at
            st.finished_at = c.finished_at
        elif c.started_at is not None and c.started_at <= now:
            st.state, st.started_at = "running", c.started_at
        return st

    def next_change(self, container_id: str) -> float | None:
        c = self._containers.get(container_id)
        if c is None:
            return None
        now = self.clock.now()
        for t in (c.created_at, c.started_at, c.finished_at):
            if t is not None and t > now:
                return t
        return None

    def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        with self._lock:
            ids = [c.id for c in self._containers.values()
                   if sandbox_id is None or c.sandbox_id == sandbox_id]
        return [self.container_status(i) for i in ids]

    # ---- probes ----------------------------------------------------------------
    def probe(self, container_id: str, kind: str, probe: dict[str, Any]) -> tuple[bool, str]:
        c = self._get(container_id)
        setting = c.setting(kind)
        if not setting:
            return True, ""
        if setting == "fail":
            return False, self._probe_failure(probe)
        if setting.startswith("fail-after="):
            after = _num(setting.split("=", 1)[1], 0) or 0
            if c.started_at is not None and self.clock.now() >= c.started_at + after:
                return False, self._probe_failure(probe)
        return True, ""

    @staticmethod
    def _probe_failure(probe: dict[str, Any]) -> str:
        if "httpGet" in probe:
            return f"HTTP probe failed with statuscode: 500"
        if "tcpSocket" in probe:
            port = probe["tcpSocket"].get("port")
            return f"dial tcp :{port}: connect: connection refused"
        return "command failed with exit code 1"

    # ---- logs, exec, stats -----------------------------------------------------
    def container_logs(self, container_id: str, *, tail: int | None = None,
                       timestamps: bool = False, follow: bool = False,
                       stop: Any = None) -> Iterator[str]:
        c = self._get(container_id)
        lines = self._log_lines(c, self.clock.now())
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        for t, text in lines:
            yield (f"{iso_micro(t)} " if timestamps else "") + text + "\n"
        if not follow:
            return
        last = lines[-1][0] if lines else (c.started_at or self.clock.now())
        sent = len(self._log_lines(c, self.clock.now()))
        while not (stop is not None and stop.is_set()):
            now = self.clock.now()
            all_lines = self._log_lines(c, now)
            for t, text in all_lines[sent:]:
                yield (f"{iso_micro(t)} " if timestamps else "") + text + "\n"
            sent = len(all_lines)
            if c.finished_at is not None and c.finished_at <= now:
                return
            if stop is not None:
                self.clock.wait_event(stop, 0.5)
            else:
                self.clock.sleep(0.5)
        del last

    def _log_lines(self, c: SimContainer, now: float) -> list[tuple[float, str]]:
        if c.started_at is None or c.started_at > now:
            return []
        out = [(c.started_at, f"[kbox-sim] {c.name}: started image={c.image}"
                + (f" command={' '.join(c.command)}" if c.command else ""))]
        end = now if c.finished_at is None or c.finished_at > now else c.finished_at
        n = int((end - c.started_at) // LOG_PERIOD)
        for i in range(1, n + 1):
            out.append((c.started_at + i * LOG_PERIOD,
                        f"[kbox-sim] {c.name}: running for {int(i * LOG_PERIOD)}s"))
        if c.finished_at is not None and c.finished_at <= now:
            out.append((c.finished_at, f"[kbox-sim] {c.name}: exited with code {c.exit_code}"
                        + (" (OOMKilled)" if c.reason == "OOMKilled" else "")))
        return out

    def exec_sync(self, container_id: str, cmd: list[str], stdin: bytes | None = None,
                  timeout: float = 10) -> tuple[int, bytes, bytes]:
        self._check()
        c = self._get(container_id)
        if not cmd:
            return 1, b"", b"no command given\n"
        prog, args = cmd[0].rsplit("/", 1)[-1], cmd[1:]
        pod_name = c.pod["metadata"]["name"]
        if prog == "sh" and args[:1] == ["-c"] and len(args) > 1:
            script = args[1].strip()
            if script.startswith("exit"):
                try:
                    return int(script.split()[1]) if len(script.split()) > 1 else 0, b"", b""
                except ValueError:
                    return 2, b"", f"sh: exit: Illegal number: {script.split()[1]}\n".encode()
            import shlex
            try:
                return self.exec_sync(container_id, shlex.split(script), stdin, timeout)
            except ValueError:
                return 2, b"", b"sh: syntax error\n"
        if prog == "echo":
            return 0, (" ".join(args) + "\n").encode(), b""
        if prog == "hostname" or (prog == "cat" and args == ["/etc/hostname"]):
            return 0, f"{pod_name}\n".encode(), b""
        if prog == "env":
            env = {"HOSTNAME": pod_name, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   **c.env}
            return 0, "".join(f"{k}={v}\n" for k, v in env.items()).encode(), b""
        if prog == "true":
            return 0, b"", b""
        if prog == "false":
            return 1, b"", b""
        if prog == "ls":
            return 0, b"bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n", b""
        if prog == "cat" and stdin is not None:
            return 0, stdin, b""
        return 127, b"", f"sh: {cmd[0]}: not found\n".encode()

    def container_stats(self, container_id: str) -> tuple[int, int]:
        c = self._get(container_id)
        st = self.container_status(container_id)
        if st.state != "running":
            return 0, 0
        spec = next((x for x in (c.pod.get("spec") or {}).get("containers") or []
                     if x.get("name") == c.name), {})
        req = (spec.get("resources") or {}).get("requests") or {}
        cpu = _quantity_cpu_nano(c.setting("cpu"))
        if cpu is None:
            base = _quantity_cpu_nano(req.get("cpu")) or 2_000_000
            cpu = base * 3 // 10
        mem = _quantity_bytes(c.setting("memory"))
        if mem is None:
            base = _quantity_bytes(req.get("memory")) or 16 * 1024 * 1024
            mem = base // 2
        return cpu, mem

    # ---- images ------------------------------------------------------------------
    def pull_image(self, image: str, pod: dict[str, Any] | None = None,
                   container: str = "") -> float:
        self._check()
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
        forced = pod is not None and sim_setting(pod, container, "pull") == "fail"
        if forced or tag in ("missing", "does-not-exist") or "doesnotexist" in image:
            repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            raise ImagePullError(
                f'failed to pull and unpack image "{image}": pull access denied for {repo}, '
                "repository does not exist or may require 'docker login'")
        self._images.add(image)
        return self.timings.pull_delay

    def image_present(self, image: str) -> bool:
        return image in self._images

    def list_images(self) -> list[str]:
        return sorted(self._images)

    def version(self) -> tuple[str, str]:
        return "sim", "0.1.0"

    def healthy(self) -> bool:
        return not self.down
