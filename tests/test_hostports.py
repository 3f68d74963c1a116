"""The host-port forwarder against real sockets on 127.0.0.1: a small TCP echo server
plays the node's node port, HostPorts listens in front of it."""

from __future__ import annotations

import errno
import os
import socket
import socketserver
import threading

import pytest

from kbox.runtime.hostports import HostPorts, bind_error_text


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 128      # 40 connections arrive at once


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.shutdown(socket.SHUT_WR)     # answer a half-close with one


@pytest.fixture
def echo():
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def ports():
    hp = HostPorts(node_address=lambda name: "127.0.0.1", connect_timeout=1.0)
    yield hp
    hp.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def roundtrip(port: int, payload: bytes) -> bytes:
    """Send everything, half-close, read until the far end closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        sender.join()
        return bytes(got)


def refused_after_accept(port: int) -> bool:
    """The forwarder took the connection but no node did: it closes with no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(100) == b""


def test_bytes_pass_both_ways_through_the_forwarder(ports, echo):
    ports.set_nodes(["node-1"])
    assert ports.targets == ["127.0.0.1"]
    host_port = free_port()
    ports.listen(host_port, echo)
    assert ports.listening() == {host_port: echo}
    assert roundtrip(host_port, b"hello") == b"hello"
    big = os.urandom(3 * 1024 * 1024)
    assert roundtrip(host_port, big) == big


def test_many_connections_share_one_thread(ports, echo):
    ports.set_nodes(["node-1"])
    host_port = free_port()
    ports.listen(host_port, echo)
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", host_port), timeout=10) for _ in range(40)]
    try:
        for i, s in enumerate(socks):
            s.sendall(f"conn {i}".encode())
        for i, s in enumerate(socks):
            assert s.recv(100) == f"conn {i}".encode()
        # the forwarder's side of 40 open connections is one event loop thread
        assert threading.active_count() - before <= 40 + 1   # the echo server's own threads
        assert sum(t.name == "host-ports" for t in threading.enumerate()) == 1
    finally:
        for s in socks:
            s.close()


def test_a_refused_connect_fails_over_to_the_next_node(echo):
    dead = free_port()          # nothing listens here: the connect is refused
    hp = HostPorts(routes=lambda node_port: [("127.0.0.1", dead), ("127.0.0.1", node_port)])
    try:
        host_port = free_port()
        hp.listen(host_port, echo)
        for i in range(4):
            assert roundtrip(host_port, f"try {i}".encode()) == f"try {i}".encode()
        # round robin: every other connection started at the dead node and moved on
        assert hp.failovers == 2
    finally:
        hp.stop()


def test_no_ready_node_closes_the_connection_and_nodes_come_back(ports, echo):
    host_port = free_port()
    ports.listen(host_port, echo)
    ports.set_nodes([])
    assert refused_after_accept(host_port)
    ports.set_nodes(["node-2"])
    assert roundtrip(host_port, b"back") == b"back"


def test_a_taken_port_is_refused_with_the_bind_error(ports, echo):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    try:
        with pytest.raises(OSError) as e:
            ports.listen(taken, echo)
        assert e.value.errno == errno.EADDRINUSE
        assert bind_error_text("127.0.0.1", taken, e.value) == \
            f"listen tcp 127.0.0.1:{taken}: bind: address already in use"
        assert ports.listening() == {}
    finally:
        holder.close()


def test_retarget_close_and_stop(echo):
    hp = HostPorts(node_address=lambda name: "127.0.0.1")
    hp.set_nodes(["n"])
    host_port = free_port()
    hp.listen(host_port, free_port())          # a node port nothing answers on
    assert refused_after_accept(host_port)
    hp.listen(host_port, echo)                 # same host port, new node port: retargeted
    assert roundtrip(host_port, b"x") == b"x"
    open_conn = socket.create_connection(("127.0.0.1", host_port), timeout=10)
    open_conn.sendall(b"ping")
    assert open_conn.recv(10) == b"ping"
    hp.close(host_port)
    assert open_conn.recv(10) == b""           # its connections end with it
    open_conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", host_port), timeout=5)
    other = free_port()
    hp.listen(other, echo)
    hp.stop()                                  # every listener closes, the thread ends
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", other), timeout=5)
    assert not any(t.name == "host-ports" for t in threading.enumerate())
