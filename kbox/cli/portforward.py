"""`kbox port-forward TYPE/NAME [LOCAL_PORT:]REMOTE_PORT ...`, in kubectl's syntax and words.

kubectl port-forward picks one pod (pod/NAME itself; for svc, deploy, rs, the
most active pod its selector matches), translates a Service's ports to the
pod's target ports (a named target port through the pod's container ports),
listens on 127.0.0.1 (`--address`), prints "Forwarding from 127.0.0.1:8080 ->
80", and for each accepted connection "Handling connection for 8080".

Each connection goes through the API's pods/portforward subresource. Over
HTTP that is kubelet's WebSocket form (`v4.channel.k8s.io`, `?ports=N`, one
WebSocket per connection, data on channel 0 and an error text on channel 1,
each opened by the port number), the form the API serves
(kbox.api.streams); an in-process client reaches the same ApiServer method
directly. It runs until interrupted (Ctrl-C, or ctx.stop in a script or the
dashboard). Each connection is two short-lived threads: a CLI forwards a
handful of connections, and blocking sockets keep it plain.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import threading
from typing import Any

from kbox.api.errors import ApiError
from kbox.cli.registry import CliError, Context, arguments, command

log = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
CHUNK = 65536


# ---- ports and addresses, parsed as kubectl parses them ---------------------------------

def _uint16(text: str, what: str) -> int:
    if not text.isdigit():
        raise CliError(f"error parsing {what} port '{text}': strconv.ParseUint: parsing "
                       f"\"{text}\": invalid syntax")
    n = int(text)
    if n > 65535:
        raise CliError(f"error parsing {what} port '{text}': strconv.ParseUint: parsing "
                       f"\"{text}\": value out of range")
    return n


def split_port(spec: str) -> tuple[str, str]:
    """`8080:80` -> ("8080", "80"); `80` -> ("80", "80"); `:80` -> ("0", "80")."""
    parts = spec.split(":")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0] or "0", parts[1]
    raise CliError(f"invalid port format '{spec}'")


def parse_ports(specs: list[str]) -> list[tuple[int, int]]:
    """(local, remote) pairs; local 0 picks a free port. Errors as kubectl's."""
    out = []
    for spec in specs:
        local, remote = split_port(spec)
        lp = _uint16(local, "local")
        rp = _uint16(remote, "remote")
        if rp == 0:
            raise CliError("remote port must be > 0")
        out.append((lp, rp))
    return out


def parse_addresses(text: str) -> list[str]:
    out = []
    for a in text.split(","):
        a = a.strip()
        if a == "localhost":
            a = "127.0.0.1"          # kubectl adds [::1] too; kbox keeps to IPv4 loopback
        try:
            ipaddress.IPv4Address(a)
        except ValueError:
            raise CliError(f"{a} is not a valid IP") from None
        if a not in out:
            out.append(a)
    return out


# ---- which pod, which ports --------------------------------------------------------------

def _activity(pod: dict[str, Any]) -> tuple[Any, ...]:
    """kubectl's ActivePods order, most active first: running, ready, scheduled, then the
    longest ready, then the fewest restarts."""
    st = pod.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses") or [])
    return (st.get("phase") != "Running", ready.get("status") != "True",
            not (pod.get("spec") or {}).get("nodeName"), ready.get("lastTransitionTime") or "~",
            restarts, pod["metadata"]["name"])


def _selector(obj: dict[str, Any], ref: str) -> str:
    from kbox.api.selectors import selector_to_string
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if obj.get("kind") == "Service":
        if not sel:
            raise CliError(f"cannot attach to *v1.Service: invalid service "
                           f"'{obj['metadata']['name']}': Service is defined without a selector")
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        raise CliError(f"cannot attach to {ref}: it has no selector")
    return selector_to_string(sel)


