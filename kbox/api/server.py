"""The API server core: the generic registry every resource goes through.

`ApiServer` is kube-apiserver without HTTP: create, get, list, update,
update_status, patch, delete and watch for every resource in the resource
table, plus the subresources (status, scale, binding, eviction, log, exec,
finalize). The HTTP server (`kbox.api.http`) and the in-process client
(`kbox.api.client`) both call these methods, so both behave identically.

What is generic lives here: names and generateName, uid, timestamps,
resourceVersion concurrency through the store's compare-and-swap,
generation, the status split, finalizers and deletionTimestamp, graceful pod
deletion, propagation policies, admission plugins, size limits. What is
particular to a kind lives in its Strategy (`kbox.api.strategy`).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import uuid
from typing import Any, Callable, Iterator, Protocol

import orjson

from kbox.api import errors
from kbox.api.cache import CachedObject, WatchCache, Watcher
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, dumps_kept
from kbox.api.resources import RESOURCES, ResourceInfo, lookup
from kbox.api.selectors import (FieldSelector, LabelSelector, parse_field_selector,
                                parse_label_selector, selector_to_string)
from kbox.api.strategy import Strategy, strategy_for
from kbox.clock import Clock, RealClock, iso_time
from kbox.store import (KeyExistsError, KeyNotFoundError, RevisionMismatchError, Store)

log = logging.getLogger(__name__)

MAX_OBJECT_BYTES = 1536 * 1024          # etcd's default request limit, 1.5 MiB
NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # Kubernetes' generateName alphabet
DEFAULT_GRACE_SECONDS = 30
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class NodeEndpoint(Protocol):
    """What a node agent offers the API server for pods/log and pods/exec (the kubelet API)."""

    def logs(self, pod: Obj, container: str, *, follow: bool, previous: bool,
             tail_lines: int | None, timestamps: bool, since_seconds: int | None,
             stop: threading.Event | None) -> Iterator[str]: ...

    def exec(self, pod: Obj, container: str, command: list[str], *,
             stdin: bytes | None, tty: bool) -> tuple[int, bytes, bytes]: ...

    # optional (an endpoint without them gets a one-shot exec behind the stream):
    # exec_stream(pod, container, command, *, stdin: bool, tty: bool) -> ExecSession
    # attach(pod, container, *, stdin: bool, tty: bool) -> ExecSession


Admission = Callable[[str, ResourceInfo, Obj, "Obj | None"], None]
"""An admission plugin: (operation CREATE/UPDATE/DELETE, resource, object, old object).

