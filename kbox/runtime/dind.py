"""The machines of a docker-runtime cluster: one Docker-in-Docker container per node.

A node is a container `kbox-<cluster>-<node>` on the host engine, from the
node image kbox builds (`kbox.runtime.images`), on a Docker network of the
cluster's own (`kbox-<cluster>`). Its inner dockerd listens on a socket in a
host folder bind-mounted at /kbox; the node's `DockerRuntime` (in this
process) drives that socket. Its inner data lives on a volume
`kbox-<cluster>-<node>-data`, so pods survive a node restart as stopped
containers and a kbox restart as running ones.

Every container, network and volume made here carries the labels
`io.kbox.cluster` and `io.kbox.role`, which is how `kbox up` finds nodes to
re-adopt and how `kbox down` removes exactly one cluster's things.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kbox.config import ClusterConfig, kbox_home
from kbox.runtime import RuntimeError_

log = logging.getLogger(__name__)

LABEL_CLUSTER = "io.kbox.cluster"
LABEL_ROLE = "io.kbox.role"
LABEL_NODE = "io.kbox.node"
ROLE_NODE = "node"
SOCKET_NAME = "docker.sock"
MAX_SOCKET_PATH = 100      # a unix socket path must fit in 108 bytes

Progress = Callable[[str], None]


def host_engine(timeout: float = 10) -> Any:
    """The host's Docker engine (DOCKER_HOST or the default socket), or RuntimeError_ saying so."""
    import docker
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as e:
        raise RuntimeError_(f"no Docker engine answers ({e}); start dockerd or use --runtime sim") from None


def engine_answers() -> bool:
    try:
        host_engine(timeout=3).close()
        return True
    except RuntimeError_:
        return False


