"""The docker runtime: pods as real containers in one Docker engine (a node's inner engine).

The CRI's shape over the Docker API, as the kubelet's dockershim did it:

- a pod sandbox is a small container (`kbox/busybox:latest` sleeping, with an init)
  that holds the pod's network namespace on the engine's bridge network `kbox-pods`,
  with exactly the IP the node agent chose and the pod's name as hostname;
- each spec container joins the sandbox's network and IPC namespaces
  (`network_mode=container:<sandbox>`), so a pod's containers share localhost;
- everything kbox creates carries labels (`io.kbox.cluster`, `io.kbox.node`,
  `io.kbox.pod-uid`, `io.kbox.role`, ...) and every listing filters by cluster and
  node, so several clusters and nodes can share one engine, and a restarted kbox
  finds (re-adopts) the pods that kept running;
- nothing ever pulls unless the runtime is told it is online: `create_container`
  checks the image first, and an offline `pull_image` of an absent image fails at once
  saying how to load it (`kbox load image NAME`);
- probes run inside the node: exec probes in the container, HTTP and TCP probes with
  busybox `wget` / `nc` from the pod's sandbox against the pod IP;
- `exec_stream` (kubectl exec) is a `docker exec` whose attached socket is read and
  written as the client sends and reads: docker's 8-byte stream headers split stdout
  from stderr (a tty exec is one raw stream), and an executable that is not there is
  reported as the CRI reports it (ExecStartError), not as the command's output;
- `port_forward` is the same streamed exec of busybox `nc POD_IP PORT` in the pod's
  sandbox, as the TCP probes run there; `attach` streams a `docker attach` the same way
  (stdin too when the pod's container asked for one: `kubectl run -i`).

States are read from the engine on each call (`next_change` is None): the agent looks
again every syncFrequency (`needs_polling`).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import shutil
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from kbox.runtime.images import POD_RUNTIME
from kbox.runtime import (CREATED, EXITED, RUNNING, STDERR, STDOUT, ContainerNotFound,
                          ContainerStatus, ExecSession, ExecStartError, ImagePullError,
                          PodSandboxStatus, PulledImage, Runtime, RuntimeError_,
                          RuntimeUnavailable)

log = logging.getLogger(__name__)

API_VERSION = "1.41"                 # Docker 20.10; every newer engine speaks it too
SANDBOX_IMAGE = "kbox/busybox:latest"
POD_NETWORK = "kbox-pods"
NODE_HOST_DIR = "/kbox"              # where a node container mounts its host folder
# the sandbox's "pause": sleep forever, exit 0 at once on SIGTERM (docker-init forwards it)
PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'

LABEL_CLUSTER = "io.kbox.cluster"
LABEL_NODE = "io.kbox.node"
LABEL_ROLE = "io.kbox.role"
LABEL_POD_UID = "io.kbox.pod-uid"
LABEL_POD_NAME = "io.kbox.pod-name"
LABEL_POD_NAMESPACE = "io.kbox.pod-namespace"
LABEL_POD_IP = "io.kbox.pod-ip"
LABEL_CONTAINER = "io.kbox.container"
LABEL_ATTEMPT = "io.kbox.attempt"
LABEL_SANDBOX = "io.kbox.sandbox"
LABEL_POD_LABEL = "io.kbox.label."          # + the pod's label key (the sandbox's labels)
ROLE_SANDBOX, ROLE_CONTAINER, ROLE_NETWORK = "sandbox", "container", "network"
LABEL_WARM = "io.kbox.warm"                   # a warm sandbox: its name says whose it is
WARM_PREFIX = "kbox_warm_"                    # + node: the name of a warm sandbox no pod claimed
WARM_HOSTNAME = "kbox-warm"
IMAGE_SEEN_SECONDS = 5.0

_STDOUT, _STDERR = 1, 2
_ZERO_TIME = "0001-01-01T00:00:00Z"
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
_TS_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")
_HTTP_STATUS_RE = re.compile(r"HTTP/\d(?:\.\d)? (\d{3})")


class ExecTimeout(RuntimeError_):
    """An exec did not finish within its timeout."""


def parse_docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 with nanoseconds -> epoch seconds (its zero time -> None)."""
    if not text or text.startswith("0001-01-01"):
        return None
    m = _TIME_RE.match(text)
    if not m:
        return None
    base, frac, tz = m.groups()
    t = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz)).timestamp()
    if frac:
        t += int(frac[:9].ljust(9, "0")) / 1e9
    return t


def _cpu_nano(text: Any) -> int | None:
    if text is None or text == "":
        return None
    t = str(text)
    try:
        if t.endswith("m"):
            return int(float(t[:-1]) * 1_000_000)
        return int(float(t) * 1_000_000_000)
    except ValueError:
        return None


_MEM = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5,
        "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4, "P": 1000 ** 5}


def _bytes(text: Any) -> int | None:
    if text is None or text == "":
        return None
    t = str(text)
    try:
        for suf in ("Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"):
            if t.endswith(suf):
                return int(float(t[: -len(suf)]) * _MEM[suf])
        return int(float(t))
    except ValueError:
        return None