It may change the object in place (mutating) or raise ApiError (validating).
"""


def seed_from(rng: random.Random, purpose: str) -> str:
    """A seed for a stream of its own, derived from `rng`'s state without drawing from it (so
    the numbers `rng` gives everyone else stay as they were)."""
    return hashlib.sha256(f"{purpose}:{rng.getstate()!r}".encode()).hexdigest()


class ApiServer:
    def __init__(self, store: Store, clock: Clock | None = None, *,
                 rng: random.Random | None = None, max_object_bytes: int = MAX_OBJECT_BYTES,
                 event_ttl_seconds: float = 3600.0, service_cidr: str = "10.96.0.0/12") -> None:
        import kbox.api.kinds  # noqa: F401  (registers every kind's strategy)

        self.store = store
        self.clock = clock or RealClock()
        self.rng = rng or random.Random()
        # generated names come from one stream per resource, seeded once from `rng`: the pods
        # a ReplicaSet creates get the same names in every run of a seeded cluster, however
        # the events, leases and tokens other threads create at the same time interleave
        self._name_seed = seed_from(self.rng, "names")
        self._name_rngs: dict[str, random.Random] = {}
        self.max_object_bytes = max_object_bytes
        self.event_ttl_seconds = event_ttl_seconds
        # Services' cluster IPs come from here (networking.serviceSubnet; kube-apiserver's
        # --service-cluster-ip-range)
        self.service_cidr = service_cidr
        self.admission: list[Admission] = []
        self.node_endpoints: dict[str, NodeEndpoint] = {}
        self._caches: dict[str, WatchCache] = {}
        self._caches_lock = threading.Lock()
        self._event_lease: tuple[int, float] | None = None
        self.uid_factory: Callable[[], str] = lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---- lifecycle ---------------------------------------------------------
    def bootstrap(self) -> None:
        """Create the namespaces every cluster starts with."""
        for ns in INITIAL_NAMESPACES:
            try:
                self.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": ns}})
            except ApiError as e:
                if e.code != 409:
                    raise

    def stop(self) -> None:
        with self._caches_lock:
            caches = list(self._caches.values())
            self._caches.clear()
        for c in caches:
            c.stop()

    def cache(self, info: ResourceInfo) -> WatchCache:
        c = self._caches.get(info.plural)
        if c is None:
            with self._caches_lock:
                c = self._caches.get(info.plural)
                if c is None:
                    c = self._caches[info.plural] = WatchCache(self.store, info)
        return c

    # ---- helpers -----------------------------------------------------------
    @staticmethod
    def resource(name: str | ResourceInfo) -> ResourceInfo:
        if isinstance(name, ResourceInfo):
            return name
        info = lookup(name)
        if info is None:
            raise errors.ApiError(404, "NotFound", f"the server could not find the requested resource ({name})")
        return info

    def _ns(self, info: ResourceInfo, namespace: str | None) -> str | None:
        if not info.namespaced:
            return None
        return namespace or "default"

    def _decode(self, kv) -> Obj:
        obj = orjson.loads(kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    def _encode(self, info: ResourceInfo, obj: Obj) -> bytes:
        m = obj.get("metadata") or {}
        rv = m.pop("resourceVersion", None)
        try:
            data = dumps_kept(obj)
        finally:
            if rv is not None:
                m["resourceVersion"] = rv
        if len(data) > self.max_object_bytes:
            raise errors.too_large(
                f"Request entity too large: {info.kind} {m.get('name', '')!r} is {len(data)} "
                f"bytes; the limit is {self.max_object_bytes} bytes (1.5 MiB)")
        return data

    def _read(self, info: ResourceInfo, namespace: str | None, name: str):
        kv = self.store.get(info.key(namespace, name))
        if kv is None:
            raise errors.not_found(info.plural, name, info.group)
        return kv

    def _check_kind(self, info: ResourceInfo, obj: Obj) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != info.kind:
            raise errors.bad_request(
                f"the object provided is unrecognized (kind {kind!r} does not match the "
                f"resource {info.group_resource!r}, which holds {info.kind})")
        if api_version and api_version != info.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({info.api_version})")
        obj["kind"], obj["apiVersion"] = info.kind, info.api_version
        if not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("metadata: must be an object")
        obj.setdefault("metadata", {})

    def _validate(self, info: ResourceInfo, strategy: Strategy, obj: Obj, old: Obj | None) -> None:
        from kbox.api.validation import validate_metadata
        causes = validate_metadata(info, obj, old) + strategy.validate(obj, old)
        if causes:
            raise errors.invalid(info.kind, obj["metadata"].get("name", ""), causes, info.group)

    def _admit(self, op: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        # a strategy may need this server's state (e.g. Service clusterIP/nodePort allocation)
        hook = getattr(strategy_for(info), "admit", None)
        if hook is not None:
            hook(self, op, obj, old)
        for plugin in self.admission:
            plugin(op, info, obj, old)

    def _namespace_lifecycle(self, info: ResourceInfo, namespace: str | None) -> None:
        """Refuse new objects in a missing or terminating namespace (NamespaceLifecycle)."""
        if not info.namespaced:
            return
        key = f"/registry/namespaces/{namespace}"
        # as kube-apiserver's admission plugin: the namespace from the watch cache (no read
        # and decode per create), and from the store only when the cache has not seen it
        cache = self._caches.get("namespaces")
        cached = cache.objects.get(key) if cache is not None else None
        if cached is not None:
            ns = cached.obj
        else:
            kv = self.store.get(key)
            if kv is None:
                raise errors.not_found("namespaces", namespace or "")
            ns = orjson.loads(kv.value)
        if ns.get("metadata", {}).get("deletionTimestamp"):
            raise errors.forbidden(
                f"{info.plural} is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated", None, info.plural, info.group)

    def _event_lease_id(self) -> int:
        """Events expire after event_ttl_seconds; one store lease serves a minute of events."""
        now = self.clock.monotonic()
        if self._event_lease is None or now - self._event_lease[1] > 60:
            lease = self.store.grant_lease(self.event_ttl_seconds + 60)
            self._event_lease = (lease, now)
        return self._event_lease[0]

    # ---- reads -------------------------------------------------------------
    def get(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> Obj:
        info = self.resource(resource)
        return self._decode(self._read(info, self._ns(info, namespace), name))

    def matcher(self, info: ResourceInfo, namespace: str | None, label_selector: str | None,
                field_selector: str | None) -> tuple[Callable[[Obj], bool], str | None]:
        """Build the predicate for list/watch; also returns a spec.nodeName to index on."""
        strategy = strategy_for(info)
        labels: LabelSelector = parse_label_selector(label_selector)
        allowed = {"metadata.name", "metadata.namespace"} | set(strategy.field_labels)
        fields: FieldSelector = parse_field_selector(field_selector, allowed, info.plural)
        ns = namespace if info.namespaced else None

        def matches(obj: Obj) -> bool:
            m = obj.get("metadata") or {}
            if ns and m.get("namespace") != ns:
                return False
            if not labels.empty and not labels.matches(m.get("labels")):
                return False
            if not fields.empty and not fields.matches(lambda f: strategy.field_value(obj, f)):
                return False
            return True

        # a watcher that takes everything need not look inside (decode) each object
        matches.matches_all = not ns and labels.empty and fields.empty  # type: ignore[attr-defined]
        node = fields.equality_value("spec.nodeName") if info.plural == "pods" else None
        return matches, node

    def list(self, resource: str | ResourceInfo, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int | None = None, continue_token: str | None = None,
             resource_version: str | None = None, shared: bool = False) -> Obj:
        """A list (kind XList). shared=True: the items are the watch cache's own objects,
        not copies (cheaper for read-only uses such as Table printing: never mutate them)."""
        info = self.resource(resource)
        matches, _ = self.matcher(info, namespace, label_selector, field_selector)
        cache = self.cache(info)
        items, rev = cache.items_sorted()
        start = ""
        if continue_token:
            start = _decode_continue(continue_token)
        prefix = info.prefix(namespace if info.namespaced else None)
        out: list[Obj] = []
        last_key = ""
        remaining = 0
        selecting = bool(label_selector or field_selector)   # the key prefix has the namespace
        for key, cobj in items:
            if not key.startswith(prefix) or (start and key <= start):
                continue
            if selecting and not matches(cobj.obj):
                continue
            if limit and len(out) >= limit:
                remaining += 1
                continue
            out.append(cobj.obj if shared else orjson.loads(cobj.raw))
            last_key = key
        next_key = last_key if remaining else None
        meta: dict[str, Any] = {"resourceVersion": str(rev)}
        if next_key is not None:
            meta["continue"] = _encode_continue(next_key, rev)
            meta["remainingItemCount"] = remaining
        return {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta,
                "items": out}

    def list_cached(self, resource: str | ResourceInfo) -> tuple[list[CachedObject], int]:
        """Every object of a resource straight from the watch cache (shared: do not mutate)."""
        return self.cache(self.resource(resource)).snapshot()

    def watch(self, resource: str | ResourceInfo, namespace: str | None = None, *,
              label_selector: str | None = None, field_selector: str | None = None,
              resource_version: str | None = None, allow_bookmarks: bool = False,
              send_initial_events: bool = False) -> Watcher:
        """Start a watch. Unset or "0" resourceVersion: current objects as ADDED first."""
        info = self.resource(resource)
        matches, node = self.matcher(info, namespace, label_selector, field_selector)
        since: int | None
        if resource_version in (None, "", "0"):
            since = None
        else:
            try:
                since = int(resource_version)  # type: ignore[arg-type]
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {resource_version!r}")
        return self.cache(info).add_watcher(matches, since=since, node_name=node,
                                            bookmarks=allow_bookmarks,
                                            send_initial=send_initial_events)

    # ---- create ------------------------------------------------------------
    def create(self, resource: str | ResourceInfo, obj: Obj, namespace: str | None = None, *,
               dry_run: bool = False, field_manager: str | None = None) -> Obj:
        info = self.resource(resource)
        self._check_kind(info, obj)
        m = obj["metadata"]
        if info.namespaced:
            body_ns = m.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request")
            m["namespace"] = namespace = namespace or body_ns or "default"
        else:
            m.pop("namespace", None)
            namespace = None
        if m.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not m.get("name") and m.get("generateName"):
            names = self._name_rngs.get(info.plural)
            if names is None:
                names = self._name_rngs.setdefault(info.plural,
                                                   random.Random(f"{self._name_seed}/{info.plural}"))
            m["name"] = m["generateName"] + "".join(names.choice(NAME_SUFFIX_ALPHABET) for _ in range(5))
        strategy = strategy_for(info)
        m["uid"] = self.uid_factory()
        m["creationTimestamp"] = iso_time(self.clock.now())
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            m.pop(f, None)
        if info.has_generation:
            m["generation"] = 1
        strategy.prepare_create(obj)
        strategy.default(obj)
        self._namespace_lifecycle(info, namespace)
        self._admit("CREATE", info, obj, None)
        self._validate(info, strategy, obj, None)
        if field_manager:
            _record_manager(obj, field_manager, "Update", self.clock, info=info)
        data = self._encode(info, obj)
        if dry_run:
            return obj
        lease = self._event_lease_id() if info.plural == "events" else 0
        try:
            kv = self.store.create(info.key(namespace, m["name"]), data, lease=lease)
        except KeyExistsError:
            raise errors.already_exists(info.plural, m["name"], info.group)
        m["resourceVersion"] = str(kv.mod_revision)
        return obj

    # ---- update ------------------------------------------------------------
    def update(self, resource: str | ResourceInfo, obj: Obj, namespace: str | None = None, *,
               subresource: str | None = None, dry_run: bool = False,
               field_manager: str | None = None) -> Obj:
        """PUT: replace the object (or its status / finalize subresource)."""
        info = self.resource(resource)
        self._check_kind(info, obj)
        name = obj["metadata"].get("name")
        if not name:
            raise errors.invalid(info.kind, "", [errors.cause("metadata.name", "name or generateName is required", "FieldValueRequired")], info.group)
        ns = self._ns(info, namespace or obj["metadata"].get("namespace"))
        if info.namespaced and obj["metadata"].get("namespace") not in (None, "", ns):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        want_rv = obj["metadata"].get("resourceVersion") or None
        return self._guaranteed_update(
            info, ns, name, lambda cur: obj, precondition_rv=want_rv, subresource=subresource,
            dry_run=dry_run, field_manager=field_manager, retry=want_rv is None)

    def update_status(self, resource: str | ResourceInfo, obj: Obj,
                      namespace: str | None = None, **kw: Any) -> Obj:
        return self.update(resource, obj, namespace, subresource="status", **kw)

    def _guaranteed_update(self, info: ResourceInfo, namespace: str | None, name: str,
                           mutate: Callable[[Obj], Obj], *, precondition_rv: str | None = None,
                           subresource: str | None = None, dry_run: bool = False,
                           field_manager: str | None = None, retry: bool = True,
                           create_if_missing: bool = False, op: str = "Update",
                           manager_subresource: str | None = None) -> Obj:
        """Read, apply `mutate`, validate and compare-and-swap; retry on races if allowed."""
        strategy = strategy_for(info)
        key = info.key(namespace, name)
        for _attempt in range(32):
            kv = self.store.get(key)
            if kv is None:
                if create_if_missing:
                    new = mutate({})
                    new.setdefault("metadata", {})["name"] = name
                    if namespace:
                        new["metadata"]["namespace"] = namespace
                    # apply already recorded its own managedFields entry
                    return self.create(info, new, namespace, dry_run=dry_run,
                                       field_manager=field_manager if op != "Apply" else None)
                raise errors.not_found(info.plural, name, info.group)
            old = self._decode(kv)
            if precondition_rv is not None and precondition_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(info.plural, name, info.group)
            new = mutate(self._decode(kv))     # a second decode: cheaper than copying `old`
            self._check_kind(info, new)
            new = self._prepare_update(info, strategy, new, old, subresource)
            if field_manager:
                _record_manager(new, field_manager, op, self.clock,
                                subresource=manager_subresource
                                or (subresource if subresource == "status" else None),
                                old=old, info=info)
            if _same(new, old):
                return old  # a no-op update writes nothing, as in Kubernetes
            self._admit("UPDATE", info, new, old)
            self._validate(info, strategy, new, old)
            m = new["metadata"]
            if (m.get("deletionTimestamp") and not m.get("finalizers")
                    and not (new.get("spec") or {}).get("finalizers" if info.plural == "namespaces" else "\0")
                    and self._deletion_done(info, new)):
                if dry_run:
                    return new
                try:
                    self.store.delete(key, kv.mod_revision)
                except (RevisionMismatchError, KeyNotFoundError):
                    if retry:
                        continue
                    raise errors.conflict(info.plural, name, info.group)
                return new
            data = self._encode(info, new)
            if dry_run:
                return new
            try:
                nkv = self.store.update(key, data, kv.mod_revision, lease=kv.lease)
            except (RevisionMismatchError, KeyNotFoundError):
                if retry and precondition_rv is None:
                    continue
                raise errors.conflict(info.plural, name, info.group)
            m["resourceVersion"] = str(nkv.mod_revision)
            return new
        raise errors.conflict(info.plural, name, info.group, "too many concurrent updates")

    def _prepare_update(self, info: ResourceInfo, strategy: Strategy, new: Obj, old: Obj,
                        subresource: str | None) -> Obj:
        om, nm = old["metadata"], new.setdefault("metadata", {})
        # identity and server-owned metadata never change through an update
        for f in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if f in om:
                nm[f] = om[f]
            else:
                nm.pop(f, None)
        nm["resourceVersion"] = om["resourceVersion"]
        if subresource == "status":
            status = new.get("status")
            # everything but the status stays as it was. Not a deep copy of `old` (a third
            # one, on the busiest write path): its top level, metadata and managedFields
            # entries are copied, what an update writes to; the rest is shared with `old`,
            # which is only read from here on.
            new = {**old, "metadata": dict(om)}
            if "managedFields" in om:
                new["metadata"]["managedFields"] = [dict(e) for e in om["managedFields"]]
            if status is not None:
                new["status"] = status
            else:
                new.pop("status", None)
            strategy.prepare_status_update(new, old)
            return new
        if subresource == "finalize":
            spec_fin = (new.get("spec") or {}).get("finalizers")
            new = deep_copy(old)
            new.setdefault("spec", {})["finalizers"] = spec_fin or []
            if not spec_fin:
                new["spec"].pop("finalizers")
            return new
        if info.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        strategy.prepare_update(new, old)
        strategy.default(new)
        if info.has_generation and _spec_of(new) != _spec_of(old):
            nm["generation"] = int(om.get("generation") or 0) + 1
        return new

    def _deletion_done(self, info: ResourceInfo, obj: Obj) -> bool:
        """Pods wait for their kubelet (grace 0) even when finalizers are gone."""
        if info.plural == "pods":
            return int(obj["metadata"].get("deletionGracePeriodSeconds") or 0) == 0 \
                or not (obj.get("spec") or {}).get("nodeName")
        return True

    # ---- patch -------------------------------------------------------------
    def patch(self, resource: str | ResourceInfo, name: str, patch: Any,
              patch_type: str = "merge", namespace: str | None = None, *,
              subresource: str | None = None, field_manager: str | None = None,
              force: bool = False, dry_run: bool = False) -> Obj:
        """Patch types: json, merge, strategic, apply (server-side apply)."""
        from kbox.api import patch as patching

        info = self.resource(resource)
        ns = self._ns(info, namespace)
        if subresource == "scale":
            return self._patch_scale(info, ns, name, patch, patch_type, field_manager)
        if patch_type == "apply":
            if not field_manager:
                raise errors.bad_request("PATCH, application/apply-patch+yaml requests must set a fieldManager")
            def apply_mutate(cur: Obj) -> Obj:
                try:
                    return patching.apply_patch(info, cur, patch, field_manager, force,
                                                self.clock, subresource=subresource)
                except patching.PatchError as e:
                    raise errors.ApiError(422 if e.invalid else 400,
                                          "Invalid" if e.invalid else "BadRequest", str(e))
            return self._guaranteed_update(
                info, ns, name, apply_mutate,
                subresource=subresource, dry_run=dry_run, create_if_missing=True, op="Apply")
        rv_in_patch = None
        if isinstance(patch, dict):
            rv_in_patch = (patch.get("metadata") or {}).get("resourceVersion")

        def mutate(cur: Obj) -> Obj:
            try:
                return patching.apply(info, cur, patch, patch_type)
            except patching.PatchError as e:
                raise errors.ApiError(422 if e.invalid else 400,
                                      "Invalid" if e.invalid else "BadRequest", str(e))

        return self._guaranteed_update(info, ns, name, mutate, precondition_rv=rv_in_patch,
                                       subresource=subresource, dry_run=dry_run,
                                       field_manager=field_manager)

    # ---- delete ------------------------------------------------------------
    def delete(self, resource: str | ResourceInfo, name: str, namespace: str | None = None, *,
               propagation_policy: str | None = None, grace_period_seconds: int | None = None,
               preconditions: dict[str, str] | None = None, dry_run: bool = False) -> Obj:
        """Delete, or start a graceful / finalizer-gated deletion. Returns the object."""
        info = self.resource(resource)
        ns = self._ns(info, namespace)
        key = info.key(ns, name)
        if propagation_policy not in (None, "", "Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "", [errors.cause(
                "propagationPolicy", f'Unsupported value: "{propagation_policy}": supported values: "Foreground", "Background", "Orphan", "nil"', "FieldValueNotSupported")])
        if grace_period_seconds is not None and grace_period_seconds < 0:
            grace_period_seconds = 0
        for _attempt in range(32):
            kv = self.store.get(key)
            if kv is None:
                raise errors.not_found(info.plural, name, info.group)
            obj = self._decode(kv)
            m = obj["metadata"]
            if preconditions:
                if preconditions.get("uid") and preconditions["uid"] != m.get("uid"):
                    raise errors.conflict(info.plural, name, info.group,
                                          f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {m.get('uid')}")
                if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != m["resourceVersion"]:
                    raise errors.conflict(info.plural, name, info.group,
                                          f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, ResourceVersion in object meta: {m['resourceVersion']}")
            self._admit("DELETE", info, obj, obj)
            finalizers = list(m.get("finalizers") or [])
            if propagation_policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if propagation_policy in ("Background", "Foreground"):
                finalizers = [f for f in finalizers if f != "orphan"]
            if propagation_policy in ("Background", "Orphan"):
                finalizers = [f for f in finalizers if f != "foregroundDeletion"]
            graceful = self._graceful_seconds(info, obj, grace_period_seconds)
            spec_finalizers = (obj.get("spec") or {}).get("finalizers") if info.plural == "namespaces" else None
            pending = bool(finalizers) or bool(spec_finalizers) or graceful > 0
            if not pending:
                if dry_run:
                    return obj
                try:
                    self.store.delete(key, kv.mod_revision)
                except (RevisionMismatchError, KeyNotFoundError):
                    continue
                return obj
            # deletion in progress: mark it, and let finalizers / the kubelet finish it
            new = deep_copy(obj)
            nm = new["metadata"]
            if not nm.get("deletionTimestamp"):
                nm["deletionTimestamp"] = iso_time(self.clock.now() + graceful)
                nm["deletionGracePeriodSeconds"] = graceful
            elif graceful < int(nm.get("deletionGracePeriodSeconds") or 0):
                nm["deletionTimestamp"] = iso_time(self.clock.now() + graceful)
                nm["deletionGracePeriodSeconds"] = graceful
            if finalizers:
                nm["finalizers"] = finalizers
            if info.plural == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            if info.plural == "pods" and graceful == 0 and not finalizers:
                try:
                    self.store.delete(key, kv.mod_revision)
                except (RevisionMismatchError, KeyNotFoundError):
                    continue
                return new
            if _same(new, obj):
                return obj
            if dry_run:
                return new
            try:
                nkv = self.store.update(key, self._encode(info, new), kv.mod_revision, lease=kv.lease)
            except (RevisionMismatchError, KeyNotFoundError):
                continue
            nm["resourceVersion"] = str(nkv.mod_revision)
            return new
        raise errors.conflict(info.plural, name, info.group, "too many concurrent updates")

    def _graceful_seconds(self, info: ResourceInfo, obj: Obj, requested: int | None) -> int:
        if info.plural != "pods":
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0   # nothing runs it: delete at once
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            if obj["metadata"].get("deletionGracePeriodSeconds") is not None:
                requested = min(requested, obj["metadata"]["deletionGracePeriodSeconds"])
        return max(0, int(requested))

    def delete_collection(self, resource: str | ResourceInfo, namespace: str | None = None, *,
                          label_selector: str | None = None, field_selector: str | None = None,
                          propagation_policy: str | None = None,
                          grace_period_seconds: int | None = None) -> Obj:
        info = self.resource(resource)
        lst = self.list(info, namespace, label_selector=label_selector,
                        field_selector=field_selector)
        out = []
        for item in lst["items"]:
            try:
                out.append(self.delete(info, item["metadata"]["name"],
                                       item["metadata"].get("namespace"),
                                       propagation_policy=propagation_policy,
                                       grace_period_seconds=grace_period_seconds))
            except ApiError as e:
                if e.code != 404:
                    raise
        return {"kind": info.list_kind, "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)}, "items": out}

    # ---- subresources ------------------------------------------------------
    def get_scale(self, resource: str | ResourceInfo, name: str, namespace: str | None = None) -> Obj:
        info = self.resource(resource)
        if "scale" not in info.subresources:
            raise errors.not_found(f"{info.plural}/scale", name, info.group)
        obj = self.get(info, name, namespace)
        return _scale_of(obj)

    def update_scale(self, resource: str | ResourceInfo, name: str, scale: Obj,
                     namespace: str | None = None, *, field_manager: str | None = None) -> Obj:
        info = self.resource(resource)
        if "scale" not in info.subresources:
            raise errors.not_found(f"{info.plural}/scale", name, info.group)
        replicas = (scale.get("spec") or {}).get("replicas")
        rv = (scale.get("metadata") or {}).get("resourceVersion") or None
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise errors.invalid("Scale", name, [errors.cause("spec.replicas", "must be an integer", "FieldValueRequired")], "autoscaling")
        if replicas < 0:
            raise errors.invalid("Scale", name, [errors.cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")], "autoscaling")

        def mutate(cur: Obj) -> Obj:
            cur.setdefault("spec", {})["replicas"] = replicas
            return cur
        # the writer owns .spec.replicas from now on (managedFields, subresource "scale"), so
        # a later server-side apply of another count conflicts with it, as in Kubernetes
        obj = self._guaranteed_update(info, self._ns(info, namespace), name, mutate,
                                      precondition_rv=rv, field_manager=field_manager,
                                      manager_subresource="scale")
        return _scale_of(obj)

    def scale(self, resource: str | ResourceInfo, name: str, replicas: int,
              namespace: str | None = None) -> Obj:
        return self.update_scale(resource, name, {"spec": {"replicas": replicas}}, namespace)

    def _patch_scale(self, info: ResourceInfo, ns: str | None, name: str, patch: Any,
                     patch_type: str, field_manager: str | None = None) -> Obj:
        from kbox.api import patch as patching
        cur = self.get_scale(info, name, ns)
        try:
            new = patching.apply(None, cur, patch, "merge" if patch_type in ("strategic", "apply") else patch_type)
        except patching.PatchError as e:
            raise errors.bad_request(str(e))
        new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"] \
            if not (isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion")) \
            else patch["metadata"]["resourceVersion"]
        return self.update_scale(info, name, new, ns, field_manager=field_manager)

    def bind(self, name: str, namespace: str | None, node_name: str, *,
             binding: Obj | None = None) -> Obj:
        """pods/binding: assign a pod to a node (once)."""
        ns = namespace or "default"
        if not node_name:
            raise errors.invalid("Binding", name, [errors.cause("target.name", "Required value", "FieldValueRequired")])
        now = iso_time(self.clock.now())

        def mutate(pod: Obj) -> Obj:
            spec = pod.setdefault("spec", {})
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", name, "", f"pod {name} is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise errors.conflict("pods", name, "", f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
            spec["nodeName"] = node_name
            status = pod.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now})
            status["conditions"] = conds
            return pod
        pods = self.resource("pods")
        # binding writes spec and status together: bypass the status split on purpose
        key = pods.key(ns, name)
        for _ in range(32):
            kv = self.store.get(key)
            if kv is None:
                raise errors.not_found("pods", name)
            pod = self._decode(kv)
            if binding and (binding.get("metadata") or {}).get("uid") and \
                    binding["metadata"]["uid"] != pod["metadata"]["uid"]:
                raise errors.conflict("pods", name, "", "Precondition failed: UID mismatch")
            new = mutate(deep_copy(pod))
            try:
                nkv = self.store.update(key, self._encode(pods, new), kv.mod_revision, lease=kv.lease)
            except (RevisionMismatchError, KeyNotFoundError):
                continue
            new["metadata"]["resourceVersion"] = str(nkv.mod_revision)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "code": 201}
        raise errors.conflict("pods", name)

    def evict(self, name: str, namespace: str | None, *, delete_options: Obj | None = None) -> Obj:
        """pods/eviction: a policy-checked delete (no disruption budgets yet: always allowed)."""
        ns = namespace or "default"
        self.get("pods", name, ns)
        opts = delete_options or {}
        self.delete("pods", name, ns, grace_period_seconds=opts.get("gracePeriodSeconds"),
                    preconditions=opts.get("preconditions"))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}

    def _node_for(self, name: str, namespace: str | None) -> tuple[Obj, NodeEndpoint]:
        pod = self.get("pods", name, namespace)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            raise errors.bad_request(f'pod {name} does not have a host assigned')
        ep = self.node_endpoints.get(node)
        if ep is None:
            raise errors.ApiError(500, "InternalError",
                                  f'Get "https://{node}:10250/containerLogs": node {node} is not reachable')
        return pod, ep

    def _container(self, pod: Obj, container: str | None) -> str:
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        if container:
            if container not in names + init:
                raise errors.bad_request(
                    f"container {container} is not valid for pod {pod['metadata']['name']}")
            return container
        if len(names) == 1:
            return names[0]
        default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default in names:
            return default  # type: ignore[return-value]
        raise errors.bad_request(
            f"a container name must be specified for pod {pod['metadata']['name']}, choose one of: "
            f"[{' '.join(names)}]" + (f" or one of the init containers: [{' '.join(init)}]" if init else ""))

    def logs(self, name: str, namespace: str | None = None, *, container: str | None = None,
             follow: bool = False, previous: bool = False, tail_lines: int | None = None,
             timestamps: bool = False, since_seconds: int | None = None,
             stop: threading.Event | None = None) -> Iterator[str]:
        pod, ep = self._node_for(name, namespace)
        c = self._container(pod, container)
        return ep.logs(pod, c, follow=follow, previous=previous, tail_lines=tail_lines,
                       timestamps=timestamps, since_seconds=since_seconds, stop=stop)

    def exec(self, name: str, namespace: str | None, command: list[str], *,
             container: str | None = None, stdin: bytes | None = None,
             tty: bool = False) -> tuple[int, bytes, bytes]:
        pod, ep, c = self._exec_target(name, namespace, container)
        return ep.exec(pod, c, command, stdin=stdin, tty=tty)

    def exec_stream(self, name: str, namespace: str | None, command: list[str], *,
                    container: str | None = None, stdin: bool = False, tty: bool = False):
        """A streaming exec (kbox.runtime.ExecSession) for pods/exec over WebSocket."""
        from kbox.runtime import BufferedExecSession
        pod, ep, c = self._exec_target(name, namespace, container)
        stream = getattr(ep, "exec_stream", None)
        if stream is not None:
            return stream(pod, c, command, stdin=stdin, tty=tty)
        return BufferedExecSession(lambda data: ep.exec(pod, c, command, stdin=data, tty=tty),
                                   stdin=stdin, tty=tty)

    def attach(self, name: str, namespace: str | None, *, container: str | None = None,
               stdin: bool = False, tty: bool = False):
        """pods/attach: a session that follows the container's output (ExecSession)."""
        pod, ep, c = self._exec_target(name, namespace, container)
        if not hasattr(ep, "attach"):
            raise errors.bad_request(f"node {pod['spec'].get('nodeName')} does not support attach")
        return ep.attach(pod, c, stdin=stdin, tty=tty)

    def port_forward(self, name: str, namespace: str | None, port: int):
        """pods/portforward: a connection to the pod's `port` (ExecSession: stdin in,
        stdout out, stderr and a non-zero code when the connection failed)."""
        pod, ep = self._node_for(name, namespace)
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Running":
            raise errors.bad_request(f"pod {name} is not running (phase {phase})")
        if not hasattr(ep, "port_forward"):
            raise errors.bad_request(f"node {pod['spec'].get('nodeName')} cannot forward ports")
        return ep.port_forward(pod, port)

    def _exec_target(self, name: str, namespace: str | None,
                     container: str | None) -> tuple[Obj, NodeEndpoint, str]:
        """What exec and attach check before they reach the node (kube-apiserver's order:
        the pod, its container, a running phase)."""
        pod, ep = self._node_for(name, namespace)
        c = self._container(pod, container)
        if (pod.get("status") or {}).get("phase") != "Running":
            raise errors.bad_request(
                f"cannot exec into a container in a completed pod; current phase is "
                f"{(pod.get('status') or {}).get('phase')}" if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                else f"unable to upgrade connection: container not found (\"{c}\")")
        return pod, ep, c


