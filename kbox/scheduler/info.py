"""What the scheduler knows about one pod and one node, precomputed for speed.

kube-scheduler keeps a `NodeInfo` per node (allocatable, the sums of the
requests of the pods on it, used host ports, labels, taints) and a `PodInfo`
per pod (its parsed requests, ports, affinity). Both are rebuilt only when
their object changes, so the per-pod, per-node loop of a scheduling cycle
works on plain ints, tuples and dicts instead of re-reading JSON objects.

Units: cpu in millicores, memory and other scalar resources in bytes/units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbox.scheduler.interpod import parse_terms
from kbox.scheduler.quantity import amount, cpu_millis, units
from kbox.scheduler.spread import parse_constraints

Obj = dict[str, Any]

# kube-scheduler counts a container without a request as this much, for scoring only
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": NO_SCHEDULE}


# ---- tolerations ---------------------------------------------------------------------
def toleration_matches(tol: Obj, taint: Obj) -> bool:
    """A toleration tolerates a taint: same effect (or any), and key/value per the operator."""
    eff = tol.get("effect")
    if eff and eff != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return not key or key == taint.get("key")
    if key != taint.get("key"):
        return False
    return (tol.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if toleration_matches(t, taint):
            return True
    return False


# ---- node selector terms ---------------------------------------------------------------
Matcher = Callable[[dict[str, str], str], bool]   # (node labels, node name) -> bool


def _requirement(expr: Obj, field: bool) -> Callable[[dict[str, str], str], bool]:
    key = expr.get("key") or ""
    op = expr.get("operator") or ""
    values = tuple(expr.get("values") or ())
    vset = frozenset(values)

    def get(labels: dict[str, str], name: str) -> str | None:
        if field:
            return name if key == "metadata.name" else None
        return labels.get(key)

    if op == "In":
        return lambda lb, nm: get(lb, nm) in vset
    if op == "NotIn":
        return lambda lb, nm: get(lb, nm) not in vset
    if op == "Exists":
        return lambda lb, nm: get(lb, nm) is not None
    if op == "DoesNotExist":
        return lambda lb, nm: get(lb, nm) is None
    if op in ("Gt", "Lt") and len(values) == 1:
        try:
            bound = int(values[0])
        except ValueError:
            return lambda lb, nm: False

        def cmp(lb: dict[str, str], nm: str) -> bool:
            v = get(lb, nm)
            if v is None:
                return False
            try:
                n = int(v)
            except ValueError:
                return False
            return n > bound if op == "Gt" else n < bound
        return cmp
    return lambda lb, nm: False   # an unknown operator matches nothing, as in Kubernetes


def term_matcher(term: Obj | None) -> Matcher:
    """One nodeSelectorTerm: its expressions and fields ANDed; an empty term matches nothing."""
    term = term or {}
    reqs = [_requirement(e, False) for e in term.get("matchExpressions") or []]
    reqs += [_requirement(e, True) for e in term.get("matchFields") or []]
    if not reqs:
        return lambda lb, nm: False
    return lambda lb, nm: all(r(lb, nm) for r in reqs)


def required_matcher(pod: Obj) -> Matcher | None:
    """spec.nodeSelector AND required node affinity (terms ORed); None when the pod has neither."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = [term_matcher(t) for t in (req or {}).get("nodeSelectorTerms") or []] \
        if req is not None else None
    if not selector and terms is None:
        return None
    items = tuple(selector.items())

    def match(labels: dict[str, str], name: str) -> bool:
        for k, v in items:
            if labels.get(k) != v:
                return False
        if terms is not None:
            for t in terms:
                if t(labels, name):
                    return True
            return False
        return True
    return match


def preferred_terms(pod: Obj) -> list[tuple[int, Matcher]]:
    spec = pod.get("spec") or {}
    prefs = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("preferredDuringSchedulingIgnoredDuringExecution")) or []
    out = []
    for p in prefs:
        w = int(p.get("weight") or 0)
        if w:
            out.append((w, term_matcher(p.get("preference"))))
    return out


_SIGS: dict[tuple[int, int, int, int], tuple[int, int, int, int]] = {}