class NodeMachines:
    """Create, adopt, kill, start and remove the node containers of one cluster."""

    boot_timeout = 90.0

    def __init__(self, config: ClusterConfig, client: Any | None = None) -> None:
        self.config = config
        self.cluster = config.name
        self.client = client or host_engine()
        self.network = f"kbox-{self.cluster}"
        self.image: str | None = None
        self._lock = threading.Lock()
        self._booted: set[str] = set()   # nodes ensure() has brought up (and loaded) already

    # ---- names ---------------------------------------------------------------------
    def container_name(self, node: str) -> str:
        return f"kbox-{self.cluster}-{node}"

    def volume_name(self, node: str) -> str:
        return f"kbox-{self.cluster}-{node}-data"

    def socket_dir(self, node: str) -> Path:
        d = kbox_home() / "clusters" / self.cluster / "nodes" / node
        if len(str(d / SOCKET_NAME)) > MAX_SOCKET_PATH:
            h = hashlib.sha256(str(d).encode()).hexdigest()[:12]
            d = Path("/tmp") / f"kbox-sock-{h}"
        return d

    def base_url(self, node: str) -> str:
        return f"unix://{self.socket_dir(node) / SOCKET_NAME}"

    def _labels(self, node: str | None = None) -> dict[str, str]:
        out = {LABEL_CLUSTER: self.cluster, LABEL_ROLE: ROLE_NODE}
        if node:
            out[LABEL_NODE] = node
        return out

    # ---- preparing -------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> str:
        """Images (built once per recipe) and the cluster's network; returns the node image."""
        from kbox.runtime.images import ensure_busybox_image, ensure_node_image
        with self._lock:
            if self.image is None:
                ensure_busybox_image(self.client, progress)
                self.image = ensure_node_image(self.client, progress)
            self._ensure_network()
            return self.image

    def _ensure_network(self) -> None:
        import docker.errors
        try:
            self.client.networks.get(self.network)
        except docker.errors.NotFound:
            self.client.networks.create(self.network, driver="bridge", labels=self._labels(),
                                        check_duplicate=True)

    def gateway_ip(self) -> str:
        """The host's own address on the cluster's network (the bridge's gateway): what pods
        reach after their node masquerades them, so kbox's cluster DNS listens there."""
        net = self.client.networks.get(self.network)
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            gw = cfg.get("Gateway") or ""
            if gw and ":" not in gw:
                return gw.split("/")[0]
        raise RuntimeError_(f"the cluster network {self.network} has no IPv4 gateway")

    # ---- one node --------------------------------------------------------------------
    def _find(self, node: str) -> Any | None:
        import docker.errors
        try:
            return self.client.containers.get(self.container_name(node))
        except docker.errors.NotFound:
            return None

    def ensure(self, node: str, progress: Progress | None = None) -> str:
        """The node's machine running with its inner engine answering (adopting one that is
        already there); returns the base_url of the inner engine."""
        if node in self._booted and self.running(node):
            return self.base_url(node)      # booted in parallel before the pool added it
        image = self.prepare(progress)
        c = self._find(node)
        if c is not None and (c.labels or {}).get(LABEL_CLUSTER) != self.cluster:
            raise RuntimeError_(f"a container named {c.name} exists but does not belong to "
                                f"cluster {self.cluster}; remove it or pick another cluster name")
        if c is None:
            c = self._create(node, image)
            if progress:
                progress(f"node {node}: created {c.name}")
        elif c.status != "running":
            if progress:
                progress(f"node {node}: starting {c.name} again")
        else:
            if progress:
                progress(f"node {node}: adopting running {c.name}")
        if c.status != "running":
            c.start()
        self.wait_engine(node)
        self._load_base_images(node)
        self._booted.add(node)
        return self.base_url(node)

    def _create(self, node: str, image: str) -> Any:
        from kbox.runtime.nodeflags import node_container_kwargs
        sock_dir = self.socket_dir(node)
        sock_dir.mkdir(parents=True, exist_ok=True)
        net = self.config.networking
        self.client.volumes.create(self.volume_name(node), labels=self._labels(node))
        kwargs = node_container_kwargs(
            name=self.container_name(node), image=image, network=self.network,
            socket_dir=str(sock_dir), volume=self.volume_name(node), labels=self._labels(node),
            env={"KBOX_CLUSTER_CIDR": net.pod_subnet, "KBOX_SERVICE_CIDR": net.service_subnet,
                 "KBOX_NODE": node},
            hostname=node)
        return self.client.containers.create(**kwargs)

    def inner(self, node: str, timeout: float = 10) -> Any:
        import docker
        return docker.DockerClient(base_url=self.base_url(node), timeout=timeout)

    def wait_engine(self, node: str, timeout: float | None = None) -> None:
        """Until the node's inner dockerd answers; a clear error (with its log) if it never does."""
        deadline = time.monotonic() + (timeout or self.boot_timeout)
        last: Exception | None = None
        while time.monotonic() < deadline:
            c = self._find(node)
            if c is None or c.status == "exited":
                c and c.reload()
                raise RuntimeError_(f"node {node}: its container stopped while booting; "
                                    f"{self._log_tail(node)}")
            try:
                client = self.inner(node, timeout=3)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            except Exception as e:   # not up yet
                last = e
            time.sleep(0.2)
        raise RuntimeError_(f"node {node}: the inner Docker engine did not answer within "
                            f"{timeout or self.boot_timeout:.0f}s ({last}); {self._log_tail(node)}")

    def _log_tail(self, node: str) -> str:
        log_file = self.socket_dir(node) / "dockerd.log"
        try:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            c = self._find(node)
            tail = (c.logs(tail=5).decode(errors="replace").splitlines() if c else [])
        return "last log lines: " + " | ".join(tail) if tail else "no log"

    def _load_base_images(self, node: str) -> None:
        from kbox.runtime.images import BUSYBOX_IMAGE, tag_busybox_aliases
        inner = self.inner(node, timeout=60)
        try:
            load_image(self.client, inner, BUSYBOX_IMAGE)
            tag_busybox_aliases(inner)
        finally:
            inner.close()

    def kill(self, node: str) -> None:
        c = self._find(node)
        if c is not None and c.status == "running":
            c.kill()

    def start(self, node: str) -> None:
        c = self._find(node)
        if c is None:
            raise RuntimeError_(f"node {node} has no machine (container {self.container_name(node)})")
        if c.status != "running":
            c.start()
        self.wait_engine(node)

    def running(self, node: str) -> bool:
        c = self._find(node)
        return c is not None and c.status == "running"

    # ---- inside a node (kube-proxy's iptables, the pod routes) -----------------------
    def node_ip(self, node: str) -> str | None:
        """The node container's address on the cluster's network (its InternalIP)."""
        c = self._find(node)
        nets = ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}) if c else {}
        return (nets.get(self.network) or {}).get("IPAddress") or None

    def node_exec(self, node: str, cmd: list[str]) -> tuple[int, str]:
        """Run `cmd` in the node container itself (not a pod): (exit code, output)."""
        api = self.client.api
        try:
            exec_id = api.exec_create(self.container_name(node), cmd)["Id"]
            out = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
        except Exception as e:
            raise RuntimeError_(f"node {node}: exec {cmd[0]} failed: {e}") from None
        return (code if code is not None else -1), out.decode(errors="replace")

    def node_file(self, node: str, name: str, data: bytes) -> str:
        """Write a file the node sees (through its /kbox folder); its path in the node."""
        d = self.socket_dir(node)
        tmp = d / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(d / name)
        return f"/kbox/{name}"

    def remove(self, node: str) -> None:
        import docker.errors
        self._booted.discard(node)
        c = self._find(node)
        if c is not None:
            c.remove(force=True, v=True)
        try:
            self.client.volumes.get(self.volume_name(node)).remove(force=True)
        except docker.errors.NotFound:
            pass

    # ---- the whole cluster -----------------------------------------------------------
    def down(self) -> dict[str, int]:
        """Remove every container, volume and network of this cluster, and nothing else,
        then the host folders that held the nodes' sockets."""
        gone = remove_cluster(self.client, self.cluster)
        import shutil
        cluster_dir = kbox_home() / "clusters" / self.cluster
        shutil.rmtree(cluster_dir / "nodes", ignore_errors=True)
        try:
            cluster_dir.rmdir()          # only when nothing else (state, pki, log) is left in it
        except OSError:
            pass
        return gone