# ---- module helpers ---------------------------------------------------------

def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _same(a: Obj, b: Obj) -> bool:
    """Equal apart from resourceVersion and managedFields timestamps."""
    def strip(o: Obj) -> Obj:
        o = dict(o)
        m = dict(o.get("metadata") or {})
        m.pop("resourceVersion", None)
        mf = m.pop("managedFields", None)
        if mf:
            m["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in mf]
        o["metadata"] = m
        return o
    return strip(a) == strip(b)


def _scale_of(obj: Obj) -> Obj:
    m = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector")
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m.get("namespace"), "uid": m.get("uid"),
                     "resourceVersion": m.get("resourceVersion"),
                     "creationTimestamp": m.get("creationTimestamp")},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": selector_to_string(selector) if selector else ""},
    }


def _record_manager(obj: Obj, manager: str, operation: str, clock: Clock,
                    subresource: str | None = None, old: Obj | None = None,
                    info: ResourceInfo | None = None) -> None:
    """Give `manager` the fields this write changed in managedFields (apply records its own)."""
    if operation == "Apply":
        return
    from kbox.api.patch import record_update
    record_update(old, obj, manager, clock, info, subresource)


def _encode_continue(key: str, rev: int) -> str:
    import base64
    return base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": key})).decode()


def _decode_continue(token: str) -> str:
    import base64
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return data["start"]
    except Exception:
        raise errors.bad_request("continue key is not valid: illegal base64 data")


__all__ = ["ApiServer", "NodeEndpoint", "Admission", "RESOURCES"]
