"""The composition root: builds and starts every part of one cluster.

`Cluster(config)` is how the CLI, the dashboard, scripts and tests all get a
cluster: store → API server (+ HTTP) → informers → controller manager →
scheduler → node agents on a runtime. Nothing else wires parts together, and
nothing here is a module-level singleton, so several clusters can live in one
process (tests do that).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.clock import Clock, RealClock
from kbox.config import ClusterConfig
from kbox.store import Store, open_store

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self, config: ClusterConfig | None = None, *, clock: Clock | None = None,
                 store: Store | None = None, serve_http: bool = True,
                 runtime: str | None = None, secure: bool = True,
                 credentials_dir: str | None = None) -> None:
        self.config = config or ClusterConfig()
        self.clock = clock or RealClock()
        self.rng = random.Random(self.config.seed)
        self.runtime_name = runtime or (self.config.runtime if self.config.runtime != "auto" else "sim")
        # history beyond the last 10,000 writes is compacted away (kube-apiserver compacts
        # every 5 minutes; a bound on count keeps memory flat under load). Clients resume
        # watches from the API's watch caches (10,000 events per resource), so the store's
        # own history only has to cover those caches' single watches.
        store_opts = {"history_limit": 10000} if self.config.store == "memory" else {}
        self.store = store or open_store(self.config.store, data_dir=self.config.data_dir,
                                         clock=self.clock, **store_opts)
        from kbox.api.server import seed_from
        self._scheduler_seed = seed_from(self.rng, "scheduler")
        self.api = ApiServer(self.store, self.clock, rng=self.rng,
                             event_ttl_seconds=self.config.event_ttl_seconds)
        self.client = InProcessClient(self.api)
        self.serve_http = serve_http
        self.http = None
        # HTTPS with bearer tokens (kbox.api.auth). The CLI keeps the credentials in the
        # cluster's state folder, so kubeconfigs stay valid across restarts; an in-process
        # cluster without a folder gets a temporary one, removed at stop.
        self.secure = secure
        self.credentials_dir = credentials_dir
        self.credentials = None
        self.token_signer = None
        self._temp_credentials: str | None = None
        self.informers = None
        self.machines = None
        self.on_progress = None    # callable(str): boot progress for the CLI and dashboard
        self.controllers = None
        self.scheduler = None
        self.nodes = None
        self.host_ports = None     # docker: listeners on 127.0.0.1 for LoadBalancer / NodePort
        self._housekeeping_stop = threading.Event()
        self._started = False

    # ---- lifecycle ---------------------------------------------------------
    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> "Cluster":
        from kbox.api.admission import default_admission
        from kbox.controllers.informer import InformerFactory
        from kbox.controllers.manager import ControllerManager
        from kbox.node.pool import NodePool
        from kbox.scheduler import Scheduler

        self.api.bootstrap()
        self.api.admission.extend(default_admission(self.config, self.clock))
        if self.serve_http:
            from kbox.api.http import HttpServer
            self.http = HttpServer(self.api, host=self.config.api_host, port=self.config.api_port,
                                   extra_routes=self._kbox_routes(), **self._security())
            self.http.start()
        self.informers = InformerFactory(self.client)
        if self.runtime_name == "docker":
            # reach Services from the host: 127.0.0.1:PORT -> a Ready node's node port
            from kbox.runtime.hostports import HostPorts, machine_address
            self.host_ports = HostPorts(node_address=lambda node: machine_address(self.machines, node)
                                        if self.machines is not None else None)
        self.controllers = ControllerManager(self.client, self.informers, self.clock, self.config,
                                             host_ports=self.host_ports)
        # the scheduler's tie-breaks draw from a stream of their own (seeded from the cluster's)
        self.scheduler = Scheduler(self.client, self.informers, self.clock, config=self.config,
                                   rng=random.Random(self._scheduler_seed))
        self.machines = self._boot_machines() if self.runtime_name == "docker" else None
        self.nodes = NodePool(self.client, self.informers, self.clock, self.config,
                              runtime=self.runtime_name, api=self.api, machines=self.machines)
        self.informers.start()
        self.informers.wait_for_sync()
        self.controllers.start()
        self.scheduler.start()
        self.nodes.start()
        for spec in self.config.node_specs():
            self.nodes.add_node(spec)
        threading.Thread(target=self._housekeeping, daemon=True, name="housekeeping").start()
        self._started = True
        if wait_ready and self.config.node_specs():
            self.wait_nodes_ready(timeout)
        return self

    def _security(self) -> dict[str, Any]:
        if not self.secure:
            return {}
        import tempfile

        from kbox.api.auth import Authenticator, Credentials, authorize, request_info
        directory = self.credentials_dir
        if directory is None:
            directory = self._temp_credentials = tempfile.mkdtemp(prefix="kbox-pki-")
        self.credentials = creds = Credentials.ensure(directory)
        self.token_signer = creds.token_signer()
        return {"ssl_certfile": creds.cert_path, "ssl_keyfile": creds.key_path,
                "authenticator": Authenticator(creds, self._service_account_of,
                                               signer=self.token_signer, account_uid=self._account_uid,
                                               now=self.clock.now),
                "authorizer": lambda user, method, path, query: authorize(
                    user, request_info(method, path, query))}

    def _service_account_of(self, token: str) -> tuple[str, str] | None:
        tokens = self.controllers.get("token-controller") if self.controllers else None
        return tokens.find_token(token) if tokens is not None else None  # type: ignore[attr-defined]

    def _account_uid(self, namespace: str, name: str) -> str | None:
        """The uid of a ServiceAccount, from the informer cache (a bound token is good only
        while its account lives)."""
        if self.informers is None:
            return None
        sa = self.informers.informer("serviceaccounts").get(f"{namespace}/{name}")
        return sa["metadata"].get("uid") if sa else None

    def _token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        from kbox.api.auth import token_request
        if self.token_signer is None:
            from kbox.api import errors
            raise errors.not_found("serviceaccounts/token", name)
        return token_request(self.client, self.token_signer, self.clock.now(), namespace, name, body)

    def http_client(self, token: str | None = None):
        """An HTTP client of this cluster's API, with the admin token (or `token`) and its CA."""
        from kbox.api.httpclient import HttpClient
        if self.url is None:
            raise RuntimeError("this cluster serves no HTTP API")
        if self.credentials is None:
            return HttpClient(self.url, token=token)
        return HttpClient(self.url, token=token or self.credentials.admin_token,
                          verify=self.credentials.ca_path)

    def _boot_machines(self):
        """Docker nodes: images, network, and every node container booted in parallel.
        Without a data dir nothing could re-adopt an earlier run's nodes: start clean."""
        from concurrent.futures import ThreadPoolExecutor

        from kbox.runtime.dind import NodeMachines, remove_cluster
        machines = NodeMachines(self.config)
        if not self.config.data_dir:
            remove_cluster(machines.client, self.config.name)
        machines.prepare(self.progress)
        names = [s.name for s in self.config.node_specs()]
        if names:
            with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
                list(pool.map(lambda n: machines.ensure(n, self.progress), names))
        return machines

    def progress(self, message: str) -> None:
        """Boot steps worth telling a person about (image builds, node containers)."""
        log.info("%s", message)
        if self.on_progress is not None:
            self.on_progress(message)

    def stop(self) -> None:
        self._housekeeping_stop.set()
        for part in (self.nodes, self.scheduler, self.controllers, self.host_ports, self.informers,
                     self.http):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # keep stopping the rest
                    log.exception("stopping %s failed", type(part).__name__)
        self.api.stop()
        self.store.close()
        if self._temp_credentials is not None:
            import shutil
            shutil.rmtree(self._temp_credentials, ignore_errors=True)
        if self.machines is not None and not self.config.data_dir:
            # nothing could re-adopt these nodes: remove them (with a data dir they keep
            # running, and the next `kbox up` adopts them; `kbox down` removes them)
            try:
                self.machines.down()
            except Exception:
                log.exception("removing the node containers failed")

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _housekeeping(self) -> None:
        """Expire store leases (events' TTL) and compact old history, as kube-apiserver does;
        keep the garbage collector off the cluster's long-lived objects (kbox.gcpolicy)."""
        from kbox.gcpolicy import GcPolicy

        last_compact = self.clock.monotonic()
        gc_policy = GcPolicy()
        while not self._housekeeping_stop.wait(1.0):
            try:
                gc_policy.tick()
                expire = getattr(self.store, "expire_leases", None)
                if expire:
                    expire()
                if self.clock.monotonic() - last_compact > 300:
                    self.store.compact(max(0, self.store.revision - 100000))
                    last_compact = self.clock.monotonic()
            except Exception:
                log.exception("housekeeping failed")

    # ---- queries -----------------------------------------------------------
    @property
    def url(self) -> str | None:
        return self.http.url if self.http else None

    def wait_nodes_ready(self, timeout: float = 30.0) -> None:
        want = {s.name for s in self.config.node_specs()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.client.list("nodes")["items"]
            ready = {n["metadata"]["name"] for n in nodes
                     if any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (n.get("status") or {}).get("conditions") or [])}
            if want <= ready:
                return
            time.sleep(0.05)
        raise TimeoutError(f"nodes not Ready after {timeout:.0f}s: {sorted(want)}")

    def status(self) -> dict[str, Any]:
        nodes = self.client.list("nodes")["items"]
        pods = self.client.list("pods")["items"]
        return {"name": self.config.name, "runtime": self.runtime_name, "url": self.url,
                "nodes": len(nodes), "pods": len(pods), "revision": self.store.revision}

    # ---- kbox's own node operations (not Kubernetes API) -------------------
    def _kbox_routes(self) -> dict[str, Any]:
        """Handlers for /kbox/v1/... that the HTTP server exposes: node add/remove/stop/start."""
        return {"node": self.node_action, "status": lambda: self.status(),
                "token": self._token_request}

    def node_action(self, action: str, name: str, **kw: Any) -> dict[str, Any]:
        from kbox.config import NodeSpec
        assert self.nodes is not None
        if action == "add":
            spec = NodeSpec(name=name, cpu=kw.get("cpu") or self.config.nodes.cpu,
                            memory=kw.get("memory") or self.config.nodes.memory,
                            pods=int(kw.get("pods") or self.config.nodes.pods))
            self.nodes.add_node(spec)
        elif action == "remove":
            self.nodes.remove_node(name)
        elif action == "stop":
            self.nodes.stop_node(name)
        elif action == "start":
            self.nodes.start_node(name)
        elif action == "kill":
            self.nodes.kill_node(name)
        else:
            raise ValueError(f"unknown node action {action!r} (add, remove, stop, start, kill)")
        return {"node": name, "action": action, "status": "ok"}
