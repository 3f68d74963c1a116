"""The controller manager: every controller of the cluster, built and run together.

kube-controller-manager in one object. `ControllerManager(client, informers,
clock, config)` builds the ReplicaSet, Deployment, Job, DaemonSet, node
lifecycle, Endpoints, ServiceAccount, token, Namespace, garbage-collector
and LoadBalancer (service) controllers on one shared InformerFactory (so each resource is listed and
watched once), each with its own work queue and an event recorder named
after it. The cluster starts the informers, waits for their caches, then
calls `start()`; `stop()` shuts the queues down.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from kbox.api.client import Client
from kbox.clock import Clock
from kbox.config import ClusterConfig
from kbox.controllers.base import Controller
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)


def _optional(module: str, cls: str) -> Callable[..., Controller] | None:
    """A controller class, or None while its module is not in this tree yet."""
    try:
        mod = importlib.import_module(f"kbox.controllers.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"kbox.controllers.{module}":
            log.warning("controller module %s missing; %s not started", module, cls)
            return None
        raise
    return getattr(mod, cls)


class ControllerManager:
    def __init__(self, client: Client, informers: InformerFactory, clock: Clock,
                 config: ClusterConfig | None = None, *, host_ports: Any = None) -> None:
        self.client = client
        self.informers = informers
        self.clock = clock
        self.config = config or ClusterConfig()
        t = self.config.timings
        self.by_name: dict[str, Controller] = {}

        def add(c: Controller | None) -> None:
            if c is not None:
                self.by_name[c.name] = c

        specs: list[tuple[str, str, dict[str, Any]]] = [
            ("replicaset", "ReplicaSetController", {}),
            ("deployment", "DeploymentController", {}),
            ("job", "JobController", {}),
            ("daemonset", "DaemonSetController", {}),
            ("nodelifecycle", "NodeLifecycleController",
             {"monitor_period": t.node_monitor_period, "grace_period": t.node_monitor_grace_period,
              "cidr": self.config.networking.pod_subnet}),
            ("endpoints", "EndpointsController", {}),
            ("serviceaccount", "ServiceAccountController", {}),
            ("serviceaccount", "TokenController", {}),
            ("namespace", "NamespaceController", {}),
            ("gc", "GarbageCollector", {}),
            # the cloud controller manager's service controller: LoadBalancers on 127.0.0.1
            # (host_ports: real listeners on docker nodes; None: the sim's port check)
            ("loadbalancer", "LoadBalancerController", {"provider": host_ports}),
        ]
        for module, cls_name, kw in specs:
            cls = _optional(module, cls_name)
            if cls is not None:
                add(cls(client, informers, clock, **kw))

    @property
    def controllers(self) -> list[Controller]:
        return list(self.by_name.values())

    def get(self, name: str) -> Controller | None:
        return self.by_name.get(name)

    def start(self) -> None:
        for c in self.controllers:
            c.start()

    def stop(self) -> None:
        for c in self.controllers:
            try:
                c.stop()
            except Exception:  # keep stopping the rest
                log.exception("stopping %s failed", c.name)

    def run_until_idle(self, limit: int = 100000) -> int:
        """Drive every controller synchronously (tests): keys processed in total."""
        total = 0
        while True:
            n = sum(c.run_until_idle(limit) for c in self.controllers)
            total += n
            if not n or total >= limit:
                return total


__all__ = ["ControllerManager"]
