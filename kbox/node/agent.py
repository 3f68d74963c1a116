"""The node agent: kubelet for one node, over the Runtime interface.

`sync_pod` is level-triggered: given the pod as the API has it and what the
runtime says now, it takes the next step (sandbox, image pull, init
containers in order, app containers, restarts with back-off, probes,
graceful stop) and reports the pod's status when it changed. Every wait is
a timer on the clock: the agent asks to be called again when the runtime's
next change is due, never polls.

Pod phases, conditions, container states and back-off follow the kubelet:
restarts wait 0 s, then 10 s doubling to 5 min, reset after 10 min of clean
running; failed pulls show ErrImagePull, then ImagePullBackOff.
"""

from __future__ import annotations

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
from kbox.runtime import (ContainerStatus, ImagePullError, PodSandbox, Runtime,
                          RuntimeError_, RuntimeUnavailable)

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-kbox"
CLEAN_RUN_RESET = 600.0        # back-off resets after 10 min of clean running
PULL_BACKOFF_BASE = 10.0
PULL_BACKOFF_MAX = 300.0


@dataclass
class ContainerRecord:
    name: str
    id: str | None = None
    prev_id: str | None = None               # last terminated instance, for logs --previous
    last_state: ContainerStatus | None = None
    restart_count: int = 0
    backoff: float = 0.0
    backoff_until: float | None = None
    backoff_for: str | None = None           # the container id the back-off was computed for
    pulled: bool = False
    pull_until: float | None = None
    pull_started: float | None = None
    pull_backoff: float = 0.0
    pull_retry_at: float | None = None
    pull_error: str = ""
    pull_failed_at: float | None = None
    waiting: tuple[str, str] | None = None   # (reason, message)
    ready: bool = False
    ready_since: float | None = None
    liveness_failing_since: float | None = None
    started_event_for: str | None = None


@dataclass
class PodRecord:
    uid: str
    key: str
    sandbox: PodSandbox | None = None
    start_time: float | None = None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    final_phase: str | None = None
    stopping: bool = False
    status_written: dict[str, Any] | None = None


