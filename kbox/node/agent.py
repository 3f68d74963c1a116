"""The node agent: the kubelet of one node, over the Runtime interface.

The agent owns nothing but per-pod bookkeeping; the NodePool (pool.py) feeds
it pod keys from one shared informer and runs its syncs on a few worker
threads, serialised per pod (kubelet's pod workers).

`sync_pod` is level-triggered: given the pod as the API has it and what the
runtime says now, it takes the next step (sandbox and IP, image pull, init
containers in order, app containers, restarts with back-off, probes,
graceful stop), reports the pod's status when it differs from what the API
has, and asks to be called again at the clock time of its next due step
(a pull finishing, a container starting or exiting, a back-off expiring, a
probe period). Nothing polls.

Behaviour follows the kubelet (v1.32):
- restart back-off per container: the first restart is immediate, then
  10 s doubling to 5 min ("back-off 10s restarting failed container=...");
  the back-off is forgotten when a container ran cleanly for 10 min;
- the restart count is the number of instances created after the first;
- image pulls by imagePullPolicy; a failed pull shows ErrImagePull, then
  ImagePullBackOff while waiting 10 s doubling to 5 min before the next try;
- probes (startup, liveness, readiness) on their own period with
  initialDelaySeconds, failureThreshold and successThreshold;
- the pod phase is computed as the kubelet's getPhase does;
- deletion: containers get SIGTERM with the grace period, then the pod is
  deleted with grace 0 and a UID precondition.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from kbox.api import errors
from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.clock import Clock, iso_micro, iso_time
from kbox.controllers.events import EventRecorder
from kbox.runtime import (CREATED, EXITED, RUNNING, ContainerNotFound, ContainerStatus,
                          ExecSession, ImagePullError, LinesSession, PodSandboxStatus, Runtime,
                          RuntimeError_, RuntimeUnavailable)

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-kbox"
KUBELET_PORT = 10250
PULL_BACKOFF_BASE = 10.0
PULL_BACKOFF_MAX = 300.0
ERR_IMAGE_PULL_SHOWN = 1.0        # ErrImagePull is shown this long before ImagePullBackOff
NODE_STATUS_REPORT_FREQUENCY = 60.0   # post an unchanged node status this often (the Lease is the heartbeat)
PODCIDR_WAIT = 2.0                # wait this long for the IPAM controller before a fallback CIDR
DEFAULT_GRACE = 30


def _parse_quantity_bytes(text: str) -> int:
    from kbox.runtime.sim import _quantity_bytes
    v = _quantity_bytes(text)
    return int(v or 0)


# ---- per-pod bookkeeping ---------------------------------------------------------

@dataclass
class ProbeState:
    next_at: float | None = None     # clock time of the next run
    successes: int = 0
    failures: int = 0
    result: bool | None = None       # None: nothing decided yet


@dataclass
class ContainerRecord:
    name: str
    init: bool = False
    id: str | None = None                    # the current instance
    prev_id: str | None = None               # the last dead instance (logs --previous)
    last_state: ContainerStatus | None = None
    restart_count: int = 0                   # instances created after the first
    created_any: bool = False
    image_id: str = ""
    # restart back-off (the kubelet's per-container Backoff entry)
    backoff: float = 0.0                     # 0: no entry
    backoff_last: float | None = None        # finish time of the crash that set it
    backoff_event_for: str | None = None
    # image
    image_ok: bool = False                   # the image is there for the next instance
    pull_started: float | None = None
    pull_ready_at: float | None = None
    pull_size: int = 0
    pull_backoff: float = 0.0
    pull_failed_at: float | None = None
    pull_retry_at: float | None = None
    pull_error: str = ""
    pull_backoff_event_for: float | None = None
    waiting: tuple[str, str] | None = None   # (reason, message) shown while no instance runs
    # probes and readiness, per instance
    startup: ProbeState = field(default_factory=ProbeState)
    liveness: ProbeState = field(default_factory=ProbeState)
    readiness: ProbeState = field(default_factory=ProbeState)
    started_ok: bool = False                 # startup probe passed (or none)
    ready: bool = False
    started_event_for: str | None = None
    killing_for: str | None = None           # instance being killed after a probe failure

    def new_instance(self) -> None:
        self.startup, self.liveness, self.readiness = ProbeState(), ProbeState(), ProbeState()
        self.started_ok = False
        self.ready = False
        self.killing_for = None
        self.waiting = None


SANDBOX_RETRY_SECONDS = 5.0


@dataclass
class PodRecord:
    uid: str
    key: str
    sandbox_id: str | None = None
    ip: str | None = None
    start_time: float | None = None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    final_phase: str | None = None
    stopping: bool = False
    sandbox_stopped: bool = False
    written: dict[str, Any] | None = None    # the last status we wrote
    written_rv: int = 0                      # the resourceVersion our write produced
    cidr_wait_until: float | None = None
    dns_warned: bool = False                 # the pod's DNS warnings were recorded


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def _pod_ref(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"{m['name']}_{m.get('namespace', '')}({m.get('uid', '')})"


def _default_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _image_ref(image: str, image_id: str) -> str:
    """imageID as the kubelet shows it: the repository with the image's digest."""
    last = image.rsplit("/", 1)[-1]
    repo = image[: len(image) - len(last.split(":", 1)[1]) - 1] if ":" in last else image
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/", 1)[0] and ":" not in repo.split("/", 1)[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@{image_id}" if image_id else ""


# ---- the agent ---------------------------------------------------------------------

