"""NodePool: every node agent of the cluster, sharing one pod informer.

A thousand kubelets each watching pods would cost a thousand watches; kwok
and kbox run them all in one place instead. The pool keeps ONE pod informer
(indexed by spec.nodeName), dispatches each pod key to its node's agent, runs
a small set of worker threads over one clock-driven work queue (one key is
never synced by two workers at once), and one heartbeat loop that renews
every node's Lease and posts node status on their intervals.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kbox.api.errors import ApiError
from kbox.api.objects import key_of
from kbox.controllers.events import EventRecorder
from kbox.controllers.workqueue import WorkQueue
from kbox.node.agent import NodeAgent
from kbox.node.proxy import ProxyRunner
from kbox.node.routes import PodNetwork
from kbox.runtime import check_runtime_name, make_runtime

log = logging.getLogger(__name__)

WARM_REFILL_DELAY = 0.1      # seconds after a claim before its node starts the next warm sandbox


class NodePool:
    #: worker threads per runtime. The sim runtime never blocks, so one worker is fastest
    #: under the GIL; a real runtime waits on its engine, so several overlap those waits.
    workers_by_runtime = {"sim": 1}
    default_workers = 8
    busy_threshold = 500

    def __init__(self, client, informers, clock, config, *, runtime: str = "sim",
                 api=None, recorder: EventRecorder | None = None,
                 machines=None) -> None:
        self.client = client
        self.clock = clock
        self.config = config
        self.runtime_name = runtime
        self.api = api
        self.agents: dict[str, NodeAgent] = {}
        self._lock = threading.RLock()
        self._next_index = 0
        self._adding: set[str] = set()
        self.queue = WorkQueue(clock, name="kubelet")
        self.recorder = _RateLimitedRecorder(recorder or EventRecorder(client, "kubelet", clock=clock),
                                             clock)
        check_runtime_name(runtime)            # fail early on a bad name
        # the node containers of a docker cluster (kbox.runtime.dind.NodeMachines): the pool
        # boots, kills and starts them with the nodes; None for sim nodes
        self.machines = machines
        self.pods = informers.informer("pods")
        self.pods.add_handler(self._on_pod, self._on_pod_update, self._on_pod)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._warm_wanted = threading.Event()
        self._holder: dict[str, str] = {}      # pod key → the node whose agent has state for it
        # kube-proxy: one Services/Endpoints table for the cluster, programmed into each docker
        # node's iptables; the routes between docker nodes' pod CIDRs (kindnet's job)
        cidr = config.networking.pod_subnet
        self.proxies = ProxyRunner(informers, clock, cluster_cidr=cidr,
                                   workers=1 if machines is None else 3)
        self.network = PodNetwork(machines, informers, clock, cluster_cidr=cidr) \
            if machines is not None else None

    # ---- dispatch -------------------------------------------------------------
    def _on_pod(self, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node in self.agents:
            self.queue.add(key_of(pod))

    def _on_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        node = (new.get("spec") or {}).get("nodeName")
        agent = self.agents.get(node) if node else None
        if agent is None:
            return
        key = key_of(new)
        rec = agent.records.get(key)
        if rec is not None and rec.written_rv and \
                str(rec.written_rv) == (new.get("metadata") or {}).get("resourceVersion"):
            return          # the echo of our own status write: nothing new to act on
        self.queue.add(key)

    def busy(self) -> bool:
        """Many pods waiting for a worker: agents then skip purely transitional status writes."""
        return len(self.queue) > self.busy_threshold

    def _wake(self, key: str, at: float) -> None:
        self.queue.add_after(key, at - self.clock.now())

    def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        node = (pod.get("spec") or {}).get("nodeName") if pod else None
        with self._lock:
            held_by = self._holder.get(key)
            other = self.agents.get(held_by) if held_by and held_by != node else None
            agent = self.agents.get(node) if node else None
        if other is not None and not other.stopped:
            # gone, or moved away (a recreated pod of the same name); a stopped node
            # cleans up when it comes back (start_node resyncs what it holds)
            other.forget_pod(key)
        if pod is not None and agent is not None:
            agent.sync_pod(key, pod)
        with self._lock:
            if agent is not None and key in agent.records:
                self._holder[key] = agent.name
            elif other is None or not other.stopped:
                held = self._holder.get(key)
                if held is not None and key not in getattr(self.agents.get(held), "records", {}):
                    self._holder.pop(key, None)

    def process_next(self, timeout: float | None = None) -> bool:
        return self.queue.process_next(self.sync, timeout=timeout, name="kubelet")

    def run_until_idle(self, limit: int = 100000) -> int:
        """Process every ready key synchronously (tests); returns how many."""
        return self.queue.run_until_idle(self.sync, limit=limit, name="kubelet")

    # ---- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.workers_by_runtime.get(self.runtime_name, self.default_workers)):
            t = threading.Thread(target=self._worker, daemon=True, name=f"kubelet-{i}")
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._heartbeats, daemon=True, name="kubelet-heartbeats")
        t.start()
        self._threads.append(t)
        self.proxies.start()
        if self.network is not None:
            self.network.start()
        if self.config.nodes.warm_sandboxes > 0 and self.runtime_name != "sim":
            t = threading.Thread(target=self._warm_loop, daemon=True, name="kubelet-warm")
            t.start()
            self._threads.append(t)

    def _worker(self) -> None:
        while not self.queue.shutting_down:
            self.process_next()

    def heartbeat_once(self) -> None:
        """Renew leases and post node status for every agent that is due."""
        now = self.clock.now()
        t = self.config.timings
        for agent in list(self.agents.values()):
            if agent.stopped:
                continue
            try:
                if now - agent.last_lease >= t.node_lease_renew_interval - 1e-6:
                    agent.renew_lease()
                if now - agent.last_status >= t.node_status_update_frequency - 1e-6 \
                        and agent.status_due(now):
                    agent.post_status()
            except Exception as e:
                log.warning("kubelet %s: heartbeat failed: %s", agent.name, e)

    def _heartbeats(self) -> None:
        t = self.config.timings
        period = min(t.node_lease_renew_interval, t.node_status_update_frequency) / 4
        while not self.clock.wait_event(self._stop, period):
            self.heartbeat_once()

    def fill_warm_once(self) -> None:
        for agent in list(self.agents.values()):
            if agent.warm_deficit() > 0:
                try:
                    agent.fill_warm()
                except Exception as e:
                    log.warning("kubelet %s: warm sandboxes: %s", agent.name, e)

    def _warm_loop(self) -> None:
        """Refill the nodes' warm sandboxes. A claim wakes it; it lets the claiming pod's
        containers start first (their engine is the one that would set the network up)."""
        while not self._stop.is_set():
            self._warm_wanted.wait(5.0)
            if self._stop.is_set():
                return
            self._warm_wanted.clear()
            self._stop.wait(WARM_REFILL_DELAY)
            self.fill_warm_once()

    def stop(self) -> None:
        self._stop.set()
        self._warm_wanted.set()
        self.queue.shutdown()
        self.proxies.stop()
        if self.network is not None:
            self.network.stop()
        self.recorder.stop()
        for agent in list(self.agents.values()):
            agent.proxy.stop()
            agent.runtime.shutdown()

    # ---- node operations ------------------------------------------------------
    def add_node(self, spec) -> NodeAgent:
        with self._lock:
            if spec.name in self.agents or spec.name in self._adding:
                raise ValueError(f'node "{spec.name}" already exists')
            self._adding.add(spec.name)
            index = self._next_index
            self._next_index += 1
        try:
            options = {}
            if self.machines is not None:
                options = {"base_url": self.machines.ensure(spec.name),
                           "cluster": self.machines.cluster,
                           "host_dir": str(self.machines.socket_dir(spec.name))}
            runtime = make_runtime(self.runtime_name, node_name=spec.name, clock=self.clock,
                                   config=self.config, **options)
            agent = NodeAgent(self.client, spec.name, runtime, self.clock, self.config,
                              index=index, spec=spec, recorder=self.recorder, wake=self._wake,
                              busy=self.busy)
            agent.proxy = self.proxies.proxy_for(spec.name, self.machines)
            if self.machines is not None:
                agent.node_ip = self.machines.node_ip(spec.name) or agent.node_ip
            agent.register()         # before the heartbeat loop can see it
            agent.proxy.start()
            if self.network is not None:
                self.network.add_node(spec.name)
            agent.warm_needed = self._warm_wanted.set
            with self._lock:
                self.agents[spec.name] = agent
            self._warm_wanted.set()
        finally:
            with self._lock:
                self._adding.discard(spec.name)
        if self.api is not None:
            self.api.node_endpoints[spec.name] = agent
        self._resync(spec.name)
        return agent

    def _agent(self, name: str) -> NodeAgent:
        agent = self.agents.get(name)
        if agent is None:
            raise LookupError(f'node "{name}" not found among this cluster\'s nodes '
                              f"({', '.join(sorted(self.agents)) or 'none'})")
        return agent

    def _resync(self, name: str) -> None:
        agent = self.agents.get(name)
        if agent is not None:
            # pods that went away (or moved) while the node was down
            for key, rec in list(agent.records.items()):
                pod = self.pods.get(key)
                if pod is None or (pod.get("spec") or {}).get("nodeName") != name:
                    agent.forget_pod(key)
                    with self._lock:
                        if self._holder.get(key) == name:
                            del self._holder[key]
        for pod in self.pods.by_index("node", name):
            self.queue.add(key_of(pod))

    def remove_node(self, name: str) -> None:
        agent = self._agent(name)
        agent.stopped = True
        agent.proxy.stop()
        if hasattr(agent.runtime, "down"):
            agent.runtime.down = False  # type: ignore[attr-defined]
        for key in list(agent.records):
            agent.forget_pod(key)
        agent.drop_warm(remove=self.machines is None)
        agent.runtime.shutdown()
        if self.machines is not None:
            self.machines.remove(name)
        if self.network is not None:
            self.network.remove_node(name)     # peers drop their route to it
        with self._lock:
            self.agents.pop(name, None)
            for key in [k for k, v in self._holder.items() if v == name]:
                del self._holder[key]
        if self.api is not None:
            self.api.node_endpoints.pop(name, None)
        for resource, ns in (("leases", "kube-node-lease"), ("nodes", None)):
            try:
                self.client.delete(resource, name, ns)
            except ApiError as e:
                if e.code != 404:
                    raise

    def stop_node(self, name: str) -> None:
        """The machine 'dies' for the control plane: no heartbeats, no status, its kubelet API
        fails; sim containers keep running."""
        self._agent(name).stopped = True

    def kill_node(self, name: str) -> None:
        """Like stop, and every container on the node dies with it."""
        agent = self._agent(name)
        agent.stopped = True
        if self.machines is not None:
            self.machines.kill(name)          # the node container dies, its pods with it
            return
        kill = getattr(agent.runtime, "kill_all", None)
        if kill:
            kill()
        agent.runtime.down = True  # type: ignore[attr-defined]

    def start_node(self, name: str) -> None:
        """The machine is back: a new boot; the agent registers, renews its Lease, and re-syncs
        every pod bound to it (and cleans up those deleted meanwhile)."""
        agent = self._agent(name)
        if not agent.stopped:
            return
        if self.machines is not None:
            self.machines.start(name)         # boots again; its inner engine answers
        if hasattr(agent.runtime, "down"):
            agent.runtime.down = False  # type: ignore[attr-defined]
        agent.restart()
        if self.machines is not None:
            self._refresh_node_ip(agent)
            # a new boot has none of the routes and iptables rules: write them again
            self.network.node_restarted(name)   # type: ignore[union-attr]
            self.proxies.resync_node(name)
        self._resync(name)

    def _refresh_node_ip(self, agent: NodeAgent) -> None:
        """A restarted node container may come back with another address."""
        ip = self.machines.node_ip(agent.name) if self.machines is not None else None
        if ip and ip != agent.node_ip:
            agent.node_ip = ip
            self.client.patch("nodes", agent.name, {"status": {"addresses": [
                {"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": agent.name}]}},
                "merge", subresource="status")


class _RateLimitedRecorder:
    """The pool's event recorder: kubelet's eventRecordQPS/eventBurst, shared by every agent.

    A real kubelet limits itself to 50 events/s (burst 100) and client-go drops
    events when its queue is full; a thousand simulated kubelets in one process
    would otherwise spend most of their time writing Pulled/Created/Started
    events. Normal events get `qps` with `burst`; Warnings (what a person looks
    for) get their own, larger budget. A small cluster never reaches either.
    """

    def __init__(self, inner: EventRecorder, clock, *, qps: float = 200.0, burst: float = 2000.0,
                 warning_qps: float = 500.0, warning_burst: float = 5000.0) -> None:
        self.inner = inner
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets = {"Normal": [burst, qps, burst, None], "Warning": [warning_burst, warning_qps,
                                                                         warning_burst, None]}
        self.dropped = 0

    def _take(self, type_: str) -> bool:
        b = self._buckets.get(type_) or self._buckets["Normal"]
        now = self.clock.monotonic()
        with self._lock:
            tokens, qps, burst, last = b
            if last is not None:
                tokens = min(burst, tokens + (now - last) * qps)
            b[3] = now
            if tokens < 1:
                b[0] = tokens
                self.dropped += 1
                return False
            b[0] = tokens - 1
            return True

    def event(self, obj, type_: str, reason: str, message: str, *, host: str | None = None) -> None:
        if self._take(type_):
            self.inner.event(obj, type_, reason, message, host=host)

    def flush(self, timeout: float = 5.0) -> None:
        self.inner.flush(timeout)

    def stop(self) -> None:
        self.inner.stop()
