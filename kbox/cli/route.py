"""`kbox route`: which backend a request to a Service would reach.

The answer comes from the same table kube-proxy programs into docker nodes
(kbox.node.proxy.build_rules) and the same selection: each new connection
takes 1/n over the ready endpoints, ClientIP affinity sticks to the backend a
client had, a Service port without ready endpoints is rejected, and a
NodePort with externalTrafficPolicy Local only reaches the node's own pods.
It reads Services, Endpoints, Pods and Nodes over the API, so it works the
same on sim and docker clusters (on sim nodes it is the only routing there is).

    kbox route svc/web [-n NS] [--port 80] [--from POD | --client-ip IP] [--requests N]
    kbox route [svc/web] --node NODE --node-port 30080
"""

from __future__ import annotations

import argparse
import ipaddress
import random
from typing import Any

from kbox.api.errors import ApiError
from kbox.cli.registry import CliError, Context, arguments, command
from kbox.cli.tabwriter import render
from kbox.cli.util import api_error_text
from kbox.node.proxy import AffinityState, Backend, ServicePortRule, build_rules

SERVICE_WORDS = ("svc", "service", "services")


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", nargs="?", help="the Service: svc/NAME or NAME")
    p.add_argument("-n", "--namespace")
    p.add_argument("--port", help="the service port (number or name); needed when it has several")
    p.add_argument("--protocol", choices=("TCP", "UDP", "SCTP"), help="the port's protocol")
    p.add_argument("--from", dest="from_pod", metavar="POD",
                   help="the client pod (same namespace): its IP is the source")
    p.add_argument("--client-ip", help="the client's source address")
    p.add_argument("--requests", type=int, default=1, help="new connections to route (default 1)")
    p.add_argument("--node", help="NodePort form: the node the request comes in on")
    p.add_argument("--node-port", type=int, help="NodePort form: the node port")
    p.add_argument("--seed", type=int, help="seed the random choice (repeatable answers)")


def _fail(e: ApiError) -> CliError:
    return CliError(api_error_text(e))


def _service_name(word: str) -> str:
    if "/" in word:
        kind, name = word.split("/", 1)
        if kind.lower() not in SERVICE_WORDS or not name:
            raise CliError(f'cannot route to "{word}": give a Service as svc/NAME or NAME')
        return name
    return word


def _port_text(r: ServicePortRule) -> str:
    return f"{r.port}/{r.protocol}" + (f" ({r.port_name})" if r.port_name else "")


def _choose_port(rules: list[ServicePortRule], svc: str, port: str | None,
                 protocol: str | None) -> ServicePortRule:
    have = ", ".join(_port_text(r) for r in rules) or "none"
    found = [r for r in rules if (port is None or port in (str(r.port), r.port_name))
             and (protocol is None or r.protocol == protocol)]
    if not found:
        what = " ".join(x for x in (port, protocol) if x)
        raise CliError(f'service "{svc}" has no port {what}; its ports: {have}')
    if len(found) > 1:
        raise CliError(f'service "{svc}" has several ports ({have}): choose one with --port '
                       "(and --protocol)")
    return found[0]


def _client(ctx: Context, args: argparse.Namespace, ns: str) -> tuple[str | None, str]:
    """(client IP, how to name the client)."""
    if args.from_pod and args.client_ip:
        raise CliError("--from and --client-ip: give one client, not both")
    if args.from_pod:
        try:
            pod = ctx.client.get("pods", args.from_pod, ns)
        except ApiError as e:
            raise _fail(e)
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            raise CliError(f'pod "{args.from_pod}" has no IP yet (phase {phase}): it cannot be a client')
        node = (pod.get("spec") or {}).get("nodeName") or "-"
        return ip, f"pod {args.from_pod} ({ip}, on node {node})"
    if args.client_ip:
        try:
            ipaddress.ip_address(args.client_ip)
        except ValueError:
            raise CliError(f'--client-ip: "{args.client_ip}" is not an IP address') from None
        return args.client_ip, args.client_ip
    return None, ""


def _in_pod_network(ctx: Context, ip: str) -> bool:
    """Whether `ip` is inside some node's pod CIDR (so kube-proxy leaves its source alone)."""
    try:
        nodes = ctx.client.list("nodes")["items"]
    except ApiError:
        return False
    addr = ipaddress.ip_address(ip)
    for n in nodes:
        cidr = (n.get("spec") or {}).get("podCIDR")
        if cidr and addr in ipaddress.ip_network(cidr, strict=False):
            return True
    return False


def _find_by_node_port(ctx: Context, node_port: int, protocol: str | None) -> dict[str, Any]:
    try:
        services = ctx.client.list("services")["items"]
    except ApiError as e:
        raise _fail(e)
    for s in services:
        for p in (s.get("spec") or {}).get("ports") or []:
            if p.get("nodePort") == node_port and (protocol is None or
                                                   (p.get("protocol") or "TCP") == protocol):
                return s
    raise CliError(f"no service has node port {node_port}")


def _backend_text(b: Backend, ns: str) -> tuple[str, str]:
    pod = "-"
    if b.pod:
        pns, _, name = b.pod.partition("/")
        pod = name if pns == ns else b.pod
    return pod, b.node or "-"


@command("route", "Show which backend a request to a Service reaches (kube-proxy's choice)",
         usage="kbox route svc/web --port 80 --from client --requests 100",
         group="Troubleshooting and Debugging")
