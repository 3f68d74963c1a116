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
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

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
        from kbox.gcpolicy import limit_malloc_arenas
        limit_malloc_arenas()      # before the control plane's threads start (kbox.gcpolicy)
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
                             event_ttl_seconds=self.config.event_ttl_seconds,
                             service_cidr=self.config.networking.service_subnet)
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
        self.dns = None            # the cluster DNS server (kbox.dns), CoreDNS's place
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
            from kbox.runtime.hostports import HostPorts
            self.host_ports = HostPorts(node_address=lambda node: self.machines.node_ip(node)
                                        if self.machines is not None else None)
        self.controllers = ControllerManager(self.client, self.informers, self.clock, self.config,
                                             host_ports=self.host_ports)
        # the scheduler's tie-breaks draw from a stream of their own (seeded from the cluster's)
        self.scheduler = Scheduler(self.client, self.informers, self.clock, config=self.config,
                                   rng=random.Random(self._scheduler_seed))
        self.machines = self._boot_machines() if self.runtime_name == "docker" else None
        self.dns = self._start_dns()
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

    def _start_dns(self):
        """The cluster DNS and its Service. Docker clusters: on the host's address on the
        cluster network (the gateway pods reach through their node), port 53; sim clusters:
        on 127.0.0.1 (`networking.dnsPort`, 0 = any free port) for `dig @127.0.0.1 -p PORT`."""
        from kbox.dns import dns_service_ip, start_cluster_dns
        net = self.config.networking
        if self.machines is not None:
            host = self.machines.gateway_ip()
            # 53 taken on that address: any port will do, the Endpoints name it
            ports = [net.dns_port] if net.dns_port else [53, 0]
        else:
            host, ports = "127.0.0.1", [net.dns_port]
        for i, port in enumerate(ports):
            try:
                server = start_cluster_dns(self.informers, host=host, port=port,
                                           nameserver_ip=dns_service_ip(net.service_subnet),
                                           reverse_ranges=(net.service_subnet, net.pod_subnet))
                break
            except OSError as e:
                if i == len(ports) - 1:
                    raise
                log.warning("%s; trying another port", e)
        self._ensure_dns_service(server.host if self.machines is not None else None, server.port)
        self.progress(f"cluster DNS at {server.address}")
        return server

    def _ensure_dns_service(self, endpoint_ip: str | None, port: int) -> None:
        """kube-system/kube-dns as kubeadm makes it (10.96.0.10, dns 53/UDP, dns-tcp 53/TCP),
        without a selector: its Endpoints name kbox's own DNS server, so kube-proxy sends
        10.96.0.10:53 there from every node. On sim nodes the server listens on 127.0.0.1,
        which is no pod's or node's address (Kubernetes refuses loopback endpoints) and no
        pod could reach: the Endpoints stay empty, honestly, and `kbox status` says where
        the server is."""
        from kbox.dns import DNS_SERVICE_NAME, DNS_SERVICE_NAMESPACE, dns_service_ip
        ns, name = DNS_SERVICE_NAMESPACE, DNS_SERVICE_NAME
        labels = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                  "kubernetes.io/name": "CoreDNS"}
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"clusterIP": dns_service_ip(self.config.networking.service_subnet),
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                   "targetPort": 53}]}}
        with self._own_uids("kube-dns"):
            self._create_or_update_dns(svc, labels, endpoint_ip, port)

    @contextmanager
    def _own_uids(self, purpose: str) -> Iterator[None]:
        """Objects kbox makes for itself take their uids from a stream of their own, so a
        seeded cluster gives the user's objects the same uids whatever kbox adds."""
        from kbox.api.server import seed_from
        own = random.Random(seed_from(self.rng, purpose))
        shared = self.api.uid_factory
        self.api.uid_factory = lambda: str(uuid.UUID(int=own.getrandbits(128), version=4))
        try:
            yield
        finally:
            self.api.uid_factory = shared

    def _create_or_update_dns(self, svc: dict[str, Any], labels: dict[str, str],
                              endpoint_ip: str | None, port: int) -> None:
        from kbox.api.errors import ApiError
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        # a restarted cluster (--data-dir, or adopting docker nodes) has it already; creating
        # it again would fail on its address (taken by itself), not with AlreadyExists
        try:
            self.client.get("services", name, ns)
        except ApiError as e:
            if e.code != 404:
                raise
            try:
                self.client.create("services", svc, ns)
            except ApiError as e2:
                if e2.code != 409:
                    raise
        subsets = [{"addresses": [{"ip": endpoint_ip}],
                    "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                              {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}] \
            if endpoint_ip else []
        for _ in range(5):          # create, or bring an earlier run's up to date
            try:
                cur = self.client.get("endpoints", name, ns)
            except ApiError as e:
                if e.code != 404:
                    raise
                try:
                    self.client.create("endpoints", {
                        "apiVersion": "v1", "kind": "Endpoints",
                        "metadata": {"name": name, "namespace": ns, "labels": labels},
                        "subsets": subsets}, ns)
                    return
                except ApiError as e2:
                    if e2.code != 409:
                        raise
                    continue
            if (cur.get("subsets") or []) == subsets:
                return
            try:
                self.client.update("endpoints", {**cur, "subsets": subsets}, ns)
                return
            except ApiError as e:
                if e.code != 409:
                    raise

    def progress(self, message: str) -> None:
        """Boot steps worth telling a person about (image builds, node containers)."""
        log.info("%s", message)
        if self.on_progress is not None:
            self.on_progress(message)

    def stop(self) -> None:
        self._housekeeping_stop.set()
        for part in (self.nodes, self.dns, self.scheduler, self.controllers, self.host_ports,
                     self.informers, self.http):
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
        with GcPolicy() as gc_policy:
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
                "dns": self.dns.address if self.dns is not None else None,
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
