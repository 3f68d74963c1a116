"""A pod's /etc/resolv.conf, as the kubelet's DNS configurer forms it.

`pod_dns(pod, settings)` is the pure part (no files, no runtime): both the sim
and the docker runtime get its text from the node agent.

- `ClusterFirst` (the default): the cluster DNS Service's address, the search
  path `<ns>.svc.<domain> svc.<domain> <domain>` (then the node's own search
  domains) and `options ndots:5`. A hostNetwork pod with ClusterFirst uses the
  node's settings instead (`Default`), as the kubelet does; ClusterFirstWithHostNet
  keeps the cluster's. A kubelet without a cluster DNS address falls back to
  `Default` and says so (MissingClusterDNS).
- `Default`: the node's resolv.conf.
- `None`: nothing but the pod's `dnsConfig`.
- `dnsConfig` is merged into the base: nameservers and searches appended
  (duplicates dropped), options by name (the pod's value wins).
- The kubelet's limits: 3 nameservers, 32 search domains, 2048 characters of
  search line. The API refuses a dnsConfig over them; a base that grows past
  them is cut with a warning (the kubelet's DNSConfigForming event).

The node's resolv.conf (`NODE_RESOLV_CONF`): kbox's nodes have no upstream
resolver on purpose (traffic never leaves the machine, DNS is never forwarded),
so it names 127.0.0.1, where nothing answers inside a pod, and a lookup
through it fails at once instead of reaching out. The docker nodes' inner
engines give their containers the same (dockerd `--dns 127.0.0.1`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbox.dns import CLUSTER_DOMAIN

NODE_RESOLV_CONF = "nameserver 127.0.0.1\n"
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
CLUSTER_NDOTS = "ndots:5"


@dataclass
class DnsSettings:
    """What the kubelet knows of DNS: its --cluster-dns, --cluster-domain and --resolv-conf."""
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = CLUSTER_DOMAIN
    node_resolv_conf: str = NODE_RESOLV_CONF


@dataclass
class PodDns:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    # (reason, message) for the pod's events, as the kubelet records them
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        """The file, in the order the container runtimes write it (search, nameserver, options)."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def parse_resolv_conf(text: str) -> PodDns:
    """nameserver, search and options lines of a resolv.conf (the last search line wins, as
    for the resolver)."""
    out = PodDns()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not line:
            continue
        if line[0] == "nameserver" and len(line) > 1:
            out.nameservers.append(line[1])
        elif line[0] in ("search", "domain"):
            out.searches = [s.rstrip(".") for s in line[1:]]
        elif line[0] == "options":
            out.options += line[1:]
    return out


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    merged: dict[str, str | None] = {}
    for op in base:
        name, sep, value = op.partition(":")
        merged[name] = value if sep else None
    for op in extra:
        if op.get("name"):
            v = op.get("value")
            merged[op["name"]] = str(v) if v not in (None, "") else None
    return [k if v is None else f"{k}:{v}" for k, v in merged.items()]


def effective_policy(pod: dict[str, Any], settings: DnsSettings) -> tuple[str, list[tuple[str, str]]]:
    """"ClusterFirst", "Default" or "None", with the kubelet's warning when it falls back."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "None", []
    if policy == "Default":
        return "Default", []
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        return "Default", []
    if not settings.cluster_dns:
        return "Default", [("MissingClusterDNS",
                            f'kubelet does not have ClusterDNS IP configured and cannot create Pod '
                            f'using "{policy}" policy. Falling back to "Default" policy.')]
    return "ClusterFirst", []


def pod_dns(pod: dict[str, Any], settings: DnsSettings) -> PodDns:
    """The pod's DNS configuration; `.text()` is its /etc/resolv.conf."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    policy, warnings = effective_policy(pod, settings)
    node = parse_resolv_conf(settings.node_resolv_conf)
    if policy == "ClusterFirst":
        domain = settings.cluster_domain.rstrip(".")
        out = PodDns(list(settings.cluster_dns),
                     [f"{ns}.svc.{domain}", f"svc.{domain}", domain] + node.searches,
                     [CLUSTER_NDOTS])
    elif policy == "Default":
        out = PodDns(node.nameservers, node.searches, node.options)
    else:
        out = PodDns()
    out.warnings = warnings
    cfg = spec.get("dnsConfig") or {}
    if cfg:
        out.nameservers = _unique(out.nameservers + [str(s) for s in cfg.get("nameservers") or []])
        out.searches = _unique(out.searches + [str(s) for s in cfg.get("searches") or []])
        out.options = _merge_options(out.options, cfg.get("options") or [])
    else:
        out.nameservers, out.searches = _unique(out.nameservers), _unique(out.searches)
    _fit_limits(out)
    return out


def _fit_limits(out: PodDns) -> None:
    if len(out.nameservers) > MAX_NAMESERVERS:
        out.nameservers = out.nameservers[:MAX_NAMESERVERS]
        out.warnings.append(("DNSConfigForming", "Nameserver limits were exceeded, some "
                             "nameservers have been omitted, the applied nameserver line is: "
                             + " ".join(out.nameservers)))
    cut = False
    if len(out.searches) > MAX_SEARCHES:
        out.searches, cut = out.searches[:MAX_SEARCHES], True
    while out.searches and len(" ".join(out.searches)) > MAX_SEARCH_CHARS:
        out.searches, cut = out.searches[:-1], True
    if cut:
        out.warnings.append(("DNSConfigForming", "Search Line limits were exceeded, some search "
                             "paths have been omitted, the applied search line is: "
                             + " ".join(out.searches)))


def resolv_conf(pod: dict[str, Any], settings: DnsSettings) -> str:
    return pod_dns(pod, settings).text()


__all__ = ["DnsSettings", "PodDns", "pod_dns", "resolv_conf", "parse_resolv_conf",
           "NODE_RESOLV_CONF", "MAX_NAMESERVERS", "MAX_SEARCHES", "MAX_SEARCH_CHARS"]
