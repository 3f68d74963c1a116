"""`kbox curl URL`: an HTTP GET from the kbox CLI's own process to this machine.

It is how a demo shows a Service "from the host": a LoadBalancer Service answers on
127.0.0.1:<service port> and every node port on 127.0.0.1:<nodePort> (kbox's host
listeners, kbox.runtime.hostports). Each request is a new connection, so with
`--requests N` every request is balanced anew and the table of distinct answers
shows the spread over the Service's pods (each sample pod serves its own name).

Network safety: kbox sends traffic only to this machine, so any host other than
127.0.0.1, localhost or ::1 is refused before a socket is opened; `localhost` is
taken as 127.0.0.1 (not looked up), and no proxy from the environment is used.

    kbox curl http://127.0.0.1:8080/ [--requests 30] [--timeout 5s]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import urllib.parse
from collections import Counter

from kbox.cli.registry import CliError, Context, arguments, command
from kbox.cli.tabwriter import render

# the only hosts kbox talks to, and the address each one means
LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
MAX_REQUESTS = 10000
ANSWER_WIDTH = 60           # the table shows an answer's first line, cut to this


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="http://127.0.0.1:PORT/PATH (or localhost, [::1])")
    p.add_argument("--requests", type=int, default=1,
                   help="requests to send, each on a new connection; above 1, print a table "
                        "of the distinct answers and their counts (default 1)")
    p.add_argument("--timeout", default="10s",
                   help="give up on a request after this long (default 10s)")


def parse_url(url: str) -> tuple[str, int, str]:
    """URL -> (address, port, path), refusing what is not plain HTTP to this machine."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text         # as curl, a bare host:port means http
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise CliError(f'bad URL "{url}": {e}')
    if parts.scheme.lower() != "http":
        raise CliError(f'bad URL "{url}": kbox curl speaks plain http:// only')
    host = (parts.hostname or "").lower()
    if not host:
        raise CliError(f'bad URL "{url}": no host')
    address = LOOPBACK_HOSTS.get(host)
    if address is None:
        raise CliError(f'refusing to contact "{host}": kbox curl only talks to this machine '
                       f"(127.0.0.1, localhost or ::1), where LoadBalancer and NodePort "
                       f"Services answer")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return address, port or 80, path


def _get(address: str, port: int, path: str, host_header: str, timeout: float) -> tuple[int, str, str]:
    """One GET on a new connection: (status, reason, body)."""
    # http.client connects straight to the address: no proxy settings are consulted
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host_header, "Connection": "close",
                                           "User-Agent": "kbox-curl"})
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _failure(e: OSError, address: str, port: int, timeout_text: str) -> str:
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if isinstance(e, ConnectionRefusedError):
        return f"connection refused: nothing listens on {where}"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"no answer from {where} within {timeout_text}"
    if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f"{where} closed the connection without an answer"
    if isinstance(e, http.client.HTTPException):
        return f"{where} did not answer with HTTP: {e.__class__.__name__}"
    return f"{where}: {e.strerror or e}"


def _answer_text(status: int, reason: str, body: str) -> str:
    first = body.strip().splitlines()[0] if body.strip() else "(empty body)"
    if len(first) > ANSWER_WIDTH:
        first = first[:ANSWER_WIDTH - 3] + "..."
    return first if status == 200 else f"{status} {reason}: {first}"


@command("curl", "Send HTTP GET requests to 127.0.0.1 (LoadBalancer and NodePort Services) and "
                 "count the answers", needs_cluster=False,
         usage="kbox curl http://127.0.0.1:8080/ --requests 30",
         group="Troubleshooting and Debugging")
@arguments(_args)
def cmd_curl(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.cli.commands import parse_duration
    if not 1 <= args.requests <= MAX_REQUESTS:
        raise CliError(f"--requests: must be between 1 and {MAX_REQUESTS}")
    timeout = parse_duration(args.timeout, 10.0)
    if timeout <= 0:
        raise CliError("--timeout: must be > 0")
    address, port, path = parse_url(args.url)
    host_header = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

    if args.requests == 1:
        try:
            status, reason, body = _get(address, port, path, host_header, timeout)
        except (OSError, http.client.HTTPException) as e:
            raise CliError(f"cannot GET {args.url}: {_failure(e, address, port, args.timeout)}")
        ctx.out.write(body)  # type: ignore[union-attr]
        ctx.out.flush()  # type: ignore[union-attr]
        if status >= 400:
            raise CliError(f"GET {args.url}: the server answered {status} {reason}")
        return 0

    answers: Counter[str] = Counter()
    failed = 0
    for _ in range(args.requests):
        try:
            status, reason, body = _get(address, port, path, host_header, timeout)
            answers[_answer_text(status, reason, body)] += 1
            failed += status >= 400
        except (OSError, http.client.HTTPException) as e:
            answers["error: " + _failure(e, address, port, args.timeout)] += 1
            failed += 1
    rows = ["ANSWER\tREQUESTS\tSHARE"]
    for text, n in sorted(answers.items(), key=lambda kv: (-kv[1], kv[0])):
        rows.append(f"{text}\t{n}\t{100 * n / args.requests:.0f}%")
    ctx.write(render("\n".join(rows)).rstrip())
    if failed:
        raise CliError(f"{failed} of {args.requests} requests to {args.url} failed")
    return 0
