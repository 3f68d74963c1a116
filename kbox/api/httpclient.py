"""The HTTP client: the `Client` interface over the Kubernetes REST dialect.

`HttpClient` is what the CLI, the dashboard and anything outside the kbox
process use to reach a cluster. It has the same methods, arguments, results
and errors as `InProcessClient` (a Status body becomes the same `ApiError`),
so a component runs unchanged against either. One `httpx.Client` with a
connection pool serves every call and is safe to share between threads;
watches and followed logs stream over their own pooled connections, and
`close()` on a stream from any thread ends it promptly by shutting its socket.
"""

from __future__ import annotations

import base64
import socket
import threading
from typing import Any, Iterator

import httpx
import orjson

from kbox.api import errors
from kbox.api.client import Client, WatchEvent, WatchStream
from kbox.api.errors import ApiError
from kbox.api.objects import Obj
from kbox.api.resources import ResourceInfo, lookup

PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _resource(resource: str | ResourceInfo) -> ResourceInfo:
    if isinstance(resource, ResourceInfo):
        return resource
    info = lookup(resource)
    if info is None:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({resource})")
    return info


def _error(resp: httpx.Response) -> ApiError:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return ApiError.from_status(body, resp.status_code)
    text = resp.text.strip() or resp.reason_phrase
    return ApiError(resp.status_code, "Unknown" if resp.status_code != 404 else "NotFound",
                    f"the server responded with {resp.status_code}: {text}")


def _shutdown(resp: httpx.Response | None) -> None:
    """Wake a thread blocked reading `resp` by shutting its socket down."""
    if resp is None:
        return
    stream = resp.extensions.get("network_stream")
    sock = None
    if stream is not None:
        try:
            sock = stream.get_extra_info("socket")
        except Exception:
            sock = None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HttpWatch(WatchStream):
    def __init__(self, client: "HttpClient", url: str, params: dict[str, Any]) -> None:
        self._client = client
        self._closed = threading.Event()
        self._resp: httpx.Response | None = None
        req = client._http.build_request("GET", url, params=params)
        # the server ends the watch; reads may idle for minutes between events
        self._resp = client._http.send(req, stream=True)
        if self._resp.status_code >= 400:
            try:
                self._resp.read()
                raise _error(self._resp)
            finally:
                self._resp.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __iter__(self) -> Iterator[WatchEvent]:
        resp = self._resp
        assert resp is not None
        try:
            for line in resp.iter_lines():
                if self._closed.is_set():
                    break
                if not line:
                    continue
                ev = orjson.loads(line)
                yield ev.get("type", ""), ev.get("object") or {}
        except (httpx.HTTPError, OSError):
            if not self._closed.is_set():
                raise
        finally:
            self._closed.set()
            resp.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        _shutdown(self._resp)
        try:
            if self._resp is not None:
                self._resp.close()
        except Exception:
            pass


