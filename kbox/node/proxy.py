"""kube-proxy in iptables mode: Services and Endpoints become DNAT rules on every node.

Two halves, as in kube-proxy:

- PURE. `build_rules(services, endpoints)` turns the API objects into one
  `ServicePortRule` per Service port (ClusterIP, NodePort, session affinity,
  the ready backends); `render_iptables(rules, ...)` turns those into the text
  `iptables-restore --noflush` takes, with kube-proxy's chains:

      nat    PREROUTING, OUTPUT -> KUBE-SERVICES -> KUBE-SVC-<hash> (one per service port)
             KUBE-SVC-<hash> -> KUBE-SEP-<hash> (one per endpoint, `-m statistic` 1/n, 1/(n-1) ... 1)
             KUBE-SEP-<hash> -> DNAT podIP:targetPort
             KUBE-SERVICES (last rule, dst-type LOCAL) -> KUBE-NODEPORTS -> KUBE-EXT-<hash> -> KUBE-SVC
             KUBE-MARK-MASQ marks 0x4000; POSTROUTING -> KUBE-POSTROUTING masquerades marked packets
      filter INPUT, FORWARD, OUTPUT -> KUBE-SERVICES / KUBE-EXTERNAL-SERVICES: REJECT for a
             Service port with no ready endpoint

  `ServicePortRule.pick` walks the same chain in Python (random 1/n per
  endpoint, ClientIP affinity through `recent` lists), which is how
  `kbox route` answers on any node, sim or docker.
- APPLYING. `ProxyRunner` (one per cluster, in the node pool) watches
  Services and Endpoints through informers, rebuilds the table once per burst
  of changes (kube-proxy's minSyncPeriod) and hands it to each node's
  `ServiceProxy`, which writes the whole kbox chain set into its node with
  one `iptables-restore --noflush` (an exec in the node container) and
  deletes the chains of services that went away. Sim nodes have nothing to
  program: their proxies only keep the table.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from kbox.api.objects import Obj
from kbox.controllers.workqueue import SyncError

log = logging.getLogger(__name__)

# the mark kube-proxy puts on packets it wants masqueraded (its masqueradeBit 14)
MASQ_MARK = "0x4000"
DEFAULT_AFFINITY_SECONDS = 10800       # sessionAffinityConfig.clientIP.timeoutSeconds' default

SERVICES_CHAIN = "KUBE-SERVICES"
NODEPORTS_CHAIN = "KUBE-NODEPORTS"
POSTROUTING_CHAIN = "KUBE-POSTROUTING"
MARK_MASQ_CHAIN = "KUBE-MARK-MASQ"
EXTERNAL_SERVICES_CHAIN = "KUBE-EXTERNAL-SERVICES"
NAT_CHAINS = (SERVICES_CHAIN, NODEPORTS_CHAIN, POSTROUTING_CHAIN, MARK_MASQ_CHAIN)
FILTER_CHAINS = (SERVICES_CHAIN, EXTERNAL_SERVICES_CHAIN)
# per-service chains: removed when their service port goes away
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-")

# (table, built-in chain, rule) that jump into kbox's chains: ensured after every restore
HOOKS = (
    ("nat", "PREROUTING", ["-m", "comment", "--comment", "kubernetes service portals",
                           "-j", SERVICES_CHAIN]),
    ("nat", "OUTPUT", ["-m", "comment", "--comment", "kubernetes service portals",
                       "-j", SERVICES_CHAIN]),
    ("nat", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules",
                            "-j", POSTROUTING_CHAIN]),
    ("filter", "INPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                         "kubernetes externally-visible service portals",
                         "-j", EXTERNAL_SERVICES_CHAIN]),
    ("filter", "FORWARD", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                           "kubernetes service portals", "-j", SERVICES_CHAIN]),
    ("filter", "OUTPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                          "kubernetes service portals", "-j", SERVICES_CHAIN]),
)
# hooks that must stay the chain's first rule. A node's inner engine puts its own jumps at the
# top of FORWARD when it makes the pod network (lazily, after the first sync), and the pod
# range's DOCKER-USER ACCEPT would then take pods' packets before the REJECT for a Service
# without endpoints: they would go on to the black-hole route and hang until a SYN retry.
HOOKS_FIRST = {("filter", "FORWARD")}


# ---- the pure table -----------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    """One ready endpoint of a service port: where a DNAT sends the packet."""
    ip: str
    port: int
    pod: str | None = None          # "namespace/name" from the address' targetRef
    node: str | None = None         # the address' nodeName

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePortRule:
    """Everything kube-proxy programs for one port of one Service."""
    namespace: str
    name: str
    port_name: str
    protocol: str                   # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    target_port: str                # as the Service says it (a number or a port name)
    node_port: int | None = None
    backends: tuple[Backend, ...] = ()
    affinity_seconds: int | None = None    # ClientIP affinity's timeout; None: no affinity
    external_local: bool = False    # externalTrafficPolicy Local: NodePort only to this node's pods

    @property
    def key(self) -> str:
        """kube-proxy's ServicePortName: namespace/name:port (no colon for an unnamed port)."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    def _hash(self, *extra: str) -> str:
        digest = hashlib.sha256((self.key + self.protocol + "".join(extra)).encode()).digest()
        return base64.b32encode(digest).decode()[:16]

    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + self._hash()

    @property
    def local_chain(self) -> str:
        return "KUBE-SVL-" + self._hash()

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + self._hash()

    def sep_chain(self, backend: Backend) -> str:
        return "KUBE-SEP-" + self._hash(backend.address)

    def local_backends(self, node: str | None) -> tuple[Backend, ...]:
        return tuple(b for b in self.backends if b.node == node)

    # ---- what one connection does (the chain walked in Python) ----------------------
    def pick(self, rng: random.Random, *, client_ip: str | None = None,
             affinity: "AffinityState | None" = None, now: float = 0.0,
             node_port_on: str | None = None) -> Backend | None:
        """The backend one new connection reaches, None when the rules REJECT or DROP it.
        `node_port_on`: the connection came in on that node's NodePort (so
        externalTrafficPolicy Local keeps it on the node's own pods)."""
        candidates = self.backends
        if node_port_on is not None and self.external_local:
            candidates = self.local_backends(node_port_on)
        if not candidates:
            return None
        if self.affinity_seconds is not None and affinity is not None and client_ip:
            for b in candidates:                       # the `recent --rcheck` rules, in order
                if affinity.check(self.sep_chain(b), client_ip, now, self.affinity_seconds):
                    affinity.set(self.sep_chain(b), client_ip, now)
                    return b
        chosen = candidates[-1]
        n = len(candidates)
        for i, b in enumerate(candidates[:-1]):        # `-m statistic --probability 1/(n-i)`
            if rng.random() < 1.0 / (n - i):
                chosen = b
                break
        if self.affinity_seconds is not None and affinity is not None and client_ip:
            affinity.set(self.sep_chain(chosen), client_ip, now)   # `recent --set` at the DNAT
        return chosen


