"""The client interface, and its in-process implementation.

Every part of kbox (scheduler, controllers, node agents, CLI, dashboard)
talks to the API through a `Client`. `InProcessClient` calls the ApiServer
directly; `kbox.api.httpclient.HttpClient` speaks the Kubernetes REST dialect
over HTTP(S). Both have the same methods, take the same arguments, return
the same JSON-shaped dicts and raise the same `ApiError`, so any component
runs against either.

`resource` arguments accept what kubectl accepts: `pods`, `pod`, `po`,
`deployments.apps`, `Deployment`.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

import orjson

from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy as _copy
from kbox.gil import Pacer

WatchEvent = tuple[str, Obj]   # ("ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR", object)


class WatchStream:
    """An open watch. Iterate for events; `close()` from any thread ends it."""

    def __iter__(self) -> Iterator[WatchEvent]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "WatchStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """The interface. See InProcessClient for the semantics of each method."""

    def get(self, resource: str, name: str, namespace: str | None = None) -> Obj: ...
    def list(self, resource: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int | None = None, continue_token: str | None = None,
             read_only: bool = False) -> Obj:
        """`read_only=True`, as for watch: the caller never changes the items, so an in-process
        server may hand out its cached objects instead of copies (the dashboard)."""
        ...
    def create(self, resource: str, obj: Obj, namespace: str | None = None, *,
               dry_run: bool = False, field_manager: str | None = None) -> Obj: ...
    def update(self, resource: str, obj: Obj, namespace: str | None = None, *,
               dry_run: bool = False, field_manager: str | None = None) -> Obj: ...
    def update_status(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj: ...
    def patch(self, resource: str, name: str, patch: Any, patch_type: str = "merge",
              namespace: str | None = None, *, subresource: str | None = None,
              field_manager: str | None = None, force: bool = False,
              dry_run: bool = False) -> Obj: ...
    def delete(self, resource: str, name: str, namespace: str | None = None, *,
               propagation_policy: str | None = None, grace_period_seconds: int | None = None,
               preconditions: dict[str, str] | None = None, dry_run: bool = False) -> Obj: ...
    def delete_collection(self, resource: str, namespace: str | None = None, *,
                          label_selector: str | None = None, field_selector: str | None = None,
                          propagation_policy: str | None = None,
                          grace_period_seconds: int | None = None) -> Obj: ...
    def watch(self, resource: str, namespace: str | None = None, *,
              label_selector: str | None = None, field_selector: str | None = None,
              resource_version: str | None = None, allow_bookmarks: bool = False,
              timeout_seconds: float | None = None, read_only: bool = False) -> WatchStream:
        """`read_only=True` promises never to change the objects the stream yields, which
        lets an in-process server hand out its cached objects instead of copies (informers)."""
        ...
    def get_scale(self, resource: str, name: str, namespace: str | None = None) -> Obj: ...
    def update_scale(self, resource: str, name: str, scale: Obj, namespace: str | None = None) -> Obj: ...
    def scale(self, resource: str, name: str, replicas: int, namespace: str | None = None) -> Obj: ...
    def bind(self, name: str, namespace: str | None, node_name: str, *, uid: str | None = None) -> Obj: ...
    def evict(self, name: str, namespace: str | None = None, *,
              grace_period_seconds: int | None = None) -> Obj: ...
    def logs(self, name: str, namespace: str | None = None, *, container: str | None = None,
             previous: bool = False, tail_lines: int | None = None,
             timestamps: bool = False, since_seconds: int | None = None) -> str: ...
    def stream_logs(self, name: str, namespace: str | None = None, *,
                    container: str | None = None, previous: bool = False,
                    tail_lines: int | None = None, timestamps: bool = False,
                    stop: threading.Event | None = None) -> Iterator[str]: ...
    def exec(self, name: str, namespace: str | None, command: list[str], *,
             container: str | None = None, stdin: bytes | None = None,
             tty: bool = False) -> tuple[int, bytes, bytes]: ...
    def version(self) -> Obj: ...
    def get_metrics(self, kind: str, namespace: str | None = None) -> Obj:
        """metrics.k8s.io NodeMetricsList ("nodes") or PodMetricsList ("pods")."""
        ...
    def close(self) -> None: ...


class _InProcessWatch(WatchStream):
    def __init__(self, watcher, bookmarks: bool, timeout_seconds: float | None, clock,
                 read_only: bool = False) -> None:
        self._w = watcher
        # the cache's own objects (shared with every reader) or a private copy of each
        self._out = (lambda c: c.obj) if read_only else (lambda c: orjson.loads(c.raw))
        self._bookmarks = bookmarks
        self._deadline = None if timeout_seconds is None else clock.monotonic() + timeout_seconds
        self._clock = clock

    def __iter__(self) -> Iterator[WatchEvent]:
        idle = 0.0
        pacer = Pacer()
        batch: list = []
        while not self._w.closed:
            pacer.before_next(len(batch))
            batch = self._w.next_batch(0.5)
            out = self._out
            for etype, cobj in batch:
                yield etype, out(cobj)
            if self._deadline is not None and self._clock.monotonic() >= self._deadline:
                break
            if not batch:
                idle += 0.5
                if self._bookmarks and idle >= 1.0:
                    idle = 0.0
                    yield "BOOKMARK", self._w.bookmark()
            else:
                idle = 0.0
        self._w.close()

    def next_batch(self, timeout: float | None) -> list[WatchEvent]:
        """Events available within `timeout` seconds (for callers that poll)."""
        return [(t, self._out(c)) for t, c in self._w.next_batch(timeout)]

    @property
    def closed(self) -> bool:
        return self._w.closed

    def close(self) -> None:
        self._w.close()


class InProcessClient(Client):
    """Calls the ApiServer in this process. Inputs and outputs are copied, so
    callers may change what they pass in or get back."""

    def __init__(self, api, user: str = "system:admin") -> None:
        self.api = api
        self.user = user

    def get(self, resource, name, namespace=None):
        return self.api.get(resource, name, namespace)

    def list(self, resource, namespace=None, *, label_selector=None, field_selector=None,
             limit=None, continue_token=None, read_only=False):
        return self.api.list(resource, namespace, label_selector=label_selector,
                             field_selector=field_selector, limit=limit,
                             continue_token=continue_token, shared=read_only)

    def create(self, resource, obj, namespace=None, *, dry_run=False, field_manager=None):
        return self.api.create(resource, _copy(obj), namespace, dry_run=dry_run,
                               field_manager=field_manager)

    def update(self, resource, obj, namespace=None, *, dry_run=False, field_manager=None):
        return self.api.update(resource, _copy(obj), namespace, dry_run=dry_run,
                               field_manager=field_manager)

    def update_status(self, resource, obj, namespace=None):
        return self.api.update(resource, _copy(obj), namespace, subresource="status")

    def patch(self, resource, name, patch, patch_type="merge", namespace=None, *,
              subresource=None, field_manager=None, force=False, dry_run=False):
        return self.api.patch(resource, name, _copy(patch), patch_type, namespace,
                              subresource=subresource, field_manager=field_manager,
                              force=force, dry_run=dry_run)

    def delete(self, resource, name, namespace=None, *, propagation_policy=None,
               grace_period_seconds=None, preconditions=None, dry_run=False):
        return self.api.delete(resource, name, namespace, propagation_policy=propagation_policy,
                               grace_period_seconds=grace_period_seconds,
                               preconditions=preconditions, dry_run=dry_run)

    def delete_collection(self, resource, namespace=None, *, label_selector=None,
                          field_selector=None, propagation_policy=None,
                          grace_period_seconds=None):
        return self.api.delete_collection(resource, namespace, label_selector=label_selector,
                                          field_selector=field_selector,
                                          propagation_policy=propagation_policy,
                                          grace_period_seconds=grace_period_seconds)

    def watch(self, resource, namespace=None, *, label_selector=None, field_selector=None,
              resource_version=None, allow_bookmarks=False, timeout_seconds=None, read_only=False):
        w = self.api.watch(resource, namespace, label_selector=label_selector,
                           field_selector=field_selector, resource_version=resource_version,
                           allow_bookmarks=allow_bookmarks)
        return _InProcessWatch(w, allow_bookmarks, timeout_seconds, self.api.clock, read_only)

    def get_scale(self, resource, name, namespace=None):
        return self.api.get_scale(resource, name, namespace)

    def update_scale(self, resource, name, scale, namespace=None):
        return self.api.update_scale(resource, name, _copy(scale), namespace)

    def scale(self, resource, name, replicas, namespace=None):
        return self.api.scale(resource, name, replicas, namespace)

    def bind(self, name, namespace, node_name, *, uid=None):
        binding = {"metadata": {"name": name, "namespace": namespace, "uid": uid}} if uid else None
        return self.api.bind(name, namespace, node_name, binding=binding)

    def finalize_namespace(self, obj):
        """PUT the namespace's finalize subresource (only spec.finalizers changes)."""
        return self.api.update("namespaces", _copy(obj), subresource="finalize")

    def evict(self, name, namespace=None, *, grace_period_seconds=None):
        opts = {"gracePeriodSeconds": grace_period_seconds} if grace_period_seconds is not None else None
        return self.api.evict(name, namespace, delete_options=opts)

    def logs(self, name, namespace=None, *, container=None, previous=False, tail_lines=None,
             timestamps=False, since_seconds=None):
        return "".join(self.api.logs(name, namespace, container=container, follow=False,
                                     previous=previous, tail_lines=tail_lines,
                                     timestamps=timestamps, since_seconds=since_seconds))

    def stream_logs(self, name, namespace=None, *, container=None, previous=False,
                    tail_lines=None, timestamps=False, stop=None):
        return self.api.logs(name, namespace, container=container, follow=True,
                             previous=previous, tail_lines=tail_lines, timestamps=timestamps,
                             stop=stop)

    def exec(self, name, namespace, command, *, container=None, stdin=None, tty=False):
        return self.api.exec(name, namespace, list(command), container=container, stdin=stdin,
                             tty=tty)

    def version(self):
        from kbox.api.version import version_info
        return version_info()

    def get_metrics(self, kind, namespace=None):
        from kbox.api import metrics
        return metrics.node_metrics(self.api) if kind == "nodes" else metrics.pod_metrics(self.api, namespace)

    def close(self) -> None:
        pass


__all__ = ["Client", "InProcessClient", "WatchStream", "WatchEvent", "ApiError"]
