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

Logs are synthetic but follow the lifecycle: a start line naming the image
and the command, a line every five seconds of clock time while running (an
access-log line for web servers), an exit line with the code. Each container
instance keeps its own lines, so `logs --previous` shows the last dead one.

exec knows a few commands (echo, hostname, cat /etc/hostname, cat /etc/resolv.conf, env, true,
false, sh -c "exit N", ls, cat with stdin; `sh -c "a; b && c"` runs them in
turn); anything else answers 127 on
stderr as sh would. A streaming exec (`exec_stream`, kubectl exec) of an
unknown program fails to start, as containerd reports an executable that is
not in $PATH.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import shlex
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from kbox.clock import Clock, iso_micro
from kbox.runtime import (CREATED, EXITED, RUNNING, BufferedExecSession, ContainerNotFound,
                          ContainerStatus, ExecSession, ExecStartError, ImagePullError,
                          PodSandboxStatus, PulledImage, Runtime, RuntimeError_,
                          RuntimeUnavailable)

ANN = "kbox.io/sim-"
LOG_PERIOD = 5.0
# the programs sim exec answers (anything else is not in the container's $PATH)
EXEC_PROGRAMS = frozenset({"sh", "bash", "ash", "echo", "hostname", "cat", "env", "printenv",
                           "true", "false", "ls"})


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


def _truthy(v: str | None) -> bool:
    return str(v).lower() in ("true", "1", "yes", "y", "on")


@dataclass
class SimContainer:
    id: str
    sandbox_id: str
    pod_uid: str
    name: str
    image: str
    command: list[str]
    pod: dict[str, Any]
    created_at: float                      # when creation completes (createDelay)
    attempt: int = 0
    started_at: float | None = None        # when it is (or will be) running
    finished_at: float | None = None       # when it exits (may be in the future)
    exit_code: int | None = None
    reason: str = ""
    stop_requested: bool = False
    env: dict[str, str] = field(default_factory=dict)
    resolv_conf: str | None = None         # what `cat /etc/resolv.conf` shows

    def setting(self, key: str) -> str | None:
        return sim_setting(self.pod, self.name, key)


@functools.lru_cache(maxsize=4096)
def _image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


