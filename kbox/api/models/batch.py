"""batch/v1 models: Job."""

from __future__ import annotations

from kbox.api.models.base import K8sModel, Loose
from kbox.api.models.core import PodTemplateSpec
from kbox.api.models.meta import LabelSelector


class JobSpec(K8sModel):
    parallelism: int | None = None
    completions: int | None = None
    activeDeadlineSeconds: int | None = None
    podFailurePolicy: Loose | None = None
    successPolicy: Loose | None = None
    backoffLimit: int | None = None
    backoffLimitPerIndex: int | None = None
    maxFailedIndexes: int | None = None
    selector: LabelSelector | None = None
    manualSelector: bool | None = None
    template: PodTemplateSpec | None = None
    ttlSecondsAfterFinished: int | None = None
    completionMode: str | None = None
    suspend: bool | None = None
    podReplacementPolicy: str | None = None
    managedBy: str | None = None


class Job(K8sModel):
    spec: JobSpec | None = None
    status: Loose | None = None
