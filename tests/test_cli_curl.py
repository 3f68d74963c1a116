"""`kbox curl URL [--requests N] [--timeout D]` (kbox.cli.curl): real HTTP GETs to a
server on 127.0.0.1 started here, the table of distinct answers, and the refusals: any
host but 127.0.0.1 / localhost / ::1 (before a socket is opened), bad URLs, nothing
listening, no answer in time, HTTP errors."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kbox.cli.registry import Context, execute


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _serve(bodies: list[str], family: int = socket.AF_INET, host: str = "127.0.0.1"):
    """A server answering each request with the next of `bodies`, round robin (as three
    replicas behind a Service would, only in order); '/missing' answers 404."""
    turn = itertools.cycle(bodies)
    lock = threading.Lock()
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            if self.path == "/missing":
                body, status = b"no such page\n", 404
            else:
                with lock:
                    body, status = next(turn).encode(), 200
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    cls = type("S", (_Server,), {"address_family": family})
    server = cls((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def server():
    s, seen = _serve(["web-a\n", "web-b\n", "web-c\n"])
    s.seen = seen
    yield s
    s.shutdown()
    s.server_close()


def curl(*argv: str) -> tuple[int, str, str]:
    ctx = Context(client=None, out=io.StringIO(), err=io.StringIO())
    rc = execute(ctx, ["curl", *argv])
    return rc, ctx.out.getvalue(), ctx.err.getvalue()


def test_one_request_prints_the_body(server):
    port = server.server_address[1]
    rc, out, err = curl(f"http://127.0.0.1:{port}/")
    assert (rc, out, err) == (0, "web-a\n", "")
    assert server.seen[0]["path"] == "/" and server.seen[0]["host"] == f"127.0.0.1:{port}"
    # a bare host:port means http, and localhost is 127.0.0.1
    assert curl(f"127.0.0.1:{port}/x?y=1")[:2] == (0, "web-b\n")
    assert server.seen[1]["path"] == "/x?y=1"
    assert curl(f"http://localhost:{port}")[:2] == (0, "web-c\n")


def test_requests_print_a_table_of_the_distinct_answers(server):
    port = server.server_address[1]
    rc, out, err = curl(f"http://127.0.0.1:{port}/", "--requests", "7")
    assert rc == 0, err
    assert out.splitlines() == [
        "ANSWER  REQUESTS  SHARE",
        "web-a   3         43%",
        "web-b   2         29%",
        "web-c   2         29%",
    ]
    # every request is a connection of its own (so a Service balances each anew)
    assert len(server.seen) == 7 and all(h["connection"] == "close" for h in server.seen)


def test_http_errors_are_shown_and_fail(server):
    port = server.server_address[1]
    rc, out, err = curl(f"http://127.0.0.1:{port}/missing")
    assert rc == 1 and out == "no such page\n"
    assert err == f"error: GET http://127.0.0.1:{port}/missing: the server answered 404 Not Found\n"
    rc, out, err = curl(f"http://127.0.0.1:{port}/missing", "--requests", "2")
    assert rc == 1 and "404 Not Found: no such page  2         100%" in out
    assert "2 of 2 requests" in err


@pytest.mark.parametrize("url", ["http://10.96.0.10/", "http://example.com:8080/",
                                 "http://127.0.0.2:8080/", "http://[fe80::1]/",
                                 "http://0.0.0.0:8080/"])
def test_other_hosts_are_refused_before_any_connection(url):
    started = time.monotonic()
    rc, out, err = curl(url, "--timeout", "30s")
    assert rc == 1 and out == ""
    assert "kbox curl only talks to this machine (127.0.0.1, localhost or ::1)" in err
    assert err.startswith('error: refusing to contact "')
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("url, says", [
    ("https://127.0.0.1:8443/", "plain http:// only"),
    ("ftp://127.0.0.1/", "plain http:// only"),
    ("http://127.0.0.1:99999/", "Port out of range"),
    ("http://127.0.0.1:port/", "bad URL"),
    ("http:///path", "no host"),
])
def test_bad_urls(url, says):
    rc, out, err = curl(url)
    assert rc == 1 and out == "" and err.startswith(f'error: bad URL "{url}"') and says in err


def test_bad_flags():
    assert "--requests: must be between 1 and 10000" in curl("http://127.0.0.1:1/", "--requests", "0")[2]
    assert 'invalid duration "soon"' in curl("http://127.0.0.1:1/", "--timeout", "soon")[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening():
    port = _free_port()
    rc, out, err = curl(f"http://127.0.0.1:{port}/")
    assert rc == 1 and err == (f"error: cannot GET http://127.0.0.1:{port}/: connection refused: "
                               f"nothing listens on 127.0.0.1:{port}\n")
    rc, out, err = curl(f"http://127.0.0.1:{port}/", "--requests", "3")
    assert rc == 1
    assert f"error: connection refused: nothing listens on 127.0.0.1:{port}  3" in out
    assert "3 of 3 requests" in err


def test_no_answer_in_time():
    # a listener that never accepts: the connection completes in the backlog, no answer comes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        rc, out, err = curl(f"http://127.0.0.1:{port}/", "--timeout", "300ms")
        assert time.monotonic() - started < 3
    assert rc == 1 and err.endswith(f"no answer from 127.0.0.1:{port} within 300ms\n")


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        s, _ = _serve(["six\n"], socket.AF_INET6, "::1")
    except OSError as e:
        pytest.skip(f"::1 is not usable here: {e}")
    try:
        assert curl(f"http://[::1]:{s.server_address[1]}/")[:2] == (0, "six\n")
    finally:
        s.shutdown()
        s.server_close()