class AffinityState:
    """The kernel's `recent` lists that ClientIP affinity uses: per KUBE-SEP chain, the
    clients that last went there and when."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, float]] = {}

    def check(self, chain: str, client: str, now: float, seconds: int) -> bool:
        seen = self._seen.get(chain, {})
        for ip in [ip for ip, t in seen.items() if now - t > seconds]:   # --reap
            del seen[ip]
        return client in seen

    def set(self, chain: str, client: str, now: float) -> None:
        self._seen.setdefault(chain, {})[client] = now


def _endpoint_ports(ep: Obj | None, port_name: str, protocol: str) -> list[Backend]:
    """The ready backends of one service port: kube-proxy matches Endpoints ports by the
    service port's name (which also resolves a named targetPort) and protocol."""
    out: list[Backend] = []
    for subset in (ep or {}).get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol]
        for p in ports:
            for addr in subset.get("addresses") or []:     # never notReadyAddresses
                ref = addr.get("targetRef") or {}
                pod = f"{ref.get('namespace') or ''}/{ref['name']}" \
                    if ref.get("kind", "Pod") == "Pod" and ref.get("name") else None
                out.append(Backend(addr["ip"], int(p["port"]), pod, addr.get("nodeName")))
    # the same order on every node and in every run
    return sorted(set(out), key=lambda b: (_ip_sort_key(b.ip), b.port))