@arguments(_args)
def cmd_route(ctx: Context, args: argparse.Namespace) -> int:
    if args.requests < 1:
        raise CliError("--requests: must be >= 1")
    if (args.node is None) != (args.node_port is None):
        raise CliError("--node and --node-port go together (a request to NODE's IP on the node port)")
    ns = ctx.ns(args)
    if args.service:
        name = _service_name(args.service)
        try:
            svc = ctx.client.get("services", name, ns)
        except ApiError as e:
            raise _fail(e)
    elif args.node_port is not None:
        svc = _find_by_node_port(ctx, args.node_port, args.protocol)
    else:
        raise CliError("give the Service to route to (svc/NAME), or --node and --node-port")
    name = svc["metadata"]["name"]
    ns = svc["metadata"].get("namespace") or ns
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        raise CliError(f'service "{name}" is of type ExternalName ({spec.get("externalName")}): '
                       "it is a DNS alias, nothing proxies it")
    if spec.get("clusterIP") in (None, "", "None"):
        raise CliError(f'service "{name}" is headless (clusterIP None): it has no virtual IP; '
                       "clients reach its pods directly by their DNS records")
    try:
        ep = ctx.client.get("endpoints", name, ns)
    except ApiError as e:
        if e.code != 404:
            raise _fail(e)
        ep = None
    order = [((p.get("name") or ""), p.get("protocol") or "TCP") for p in spec.get("ports") or []]
    rules = sorted(build_rules([svc], [ep] if ep else []),            # as the Service lists them
                   key=lambda r: order.index((r.port_name, r.protocol)))
    client_ip, client_text = _client(ctx, args, ns)
    node_ip = None
    if args.node_port is not None:
        try:
            node = ctx.client.get("nodes", args.node)
        except ApiError as e:
            raise _fail(e)
        node_ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), None)
        if not any(r.node_port for r in rules):
            raise CliError(f'service "{name}" is of type {spec.get("type") or "ClusterIP"}: '
                           "it has no node ports")
        rules = [r for r in rules if r.node_port == args.node_port]
        if not rules:
            ports = ", ".join(f"{p.get('nodePort')}/{p.get('protocol') or 'TCP'}"
                              for p in spec.get("ports") or [] if p.get("nodePort"))
            raise CliError(f'service "{name}" has no node port {args.node_port}; its node ports: {ports}')
    rule = _choose_port(rules, name, args.port, args.protocol)

    if args.node_port is not None:
        ctx.write(f"service {ns}/{name} port {_port_text(rule)}: node port {rule.node_port}/"
                  f"{rule.protocol} on node {args.node} ({node_ip or 'no address'}:{rule.node_port})")
    else:
        ctx.write(f"service {ns}/{name} port {_port_text(rule)} at {rule.cluster_ip}:{rule.port}")
    if client_text:
        ctx.write(f"client: {client_text}")
    pool = rule.local_backends(args.node) if args.node and rule.external_local else rule.backends
    if not rule.backends:
        raise CliError(f'no endpoints available for service "{name}" ({rule.key}): '
                       "kube-proxy rejects the connection (connection refused)")
    if not pool:
        raise CliError(f'no local endpoints for service "{name}" on node {args.node} '
                       "(externalTrafficPolicy Local): kube-proxy drops the packet")
    scope = f" on node {args.node} (externalTrafficPolicy Local)" if pool is not rule.backends else ""
    ctx.write(f"{len(pool)} ready endpoint{'s' if len(pool) != 1 else ''}{scope}; "
              f"each new connection picks one at random (1/{len(pool)} each)")
    if rule.affinity_seconds is not None:
        ctx.write(f"session affinity ClientIP ({rule.affinity_seconds}s): "
                  + ("a client sticks to the backend it first reached"
                     if client_ip else "give --from or --client-ip to see it stick"))
    ctx.write(_source_line(ctx, rule, client_ip, node_port=args.node_port is not None))

    rng = random.Random(args.seed)
    affinity = AffinityState()
    counts: dict[Backend, int] = {b: 0 for b in pool}
    picks: list[Backend] = []
    for _ in range(args.requests):
        b = rule.pick(rng, client_ip=client_ip, affinity=affinity, now=ctx.clock.monotonic(),
                      node_port_on=args.node if args.node_port is not None else None)
        assert b is not None            # pool is not empty
        counts[b] += 1
        picks.append(b)
    if args.requests == 1:
        pod, node = _backend_text(picks[0], ns)
        ctx.write(f"-> {picks[0].address}  pod {pod} on node {node}")
        return 0
    rows = ["BACKEND\tPOD\tNODE\tREQUESTS\tSHARE\t"]
    for b in pool:
        pod, node = _backend_text(b, ns)
        rows.append(f"{b.address}\t{pod}\t{node}\t{counts[b]}\t{100 * counts[b] / args.requests:.0f}%\t")
    ctx.write(render("\n".join(rows)).rstrip())
    return 0


def _source_line(ctx: Context, rule: ServicePortRule, client_ip: str | None, *,
                 node_port: bool) -> str:
    """What source address the backend sees (KUBE-MARK-MASQ's cases)."""
    if node_port and not rule.external_local:
        return "source: masqueraded to the node's address (NodePort traffic)"
    if node_port:
        return "source: the client's own address (externalTrafficPolicy Local)"
    if client_ip is None:
        return "source: a pod's own address; anything outside the pod network is masqueraded"
    if any(b.ip == client_ip for b in rule.backends):
        return "source: masqueraded if the client reaches itself (hairpin)"
    if _in_pod_network(ctx, client_ip):
        return f"source: {client_ip} (pod to pod keeps its address)"
    return f"source: masqueraded to the node's address ({client_ip} is outside the pod network)"