def _safe(text: str) -> str:
    """A piece of a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text or "") or "x"


def pod_hostname(name: str, spec: dict[str, Any] | None = None) -> str:
    """The kubelet's pod hostname: spec.hostname, else the pod's name cut to 63 characters."""
    host = (spec or {}).get("hostname") or name
    return host[:63].rstrip("-.") or host[:63]


def claimed_pod(container_name: str) -> tuple[str, str, str]:
    """(uid, name, namespace) from a claimed warm sandbox's name `k8s_POD_<name>_<ns>_<uid>_<n>`
    (pod names, namespaces and uids never hold `_`); empty for a sandbox nobody claimed."""
    parts = container_name.lstrip("/").split("_")
    if len(parts) == 6 and parts[:2] == ["k8s", "POD"]:
        return parts[4], parts[2], parts[3]
    return "", "", ""


def _base_url(url: str) -> str:
    if url.startswith("/"):
        return "unix://" + url
    return url


class DockerRuntime(Runtime):
    """One node's runtime over one Docker engine (`base_url`, e.g. unix:///.../docker.sock)."""

    name = "docker"
    needs_polling = True
    supports_warm_sandboxes = True

    def __init__(self, node_name: str, clock, config, *, base_url: str, cluster: str,
                 offline: bool = True, network: str = POD_NETWORK, timeout: float = 30.0,
                 sandbox_image: str = SANDBOX_IMAGE, host_dir: str | None = None) -> None:
        import docker
        self.node_name = node_name
        # the host folder the engine's machine sees at /kbox (a node's): pods' resolv.conf
        # files are written there; None (an engine that is not a node's) keeps Docker's own
        self.host_dir = host_dir
        self.clock = clock
        self.config = config
        self.cluster = cluster
        self.offline = offline
        self.network = network
        self.sandbox_image = sandbox_image
        self.base_url = _base_url(base_url)
        self.timeout = timeout
        # version pinned: the client does not ask the engine anything until it is used
        # several pod workers, stop threads and followed logs share it
        self.client = docker.DockerClient(base_url=self.base_url, version=API_VERSION,
                                          timeout=int(math.ceil(timeout)), max_pool_size=32)
        self.api = self.client.api
        self._ping_api = docker.APIClient(base_url=self.base_url, version=API_VERSION, timeout=2)
        self._lock = threading.Lock()
        self._network_ready = False
        self._version: str | None = None
        self._stopping: dict[str, threading.Thread] = {}
        self._never_started: set[str] = set()       # stopped before they ever ran
        self._stats_cache: dict[str, tuple[float, tuple[int, int]]] = {}
        self._closed = False
        self._pod_runtime: bool | None = None      # known after the first container
        self._images_seen: dict[str, float] = {}   # image → until when it is known present

    # ---- errors ---------------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str = "", *, not_found: str | None = None) -> Iterator[None]:
        """Map the SDK's errors: engine gone -> RuntimeUnavailable, 404 -> ContainerNotFound,
        any other engine error -> RuntimeError_ with the engine's message."""
        import docker.errors
        import requests.exceptions
        try:
            yield
        except docker.errors.NotFound as e:
            raise ContainerNotFound(not_found or _explain(e)) from None
        except docker.errors.APIError as e:
            raise RuntimeError_(_explain(e)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                ConnectionError, FileNotFoundError, OSError) as e:
            raise RuntimeUnavailable(
                f"the Docker engine of node {self.node_name} ({self.base_url}) does not answer"
                f"{' (' + what + ')' if what else ''}: {e}") from None
        except docker.errors.DockerException as e:
            raise RuntimeUnavailable(f"Docker engine of node {self.node_name}: {e}") from None

    def _labels(self, **extra: str) -> dict[str, str]:
        return {LABEL_CLUSTER: self.cluster, LABEL_NODE: self.node_name, **extra}

    def _filters(self, role: str, **labels: str) -> dict[str, Any]:
        want = {LABEL_CLUSTER: self.cluster, LABEL_NODE: self.node_name, LABEL_ROLE: role, **labels}
        return {"label": [f"{k}={v}" for k, v in want.items()]}

    def _inspect(self, cid: str, kind: str = "container") -> dict[str, Any]:
        with self._errors("inspect", not_found=f"Error: No such {kind}: {cid}"):
            return self.api.inspect_container(cid)

    # ---- the pod network ----------------------------------------------------------------
    def _ensure_network(self, ip: str | None) -> None:
        import docker.errors
        import docker.types
        if self._network_ready:
            return
        with self._lock:
            if self._network_ready:
                return
            with self._errors("network"):
                try:
                    net = self.api.inspect_network(self.network)
                except docker.errors.NotFound:
                    net = None
                if net is None:
                    ipam = None
                    if ip:
                        sub = ipaddress.ip_network(f"{ip}/24", strict=False)
                        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                            subnet=str(sub), gateway=str(sub.network_address + 1))])
                    try:
                        self.api.create_network(self.network, driver="bridge", ipam=ipam,
                                                check_duplicate=True,
                                                labels=self._labels(**{LABEL_ROLE: ROLE_NETWORK}))
                    except docker.errors.APIError as e:
                        if e.status_code != 409:
                            raise RuntimeError_(
                                f"cannot create the pod network {self.network} for {ip}/24 on node "
                                f"{self.node_name}: {_explain(e)}") from None
            self._network_ready = True

    # ---- sandboxes -------------------------------------------------------------------
    def run_pod_sandbox(self, pod_uid: str, name: str, namespace: str, node: str,
                        ip: str | None = None, *, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None) -> str:
        lab = self._labels(**{LABEL_ROLE: ROLE_SANDBOX, LABEL_POD_UID: pod_uid, LABEL_POD_NAME: name,
                              LABEL_POD_NAMESPACE: namespace, LABEL_POD_IP: ip or ""})
        for k, v in (labels or {}).items():
            lab[LABEL_POD_LABEL + k] = str(v)
        return self._start_sandbox(f"k8s_POD_{_safe(name)}_{_safe(namespace)}_{_safe(pod_uid[:8])}",
                                   pod_hostname(name), lab, ip, f"pod {namespace}/{name}")

    def start_warm_sandbox(self, ip: str) -> str:
        """A sandbox for a pod that does not exist yet: its network (the slow part of a
        pod's start) is set up now. Its labels say only that it is warm; its name says
        whose it is once claimed (labels cannot change, names can)."""
        lab = self._labels(**{LABEL_ROLE: ROLE_SANDBOX, LABEL_WARM: "true", LABEL_POD_IP: ip})
        return self._start_sandbox(f"{WARM_PREFIX}{_safe(self.node_name)}", WARM_HOSTNAME, lab, ip,
                                   "a warm sandbox")

    def claim_sandbox(self, sandbox_id: str, pod_uid: str, name: str, namespace: str) -> None:
        """Rename a warm sandbox after its pod. Its containers get the pod's hostname from the
        pod runtime (POD_RUNTIME_SCRIPT): docker keeps the placeholder in the sandbox."""
        import docker.errors
        base = f"k8s_POD_{name}_{namespace}_{pod_uid}"
        with self._errors("claim sandbox", not_found=f"Error: No such pod sandbox: {sandbox_id}"):
            for n in range(20):
                try:
                    self.api.rename(sandbox_id, f"{base}_{n}")
                    return
                except docker.errors.APIError as e:
                    if e.status_code != 409:
                        raise
        raise RuntimeError_(f"no free sandbox name for pod {namespace}/{name}")

    def _start_sandbox(self, base: str, hostname: str, lab: dict[str, str], ip: str | None,
                       what: str) -> str:
        import docker.errors
        self._ensure_network(ip)
        endpoint = self.api.create_endpoint_config(ipv4_address=ip) if ip else \
            self.api.create_endpoint_config()
        host_config = self.api.create_host_config(network_mode=self.network, init=True,
                                                  ipc_mode="shareable")
        with self._errors("create sandbox"):
            for n in range(20):       # a name taken by an earlier attempt: the next number
                lab[LABEL_ATTEMPT] = str(n)
                try:
                    created = self.api.create_container(
                        self.sandbox_image, command=["sh", "-c", PAUSE_SCRIPT], hostname=hostname,
                        name=f"{base}_{n}", labels=lab, host_config=host_config,
                        networking_config=self.api.create_networking_config({self.network: endpoint}),
                        stop_signal="SIGTERM")
                    break
                except docker.errors.NotFound as e:
                    raise RuntimeError_(self._missing_image(self.sandbox_image, e, "the sandbox image")) \
                        from None
                except docker.errors.APIError as e:
                    if e.status_code != 409:
                        raise
            else:
                raise RuntimeError_(f"no free sandbox name for {what}")
            sid = created["Id"]
            try:
                self.api.start(sid)
            except docker.errors.APIError as e:
                try:
                    self.api.remove_container(sid, force=True)
                except docker.errors.APIError:
                    pass
                raise RuntimeError_(f"failed to start the sandbox of {what}"
                                    f"{' with IP ' + ip if ip else ''}: {_explain(e)}") from None
        return sid

    def _missing_image(self, image: str, e: Exception, what: str = "image") -> str:
        """The engine's 404 on create: the image is not here (it never pulls on create)."""
        msg = _explain(e)
        if "image" not in msg.lower():
            return msg
        return (f'{what} "{image}" is not present on node {self.node_name}: '
                f"load it with `kbox load image {image}`")

    def _sandbox_containers(self, sandbox_id: str) -> list[str]:
        with self._errors("list containers"):
            return [c["Id"] for c in self.api.containers(all=True, filters=self._filters(
                ROLE_CONTAINER, **{LABEL_SANDBOX: sandbox_id}))]

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """What is left of the pod is killed, then the sandbox stops (it exits on SIGTERM)."""
        for cid in self._sandbox_containers(sandbox_id):
            try:
                self.stop_container(cid, 0)
            except ContainerNotFound:
                pass
        try:
            with self._errors("stop sandbox"):
                self.api.stop(sandbox_id, timeout=2)
        except ContainerNotFound:
            pass

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        uid = ""
        if self.host_dir:
            try:
                uid = self.pod_sandbox_status(sandbox_id).pod_uid
            except ContainerNotFound:
                pass
        for cid in self._sandbox_containers(sandbox_id):
            self.remove_container(cid)
        self.remove_container(sandbox_id)
        self._remove_pod_files(uid)         # the pod is gone: so is its resolv.conf

    def _sandbox_from(self, info: dict[str, Any]) -> PodSandboxStatus:
        lab = (info.get("Config") or {}).get("Labels") or {}
        state = (info.get("State") or {})
        nets = ((info.get("NetworkSettings") or {}).get("Networks") or {})
        ip = (nets.get(self.network) or {}).get("IPAddress") or lab.get(LABEL_POD_IP, "")
        pod_labels = {k[len(LABEL_POD_LABEL):]: v for k, v in lab.items() if k.startswith(LABEL_POD_LABEL)}
        uid, name, ns = lab.get(LABEL_POD_UID, ""), lab.get(LABEL_POD_NAME, ""), lab.get(LABEL_POD_NAMESPACE, "")
        if lab.get(LABEL_WARM):
            uid, name, ns = claimed_pod(info.get("Name") or "")
        return PodSandboxStatus(info["Id"], uid, name, ns, lab.get(LABEL_NODE, ""), ip,
                                state="ready" if state.get("Running") else "notready",
                                created_at=parse_docker_time(info.get("Created")), labels=pod_labels)

    def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        return self._sandbox_from(self._inspect(sandbox_id, "pod sandbox"))

    def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        """One list call (the summaries carry labels, state and addresses): the agent asks
        this for every pod it has no record of."""
        with self._errors("list sandboxes"):
            items = self.api.containers(all=True, filters=self._filters(ROLE_SANDBOX))
        out = []
        for c in items:
            info = {"Id": c["Id"], "Name": (c.get("Names") or [""])[0],
                    "Config": {"Labels": c.get("Labels") or {}},
                    "State": {"Running": c.get("State") == "running"},
                    "NetworkSettings": c.get("NetworkSettings") or {}}
            box = self._sandbox_from(info)
            box.created_at = float(c.get("Created") or 0) or None
            out.append(box)
        return out

    # ---- containers --------------------------------------------------------------------
    def create_container(self, sandbox_id: str, container: dict[str, Any], pod: dict[str, Any],
                         env: dict[str, str], *, attempt: int = 0,
                         resolv_conf: str | None = None) -> str:
        import docker.errors
        image = container.get("image") or ""
        if not image:
            raise RuntimeError_(f"container {container.get('name')!r} has no image")
        m = pod.get("metadata") or {}
        name = container["name"]
        pod_name, ns, uid = m.get("name"), m.get("namespace"), m.get("uid")
        if not (pod_name and ns and uid):            # only a bare pod: ask its sandbox
            box = self.pod_sandbox_status(sandbox_id)
            pod_name, ns, uid = pod_name or box.name, ns or box.namespace, uid or box.pod_uid
        labels = self._labels(**{LABEL_ROLE: ROLE_CONTAINER, LABEL_POD_UID: uid, LABEL_POD_NAME: pod_name,
                                 LABEL_POD_NAMESPACE: ns, LABEL_CONTAINER: name,
                                 LABEL_ATTEMPT: str(attempt), LABEL_SANDBOX: sandbox_id})
        # Kubernetes: command replaces the image's ENTRYPOINT (and drops its CMD), args replace CMD
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        entrypoint: list[str] | None = command or None
        cmd: list[str] | None = args or None
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        hc: dict[str, Any] = {"network_mode": f"container:{sandbox_id}",
                              "ipc_mode": f"container:{sandbox_id}", "init": True}
        mem = _bytes(limits.get("memory"))
        if mem:
            hc["mem_limit"] = mem
            hc["memswap_limit"] = mem           # no swap, as the kubelet sets it
        cpu = _cpu_nano(limits.get("cpu"))
        if cpu:
            hc["nano_cpus"] = cpu
        req_cpu = _cpu_nano(requests.get("cpu")) or cpu
        if req_cpu:
            hc["cpu_shares"] = max(2, req_cpu * 1024 // 1_000_000_000)
        spec = pod.get("spec") or {}
        if spec.get("shareProcessNamespace"):
            hc["pid_mode"] = f"container:{sandbox_id}"
        sc = container.get("securityContext") or {}
        psc = spec.get("securityContext") or {}
        user = None
        uid_ = sc.get("runAsUser", psc.get("runAsUser"))
        if uid_ is not None:
            gid = sc.get("runAsGroup", psc.get("runAsGroup"))
            user = f"{uid_}:{gid}" if gid is not None else str(uid_)
        if sc.get("privileged"):
            hc["privileged"] = True
        base = f"k8s_{_safe(name)}_{_safe(pod_name)}_{_safe(ns)}_{_safe(uid[:8])}_{attempt}"
        if self._has_pod_runtime():
            hc["runtime"] = POD_RUNTIME
        env = dict(env)
        env.setdefault("HOSTNAME", pod_hostname(pod_name or "", spec))   # as the kubelet sets it
        if resolv_conf is not None and self.host_dir:
            # the kubelet's resolv.conf for this pod, bind-mounted over Docker's own (Docker
            # leaves /etc/resolv.conf alone when a mount targets it). Written here, not at the
            # sandbox: a warm sandbox starts before its pod is known
            hc["binds"] = [f"{self._write_pod_file(uid, 'resolv.conf', resolv_conf)}:/etc/resolv.conf"]
        host_config = self.api.create_host_config(**hc)
        kwargs = dict(command=cmd, entrypoint=entrypoint,
                      environment=[f"{k}={v}" for k, v in env.items()],
                      working_dir=container.get("workingDir") or None, labels=labels,
                      host_config=host_config, user=user,
                      stdin_open=bool(container.get("stdin")), tty=bool(container.get("tty")))
        with self._errors("create container"):
            for n in range(10):
                try:
                    created = self.api.create_container(
                        image, name=base if n == 0 else f"{base}.{n}", **kwargs)
                    return created["Id"]
                except docker.errors.NotFound as e:
                    raise RuntimeError_(self._missing_image(image, e)) from None
                except docker.errors.APIError as e:
                    if e.status_code != 409:
                        raise
        raise RuntimeError_(f"no free container name for {base}")

    # ---- the pod's files in the node's /kbox folder ---------------------------------------
    def _pod_dir(self, pod_uid: str) -> Path:
        return Path(self.host_dir or "") / "pods" / _safe(pod_uid)

    def _write_pod_file(self, pod_uid: str, name: str, text: str) -> str:
        """Write one of the pod's files (atomically: a running container keeps the old inode
        until it is recreated); its path as the node's engine sees it."""
        d = self._pod_dir(pod_uid)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(d / name)
        return f"{NODE_HOST_DIR}/pods/{_safe(pod_uid)}/{name}"

    def _remove_pod_files(self, pod_uid: str) -> None:
        if self.host_dir and pod_uid:
            shutil.rmtree(self._pod_dir(pod_uid), ignore_errors=True)

    def _has_pod_runtime(self) -> bool:
        """Does this engine know kbox's pod runtime (a node's engine does; a plain host one,
        as in some tests, does not)?"""
        if self._pod_runtime is None:
            with self._errors("info"):
                self._pod_runtime = POD_RUNTIME in (self.api.info().get("Runtimes") or {})
        return self._pod_runtime

    def start_container(self, container_id: str) -> None:
        """Start; a container that cannot run (its command is missing...) is left exited
        with the engine's message (reason ContainerCannotRun), as dockershim reported it."""
        import docker.errors
        with self._errors("start"):
            try:
                self.api.start(container_id)
            except docker.errors.NotFound as e:
                msg = _explain(e)
                if "No such container" in msg:
                    raise ContainerNotFound(msg) from None
                log.info("node %s: container %s cannot run: %s", self.node_name, container_id[:12], msg)
            except docker.errors.APIError as e:
                log.info("node %s: container %s cannot run: %s", self.node_name, container_id[:12],
                         _explain(e))

    def stop_container(self, container_id: str, timeout_seconds: float, *, wait: bool = False) -> None:
        """SIGTERM (the image's stop signal) now, SIGKILL when the grace period is over.
        Returns at once (the kill comes from a background thread) unless `wait`, or when the
        timeout is 0 (killed now)."""
        import docker.errors
        info = self._inspect(container_id)
        state = info.get("State") or {}
        if state.get("Status") == "created":
            self._never_started.add(container_id)
            return
        if not state.get("Running"):
            return
        timeout = max(0.0, float(timeout_seconds))
        if timeout <= 0:
            with self._errors("kill"):
                try:
                    self.api.kill(container_id, "SIGKILL")
                except docker.errors.APIError as e:
                    if e.status_code == 404:
                        raise
                    # 409: not running any more
                self._wait_exit(container_id, 10)
            return
        with self._lock:
            t = self._stopping.get(container_id)
            if t is not None and t.is_alive():
                if wait:
                    t.join()
                return
        sig = (info.get("Config") or {}).get("StopSignal") or "SIGTERM"
        with self._errors("stop"):
            try:
                self.api.kill(container_id, sig)
            except docker.errors.APIError as e:
                if e.status_code == 404:
                    raise
                return
        t = threading.Thread(target=self._kill_after, args=(container_id, timeout),
                             name=f"stop-{container_id[:12]}", daemon=True)
        with self._lock:
            self._stopping[container_id] = t
        t.start()
        if wait:
            t.join()

    def _wait_exit(self, container_id: str, timeout: float, every: float = 0.05) -> bool:
        """True when the container is not running within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                st = self.api.inspect_container(container_id).get("State") or {}
            except Exception:
                return True
            if not st.get("Running"):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(every, left))

    def _kill_after(self, container_id: str, grace: float) -> None:
        try:
            if not self._wait_exit(container_id, grace, every=0.2):
                self.api.kill(container_id, "SIGKILL")
                self._wait_exit(container_id, 10)
        except Exception as e:         # the engine went away: nothing left to kill
            log.debug("node %s: stopping %s: %s", self.node_name, container_id[:12], e)
        finally:
            with self._lock:
                if self._stopping.get(container_id) is threading.current_thread():
                    self._stopping.pop(container_id, None)

    def remove_container(self, container_id: str) -> None:
        import docker.errors
        with self._errors("remove"):
            try:
                self.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if "already in progress" not in _explain(e):
                    raise
        self._never_started.discard(container_id)
        self._stats_cache.pop(container_id, None)

    def _status_from(self, info: dict[str, Any]) -> ContainerStatus:
        cfg = info.get("Config") or {}
        lab = cfg.get("Labels") or {}
        st = info.get("State") or {}
        status = st.get("Status") or ""
        try:
            attempt = int(lab.get(LABEL_ATTEMPT) or 0)
        except ValueError:
            attempt = 0
        out = ContainerStatus(info["Id"], lab.get(LABEL_CONTAINER) or (info.get("Name") or "").lstrip("/"),
                              cfg.get("Image") or "", CREATED, image_id=info.get("Image") or "",
                              created_at=parse_docker_time(info.get("Created")), attempt=attempt,
                              sandbox_id=lab.get(LABEL_SANDBOX, ""), pod_uid=lab.get(LABEL_POD_UID, ""))
        started = parse_docker_time(st.get("StartedAt"))
        finished = parse_docker_time(st.get("FinishedAt"))
        if started is not None and finished is not None and finished < started:
            finished = started     # a very short run: the engine records the exit before the start
        code = st.get("ExitCode")
        if status in ("running", "paused", "restarting"):
            out.state, out.started_at = RUNNING, started
        elif status in ("exited", "dead", "removing"):
            out.state, out.started_at, out.finished_at = EXITED, started, finished
            out.exit_code = int(code or 0)
            if st.get("OOMKilled"):
                out.reason = "OOMKilled"
            elif st.get("Error") and started is None:
                out.reason = "ContainerCannotRun"
            else:
                out.reason = "Completed" if out.exit_code == 0 else "Error"
            if st.get("Error"):
                out.message = st["Error"]
        elif status == "created" and (st.get("Error") or info["Id"] in self._never_started):
            # it could not start, or was stopped before it did: it will never run
            out.state, out.reason = EXITED, "ContainerCannotRun"
            out.exit_code = int(code or 0) if st.get("Error") else 0
            out.exit_code = out.exit_code or (128 if st.get("Error") else 0)
            out.message = st.get("Error") or ""
            out.finished_at = finished or out.created_at
        return out

    def container_status(self, container_id: str) -> ContainerStatus:
        return self._status_from(self._inspect(container_id))

    def list_containers(self, sandbox_id: str | None = None,
                        pod_uid: str | None = None) -> list[ContainerStatus]:
        want: dict[str, str] = {}
        if sandbox_id is not None:
            want[LABEL_SANDBOX] = sandbox_id
        if pod_uid is not None:
            want[LABEL_POD_UID] = pod_uid
        with self._errors("list containers"):
            ids = [c["Id"] for c in self.api.containers(all=True, filters=self._filters(ROLE_CONTAINER, **want))]
        out = []
        for cid in ids:
            try:
                out.append(self.container_status(cid))
            except ContainerNotFound:
                continue
        return out

    def next_change(self, container_id: str) -> float | None:
        return None

    # ---- logs --------------------------------------------------------------------------
    def container_logs(self, container_id: str, *, tail: int | None = None, follow: bool = False,
                       timestamps: bool = False, stop: Any = None) -> Iterator[str]:
        """Lines ending in a newline (stdout and stderr merged); with follow, until the
        container exits or `stop` is set. Timestamps are RFC 3339 with microseconds."""
        self._inspect(container_id)           # ContainerNotFound now, not when iterated
        return self._logs(container_id, tail, follow, timestamps, stop)

    def _logs(self, container_id: str, tail: int | None, follow: bool, timestamps: bool,
              stop: Any) -> Iterator[str]:
        if tail is not None and tail <= 0 and not follow:
            return
        with self._errors("logs"):
            stream = self.api.logs(container_id, stdout=True, stderr=True, stream=True,
                                   follow=follow, timestamps=timestamps,
                                   tail="all" if tail is None or tail < 0 else int(tail))
        done = threading.Event()
        if follow and stop is not None:
            def cancel() -> None:
                while not done.is_set():
                    if stop.wait(0.2):
                        try:
                            stream.close()
                        except Exception:
                            pass
                        return
            threading.Thread(target=cancel, name=f"logs-{container_id[:12]}", daemon=True).start()
        buf = b""
        try:
            for chunk in stream:
                if stop is not None and stop.is_set():
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    yield _log_line(line, timestamps)
            if buf and not (stop is not None and stop.is_set()):
                yield _log_line(buf, timestamps)
        except Exception as e:              # the engine went away mid-stream: the stream ends
            log.debug("node %s: logs of %s ended: %s", self.node_name, container_id[:12], e)
        finally:
            done.set()
            try:
                stream.close()
            except Exception:
                pass

    # ---- exec --------------------------------------------------------------------------
    def exec_sync(self, container_id: str, cmd: list[str], stdin: bytes | None = None,
                  timeout: float = 10) -> tuple[int, bytes, bytes]:
        """Run `cmd` in the container; (exit code, stdout, stderr). Past `timeout` the call
        returns exit code 124 (as `timeout` does) with what it got and a note on stderr."""
        try:
            return self._exec(container_id, cmd, stdin, timeout)
        except ExecTimeout as e:
            out, err = e.args[1], e.args[2]
            return 124, out, err + f"command timed out after {timeout:g}s\n".encode()

    def _exec(self, container_id: str, cmd: list[str], stdin: bytes | None,
              timeout: float) -> tuple[int, bytes, bytes]:
        if not cmd:
            return 1, b"", b"no command given\n"
        with self._errors("exec"):
            eid = self._exec_create(container_id, cmd, stdin=stdin is not None)
            sock = self.api.exec_start(eid, socket=True)
        raw = getattr(sock, "_sock", sock)
        deadline = time.monotonic() + max(0.1, float(timeout))
        out, err = bytearray(), bytearray()
        try:
            raw.settimeout(max(0.1, float(timeout)))
            if stdin is not None:
                if stdin:
                    raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)
            pending = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExecTimeout("timeout", bytes(out), bytes(err))
                raw.settimeout(left)
                try:
                    data = raw.recv(65536)
                except socket.timeout:
                    raise ExecTimeout("timeout", bytes(out), bytes(err)) from None
                if not data:
                    break
                pending += data
                while len(pending) >= 8:
                    kind, size = pending[0], struct.unpack(">I", pending[4:8])[0]
                    if len(pending) < 8 + size:
                        break
                    (err if kind == _STDERR else out).extend(pending[8: 8 + size])
                    pending = pending[8 + size:]
        except OSError as e:
            raise RuntimeUnavailable(f"exec in {container_id[:12]} on node {self.node_name}: {e}") from None
        finally:
            try:
                raw.close()
            except OSError:
                pass
            try:
                sock.close()
            except Exception:
                pass
        with self._errors("exec inspect"):
            for _ in range(100):
                info = self.api.exec_inspect(eid)
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return int(info["ExitCode"]), bytes(out), bytes(err)
                time.sleep(0.01)
        return int(info.get("ExitCode") or 0), bytes(out), bytes(err)

    def _exec_create(self, container_id: str, cmd: list[str], *, stdin: bool,
                     tty: bool = False) -> str:
        """An exec instance in the container (call inside `_errors`); a container that is gone
        or not running is ContainerNotFound."""
        import docker.errors
        try:
            return self.api.exec_create(container_id, cmd, stdout=True, stderr=True,
                                        stdin=stdin, tty=tty)["Id"]
        except docker.errors.NotFound as e:
            raise ContainerNotFound(_explain(e)) from None
        except docker.errors.APIError as e:
            if e.status_code == 409:        # not running
                raise ContainerNotFound(f"container {container_id} is not running") from None
            raise

    def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool = False,
                    tty: bool = False) -> ExecSession:
        if not cmd:
            raise ExecStartError("no command given")
        with self._errors("exec"):
            eid = self._exec_create(container_id, cmd, stdin=stdin, tty=tty)
            sock = self.api.exec_start(eid, socket=True, tty=tty)
        return _DockerExecSession(self, eid, sock, tty)

    def attach(self, container_id: str, *, stdin: bool = False, tty: bool = False) -> ExecSession:
        """`docker attach` to the container's process from now on (its stdin only if the
        container was created with one: spec.stdin)."""
        with self._errors("attach"):
            sock = self.api.attach_socket(container_id, params={
                "stdin": 1 if stdin else 0, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0})
        return _DockerExecSession(self, "", sock, tty, container_id=container_id)

    def port_forward(self, container_id: str, port: int) -> ExecSession:
        """busybox `nc POD_IP PORT` in the pod's sandbox, its stdin and stdout streamed."""
        sid, ip = self._pod_of(container_id)
        return self.exec_stream(sid, ["nc", ip, str(int(port))], stdin=True)

    # ---- probes ----------------------------------------------------------------------
    def probe_exec(self, container_id: str, cmd: list[str], timeout: float, *,
                   kind: str = "") -> tuple[bool, str]:
        try:
            rc, out, err = self._exec(container_id, cmd, None, timeout)
        except ExecTimeout:
            return False, f"command {_quote_cmd(cmd)} timed out"
        if rc == 0:
            return True, ""
        text = (out + err).decode(errors="replace").strip()
        return False, text or f"command {_quote_cmd(cmd)} exited with {rc}"

    def _pod_of(self, container_id: str) -> tuple[str, str]:
        """(sandbox id, pod IP) of a container (or of a sandbox)."""
        info = self._inspect(container_id)
        lab = (info.get("Config") or {}).get("Labels") or {}
        if lab.get(LABEL_ROLE) == ROLE_SANDBOX:
            sid, box = container_id, info
        else:
            sid = lab.get(LABEL_SANDBOX) or ""
            if not sid:
                raise ContainerNotFound(f"container {container_id} is not part of a kbox pod")
            box = self._inspect(sid, "pod sandbox")
        return sid, self._sandbox_from(box).ip

    def probe_http(self, container_id: str, *, host: str, port: int, path: str = "/",
                   scheme: str = "HTTP", headers: dict[str, str] | None = None,
                   timeout: float = 1, kind: str = "") -> tuple[bool, str]:
        sid, ip = self._pod_of(container_id)
        host = host or ip
        path = path if path.startswith("/") else "/" + path
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = f"{scheme.lower()}://{hostport}{path}"
        secs = max(1, int(math.ceil(timeout)))
        cmd = ["timeout", str(secs), "wget", "-q", "-O", "/dev/null", "-U", "kube-probe/1.32"]
        if scheme.upper() == "HTTPS":
            cmd.append("--no-check-certificate")
        for k, v in (headers or {}).items():
            if k:
                cmd += ["--header", f"{k}: {v}"]
        cmd.append(url)
        rc, text = self._probe_command(sid, cmd, secs)
        if rc == 0:
            return True, ""
        m = _HTTP_STATUS_RE.search(text)
        if m:
            return False, f"HTTP probe failed with statuscode: {m.group(1)}"
        why = _net_error(text, host, port)
        if why is None:
            return False, (f'Get "{url}": context deadline exceeded '
                           "(Client.Timeout exceeded while awaiting headers)")
        return False, f'Get "{url}": {why}'

    def _probe_command(self, sandbox_id: str, cmd: list[str], secs: int) -> tuple[int, str]:
        """Run a probe's busybox command in the pod's sandbox: (exit code, its output)."""
        try:
            rc, out, err = self._exec(sandbox_id, cmd, None, secs + 5)
        except ExecTimeout:
            return 124, ""
        return rc, (out + err).decode(errors="replace").strip()

    def probe_tcp(self, container_id: str, *, host: str, port: int, timeout: float = 1,
                  kind: str = "") -> tuple[bool, str]:
        sid, ip = self._pod_of(container_id)
        host = host or ip
        secs = max(1, int(math.ceil(timeout)))
        cmd = ["timeout", str(secs), "nc", "-w", str(secs), host, str(port), "-e", "true"]
        rc, text = self._probe_command(sid, cmd, secs)
        if rc == 0:
            return True, ""
        why = _net_error(text, host, port)
        return False, why or f"dial tcp {host}:{port}: i/o timeout"

    # ---- images ----------------------------------------------------------------------
    def image_present(self, image: str) -> bool:
        """Asked before every new container: a yes is remembered for a few seconds (an
        image removed meanwhile makes the create fail, and the agent tries again)."""
        import docker.errors
        now = time.monotonic()
        if self._images_seen.get(image, -1.0) > now:
            return True
        with self._errors("inspect image"):
            try:
                self.api.inspect_image(image)
                self._images_seen[image] = now + IMAGE_SEEN_SECONDS
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as e:
                if e.status_code in (400, 404):     # not even a valid reference here
                    return False
                raise

    def pull_image(self, image: str, *, pod: dict[str, Any] | None = None,
                   container: str = "") -> PulledImage:
        import docker.errors
        t0 = time.monotonic()
        with self._errors("inspect image"):
            try:
                info = self.api.inspect_image(image)
            except docker.errors.NotFound:
                info = None
            except docker.errors.APIError as e:
                if e.status_code != 400:
                    raise
                info = None
        if info is None and self.offline:
            raise ImagePullError(
                f'image "{image}" is not present on node {self.node_name} and kbox is offline '
                f"(no registry is contacted): load it into the cluster's nodes with "
                f"`kbox load image {image}`")
        if info is None:
            from docker.utils import parse_repository_tag
            repo, tag = parse_repository_tag(image)
            with self._errors("pull"):
                try:
                    if tag and tag.startswith("sha256:"):
                        self.api.pull(f"{repo}@{tag}")
                    else:
                        self.api.pull(repo, tag=tag or "latest")
                    info = self.api.inspect_image(image)
                except docker.errors.APIError as e:
                    raise ImagePullError(f'failed to pull image "{image}": {_explain(e)}') from None
        return PulledImage(image, info.get("Id") or "", int(info.get("Size") or 0),
                           time.monotonic() - t0)

    def list_images(self) -> list[str]:
        with self._errors("list images"):
            imgs = self.api.images()
        return sorted({t for i in imgs for t in (i.get("RepoTags") or []) if t != "<none>:<none>"})

    # ---- stats, node -----------------------------------------------------------------
    def container_stats(self, container_id: str) -> tuple[int, int]:
        """(cpu nanocores, working-set bytes) from one stats call (two engine samples)."""
        now = time.monotonic()
        hit = self._stats_cache.get(container_id)
        if hit is not None and now - hit[0] < 2.0:
            return hit[1]
        info = self._inspect(container_id)
        if not (info.get("State") or {}).get("Running"):
            return 0, 0
        with self._errors("stats"):
            s = self.api.stats(container_id, stream=False, one_shot=False)
        out = (_cpu_rate(s), _working_set(s))
        self._stats_cache[container_id] = (time.monotonic(), out)
        return out

    def node_stats(self) -> tuple[int, int]:
        """The node's containers (sandboxes included) summed; the engine's own use is not
        counted."""
        with self._errors("list containers"):
            ids = [c["Id"] for c in self.api.containers(filters={"label": [
                f"{LABEL_CLUSTER}={self.cluster}", f"{LABEL_NODE}={self.node_name}"]})]
        if not ids:
            return 0, 0

        def one(cid: str) -> tuple[int, int]:
            try:
                return self.container_stats(cid)
            except ContainerNotFound:
                return 0, 0

        with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
            results = list(pool.map(one, ids))
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def version(self) -> tuple[str, str]:
        """("docker", the engine's version); "unknown" while the engine never answered."""
        if self._version is None:
            try:
                with self._errors("version"):
                    self._version = str(self.api.version().get("Version") or "unknown")
            except RuntimeError_:
                return "docker", "unknown"
        return "docker", self._version

    def healthy(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(self._ping_api.ping())
        except Exception:
            return False

    def shutdown(self) -> None:
        """Close the connections; containers keep running (a restarted kbox adopts them)."""
        self._closed = True
        for c in (self.client, self._ping_api):
            try:
                c.close()
            except Exception:
                pass


# ---- helpers --------------------------------------------------------------------------

# what the engine writes on the exec stream when runc could not start the process
_OCI_START_FAILED = b"OCI runtime exec failed"


class _DockerExecSession(ExecSession):
    """A `docker exec` attached over its hijacked socket (see DockerRuntime.exec_stream), or,
    with `container_id`, a `docker attach` to a container's own process (DockerRuntime.attach)."""

    def __init__(self, runtime: "DockerRuntime", exec_id: str, sock: Any, tty: bool, *,
                 container_id: str = "") -> None:
        self._rt = runtime
        self._id = exec_id
        self._container = container_id
        self._sock = sock
        self._raw = getattr(sock, "_sock", sock)
        self._tty = tty
        self._pending = b""
        self._first = True
        self._closed = False
        self._raw.settimeout(None)

    def write_stdin(self, data: bytes) -> None:
        try:
            self._raw.sendall(data)
        except OSError:
            pass                                  # the process is gone: its output says so

    def close_stdin(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def resize(self, width: int, height: int) -> None:
        if self._tty and width > 0 and height > 0:
            try:
                if self._container:
                    self._rt.api.resize(self._container, height=height, width=width)
                else:
                    self._rt.api.exec_resize(self._id, height=height, width=width)
            except Exception as e:                # best effort, as a terminal resize is
                log.debug("exec resize: %s", e)

    def _recv(self) -> bytes:
        try:
            return self._raw.recv(65536)
        except OSError:
            if self._closed:
                return b""
            raise RuntimeUnavailable(f"exec on node {self._rt.node_name}: the engine "
                                     "closed the stream") from None

    def _chunk(self) -> tuple[int, bytes] | None:
        if self._tty:
            data = self._recv()
            return (STDOUT, data) if data else None
        while True:
            if len(self._pending) >= 8:
                kind, size = self._pending[0], struct.unpack(">I", self._pending[4:8])[0]
                if len(self._pending) >= 8 + size:
                    data = self._pending[8: 8 + size]
                    self._pending = self._pending[8 + size:]
                    if data:
                        return (STDERR if kind == _STDERR else STDOUT), data
                    continue
            data = self._recv()
            if not data:
                return None
            self._pending += data

    def read(self) -> tuple[int, bytes] | None:
        if self._closed:
            return None
        got = self._chunk()
        if self._first and got is not None and not self._container:
            self._first = False
            if got[1].startswith(_OCI_START_FAILED):
                # runc could not start the process: the CRI reports this as an error of the
                # exec itself, not as output (containerd: "failed to start exec")
                text = got[1]
                while (more := self._chunk()) is not None:
                    text += more[1]
                if self.wait() in (126, 127):
                    raise ExecStartError(
                        f'failed to exec in container: failed to start exec "{self._id[:12]}": '
                        + text.decode(errors="replace").strip())
                return STDOUT, text
        return got

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout if timeout is not None else 10.0)
        info: dict[str, Any] = {}
        if self._container:                   # attach: the container's own exit code, if it ended
            state = self._rt._inspect(self._container).get("State") or {}
            return 0 if state.get("Running") else int(state.get("ExitCode") or 0)
        with self._rt._errors("exec inspect"):
            while True:
                info = self._rt.api.exec_inspect(self._id)
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return int(info["ExitCode"])
                if time.monotonic() > deadline:
                    return int(info.get("ExitCode") or 0)
                time.sleep(0.01)

    def close(self) -> None:
        self._closed = True
        for close in (lambda: self._raw.shutdown(socket.SHUT_RDWR), self._raw.close, self._sock.close):
            try:
                close()
            except Exception:
                pass


def _explain(e: Exception) -> str:
    text = getattr(e, "explanation", None)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text or e).strip()