def _ip_sort_key(ip: str) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(ip)), ip
    except ValueError:
        return 0, ip


def build_rules(services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePortRule]:
    """Services + Endpoints -> one rule per proxied service port, sorted by key.

    Left out, as kube-proxy leaves them: ExternalName services and headless ones
    (clusterIP None or unset), which have no virtual IP to catch."""
    eps = {(e["metadata"].get("namespace") or "", e["metadata"]["name"]): e for e in endpoints}
    out: list[ServicePortRule] = []
    for svc in services:
        spec = svc.get("spec") or {}
        meta = svc["metadata"]
        ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not ip or ip == "None":
            continue
        ns = meta.get("namespace") or ""
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
        node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        local = spec.get("externalTrafficPolicy") == "Local"
        for p in spec.get("ports") or []:
            proto = p.get("protocol") or "TCP"
            name = p.get("name") or ""
            target = p.get("targetPort")
            out.append(ServicePortRule(
                namespace=ns, name=meta["name"], port_name=name, protocol=proto,
                cluster_ip=ip, port=int(p["port"]),
                target_port=str(target if target not in (None, "") else p["port"]),
                node_port=int(p["nodePort"]) if node_ports and p.get("nodePort") else None,
                backends=tuple(_endpoint_ports(eps.get((ns, meta["name"])), name, proto)),
                affinity_seconds=affinity, external_local=local))
    out.sort(key=lambda r: (r.key, r.protocol, r.port))
    return out


# ---- the iptables-restore text ----------------------------------------------------------

def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def _proto(rule: ServicePortRule) -> list[str]:
    p = rule.protocol.lower()
    return ["-p", p, "-m", p]


def _line(chain: str, *parts: str | list[str]) -> str:
    words: list[str] = ["-A", chain]
    for part in parts:
        words.extend([part] if isinstance(part, str) else part)
    return " ".join(f'"{w}"' if (" " in w or not w) else w for w in words)


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def _balance(rule: ServicePortRule, chain: str, backends: tuple[Backend, ...]) -> list[str]:
    """The rules of a KUBE-SVC / KUBE-SVL chain that spread new connections over `backends`:
    ClientIP affinity first (`recent --rcheck`), then 1/n, 1/(n-1) ... so each gets 1/n."""
    lines = []
    if rule.affinity_seconds is not None:
        for b in backends:
            sep = rule.sep_chain(b)
            lines.append(_line(chain, _comment(f"{rule.key} -> {b.address}"),
                               ["-m", "recent", "--name", sep, "--mask", "255.255.255.255",
                                "--rsource", "--rcheck", "--seconds", str(rule.affinity_seconds),
                                "--reap", "-j", sep]))
    n = len(backends)
    for i, b in enumerate(backends):
        stat = ["-m", "statistic", "--mode", "random", "--probability", _probability(n - i)] \
            if i < n - 1 else []
        lines.append(_line(chain, _comment(f"{rule.key} -> {b.address}"), stat,
                           ["-j", rule.sep_chain(b)]))
    return lines