class HttpClient(Client):
    """A Client over HTTP(S). `verify`: True, False, or a CA bundle path."""

    def __init__(self, base_url: str, *, token: str | None = None, verify: bool | str = True,
                 timeout: float = 30, user_agent: str = "kbox/0.1") -> None:
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        if isinstance(verify, str):          # a CA bundle: the cluster's own CA
            import ssl
            verify = ssl.create_default_context(cafile=verify)  # type: ignore[assignment]
        self._verify = verify
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, verify=verify,
            timeout=httpx.Timeout(timeout, read=None),
            transport=httpx.HTTPTransport(
                verify=verify, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=64),
                # headers and body go out in two writes: without NODELAY, Nagle plus the
                # server's delayed ACK add 40 ms to every request with a body
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]))

    # ---- plumbing ------------------------------------------------------------
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 body: Any = None, content_type: str = "application/json",
                 raw: bool = False) -> Any:
        content = None
        headers = None
        if body is not None:
            content = orjson.dumps(body)
            headers = {"Content-Type": content_type}
        params = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
        try:
            resp = self._http.request(method, path, params=params, content=content,
                                      headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as e:
            raise errors.timeout(f"the request to {self.base_url}{path} timed out: {e}")
        except httpx.TransportError as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the API at {self.base_url}: {e}")
        if resp.status_code >= 400:
            raise _error(resp)
        if raw:
            return resp.text
        return orjson.loads(resp.content) if resp.content else {}

    @staticmethod
    def _ns(info: ResourceInfo, namespace: str | None, obj: Obj | None = None) -> str | None:
        if not info.namespaced:
            return None
        return namespace or ((obj or {}).get("metadata") or {}).get("namespace") or "default"

    # ---- the Client interface ----------------------------------------------------
    def get(self, resource, name, namespace=None):
        info = _resource(resource)
        return self._request("GET", info.path(self._ns(info, namespace), name))

    def list(self, resource, namespace=None, *, label_selector=None, field_selector=None,
             limit=None, continue_token=None, read_only=False):
        info = _resource(resource)
        ns = namespace if info.namespaced else None
        return self._request("GET", info.path(ns), params={
            "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
            "limit": limit or None, "continue": continue_token or None})

    def create(self, resource, obj, namespace=None, *, dry_run=False, field_manager=None):
        info = _resource(resource)
        return self._request("POST", info.path(self._ns(info, namespace, obj)), body=obj,
                             params={"dryRun": "All" if dry_run else None,
                                     "fieldManager": field_manager})

    def _name(self, info: ResourceInfo, obj: Obj) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise errors.invalid(info.kind, "", [errors.cause(
                "metadata.name", "name or generateName is required", "FieldValueRequired")], info.group)
        return name

    def update(self, resource, obj, namespace=None, *, dry_run=False, field_manager=None):
        info = _resource(resource)
        path = info.path(self._ns(info, namespace, obj), self._name(info, obj))
        return self._request("PUT", path, body=obj, params={
            "dryRun": "All" if dry_run else None, "fieldManager": field_manager})

    def update_status(self, resource, obj, namespace=None):
        info = _resource(resource)
        path = info.path(self._ns(info, namespace, obj), self._name(info, obj), "status")
        return self._request("PUT", path, body=obj)

    def patch(self, resource, name, patch, patch_type="merge", namespace=None, *,
              subresource=None, field_manager=None, force=False, dry_run=False):
        info = _resource(resource)
        ctype = PATCH_CONTENT_TYPES.get(patch_type)
        if ctype is None:
            raise errors.bad_request(f"unsupported patch type {patch_type!r}")
        path = info.path(self._ns(info, namespace), name, subresource)
        return self._request("PATCH", path, body=patch, content_type=ctype, params={
            "fieldManager": field_manager, "force": "true" if force else None,
            "dryRun": "All" if dry_run else None})

    def delete(self, resource, name, namespace=None, *, propagation_policy=None,
               grace_period_seconds=None, preconditions=None, dry_run=False):
        info = _resource(resource)
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        if dry_run:
            opts["dryRun"] = ["All"]
        return self._request("DELETE", info.path(self._ns(info, namespace), name), body=opts)

    def delete_collection(self, resource, namespace=None, *, label_selector=None,
                          field_selector=None, propagation_policy=None, grace_period_seconds=None):
        info = _resource(resource)
        ns = namespace if info.namespaced else None
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        return self._request("DELETE", info.path(ns), body=opts, params={
            "labelSelector": label_selector or None, "fieldSelector": field_selector or None})

    def watch(self, resource, namespace=None, *, label_selector=None, field_selector=None,
              resource_version=None, allow_bookmarks=False, timeout_seconds=None, read_only=False):
        info = _resource(resource)
        ns = namespace if info.namespaced else None
        params = {"watch": "true", "labelSelector": label_selector or None,
                  "fieldSelector": field_selector or None,
                  "resourceVersion": resource_version or None,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None,
                  "timeoutSeconds": int(timeout_seconds) if timeout_seconds is not None else None}
        params = {k: v for k, v in params.items() if v is not None}
        try:
            return _HttpWatch(self, info.path(ns), params)
        except httpx.TransportError as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the API at {self.base_url}: {e}")

    def get_scale(self, resource, name, namespace=None):
        info = _resource(resource)
        return self._request("GET", info.path(self._ns(info, namespace), name, "scale"))

    def update_scale(self, resource, name, scale, namespace=None):
        info = _resource(resource)
        body = dict(scale)
        body.setdefault("kind", "Scale")
        body.setdefault("apiVersion", "autoscaling/v1")
        meta = dict(body.get("metadata") or {})
        meta.setdefault("name", name)
        body["metadata"] = meta
        return self._request("PUT", info.path(self._ns(info, namespace), name, "scale"), body=body)

    def scale(self, resource, name, replicas, namespace=None):
        return self.update_scale(resource, name, {"spec": {"replicas": replicas}}, namespace)

    def bind(self, name, namespace, node_name, *, uid=None):
        ns = namespace or "default"
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        if uid:
            meta["uid"] = uid
        body = {"kind": "Binding", "apiVersion": "v1", "metadata": meta,
                "target": {"kind": "Node", "apiVersion": "v1", "name": node_name}}
        return self._request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", body=body)

    def finalize_namespace(self, obj):
        """PUT /api/v1/namespaces/{name}/finalize: replace spec.finalizers only."""
        name = (obj.get("metadata") or {}).get("name")
        return self._request("PUT", f"/api/v1/namespaces/{name}/finalize", body=obj)

    def evict(self, name, namespace=None, *, grace_period_seconds=None):
        ns = namespace or "default"
        body: dict[str, Any] = {"kind": "Eviction", "apiVersion": "policy/v1",
                                "metadata": {"name": name, "namespace": ns}}
        if grace_period_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_period_seconds}
        return self._request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/eviction", body=body)

    @staticmethod
    def _log_params(container, previous, tail_lines, timestamps, since_seconds, follow):
        return {"container": container or None, "previous": "true" if previous else None,
                "tailLines": tail_lines, "timestamps": "true" if timestamps else None,
                "sinceSeconds": since_seconds, "follow": "true" if follow else None}

    def logs(self, name, namespace=None, *, container=None, previous=False, tail_lines=None,
             timestamps=False, since_seconds=None):
        ns = namespace or "default"
        return self._request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log", raw=True,
                             params=self._log_params(container, previous, tail_lines, timestamps,
                                                     since_seconds, False))

    def stream_logs(self, name, namespace=None, *, container=None, previous=False,
                    tail_lines=None, timestamps=False, stop=None):
        ns = namespace or "default"
        params = self._log_params(container, previous, tail_lines, timestamps, None, True)
        params = {k: v for k, v in params.items() if v is not None}
        req = self._http.build_request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log",
                                       params=params)
        resp = self._http.send(req, stream=True)
        if resp.status_code >= 400:
            resp.read()
            resp.close()
            raise _error(resp)
        return self._follow(resp, stop)

    def _follow(self, resp: httpx.Response, stop: threading.Event | None) -> Iterator[str]:
        done = threading.Event()
        if stop is not None:
            def waiter() -> None:
                while not done.is_set():
                    if stop.wait(0.2):
                        _shutdown(resp)
                        return
            threading.Thread(target=waiter, daemon=True, name="kbox-log-stop").start()
        try:
            buf = ""
            for text in resp.iter_text():
                if stop is not None and stop.is_set():
                    break
                buf += text
                while "\n" in buf:
                    line, buf = buf.split("\n", 1)
                    yield line + "\n"
            if buf and not (stop is not None and stop.is_set()):
                yield buf
        except (httpx.HTTPError, OSError):
            if not (stop is not None and stop.is_set()):
                raise
        finally:
            done.set()
            resp.close()

    def exec(self, name, namespace, command, *, container=None, stdin=None, tty=False):
        ns = namespace or "default"
        body: dict[str, Any] = {"command": list(command), "tty": tty}
        if container:
            body["container"] = container
        if stdin is not None:
            body["stdin"] = base64.b64encode(stdin).decode()
        out = self._request("POST", f"/kbox/v1/namespaces/{ns}/pods/{name}/exec", body=body)
        return (int(out["exitCode"]), base64.b64decode(out.get("stdoutBase64") or ""),
                base64.b64decode(out.get("stderrBase64") or ""))

    def version(self):
        return self._request("GET", "/version")

    def open_websocket(self, path: str, params: dict[str, Any], subprotocols: list[str]) -> Any:
        """A WebSocket to `path` (pods/portforward), with this client's token and TLS trust;
        a refused upgrade raises the server's Status as ApiError."""
        import inspect
        import ssl
        from urllib.parse import urlencode

        import websockets.exceptions
        from websockets.sync.client import connect
        url = self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        context = None
        if url.startswith("wss://"):
            if isinstance(self._verify, ssl.SSLContext):
                context = self._verify
            else:
                context = ssl.create_default_context()
                if not self._verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        options: dict[str, Any] = {}
        accepted = inspect.signature(connect).parameters
        if "proxy" in accepted:      # websockets 15+: never through a proxy from the environment
            options["proxy"] = None
        if "legacy" in accepted:     # websockets 17+: a plain connection, closed by the caller
            options["legacy"] = True
        try:
            return connect(f"{url}{path}?{urlencode(params, doseq=True)}", ssl=context,
                           subprotocols=subprotocols, additional_headers=headers,
                           max_size=None, compression=None, open_timeout=self.timeout, **options)
        except websockets.exceptions.InvalidStatus as e:
            code, body = e.response.status_code, e.response.body or b""
            try:
                status = orjson.loads(body)
            except orjson.JSONDecodeError:
                status = None
            if isinstance(status, dict) and status.get("kind") == "Status":
                raise ApiError.from_status(status, code) from None
            raise ApiError(code, "Unknown", f"the server refused the upgrade ({code}): "
                           f"{body.decode(errors='replace').strip()}") from None
        except OSError as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the API at {self.base_url}: {e}")

    # ---- kbox's own routes ---------------------------------------------------------
    def get_metrics(self, kind, namespace=None):
        base = "/apis/metrics.k8s.io/v1beta1"
        path = f"{base}/nodes" if kind == "nodes" else (
            f"{base}/namespaces/{namespace}/pods" if namespace else f"{base}/pods")
        return self._request("GET", path)

    def kbox_node_action(self, action: str, name: str, **kw: Any) -> Obj:
        return self._request("POST", f"/kbox/v1/nodes/{name}/{action}", body=kw)

    def kbox_status(self) -> Obj:
        return self._request("GET", "/kbox/v1/status")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HttpClient", "PATCH_CONTENT_TYPES"]