def remove_cluster(client: Any, cluster: str) -> dict[str, int]:
    """What `kbox down` does on the host engine: everything labelled with this cluster."""
    import docker.errors
    flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
    n_c = n_v = n_n = 0
    for c in client.containers.list(all=True, filters=flt):
        try:
            c.remove(force=True, v=True)
            n_c += 1
        except docker.errors.NotFound:
            pass
    for v in client.volumes.list(filters=flt):
        try:
            v.remove(force=True)
            n_v += 1
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters=flt):
        try:
            n.remove()
            n_n += 1
        except docker.errors.NotFound:
            pass
    return {"containers": n_c, "volumes": n_v, "networks": n_n}


def clusters_on_engine(client: Any) -> list[str]:
    """Names of the kbox clusters that have node containers on this engine."""
    names = set()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_ROLE}={ROLE_NODE}"}):
        name = (c.labels or {}).get(LABEL_CLUSTER)
        if name:
            names.add(name)
    return sorted(names)


def load_image(src: Any, dst: Any, image: str, *, force: bool = False) -> bool:
    """Copy `image` from engine `src` into engine `dst` (kind's `load docker-image`): a
    docker save streamed into a docker load. False when `dst` already had the same image."""
    import docker.errors
    try:
        img = src.images.get(image)
    except docker.errors.ImageNotFound:
        raise RuntimeError_(f'image "{image}" is not present on the host engine: build or pull '
                            f"it there first") from None
    if not force:
        try:
            if dst.images.get(image).id == img.id:
                return False
        except docker.errors.ImageNotFound:
            pass
    for _ in dst.api.load_image(img.save(named=True)):   # streamed, never whole in memory
        pass
    return True


__all__ = ["NodeMachines", "remove_cluster", "clusters_on_engine", "load_image", "host_engine",
           "engine_answers", "LABEL_CLUSTER", "LABEL_ROLE", "LABEL_NODE"]