def render_iptables(rules: Iterable[ServicePortRule], *, cluster_cidr: str,
                     node: str | None = None, stale_chains: Iterable[str] = ()) -> str:
    """The whole kbox chain set for one node, for `iptables-restore --noflush`.

    Declaring a chain in a restore flushes it, so every chain is rewritten whole and
    the update is atomic per table. `stale_chains` (per-service chains of an earlier
    sync that no rule needs now) are flushed and deleted. `node` matters for
    externalTrafficPolicy Local (the node's own backends)."""
    nat_chains: list[str] = list(NAT_CHAINS)
    nat: list[str] = [
        _line(POSTROUTING_CHAIN, ["-m", "mark", "!", "--mark", f"{MASQ_MARK}/{MASQ_MARK}",
                                  "-j", "RETURN"]),
        _line(POSTROUTING_CHAIN, ["-j", "MARK", "--xor-mark", MASQ_MARK]),
        _line(POSTROUTING_CHAIN, _comment("kubernetes service traffic requiring SNAT"),
              ["-j", "MASQUERADE", "--random-fully"]),
        _line(MARK_MASQ_CHAIN, ["-j", "MARK", "--or-mark", MASQ_MARK]),
    ]
    filt: list[str] = []
    per_service: list[str] = []
    for rule in rules:
        dst = ["-d", f"{rule.cluster_ip}/32"] + _proto(rule) + ["--dport", str(rule.port)]
        if not rule.backends:
            # kube-proxy REJECTs connections to a service port nobody serves
            filt.append(_line(SERVICES_CHAIN, _comment(f"{rule.key} has no endpoints"), dst,
                              ["-j", "REJECT"]))
            if rule.node_port:
                filt.append(_line(EXTERNAL_SERVICES_CHAIN, _comment(f"{rule.key} has no endpoints"),
                                  ["-m", "addrtype", "--dst-type", "LOCAL"], _proto(rule),
                                  ["--dport", str(rule.node_port), "-j", "REJECT"]))
            continue
        svc = rule.svc_chain
        nat_chains.append(svc)
        nat.append(_line(SERVICES_CHAIN, _comment(f"{rule.key} cluster IP"), dst, ["-j", svc]))
        # traffic from outside the pod network is masqueraded, so replies come back this way
        per_service.append(_line(svc, _comment(f"{rule.key} cluster IP"), ["!", "-s", cluster_cidr],
                                 dst, ["-j", MARK_MASQ_CHAIN]))
        per_service.extend(_balance(rule, svc, rule.backends))
        for b in rule.backends:
            sep = rule.sep_chain(b)
            nat_chains.append(sep)
            # hairpin: a pod reaching itself through its service
            per_service.append(_line(sep, _comment(rule.key), ["-s", f"{b.ip}/32",
                                                               "-j", MARK_MASQ_CHAIN]))
            recent = ["-m", "recent", "--name", sep, "--mask", "255.255.255.255", "--rsource",
                      "--set"] if rule.affinity_seconds is not None else []
            per_service.append(_line(sep, _comment(rule.key), ["-p", rule.protocol.lower()], recent,
                                     ["-m", rule.protocol.lower(), "-j", "DNAT",
                                      "--to-destination", b.address]))
        if rule.node_port:
            ext = rule.ext_chain
            nat_chains.append(ext)
            nat.append(_line(NODEPORTS_CHAIN, _comment(rule.key), _proto(rule),
                             ["--dport", str(rule.node_port), "-j", ext]))
            if rule.external_local:
                # pods still go cluster-wide; outside clients only to this node's pods, and
                # keep their source address
                per_service.append(_line(ext, _comment("pod traffic for " + rule.key +
                                                       " external destinations"),
                                         ["-s", cluster_cidr, "-j", svc]))
                local = rule.local_backends(node)
                if local:
                    nat_chains.append(rule.local_chain)
                    per_service.append(_line(ext, ["-j", rule.local_chain]))
                    per_service.extend(_balance(rule, rule.local_chain, local))
                else:
                    per_service.append(_line(ext, _comment(f"{rule.key} has no local endpoints"),
                                             ["-j", "DROP"]))
            else:
                per_service.append(_line(ext, _comment(f"masquerade traffic for {rule.key} "
                                                       "external destinations"),
                                         ["-j", MARK_MASQ_CHAIN]))
                per_service.append(_line(ext, ["-j", svc]))
    nat.append(_line(SERVICES_CHAIN, _comment("kubernetes service nodeports; NOTE: this must be "
                                              "the last rule in this chain"),
                     ["-m", "addrtype", "--dst-type", "LOCAL", "-j", NODEPORTS_CHAIN]))
    wanted = set(nat_chains)
    stale = sorted(c for c in set(stale_chains) if c not in wanted
                   and c.startswith(SERVICE_CHAIN_PREFIXES))
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in FILTER_CHAINS]
    out += filt
    out += ["COMMIT", "*nat"]
    out += [f":{c} - [0:0]" for c in nat_chains + stale]
    out += nat + per_service
    out += [f"-X {c}" for c in stale]
    out += ["COMMIT", ""]
    return "\n".join(out)


