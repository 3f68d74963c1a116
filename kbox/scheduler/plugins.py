"""kube-scheduler's default filter and score plugins, over PodInfo and NodeInfo.

Filters run in kube-scheduler's order and a node stops at the first plugin that
rejects it: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
NodePorts, NodeResourcesFit, then PodTopologySpread (kbox.scheduler.spread) and
InterPodAffinity (kbox.scheduler.interpod), which need per-cycle state. Each rejection carries kube-scheduler's reason
text and whether preemption could ever help (it cannot for the first four:
"UnschedulableAndUnresolvable").

Scores (0..100 each, weighted as kube-scheduler's defaults): NodeResourcesFit
LeastAllocated ×1 (non-zero requests: a container without requests counts as
100m / 200Mi), NodeResourcesBalancedAllocation ×1 (actual requests),
TaintToleration ×3 (untolerated PreferNoSchedule taints, fewer is better),
NodeAffinity ×2 (preferred terms' weights), and spreading ×2 (pods of the same
controller on the node, fewer is better; the default PodTopologySpread
constraint reduced to the hostname domain). Ties are broken at random.
"""

from __future__ import annotations

import random
from collections import Counter

from kbox.scheduler.info import PREFER_NO_SCHEDULE, NodeInfo, PodInfo, tolerated

R_UNSCHEDULABLE = "node(s) were unschedulable"
R_NODE_NAME = "node(s) didn't match the requested node name"
R_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
R_PORTS = "node(s) didn't have free ports for the requested pod ports"
R_TOO_MANY_PODS = "Too many pods"
R_NO_NODES = "no nodes available to schedule pods"
P_NOT_HELPFUL = "Preemption is not helpful for scheduling"
P_NO_VICTIMS = "No preemption victims found for incoming pod"
P_NEVER = "preemption: not eligible due to preemptionPolicy=Never."

W_FIT, W_BALANCED, W_TAINT, W_AFFINITY, W_SPREAD = 1, 1, 3, 2, 2
MAX_SCORE = 100

Failure = tuple[bool, tuple[str, ...]]   # (unresolvable, reasons)

_UNSCHEDULABLE: Failure = (True, (R_UNSCHEDULABLE,))
_NODE_NAME: Failure = (True, (R_NODE_NAME,))
_AFFINITY: Failure = (True, (R_AFFINITY,))
_PORTS: Failure = (False, (R_PORTS,))


def taint_reason(taint: dict) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


def run_filters(pi: PodInfo, ni: NodeInfo) -> Failure | None:
    """None when the pod fits the node, else why not (first rejecting plugin only)."""
    if ni.unschedulable and not pi.tolerates_unschedulable:
        return _UNSCHEDULABLE
    if pi.node_name is not None and pi.node_name != ni.name:
        return _NODE_NAME
    for t in ni.hard_taints:
        if not tolerated(pi.tolerations, t):
            return (True, (taint_reason(t),))
    if pi.required is not None and not pi.required(ni.labels, ni.name):
        return _AFFINITY
    if pi.ports:
        used = ni.ports
        for ip, proto, port in pi.ports:
            ips = used.get((proto, port))
            if ips and (ip == "0.0.0.0" or "0.0.0.0" in ips or ip in ips):
                return _PORTS
    return fit_resources(pi, ni)


def fit_resources(pi: PodInfo, ni: NodeInfo) -> Failure | None:
    reasons = []
    if ni.pod_count + 1 > ni.alloc_pods:
        reasons.append(R_TOO_MANY_PODS)
    if pi.cpu and pi.cpu > ni.alloc_cpu - ni.req_cpu:
        reasons.append("Insufficient cpu")
    if pi.mem and pi.mem > ni.alloc_mem - ni.req_mem:
        reasons.append("Insufficient memory")
    for r, v in pi.other.items():
        if v > ni.alloc_other.get(r, 0) - ni.req_other.get(r, 0):
            reasons.append(f"Insufficient {r}")
    return (False, tuple(reasons)) if reasons else None


def fit_error_message(num_nodes: int, failures: list[Failure], preemption_never: bool) -> str:
    """kube-scheduler's FitError text, with the preemption post-filter's verdict appended."""
    if num_nodes == 0:
        return R_NO_NODES
    hist: Counter[str] = Counter()
    for _, reasons in failures:
        for r in reasons:
            hist[r] += 1
    msg = f"0/{num_nodes} nodes are available: {_histogram(hist)}."
    if preemption_never:
        return f"{msg} {P_NEVER}"
    # kbox does not preempt: a node rejected for resources or ports has no victims to offer
    phist: Counter[str] = Counter(P_NOT_HELPFUL if unres else P_NO_VICTIMS
                                  for unres, _ in failures)
    return f"{msg} preemption: 0/{num_nodes} nodes are available: {_histogram(phist)}."


def _histogram(hist: Counter[str]) -> str:
    # kube-scheduler sorts the "<count> <reason>" strings themselves
    return ", ".join(sorted(f"{n} {r}" for r, n in hist.items()))


