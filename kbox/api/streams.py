"""pods/exec and pods/attach over WebSocket, the streaming protocol kubectl uses.

kubectl 1.30+ (and 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true) runs
`kubectl exec` as `GET /api/v1/namespaces/NS/pods/NAME/exec?command=..&stdin=..`
upgraded to a WebSocket with the subprotocol `v5.channel.k8s.io`; the official
Python client asks for `v4.channel.k8s.io`. Both are served here. Every
binary message starts with a channel byte:

    0 stdin (client -> server)      1 stdout, 2 stderr (server -> client)
    3 error: one JSON metav1 Status when the command ends (Success, or Failure
      with reason NonZeroExitCode and details.causes [{reason: ExitCode,
      message: "N"}], or InternalError when the process could not start)
    4 resize: {"Width": W, "Height": H} (tty sessions)
    255 close (v5 only): [255, 0] says the client closed its stdin

kubectl prints stdout/stderr as they come and exits with the code from the
Status. The WebSocket itself (handshake, frames, masking, pings) is the
`websockets` library's work through uvicorn: kbox only adds the channel byte.

A request is authenticated and authorized before the upgrade, with the same
hooks as every HTTP request (the `authenticator` / `authorizer` of
`HttpServer`), and the pod, the container and its phase are checked before
the upgrade too, as kube-apiserver does: a refused upgrade is answered with a
plain HTTP Status response (WebSocket denial response), so kubectl shows the
same error it shows against a real cluster.

SPDY/3.1 is not implemented. kubectl 1.27/1.28 (and later ones with
KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, or after a refused WebSocket upgrade)
POST with `Upgrade: SPDY/3.1`; once the pod and container are checked,
`refuse_http` answers as kube-apiserver answers an upgrade whose protocols it
cannot negotiate (403, "unable to upgrade: unable to negotiate protocol ..."),
naming what kbox serves instead, so kubectl prints a clear error.
`kubectl port-forward` is refused the same way: kubectl tunnels SPDY for it
even over WebSocket (`SPDY/3.1+portforward.k8s.io`, a subprotocol the
`websockets` handshake already rejects).

pods/portforward is served in kubelet's WebSocket form (`v4.channel.k8s.io`,
`?ports=8080,9090`), which the official Python client's `portforward()`
speaks: port i's bytes travel on channel 2i both ways and its error text on
2i+1, each channel opening with its port number (2 bytes, little endian).
Each port is one connection the node opens to the pod (docker nodes: busybox
`nc` in the pod's sandbox); sim nodes have no network and refuse with 400.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from kbox.api import errors
from kbox.api.errors import ApiError
from kbox.runtime import ExecSession, ExecStartError, RuntimeError_

if TYPE_CHECKING:
    from kbox.api.http import HttpServer

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")   # preferred first
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io",)                       # kubelet's WebSocket port-forward
STREAM_SUBRESOURCES = ("exec", "attach", "portforward")

SUCCESS = {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The error channel's Status for a finished command (kubelet's wording)."""
    if code == 0:
        return dict(SUCCESS)
    return {"metadata": {}, "status": "Failure",
            "message": (f"command terminated with non-zero exit code: error executing command "
                        f"[{' '.join(command)}], exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_status(message: str) -> dict[str, Any]:
    """The error channel's Status when the runtime could not run the command."""
    why = f"error executing command in container: {message}"
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {why}",
            "reason": "InternalError", "details": {"causes": [{"message": why}]}, "code": 500}


def _target(path: str) -> tuple[str, str, str] | None:
    """(namespace, pod, subresource) of /api/v1/namespaces/NS/pods/NAME/{exec,attach,portforward}."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods" \
            and parts[6] in STREAM_SUBRESOURCES:
        return parts[3], parts[5], parts[6]
    return None


def _bool(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1", "yes")


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def _command(q: Any) -> list[str]:
    command = q.getlist("command")
    if not command:
        raise errors.ApiError(422, "Invalid", 'PodExecOptions "" is invalid: command: Required value',
                              {"kind": "PodExecOptions",
                               "causes": [{"reason": "FieldValueRequired", "message": "Required value",
                                           "field": "command"}]})
    return list(command)


async def _open(server: "HttpServer", q: Any, namespace: str, name: str, sub: str) -> ExecSession:
    api = server.api
    container = q.get("container") or None
    stdin, tty = _bool(q.get("stdin")), _bool(q.get("tty"))
    if sub == "exec":
        command = _command(q)
        return await server._call(api.exec_stream, name, namespace, command,
                                  container=container, stdin=stdin, tty=tty)
    if sub == "attach":
        return await server._call(api.attach, name, namespace, container=container,
                                  stdin=stdin, tty=tty)
    raise AssertionError(sub)


def _ports(q: Any) -> list[int]:
    """`ports=8080&ports=9090` or `ports=8080,9090`, as kubelet reads them."""
    ports: list[int] = []
    for value in q.getlist("ports"):
        for text in value.split(","):
            text = text.strip()
            try:
                port = int(text)
            except ValueError:
                port = 0
            if not 0 < port < 65536:
                raise errors.bad_request(f'unable to parse "{text}" as a port: invalid port number')
            ports.append(port)
    if not ports:
        raise errors.bad_request('query parameter "ports" is required')
    return ports


async def _open_ports(server: "HttpServer", ports: list[int], namespace: str,
                      name: str) -> list[ExecSession]:
    sessions: list[ExecSession] = []
    try:
        for port in ports:
            sessions.append(await server._call(server.api.port_forward, name, namespace, port))
    except BaseException:
        for s in sessions:
            s.close()
        raise
    return sessions


async def serve_websocket(server: "HttpServer", ws: WebSocket) -> None:
    """A WebSocket request: check it as an HTTP request, then upgrade and stream."""
    path = ws.url.path
    sessions: list[ExecSession] = []
    ports: list[int] = []
    try:
        if server.authenticator is not None:
            user = server.authenticator(ws.headers, path)
            if server.authorizer is not None:
                server.authorizer(user, "GET", path, ws.query_params)
        target = _target(path)
        if target is None:
            raise _not_found()
        namespace, name, sub = target
        offered = list(ws.scope.get("subprotocols") or [])
        supported = PORTFORWARD_PROTOCOLS if sub == "portforward" else CHANNEL_PROTOCOLS
        proto = next((p for p in supported if p in offered), None)
        if proto is None:
            raise errors.bad_request(
                f"requested protocol(s) are not supported: [{' '.join(offered)}]; supports "
                f"[{' '.join(supported)}]")
        if sub == "portforward":
            ports = _ports(ws.query_params)
            sessions = await _open_ports(server, ports, namespace, name)
        else:
            sessions = [await _open(server, ws.query_params, namespace, name, sub)]
    except ApiError as e:
        await _deny(ws, e)
        return
    except Exception as e:  # a bug answers 500, as on the HTTP side
        log.exception("WebSocket %s failed", path)
        await _deny(ws, errors.internal(str(e)))
        return
    try:
        await ws.accept(subprotocol=proto)
        if sub == "portforward":
            await _pump_ports(server, ws, sessions, ports, name)
        else:
            await _pump(server, ws, sessions[0], proto, ws.query_params.getlist("command"))
    finally:
        for s in sessions:
            s.close()


async def _deny(ws: WebSocket, err: ApiError) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(Response(orjson.dumps(err.status), status_code=err.code,
                                               media_type="application/json"))
    else:  # pragma: no cover - every ASGI server kbox uses has the extension
        await ws.close(code=1008, reason=err.message[:120])


async def _frames(ws: WebSocket, *, text: bool):
    """The client's non-empty frames as bytes (text frames too, when `text`), until it
    disconnects."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        data = msg.get("bytes")
        if data is None and text and msg.get("text") is not None:
            data = msg["text"].encode()
        if data:
            yield data


async def _pump(server: "HttpServer", ws: WebSocket, session: ExecSession, proto: str,
                command: list[str]) -> None:
    """Client frames into the session, session output out as frames, then the Status."""
    limiter = server._limiter()

    async def inbound() -> None:
        async for data in _frames(ws, text=True):
            channel, payload = data[0], data[1:]
            if channel == STDIN and payload:
                await anyio.to_thread.run_sync(session.write_stdin, payload, limiter=limiter)
            elif channel == RESIZE and payload:
                try:
                    size = orjson.loads(payload)
                    w, h = int(size.get("Width") or 0), int(size.get("Height") or 0)
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    continue
                await anyio.to_thread.run_sync(session.resize, w, h, limiter=limiter)
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                await anyio.to_thread.run_sync(session.close_stdin, limiter=limiter)

    async def outbound() -> None:
        try:
            while True:
                item = await anyio.to_thread.run_sync(session.read, limiter=limiter,
                                                      abandon_on_cancel=True)
                if item is None:
                    break
                await ws.send_bytes(bytes([item[0]]) + item[1])
            code = await anyio.to_thread.run_sync(session.wait, limiter=limiter,
                                                  abandon_on_cancel=True)
            status = exit_status(code, command) if command else dict(SUCCESS)
        except ExecStartError as e:
            status = internal_status(str(e))
        except (RuntimeError_, ApiError) as e:
            status = internal_status(str(e))
        await ws.send_bytes(bytes([ERROR]) + orjson.dumps(status))
        await ws.close(1000)

    async with anyio.create_task_group() as tg:
        async def client_side() -> None:
            await inbound()
            tg.cancel_scope.cancel()          # the client went away: stop streaming
        tg.start_soon(client_side)
        await outbound()
        tg.cancel_scope.cancel()


async def _pump_ports(server: "HttpServer", ws: WebSocket, sessions: list[ExecSession],
                      ports: list[int], pod: str) -> None:
    """kubelet's WebSocket port-forward: port i's data on channel 2i (both ways) and its
    errors on 2i+1; each channel's first frame is the port number (2 bytes, little endian).
    The socket closes once every port's connection has ended."""
    limiter = server._limiter()
    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await ws.send_bytes(bytes([2 * i]) + prefix)
        await ws.send_bytes(bytes([2 * i + 1]) + prefix)

    async def inbound() -> None:
        async for data in _frames(ws, text=False):
            if data[0] % 2 or data[0] // 2 >= len(sessions) or len(data) < 2:
                continue
            await anyio.to_thread.run_sync(sessions[data[0] // 2].write_stdin, data[1:],
                                           limiter=limiter)

    async def outbound(i: int) -> None:
        session, errors_seen = sessions[i], bytearray()
        try:
            while True:
                item = await anyio.to_thread.run_sync(session.read, limiter=limiter,
                                                      abandon_on_cancel=True)
                if item is None:
                    break
                if item[0] == STDOUT:
                    await ws.send_bytes(bytes([2 * i]) + item[1])
                else:
                    errors_seen.extend(item[1])
            code = await anyio.to_thread.run_sync(session.wait, limiter=limiter,
                                                  abandon_on_cancel=True)
            why = errors_seen.decode(errors="replace").strip()
        except (RuntimeError_, ApiError) as e:
            code, why = 1, str(e)
        if code != 0 or why:
            await ws.send_bytes(bytes([2 * i + 1]) + (
                f"error forwarding port {ports[i]} to pod {pod}: {why or f'exit code {code}'}").encode())

    async with anyio.create_task_group() as tg:
        async def client_side() -> None:
            await inbound()
            tg.cancel_scope.cancel()
        tg.start_soon(client_side)
        async with anyio.create_task_group() as ports_group:
            for i in range(len(sessions)):
                ports_group.start_soon(outbound, i)
        await ws.close(1000)
        tg.cancel_scope.cancel()


async def refuse_http(server: "HttpServer", request: Request, namespace: str | None,
                      name: str, sub: str) -> Response:
    """exec/attach/portforward as plain HTTP: a SPDY/3.1 upgrade (older kubectl) or no
    upgrade at all. Checks the pod first (404, 400 as kube-apiserver), then refuses."""
    if sub not in STREAM_SUBRESOURCES or namespace is None:
        raise _not_found()
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed()
    q = request.query_params
    if sub == "exec":
        _command(q)                    # a missing command is a 400, as kube-apiserver says
        await server._call(server.api._exec_target, name, namespace, q.get("container") or None)
    elif sub == "attach":
        await server._call(server.api._exec_target, name, namespace, q.get("container") or None)
    else:
        await server._call(server.api.get, "pods", name, namespace)
    upgrade = (request.headers.get("upgrade") or "").strip()
    if not upgrade:
        raise errors.bad_request("Upgrade request required")
    offered = [v.strip() for h in request.headers.getlist("x-stream-protocol-version")
               for v in h.split(",") if v.strip()]
    serves = ("v5.channel.k8s.io v4.channel.k8s.io" if sub != "portforward"
              else "v4.channel.k8s.io with ?ports=")
    advice = ("kbox serves exec and attach over WebSocket only (kubectl 1.30+, or 1.29 "
              "with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true) and has no SPDY/3.1"
              if sub != "portforward" else
              "kbox does not serve kubectl port-forward (it needs SPDY/3.1, which kbox does "
              "not implement); WebSocket clients such as the kubernetes Python client's "
              "portforward() work")
    text = (f"unable to upgrade: unable to negotiate protocol: client supports {upgrade} "
            f"[{' '.join(offered)}], server supports WebSocket [{serves}]: {advice}")
    return PlainTextResponse(text + "\n", status_code=403)


__all__ = ["serve_websocket", "refuse_http", "exit_status", "internal_status",
           "CHANNEL_PROTOCOLS", "STDIN", "STDOUT", "STDERR", "ERROR", "RESIZE", "CLOSE"]