def service_chains(text: str) -> set[str]:
    """The per-service chains a node has after an iptables-save (or -restore) text: those
    declared, less those the text deletes."""
    lines = text.splitlines()
    deleted = {line.split()[1] for line in lines if line.startswith("-X ")}
    return {line[1:].split()[0] for line in lines
            if line.startswith(":") and line[1:].startswith(SERVICE_CHAIN_PREFIXES)} - deleted


def hooks_script() -> str:
    """Shell that adds each jump into kbox's chains unless it is there (`-C`, then `-I`);
    a HOOKS_FIRST one found lower down is inserted first again and the old one deleted."""
    import shlex
    lines = []
    for table, chain, rule in HOOKS:
        spec = " ".join(shlex.quote(w) for w in rule)
        ipt = f"iptables -w -t {table}"
        if (table, chain) in HOOKS_FIRST:
            comment = rule[rule.index("--comment") + 1]
            lines.append(f"n=$({ipt} -L {chain} -n --line-numbers | "
                         f"awk '/\\/\\* {comment} \\*\\// {{print $1; exit}}')\n"
                         f"[ \"$n\" = 1 ] || {{ {ipt} -I {chain} 1 {spec} && "
                         f"{{ [ -z \"$n\" ] || {ipt} -D {chain} $((n + 1)); }}; }}")
        else:
            lines.append(f"{ipt} -C {chain} {spec} 2>/dev/null || {ipt} -I {chain} {spec}")
    return "\n".join(lines)


# ---- applying -----------------------------------------------------------------------------

class NodeShell(Protocol):
    """What a proxy needs from its node's machine (kbox.runtime.dind.NodeMachines)."""

    def running(self, node: str) -> bool: ...

    def node_exec(self, node: str, cmd: list[str]) -> tuple[int, str]: ...

    def node_file(self, node: str, name: str, data: bytes) -> str: ...


class ServiceProxy:
    """kube-proxy of one node. With a machine (docker nodes) it programs the node's
    iptables; without one (sim nodes) there is nothing to program."""

    def __init__(self, node_name: str, machines: NodeShell | None = None, *,
                 runner: "ProxyRunner | None" = None, cluster_cidr: str = "10.244.0.0/16") -> None:
        self.node_name = node_name
        self.machines = machines
        self.runner = runner
        self.cluster_cidr = cluster_cidr
        self._lock = threading.Lock()
        self._applied: str | None = None       # the text last restored; None: apply whole
        self._chains: set[str] | None = None   # per-service chains the node has (None: read them)
        self.syncs = 0                         # restores done (tests and benchmarks read it)

    @property
    def programs(self) -> bool:
        return self.machines is not None

    def start(self) -> None:
        if self.runner is not None:
            self.runner.register(self)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.unregister(self.node_name)

    def invalidate(self) -> None:
        """The node's rules are gone or unknown (it restarted): the next sync writes all."""
        with self._lock:
            self._applied = None
            self._chains = None

    def sync(self, rules: list[ServicePortRule]) -> bool:
        """Bring the node's kbox chains to `rules`; True when a restore ran."""
        if self.machines is None:
            return False
        with self._lock:
            if not self.machines.running(self.node_name):
                self._applied = self._chains = None      # written whole once it is back
                return False
            if self._chains is None:
                rc, saved = self.machines.node_exec(self.node_name, ["iptables-save", "-t", "nat"])
                if rc != 0:
                    raise SyncError(f"node {self.node_name}: iptables-save failed: {saved.strip()}")
                self._chains = service_chains(saved)
            text = render_iptables(rules, cluster_cidr=self.cluster_cidr, node=self.node_name,
                                   stale_chains=self._chains)
            if text == self._applied:
                return False
            # the rules go through a file (a restore can be far larger than one argument)
            path = self.machines.node_file(self.node_name, "kube-proxy.rules", text.encode())
            script = "iptables-restore -w --noflush < \"$1\" && {\n" + hooks_script() + "\n}"
            rc, out = self.machines.node_exec(self.node_name,
                                              ["sh", "-c", script, "kube-proxy", path])
            if rc != 0:
                self._applied = None
                raise SyncError(f"node {self.node_name}: iptables-restore failed (exit {rc}): "
                                   f"{out.strip()[-500:]}")
            self._applied = text
            self._chains = service_chains(text)
            self.syncs += 1
            return True