def pick_pod(ctx: Context, target: str, ns: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pod to forward to and, for svc/NAME, the Service."""
    from kbox.cli.commands import _one_target
    if "/" not in target:
        return ctx.client.get("pods", target, ns), None
    info, name = _one_target([target])
    if info.plural == "pods":
        return ctx.client.get("pods", name, ns), None
    if info.plural not in ("services", "deployments", "replicasets", "statefulsets",
                           "daemonsets", "jobs", "replicationcontrollers"):
        raise CliError(f"cannot attach to {info.kind}: selector for {info.kind} not implemented")
    obj = ctx.client.get(info.plural, name, ns)
    obj.setdefault("kind", info.kind)
    pods = [p for p in ctx.client.list("pods", ns, label_selector=_selector(obj, target))["items"]
            if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise CliError(f"timed out waiting for the condition: no pods found for {target}")
    pods.sort(key=_activity)
    return pods[0], (obj if info.plural == "services" else None)


def _container_port(pod: dict[str, Any], name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name:
                return int(p["containerPort"])
    return None


def translate_service_ports(svc: dict[str, Any], pod: dict[str, Any],
                            specs: list[str]) -> list[str]:
    """kubectl's translateServicePortToTargetPort: each REMOTE is a service port (number
    or name) and becomes the pod's target port; with no LOCAL the service port is it."""
    sname = svc["metadata"]["name"]
    ports = (svc.get("spec") or {}).get("ports") or []
    out = []
    for spec in specs:
        local, remote = split_port(spec)
        if remote.isdigit():
            number = int(remote)
        else:
            sp = next((p for p in ports if p.get("name") == remote), None)
            if sp is None:
                raise CliError(f"Service '{sname}' does not have a named port '{remote}'")
            number = int(sp["port"])
            if local == remote:
                local = str(number)
        sp = next((p for p in ports if int(p.get("port") or 0) == number), None)
        if sp is None:
            raise CliError(f"Service {sname} does not have a service port {number}")
        target = sp.get("targetPort")
        if target in (None, "", 0):
            container = number
        elif isinstance(target, int) or str(target).isdigit():
            container = int(target)
        else:
            found = _container_port(pod, str(target))
            if found is None:
                raise CliError(f"Pod {pod['metadata']['name']} does not have a named port "
                               f"'{target}'")
            container = found
        out.append(f"{local}:{container}" if local != str(container) else str(container))
    return out


def translate_pod_ports(pod: dict[str, Any], specs: list[str]) -> list[str]:
    """A named REMOTE is one of the pod's container ports (convertPodNamedPortToNumber)."""
    out = []
    for spec in specs:
        local, remote = split_port(spec)
        if remote.isdigit() or not remote:
            out.append(spec)
            continue
        number = _container_port(pod, remote)
        if number is None:
            raise CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{remote}'")
        out.append(f"{number}" if local == remote else f"{local}:{number}")
    return out


# ---- one forwarded connection ------------------------------------------------------------

class _Tunnel:
    """One connection to the pod's port through pods/portforward: send, recv (None at the
    end), error (the server's text, if any), close."""

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def recv(self) -> bytes | None:
        raise NotImplementedError

    error: str | None = None

    def close(self) -> None:
        raise NotImplementedError


class _WebSocketTunnel(_Tunnel):
    """kubelet's WebSocket port-forward, one port: data on channel 0, errors on channel 1;
    the first frame on each channel is the port number."""

    def __init__(self, client: Any, namespace: str, pod: str, port: int) -> None:
        self.ws = client.open_websocket(f"/api/v1/namespaces/{namespace}/pods/{pod}/portforward",
                                        {"ports": str(port)}, [PORTFORWARD_PROTOCOL])
        self.error = None
        self._opened = {0: False, 1: False}

    def send(self, data: bytes) -> None:
        self.ws.send(b"\x00" + data)

    def recv(self) -> bytes | None:
        from websockets.exceptions import ConnectionClosed
        while True:
            try:
                msg = self.ws.recv()
            except ConnectionClosed:
                return None
            if isinstance(msg, str) or not msg:
                continue
            channel, payload = msg[0], msg[1:]
            if channel in self._opened and not self._opened[channel]:
                self._opened[channel] = True      # the port number that opens the channel
                continue
            if channel == 0:
                if payload:
                    return payload
            elif channel == 1 and payload:
                self.error = (self.error or "") + payload.decode(errors="replace")

    def close(self) -> None:
        self.ws.close()


