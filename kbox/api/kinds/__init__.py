"""Per-kind strategies: importing this package registers every kind's
defaulting and validation with `kbox.api.strategy`."""

from __future__ import annotations

from kbox.api.kinds import (configmap, daemonset, deployment, job, namespace, node, pod,  # noqa: F401
                            replicaset, secret, service, simple)
