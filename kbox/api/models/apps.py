"""apps/v1 models: Deployment, ReplicaSet, DaemonSet, ControllerRevision."""

from __future__ import annotations

from typing import Any

from kbox.api.models.base import IntOrString, K8sModel, Loose
from kbox.api.models.core import PodTemplateSpec
from kbox.api.models.meta import LabelSelector


class RollingUpdateDeployment(K8sModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None


class DeploymentStrategy(K8sModel):
    type: str | None = None
    rollingUpdate: RollingUpdateDeployment | None = None


class DeploymentSpec(K8sModel):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    strategy: DeploymentStrategy | None = None
    minReadySeconds: int | None = None
    revisionHistoryLimit: int | None = None
    paused: bool | None = None
    progressDeadlineSeconds: int | None = None


class Deployment(K8sModel):
    spec: DeploymentSpec | None = None
    status: Loose | None = None


class ReplicaSetSpec(K8sModel):
    replicas: int | None = None
    minReadySeconds: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None


class ReplicaSet(K8sModel):
    spec: ReplicaSetSpec | None = None
    status: Loose | None = None


class RollingUpdateDaemonSet(K8sModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None


class DaemonSetUpdateStrategy(K8sModel):
    type: str | None = None
    rollingUpdate: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(K8sModel):
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    updateStrategy: DaemonSetUpdateStrategy | None = None
    minReadySeconds: int | None = None
    revisionHistoryLimit: int | None = None


class DaemonSet(K8sModel):
    spec: DaemonSetSpec | None = None
    status: Loose | None = None


class ControllerRevision(K8sModel):
    data: Any = None
    revision: int | None = None
