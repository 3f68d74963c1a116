"""meta/v1 pieces used inside specs: label selectors and template metadata.

Object metadata itself (name, labels, annotations, ...) is checked by
`kbox.api.validation`, shared by every kind; these models cover what
appears inside a spec.
"""

from __future__ import annotations

from kbox.api.models.base import K8sModel, Loose, StrMap


class LabelSelectorRequirement(K8sModel):
    key: str | None = None
    operator: str | None = None
    values: list[str] | None = None


class LabelSelector(K8sModel):
    matchLabels: StrMap | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


class ObjectMeta(K8sModel):
    """Object metadata; in a pod template only the maps need a shape (an object's own
    metadata is checked by kbox.api.validation), the rest is declared for the schema."""
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: StrMap | None = None
    annotations: StrMap | None = None
    finalizers: list[str] | None = None
    ownerReferences: list[Loose] | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    managedFields: list[Loose] | None = None
    selfLink: str | None = None


class ObjectReference(K8sModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    apiVersion: str | None = None
    resourceVersion: str | None = None
    fieldPath: str | None = None
