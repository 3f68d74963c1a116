"""kube-scheduler's PodTopologySpread filter for a pod's own `topologySpreadConstraints`.

A constraint with `whenUnsatisfiable: DoNotSchedule` keeps the number of
matching pods (its labelSelector, in the pod's namespace) in any topology
domain within `maxSkew` of the emptiest eligible domain. Eligible domains are
those of the nodes that pass the pod's nodeSelector / required node affinity
(nodeAffinityPolicy Honor, the default) and carry the topology key; taints
are ignored (nodeTaintsPolicy Ignore, the default). `minDomains` counts
missing domains as empty ones. `ScheduleAnyway` constraints only score in
Kubernetes; kbox's own spreading of a controller's pods covers that.

As in kube-scheduler's PreFilter, counts are taken once per scheduling cycle;
the per-node check is a few dict lookups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbox.api.errors import ApiError
from kbox.api.selectors import LabelSelector, selector_from_spec

if TYPE_CHECKING:  # pragma: no cover
    from kbox.scheduler.info import NodeInfo, PodInfo

R_SPREAD = "node(s) didn't match pod topology spread constraints"
R_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"

_SKEW_FAIL = (False, (R_SPREAD,))
_LABEL_FAIL = (True, (R_SPREAD_LABEL,))


class Constraint:
    __slots__ = ("key", "max_skew", "min_domains", "selector")

    def __init__(self, key: str, max_skew: int, min_domains: int, selector: LabelSelector) -> None:
        self.key = key
        self.max_skew = max_skew
        self.min_domains = min_domains
        self.selector = selector


def parse_constraints(pod: dict[str, Any]) -> tuple[Constraint, ...]:
    """The DoNotSchedule constraints of a pod (matchLabelKeys add the pod's own values)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    out = []
    for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        if (c.get("whenUnsatisfiable") or "DoNotSchedule") != "DoNotSchedule":
            continue
        key = c.get("topologyKey") or ""
        if not key:
            continue
        sel_spec = c.get("labelSelector")
        extra = {k: labels[k] for k in c.get("matchLabelKeys") or [] if k in labels}
        if extra:
            sel_spec = dict(sel_spec or {})
            sel_spec["matchLabels"] = {**(sel_spec.get("matchLabels") or {}), **extra}
        try:
            sel = selector_from_spec(sel_spec)
        except ApiError:   # an invalid selector matches nothing
            sel = LabelSelector(match_nothing=True)
        out.append(Constraint(key, max(1, int(c.get("maxSkew") or 1)),
                              max(1, int(c.get("minDomains") or 1)), sel))
    return tuple(out)


class SpreadState:
    """Per cycle: matching pods per domain, and the smallest count, for each constraint."""

    __slots__ = ("checks",)

    def __init__(self, pi: PodInfo, nodes: list[NodeInfo]) -> None:
        eligible = [ni for ni in nodes if ni.node is not None
                    and (pi.required is None or pi.required(ni.labels, ni.name))]
        self.checks = []
        for c in pi.spread:
            counts: dict[str, int] = {}
            for ni in eligible:
                v = ni.labels.get(c.key)
                if v is None:
                    continue
                n = 0
                for p in ni.pods.values():
                    if p.namespace == pi.namespace and c.selector.matches(p.labels):
                        n += 1
                counts[v] = counts.get(v, 0) + n
            if not counts:
                lowest = 0
            elif len(counts) < c.min_domains:
                lowest = 0          # fewer domains than minDomains: the missing ones are empty
            else:
                lowest = min(counts.values())
            self_match = 1 if c.selector.matches(pi.labels) else 0
            self.checks.append((c.key, counts, lowest + c.max_skew - self_match))

    def filter(self, ni: NodeInfo) -> tuple[bool, tuple[str, ...]] | None:
        labels = ni.labels
        for key, counts, limit in self.checks:
            v = labels.get(key)
            if v is None:
                return _LABEL_FAIL
            if counts.get(v, 0) > limit:
                return _SKEW_FAIL
        return None
