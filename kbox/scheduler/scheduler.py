"""kube-scheduler: assigns pending pods to nodes through the pods/binding subresource.

The loop, as in kube-scheduler: take the next pod from the scheduling queue,
filter nodes (stopping once enough feasible nodes are found, starting where
the previous pod stopped: percentageOfNodesToScore), score the feasible
ones, "assume" the pod on the best node in the scheduler cache (so the next
pod already sees its requests), then bind. A failed bind forgets the
assumption; the informer's update of a bound pod confirms it.

The cache (NodeInfo per node) is fed by the shared pod and node informers.
Cluster changes that may help a pending pod (a node added or changed, an
assigned pod deleted or finished) move unschedulable pods back to the active
queue. A pod that fits nowhere gets kube-scheduler's FailedScheduling event
and its PodScheduled condition set to False / Unschedulable with the same
message.

Only pods for this scheduler (`spec.schedulerName` "default-scheduler" or
unset), without `spec.nodeName` and not being deleted are scheduled.
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.clock import Clock, RealClock, iso_time
from kbox.controllers.events import NORMAL, WARNING, EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.scheduler.info import ROOMY_CPU, ROOMY_MEM, NodeInfo, NodeViews, PodInfo
from kbox.scheduler.interpod import InterPodState
from kbox.scheduler.plugins import (
    MAX_SCORE,
    W_SPREAD,
    base_score,
    fit_error_message,
    run_filters,
    select_host,
)
from kbox.scheduler.queue import QueuedPod, SchedulingQueue
from kbox.scheduler.spread import SpreadState

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50
TERMINAL_PHASES = ("Succeeded", "Failed")

Obj = dict[str, Any]


def _assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _key(pod: Obj) -> str:
    m = pod.get("metadata") or {}
    return f"{m.get('namespace') or 'default'}/{m.get('name', '')}"


def _base_totals(pi: PodInfo, feasible: list[NodeInfo]) -> list[int]:
    """Each node's cached base score when nothing changed since a pod of the same shape (a
    node's change clears its sc_sig, so one identity test says the cache is good)."""
    sig = pi.sig
    return [ni.sc_val if ni.sc_sig is sig else base_score(pi, ni) for ni in feasible]


