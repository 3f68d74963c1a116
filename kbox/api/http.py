"""The HTTP front of the API server, in the Kubernetes REST dialect.

`HttpServer` serves an `ApiServer` over HTTP(S) so that kubectl, the
official `kubernetes` Python client and kbox's own `HttpClient` can drive the
cluster: discovery (/api, /apis, APIResourceLists), collections and items of
every resource (list, watch, create, get, update, patch, delete,
deletecollection), the subresources (status, scale, binding, eviction, log,
finalize), metrics.k8s.io, and kbox's own /kbox/v1 routes (node actions,
status, exec as JSON for kbox's own client); pods/exec and pods/attach upgrade
to WebSocket as kubectl asks (kbox.api.streams).

It is Starlette on uvicorn, in a background thread with its own event loop.
Every ApiServer call blocks (store locks, condition waits), so each runs in
a worker thread; the event loop only parses, routes and streams. Watches
stream newline-delimited JSON events built from the watch cache's encoded
bytes, with bookmarks, timeouts and 410 Expired delivered as kube-apiserver
delivers them (HTTP 200, then one ERROR event).
"""

from __future__ import annotations

import base64
import logging
import random
import socket
import threading
import time
from typing import Any, Callable

import anyio
import anyio.to_thread
import orjson
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from kbox.api import discovery, errors, fieldvalidation, metrics, protobuf, tableview
from kbox.api.discovery import group_list, resource_list
from kbox.api.errors import ApiError
from kbox.api.resources import ResourceInfo, find

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 3 * 1024 * 1024     # kube-apiserver's request body limit
BOOKMARK_IDLE_SECONDS = 1.0
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}

try:
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _YamlLoader = yaml.SafeLoader


def _dumps(obj: Any, pretty: bool = False) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)


def _json(obj: Any, code: int = 200, pretty: bool = False) -> Response:
    return Response(_dumps(obj, pretty), status_code=code, media_type="application/json")


def _status_response(err: ApiError) -> Response:
    return Response(orjson.dumps(err.status), status_code=err.code, media_type="application/json")


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def _warned(resp: Response, warnings: list[str]) -> Response:
    """Add kube-apiserver's `Warning` headers (kubectl prints each as "Warning: ...")."""
    for w in warnings:
        resp.headers.append("Warning", fieldvalidation.warning_header(w))
    return resp


def _field_manager(request: Request) -> str | None:
    """The request's fieldManager, or as kube-apiserver infers it: the User-Agent up to its
    first "/" (kubectl/v1.32.0 ... → kubectl). Apply must name one (checked there)."""
    explicit = request.query_params.get("fieldManager")
    if explicit:
        return explicit
    agent = (request.headers.get("user-agent") or "").split("/", 1)[0].strip()
    return agent[:128] or None