class NodeAgent:
    """The kubelet of one node. Built by NodePool; also the node's kubelet API endpoint
    (`logs`, `exec`, `stats`) that the API server reaches through `api.node_endpoints`."""

    def __init__(self, client: Client, name: str, runtime: Runtime, clock: Clock, config, *,
                 index: int, spec, recorder: EventRecorder,
                 wake: Callable[[str, float], None],
                 busy: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.name = name
        self.runtime = runtime
        self.clock = clock
        self.config = config
        self.timings = config.timings
        self.index = index
        self.spec = spec
        self.recorder = recorder
        self.wake = wake             # wake(pod_key, at_clock_time)
        self.busy = busy or (lambda: False)
        self.stopped = False
        self.records: dict[str, PodRecord] = {}      # by pod key
        self._ip_lock = threading.Lock()
        self._used_ips: set[int] = set()
        self._next_ip = 2            # .1 is the node's bridge, as in kind
        self._cidr: ipaddress.IPv4Network | None = None
        self._warm: list[tuple[str, str]] = []       # (sandbox id, its IP), oldest first
        self._warm_adopt_pending = True
        self._adoptable: dict[str, list[PodSandboxStatus]] | None = None   # by pod uid
        self.warm_needed: Callable[[], None] = lambda: None    # the pool's warm thread wakes
        n = index + 2
        self.node_ip = f"172.18.{n // 254}.{n % 254 + 1}" if n >= 254 else f"172.18.0.{n}"
        digest = hashlib.sha256(f"{name}/{index}".encode()).hexdigest()
        self.machine_id = digest[:32]
        self.system_uuid = f"{digest[32:40]}-{digest[40:44]}-{digest[44:48]}-{digest[48:52]}-{digest[52:64]}"
        self.boot_id = self._new_boot_id(0)
        self.boots = 0
        self.registered_at: float | None = None
        self.last_lease = float("-inf")
        self.last_status = float("-inf")
        self._posted: list[dict[str, Any]] | None = None      # conditions as last posted (no times)
        self._lease_rv: str | None = None
        self._lease_obj: dict[str, Any] | None = None
        from kbox.node.proxy import ServiceProxy
        self.proxy = ServiceProxy(name)
        # the kubelet's --cluster-dns and --cluster-domain: kbox's DNS Service (kbox.dns)
        from kbox.dns import dns_service_ip
        from kbox.dns.resolvconf import DnsSettings
        self.dns_settings = DnsSettings(cluster_dns=[dns_service_ip(config.networking.service_subnet)])

    def _new_boot_id(self, boots: int) -> str:
        d = hashlib.sha256(f"{self.name}/{self.index}/boot{boots}".encode()).hexdigest()
        return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"

    # ---- the Node object ---------------------------------------------------------
    def capacity(self) -> dict[str, str]:
        s = self.spec
        try:
            mem = f"{_parse_quantity_bytes(s.memory) // 1024}Ki"
        except (TypeError, ValueError):
            mem = str(s.memory)
        return {"cpu": str(s.cpu), "ephemeral-storage": "104857600Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": mem, "pods": str(s.pods)}

    def node_object(self) -> dict[str, Any]:
        s = self.spec
        labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": self.name,
                  "kubernetes.io/os": "linux", **(s.labels or {})}
        capacity = self.capacity()
        rt, rtv = self.runtime.version()
        spec: dict[str, Any] = {}
        if s.taints:
            spec["taints"] = [dict(t) for t in s.taints]
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": labels,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                                         "kbox.io/runtime": rt}},
            "spec": spec,
            "status": {
                "capacity": capacity, "allocatable": dict(capacity),
                "conditions": self._conditions(),
                "addresses": [{"type": "InternalIP", "address": self.node_ip},
                              {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
                "nodeInfo": self._node_info(),
            },
        }

    def _node_info(self) -> dict[str, str]:
        rt, rtv = self.runtime.version()
        return {"machineID": self.machine_id, "systemUUID": self.system_uuid,
                "bootID": self.boot_id, "kernelVersion": "6.8.0-kbox",
                "osImage": f"kbox {rt} node (Debian GNU/Linux 12 (bookworm))",
                "containerRuntimeVersion": f"{rt}://{rtv}",
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux", "architecture": "amd64"}

    def _condition_values(self) -> list[tuple[str, str, str, str]]:
        ok = self.runtime.healthy()
        ready = ("True", "KubeletReady", "kubelet is posting ready status") if ok else \
            ("False", "KubeletNotReady", "container runtime is down")
        return [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", *ready),
        ]

    def _conditions(self) -> list[dict[str, Any]]:
        now = iso_time(self.clock.now())
        return [{"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now,
                 "reason": r, "message": m} for t, s, r, m in self._condition_values()]

    def register(self) -> None:
        """Create our Node (or take an existing one over, as a restarted kubelet does),
        then the Lease."""
        self.registered_at = self.clock.now()
        try:
            node = self.client.create("nodes", self.node_object())
            self.last_status = self.clock.now()
            self._posted = self._condition_values()  # type: ignore[assignment]
            self._node_events(node)
        except ApiError as e:
            if e.code != 409:
                raise
            self.post_status(force=True)
        self.renew_lease()

    def _node_events(self, node: dict[str, Any]) -> None:
        ev = lambda typ, reason, msg: self.recorder.event(node, typ, reason, msg, host=self.name)  # noqa: E731
        ev("Normal", "Starting", "Starting kubelet.")
        ev("Normal", "NodeHasSufficientMemory", f"Node {self.name} status is now: NodeHasSufficientMemory")
        ev("Normal", "NodeHasNoDiskPressure", f"Node {self.name} status is now: NodeHasNoDiskPressure")
        ev("Normal", "NodeHasSufficientPID", f"Node {self.name} status is now: NodeHasSufficientPID")
        ev("Normal", "NodeReady", f"Node {self.name} status is now: NodeReady")

    def renew_lease(self) -> None:
        now = self.clock.now()
        self.last_lease = now
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": int(self.timings.node_lease_duration),
                "renewTime": iso_micro(now)}
        if self._lease_obj is not None:
            lease = dict(self._lease_obj)
            lease["spec"] = {**lease.get("spec", {}), **spec}
            try:
                self._lease_obj = self.client.update("leases", lease, "kube-node-lease")
                return
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                self._lease_obj = None
        try:
            cur = self.client.get("leases", self.name, "kube-node-lease")
            cur["spec"] = {**(cur.get("spec") or {}), **spec}
            self._lease_obj = self.client.update("leases", cur, "kube-node-lease")
            return
        except ApiError as e:
            if e.code != 404:
                raise
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                 "spec": {**spec, "acquireTime": iso_micro(now)}}
        try:
            node = self.client.get("nodes", self.name)
            lease["metadata"]["ownerReferences"] = [{
                "apiVersion": "v1", "kind": "Node", "name": self.name,
                "uid": node["metadata"]["uid"]}]
        except ApiError:
            pass
        try:
            self._lease_obj = self.client.create("leases", lease, "kube-node-lease")
        except ApiError as e:
            if e.code != 409:
                raise
            self._lease_obj = None      # created meanwhile: the next renewal updates it

    def status_due(self, now: float) -> bool:
        """Post when a condition changed, or when the last post is old (the Lease is the
        heartbeat; the status is re-posted every NODE_STATUS_REPORT_FREQUENCY)."""
        report = max(NODE_STATUS_REPORT_FREQUENCY, self.timings.node_status_update_frequency)
        return self._condition_values() != self._posted or now - self.last_status >= report

    def post_status(self, force: bool = False) -> None:
        """Post the node's conditions (fresh heartbeat times; transitions keep their time)."""
        self.last_status = self.clock.now()
        try:
            node = self.client.get("nodes", self.name)
        except ApiError as e:
            if e.code == 404:      # deleted under us: register again, as the kubelet does
                node = self.client.create("nodes", self.node_object())
                self._posted = self._condition_values()  # type: ignore[assignment]
                self._node_events(node)
                return
            raise
        now = iso_time(self.clock.now())
        fresh = {c["type"]: c for c in self._conditions()}
        conds = []
        for c in (node.get("status") or {}).get("conditions") or []:
            want = fresh.pop(c.get("type"), None)
            if want is None:
                conds.append(c)
            elif c.get("status") != want["status"]:
                conds.append(want)          # a transition: new lastTransitionTime
            else:
                conds.append({**c, "lastHeartbeatTime": now, "reason": want["reason"],
                              "message": want["message"]})
        conds.extend(fresh.values())
        body: dict[str, Any] = {"status": {"conditions": conds}}
        info = (node.get("status") or {}).get("nodeInfo") or {}
        if info.get("bootID") != self.boot_id:
            body["status"]["nodeInfo"] = self._node_info()
        self.client.patch("nodes", self.name, body, "merge", subresource="status")
        self._posted = self._condition_values()  # type: ignore[assignment]
        if force and info.get("bootID") != self.boot_id:
            self._node_events(node)

    def restart(self) -> None:
        """The machine came back (start_node): a new boot, register again, renew the Lease."""
        self.boots += 1
        self.boot_id = self._new_boot_id(self.boots)
        self._lease_obj = None
        self.drop_warm()             # they died with the machine
        self._adoptable = None
        self.stopped = False
        self.register()
        self.warm_needed()

    # ---- pod IPs -------------------------------------------------------------------
    def _pod_cidr(self, pod_key: str, rec: PodRecord) -> ipaddress.IPv4Network | None:
        """The node's spec.podCIDR; a fallback 10.244.N.0/24 when IPAM did not give one in time."""
        if self._cidr is not None or self._node_cidr() is not None:
            return self._cidr
        now = self.clock.now()
        if rec.cidr_wait_until is None:
            rec.cidr_wait_until = max(now, (self.registered_at or now) + PODCIDR_WAIT)
        if now < rec.cidr_wait_until:
            return None
        self._cidr = ipaddress.ip_network(f"10.244.{self.index % 256}.0/24", strict=False)
        return self._cidr

    def claim_ip(self, ip: str) -> None:
        """Mark an address already in use (a pod adopted after a restart)."""
        net = self._cidr or ipaddress.ip_network(f"{ip}/24", strict=False)
        off = int(ipaddress.ip_address(ip)) - int(net.network_address)
        if 0 <= off < net.num_addresses:
            with self._ip_lock:
                self._used_ips.add(off)

    def allocate_ip(self, net: ipaddress.IPv4Network) -> str:
        size = net.num_addresses
        with self._ip_lock:
            for _ in range(size):
                off = self._next_ip
                self._next_ip = off + 1 if off + 1 < size - 1 else 2
                if off not in self._used_ips:
                    self._used_ips.add(off)
                    return str(net.network_address + off)
        raise RuntimeError_(f"no free pod IP in {net} on {self.name}")

    def release_ip(self, ip: str | None) -> None:
        if not ip or self._cidr is None:
            return
        try:
            off = int(ipaddress.ip_address(ip)) - int(self._cidr.network_address)
        except ValueError:
            return
        with self._ip_lock:
            self._used_ips.discard(off)

    # ---- warm sandboxes ------------------------------------------------------------------
    # A real sandbox's start is mostly its network setup (~0.3 s on Docker). A runtime that
    # can (supports_warm_sandboxes) keeps `nodes.warmSandboxes` of them started ahead, each
    # with an address from this node's range; a new pod claims one and only starts its
    # containers. The pool's warm thread refills them after the claiming pod has started.
    def warm_deficit(self) -> int:
        if self.stopped or not self.runtime.supports_warm_sandboxes:
            return 0
        with self._ip_lock:
            return max(0, self.config.nodes.warm_sandboxes - len(self._warm))

    def fill_warm(self) -> None:
        """Start warm sandboxes until there are enough (called from the pool's warm thread)."""
        if self._warm_adopt_pending:
            self._adopt_warm()
        net = self._cidr or self._node_cidr()
        while self.warm_deficit() > 0 and net is not None:
            ip = self.allocate_ip(net)
            try:
                sid = self.runtime.start_warm_sandbox(ip)
            except RuntimeError_ as e:          # the engine is down or busy: try again later
                self.release_ip(ip)
                log.info("kubelet %s: no warm sandbox this time: %s", self.name, e)
                return
            with self._ip_lock:
                self._warm.append((sid, ip))

    def _node_cidr(self) -> ipaddress.IPv4Network | None:
        """The Node's spec.podCIDR once the node IPAM gave one (None before)."""
        try:
            cidr = (self.client.get("nodes", self.name).get("spec") or {}).get("podCIDR")
        except ApiError:
            return None
        if cidr:
            self._cidr = ipaddress.ip_network(cidr, strict=False)
        return self._cidr

    def _adopt_warm(self) -> None:
        """After kbox or the node restarted: keep the running warm sandboxes nobody claimed,
        remove the dead ones."""
        for box in self.runtime.list_pod_sandboxes():
            if box.pod_uid:
                continue
            if box.state == "ready" and box.ip:
                self.claim_ip(box.ip)
                with self._ip_lock:
                    if all(sid != box.id for sid, _ in self._warm):
                        self._warm.append((box.id, box.ip))
            else:
                try:
                    self.runtime.remove_pod_sandbox(box.id)
                except ContainerNotFound:
                    pass
        self._warm_adopt_pending = False

    def drop_warm(self, *, remove: bool = False) -> None:
        """Forget the warm sandboxes (their machine restarted, or the node goes away)."""
        with self._ip_lock:
            warm, self._warm = self._warm, []
        for sid, ip in warm:
            if remove:
                try:
                    self.runtime.stop_pod_sandbox(sid)
                    self.runtime.remove_pod_sandbox(sid)
                except RuntimeError_:
                    pass
            self.release_ip(ip)
        self._warm_adopt_pending = not remove

    def _claim_warm(self, pod: dict[str, Any], rec: PodRecord) -> bool:
        with self._ip_lock:
            if not self._warm:
                return False
            sid, ip = self._warm.pop(0)
        m = pod["metadata"]
        try:
            self.runtime.claim_sandbox(sid, m.get("uid", ""), m["name"], m.get("namespace", ""))
        except RuntimeUnavailable:
            self.release_ip(ip)
            raise
        except RuntimeError_ as e:              # it died meanwhile: a cold start instead
            log.info("kubelet %s: warm sandbox %s unusable: %s", self.name, sid[:12], e)
            self.release_ip(ip)
            return False
        rec.sandbox_id, rec.ip = sid, ip
        self.warm_needed()
        return True

    # ---- events --------------------------------------------------------------------
    def event(self, pod: dict[str, Any], type_: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        self.recorder.event(pod, type_, reason, message, host=self.name)

    # ---- pods ------------------------------------------------------------------------
    def forget_pod(self, key: str) -> None:
        """The pod is gone from the API (or moved away): tear down what is left of it."""
        rec = self.records.pop(key, None)
        if rec is None:
            return
        try:
            for c in rec.containers.values():
                for cid in (c.id, c.prev_id):
                    if cid:
                        try:
                            self.runtime.stop_container(cid, 0)
                            self.runtime.remove_container(cid)
                        except ContainerNotFound:
                            pass
            if rec.sandbox_id:
                self.runtime.stop_pod_sandbox(rec.sandbox_id)
                self.runtime.remove_pod_sandbox(rec.sandbox_id)
        except RuntimeUnavailable:
            pass
        self.release_ip(rec.ip)

    def sync_pod(self, key: str, pod: dict[str, Any]) -> None:
        if self.stopped:
            return
        m = pod["metadata"]
        rec = self.records.get(key)
        if rec is None or rec.uid != m.get("uid"):
            if rec is not None:
                self.forget_pod(key)
            rec = self.records[key] = PodRecord(m.get("uid", ""), key)
        wakes: list[float] = []
        try:
            if m.get("deletionTimestamp"):
                self._terminate(key, pod, rec, wakes)
            else:
                self._run(key, pod, rec, wakes)
                self._report(pod, rec, bool(wakes) and min(wakes) <= self.clock.now() + 2.0)
        except RuntimeUnavailable:
            return
        if wakes:
            self.wake(key, max(self.clock.now(), min(wakes)))

    # ---- running a pod ----------------------------------------------------------------
    def _run(self, key: str, pod: dict[str, Any], rec: PodRecord, wakes: list[float]) -> None:
        now = self.clock.now()
        old_phase = (pod.get("status") or {}).get("phase")
        if rec.final_phase is None and old_phase in ("Succeeded", "Failed") and rec.sandbox_id is None:
            rec.final_phase = old_phase       # finished before we knew it: never run it again
        if rec.final_phase:
            self._finish(rec)
            return
        if rec.sandbox_id is None and not rec.containers:
            self._adopt(pod, rec)
        elif rec.sandbox_id is not None and self.runtime.needs_polling:
            self._check_sandbox(pod, rec)
        if rec.sandbox_id is None:
            net = self._pod_cidr(key, rec)
            if net is None:
                wakes.append(rec.cidr_wait_until)  # type: ignore[arg-type]
                return
            if rec.ip is None and self._claim_warm(pod, rec):
                pass                           # a sandbox started ahead is now this pod's
            else:
                self._start_sandbox(pod, rec, net, wakes)
                if rec.sandbox_id is None:
                    return
            rec.start_time = now
        self._run_containers(pod, rec, wakes)

    def _start_sandbox(self, pod: dict[str, Any], rec: PodRecord, net: ipaddress.IPv4Network,
                       wakes: list[float]) -> None:
        m = pod["metadata"]
        rec.ip = rec.ip or self.allocate_ip(net)
        try:
            rec.sandbox_id = self.runtime.run_pod_sandbox(
                m.get("uid", ""), m["name"], m.get("namespace", ""), self.name, rec.ip,
                labels=m.get("labels") or {}, annotations=m.get("annotations") or {})
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as e:
            # as the kubelet: say so, and try again with a fresh address a little later
            self.event(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
            self.release_ip(rec.ip)
            rec.ip = None
            wakes.append(self.clock.now() + SANDBOX_RETRY_SECONDS)

    def _run_containers(self, pod: dict[str, Any], rec: PodRecord, wakes: list[float]) -> None:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        for c in spec.get("initContainers") or []:
            cr = rec.containers.get(c["name"])
            if cr is None:
                cr = rec.containers[c["name"]] = ContainerRecord(c["name"], init=True)
            st = self._step_container(pod, rec, c, cr, wakes, policy=policy)
            if st is None or st.state != EXITED or st.exit_code != 0:
                return               # init containers run one at a time, in order
        for c in spec.get("containers") or []:
            cr = rec.containers.get(c["name"])
            if cr is None:
                cr = rec.containers[c["name"]] = ContainerRecord(c["name"])
            self._step_container(pod, rec, c, cr, wakes, policy=policy)

    def _adopt(self, pod: dict[str, Any], rec: PodRecord) -> None:
        """A pod we have no record of may already run here (kbox restarted and found its
        node containers): take over its sandbox and containers, as a restarted kubelet
        reads the runtime's state instead of starting the pod again."""
        if not self.runtime.needs_polling:
            return                      # the sim runtime lives and dies with this process
        uid = pod["metadata"].get("uid", "")
        with self._ip_lock:
            if self._adoptable is None:     # what ran before this agent (re)started: one listing
                self._adoptable = {}
                for b in self.runtime.list_pod_sandboxes():
                    if b.pod_uid and b.state == "ready":
                        self._adoptable.setdefault(b.pod_uid, []).append(b)
            boxes = self._adoptable.pop(uid, [])
        if not boxes:
            return
        box = max(boxes, key=lambda b: b.created_at or 0)
        rec.sandbox_id, rec.ip = box.id, box.ip
        if box.ip:
            self.claim_ip(box.ip)          # never hand an adopted pod's address out again
        rec.start_time = box.created_at or self.clock.now()
        latest: dict[str, ContainerStatus] = {}
        for st in self.runtime.list_containers(sandbox_id=box.id):
            cur = latest.get(st.name)
            if cur is None or st.attempt > cur.attempt:
                latest[st.name] = st
        init_names = {c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []}
        for name, st in latest.items():
            cr = rec.containers[name] = ContainerRecord(name, init=name in init_names)
            cr.id, cr.created_any, cr.image_ok = st.id, True, True
            cr.restart_count = st.attempt
            cr.image_id = st.image_id
            if st.state == RUNNING:
                cr.started_event_for = st.id
        for c in pod.get("status", {}).get("containerStatuses") or []:
            cr = rec.containers.get(c.get("name", ""))
            if cr is not None and c.get("ready"):
                cr.started_ok = cr.ready = True     # it was ready before the restart
        log.info("node %s: adopted pod %s (sandbox %s, %d container(s))",
                 self.name, rec.key, box.id[:12], len(latest))

    def _check_sandbox(self, pod: dict[str, Any], rec: PodRecord) -> None:
        """A real sandbox can die under us (its node restarted): make a new one, and the
        containers start again in it, as the kubelet does on SandboxChanged."""
        if rec.sandbox_stopped:
            return
        try:
            box = self.runtime.pod_sandbox_status(rec.sandbox_id or "")
            alive = box.state == "ready"
        except ContainerNotFound:
            alive = False
        if alive:
            return
        self.event(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        old = rec.sandbox_id
        rec.sandbox_id = None
        try:
            self.runtime.remove_pod_sandbox(old or "")
        except ContainerNotFound:
            pass

    def _finish(self, rec: PodRecord) -> None:
        """A terminal pod: make sure nothing of it runs; keep its containers for logs."""
        if rec.sandbox_id and not rec.sandbox_stopped:
            for cr in rec.containers.values():
                if cr.id:
                    try:
                        self.runtime.stop_container(cr.id, 0)
                    except ContainerNotFound:
                        pass
            self.runtime.stop_pod_sandbox(rec.sandbox_id)
            rec.sandbox_stopped = True

    @staticmethod
    def _restart_wanted(st: ContainerStatus, init: bool, policy: str) -> bool:
        if policy == "Never":
            return False
        if init or policy == "OnFailure":
            return st.exit_code != 0
        return True

    def _step_container(self, pod: dict[str, Any], rec: PodRecord, c: dict[str, Any],
                        cr: ContainerRecord, wakes: list[float], *,
                        policy: str) -> ContainerStatus | None:
        """Take the next step for one container; return its runtime status (None: no instance)."""
        now = self.clock.now()
        st = self.runtime.container_status(cr.id) if cr.id else None
        if st is not None and st.state == EXITED:
            cr.ready = False
            if not self._restart_wanted(st, cr.init, policy):
                return st
            finished = st.finished_at if st.finished_at is not None else now
            # the kubelet's Backoff: in back-off while now - finishedAt < the entry's duration
            if cr.backoff > 0 and cr.backoff_last is not None \
                    and finished - cr.backoff_last <= 2 * self.timings.restart_backoff_max \
                    and now - finished < cr.backoff:
                cr.waiting = ("CrashLoopBackOff",
                              f"back-off {int(cr.backoff)}s restarting failed container={c['name']} "
                              f"pod={_pod_ref(pod)}")
                if cr.backoff_event_for != cr.id:
                    cr.backoff_event_for = cr.id
                    self.event(pod, "Warning", "BackOff",
                               f"Back-off restarting failed container {c['name']} in pod {_pod_ref(pod)}")
                wakes.append(finished + cr.backoff)
                return st
            # restart now; the next crash waits longer (reset after 2 × max of clean running)
            if cr.backoff <= 0 or cr.backoff_last is None \
                    or finished - cr.backoff_last > 2 * self.timings.restart_backoff_max:
                cr.backoff = self.timings.restart_backoff_base
            else:
                cr.backoff = min(cr.backoff * 2, self.timings.restart_backoff_max)
            cr.backoff_last = finished
            if cr.prev_id:
                try:
                    self.runtime.remove_container(cr.prev_id)
                except ContainerNotFound:
                    pass
            cr.prev_id, cr.last_state, cr.id = cr.id, st, None
            cr.image_ok = False
            cr.waiting = None
            st = None
        if cr.id is None:
            if not self._ensure_image(pod, c, cr, wakes):
                return None
            from kbox.node.envvars import CreateContainerConfigError, resolve_env
            env_warnings: list[str] = []
            try:
                env = resolve_env(self.client, pod, c, pod_ip=rec.ip, host_ip=self.node_ip,
                                  node_allocatable=self.capacity(), warnings=env_warnings)
            except CreateContainerConfigError as e:
                self.event(pod, "Warning", "Failed", f"Error: {e}")
                cr.waiting = ("CreateContainerConfigError", str(e))
                wakes.append(now + self.timings.restart_backoff_base)
                return None
            for w in env_warnings:
                self.event(pod, "Warning", "InvalidEnvironmentVariableNames", w)
            attempt = cr.restart_count + 1 if cr.created_any else 0
            try:
                cid = self.runtime.create_container(rec.sandbox_id or "", _expanded(c, env), pod, env,
                                                    attempt=attempt,
                                                    resolv_conf=self._resolv_conf(pod, rec))
            except RuntimeUnavailable:
                raise
            except RuntimeError_ as e:
                cr.waiting = ("CreateContainerError", str(e))
                self.event(pod, "Warning", "Failed", f"Error: {e}")
                wakes.append(now + self.timings.restart_backoff_base)
                return None
            if cr.created_any:
                cr.restart_count += 1
            cr.created_any = True
            cr.id = cid
            cr.image_ok = False
            cr.new_instance()
            self.event(pod, "Normal", "Created", f"Created container: {c['name']}")
            self.runtime.start_container(cid)
            st = self.runtime.container_status(cid)
        assert st is not None
        if st.state == RUNNING:
            if cr.started_event_for != cr.id:
                cr.started_event_for = cr.id
                self.event(pod, "Normal", "Started", f"Started container {c['name']}")
            if not cr.init:
                self._probe(pod, c, cr, st, wakes)
            else:
                cr.started_ok = True
        nxt = self.runtime.next_change(cr.id) if cr.id else None
        if nxt is not None:
            wakes.append(nxt)
        elif cr.id and self.runtime.needs_polling:
            wakes.append(self.clock.now() + self.timings.sync_frequency)
        return st

    def _resolv_conf(self, pod: dict[str, Any], rec: PodRecord) -> str:
        """The pod's /etc/resolv.conf from its dnsPolicy and dnsConfig (the kubelet's DNS
        configurer); what it had to cut or fall back on is said once per pod, as a Warning."""
        from kbox.dns.resolvconf import pod_dns
        dns = pod_dns(pod, self.dns_settings)
        if not rec.dns_warned:
            rec.dns_warned = True
            for reason, message in dns.warnings:
                self.event(pod, "Warning", reason, message)
        return dns.text()

    def _ensure_image(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
                      wakes: list[float]) -> bool:
        """True when the image is there for a new instance; else the waiting reason is set."""
        if cr.image_ok:
            return True
        now = self.clock.now()
        image = c.get("image", "")
        if cr.pull_ready_at is not None:             # a pull in flight
            if now < cr.pull_ready_at:
                wakes.append(cr.pull_ready_at)
                return False
            took = max(0, int(round((cr.pull_ready_at - (cr.pull_started or now)) * 1000)))
            self.event(pod, "Normal", "Pulled",
                       f'Successfully pulled image "{image}" in {took}ms ({took}ms including waiting). '
                       f"Image size: {cr.pull_size} bytes.")
            cr.pull_ready_at = None
            cr.image_ok = True
            cr.waiting = None
            return True
        policy = c.get("imagePullPolicy") or _default_pull_policy(image)
        present = self.runtime.image_present(image)
        if policy == "Never" or (policy == "IfNotPresent" and present):
            if not present:
                msg = f'Container image "{image}" is not present with pull policy of Never'
                if cr.waiting is None or cr.waiting[0] != "ErrImageNeverPull":
                    self.event(pod, "Warning", "ErrImageNeverPull", msg)
                cr.waiting = ("ErrImageNeverPull", msg)
                return False
            self.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            cr.image_ok = True
            cr.waiting = None
            return True
        if cr.pull_retry_at is not None and now < cr.pull_retry_at:
            shown_until = (cr.pull_failed_at or now) + ERR_IMAGE_PULL_SHOWN
            if now >= shown_until:
                cr.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: '
                                                  f"{cr.pull_error}")
                if cr.pull_backoff_event_for != cr.pull_failed_at:
                    cr.pull_backoff_event_for = cr.pull_failed_at
                    self.event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"')
                    self.event(pod, "Warning", "Failed", "Error: ImagePullBackOff")
            else:
                wakes.append(shown_until)
            wakes.append(cr.pull_retry_at)
            return False
        self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        try:
            pulled = self.runtime.pull_image(image, pod=pod, container=c["name"])
        except ImagePullError as e:
            cr.pull_error = str(e)
            cr.pull_backoff = PULL_BACKOFF_BASE if cr.pull_backoff <= 0 else \
                min(cr.pull_backoff * 2, PULL_BACKOFF_MAX)
            cr.pull_failed_at = now
            cr.pull_retry_at = now + cr.pull_backoff
            cr.waiting = ("ErrImagePull", str(e))
            self.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {e}')
            self.event(pod, "Warning", "Failed", "Error: ErrImagePull")
            wakes.append(now + ERR_IMAGE_PULL_SHOWN)
            return False
        cr.pull_backoff = 0.0
        cr.pull_retry_at = None
        cr.pull_started = now
        cr.pull_ready_at = now + max(0.0, pulled.seconds)
        cr.pull_size = pulled.size_bytes
        cr.image_id = pulled.image_id
        cr.waiting = None
        return self._ensure_image(pod, c, cr, wakes)

    # ---- probes ----------------------------------------------------------------------
    def _run_probe(self, c: dict[str, Any], cr: ContainerRecord, kind: str,
                   probe: dict[str, Any]) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds") or 1)
        cid = cr.id or ""
        try:
            if "exec" in probe:
                return self.runtime.probe_exec(cid, list((probe["exec"] or {}).get("command") or []),
                                               timeout, kind=kind)
            if "httpGet" in probe:
                h = probe["httpGet"] or {}
                port = self._port(c, h.get("port"))
                return self.runtime.probe_http(
                    cid, host=h.get("host") or "", port=port, path=h.get("path") or "/",
                    scheme=h.get("scheme") or "HTTP",
                    headers={x.get("name"): x.get("value") for x in h.get("httpHeaders") or []},
                    timeout=timeout, kind=kind)
            if "tcpSocket" in probe:
                t = probe["tcpSocket"] or {}
                return self.runtime.probe_tcp(cid, host=t.get("host") or "",
                                              port=self._port(c, t.get("port")),
                                              timeout=timeout, kind=kind)
            if "grpc" in probe:
                return self.runtime.probe_tcp(cid, host="", port=int((probe["grpc"] or {}).get("port") or 0),
                                              timeout=timeout, kind=kind)
        except ContainerNotFound as e:
            return False, str(e)
        return True, ""

    @staticmethod
    def _port(c: dict[str, Any], port: Any) -> int:
        if isinstance(port, str) and not port.isdigit():
            for p in c.get("ports") or []:
                if p.get("name") == port:
                    return int(p.get("containerPort") or 0)
            return 0
        try:
            return int(port or 0)
        except (TypeError, ValueError):
            return 0

    def _probe_due(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
                   st: ContainerStatus, kind: str, probe: dict[str, Any], ps: ProbeState,
                   wakes: list[float]) -> bool:
        """Run the probe if its time came; True when a run happened (ps updated)."""
        now = self.clock.now()
        period = float(probe.get("periodSeconds") or 10)
        if ps.next_at is None:
            ps.next_at = (st.started_at or now) + float(probe.get("initialDelaySeconds") or 0)
        if now < ps.next_at:
            wakes.append(ps.next_at)
            return False
        ok, why = self._run_probe(c, cr, kind, probe)
        ps.next_at += period
        if ps.next_at <= now:
            ps.next_at = now + period
        wakes.append(ps.next_at)
        if ok:
            ps.successes += 1
            ps.failures = 0
            if ps.successes >= int(probe.get("successThreshold") or 1):
                ps.result = True
        else:
            ps.failures += 1
            ps.successes = 0
            label = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}[kind]
            self.event(pod, "Warning", "Unhealthy", f"{label} probe failed: {why}")
            if ps.failures >= int(probe.get("failureThreshold") or 3):
                ps.result = False
        return True

    def _kill_for_probe(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
                        kind: str, probe: dict[str, Any], wakes: list[float]) -> None:
        if cr.killing_for == cr.id:
            return
        cr.killing_for = cr.id
        self.event(pod, "Normal", "Killing",
                   f"Container {c['name']} failed {kind} probe, will be restarted")
        grace = probe.get("terminationGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        self.runtime.stop_container(cr.id or "", float(grace))
        nxt = self.runtime.next_change(cr.id or "")
        wakes.append(nxt if nxt is not None else self.clock.now())

    def _probe(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
               st: ContainerStatus, wakes: list[float]) -> None:
        if cr.killing_for == cr.id:
            cr.ready = False
            return
        sp, lp, rp = c.get("startupProbe"), c.get("livenessProbe"), c.get("readinessProbe")
        if not cr.started_ok:
            if not sp:
                cr.started_ok = True
            else:
                self._probe_due(pod, c, cr, st, "startup", sp, cr.startup, wakes)
                if cr.startup.result is True:
                    cr.started_ok = True
                elif cr.startup.result is False:
                    cr.ready = False
                    self._kill_for_probe(pod, c, cr, "startup", sp, wakes)
                    return
                if not cr.started_ok:
                    cr.ready = False
                    return
                # liveness and readiness start counting when the container counts as started
                now = self.clock.now()
                for ps in (cr.liveness, cr.readiness):
                    ps.next_at = None
                st = ContainerStatus(st.id, st.name, st.image, st.state, started_at=now)
        if lp:
            self._probe_due(pod, c, cr, st, "liveness", lp, cr.liveness, wakes)
            if cr.liveness.result is False:
                cr.ready = False
                self._kill_for_probe(pod, c, cr, "liveness", lp, wakes)
                return
        if rp:
            self._probe_due(pod, c, cr, st, "readiness", rp, cr.readiness, wakes)
            cr.ready = cr.readiness.result is True
        else:
            cr.ready = True

    # ---- termination -----------------------------------------------------------------
    def _terminate(self, key: str, pod: dict[str, Any], rec: PodRecord, wakes: list[float]) -> None:
        m = pod["metadata"]
        grace = m.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        grace = float(grace or 0)
        if not rec.stopping:
            rec.stopping = True
            for cr in rec.containers.values():
                cr.pull_ready_at = None
                if cr.id:
                    try:
                        st = self.runtime.container_status(cr.id)
                    except ContainerNotFound:
                        continue
                    if st.state != EXITED:
                        if st.state == RUNNING:
                            self.event(pod, "Normal", "Killing", f"Stopping container {cr.name}")
                        self.runtime.stop_container(cr.id, grace)
        pending = []
        for cr in rec.containers.values():
            if cr.id:
                try:
                    st = self.runtime.container_status(cr.id)
                except ContainerNotFound:
                    continue
                if st.state != EXITED:
                    nxt = self.runtime.next_change(cr.id)
                    pending.append(nxt if nxt is not None else self.clock.now() + 1.0)
        if pending:
            wakes.extend(pending)
            return
        if rec.sandbox_id and not rec.sandbox_stopped:
            self.runtime.stop_pod_sandbox(rec.sandbox_id)
            rec.sandbox_stopped = True
        try:
            self.client.delete("pods", m["name"], m.get("namespace"),
                               grace_period_seconds=0, preconditions={"uid": rec.uid})
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        self.forget_pod(key)

    # ---- status ------------------------------------------------------------------------
    def _report(self, pod: dict[str, Any], rec: PodRecord, wake_soon: bool = False) -> None:
        cached = pod.get("status") or {}
        # right after our own write the informer may still hold the older object:
        # then what we wrote is the truth to compare with (and to keep transition times from)
        base = rec.written if rec.written is not None and _rv(pod) < rec.written_rv else cached
        status = self.pod_status(pod, rec, base)
        if rec.final_phase is None and status["phase"] in ("Succeeded", "Failed"):
            rec.final_phase = status["phase"]
            self._finish(rec)
            status = self.pod_status(pod, rec, base)
        if all(base.get(k) == v for k, v in status.items()):
            return
        if rec.written is None and wake_soon and self.busy() and _transitional(status):
            return     # under load, a pod about to start skips its ContainerCreating write
        m = pod["metadata"]
        try:
            out = self.client.patch("pods", m["name"], {"status": status}, "merge",
                                    m.get("namespace"), subresource="status")
        except ApiError as e:
            if e.code in (404, 409, 422):
                return
            raise
        rec.written = {**cached, **status}
        rec.written_rv = _rv(out)

    def _container_api_status(self, c: dict[str, Any], cr: ContainerRecord | None,
                              default_waiting: str) -> dict[str, Any]:
        rt = self.runtime.name
        image = c.get("image", "")
        out: dict[str, Any] = {"name": c["name"], "state": {}, "lastState": {}, "ready": False,
                               "restartCount": cr.restart_count if cr else 0,
                               "image": image, "imageID": "", "started": False}
        st: ContainerStatus | None = None
        if cr is not None and cr.id:
            try:
                st = self.runtime.container_status(cr.id)
            except ContainerNotFound:
                st = None
        if cr is not None and cr.last_state is not None:
            out["lastState"] = {"terminated": _terminated(cr.last_state, rt)}
        if st is not None:
            out["imageID"] = _image_ref(image, st.image_id)
            out["containerID"] = f"{rt}://{st.id}"
        elif cr is not None and cr.last_state is not None:
            out["imageID"] = _image_ref(image, cr.last_state.image_id)
            out["containerID"] = f"{rt}://{cr.last_state.id}"
        if cr is not None and cr.waiting is not None and (st is None or st.state == EXITED):
            w = {"reason": cr.waiting[0]}
            if cr.waiting[1]:
                w["message"] = cr.waiting[1]
            out["state"] = {"waiting": w}
            if st is not None and st.state == EXITED:      # crash-looping: this one is the last state
                out["lastState"] = {"terminated": _terminated(st, rt)}
        elif st is None or st.state == CREATED:
            out["state"] = {"waiting": {"reason": default_waiting}}
        elif st.state == RUNNING:
            out["state"] = {"running": {"startedAt": iso_time(st.started_at or self.clock.now())}}
            out["started"] = bool(cr and cr.started_ok)
            out["ready"] = bool(cr and cr.ready)
        else:
            out["state"] = {"terminated": _terminated(st, rt)}
        # field order as the kubelet writes it
        ordered = {k: out[k] for k in ("name", "state", "lastState", "ready", "restartCount",
                                       "image", "imageID") if k in out}
        if "containerID" in out:
            ordered["containerID"] = out["containerID"]
        ordered["started"] = out["started"]
        return ordered

    def pod_status(self, pod: dict[str, Any], rec: PodRecord,
                   old: dict[str, Any] | None = None) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        old = old if old is not None else (pod.get("status") or {})
        now = self.clock.now()
        init_specs = spec.get("initContainers") or []
        app_specs = spec.get("containers") or []
        policy = spec.get("restartPolicy") or "Always"
        default_waiting = "PodInitializing" if init_specs else "ContainerCreating"
        inits = [self._container_api_status(c, rec.containers.get(c["name"]), default_waiting)
                 for c in init_specs]
        apps = [self._container_api_status(c, rec.containers.get(c["name"]), default_waiting)
                for c in app_specs]

        # ---- phase, as the kubelet's getPhase
        pending_init = failed_init = 0
        for s in inits:
            t = s["state"].get("terminated")
            if t is not None and t.get("exitCode") == 0:
                continue
            pending_init += 1
            last = (s.get("lastState") or {}).get("terminated")
            if (t is not None and t.get("exitCode") != 0) or (last is not None and "waiting" in s["state"]):
                failed_init += 1
        initialized = pending_init == 0
        running = waiting = stopped = succeeded = 0
        for s in apps:
            st = s["state"]
            if "running" in st:
                running += 1
            elif "terminated" in st:
                stopped += 1
                if st["terminated"].get("exitCode") == 0:
                    succeeded += 1
            elif "waiting" in st:
                if (s.get("lastState") or {}).get("terminated") is not None:
                    stopped += 1
                else:
                    waiting += 1
        if rec.final_phase:
            phase = rec.final_phase
        elif failed_init and policy == "Never":
            phase = "Failed"
        elif pending_init:
            phase = "Pending"
        elif waiting:
            phase = "Pending"
        elif running:
            phase = "Running"
        elif stopped:
            if policy == "Always":
                phase = "Running"
            elif stopped == succeeded:
                phase = "Succeeded"
            elif policy == "Never":
                phase = "Failed"
            else:
                phase = "Running"
        else:
            phase = "Pending"
        terminal = phase in ("Succeeded", "Failed")
        if terminal:
            for s in apps:
                s["ready"] = False

        # ---- conditions (transition times kept while the status stays)
        old_conds = {c.get("type"): c for c in old.get("conditions") or []}
        ts = iso_time(now)

        def cond(t: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
            status = "True" if ok else "False"
            prev = old_conds.get(t)
            c: dict[str, Any] = {"type": t, "status": status, "lastProbeTime": None,
                                 "lastTransitionTime": prev.get("lastTransitionTime", ts)
                                 if prev and prev.get("status") == status else ts}
            if reason:
                c["reason"] = reason
            if message:
                c["message"] = message
            return c

        not_ready = [s["name"] for s in apps if not s["ready"]]
        ready = bool(apps) and not not_ready and phase == "Running"
        if terminal:
            ready_reason, ready_msg = "PodCompleted", None
        else:
            ready_reason = None if ready else "ContainersNotReady"
            ready_msg = None if ready else f"containers with unready status: [{' '.join(not_ready)}]"
        if initialized:
            init_reason, init_msg = ("PodCompleted" if terminal and init_specs else None), None
        else:
            incomplete = [s["name"] for s in inits if not ((s["state"].get("terminated") or {}).get("exitCode") == 0
                                                          and "terminated" in s["state"])]
            init_reason = "ContainersNotInitialized"
            init_msg = f"containers with incomplete status: [{' '.join(incomplete)}]"
        sandbox_up = rec.sandbox_id is not None and not rec.sandbox_stopped
        conds = [cond("PodReadyToStartContainers", sandbox_up),
                 cond("Initialized", initialized, init_reason, init_msg),
                 cond("Ready", ready, ready_reason, ready_msg),
                 cond("ContainersReady", ready, ready_reason, ready_msg)]
        mine = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"}
        for t, c in old_conds.items():
            if t not in mine:
                conds.append(c)         # PodScheduled and readiness gates: not ours to change

        status: dict[str, Any] = {"phase": phase, "conditions": conds,
                                  "hostIP": self.node_ip, "hostIPs": [{"ip": self.node_ip}]}
        if rec.ip:
            status["podIP"] = rec.ip
            status["podIPs"] = [{"ip": rec.ip}]
        if rec.start_time is not None:
            status["startTime"] = old.get("startTime") or iso_time(rec.start_time)
        if inits:
            status["initContainerStatuses"] = inits
        status["containerStatuses"] = apps
        return status

    # ---- the kubelet API the API server reaches (logs, exec, stats) -------------------
    def _unreachable(self, what: str) -> ApiError:
        return errors.ApiError(
            500, "InternalError",
            f'Get "https://{self.node_ip}:{KUBELET_PORT}/{what}": dial tcp {self.node_ip}:{KUBELET_PORT}: '
            "connect: no route to host")

    def _container_id(self, pod: dict[str, Any], container: str, previous: bool, what: str) -> str:
        if self.stopped or not self.runtime.healthy():
            raise self._unreachable(what)
        m = pod["metadata"]
        rec = self.records.get(f"{m.get('namespace')}/{m['name']}")
        cr = rec.containers.get(container) if rec and rec.uid == m.get("uid") else None
        if previous:
            if cr is None or not cr.prev_id:
                raise errors.bad_request(f'previous terminated container "{container}" in pod '
                                         f'"{m["name"]}" not found')
            return cr.prev_id
        cid = (cr.id or cr.prev_id) if cr else None
        if not cid:
            reason = (cr.waiting[0] if cr and cr.waiting else
                      ("PodInitializing" if (pod.get("spec") or {}).get("initContainers")
                       else "ContainerCreating"))
            raise errors.bad_request(f'container "{container}" in pod "{m["name"]}" '
                                     f"is waiting to start: {reason}")
        return cid

    def logs(self, pod: dict[str, Any], container: str, *, follow: bool = False,
             previous: bool = False, tail_lines: int | None = None, timestamps: bool = False,
             since_seconds: int | None = None, stop: threading.Event | None = None) -> Iterator[str]:
        cid = self._container_id(pod, container, previous, "containerLogs")
        lines = self.runtime.container_logs(cid, tail=tail_lines, timestamps=timestamps or bool(since_seconds),
                                            follow=follow and not previous, stop=stop)
        if not since_seconds:
            return lines
        return self._since(lines, since_seconds, timestamps)

    def _since(self, lines: Iterator[str], since_seconds: int, keep_ts: bool) -> Iterator[str]:
        from kbox.clock import parse_time
        cutoff = self.clock.now() - since_seconds
        for line in lines:
            ts, _, rest = line.partition(" ")
            t = parse_time(ts)
            if t is not None and t < cutoff:
                continue
            yield line if keep_ts else rest

    def exec(self, pod: dict[str, Any], container: str, command: list[str], *,
             stdin: bytes | None = None, tty: bool = False) -> tuple[int, bytes, bytes]:
        cid = self._container_id(pod, container, False, "exec")
        try:
            return self.runtime.exec_sync(cid, command, stdin)
        except ContainerNotFound:
            raise errors.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" '
                                     "is not running")

    def exec_stream(self, pod: dict[str, Any], container: str, command: list[str], *,
                    stdin: bool = False, tty: bool = False) -> ExecSession:
        """A streaming exec (kubectl exec over WebSocket): see Runtime.exec_stream."""
        cid = self._container_id(pod, container, False, "exec")
        try:
            return self.runtime.exec_stream(cid, command, stdin=stdin, tty=tty)
        except ContainerNotFound:
            raise errors.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" '
                                     "is not running")

    def port_forward(self, pod: dict[str, Any], port: int) -> ExecSession:
        """A connection to the pod's `port` from inside the node (pods/portforward)."""
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        cid = self._container_id(pod, names[0], False, "portForward") if names else ""
        try:
            return self.runtime.port_forward(cid, port)
        except ContainerNotFound:
            raise errors.bad_request(f'pod "{pod["metadata"]["name"]}" is not running')
        except RuntimeError_ as e:
            raise errors.bad_request(str(e))

    def attach(self, pod: dict[str, Any], container: str, *, stdin: bool = False,
               tty: bool = False) -> ExecSession:
        """kubectl attach: the container's process from now on (the runtime's attach; a
        runtime that cannot attach, like the sim, gives its log lines as they come)."""
        cid = self._container_id(pod, container, False, "attach")
        try:
            return self.runtime.attach(cid, stdin=stdin, tty=tty)
        except ContainerNotFound:
            raise errors.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" '
                                     "is not running")
        except RuntimeError_:
            pass
        stop = threading.Event()
        lines = self.logs(pod, container, follow=True, tail_lines=0, stop=stop)
        return LinesSession(lines, stop)

    def stats(self) -> dict[str, Any]:
        """Resource usage for metrics.k8s.io (`kubectl top`)."""
        if self.stopped or not self.runtime.healthy():
            raise self._unreachable("stats/summary")
        pods = []
        for key, rec in list(self.records.items()):
            ns, name = key.split("/", 1)
            cs = []
            for cr in list(rec.containers.values()):
                if not cr.id:
                    continue
                try:
                    cpu, mem = self.runtime.container_stats(cr.id)
                except RuntimeError_:
                    continue
                if cpu or mem:
                    cs.append({"name": cr.name, "cpu_nanocores": cpu, "memory_bytes": mem})
            if cs:
                pods.append({"namespace": ns, "name": name, "containers": cs})
        cpu, mem = self.runtime.node_stats()
        return {"node": {"cpu_nanocores": cpu, "memory_bytes": mem}, "pods": pods}


