"""The pod network between docker nodes: what kind's kindnet does.

Each docker node keeps its pods on an inner bridge with the node's own
spec.podCIDR (kbox.runtime.docker). For a pod to reach a pod on another node
by its own IP, every node needs:

- a route per peer: `ip route replace PEER_POD_CIDR via PEER_NODE_IP` (the
  node containers share the cluster's docker network, so peers are one hop);
- `DOCKER-USER` ACCEPT for the pod range, or the inner engine's FORWARD rules
  drop new connections coming in from another node;
- a nat POSTROUTING RETURN for pod -> pod, ahead of the inner engine's
  MASQUERADE, so the server sees the client pod's real IP (unless kube-proxy
  marked the packet for masquerade: hairpin and NodePort traffic).

The node image's entrypoint black-holes the pod and service ranges, so while
a route is missing nothing leaves the machine. Routes go when a node goes
(its Node is deleted) and are written again when a node restarts (its
routes and rules died with it) or changes address.

`route_changes` and `base_rules_script` are pure; `PodNetwork` applies them
through execs in the node containers (one work queue key per node).
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
import threading
from typing import Any

from kbox.controllers.workqueue import SyncError
from kbox.node.proxy import MASQ_MARK

log = logging.getLogger(__name__)

ALL = "all"


def route_changes(current: str, peers: dict[str, str], cluster_cidr: str) -> list[list[str]]:
    """`ip` commands that turn a node's routes (`ip -4 route show` output) into one route
    per peer pod CIDR (`peers`: CIDR -> node IP). Routes into the cluster range with a
    gateway that no peer wants are deleted; the black-hole and the local bridge stay."""
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    have: dict[str, str] = {}
    cmds: list[list[str]] = []
    for line in current.splitlines():
        words = line.split()
        if len(words) < 3 or words[1] != "via":
            continue
        try:
            dst = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        if dst.version != 4 or not dst.subnet_of(cluster):   # type: ignore[arg-type]
            continue
        if peers.get(str(dst)) == words[2]:
            have[str(dst)] = words[2]
        else:
            cmds.append(["ip", "route", "del", str(dst), "via", words[2]])
    for cidr, via in sorted(peers.items()):
        if have.get(cidr) != via:
            cmds.append(["ip", "route", "replace", cidr, "via", via])
    return cmds


def base_rules_script(cluster_cidr: str) -> str:
    """Shell adding (once) the forwarding and no-masquerade rules for the pod range."""
    c = shlex.quote(cluster_cidr)
    rules = [
        ("filter", "DOCKER-USER", f"-s {c} -j ACCEPT"),
        ("filter", "DOCKER-USER", f"-d {c} -j ACCEPT"),
        ("nat", "POSTROUTING", f"-s {c} -d {c} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} "
                               f"-m comment --comment 'kbox: pod to pod keeps its source' -j RETURN"),
    ]
    lines = [
        # the inner engine makes DOCKER-USER with its first network; make sure it is there
        "iptables -w -N DOCKER-USER 2>/dev/null || true",
        "iptables -w -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -w -I FORWARD -j DOCKER-USER",
    ]
    for table, chain, spec in rules:
        lines.append(f"iptables -w -t {table} -C {chain} {spec} 2>/dev/null || "
                     f"iptables -w -t {table} -I {chain} {spec}")
    return "\n".join(lines)


class PodNetwork:
    """Routes between the pod CIDRs of a docker cluster's nodes (one per cluster, in the
    node pool). Node changes (added, deleted, podCIDR given) and node restarts enqueue
    ALL, which reads every node's address and enqueues each running node."""

    def __init__(self, machines: Any, informers, clock, *, cluster_cidr: str) -> None:
        from kbox.controllers.workqueue import WorkQueue
        self.machines = machines            # kbox.runtime.dind.NodeMachines
        self.cluster_cidr = cluster_cidr
        self.queue = WorkQueue(clock, name="pod-network")
        self.nodes = informers.informer("nodes")
        self.nodes.add_handler(self._node_event, self._node_update, self._node_event)
        self.peers: dict[str, str] = {}            # pod CIDR -> node IP, as last computed
        self._lock = threading.Lock()
        self._members: set[str] = set()            # nodes of this cluster the pool runs
        self._fresh: set[str] = set()              # nodes whose base rules must be (re)written
        self._thread: threading.Thread | None = None

    # ---- triggers -----------------------------------------------------------------------
    def _node_event(self, _node: Any) -> None:
        self.queue.add(ALL)

    def _node_update(self, old: Any, new: Any) -> None:
        if (old.get("spec") or {}).get("podCIDR") != (new.get("spec") or {}).get("podCIDR"):
            self.queue.add(ALL)

    def add_node(self, name: str) -> None:
        with self._lock:
            self._members.add(name)
            self._fresh.add(name)
        self.queue.add(ALL)

    def node_restarted(self, name: str) -> None:
        """After `docker start` the node's routes and rules are gone, and its address may
        have changed for its peers."""
        with self._lock:
            self._fresh.add(name)
        self.queue.add(ALL)

    def remove_node(self, name: str) -> None:
        with self._lock:
            self._members.discard(name)
            self._fresh.discard(name)
        self.queue.add(ALL)

    # ---- syncing -------------------------------------------------------------------------
    def sync(self, key: Any) -> None:
        if key == ALL:
            with self._lock:
                members = sorted(self._members)
            peers: dict[str, str] = {}
            running: list[str] = []
            for name in members:
                ip = self.machines.node_ip(name) if self.machines.running(name) else None
                if ip is None:
                    continue
                running.append(name)
                node = self.nodes.get(name)
                cidr = ((node or {}).get("spec") or {}).get("podCIDR")
                if cidr:
                    peers[str(ipaddress.ip_network(cidr, strict=False))] = ip
            self.peers = peers
            for name in running:
                self.queue.add(("node", name))
            return
        self.apply(key[1])

    def apply(self, name: str) -> bool:
        """Bring one node's routes (and, after a boot, its base rules) up to date; True
        when something was written."""
        if not self.machines.running(name):
            return False
        node = self.nodes.get(name)
        own = ((node or {}).get("spec") or {}).get("podCIDR")
        own = str(ipaddress.ip_network(own, strict=False)) if own else None
        peers = {cidr: ip for cidr, ip in self.peers.items() if cidr != own}
        rc, current = self.machines.node_exec(name, ["ip", "-4", "route", "show"])
        if rc != 0:
            raise SyncError(f"node {name}: ip route show failed: {current.strip()}")
        cmds = route_changes(current, peers, self.cluster_cidr)
        with self._lock:
            fresh = name in self._fresh
        if not cmds and not fresh:
            return False
        lines = [" ".join(shlex.quote(w) for w in c) for c in cmds]
        if fresh:
            lines.append(base_rules_script(self.cluster_cidr))
        rc, out = self.machines.node_exec(name, ["sh", "-c", "set -e\n" + "\n".join(lines)])
        if rc != 0:
            raise SyncError(f"node {name}: setting the pod routes failed (exit {rc}): "
                               f"{out.strip()[-500:]}")
        with self._lock:
            self._fresh.discard(name)
        if cmds:
            log.info("pod network: node %s: %s", name, "; ".join(" ".join(c[2:]) for c in cmds))
        return True

    def run_until_idle(self) -> int:
        return self.queue.run_until_idle(self.sync, name="pod-network")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._worker, daemon=True, name="pod-network")
        self._thread.start()

    def _worker(self) -> None:
        while not self.queue.shutting_down:
            self.queue.process_next(self.sync, name="pod-network")

    def stop(self) -> None:
        self.queue.shutdown()


__all__ = ["PodNetwork", "route_changes", "base_rules_script"]
