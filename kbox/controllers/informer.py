"""Informers: a local cache of one resource kept current by list + watch.

As in client-go: an informer lists, fills its cache, then watches from the
list's resourceVersion; each change updates the cache and then calls the
registered handlers, which should only enqueue keys. Workers read the cache,
never the event. When the watch ends it resumes from the last
resourceVersion seen; when the server answers 410 Gone it lists again and
tells the handlers what changed meanwhile.

Objects in the cache are shared by every handler: copy before changing
(`kbox.api.objects.deep_copy`).

`InformerFactory` shares one informer per (resource, namespace, selectors)
between all components of a process, as kube-controller-manager does.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, key_of

log = logging.getLogger(__name__)

Handler = Callable[..., None]
IndexFunc = Callable[[Obj], list[str]]


def namespace_index(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def node_name_index(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def controller_uid_index(obj: Obj) -> list[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return [ref.get("uid", "")]
    return []


class Informer:
    def __init__(self, client: Client, resource: str, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._lock = threading.RLock()
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        # each cached key's index values, one list per indexer in _indexers' order: an
        # update compares against these instead of running every index function twice
        self._values: dict[str, tuple[list[str], ...]] = {}
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = None
        self.last_resource_version = ""

    # ---- configuration -------------------------------------------------------
    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """on_add(obj), on_update(old, new), on_delete(obj). Existing objects are replayed as adds."""
        with self._lock:
            self._handlers.append((on_add, on_update, on_delete))
            replay = list(self._items.values()) if on_add and self._synced.is_set() else []
        for obj in replay:          # outside the lock, like every other notification
            on_add(obj)  # type: ignore[misc]

    def add_index(self, name: str, fn: IndexFunc) -> None:
        with self._lock:
            self._indexers[name] = fn
            fns = list(self._indexers.values())
            idx: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for v in fn(obj):
                    idx.setdefault(v, set()).add(key)
                self._values[key] = tuple(f(obj) for f in fns)
            self._indices[name] = idx

    # ---- reading -------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items.keys())

    def by_index(self, name: str, value: str) -> list[Obj]:
        with self._lock:
            keys = self._indices.get(name, {}).get(value, ())
            return [self._items[k] for k in keys if k in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = 10.0) -> bool:
        return self._synced.wait(timeout)

    # ---- running -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"informer-{self.resource}")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        s = self._stream
        if s is not None:
            s.close()

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                need_list = self._watch()
            except ApiError as e:
                if self._stop.is_set():
                    break
                log.warning("informer %s: %s", self.resource, e)
                need_list = e.code == 410 or need_list
                self._stop.wait(0.2)
            except Exception:  # pragma: no cover - keep the informer alive
                if self._stop.is_set():
                    break
                log.exception("informer %s failed; relisting", self.resource)
                need_list = True
                self._stop.wait(0.5)

    def _relist(self) -> None:
        lst = self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                               field_selector=self.field_selector)
        fresh = {key_of(o): o for o in lst["items"]}
        changes: list[tuple[str, Obj | None, Obj]] = []
        with self._lock:
            old = self._items
            for key, obj in fresh.items():
                prev = old.get(key)
                if prev is None:
                    self._set(key, obj)
                    changes.append(("ADDED", None, obj))
                elif prev.get("metadata", {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    self._set(key, obj)
                    changes.append(("MODIFIED", prev, obj))
            for key in [k for k in old if k not in fresh]:
                gone = self._remove(key)
                if gone is not None:
                    changes.append(("DELETED", None, gone))
            self.last_resource_version = lst["metadata"].get("resourceVersion", "")
        for etype, prev, obj in changes:
            self._notify(etype, prev, obj)
        self._synced.set()

    def _watch(self) -> bool:
        """Follow the watch; return True when a relist is needed."""
        self._stream = stream = self.client.watch(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, resource_version=self.last_resource_version,
            allow_bookmarks=True, read_only=True)   # cached objects are never changed in place
        try:
            for etype, obj in stream:
                if self._stop.is_set():
                    return False
                if etype == "ERROR":
                    return True   # 410 Gone or another failure: start over from a fresh list
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if etype == "BOOKMARK":
                    if rv:
                        self.last_resource_version = rv
                    continue
                self._apply(etype, obj)
                if rv:
                    self.last_resource_version = rv
        finally:
            stream.close()
        return False

    def _apply(self, etype: str, obj: Obj) -> None:
        key = key_of(obj)
        with self._lock:
            prev = self._items.get(key)
            if etype == "DELETED":
                if prev is None:
                    return
                self._remove(key)
            else:
                self._set(key, obj)
                etype = "ADDED" if prev is None else "MODIFIED"
        # handlers run outside the lock (as client-go's do): a handler that reads another
        # informer must never hold this one's lock, or two informers can deadlock
        self._notify(etype, prev, obj)

    def _notify(self, etype: str, prev: Obj | None, obj: Obj) -> None:
        if etype == "ADDED":
            self._notify_add(obj)
        elif etype == "MODIFIED":
            self._notify_update(prev, obj)
        else:
            self._notify_delete(obj)

    # ---- cache and index maintenance -----------------------------------------
    def _set(self, key: str, obj: Obj) -> None:
        self._items[key] = obj
        values = tuple([fn(obj) for fn in self._indexers.values()])
        old_values = self._values.get(key)
        self._values[key] = values
        if old_values == values:      # most updates (status) move no index entry
            return
        for i, idx in enumerate(self._indices.values()):
            new = values[i]
            if old_values is not None:
                old = old_values[i]
                if old == new:
                    continue
                for v in old:
                    s = idx.get(v)
                    if s is not None:
                        s.discard(key)
                        if not s:
                            del idx[v]
            for v in new:
                s = idx.get(v)
                if s is None:
                    idx[v] = {key}
                else:
                    s.add(key)

    def _remove(self, key: str) -> Obj | None:
        prev = self._items.pop(key, None)
        old_values = self._values.pop(key, None)
        if old_values is not None:
            for i, idx in enumerate(self._indices.values()):
                for v in old_values[i]:
                    s = idx.get(v)
                    if s is not None:
                        s.discard(key)
                        if not s:
                            del idx[v]
        return prev

    def _notify_add(self, obj: Obj) -> None:
        for on_add, _, _ in self._handlers:
            if on_add:
                _safe(on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for _, on_update, _ in self._handlers:
            if on_update:
                _safe(on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for _, _, on_delete in self._handlers:
            if on_delete:
                _safe(on_delete, obj)


def _safe(fn: Handler, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # a handler bug must not stop the informer
        log.exception("informer handler %r failed", fn)


class InformerFactory:
    """Shares informers between the components of one process."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[Any, ...], Informer] = {}
        self._lock = threading.Lock()
        self._started = False

    def informer(self, resource: str, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None) -> Informer:
        from kbox.api.resources import lookup
        info = lookup(resource)
        plural = info.plural if info else resource
        key = (plural, namespace, label_selector, field_selector)
        with self._lock:
            inf = self._informers.get(key)
            if inf is None:
                inf = self._informers[key] = Informer(self.client, plural, namespace,
                                                      label_selector=label_selector,
                                                      field_selector=field_selector)
                if plural == "pods":
                    inf.add_index("node", node_name_index)
                inf.add_index("namespace", namespace_index)
                inf.add_index("controller", controller_uid_index)
                if self._started:
                    inf.start()
            return inf

    def start(self) -> None:
        with self._lock:
            self._started = True
            informers = list(self._informers.values())
        for inf in informers:
            inf.start()

    def wait_for_sync(self, timeout: float = 10.0) -> bool:
        with self._lock:
            informers = list(self._informers.values())
        return all(inf.wait_for_sync(timeout) for inf in informers)

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()
