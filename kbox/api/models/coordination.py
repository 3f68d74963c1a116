"""coordination.k8s.io/v1 models: Lease (node heartbeats, leader election)."""

from __future__ import annotations

from kbox.api.models.base import K8sModel


class LeaseSpec(K8sModel):
    holderIdentity: str | None = None
    leaseDurationSeconds: int | None = None
    acquireTime: str | None = None
    renewTime: str | None = None
    leaseTransitions: int | None = None
    strategy: str | None = None
    preferredHolder: str | None = None


class Lease(K8sModel):
    spec: LeaseSpec | None = None