# ---- pods ------------------------------------------------------------------------------
class PodInfo:
    """A pod's scheduling-relevant facts, parsed once per object version."""

    __slots__ = (
        "affinity",
        "anti",
        "cpu",
        "key",
        "labels",
        "mem",
        "name",
        "namespace",
        "node_name",
        "nz_cpu",
        "nz_mem",
        "other",
        "owner",
        "pod",
        "ports",
        "preemption_never",
        "preferred",
        "priority",
        "required",
        "sig",
        "simple",
        "spread",
        "tolerates_unschedulable",
        "tolerations",
        "uid",
    )

    def __init__(self, pod: Obj) -> None:
        m = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.name = m.get("name", "")
        self.namespace = m.get("namespace") or "default"
        self.key = f"{self.namespace}/{self.name}"
        self.uid = m.get("uid", "")
        self.priority = int(spec.get("priority") or 0)
        self.preemption_never = spec.get("preemptionPolicy") == "Never"
        self.node_name = spec.get("nodeName") or None
        # requests: the sum over app containers, at least the largest init container, plus overhead
        cpu = mem = nz_cpu = nz_mem = 0
        other: dict[str, int] = {}
        ports: list[tuple[str, str, int]] = []
        for c in spec.get("containers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            ccpu = cpu_millis(req["cpu"]) if "cpu" in req else None
            cmem = units(req["memory"]) if "memory" in req else None
            cpu += ccpu or 0
            mem += cmem or 0
            nz_cpu += ccpu if ccpu is not None else DEFAULT_MILLI_CPU_REQUEST
            nz_mem += cmem if cmem is not None else DEFAULT_MEMORY_REQUEST
            for r, q in req.items():
                if r not in ("cpu", "memory"):
                    other[r] = other.get(r, 0) + amount(r, q)
            for p in c.get("ports") or []:
                hp = p.get("hostPort")
                if hp:
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(hp)))
        # Init containers run one at a time before the app containers, so the pod needs the
        # largest of them; a sidecar (restartPolicy Always) keeps running, so it adds to every
        # init container after it and to the app containers.
        side = [0, 0, 0, 0]                       # cpu, mem, nz cpu, nz mem of sidecars so far
        side_other: dict[str, int] = {}
        peak = [0, 0, 0, 0]
        peak_other: dict[str, int] = {}
        for c in spec.get("initContainers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            icpu = cpu_millis(req.get("cpu"))
            imem = units(req.get("memory"))
            vals = (icpu, imem, icpu if "cpu" in req else DEFAULT_MILLI_CPU_REQUEST,
                    imem if "memory" in req else DEFAULT_MEMORY_REQUEST)
            extra = {r: amount(r, q) for r, q in req.items() if r not in ("cpu", "memory")}
            for i in range(4):
                peak[i] = max(peak[i], side[i] + vals[i])
            for r, v in extra.items():
                peak_other[r] = max(peak_other.get(r, 0), side_other.get(r, 0) + v)
            if c.get("restartPolicy") == "Always":
                for i in range(4):
                    side[i] += vals[i]
                for r, v in extra.items():
                    side_other[r] = side_other.get(r, 0) + v
        cpu = max(cpu + side[0], peak[0])
        mem = max(mem + side[1], peak[1])
        nz_cpu = max(nz_cpu + side[2], peak[2])
        nz_mem = max(nz_mem + side[3], peak[3])
        for r in set(other) | set(side_other) | set(peak_other):
            other[r] = max(other.get(r, 0) + side_other.get(r, 0), peak_other.get(r, 0))
        for r, q in (spec.get("overhead") or {}).items():
            a = amount(r, q)
            if r == "cpu":
                cpu += a
                nz_cpu += a
            elif r == "memory":
                mem += a
                nz_mem += a
            else:
                other[r] = other.get(r, 0) + a
        self.cpu, self.mem, self.nz_cpu, self.nz_mem = cpu, mem, nz_cpu, nz_mem
        # one shared object per request shape, so score caches compare with `is`
        self.sig = _SIGS.setdefault((cpu, mem, nz_cpu, nz_mem), (cpu, mem, nz_cpu, nz_mem))
        self.other = {k: v for k, v in other.items() if v}
        self.ports = ports
        self.tolerations = list(spec.get("tolerations") or [])
        self.tolerates_unschedulable = tolerated(self.tolerations, UNSCHEDULABLE_TAINT)
        self.required = required_matcher(pod)
        self.preferred = preferred_terms(pod)
        owner = None
        for ref in m.get("ownerReferences") or []:
            if ref.get("controller"):
                owner = ref.get("uid")
                break
        self.owner = owner
        self.labels = m.get("labels") or {}
        # required inter-pod (anti-)affinity terms (see kbox.scheduler.interpod)
        self.affinity = parse_terms(pod, "podAffinity", self.namespace)
        self.anti = parse_terms(pod, "podAntiAffinity", self.namespace)
        self.spread = parse_constraints(pod)    # hard topologySpreadConstraints
        # pods the hot loop can check with three comparisons on untainted, schedulable nodes
        self.simple = (self.required is None and not self.ports and not self.other
                       and self.node_name is None and not self.affinity and not self.anti
                       and not self.spread)


# ---- nodes -----------------------------------------------------------------------------
# A node with at least this much room fits any "simple" pod requesting no more than this
# without looking at it (see NodeViews): most nodes of a busy cluster, most of the time.
ROOMY_CPU = 1000              # millicores
ROOMY_MEM = 1 << 30           # bytes


class NodeViews:
    """Cluster-wide views that every NodeInfo keeps current as its pods change, so a
    scheduling cycle need not visit each of the hundreds of nodes it samples:

    - `tight`: the nodes that are blocked (cordoned, tainted, gone) or have less room than
      ROOMY_CPU / ROOMY_MEM / one pod. Every other node fits any pod within those sizes.
    - `owner_nodes`: owner uid -> {NodeInfo: how many of the owner's pods it holds}, the
      spreading score's input, so a cycle visits only the nodes that hold the owner's pods.
    """

    __slots__ = ("owner_nodes", "tight")

    def __init__(self) -> None:
        self.tight: set[NodeInfo] = set()
        self.owner_nodes: dict[str, dict[NodeInfo, int]] = {}

class NodeInfo:
    """A node plus the sums of what the pods on it (bound or assumed) request."""

    __slots__ = (
        "alloc_cpu",
        "alloc_mem",
        "alloc_other",
        "alloc_pods",
        "blocked",
        "free_cpu",
        "free_mem",
        "free_pods",
        "generation",
        "hard_taints",
        "idx",
        "labels",
        "name",
        "node",
        "nz_cpu",
        "nz_mem",
        "owners",
        "pod_count",
        "pods",
        "ports",
        "prefer_taints",
        "req_cpu",
        "req_mem",
        "req_other",
        "sc_gen",
        "sc_sig",
        "sc_val",
        "unschedulable",
        "views",
    )

    def __init__(self, name: str, views: NodeViews | None = None) -> None:
        self.name = name
        self.views = views if views is not None else NodeViews()
        self.idx = -1                    # position in the scheduler's node list (-1: not in it)
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.unschedulable = False
        self.hard_taints: list[Obj] = []
        self.prefer_taints: list[Obj] = []
        self.alloc_cpu = self.alloc_mem = self.alloc_pods = 0
        self.alloc_other: dict[str, int] = {}
        self.req_cpu = self.req_mem = self.nz_cpu = self.nz_mem = 0
        self.req_other: dict[str, int] = {}
        self.pod_count = 0
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        self.owners: dict[str, int] = {}
        self.pods: dict[str, PodInfo] = {}
        self.blocked = True
        self.free_cpu = self.free_mem = self.free_pods = -1
        self.generation = 0
        self.sc_sig: object = None      # base-score cache (see plugins.base_score)
        self.sc_gen = -1
        self.sc_val = 0

    def set_node(self, node: Obj) -> None:
        self.node = node
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        taints = spec.get("taints") or []
        self.hard_taints = [t for t in taints if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE)]
        self.prefer_taints = [t for t in taints if t.get("effect") == PREFER_NO_SCHEDULE]
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.alloc_cpu = cpu_millis(alloc.get("cpu"))
        self.alloc_mem = units(alloc.get("memory"))
        self.alloc_pods = units(alloc.get("pods"))
        self.alloc_other = {k: amount(k, v) for k, v in alloc.items()
                            if k not in ("cpu", "memory", "pods")}
        self._refresh()

    def _refresh(self) -> None:
        # the hot loop's fast check: a blocked node has negative room so it always falls
        # through to the full filters, which say why
        self.blocked = self.node is None or self.unschedulable or bool(self.hard_taints)
        if self.blocked:
            self.free_cpu = self.free_mem = self.free_pods = -1
        else:
            self.free_cpu = self.alloc_cpu - self.req_cpu
            self.free_mem = self.alloc_mem - self.req_mem
            self.free_pods = self.alloc_pods - self.pod_count
        self.generation += 1
        self.sc_sig = None    # the cached base score is stale: one identity test in the hot loop
        if self.free_cpu >= ROOMY_CPU and self.free_mem >= ROOMY_MEM and self.free_pods > 0:
            self.views.tight.discard(self)
        else:
            self.views.tight.add(self)

    def add_pod(self, pi: PodInfo) -> None:
        self.pods[pi.key] = pi
        self._account(pi, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is not None:
            self._account(pi, -1)
        return pi

    def _account(self, pi: PodInfo, sign: int) -> None:
        self.req_cpu += sign * pi.cpu
        self.req_mem += sign * pi.mem
        self.nz_cpu += sign * pi.nz_cpu
        self.nz_mem += sign * pi.nz_mem
        self.pod_count += sign
        for r, v in pi.other.items():
            self.req_other[r] = self.req_other.get(r, 0) + sign * v
        for ip, proto, port in pi.ports:
            ips = self.ports.setdefault((proto, port), {})
            n = ips.get(ip, 0) + sign
            if n > 0:
                ips[ip] = n
            else:
                ips.pop(ip, None)
                if not ips:
                    del self.ports[(proto, port)]
        if pi.owner:
            n = self.owners.get(pi.owner, 0) + sign
            by_node = self.views.owner_nodes.setdefault(pi.owner, {})
            if n > 0:
                self.owners[pi.owner] = n
                by_node[self] = n
            else:
                self.owners.pop(pi.owner, None)
                by_node.pop(self, None)
                if not by_node:
                    del self.views.owner_nodes[pi.owner]
        self._refresh()