class NodeAgent:
    def __init__(self, client: Client, name: str, runtime: Runtime, clock: Clock, config, *,
                 index: int, spec, recorder: EventRecorder,
                 wake: Callable[[str, float], None]) -> None:
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
        self.stopped = False
        self.records: dict[str, PodRecord] = {}      # by pod key
        self._ip_lock = threading.Lock()
        self._used_ips: set[str] = set()
        self._cidr: ipaddress.IPv4Network | None = None
        self.node_ip = f"172.18.{(index + 2) // 250}.{(index + 2) % 250 + 2}"
        self.boot_id = f"{index:08x}-kbox-boot"
        self.last_lease = 0.0
        self.last_status = 0.0

    # ---- node object -------------------------------------------------------
    def node_object(self) -> dict[str, Any]:
        s = self.spec
        from kbox.runtime.sim import _quantity_bytes
        mem = s.memory
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64", **(s.labels or {})}
        capacity = {"cpu": str(s.cpu), "memory": _to_ki(mem, _quantity_bytes),
                    "pods": str(s.pods), "ephemeral-storage": "100Gi"}
        rt, rtv = self.runtime.version()
        obj = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": labels,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "kbox.io/runtime": rt}},
            "spec": {"taints": list(s.taints)} if s.taints else {},
            "status": {
                "capacity": capacity, "allocatable": dict(capacity),
                "conditions": self._conditions(),
                "addresses": [{"type": "InternalIP", "address": self.node_ip},
                              {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": f"kbox{self.index:028x}", "systemUUID": f"kbox-{self.name}",
                             "bootID": self.boot_id, "kernelVersion": "6.0.0-kbox",
                             "osImage": f"kbox {rt} node", "containerRuntimeVersion": f"{rt}://{rtv}",
                             "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                             "operatingSystem": "linux", "architecture": "amd64"},
            },
        }
        return obj

    def _conditions(self) -> list[dict[str, Any]]:
        now = iso_time(self.clock.now())
        def cond(t: str, status: str, reason: str, message: str) -> dict[str, Any]:
            return {"type": t, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": now, "reason": reason, "message": message}
        return [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]

    def register(self) -> None:
        """Create our Node (or take over an existing one) and its Lease."""
        try:
            self.client.create("nodes", self.node_object())
            self.recorder.event(self.node_object(), "Normal", "Starting", "Starting kubelet.",
                                host=self.name)
            self.recorder.event(self.node_object(), "Normal", "RegisteredNode",
                                f"Node {self.name} event: Registered Node {self.name} in Controller",
                                host=self.name)
        except ApiError as e:
            if e.code != 409:
                raise
            self.post_status(transition=True)
        self.renew_lease()

    def renew_lease(self) -> None:
        now = self.clock.now()
        self.last_lease = now
        body = {"spec": {"holderIdentity": self.name, "renewTime": iso_micro(now),
                         "leaseDurationSeconds": int(self.timings.node_lease_duration)}}
        try:
            self.client.patch("leases", self.name, body, "merge", "kube-node-lease")
        except ApiError as e:
            if e.code != 404:
                raise
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": "kube-node-lease"}, **body}
            lease["spec"]["acquireTime"] = iso_micro(now)
            try:
                node = self.client.get("nodes", self.name)
                lease["metadata"]["ownerReferences"] = [{
                    "apiVersion": "v1", "kind": "Node", "name": self.name,
                    "uid": node["metadata"]["uid"]}]
            except ApiError:
                pass
            self.client.create("leases", lease, "kube-node-lease")

    def post_status(self, transition: bool = False) -> None:
        """Heartbeat: refresh the conditions' heartbeat times (and Ready after a restart)."""
        self.last_status = self.clock.now()
        try:
            node = self.client.get("nodes", self.name)
        except ApiError as e:
            if e.code == 404:
                self.client.create("nodes", self.node_object())
                return
            raise
        now = iso_time(self.clock.now())
        fresh = {c["type"]: c for c in self._conditions()}
        conds = []
        for c in (node.get("status") or {}).get("conditions") or []:
            want = fresh.pop(c["type"], None)
            if want is None:
                conds.append(c)
                continue
            if c.get("status") != want["status"]:
                conds.append(want)          # a transition: new lastTransitionTime
            else:
                conds.append({**c, "lastHeartbeatTime": now, "reason": want["reason"],
                              "message": want["message"]})
        conds.extend(fresh.values())
        self.client.patch("nodes", self.name, {"status": {"conditions": conds}}, "merge",
                          subresource="status")
        if transition and node.get("status", {}).get("nodeInfo", {}).get("bootID") != self.boot_id:
            self.recorder.event(node, "Normal", "Starting", "Starting kubelet.", host=self.name)

    # ---- pod IPs -----------------------------------------------------------
    def _pod_cidr(self) -> ipaddress.IPv4Network:
        if self._cidr is None:
            cidr = None
            try:
                cidr = (self.client.get("nodes", self.name).get("spec") or {}).get("podCIDR")
            except ApiError:
                pass
            self._cidr = ipaddress.ip_network(cidr or f"10.244.{200 + self.index % 50}.0/24")
        return self._cidr

    def allocate_ip(self) -> str:
        net = self._pod_cidr()
        with self._ip_lock:
            for host in net.hosts():
                ip = str(host)
                if host == net.network_address + 1 or ip in self._used_ips:
                    continue   # .1 is the node's bridge, as in kind
                self._used_ips.add(ip)
                return ip
        raise RuntimeError_(f"no free pod IP in {net} on {self.name}")

    def release_ip(self, ip: str) -> None:
        with self._ip_lock:
            self._used_ips.discard(ip)

    # ---- pods ----------------------------------------------------------------
    def event(self, pod: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.recorder.event(pod, type_, reason, message, host=self.name)

    def forget_pod(self, key: str) -> None:
        """The pod is gone from the API: tear down whatever is left of it."""
        rec = self.records.pop(key, None)
        if rec and rec.sandbox:
            try:
                for c in rec.containers.values():
                    if c.id:
                        self.runtime.stop_container(c.id, 0)
                self.runtime.remove_pod_sandbox(rec.sandbox.id)
            except RuntimeError_:
                pass
            self.release_ip(rec.sandbox.ip)

    def sync_pod(self, key: str, pod: dict[str, Any]) -> None:
        if self.stopped:
            return
        m = pod["metadata"]
        rec = self.records.get(key)
        if rec is None or rec.uid != m["uid"]:
            if rec is not None:
                self.forget_pod(key)
            rec = self.records[key] = PodRecord(m["uid"], key)
        wakes: list[float] = []
        try:
            if m.get("deletionTimestamp"):
                self._terminate(key, pod, rec, wakes)
            else:
                self._run(pod, rec, wakes)
                self._report(pod, rec)
        except RuntimeUnavailable:
            return
        now = self.clock.now()
        future = [t for t in wakes if t is not None]
        if future:
            self.wake(key, max(now, min(future)))

    def _run(self, pod: dict[str, Any], rec: PodRecord, wakes: list[float]) -> None:
        now = self.clock.now()
        spec = pod.get("spec") or {}
        if rec.final_phase or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") \
                and rec.sandbox is None:
            rec.final_phase = rec.final_phase or pod["status"]["phase"]
            return
        if rec.sandbox is None:
            rec.sandbox = self.runtime.run_pod_sandbox(pod, self.allocate_ip())
            rec.start_time = now
        policy = spec.get("restartPolicy") or "Always"
        initialized = True
        for c in spec.get("initContainers") or []:
            cr = rec.containers.setdefault(c["name"], ContainerRecord(c["name"]))
            st = self._step_container(pod, rec, c, cr, wakes, init=True, policy=policy)
            if st is None or st.state != "exited" or st.exit_code != 0:
                initialized = False
                if st is not None and st.state == "exited" and policy == "Never":
                    rec.final_phase = "Failed"
                break
        if not initialized:
            return
        statuses = []
        for c in spec.get("containers") or []:
            cr = rec.containers.setdefault(c["name"], ContainerRecord(c["name"]))
            statuses.append(self._step_container(pod, rec, c, cr, wakes, init=False, policy=policy))
        # phase when nothing will restart any more
        if statuses and all(s is not None and s.state == "exited" for s in statuses):
            codes = [s.exit_code for s in statuses]  # type: ignore[union-attr]
            if policy == "Never" or (policy == "OnFailure" and all(c == 0 for c in codes)):
                rec.final_phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"

    def _restart_wanted(self, st: ContainerStatus, init: bool, policy: str) -> bool:
        if policy == "Never":
            return False
        if init or policy == "OnFailure":
            return st.exit_code != 0
        return True

    def _step_container(self, pod: dict[str, Any], rec: PodRecord, c: dict[str, Any],
                        cr: ContainerRecord, wakes: list[float], *, init: bool,
                        policy: str) -> ContainerStatus | None:
        now = self.clock.now()
        if cr.id is None:
            if cr.backoff_until is not None and now < cr.backoff_until:
                cr.waiting = ("CrashLoopBackOff", self._backoff_message(pod, c["name"], cr.backoff))
                wakes.append(cr.backoff_until)
                return None
            if not self._ensure_image(pod, c, cr, wakes):
                return None
            env = {e["name"]: str(e.get("value", "")) for e in c.get("env") or [] if "name" in e}
            cr.id = self.runtime.create_container(rec.sandbox.id, c, pod, env)  # type: ignore[union-attr]
            self.runtime.start_container(cr.id)
            cr.waiting = None
            cr.ready, cr.ready_since, cr.liveness_failing_since = False, None, None
            self.event(pod, "Normal", "Created", f"Created container: {c['name']}")
        st = self.runtime.container_status(cr.id)
        if st.state == "running":
            if cr.started_event_for != cr.id:
                cr.started_event_for = cr.id
                self.event(pod, "Normal", "Started", f"Started container {c['name']}")
            if not init:
                self._probe(pod, c, cr, st, wakes)
        elif st.state == "exited":
            cr.ready = False
            if self._restart_wanted(st, init, policy) and not rec.final_phase:
                if cr.backoff_for != cr.id:
                    cr.backoff_for = cr.id
                    ran = (st.finished_at or now) - (st.started_at or now)
                    if ran >= CLEAN_RUN_RESET:
                        cr.backoff = 0.0
                    if cr.restart_count == 0 and cr.backoff == 0:
                        delay = 0.0          # the first restart is immediate
                        cr.backoff = self.timings.restart_backoff_base / 2
                    else:
                        cr.backoff = min(max(cr.backoff * 2, self.timings.restart_backoff_base),
                                         self.timings.restart_backoff_max)
                        delay = cr.backoff
                        self.event(pod, "Warning", "BackOff",
                                   f"Back-off restarting failed container {c['name']} in pod "
                                   f"{_pod_ref(pod)}")
                    cr.backoff_until = now + delay
                # the old instance becomes lastState; the next one is created after the back-off
                if cr.prev_id and cr.prev_id != cr.id:
                    try:
                        self.runtime.remove_container(cr.prev_id)
                    except RuntimeError_:
                        pass
                cr.prev_id, cr.last_state, cr.id = cr.id, st, None
                cr.restart_count += 1
                return self._step_container(pod, rec, c, cr, wakes, init=init, policy=policy) \
                    if cr.backoff_until is not None and now >= cr.backoff_until else None
        nxt = self.runtime.next_change(cr.id) if cr.id else None
        if nxt is not None:
            wakes.append(nxt)
        return st

    def _ensure_image(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
                      wakes: list[float]) -> bool:
        if cr.pulled:
            return True
        now = self.clock.now()
        image = c.get("image", "")
        policy = c.get("imagePullPolicy") or ("Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1] else "IfNotPresent")
        present = self.runtime.image_present(image)
        if policy == "Never" and not present:
            cr.waiting = ("ErrImageNeverPull",
                          f'Container image "{image}" is not present with pull policy of Never')
            return False
        if policy == "IfNotPresent" and present:
            self.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            cr.pulled = True
            return True
        if cr.pull_until is not None:
            if now < cr.pull_until:
                wakes.append(cr.pull_until)
                cr.waiting = ("ContainerCreating", "")
                return False
            took = int(round((cr.pull_until - (cr.pull_started or now)) * 1000))
            self.event(pod, "Normal", "Pulled",
                       f'Successfully pulled image "{image}" in {took}ms ({took}ms including waiting). Image size: 0 bytes.')
            cr.pulled, cr.pull_until = True, None
            return True
        if cr.pull_retry_at is not None and now < cr.pull_retry_at:
            # right after a failure the reason is ErrImagePull; while waiting, ImagePullBackOff
            if cr.pull_failed_at is not None and now >= cr.pull_failed_at + 1.0:
                cr.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}": {cr.pull_error}')
                if cr.waiting is not None:
                    self.event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"')
            else:
                wakes.append((cr.pull_failed_at or now) + 1.0)
            wakes.append(cr.pull_retry_at)
            return False
        self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        try:
            took = self.runtime.pull_image(image, pod, c["name"])  # type: ignore[call-arg]
        except ImagePullError as e:
            cr.pull_error = str(e)
            cr.pull_backoff = min(max(cr.pull_backoff * 2, PULL_BACKOFF_BASE), PULL_BACKOFF_MAX)
            cr.pull_failed_at = now
            cr.pull_retry_at = now + cr.pull_backoff
            cr.waiting = ("ErrImagePull", str(e))
            self.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {e}')
            self.event(pod, "Warning", "Failed", "Error: ErrImagePull")
            wakes.append(now + 1.0)
            return False
        cr.pull_started = now
        cr.pull_until = now + took
        cr.pull_backoff = 0.0
        cr.pull_retry_at = None
        cr.waiting = ("ContainerCreating", "")
        if took <= 0:
            return self._ensure_image(pod, c, cr, wakes)
        wakes.append(cr.pull_until)
        return False

    def _probe(self, pod: dict[str, Any], c: dict[str, Any], cr: ContainerRecord,
               st: ContainerStatus, wakes: list[float]) -> None:
        now = self.clock.now()
        started = st.started_at or now
        rp = c.get("readinessProbe")
        if not rp:
            cr.ready = True
        else:
            delay = float(rp.get("initialDelaySeconds", 0))
            period = float(rp.get("periodSeconds", 10))
            if now < started + delay:
                cr.ready = False
                wakes.append(started + delay)
            else:
                ok, why = self.runtime.probe(cr.id, "readiness", rp)  # type: ignore[arg-type]
                if not ok and cr.ready is not False or (not ok and cr.ready_since is None):
                    self.event(pod, "Warning", "Unhealthy", f"Readiness probe failed: {why}")
                cr.ready = ok
                if ok and cr.ready_since is None:
                    cr.ready_since = now
                if not ok:
                    cr.ready_since = None
                wakes.append(now + period)
        lp = c.get("livenessProbe")
        if lp:
            delay = float(lp.get("initialDelaySeconds", 0))
            period = float(lp.get("periodSeconds", 10))
            threshold = int(lp.get("failureThreshold", 3))
            if now < started + delay:
                wakes.append(started + delay)
                return
            ok, why = self.runtime.probe(cr.id, "liveness", lp)  # type: ignore[arg-type]
            if ok:
                cr.liveness_failing_since = None
                wakes.append(now + period)
                return
            if cr.liveness_failing_since is None:
                cr.liveness_failing_since = now
            self.event(pod, "Warning", "Unhealthy", f"Liveness probe failed: {why}")
            if now >= cr.liveness_failing_since + period * (threshold - 1):
                self.event(pod, "Normal", "Killing",
                           f"Container {c['name']} failed liveness probe, will be restarted")
                grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                self.runtime.stop_container(cr.id, grace)  # type: ignore[arg-type]
                cr.liveness_failing_since = None
                nxt = self.runtime.next_change(cr.id)  # type: ignore[arg-type]
                wakes.append(nxt if nxt is not None else now)
            else:
                wakes.append(now + period)

    @staticmethod
    def _backoff_message(pod: dict[str, Any], name: str, backoff: float) -> str:
        return f"back-off {int(backoff)}s restarting failed container={name} pod={_pod_ref(pod)}"

    def _terminate(self, key: str, pod: dict[str, Any], rec: PodRecord, wakes: list[float]) -> None:
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if not rec.stopping:
            rec.stopping = True
            for cr in rec.containers.values():
                if cr.id:
                    st = self.runtime.container_status(cr.id)
                    if st.state != "exited":
                        self.event(pod, "Normal", "Killing", f"Stopping container {cr.name}")
                        self.runtime.stop_container(cr.id, grace)
        pending = []
        for cr in rec.containers.values():
            if cr.id and self.runtime.container_status(cr.id).state != "exited":
                pending.append(self.runtime.next_change(cr.id))
        if pending:
            wakes.extend(t for t in pending if t is not None)
            return
        if rec.sandbox:
            self.runtime.stop_pod_sandbox(rec.sandbox.id)
        try:
            self.client.delete("pods", pod["metadata"]["name"], pod["metadata"].get("namespace"),
                               grace_period_seconds=0, preconditions={"uid": rec.uid})
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        self.forget_pod(key)

    # ---- status ----------------------------------------------------------------
    def _report(self, pod: dict[str, Any], rec: PodRecord) -> None:
        status = self.pod_status(pod, rec)
        old = pod.get("status") or {}
        if _status_equal(old, status):
            return
        m = pod["metadata"]
        try:
            self.client.patch("pods", m["name"], {"status": status}, "merge", m.get("namespace"),
                              subresource="status")
        except ApiError as e:
            if e.code != 404:
                raise

    def pod_status(self, pod: dict[str, Any], rec: PodRecord) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        now = self.clock.now()
        init_specs = spec.get("initContainers") or []
        app_specs = spec.get("containers") or []

        def state_of(c: dict[str, Any], cr: ContainerRecord | None) -> dict[str, Any]:
            st = self.runtime.container_status(cr.id) if cr and cr.id else None
            out: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""),
                                   "imageID": "", "restartCount": cr.restart_count if cr else 0,
                                   "ready": False, "started": False}
            if st is not None:
                out["containerID"] = f"{self.runtime.name}://{st.id}"
                out["imageID"] = f"{self.runtime.name}://{c.get('image', '')}"
            if st is None or st.state == "created":
                reason, message = (cr.waiting if cr and cr.waiting else
                                   ("PodInitializing" if c in app_specs and init_specs else "ContainerCreating", ""))
                w = {"reason": reason}
                if message:
                    w["message"] = message
                out["state"] = {"waiting": w}
            elif st.state == "running":
                out["state"] = {"running": {"startedAt": iso_time(st.started_at or now)}}
                out["started"] = True
                out["ready"] = bool(cr and cr.ready)
            else:
                out["state"] = {"terminated": _terminated(st, self.runtime.name)}
            if cr and cr.last_state is not None:
                out["lastState"] = {"terminated": _terminated(cr.last_state, self.runtime.name)}
            else:
                out["lastState"] = {}
            return out

        inits = [state_of(c, rec.containers.get(c["name"])) for c in init_specs]
        apps = [state_of(c, rec.containers.get(c["name"])) for c in app_specs]
        initialized = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
                          for s in inits)
        if rec.final_phase:
            phase = rec.final_phase
        elif not initialized:
            phase = "Pending"
        elif any("running" in s["state"] for s in apps):
            phase = "Running"
        elif any(s["restartCount"] > 0 or "terminated" in s["state"] for s in apps):
            phase = "Running"
        else:
            phase = "Pending"
        ready = bool(apps) and all(s["ready"] for s in apps) and phase == "Running"
        old_conds = {c.get("type"): c for c in old.get("conditions") or []}
        ts = iso_time(now)

        def cond(t: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
            status = "True" if ok else "False"
            prev = old_conds.get(t)
            c = {"type": t, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": prev["lastTransitionTime"] if prev and prev.get("status") == status
                 else ts}
            if not ok and reason:
                c["reason"] = reason
            return c

        not_ready = [s["name"] for s in apps if not s["ready"]]
        conds = [cond("PodReadyToStartContainers", rec.sandbox is not None),
                 cond("Initialized", initialized, "ContainersNotInitialized"),
                 cond("Ready", ready, "ContainersNotReady" if phase not in ("Succeeded", "Failed") else "PodCompleted"),
                 cond("ContainersReady", ready, "ContainersNotReady" if phase not in ("Succeeded", "Failed") else "PodCompleted"),
                 ]
        for c in conds:
            if c["status"] == "False" and c["type"] in ("Ready", "ContainersReady") and not_ready \
                    and phase not in ("Succeeded", "Failed"):
                c["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
            if c["status"] == "False" and c["type"] == "Initialized" and not initialized:
                pending = [s["name"] for s in inits if "terminated" not in s["state"]
                           or s["state"]["terminated"]["exitCode"] != 0]
                c["message"] = f"containers with incomplete status: [{' '.join(pending)}]"
        if "PodScheduled" in old_conds:
            conds.append(old_conds["PodScheduled"])
        status: dict[str, Any] = {**{k: v for k, v in old.items() if k in ("qosClass", "nominatedNodeName")},
                                  "phase": phase, "conditions": conds,
                                  "hostIP": self.node_ip, "hostIPs": [{"ip": self.node_ip}],
                                  "containerStatuses": apps}
        if inits:
            status["initContainerStatuses"] = inits
        if rec.sandbox:
            status["podIP"] = rec.sandbox.ip
            status["podIPs"] = [{"ip": rec.sandbox.ip}]
        if rec.start_time:
            status["startTime"] = old.get("startTime") or iso_time(rec.start_time)
        return status

    # ---- what the API server reaches through the node (kubelet API) --------------
    def _container_id(self, pod: dict[str, Any], container: str, previous: bool) -> str:
        if self.stopped:
            raise errors.ApiError(500, "InternalError",
                                  f'Get "https://{self.node_ip}:10250/containerLogs": dial tcp '
                                  f'{self.node_ip}:10250: connect: no route to host')
        rec = self.records.get(f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}")
        cr = rec.containers.get(container) if rec else None
        cid = (cr.prev_id if previous else cr.id or cr.prev_id) if cr else None
        if not cid:
            if previous:
                raise errors.bad_request(f'previous terminated container "{container}" in pod '
                                         f'"{pod["metadata"]["name"]}" not found')
            raise errors.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" '
                                     "is waiting to start: ContainerCreating")
        return cid

    def logs(self, pod: dict[str, Any], container: str, *, follow: bool, previous: bool,
             tail_lines: int | None, timestamps: bool, since_seconds: int | None,
             stop: threading.Event | None) -> Iterator[str]:
        cid = self._container_id(pod, container, previous)
        return self.runtime.container_logs(cid, tail=tail_lines, timestamps=timestamps,
                                           follow=follow and not previous, stop=stop)

    def exec(self, pod: dict[str, Any], container: str, command: list[str], *,
             stdin: bytes | None, tty: bool) -> tuple[int, bytes, bytes]:
        cid = self._container_id(pod, container, False)
        return self.runtime.exec_sync(cid, command, stdin)

    def stats(self) -> dict[str, Any]:
        if self.stopped:
            raise errors.ApiError(503, "ServiceUnavailable", f"node {self.name} is not reachable")
        pods = []
        cpu_total = 50_000_000      # the node's own daemons
        mem_total = 256 * 1024 * 1024
        for key, rec in list(self.records.items()):
            ns, name = key.split("/", 1)
            cs = []
            for cr in rec.containers.values():
                if cr.id:
                    try:
                        cpu, mem = self.runtime.container_stats(cr.id)
                    except RuntimeError_:
                        continue
                    if cpu or mem:
                        cs.append({"name": cr.name, "cpu_nanocores": cpu, "memory_bytes": mem})
                        cpu_total += cpu
                        mem_total += mem
            if cs:
                pods.append({"namespace": ns, "name": name, "containers": cs})
        return {"node": {"cpu_nanocores": cpu_total, "memory_bytes": mem_total}, "pods": pods}


def _pod_ref(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"{m['name']}_{m.get('namespace', '')}({m.get('uid', '')})"


def _terminated(st: ContainerStatus, runtime: str) -> dict[str, Any]:
    t = {"exitCode": st.exit_code if st.exit_code is not None else 0,
         "reason": st.reason or ("Completed" if not st.exit_code else "Error"),
         "finishedAt": iso_time(st.finished_at) if st.finished_at else None,
         "containerID": f"{runtime}://{st.id}"}
    if st.started_at:
        t["startedAt"] = iso_time(st.started_at)
    return t


def _status_equal(old: dict[str, Any], new: dict[str, Any]) -> bool:
    for k, v in new.items():
        if old.get(k) != v:
            return False
    return True


def _to_ki(mem: str, parse) -> str:
    try:
        return f"{parse(mem) // 1024}Ki"
    except (TypeError, ValueError):
        return mem
