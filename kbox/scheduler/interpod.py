"""kube-scheduler's InterPodAffinity filter: required pod affinity and anti-affinity.

A pod may ask to run in the same topology domain (the nodes sharing one value
of `topologyKey`, e.g. the node itself for kubernetes.io/hostname) as pods
matching a label selector (podAffinity), or never in one with them
(podAntiAffinity); and pods already running may refuse the newcomer with
their own anti-affinity (symmetry). Only the `requiredDuringScheduling...`
terms are filters; kbox does not score the preferred ones.

As kube-scheduler does in PreFilter, the domains are computed once per
scheduling cycle (`InterPodState`); the per-node check is then a few dict
lookups. Pods without such terms, in a cluster where no pod has required
anti-affinity, never build a state and keep the fast path.

Namespaces of a term: its `namespaces` list, or the pod's own namespace when
the list is empty and there is no `namespaceSelector`; a `namespaceSelector`
(kbox does not read namespace labels here) widens the term to every namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kbox.api.errors import ApiError
from kbox.api.selectors import LabelSelector, selector_from_spec

if TYPE_CHECKING:  # pragma: no cover
    from kbox.scheduler.info import NodeInfo, PodInfo

R_POD_AFFINITY = "node(s) didn't match pod affinity rules"
R_POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
R_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

_AFFINITY_FAIL = (True, (R_POD_AFFINITY,))            # preemption cannot add pods
_ANTI_FAIL = (False, (R_POD_ANTI_AFFINITY,))          # evicting the matching pods could help
_EXISTING_FAIL = (False, (R_EXISTING_ANTI_AFFINITY,))


class PodTerm:
    """One required term: topology key, the namespaces it looks at (None: all), a selector."""

    __slots__ = ("key", "namespaces", "selector")

    def __init__(self, key: str, namespaces: frozenset[str] | None, selector: LabelSelector) -> None:
        self.key = key
        self.namespaces = namespaces
        self.selector = selector

    def matches(self, namespace: str, labels: dict[str, str]) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector.matches(labels)


def parse_terms(pod: dict[str, Any], kind: str, namespace: str) -> tuple[PodTerm, ...]:
    """The required terms of `kind` ("podAffinity" or "podAntiAffinity") of a pod."""
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    out = []
    for t in aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        key = t.get("topologyKey") or ""
        if not key:
            continue   # validation requires one; a term without it can match no domain
        names = t.get("namespaces") or []
        ns_sel = t.get("namespaceSelector")
        if ns_sel is not None:
            namespaces = None
        else:
            namespaces = frozenset(names) if names else frozenset((namespace,))
        try:
            sel = selector_from_spec(t.get("labelSelector"))
        except ApiError:   # an invalid selector matches nothing rather than failing the cycle
            sel = LabelSelector(match_nothing=True)
        out.append(PodTerm(key, namespaces, sel))
    return tuple(out)


class InterPodState:
    """The PreFilter result for one pod: which topology domains it needs or must avoid."""

    __slots__ = ("affinity", "anti", "any_affinity_match", "existing", "self_match")

    def __init__(self, pi: PodInfo, nodes: Iterable[NodeInfo],
                 anti_pods: Iterable[tuple[NodeInfo, PodInfo]]) -> None:
        nodes = [ni for ni in nodes if ni.node is not None]
        # podAffinity: per term, the domains holding at least one matching pod
        self.affinity = [(t.key, _domains(t, nodes)) for t in pi.affinity]
        self.any_affinity_match = any(vals for _, vals in self.affinity)
        # the first pod of a group with affinity to itself may go wherever the keys exist
        self.self_match = bool(pi.affinity) and all(t.matches(pi.namespace, pi.labels)
                                                    for t in pi.affinity)
        self.anti = [(t.key, _domains(t, nodes)) for t in pi.anti]
        # existing pods' anti-affinity that the incoming pod matches: forbidden (key, value)s
        existing: set[tuple[str, str]] = set()
        for ni, epi in anti_pods:
            if ni.node is None:
                continue
            for t in epi.anti:
                if t.matches(pi.namespace, pi.labels):
                    v = ni.labels.get(t.key)
                    if v is not None:
                        existing.add((t.key, v))
        self.existing = existing

    @property
    def empty(self) -> bool:
        return not self.affinity and not self.anti and not self.existing

    def filter(self, ni: NodeInfo) -> tuple[bool, tuple[str, ...]] | None:
        labels = ni.labels
        if self.affinity:
            all_exist = True
            for key, vals in self.affinity:
                v = labels.get(key)
                if v is None:
                    return _AFFINITY_FAIL            # every topology key must be on the node
                if v not in vals:
                    all_exist = False
            if not all_exist and not (not self.any_affinity_match and self.self_match):
                return _AFFINITY_FAIL
        for key, vals in self.anti:
            v = labels.get(key)
            if v is not None and v in vals:
                return _ANTI_FAIL
        for key, value in self.existing:
            if labels.get(key) == value:
                return _EXISTING_FAIL
        return None


def _domains(term: PodTerm, nodes: list[NodeInfo]) -> set[str]:
    out: set[str] = set()
    key = term.key
    for ni in nodes:
        v = ni.labels.get(key)
        if v is None or v in out:
            continue
        for p in ni.pods.values():
            if term.matches(p.namespace, p.labels):
                out.add(v)
                break
    return out