class _SessionTunnel(_Tunnel):
    """In-process: the ApiServer's port_forward session itself."""

    def __init__(self, api: Any, namespace: str, pod: str, port: int) -> None:
        self.session = api.port_forward(pod, namespace, port)
        self.error = None

    def send(self, data: bytes) -> None:
        self.session.write_stdin(data)

    def recv(self) -> bytes | None:
        from kbox.runtime import STDOUT
        while True:
            item = self.session.read()
            if item is None:
                code = self.session.wait()
                if code and not self.error:
                    self.error = f"exit code {code}"
                return None
            if item[0] == STDOUT:
                return item[1]
            self.error = (self.error or "") + item[1].decode(errors="replace")

    def close(self) -> None:
        self.session.close()


def open_tunnel(client: Any, namespace: str, pod: str, port: int) -> _Tunnel:
    from kbox.api.client import InProcessClient
    from kbox.runtime import RuntimeError_
    if isinstance(client, InProcessClient):
        try:
            return _SessionTunnel(client.api, namespace, pod, port)
        except RuntimeError_ as e:
            raise ApiError(400, "BadRequest", str(e)) from None
    return _WebSocketTunnel(client, namespace, pod, port)


# ---- the forwarder ----------------------------------------------------------------------

class PortForwarder:
    """Local listeners, each connection tunnelled to the pod."""

    def __init__(self, ctx: Context, namespace: str, pod: str, ports: list[tuple[int, int]],
                 addresses: list[str]) -> None:
        self.ctx = ctx
        self.namespace = namespace
        self.pod = pod
        self.ports = ports
        self.addresses = addresses
        self.listeners: list[tuple[socket.socket, int, int]] = []    # (socket, local, remote)
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()

    def say(self, text: str, err: bool = False) -> None:
        with self._out_lock:
            if err:
                self.ctx.warn(text)
            else:
                self.ctx.write(text)

    def listen(self) -> None:
        """Open every listener (kubectl: a port none of whose addresses could be had is
        reported; none at all is an error)."""
        failed = []
        for local, remote in self.ports:
            errors_, port = [], local
            for addr in self.addresses:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind((addr, port))
                    s.listen(64)
                except OSError as e:
                    s.close()
                    from kbox.runtime.hostports import bind_error_text
                    errors_.append(f"unable to create listener: Error "
                                   f"{bind_error_text(addr, port, e).replace('listen tcp', 'listen tcp4', 1)}")
                    continue
                port = s.getsockname()[1]        # local 0: the port the system picked
                s.settimeout(0.2)                # accept wakes to notice a stop
                self.listeners.append((s, port, remote))
                self.say(f"Forwarding from {addr}:{port} -> {remote}")
            if errors_:
                self.say(f"Unable to listen on port {port}: Listeners failed to create with the "
                         f"following errors: [{' '.join(errors_)}]", err=True)
            if len(errors_) == len(self.addresses):
                failed.append(f"{{{local} {remote}}}")
        if not self.listeners:
            raise CliError(f"unable to listen on any of the requested ports: [{' '.join(failed)}]")

    def run(self) -> None:
        threads = [threading.Thread(target=self._accept, args=lst, daemon=True,
                                    name=f"port-forward-{lst[1]}") for lst in self.listeners]
        for t in threads:
            t.start()
        try:
            while not self.ctx.stop.wait(0.2):
                pass
        finally:
            self.close()
            for t in threads:
                t.join(2)

    def close(self) -> None:
        for s, _, _ in self.listeners:
            s.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            _hang_up(c)

    def _accept(self, lsock: socket.socket, local: int, remote: int) -> None:
        while not self.ctx.stop.is_set():
            try:
                conn, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return                      # closed
            conn.settimeout(None)
            self.say(f"Handling connection for {local}")
            threading.Thread(target=self._handle, args=(conn, local, remote), daemon=True,
                             name=f"port-forward-conn-{local}").start()

    def _handle(self, conn: socket.socket, local: int, remote: int) -> None:
        with self._lock:
            self._conns.add(conn)
        tunnel = None
        try:
            try:
                tunnel = open_tunnel(self.ctx.client, self.namespace, self.pod, remote)
            except ApiError as e:
                self.say(f"an error occurred forwarding {local} -> {remote}: {e.message}", err=True)
                return
            except Exception as e:      # the API went away, TLS trouble...: this connection fails
                self.say(f"an error occurred forwarding {local} -> {remote}: {e}", err=True)
                return
            t = threading.Thread(target=self._upstream, args=(conn, tunnel), daemon=True)
            t.start()
            while (data := tunnel.recv()) is not None:
                conn.sendall(data)
            if tunnel.error:
                self.say(f"an error occurred forwarding {local} -> {remote}: "
                         f"{tunnel.error.strip()}", err=True)
        except OSError:
            pass                            # the local side went away
        finally:
            if tunnel is not None:
                tunnel.close()
            with self._lock:
                self._conns.discard(conn)
            _hang_up(conn)

    @staticmethod
    def _upstream(conn: socket.socket, tunnel: _Tunnel) -> None:
        try:
            while data := conn.recv(CHUNK):
                tunnel.send(data)
        except Exception:   # either side closed: the other direction ends the connection
            pass