class ProxyRunner:
    """The cluster's kube-proxies: one table built per burst of Service/Endpoints changes
    (no sooner than `min_sync_period` after the last), then each programming node synced
    on its own key of one work queue (a failed node retries with back-off)."""

    TABLE = "table"

    def __init__(self, informers, clock, *, cluster_cidr: str, workers: int = 1,
                 settle: float = 0.05, min_sync_period: float = 0.25) -> None:
        from kbox.controllers.workqueue import WorkQueue
        self.clock = clock
        self.cluster_cidr = cluster_cidr
        self.settle = settle
        self.min_sync_period = min_sync_period
        self.workers = workers
        self.queue = WorkQueue(clock, name="kube-proxy")
        self.services = informers.informer("services")
        self.endpoints = informers.informer("endpoints")
        for inf in (self.services, self.endpoints):
            inf.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)
        self.rules: list[ServicePortRule] = []
        self.proxies: dict[str, ServiceProxy] = {}
        self._lock = threading.Lock()
        self._last_build = float("-inf")
        self._built = False
        self._threads: list[threading.Thread] = []

    def proxy_for(self, node: str, machines: NodeShell | None) -> ServiceProxy:
        return ServiceProxy(node, machines, runner=self, cluster_cidr=self.cluster_cidr)

    # ---- triggers ---------------------------------------------------------------------
    def _changed(self, _obj: Any) -> None:
        wait = max(self.settle, self._last_build + self.min_sync_period - self.clock.monotonic())
        self.queue.add_after(self.TABLE, wait)

    def register(self, proxy: ServiceProxy) -> None:
        with self._lock:
            self.proxies[proxy.node_name] = proxy
        if proxy.programs:
            self.queue.add(("node", proxy.node_name))

    def unregister(self, node: str) -> None:
        with self._lock:
            self.proxies.pop(node, None)

    def resync_node(self, node: str) -> None:
        """The node came back from a restart: its rules are gone, write them all again."""
        proxy = self.proxies.get(node)
        if proxy is not None:
            proxy.invalidate()
            self.queue.add(("node", node))

    # ---- syncing ------------------------------------------------------------------------
    def sync(self, key: Any) -> None:
        if key == self.TABLE:
            self._last_build = self.clock.monotonic()
            self.rules = build_rules(self.services.list(), self.endpoints.list())
            self._built = True
            with self._lock:
                nodes = [n for n, p in self.proxies.items() if p.programs]
            for n in nodes:
                self.queue.add(("node", n))
            return
        proxy = self.proxies.get(key[1])
        if proxy is not None and self._built:      # else the first table's build enqueues it
            proxy.sync(self.rules)

    def run_until_idle(self) -> int:
        return self.queue.run_until_idle(self.sync, name="kube-proxy")

    def start(self) -> None:
        self.queue.add(self.TABLE)           # the informers have synced: the first table
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, daemon=True, name=f"kube-proxy-{i}")
            t.start()
            self._threads.append(t)

    def _worker(self) -> None:
        while not self.queue.shutting_down:
            self.queue.process_next(self.sync, name="kube-proxy")

    def stop(self) -> None:
        self.queue.shutdown()


__all__ = ["Backend", "ServicePortRule", "AffinityState", "build_rules", "render_iptables",
           "service_chains", "hooks_script", "ServiceProxy", "ProxyRunner", "MASQ_MARK"]