# ---- scoring -----------------------------------------------------------------------------
def base_score(pi: PodInfo, ni: NodeInfo) -> int:
    """NodeResourcesFit (LeastAllocated) + BalancedAllocation, weighted, for one node.

    Cached on the node by the pod's resource signature and the node's generation:
    replicas of one template ask the same thing, and only the node that took the
    previous pod has changed since, so most nodes answer from the cache.
    """
    sig = pi.sig
    if ni.sc_sig is sig and ni.sc_gen == ni.generation:
        return ni.sc_val
    ac = ni.alloc_cpu
    am = ni.alloc_mem
    # LeastAllocated over non-zero requests, cpu and memory weighted 1 each
    tc = ni.nz_cpu + pi.nz_cpu
    tm = ni.nz_mem + pi.nz_mem
    la = ((ac - tc) * MAX_SCORE // ac if 0 < ac and tc <= ac else 0) + \
         ((am - tm) * MAX_SCORE // am if 0 < am and tm <= am else 0)
    la //= 2
    # BalancedAllocation over actual requests: 1 - std of the two fractions (|a-b|/2 for two)
    fc = (ni.req_cpu + pi.cpu) / ac if ac else 0.0
    fm = (ni.req_mem + pi.mem) / am if am else 0.0
    fc = min(fc, 1.0)
    fm = min(fm, 1.0)
    d = fc - fm if fc > fm else fm - fc
    v = W_FIT * la + W_BALANCED * int((1.0 - d / 2) * MAX_SCORE)
    ni.sc_sig = sig
    ni.sc_gen = ni.generation
    ni.sc_val = v
    return v


def select_host(pi: PodInfo, nodes: list[NodeInfo], rng: random.Random, *,
                bases: list[int] | None = None, owner_counts: list[int] | None = None,
                any_prefer_taints: bool = True, spread_done: bool = False) -> NodeInfo:
    """The highest-scoring feasible node; ties broken at random (a seeded rng is deterministic).

    Scores that are equal on every node are left out (a constant changes no choice);
    reversed scores are subtracted rather than added to 100 for the same reason.
    `spread_done`: `bases` already include the spreading score (the scheduler's fast path).
    """
    if len(nodes) == 1:
        return nodes[0]
    totals = bases if bases is not None else [base_score(pi, ni) for ni in nodes]
    # spreading: pods of the same controller already on the node, fewer is better
    if pi.owner and not spread_done:
        owner = pi.owner
        counts = owner_counts if owner_counts is not None else \
            [ni.owners.get(owner, 0) for ni in nodes]
        top = max(counts)
        if top:
            totals = [t - W_SPREAD * (MAX_SCORE * c // top) for t, c in zip(totals, counts)]
    # TaintToleration: untolerated PreferNoSchedule taints, fewer is better
    if any_prefer_taints and any(ni.prefer_taints for ni in nodes):
        tols = [t for t in pi.tolerations if t.get("effect") in (None, "", PREFER_NO_SCHEDULE)]
        counts = [sum(1 for t in ni.prefer_taints if not tolerated(tols, t)) for ni in nodes]
        top = max(counts)
        if top:
            totals = [t - W_TAINT * (MAX_SCORE * c // top) for t, c in zip(totals, counts)]
    # NodeAffinity: the weights of the matching preferred terms, more is better
    if pi.preferred:
        counts = [sum(w for w, m in pi.preferred if m(ni.labels, ni.name)) for ni in nodes]
        top = max(counts)
        if top:
            totals = [t + W_AFFINITY * (MAX_SCORE * c // top) for t, c in zip(totals, counts)]
    best = max(totals)
    if totals.count(best) == 1:
        return nodes[totals.index(best)]
    ties = [i for i, t in enumerate(totals) if t == best]
    return nodes[ties[rng.randrange(len(ties))]]


def score_nodes(pi: PodInfo, nodes: list[NodeInfo]) -> list[int]:
    """Every plugin's weighted score per node, 0..100 each, as kube-scheduler sums them
    (for tests and explanations; `select_host` is the fast path to the same choice)."""
    totals = [base_score(pi, ni) for ni in nodes]
    n = len(nodes)

    def add(counts: list[int], weight: int, reverse: bool) -> None:
        top = max(counts) if counts else 0
        for i in range(n):
            s = MAX_SCORE * counts[i] // top if top else 0
            totals[i] += weight * (MAX_SCORE - s if reverse else s)
    tols = [t for t in pi.tolerations if t.get("effect") in (None, "", PREFER_NO_SCHEDULE)]
    add([sum(1 for t in ni.prefer_taints if not tolerated(tols, t)) for ni in nodes], W_TAINT, True)
    add([sum(w for w, m in pi.preferred if m(ni.labels, ni.name)) for ni in nodes], W_AFFINITY, False)
    add([ni.owners.get(pi.owner, 0) if pi.owner else 0 for ni in nodes], W_SPREAD, True)
    return totals