def _hang_up(conn: socket.socket) -> None:
    """Close a connection another thread may be blocked reading: shutdown first (a bare
    close leaves the socket open until that read returns, and the peer never hears)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


# ---- the command ------------------------------------------------------------------------

def _pf_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="TYPE/NAME (or a pod's name)")
    p.add_argument("ports", nargs="*", help="[LOCAL_PORT:]REMOTE_PORT")
    p.add_argument("-n", "--namespace")
    p.add_argument("--address", default="localhost",
                   help="addresses to listen on (comma separated): localhost or IPs")
    p.add_argument("--pod-running-timeout", default="1m", help="accepted for kubectl's sake")


@command("port-forward", "Forward one or more local ports to a pod",
         usage="port-forward svc/web 8080:80", group="Troubleshooting and Debugging")
@arguments(_pf_args)
def cmd_port_forward(ctx: Context, args: argparse.Namespace) -> int:
    if not args.target or not args.ports:
        raise CliError("TYPE/NAME and list of ports are required for port-forward")
    ns = ctx.ns(args)
    addresses = parse_addresses(args.address)
    for spec in args.ports:             # the shape first (named remote ports are resolved below)
        _uint16(split_port(spec)[0], "local")
    try:
        pod, svc = pick_pod(ctx, args.target, ns)
        specs = translate_service_ports(svc, pod, args.ports) if svc is not None \
            else translate_pod_ports(pod, args.ports)
    except ApiError as e:
        from kbox.cli.commands import api_error
        raise api_error(e)
    ports = parse_ports(specs)
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise CliError(f"unable to forward port because pod is not running. Current status={phase}")
    fwd = PortForwarder(ctx, ns, pod["metadata"]["name"], ports, addresses)
    fwd.listen()
    try:
        fwd.run()
    except KeyboardInterrupt:
        fwd.close()
    return 0


__all__ = ["cmd_port_forward", "parse_ports", "parse_addresses", "translate_service_ports",
           "translate_pod_ports", "PortForwarder", "open_tunnel"]