def _spread_by_count(owner: str, feasible: list[NodeInfo], totals: list[int]) -> list[int]:
    """Spreading: each node's total less a penalty for the owner's pods already on it, from
    a small table per count (fewer is better, scaled to the most any sampled node holds)."""
    counts = [ni.owners.get(owner, 0) for ni in feasible]
    top = max(counts)
    if not top:
        return totals
    pen = [W_SPREAD * (MAX_SCORE * c // top) for c in range(top + 1)]
    return [t - pen[c] for t, c in zip(totals, counts)]


class Scheduler:
    def __init__(self, client: Client, informers: InformerFactory, clock: Clock | None = None, *,
                 config: Any = None, rng: random.Random | None = None,
                 recorder: EventRecorder | None = None, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                 percentage_of_nodes_to_score: int = 0,
                 max_unschedulable_seconds: float | None = None) -> None:
        self.client = client
        self.clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.scheduler_name = scheduler_name
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        timings = getattr(config, "timings", None)
        initial = getattr(timings, "pod_initial_backoff", 1.0)
        maximum = getattr(timings, "pod_max_backoff", 10.0)
        if max_unschedulable_seconds is None:
            max_unschedulable_seconds = getattr(timings, "pod_max_in_unschedulable_pods_duration", 60.0)
        self.queue = SchedulingQueue(self.clock, initial_backoff=initial, max_backoff=maximum,
                                     max_unschedulable=max_unschedulable_seconds)
        self._own_recorder = recorder is None
        # Events are written by the recorder's own thread, as kube-scheduler's broadcaster
        # does: a scheduling cycle never waits on the store for an event (inside a busy
        # cluster that wait cost the scheduler most of its time). A caller may pass its own.
        self.recorder = recorder or EventRecorder(client, DEFAULT_SCHEDULER_NAME, clock=self.clock)
        # the cache: guarded by one lock, held for a whole filter+score+assume
        self._lock = threading.RLock()
        self._nodes: dict[str, NodeInfo] = {}
        self._views = NodeViews()        # kept current by the NodeInfos (see _find_node)
        self._node_list: list[NodeInfo] = []
        self._node_ring: list[NodeInfo] = []                   # _node_list twice, rebuilt lazily
        self._ring_dirty = False
        self._pod_nodes: dict[str, tuple[str, PodInfo]] = {}   # counted pods: key -> (node, info)
        self._assumed: set[str] = set()
        self._anti_keys: set[str] = set()     # counted pods with required pod anti-affinity
        self._affinity_seen = False   # a pending pod with pod affinity or spread constraints seen
        self._next_start = 0
        self._prefer_taint_nodes = 0   # how many nodes have PreferNoSchedule taints
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scheduled = 0            # counters for the dashboard and benchmarks
        self.failed = 0
        self.pod_informer = informers.informer("pods")
        self.node_informer = informers.informer("nodes")
        self.node_informer.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pod_informer.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="scheduler")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._own_recorder:
            self.recorder.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.schedule_one(timeout=None)
            except Exception:   # one bad pod must not stop scheduling
                log.exception("scheduling cycle failed")

    def run_until_idle(self, limit: int = 1_000_000) -> int:
        """Try every pod that is ready now, synchronously (tests); returns how many were tried."""
        n = 0
        while n < limit and self.schedule_one(timeout=0):
            n += 1
        return n

    # ---- the scheduling cycle ----------------------------------------------------------------
    def schedule_one(self, timeout: float | None = 0) -> bool:
        """Take one pod and schedule it; False when no pod was ready within `timeout`."""
        qp = self.queue.pop(timeout)
        if qp is None:
            return False
        pi = qp.pi
        cur = self.pod_informer.get(pi.key)
        meta = (cur or {}).get("metadata") or {}
        if cur is None or not self._responsible(cur) or _assigned(cur) or _terminal(cur) or \
                meta.get("uid") != pi.uid or meta.get("deletionTimestamp"):
            self.queue.done(qp)
            return True
        with self._lock:
            node, failures, total = self._find_node(pi)
            if node is not None:
                self._assume(pi, node)
        if node is None:
            self._handle_unschedulable(qp, cur, fit_error_message(total, failures,
                                                                  pi.preemption_never))
            return True
        self._bind(qp, pi, cur, node.name)
        return True

    def num_feasible_nodes_to_find(self, num_all: int) -> int:
        """kube-scheduler's percentageOfNodesToScore (0: adaptive, 50% - nodes/125, min 5%)."""
        pct = self.percentage_of_nodes_to_score
        if num_all < MIN_FEASIBLE_NODES_TO_FIND or pct >= 100:
            return num_all
        if pct <= 0:
            pct = BASE_PERCENTAGE_OF_NODES_TO_SCORE - num_all // 125
            pct = max(pct, MIN_FEASIBLE_NODES_PERCENTAGE)
        return max(num_all * pct // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def _find_node(self, pi: PodInfo) -> tuple[NodeInfo | None, list, int]:
        """Filter from the round-robin start until enough nodes fit, then score (lock held)."""
        n = len(self._node_list)
        if n == 0:
            return None, [], 0
        want = self.num_feasible_nodes_to_find(n)
        start = self._next_start % n
        if self._ring_dirty:
            self._node_ring = self._node_list * 2
            self._ring_dirty = False
        feasible: list[NodeInfo] = []
        failures: list = []
        cpu, mem, owner = pi.cpu, pi.mem, pi.owner
        # InterPodAffinity's PreFilter: only when the pod or a running pod has required terms
        ipa = None
        if pi.affinity or pi.anti or self._anti_keys:
            ipa = InterPodState(pi, self._node_list,
                                [(self._nodes[nn], epi) for nn, epi in
                                 (self._pod_nodes[k] for k in self._anti_keys
                                  if k in self._pod_nodes) if nn in self._nodes])
            if ipa.empty:
                ipa = None
        # PodTopologySpread's PreFilter: counts per domain for hard spread constraints
        sps = SpreadState(pi, self._node_list) if pi.spread else None
        simple = pi.simple and ipa is None
        if simple and sps is None and cpu <= ROOMY_CPU and mem <= ROOMY_MEM \
                and len(self._views.tight) * 8 <= n:
            return self._find_node_roomy(pi, start, n, want)
        # Walk the ring (the node list twice over) from the round-robin start, in chunks no
        # larger than what is still wanted, so exactly the nodes kube-scheduler would look at
        # are looked at; a chunk that passes the fast check whole costs one comprehension.
        ring = self._node_ring
        pos, end = start, start + n
        while pos < end:
            need = want - len(feasible)
            if need <= 0:
                break
            chunk = ring[pos:min(pos + need, end)]
            pos += len(chunk)
            if simple:
                # untainted schedulable nodes with room (blocked nodes have -1 room)
                ok = [ni for ni in chunk
                      if cpu <= ni.free_cpu and mem <= ni.free_mem and ni.free_pods > 0]
                if len(ok) == len(chunk):
                    feasible += ok
                    continue
            for ni in chunk:
                if simple and cpu <= ni.free_cpu and mem <= ni.free_mem and ni.free_pods > 0:
                    feasible.append(ni)
                    continue
                f = run_filters(pi, ni)
                if f is None and sps is not None:
                    f = sps.filter(ni)
                if f is None and ipa is not None:
                    f = ipa.filter(ni)      # InterPodAffinity runs after the other filters
                if f is None:
                    feasible.append(ni)
                else:
                    failures.append(f)
        self._next_start = pos % n
        if not feasible:
            return None, failures, n
        totals = _base_totals(pi, feasible)
        if owner:
            totals = _spread_by_count(owner, feasible, totals)
        return select_host(pi, feasible, self.rng, bases=totals, spread_done=True,
                           any_prefer_taints=self._prefer_taint_nodes > 0), failures, n

    def _find_node_roomy(self, pi: PodInfo, start: int, n: int,
                         want: int) -> tuple[NodeInfo | None, list, int]:
        """_find_node for a small simple pod while few nodes are tight: the same walk, the
        same feasible nodes in the same order and the same scores, but only the tight nodes
        and the nodes holding the pod's owner's pods are visited one by one; a run of roomy
        nodes between two tight ones is feasible as a whole."""
        ring = self._node_ring
        cpu, mem = pi.cpu, pi.mem
        offsets = sorted((ni.idx - start) % n for ni in self._views.tight if ni.idx >= 0)
        feasible: list[NodeInfo] = []
        failures: list = []
        failed_at: list[int] = []        # offsets (from start) of the tight nodes that failed
        pos, end = start, start + n
        for off in offsets:
            take = min(start + off - pos, want - len(feasible))
            if take > 0:
                feasible += ring[pos:pos + take]
                pos += take
            if len(feasible) >= want:
                break
            ni = ring[pos]
            pos += 1
            if cpu <= ni.free_cpu and mem <= ni.free_mem and ni.free_pods > 0:
                feasible.append(ni)
                continue
            f = run_filters(pi, ni)
            if f is None:
                feasible.append(ni)
            else:
                failures.append(f)
                failed_at.append(off)
        take = min(end - pos, want - len(feasible))
        if take > 0:
            feasible += ring[pos:pos + take]
            pos += take
        self._next_start = pos % n
        if not feasible:
            return None, failures, n
        totals = _base_totals(pi, feasible)
        held = self._views.owner_nodes.get(pi.owner) if pi.owner else None
        if held and len(held) >= len(feasible):
            # an owner spread over more nodes than were sampled: count on the sampled ones
            totals = _spread_by_count(pi.owner, feasible, totals)
        elif held:
            # where the owner's nodes sit in `feasible`: their offset less the failed ones before
            walked = pos - start
            hits = []
            for ni, c in held.items():
                if ni.idx < 0:
                    continue
                off = (ni.idx - start) % n
                if off < walked:
                    k = bisect.bisect_left(failed_at, off)
                    if k == len(failed_at) or failed_at[k] != off:
                        hits.append((off - k, c))
            top = max((c for _, c in hits), default=0)
            if top:
                for i, c in hits:
                    totals[i] -= W_SPREAD * (MAX_SCORE * c // top)
        return select_host(pi, feasible, self.rng, bases=totals, spread_done=True,
                           any_prefer_taints=self._prefer_taint_nodes > 0), failures, n

    def _assume(self, pi: PodInfo, node: NodeInfo) -> None:
        node.add_pod(pi)
        self._pod_nodes[pi.key] = (node.name, pi)
        self._assumed.add(pi.key)
        if pi.anti:
            self._anti_keys.add(pi.key)

    def _forget(self, pi: PodInfo) -> None:
        with self._lock:
            cur = self._pod_nodes.get(pi.key)
            if pi.key in self._assumed and cur is not None and cur[1] is pi:
                self._assumed.discard(pi.key)
                self._anti_keys.discard(pi.key)
                del self._pod_nodes[pi.key]
                ni = self._nodes.get(cur[0])
                if ni is not None:
                    ni.remove_pod(pi.key)

    def _bind(self, qp: QueuedPod, pi: PodInfo, pod: Obj, node_name: str) -> None:
        try:
            self.client.bind(pi.name, pi.namespace, node_name, uid=pi.uid)
        except ApiError as e:
            self._forget(pi)
            cur = self.pod_informer.get(pi.key)
            if e.code == 404 or cur is None or _assigned(cur) or \
                    (cur.get("metadata") or {}).get("deletionTimestamp"):
                self.queue.done(qp)
                return
            log.info("binding %s to %s rejected: %s", pi.key, node_name, e)
            self.failed += 1
            self.recorder.event(pod, WARNING, "FailedScheduling", f"Binding rejected: {e.message}")
            self.queue.add_unschedulable(qp, error=True)
            return
        except Exception:
            self._forget(pi)
            self.queue.add_unschedulable(qp, error=True)
            raise
        self.queue.done(qp)
        self.scheduled += 1
        self._assigned_pod_added()
        self.recorder.event(pod, NORMAL, "Scheduled",
                            f"Successfully assigned {pi.namespace}/{pi.name} to {node_name}")

    def _handle_unschedulable(self, qp: QueuedPod, pod: Obj, message: str) -> None:
        self.failed += 1
        self.recorder.event(pod, WARNING, "FailedScheduling", message)
        self._set_unschedulable_condition(pod, message)
        self.queue.add_unschedulable(qp)

    def _set_unschedulable_condition(self, pod: Obj, message: str) -> None:
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and \
                    c.get("reason") == "Unschedulable" and c.get("message") == message:
                return   # already says so: no write
        m = pod.get("metadata") or {}
        cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": iso_time(self.clock.now()), "reason": "Unschedulable",
                "message": message}
        try:
            self.client.patch("pods", m.get("name"), {"status": {"conditions": [cond]}},
                              "strategic", m.get("namespace"), subresource="status")
        except ApiError as e:
            log.debug("PodScheduled condition of %s not updated: %s", _key(pod), e)

    # ---- informer handlers: the cache --------------------------------------------------------
    def _responsible(self, pod: Obj) -> bool:
        name = (pod.get("spec") or {}).get("schedulerName")
        return not name or name == self.scheduler_name

    def _node_info(self, name: str) -> NodeInfo:
        ni = self._nodes.get(name)
        if ni is None:   # a pod bound to a node the cache has not seen yet
            ni = self._nodes[name] = NodeInfo(name, self._views)
        return ni

    def _on_node_add(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        with self._lock:
            ni = self._node_info(name)
            known = ni.node is not None
            self._set_node(ni, node, known)
        self.queue.move_all("NodeAdd")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if not _node_changed(old, new):
            return   # heartbeats: nothing the scheduler looks at
        name = (new.get("metadata") or {}).get("name", "")
        with self._lock:
            ni = self._node_info(name)
            known = ni.node is not None
            self._set_node(ni, new, known)
        self.queue.move_all("NodeUpdate")

    def _on_node_delete(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        with self._lock:
            ni = self._nodes.get(name)
            if ni is None:
                return
            if ni.node is not None:
                self._prefer_taint_nodes -= 1 if ni.prefer_taints else 0
                self._node_list = [x for x in self._node_list if x is not ni]
                for i, x in enumerate(self._node_list):
                    x.idx = i
                ni.idx = -1
                self._ring_dirty = True
            if ni.pods:
                ni.node = None      # keep counting its pods until they are gone
                ni._refresh()
            else:
                del self._nodes[name]
                self._views.tight.discard(ni)

    def _set_node(self, ni: NodeInfo, node: Obj, known: bool) -> None:
        if known and ni.prefer_taints:
            self._prefer_taint_nodes -= 1
        ni.set_node(node)
        if ni.prefer_taints:
            self._prefer_taint_nodes += 1
        if not known:
            ni.idx = len(self._node_list)
            self._node_list.append(ni)     # O(1); the scheduling cycle reads it under this lock
            self._ring_dirty = True

    def _pending_for_us(self, pod: Obj) -> bool:
        """Unassigned, ours, not being deleted and not finished: a pod to schedule."""
        return (not _assigned(pod) and self._responsible(pod) and not _terminal(pod)
                and not (pod.get("metadata") or {}).get("deletionTimestamp"))

    def _on_pod_add(self, pod: Obj) -> None:
        if _assigned(pod):
            if not _terminal(pod):
                self._cache_pod(pod)
        elif self._pending_for_us(pod):
            self._queue_pending(PodInfo(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        key = _key(new)
        if _assigned(new):
            if not _assigned(old):
                self.queue.delete(key)
            if _terminal(new):
                if self._uncache_pod(key):
                    self.queue.move_all("AssignedPodTerminated")
            else:
                self._cache_pod(new)
            return
        if _assigned(old) and self._uncache_pod(key):
            # the node assignment went away: its room is free again, and the pod may need a node
            self.queue.move_all("AssignedPodUnbound")
        if self._pending_for_us(new):
            self._queue_pending(PodInfo(new))
        else:
            self.queue.delete(key)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = _key(pod)
        self.queue.delete(key)
        if self._uncache_pod(key):
            self.queue.move_all("AssignedPodDelete")

    def _queue_pending(self, pi: PodInfo) -> None:
        if pi.affinity or pi.spread:
            self._affinity_seen = True
        self.queue.add(pi)

    def _cache_pod(self, pod: Obj) -> None:
        key = _key(pod)
        node = pod["spec"]["nodeName"]
        uid = (pod.get("metadata") or {}).get("uid", "")
        with self._lock:
            cur = self._pod_nodes.get(key)
            if cur is not None:
                self._assumed.discard(key)      # the informer confirms what we assumed
                if cur[0] == node and cur[1].uid == uid:
                    return                      # same pod, same place: requests are immutable
                ni = self._nodes.get(cur[0])
                if ni is not None:
                    ni.remove_pod(key)
            pi = PodInfo(pod)
            self._node_info(node).add_pod(pi)
            self._pod_nodes[key] = (node, pi)
            if pi.anti:
                self._anti_keys.add(key)
            else:
                self._anti_keys.discard(key)
        if cur is None:
            self._assigned_pod_added()

    def _assigned_pod_added(self) -> None:
        """A pod newly on a node may satisfy a pending pod's pod affinity: retry those only
        (and only once such a pod was ever seen, so the common case pays nothing)."""
        if self._affinity_seen:
            self.queue.move_if(lambda p: bool(p.affinity or p.spread), "AssignedPodAdd")

    def _uncache_pod(self, key: str) -> bool:
        with self._lock:
            cur = self._pod_nodes.pop(key, None)
            if cur is None:
                return False
            self._assumed.discard(key)
            self._anti_keys.discard(key)
            ni = self._nodes.get(cur[0])
            if ni is not None:
                ni.remove_pod(key)
                if ni.node is None and not ni.pods:
                    del self._nodes[cur[0]]
            return True

    # ---- introspection -------------------------------------------------------------------------
    def node_info(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def assumed(self) -> set[str]:
        with self._lock:
            return set(self._assumed)


def _node_changed(old: Obj, new: Obj) -> bool:
    """Did anything the filters or scores read change (labels, spec, allocatable)?"""
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        return True
    if (old.get("spec") or {}) != (new.get("spec") or {}):
        return True
    return ((old.get("status") or {}).get("allocatable")
            != (new.get("status") or {}).get("allocatable"))
