"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics, as metrics-server serves them.

`kubectl top` and autoscalers read resource usage from this API group. kbox
has no metrics-server: node agents report usage directly through
`api.node_endpoints[node].stats()`, which returns

    {"node": {"cpu_nanocores": int, "memory_bytes": int},
     "pods": [{"namespace", "name", "containers": [{"name", "cpu_nanocores", "memory_bytes"}]}]}

and this module shapes those numbers into the objects metrics-server
returns (usage as Kubernetes quantities: cpu "250m" / "12345n", memory
"123456Ki").
"""

from __future__ import annotations

from typing import Any

from kbox.api import errors
from kbox.api.errors import ApiError
from kbox.clock import iso_time

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
WINDOW = "10s"

# discovery entries for /apis/metrics.k8s.io/v1beta1
RESOURCES = [
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
     "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
     "verbs": ["get", "list"]},
]


def cpu_quantity(nanocores: int | float) -> str:
    """Nanocores as a canonical quantity: "2", "250m" or "12345n"."""
    n = int(nanocores or 0)
    if n == 0:
        return "0"
    if n % 1_000_000_000 == 0:
        return str(n // 1_000_000_000)
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n}n"


def memory_quantity(num_bytes: int | float) -> str:
    """Bytes as a canonical binary quantity: "64Mi", "123456Ki" or "1000"."""
    b = int(num_bytes or 0)
    if b == 0:
        return "0"
    for suffix, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if b % size == 0:
            return f"{b // size}{suffix}"
    return str(b)


def _usage(d: dict[str, Any]) -> dict[str, str]:
    return {"cpu": cpu_quantity(d.get("cpu_nanocores", 0)),
            "memory": memory_quantity(d.get("memory_bytes", 0))}


def _stats(api: Any) -> dict[str, dict[str, Any]]:
    """Node name → stats() of every node endpoint that reports them."""
    out = {}
    for name, ep in list(api.node_endpoints.items()):
        fn = getattr(ep, "stats", None)
        if fn is None:
            continue
        try:
            out[name] = fn() or {}
        except Exception:   # a node that fails to report is left out, as metrics-server does
            continue
    return out


def _labels(api: Any, resource: str, name: str, namespace: str | None = None) -> dict[str, str]:
    try:
        obj = api.get(resource, name, namespace)
    except ApiError:
        return {}
    return (obj.get("metadata") or {}).get("labels") or {}


def node_metrics(api: Any, name: str | None = None) -> dict[str, Any]:
    now = iso_time(api.clock.now())
    items = []
    for node, stats in sorted(_stats(api).items()):
        if name is not None and node != name:
            continue
        items.append({"kind": "NodeMetrics", "apiVersion": API_VERSION,
                      "metadata": {"name": node, "creationTimestamp": now,
                                   "labels": _labels(api, "nodes", node)},
                      "timestamp": now, "window": WINDOW, "usage": _usage(stats.get("node") or {})})
    if name is not None:
        if not items:
            raise errors.not_found("nodes", name, GROUP)
        return items[0]
    return {"kind": "NodeMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}


def pod_metrics(api: Any, namespace: str | None = None, name: str | None = None) -> dict[str, Any]:
    now = iso_time(api.clock.now())
    items = []
    for _node, stats in sorted(_stats(api).items()):
        for p in stats.get("pods") or []:
            if namespace and p.get("namespace") != namespace:
                continue
            if name is not None and p.get("name") != name:
                continue
            items.append({
                "kind": "PodMetrics", "apiVersion": API_VERSION,
                "metadata": {"name": p.get("name"), "namespace": p.get("namespace"),
                             "creationTimestamp": now,
                             "labels": _labels(api, "pods", p.get("name", ""), p.get("namespace"))},
                "timestamp": now, "window": WINDOW,
                "containers": [{"name": c.get("name"), "usage": _usage(c)}
                               for c in p.get("containers") or []]})
    items.sort(key=lambda o: (o["metadata"]["namespace"] or "", o["metadata"]["name"] or ""))
    if name is not None:
        if not items:
            raise errors.not_found("pods", name, GROUP)
        return items[0]
    return {"kind": "PodMetricsList", "apiVersion": API_VERSION, "metadata": {}, "items": items}


__all__ = ["node_metrics", "pod_metrics", "cpu_quantity", "memory_quantity", "RESOURCES",
           "GROUP", "VERSION", "API_VERSION"]