class SimRuntime(Runtime):
    name = "sim"
    needs_polling = False     # next_change() says exactly when anything will happen
    VERSION = "0.1.0"

    def __init__(self, node_name: str, clock: Clock, timings) -> None:
        self.node_name = node_name
        self.clock = clock
        self.timings = timings
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._salt = hashlib.sha256(node_name.encode()).hexdigest()[:52]
        self._sandboxes: dict[str, PodSandboxStatus] = {}
        self._containers: dict[str, SimContainer] = {}
        self._images: set[str] = set()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise RuntimeUnavailable(f"sim runtime on {self.node_name} is not running")

    def _new_id(self) -> str:
        # 64 hex characters, like a Docker id, unique per node and deterministic
        return f"{next(self._ids):012x}{self._salt}"

    # ---- sandboxes -----------------------------------------------------------
    def run_pod_sandbox(self, pod_uid: str, name: str, namespace: str, node: str,
                        ip: str | None = None, *, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None) -> str:
        self._check()
        sb = PodSandboxStatus(self._new_id(), pod_uid, name, namespace, node, ip or "",
                              created_at=self.clock.now(), labels=dict(labels or {}))
        with self._lock:
            self._sandboxes[sb.id] = sb
        return sb.id

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        now = self.clock.now()
        with self._lock:
            sb = self._sandboxes.get(sandbox_id)
            if sb:
                sb.state = "notready"
            for c in self._containers.values():   # stopping a sandbox kills what is left in it
                if c.sandbox_id == sandbox_id and (c.finished_at is None or c.finished_at > now):
                    c.finished_at, c.exit_code, c.reason = now, 137, "Error"

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox_id, None)
            for cid in [c.id for c in self._containers.values() if c.sandbox_id == sandbox_id]:
                del self._containers[cid]

    def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        self._check()
        sb = self._sandboxes.get(sandbox_id)
        if sb is None:
            raise ContainerNotFound(f"no such pod sandbox: {sandbox_id}")
        return sb

    def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        self._check()
        with self._lock:
            return list(self._sandboxes.values())

    # ---- containers ------------------------------------------------------------
    def create_container(self, sandbox_id: str, container: dict[str, Any], pod: dict[str, Any],
                         env: dict[str, str], *, attempt: int = 0,
                         resolv_conf: str | None = None) -> str:
        self._check()
        sb = self._sandboxes.get(sandbox_id)
        if sb is None:
            raise ContainerNotFound(f"no such pod sandbox: {sandbox_id}")
        cid = self._new_id()
        cmd = list(container.get("command") or []) + list(container.get("args") or [])
        c = SimContainer(cid, sandbox_id, sb.pod_uid, container["name"], container.get("image", ""),
                         cmd, pod, self.clock.now() + self.timings.create_delay, attempt=attempt,
                         env=dict(env), resolv_conf=resolv_conf)
        with self._lock:
            self._containers[cid] = c
        return cid

    def start_container(self, container_id: str) -> None:
        self._check()
        c = self._get(container_id)
        now = max(self.clock.now(), c.created_at)
        start = now + (_num(c.setting("start-seconds"), None) or self.timings.start_delay)
        c.started_at = start
        if _truthy(c.setting("oom")):
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

    def stop_container(self, container_id: str, timeout_seconds: float) -> None:
        """SIGTERM, then SIGKILL after the timeout: a sim container takes stopDelay to stop
        (exit 143), or the whole timeout if it ignores SIGTERM (exit 137)."""
        c = self._get(container_id)
        now = self.clock.now()
        if c.finished_at is not None and c.finished_at <= now:
            return
        if c.stop_requested:
            return
        c.stop_requested = True
        timeout = max(0.0, float(timeout_seconds))
        if c.started_at is None or c.started_at > now:
            # never got to run
            c.started_at = None
            c.finished_at, c.exit_code, c.reason = now, 0, "ContainerCannotRun"
            return
        if timeout <= 0:
            end, code = now, 137
        elif _truthy(c.setting("ignore-sigterm")):
            end, code = now + timeout, 137
        else:
            end, code = now + min(self.timings.stop_delay, timeout), 143
        if c.finished_at is None or end < c.finished_at:
            c.finished_at, c.exit_code, c.reason = end, code, "Error"

    def kill_all(self) -> None:
        """The node died: every container stops now (SIGKILL)."""
        now = self.clock.now()
        with self._lock:
            for c in self._containers.values():
                if c.finished_at is None or c.finished_at > now:
                    if c.started_at is not None and c.started_at > now:
                        c.started_at = None
                    c.finished_at, c.exit_code, c.reason = now, 137, "Error"

    def remove_container(self, container_id: str) -> None:
        with self._lock:
            self._containers.pop(container_id, None)

    def _get(self, container_id: str) -> SimContainer:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerNotFound(f"Error: No such container: {container_id}")
        return c

    def _status(self, c: SimContainer, now: float) -> ContainerStatus:
        st = ContainerStatus(c.id, c.name, c.image, CREATED, image_id=_image_id(c.image),
                             created_at=c.created_at, attempt=c.attempt,
                             sandbox_id=c.sandbox_id, pod_uid=c.pod_uid)
        if c.finished_at is not None and c.finished_at <= now:
            st.state, st.exit_code, st.reason = EXITED, c.exit_code, c.reason
            st.started_at = c.started_at
            st.finished_at = c.finished_at
        elif c.started_at is not None and c.started_at <= now:
            st.state, st.started_at = RUNNING, c.started_at
        return st

    def container_status(self, container_id: str) -> ContainerStatus:
        self._check()
        return self._status(self._get(container_id), self.clock.now())

    def next_change(self, container_id: str) -> float | None:
        c = self._containers.get(container_id)
        if c is None:
            return None
        now = self.clock.now()
        # creation only matters when no start was asked for yet
        for t in ((c.created_at,) if c.started_at is None else ()) + (c.started_at, c.finished_at):
            if t is not None and t > now:
                return t
        return None

    def list_containers(self, sandbox_id: str | None = None,
                        pod_uid: str | None = None) -> list[ContainerStatus]:
        self._check()
        now = self.clock.now()
        with self._lock:
            cs = [c for c in self._containers.values()
                  if (sandbox_id is None or c.sandbox_id == sandbox_id)
                  and (pod_uid is None or c.pod_uid == pod_uid)]
        return [self._status(c, now) for c in cs]

    # ---- probes: the outcome comes from the pod's annotations (default: success) ---------
    def _sim_probe(self, container_id: str, kind: str, failure: str) -> tuple[bool, str]:
        self._check()
        c = self._get(container_id)
        setting = c.setting(kind) if kind else None
        if not setting:
            return True, ""
        if setting == "fail":
            return False, failure
        if setting.startswith("fail-after="):
            after = _num(setting.split("=", 1)[1], 0) or 0
            if c.started_at is not None and self.clock.now() >= c.started_at + after:
                return False, failure
        return True, ""

    def probe_exec(self, container_id: str, cmd: list[str], timeout: float, *,
                   kind: str = "") -> tuple[bool, str]:
        return self._sim_probe(container_id, kind, "command failed with exit code 1")

    def probe_http(self, container_id: str, *, host: str, port: int, path: str = "/",
                   scheme: str = "HTTP", headers: dict[str, str] | None = None,
                   timeout: float = 1, kind: str = "") -> tuple[bool, str]:
        return self._sim_probe(container_id, kind, "HTTP probe failed with statuscode: 500")

    def probe_tcp(self, container_id: str, *, host: str, port: int, timeout: float = 1,
                  kind: str = "") -> tuple[bool, str]:
        return self._sim_probe(container_id, kind,
                               f"dial tcp {host}:{port}: connect: connection refused")

    # ---- logs --------------------------------------------------------------------
    def container_logs(self, container_id: str, *, tail: int | None = None, follow: bool = False,
                       timestamps: bool = False, stop: Any = None) -> Iterator[str]:
        c = self._get(container_id)
        lines = self._log_lines(c, self.clock.now())
        sent = len(lines)
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail > 0 else []
        for t, text in lines:
            yield (f"{iso_micro(t)} " if timestamps else "") + text + "\n"
        if not follow:
            return
        while not (stop is not None and stop.is_set()):
            now = self.clock.now()
            all_lines = self._log_lines(c, now)
            for t, text in all_lines[sent:]:
                yield (f"{iso_micro(t)} " if timestamps else "") + text + "\n"
            sent = len(all_lines)
            if c.finished_at is not None and c.finished_at <= now:
                return
            if self._containers.get(c.id) is None:
                return
            if stop is not None:
                self.clock.wait_event(stop, 0.5)
            else:
                self.clock.sleep(0.5)

    def _periodic_line(self, c: SimContainer, i: int) -> str:
        img = c.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        if img in ("nginx", "httpd", "caddy", "apache") or "httpd" in " ".join(c.command):
            return f'10.244.0.1 - - "GET / HTTP/1.1" 200 615 "-" "kube-probe/1.32" ({i})'
        return f"{c.name}: running for {int(i * LOG_PERIOD)}s"

    def _log_lines(self, c: SimContainer, now: float) -> list[tuple[float, str]]:
        if c.started_at is None or c.started_at > now:
            return []
        cmd = " ".join(c.command)
        out = [(c.started_at, f"{c.name}: started image {c.image}"
                + (f" command: {cmd}" if cmd else ""))]
        end = now if c.finished_at is None or c.finished_at > now else c.finished_at
        n = int((end - c.started_at) // LOG_PERIOD)
        for i in range(1, n + 1):
            out.append((c.started_at + i * LOG_PERIOD, self._periodic_line(c, i)))
        if c.finished_at is not None and c.finished_at <= now:
            why = " (OOMKilled)" if c.reason == "OOMKilled" else ""
            out.append((c.finished_at, f"{c.name}: exited with code {c.exit_code}{why}"))
        return out

    # ---- exec --------------------------------------------------------------------
    def exec_sync(self, container_id: str, cmd: list[str], stdin: bytes | None = None,
                  timeout: float = 10) -> tuple[int, bytes, bytes]:
        self._check()
        c = self._get(container_id)
        st = self._status(c, self.clock.now())
        if st.state != RUNNING:
            raise ContainerNotFound(f"container {container_id} is not running")
        if not cmd:
            return 1, b"", b"no command given\n"
        prog, args = cmd[0].rsplit("/", 1)[-1], cmd[1:]
        pod_name = (c.pod.get("metadata") or {}).get("name", "")
        if prog in ("sh", "bash", "ash") and args[:1] == ["-c"] and len(args) > 1:
            script = args[1].strip()
            if ";" in script or "&&" in script:
                return self._sim_script(container_id, script, stdin, timeout)
            if script.startswith("exit"):
                parts = script.split()
                try:
                    return (int(parts[1]) if len(parts) > 1 else 0) & 0xFF, b"", b""
                except ValueError:
                    return 2, b"", f"sh: exit: Illegal number: {parts[1]}\n".encode()
            try:
                words = shlex.split(script)
            except ValueError:
                return 2, b"", b"sh: syntax error: unterminated quoted string\n"
            if not words:
                return 0, b"", b""
            return self.exec_sync(container_id, words, stdin, timeout)
        if prog == "echo":
            return 0, (" ".join(args) + "\n").encode(), b""
        if prog == "hostname" or (prog == "cat" and args == ["/etc/hostname"]):
            return 0, f"{pod_name}\n".encode(), b""
        if prog == "cat" and args == ["/etc/resolv.conf"] and c.resolv_conf is not None:
            return 0, c.resolv_conf.encode(), b""
        if prog in ("env", "printenv"):
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOSTNAME": pod_name, **c.env, "HOME": "/root"}
            if prog == "printenv" and args:
                vals = [env[a] for a in args if a in env]
                return (0 if len(vals) == len(args) else 1), "".join(v + "\n" for v in vals).encode(), b""
            return 0, "".join(f"{k}={v}\n" for k, v in env.items()).encode(), b""
        if prog == "true":
            return 0, b"", b""
        if prog == "false":
            return 1, b"", b""
        if prog == "ls":
            return 0, b"bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n", b""
        if prog == "cat" and not args:
            return 0, stdin or b"", b""
        return 127, b"", f"sh: {cmd[0]}: not found\n".encode()

    def _sim_script(self, container_id: str, script: str, stdin: bytes | None,
                    timeout: float) -> tuple[int, bytes, bytes]:
        """`a; b && c`: the commands in turn (&& stops at a failure), `exit N` ends it."""
        lex = shlex.shlex(script, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        try:
            tokens = list(lex)
        except ValueError:
            return 2, b"", b"sh: syntax error: unterminated quoted string\n"
        steps: list[tuple[str, list[str]]] = [(";", [])]
        for t in tokens:
            if t in (";", "&&"):
                steps.append((t, []))
            else:
                steps[-1][1].append(t)
        code, out, err = 0, b"", b""
        for sep, words in steps:
            if not words or (sep == "&&" and code != 0):
                continue
            if words[0] == "exit":
                try:
                    return (int(words[1]) if len(words) > 1 else code) & 0xFF, out, err
                except ValueError:
                    return 2, out, err + f"sh: exit: Illegal number: {words[1]}\n".encode()
            code, o, e = self.exec_sync(container_id, words, stdin, timeout)
            out, err = out + o, err + e
        return code, out, err

    def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool = False,
                    tty: bool = False) -> ExecSession:
        self._check()
        c = self._get(container_id)
        if self._status(c, self.clock.now()).state != RUNNING:
            raise ContainerNotFound(f"container {container_id} is not running")

        def run(data: bytes | None) -> tuple[int, bytes, bytes]:
            prog = cmd[0].rsplit("/", 1)[-1] if cmd else ""
            if prog not in EXEC_PROGRAMS:
                raise ExecStartError(
                    f'failed to exec in container: failed to start exec "{container_id[:12]}": '
                    "OCI runtime exec failed: exec failed: unable to start container process: "
                    f'exec: "{cmd[0] if cmd else ""}": executable file not found in $PATH: unknown')
            return self.exec_sync(container_id, cmd, data)
        return BufferedExecSession(run, stdin=stdin, tty=tty)

    def port_forward(self, container_id: str, port: int) -> ExecSession:
        raise RuntimeError_("sim nodes run no processes and have no pod network to forward "
                            f"port {port} to: port-forward needs a docker node (--runtime docker)")

    # ---- stats -------------------------------------------------------------------
    def container_stats(self, container_id: str) -> tuple[int, int]:
        self._check()
        c = self._get(container_id)
        if self._status(c, self.clock.now()).state != RUNNING:
            return 0, 0
        spec = next((x for x in ((c.pod.get("spec") or {}).get("containers") or [])
                     + ((c.pod.get("spec") or {}).get("initContainers") or [])
                     if x.get("name") == c.name), {})
        req = (spec.get("resources") or {}).get("requests") or {}
        cpu = _quantity_cpu_nano(c.setting("cpu"))
        if cpu is None:       # default: 30% of the request (or of 2m)
            base = _quantity_cpu_nano(req.get("cpu")) or 2_000_000
            cpu = base * 3 // 10
        mem = _quantity_bytes(c.setting("memory"))
        if mem is None:       # default: half the request (or of 16Mi)
            base = _quantity_bytes(req.get("memory")) or 16 * 1024 * 1024
            mem = base // 2
        return cpu, mem

    def node_stats(self) -> tuple[int, int]:
        self._check()
        cpu, mem = 50_000_000, 256 * 1024 * 1024        # the node's own daemons
        for cid in list(self._containers):
            try:
                c_cpu, c_mem = self.container_stats(cid)
            except ContainerNotFound:
                continue
            cpu += c_cpu
            mem += c_mem
        return cpu, mem

    # ---- images ------------------------------------------------------------------
    def pull_image(self, image: str, *, pod: dict[str, Any] | None = None,
                   container: str = "") -> PulledImage:
        self._check()
        last = image.rsplit("/", 1)[-1]
        tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
        repo = image[: len(image) - len(tag) - 1] if ":" in last else image
        forced = pod is not None and sim_setting(pod, container, "pull") == "fail"
        if forced or tag in ("missing", "does-not-exist") or "doesnotexist" in image:
            raise ImagePullError(
                f'failed to pull and unpack image "{image}": pull access denied for {repo}, '
                "repository does not exist or may require 'docker login'")
        with self._lock:
            self._images.add(image)
        return PulledImage(image, _image_id(image), 0, self.timings.pull_delay)

    def image_present(self, image: str) -> bool:
        return image in self._images

    def list_images(self) -> list[str]:
        return sorted(self._images)

    def version(self) -> tuple[str, str]:
        return "sim", self.VERSION

    def healthy(self) -> bool:
        return not self.down