def _expanded(c: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The container with `$(VAR)` in its command and args replaced from its environment, as
    the kubelet does (`$$` escapes; an undefined variable stays as written)."""
    if not any("$" in x for key in ("command", "args") for x in c.get(key) or []):
        return c
    from kbox.node.envvars import expand, mapping_for
    look = mapping_for(env)
    out = dict(c)
    for key in ("command", "args"):
        if c.get(key):
            out[key] = [expand(str(x), look) for x in c[key]]
    return out


def _transitional(status: dict[str, Any]) -> bool:
    """A first status with nothing to see yet: Pending, every container just being created."""
    if status.get("phase") != "Pending":
        return False
    for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        w = (s.get("state") or {}).get("waiting")
        if w is None or w.get("reason") not in ("ContainerCreating", "PodInitializing") or s.get("lastState"):
            return False
    return True


def _terminated(st: ContainerStatus, runtime: str) -> dict[str, Any]:
    code = st.exit_code if st.exit_code is not None else 0
    t: dict[str, Any] = {"exitCode": code,
                         "reason": st.reason or ("Completed" if code == 0 else "Error")}
    if st.message:
        t["message"] = st.message
    if st.started_at:
        t["startedAt"] = iso_time(st.started_at)
    t["finishedAt"] = iso_time(st.finished_at) if st.finished_at else None
    t["containerID"] = f"{runtime}://{st.id}"
    return t