def _log_line(line: bytes, timestamps: bool) -> str:
    text = line.decode(errors="replace").rstrip("\r")
    if timestamps:
        m = _TS_LINE_RE.match(text)
        if m:       # Docker's nanoseconds -> microseconds, as kbox writes timestamps
            frac = (m.group(2) or "").ljust(6, "0")[:6]
            text = f"{m.group(1)}.{frac}Z " + text[m.end():]
    return text + "\n"


def _quote_cmd(cmd: list[str]) -> str:
    return '"' + " ".join(cmd).replace('"', '\\"') + '"'


def _net_error(text: str, host: str, port: int) -> str | None:
    """A busybox wget/nc error as Go's net package words it (None: it timed out)."""
    low = text.lower()
    if "connection refused" in low:
        return f"dial tcp {host}:{port}: connect: connection refused"
    if "no route to host" in low or "host is unreachable" in low:
        return f"dial tcp {host}:{port}: connect: no route to host"
    if "network is unreachable" in low:
        return f"dial tcp {host}:{port}: connect: network is unreachable"
    if "bad address" in low or "unknown host" in low:
        return f"dial tcp: lookup {host}: no such host"
    if "timed out" in low or not text.strip():
        return None
    return text.strip().splitlines()[-1]


def _cpu_rate(s: dict[str, Any]) -> int:
    cur = ((s.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
    pre = ((s.get("precpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
    t1, t0 = parse_docker_time(s.get("read")), parse_docker_time(s.get("preread"))
    delta = cur - pre
    if delta <= 0:
        return 0
    if t1 is not None and t0 is not None and t1 > t0:
        return int(delta / (t1 - t0))
    sys1 = (s.get("cpu_stats") or {}).get("system_cpu_usage") or 0
    sys0 = (s.get("precpu_stats") or {}).get("system_cpu_usage") or 0
    cpus = (s.get("cpu_stats") or {}).get("online_cpus") or 1
    if sys1 > sys0:
        return int(delta / (sys1 - sys0) * cpus * 1e9)
    return 0


def _working_set(s: dict[str, Any]) -> int:
    mem = s.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0)
    st = mem.get("stats") or {}
    inactive = st.get("total_inactive_file", st.get("inactive_file", 0)) or 0
    return max(0, usage - int(inactive))


__all__ = ["DockerRuntime", "POD_NETWORK", "SANDBOX_IMAGE", "parse_docker_time",
           "LABEL_CLUSTER", "LABEL_NODE", "LABEL_ROLE", "LABEL_POD_UID"]
