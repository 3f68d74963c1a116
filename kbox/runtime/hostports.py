"""Host listeners: 127.0.0.1:PORT in front of the docker nodes' node ports.

How a process on the host reaches a Service, as Docker Desktop's and k3s
servicelb's port publishing do: kbox listens on 127.0.0.1:PORT (a
LoadBalancer Service's own port, or a NodePort Service's node port) and
forwards each connection to NODE_IP:nodePort of a Ready node, where the
node's kube-proxy rules DNAT it to a ready backend. The host reaches the node
containers' addresses directly on the cluster's Docker network
(`kbox.runtime.dind`), so nothing has to be published when a node is
created, and ports come and go while nodes run.

One asyncio event loop in one thread carries every listener and connection
(no thread per connection). Each connection tries the Ready nodes round
robin and fails over to the next one when a connect is refused or times
out. `listen()` binds synchronously, so the caller (the LoadBalancer
controller) learns at once when a port is taken and can say so in the
Service's status. `stop()` closes every listener and connection.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
CONNECT_TIMEOUT = 1.5        # seconds: a node on the local bridge answers at once or not at all
CHUNK = 65536


def bind_error_text(host: str, port: int, e: OSError) -> str:
    """A bind failure in Go's words (what kubectl / Docker users see):
    `listen tcp 127.0.0.1:80: bind: address already in use`."""
    why = os.strerror(e.errno) if e.errno else str(e)
    return f"listen tcp {host}:{port}: bind: {why[:1].lower()}{why[1:]}"


def port_in_use(e: OSError) -> bool:
    return e.errno == errno.EADDRINUSE


@dataclass
class _Listener:
    host_port: int
    node_port: int
    server: asyncio.Server | None = None
    connections: set[asyncio.Task] = field(default_factory=set)


class HostPorts:
    """TCP listeners on `host` forwarding to the nodes' node ports.

    `node_address(name)` turns a node name into an address the host can reach (for
    docker nodes, `NodeMachines.node_ip`); `set_nodes(names)` says which nodes are Ready.
    `routes(node_port)` lists where a connection may go, in order; by default every
    Ready node's address at node_port (a connection starts at the next one in turn).
    """

    listens = True       # real sockets (the sim's check only reserves nothing)

    def __init__(self, node_address: Callable[[str], str | None] | None = None, *,
                 host: str = LOCALHOST, connect_timeout: float = CONNECT_TIMEOUT,
                 routes: Callable[[int], list[tuple[str, int]]] | None = None) -> None:
        self.node_address = node_address
        self.routes = routes or self._node_routes
        self.host = host
        self.connect_timeout = connect_timeout
        self._targets: list[str] = []
        self._round_robin = itertools.count()
        self._listeners: dict[int, _Listener] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.connections_total = 0
        self.failovers = 0

    # ---- targets -----------------------------------------------------------------
    def set_nodes(self, names: list[str]) -> None:
        """The Ready nodes, by name: resolved to addresses now (a restarted node container
        may come back with a new address, and comes back through NotReady -> Ready)."""
        addresses = []
        for name in names:
            try:
                addr = self.node_address(name) if self.node_address else name
            except Exception as e:   # the engine is busy or the node is going: skip it
                log.debug("no address for node %s: %s", name, e)
                addr = None
            if addr:
                addresses.append(addr)
        self.set_targets(addresses)

    def set_targets(self, addresses: list[str]) -> None:
        self._targets = list(addresses)

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    def _node_routes(self, node_port: int) -> list[tuple[str, int]]:
        return [(addr, node_port) for addr in self._targets]

    # ---- listeners (called from other threads) -------------------------------------
    def listen(self, host_port: int, node_port: int) -> None:
        """Listen on host:host_port forwarding to the nodes' node_port (already listening:
        just retarget). Raises OSError when the port cannot be had."""
        with self._lock:
            cur = self._listeners.get(host_port)
            if cur is not None:
                cur.node_port = node_port
                return
            lst = _Listener(host_port, node_port)
            self._run(self._start(lst))
            self._listeners[host_port] = lst
        log.info("forwarding %s:%d -> nodes:%d", self.host, host_port, node_port)

    def close(self, host_port: int) -> None:
        """Stop listening on host_port and end its connections."""
        with self._lock:
            lst = self._listeners.pop(host_port, None)
            if lst is not None and self._loop is not None:
                self._run(self._close(lst))

    def listening(self) -> dict[int, int]:
        """host port -> node port, for every open listener."""
        with self._lock:
            return {p: lst.node_port for p, lst in self._listeners.items()}

    def stop(self) -> None:
        """Close every listener and connection, then the loop's thread."""
        with self._lock:
            listeners, self._listeners = list(self._listeners.values()), {}
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        async def close_all() -> None:
            await asyncio.gather(*(self._close(lst) for lst in listeners))
        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(10)
        except Exception:
            log.exception("closing host listeners failed")
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    # ---- the event loop's side -----------------------------------------------------
    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                            name="host-ports")
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self, lst: _Listener) -> None:
        lst.server = await asyncio.start_server(
            lambda r, w: self._accepted(lst, r, w), self.host, lst.host_port)

    async def _close(self, lst: _Listener) -> None:
        if lst.server is not None:
            lst.server.close()
        for task in list(lst.connections):
            task.cancel()
        if lst.connections:
            await asyncio.gather(*lst.connections, return_exceptions=True)
        if lst.server is not None:
            await lst.server.wait_closed()

    async def _accepted(self, lst: _Listener, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        lst.connections.add(task)
        try:
            await self._forward(lst, reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            lst.connections.discard(task)
            writer.close()

    async def _connect(self, node_port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to node_port on one of the Ready nodes: round robin, and on to the
        next node when one refuses or does not answer."""
        routes = self.routes(node_port)
        if not routes:
            return None
        start = next(self._round_robin)
        for i in range(len(routes)):
            addr, port = routes[(start + i) % len(routes)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(addr, port),
                                              self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as e:
                self.failovers += 1
                log.debug("%s:%d did not take the connection: %s", addr, port, e)
        return None

    async def _forward(self, lst: _Listener, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        upstream = await self._connect(lst.node_port)
        if upstream is None:
            log.info("%s:%d: no Ready node took the connection to node port %d",
                     self.host, lst.host_port, lst.node_port)
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until src ends, then half-close dst (HTTP/1.0 clients shut their side down
    and still read the answer)."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        dst.close()


__all__ = ["HostPorts", "bind_error_text", "port_in_use", "LOCALHOST"]