def _bool(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1", "yes")


def _int(q: Any, name: str) -> int | None:
    v = q.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {v!r} is not an integer")


# ---- the server ------------------------------------------------------------

class HttpServer:
    """Serve `api` over HTTP(S) on host:port (port 0: a free port); see module doc."""

    def __init__(self, api: Any, host: str = "127.0.0.1", port: int = 0,
                 extra_routes: dict[str, Callable[..., Any]] | None = None,
                 ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 authenticator: Callable[[Any, str], Any] | None = None,
                 authorizer: Callable[[Any, str, str, Any], None] | None = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.extra_routes = dict(extra_routes or {})
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        # authenticator(headers, path) -> user (raises 401); authorizer(user, method, path,
        # query) raises 403 (kbox.api.auth); both None: every request is let in (tests)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.max_request_bytes = max_request_bytes
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._watchers: set[Any] = set()
        self._watchers_lock = threading.Lock()
        self._stopping = False
        # watches wait in worker threads of their own, so they never starve requests
        self._watch_limiter: anyio.CapacityLimiter | None = None
        # exec and attach upgrade to WebSocket (kbox.api.streams); everything else is HTTP
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=METHODS),
                                     WebSocketRoute("/{path:path}", self._websocket)])

    # ---- lifecycle --------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "HttpServer":
        import uvicorn
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit NODELAY: responses leave in two writes (head, body),
        # and Nagle plus the client's delayed ACK would add 40 ms to each
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        sock.set_inheritable(True)
        self._sock = sock
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None,
                                log_level="warning", access_log=False, lifespan="off",
                                loop="asyncio", timeout_graceful_shutdown=2,
                                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                                timeout_keep_alive=60)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"kbox-http-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server on {self.url} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the HTTP server on {self.url} did not start in {timeout}s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        self._server.run(sockets=[self._sock])

    def stop(self) -> None:
        self._stopping = True
        with self._watchers_lock:
            watchers = list(self._watchers)
        for w in watchers:
            w.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- plumbing -----------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kw))

    async def _body(self, request: Request, *, required: bool = True) -> Any:
        cl = request.headers.get("content-length")
        if cl and cl.isdigit() and int(cl) > self.max_request_bytes:
            raise errors.too_large(f"Request entity too large: limit is {self.max_request_bytes}")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_request_bytes:
                raise errors.too_large(f"Request entity too large: limit is {self.max_request_bytes}")
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data.strip():
            if required:
                raise errors.bad_request("the request body is empty: an object is required")
            return None
        ctype = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        if "yaml" in ctype:
            try:
                return orjson.loads(data)   # JSON is YAML too, and much faster to parse
            except orjson.JSONDecodeError:
                pass
            try:
                return yaml.load(data.decode("utf-8"), Loader=_YamlLoader)
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise errors.bad_request(f"the body of the request could not be decoded as YAML: {e}")
        if ctype in ("application/json", "*/*", "") or ctype.endswith("+json") or ctype == "text/plain":
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise errors.bad_request(f"the body of the request could not be decoded as JSON: {e}")
        if ctype == protobuf.MEDIA_TYPE:         # kubectl >= 1.32's typed objects
            try:
                return protobuf.decode_object(data)
            except protobuf.ProtobufError as e:
                raise errors.bad_request(f"the body of the request could not be decoded as protobuf: {e}")
        raise errors.unsupported_media_type(ctype)

    async def _websocket(self, websocket: WebSocket) -> None:
        from kbox.api import streams
        await streams.serve_websocket(self, websocket)

    async def _handle(self, request: Request) -> Response:
        try:
            if self.authenticator is not None:
                user = self.authenticator(request.headers, request.url.path)
                request.state.user = user
                if self.authorizer is not None:
                    self.authorizer(user, request.method, request.url.path, request.query_params)
            return await self._route(request)
        except ApiError as e:
            return _status_response(e)
        except Exception as e:  # a bug must answer 500, never kill the server
            log.exception("HTTP %s %s failed", request.method, request.url.path)
            return _status_response(errors.internal(str(e)))

    async def _route(self, request: Request) -> Response:
        path = request.url.path
        parts = [p for p in path.split("/") if p]
        method = request.method
        pretty = _bool(request.query_params.get("pretty"))
        if method == "HEAD":
            method = "GET"
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez",
                                    "/readyz", "/version"]}, pretty=pretty)
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return PlainTextResponse("ok")
        if head == "version" and len(parts) == 1:
            from kbox.api.version import version_info
            return _json(version_info(), pretty=pretty)
        if head == "kbox":
            return await self._kbox(request, parts[1:])
        if head in ("openapi", "swagger-2.0.0.pb-v1"):
            self._only(method, "GET")
            from kbox.api import openapi
            body, ctype, headers = await self._call(
                openapi.respond, parts[1:] if head == "openapi" else parts,
                request.headers.get("accept"), request.query_params)
            return Response(body, media_type=ctype, headers=headers)
        if head in ("api", "apis") and len(parts) == 1:
            self._only(method, "GET")
            agg = discovery.negotiate_aggregated(request.headers.get("accept"))
            if agg:     # one APIGroupDiscoveryList for every group version
                return Response(discovery.aggregated_bytes(head == "api", agg),
                                media_type=discovery.content_type(agg), headers={"Vary": "Accept"})
        if head == "api":
            if len(parts) == 1:
                return _json(discovery.api_versions(f"{self.host}:{self.port}"), pretty=pretty)
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(group_list(), pretty=pretty)
            if len(parts) == 2:
                self._only(method, "GET")
                for g in group_list()["groups"]:
                    if g["name"] == parts[1]:
                        return _json({"kind": "APIGroup", "apiVersion": "v1", **g}, pretty=pretty)
                raise _not_found()
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found()
        if not rest:
            self._only(method, "GET")
            rl = resource_list(group, version)
            if rl is None:
                raise _not_found()
            return _json(rl, pretty=pretty)
        if group == metrics.GROUP:
            return await self._metrics(request, version, rest, pretty)
        # namespaced path: namespaces/{ns}/{plural}[/{name}[/{sub}]]
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and find(group, version, rest[2]) is not None \
                and find(group, version, rest[2]).namespaced:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _not_found()
        info = find(group, version, rest[0])
        if info is None:
            raise _not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in info.subresources:
            raise _not_found()
        if name is None:
            return await self._collection(request, method, info, namespace, pretty)
        if not info.namespaced:
            namespace = None
        elif namespace is None:
            raise _not_found()
        return await self._item(request, method, info, namespace, name, sub, pretty)

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise errors.method_not_allowed()

    # ---- collections ------------------------------------------------------------
    async def _collection(self, request: Request, method: str, info: ResourceInfo,
                          namespace: str | None, pretty: bool) -> Response:
        q = request.query_params
        api = self.api
        if method == "GET":
            rep = tableview.negotiate(request.headers.get("accept"), item=False)
            if _bool(q.get("watch")):
                return await self._watch(request, info, namespace, rep)
            kw = dict(label_selector=q.get("labelSelector") or None,
                      field_selector=q.get("fieldSelector") or None,
                      limit=_int(q, "limit"), continue_token=q.get("continue") or None,
                      resource_version=q.get("resourceVersion") or None)
            if rep.as_:     # server-side printing, from the cache's shared objects
                include = tableview.include_object(q)
                data = await self._call(lambda: _dumps(tableview.list_as(
                    rep, info.plural, api.list(info, namespace, shared=True, **kw),
                    api.clock.now(), include), pretty))
                return Response(data, media_type="application/json")
            lst = await self._call(api.list, info, namespace, **kw)
            return _json(lst, pretty=pretty)
        if method == "POST":
            if info.namespaced and namespace is None:
                raise errors.method_not_allowed()
            body = await self._body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be a JSON or YAML object")
            warnings = fieldvalidation.check(info, body, q, operation="create")
            obj = await self._call(api.create, info, body, namespace, dry_run=self._dry_run(q),
                                   field_manager=_field_manager(request))
            return _warned(_json(obj, 201, pretty), warnings)
        if method == "DELETE" and "deletecollection" in info.verbs:
            opts = await self._delete_options(request)
            out = await self._call(api.delete_collection, info, namespace,
                                   label_selector=q.get("labelSelector") or None,
                                   field_selector=q.get("fieldSelector") or None,
                                   propagation_policy=opts.get("propagationPolicy"),
                                   grace_period_seconds=opts.get("gracePeriodSeconds"))
            return _json(out, pretty=pretty)
        raise errors.method_not_allowed()

    @staticmethod
    def _dry_run(q: Any) -> bool:
        values = q.getlist("dryRun")
        for v in values:
            if v not in ("All", ""):
                raise errors.bad_request(f'Invalid dry run value: "{v}": supported values: "All"')
        return "All" in values

    async def _delete_options(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        body = await self._body(request, required=False)
        opts: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q.get("propagationPolicy")
        if q.get("gracePeriodSeconds") not in (None, ""):
            opts["gracePeriodSeconds"] = _int(q, "gracePeriodSeconds")
        if self._dry_run(q):
            opts["dryRun"] = ["All"]
        if opts.get("orphanDependents") is not None and not opts.get("propagationPolicy"):
            opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
        return opts

    # ---- items ---------------------------------------------------------------
    async def _item(self, request: Request, method: str, info: ResourceInfo,
                    namespace: str | None, name: str, sub: str | None, pretty: bool) -> Response:
        q = request.query_params
        api = self.api
        manager = _field_manager(request)
        if sub is None or sub == "status":
            if method == "GET":
                rep = tableview.negotiate(request.headers.get("accept"), item=True)
                obj = await self._call(api.get, info, name, namespace)
                if rep.as_:
                    obj = tableview.item_as(rep, info.plural, obj, api.clock.now(),
                                            tableview.include_object(q))
                return _json(obj, pretty=pretty)
            if method == "PUT":
                body = await self._body(request)
                self._check_name(body, name)
                warnings = fieldvalidation.check(info, body, q, operation="update")
                obj = await self._call(api.update, info, body, namespace, subresource=sub,
                                       dry_run=self._dry_run(q), field_manager=manager)
                return _warned(_json(obj, pretty=pretty), warnings)
            if method == "PATCH":
                return await self._patch(request, info, namespace, name, sub, pretty)
            if method == "DELETE" and sub is None:
                opts = await self._delete_options(request)
                obj = await self._call(api.delete, info, name, namespace,
                                       propagation_policy=opts.get("propagationPolicy"),
                                       grace_period_seconds=opts.get("gracePeriodSeconds"),
                                       preconditions=opts.get("preconditions"),
                                       dry_run="All" in (opts.get("dryRun") or []))
                return _json(obj, pretty=pretty)
            raise errors.method_not_allowed()
        if sub == "scale":
            if method == "GET":
                return _json(await self._call(api.get_scale, info, name, namespace), pretty=pretty)
            if method == "PUT":
                body = await self._body(request)
                return _json(await self._call(api.update_scale, info, name, body, namespace,
                                              field_manager=manager),
                             pretty=pretty)
            if method == "PATCH":
                return await self._patch(request, info, namespace, name, sub, pretty)
            raise errors.method_not_allowed()
        if sub == "finalize":
            self._only(method, "PUT")
            body = await self._body(request)
            self._check_name(body, name)
            return _json(await self._call(api.update, info, body, namespace, subresource="finalize"),
                         pretty=pretty)
        if sub == "binding":
            self._only(method, "POST")
            body = await self._body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be a Binding object")
            target = (body.get("target") or {}).get("name") or ""
            out = await self._call(api.bind, name, namespace, target, binding=body)
            return _json(out, 201, pretty)
        if sub == "token":                        # TokenRequest: `kubectl create token`
            self._only(method, "POST")
            handler = self.extra_routes.get("token")
            if handler is None:
                raise _not_found()
            body = await self._body(request)
            return _json(await self._call(handler, namespace, name, body), 201, pretty)
        if sub == "eviction":
            self._only(method, "POST")
            body = await self._body(request, required=False) or {}
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be an Eviction object")
            out = await self._call(api.evict, name, namespace,
                                   delete_options=body.get("deleteOptions"))
            return _json(out, 201, pretty)
        if sub == "log":
            self._only(method, "GET")
            return await self._logs(request, namespace, name)
        if sub in ("exec", "attach", "portforward"):
            from kbox.api import streams     # WebSocket upgrades go to _websocket
            return await streams.refuse_http(self, request, namespace, name, sub)
        raise _not_found()

    @staticmethod
    def _check_name(body: Any, name: str) -> None:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        m = body.get("metadata")
        if isinstance(m, dict) and m.get("name") and m["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({name})")
        if isinstance(m, dict) and not m.get("name"):
            m["name"] = name

    async def _patch(self, request: Request, info: ResourceInfo, namespace: str | None,
                     name: str, sub: str | None, pretty: bool) -> Response:
        q = request.query_params
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        ptype = PATCH_TYPES.get(ctype)
        if ptype is None:
            raise errors.unsupported_media_type(ctype or "none")
        body = await self._body(request)
        warnings: list[str] = []
        if sub is None:
            warnings = fieldvalidation.check(info, body, q, operation=ptype, name=name,
                                             namespace=namespace)
        existed = True
        if ptype == "apply" and sub is None:
            existed = await self._call(self._exists, info, name, namespace)
        obj = await self._call(self.api.patch, info, name, body, ptype, namespace,
                               subresource=sub,
                               field_manager=q.get("fieldManager") if ptype == "apply"
                               else _field_manager(request),
                               force=_bool(q.get("force")), dry_run=self._dry_run(q))
        return _warned(_json(obj, 200 if existed else 201, pretty), warnings)

    def _exists(self, info: ResourceInfo, name: str, namespace: str | None) -> bool:
        try:
            self.api.get(info, name, namespace)
            return True
        except ApiError:
            return False

    # ---- logs ---------------------------------------------------------------
    async def _logs(self, request: Request, namespace: str | None, name: str) -> Response:
        q = request.query_params
        follow = _bool(q.get("follow"))
        stop = threading.Event()
        since = _int(q, "sinceSeconds")
        if q.get("sinceTime") and since is None:      # kubectl logs --since-time
            from kbox.clock import parse_time
            try:
                t = parse_time(q.get("sinceTime"))
            except ValueError:
                t = None
            if t is None:
                raise errors.bad_request(f'parsing time "{q.get("sinceTime")}" as RFC 3339 failed')
            since = max(1, int(self.api.clock.now() - t + 0.999))
        limit = _int(q, "limitBytes")                 # kubectl logs --limit-bytes
        if limit is not None and limit <= 0:
            raise errors.bad_request("limitBytes: Invalid value: must be greater than 0")
        kw = dict(container=q.get("container") or None, follow=follow,
                  previous=_bool(q.get("previous")), tail_lines=_int(q, "tailLines"),
                  timestamps=_bool(q.get("timestamps")), since_seconds=since,
                  stop=stop)
        it = await self._call(self.api.logs, name, namespace, **kw)
        if not follow:
            text = (await self._call(lambda: "".join(it))).encode()
            return PlainTextResponse(text[:limit] if limit is not None else text)
        done = object()

        def step() -> Any:
            try:
                return next(it)
            except StopIteration:
                return done

        async def gen():
            left = limit
            try:
                while not stop.is_set() and not self._stopping:
                    line = await anyio.to_thread.run_sync(step, limiter=self._limiter())
                    if line is done:
                        break
                    data = line.encode() if isinstance(line, str) else line
                    if left is not None:
                        data, left = data[:left], left - len(data)
                    yield data
                    if left is not None and left <= 0:
                        break
            finally:
                stop.set()
                close = getattr(it, "close", None)
                if close:
                    try:
                        close()
                    except Exception:
                        pass
        return StreamingResponse(gen(), media_type="text/plain")

    def _limiter(self) -> anyio.CapacityLimiter:
        if self._watch_limiter is None:
            self._watch_limiter = anyio.CapacityLimiter(10000)
        return self._watch_limiter

    # ---- watch ----------------------------------------------------------------
    async def _watch(self, request: Request, info: ResourceInfo, namespace: str | None,
                     rep: "tableview.Representation" = tableview.PLAIN) -> Response:
        q = request.query_params
        tables = (tableview.WatchTables(rep, info.plural, tableview.include_object(q), self.api.clock)
                  if rep.as_ else None)
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        timeout = q.get("timeoutSeconds")
        try:
            seconds = float(timeout) if timeout not in (None, "") else random.uniform(1800, 3600)
        except ValueError:
            raise errors.bad_request(f"invalid value for timeoutSeconds: {timeout!r}")
        first_error: bytes | None = None
        watcher = None
        try:
            watcher = await self._call(
                self.api.watch, info, namespace, label_selector=q.get("labelSelector") or None,
                field_selector=q.get("fieldSelector") or None,
                resource_version=q.get("resourceVersion") or None, allow_bookmarks=bookmarks,
                send_initial_events=_bool(q.get("sendInitialEvents")))
        except ApiError as e:
            if e.code != 410:
                raise
            # kube-apiserver answers 200 and then one ERROR event carrying the Status
            first_error = b'{"type":"ERROR","object":' + orjson.dumps(e.status) + b"}\n"
        if watcher is not None:
            with self._watchers_lock:
                self._watchers.add(watcher)
        limiter = self._limiter()
        initial_end = _bool(q.get("sendInitialEvents")) and bookmarks

        async def gen():
            try:
                if first_error is not None:
                    yield first_error
                    return
                assert watcher is not None
                deadline = time.monotonic() + seconds
                sent_initial_end = not initial_end
                while not watcher.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    batch = await anyio.to_thread.run_sync(
                        watcher.next_batch, min(BOOKMARK_IDLE_SECONDS, remaining), limiter=limiter)
                    if batch and tables is not None:
                        yield b"".join(b'{"type":"' + t.encode() + b'","object":'
                                       + orjson.dumps(tables.convert(c.obj)) + b"}\n"
                                       for t, c in batch)
                        continue
                    if batch:
                        yield b"".join(b'{"type":"' + t.encode() + b'","object":' + c.raw + b"}\n"
                                       for t, c in batch)
                        continue
                    if watcher.closed:
                        break
                    if not sent_initial_end:
                        bm = watcher.bookmark()
                        bm["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                        sent_initial_end = True
                        yield b'{"type":"BOOKMARK","object":' + orjson.dumps(bm) + b"}\n"
                    elif bookmarks and time.monotonic() < deadline:
                        yield b'{"type":"BOOKMARK","object":' + orjson.dumps(watcher.bookmark()) + b"}\n"
            finally:
                # also reached when Starlette cancels us because the client went away
                if watcher is not None:
                    watcher.close()
                    with self._watchers_lock:
                        self._watchers.discard(watcher)
        return StreamingResponse(gen(), media_type="application/json")

    # ---- metrics.k8s.io ------------------------------------------------------------
    async def _metrics(self, request: Request, version: str, rest: list[str], pretty: bool) -> Response:
        self._only(request.method if request.method != "HEAD" else "GET", "GET")
        if version != metrics.VERSION:
            raise _not_found()
        if rest[0] == "nodes" and len(rest) <= 2:
            name = rest[1] if len(rest) == 2 else None
            return _json(await self._call(metrics.node_metrics, self.api, name), pretty=pretty)
        if rest[0] == "pods" and len(rest) == 1:
            return _json(await self._call(metrics.pod_metrics, self.api, None), pretty=pretty)
        if rest[0] == "namespaces" and len(rest) in (3, 4) and rest[2] == "pods":
            name = rest[3] if len(rest) == 4 else None
            return _json(await self._call(metrics.pod_metrics, self.api, rest[1], name), pretty=pretty)
        raise _not_found()

    # ---- kbox's own routes ---------------------------------------------------------
    async def _kbox(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        if parts[:1] != ["v1"]:
            raise _not_found()
        parts = parts[1:]
        try:
            if parts == ["status"] and "status" in self.extra_routes:
                self._only(method, "GET")
                return _json(await self._call(self.extra_routes["status"]))
            if len(parts) == 3 and parts[0] == "nodes" and "node" in self.extra_routes:
                self._only(method, "POST")
                body = await self._body(request, required=False) or {}
                if not isinstance(body, dict):
                    raise errors.bad_request("the body must be a JSON object")
                out = await self._call(self.extra_routes["node"], parts[2], parts[1], **body)
                return _json(out if out is not None else {})
        except ApiError:
            raise
        except ValueError as e:
            raise errors.bad_request(str(e))
        except LookupError as e:
            raise ApiError(404, "NotFound", str(e.args[0]) if e.args else str(e))
        if len(parts) == 5 and parts[0] == "namespaces" and parts[2] == "pods" and parts[4] == "exec":
            return await self._exec(request, parts[1], parts[3])
        raise _not_found()

    async def _exec(self, request: Request, namespace: str, name: str) -> Response:
        """Exec as one JSON exchange: {exitCode, stdout, stderr} (WebSocket streams come later)."""
        self._only(request.method, "GET", "POST")
        q = request.query_params
        body = await self._body(request, required=False) if request.method == "POST" else None
        body = body if isinstance(body, dict) else {}
        command = body.get("command") or q.getlist("command")
        if isinstance(command, str):
            command = [command]
        if not command:
            raise errors.bad_request("you must specify at least one command for the container")
        stdin = body.get("stdin")
        stdin_bytes = base64.b64decode(stdin) if stdin else None
        container = body.get("container") or q.get("container") or None
        tty = bool(body.get("tty")) or _bool(q.get("tty"))
        code, out, err = await self._call(self.api.exec, name, namespace, list(command),
                                          container=container, stdin=stdin_bytes, tty=tty)
        return _json({"exitCode": code,
                      "stdout": out.decode("utf-8", "replace"),
                      "stderr": err.decode("utf-8", "replace"),
                      "stdoutBase64": base64.b64encode(out).decode(),
                      "stderrBase64": base64.b64encode(err).decode()})


__all__ = ["HttpServer", "MAX_REQUEST_BYTES", "resource_list", "group_list"]
