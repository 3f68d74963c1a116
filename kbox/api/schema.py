"""The API's type schema, read off the pydantic models in `kbox.api.models`.

One tree of named types serves two readers: the OpenAPI documents
(`kbox.api.openapi`, for `kubectl explain` and client-side apply) and field
validation (`kbox.api.fieldvalidation`, unknown fields under
`fieldValidation=Strict|Warn`). Types are named as upstream Kubernetes names
them (`io.k8s.api.core.v1.PodSpec`, `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`),
so the documents read like kube-apiserver's.

A field's type is one of: a scalar ("string", "integer", "boolean",
"number"), a named object (`Ref`), an array or a map of another type, or
"open" — a loose object the models do not describe field by field (statuses,
security contexts, volume sources): any field is accepted there.

Patch metadata (merge keys and strategies, list types) is not in the Go-less
models, so it is declared here, as Kubernetes declares it on its Go types.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Union

from pydantic import BaseModel

from kbox.api.models import apps, base, batch, coordination, core, meta

# ---- type descriptions ----------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    type: str                     # string | integer | boolean | number
    format: str = ""


@dataclass(frozen=True)
class Ref:
    name: str                     # a key of Schema.types


@dataclass(frozen=True)
class Array:
    items: "TypeRef"


@dataclass(frozen=True)
class Map:
    values: "TypeRef"


@dataclass(frozen=True)
class Open:
    """An object of any shape (x-kubernetes-preserve-unknown-fields)."""


@dataclass(frozen=True)
class Special:
    """A named leaf type of apimachinery (Quantity, IntOrString, Time, RawExtension)."""
    name: str


TypeRef = Union[Scalar, Ref, Array, Map, Open, Special]


@dataclass
class Field:
    name: str
    type: TypeRef
    description: str = ""
    patch_strategy: str = ""      # merge | retainKeys | merge,retainKeys
    patch_merge_key: str = ""
    list_type: str = ""           # atomic | set | map
    list_map_keys: tuple[str, ...] = ()


@dataclass
class ObjectType:
    name: str                     # io.k8s.api.core.v1.PodSpec
    description: str = ""
    fields: dict[str, Field] = field(default_factory=dict)
    gvk: tuple[str, str, str] | None = None     # (group, version, kind) of a top-level kind
    required: tuple[str, ...] = ()


STRING = Scalar("string")
INT32 = Scalar("integer", "int32")
INT64 = Scalar("integer", "int64")
BOOL = Scalar("boolean")
NUMBER = Scalar("number", "double")

META_PKG = "io.k8s.apimachinery.pkg.apis.meta.v1"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = f"{META_PKG}.Time"
MICRO_TIME = f"{META_PKG}.MicroTime"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"

SPECIALS: dict[str, dict[str, Any]] = {
    QUANTITY: {"type": "string", "description": "A fixed-point number with a suffix: 250m, 1.5, "
               "128Mi, 2Gi (binary) or 1k, 1M (decimal)."},
    INT_OR_STRING: {"type": "string", "format": "int-or-string",
                    "description": "An integer or a string (such as a port name or a percentage)."},
    TIME: {"type": "string", "format": "date-time",
           "description": "A time in RFC 3339 form, to the second."},
    MICRO_TIME: {"type": "string", "format": "date-time",
                 "description": "A time in RFC 3339 form, to the microsecond."},
    RAW_EXTENSION: {"type": "object",
                    "description": "An embedded object of any kind, kept as the client wrote it."},
}

_PACKAGES = {
    core: "io.k8s.api.core.v1", apps: "io.k8s.api.apps.v1", batch: "io.k8s.api.batch.v1",
    coordination: "io.k8s.api.coordination.v1", meta: META_PKG,
}

# ---- the kinds ------------------------------------------------------------------

# kind → (group, version, model of the body beside apiVersion/kind/metadata, description)
KINDS: dict[str, tuple[str, str, type[BaseModel], str]] = {
    "Pod": ("", "v1", core.Pod, "A group of containers scheduled together on one node."),
    "Service": ("", "v1", core.Service,
                "A stable virtual IP and DNS name in front of the pods a selector picks."),
    "Endpoints": ("", "v1", core.Endpoints, "The addresses and ports a service leads to."),
    "Node": ("", "v1", core.Node, "A worker machine that runs pods."),
    "Namespace": ("", "v1", core.Namespace, "A scope for names."),
    "Secret": ("", "v1", core.Secret, "Sensitive data, base64-encoded, such as a token or a key."),
    "ConfigMap": ("", "v1", core.ConfigMap, "Configuration data for pods, as key-value pairs."),
    "ServiceAccount": ("", "v1", core.ServiceAccount,
                       "An identity for the processes that run in a pod."),
    "Event": ("", "v1", core.Event, "A report of something that happened in the cluster."),
    "Deployment": ("apps", "v1", apps.Deployment,
                   "Declarative updates for pods, through ReplicaSets."),
    "ReplicaSet": ("apps", "v1", apps.ReplicaSet,
                   "Keeps a number of identical pods running."),
    "DaemonSet": ("apps", "v1", apps.DaemonSet, "Runs a copy of a pod on each eligible node."),
    "ControllerRevision": ("apps", "v1", apps.ControllerRevision,
                           "An immutable snapshot of a controller's state (a DaemonSet's "
                           "template revision)."),
    "Job": ("batch", "v1", batch.Job, "Runs pods until a number of them complete."),
    "Lease": ("coordination.k8s.io", "v1", coordination.Lease,
              "A lock: node heartbeats and leader election."),
}

# upstream names for kbox models whose class name differs from Kubernetes'
_RENAMES = {"LocalObjectReference": "io.k8s.api.core.v1.LocalObjectReference",
            "Event": "io.k8s.api.core.v1.Event", "EndpointPort": "io.k8s.api.core.v1.EndpointPort",
            "ObjectReference": "io.k8s.api.core.v1.ObjectReference"}

# (type short name, field) → field attributes; as Kubernetes' Go types declare them
PATCH_META: dict[tuple[str, str], dict[str, Any]] = {
    ("PodSpec", "containers"): dict(patch_strategy="merge", patch_merge_key="name",
                                    list_type="map", list_map_keys=("name",)),
    ("PodSpec", "initContainers"): dict(patch_strategy="merge", patch_merge_key="name",
                                        list_type="map", list_map_keys=("name",)),
    ("PodSpec", "ephemeralContainers"): dict(patch_strategy="merge", patch_merge_key="name",
                                             list_type="map", list_map_keys=("name",)),
    ("PodSpec", "volumes"): dict(patch_strategy="merge,retainKeys", patch_merge_key="name",
                                 list_type="map", list_map_keys=("name",)),
    ("PodSpec", "imagePullSecrets"): dict(patch_strategy="merge", patch_merge_key="name",
                                          list_type="map", list_map_keys=("name",)),
    ("PodSpec", "hostAliases"): dict(patch_strategy="merge", patch_merge_key="ip",
                                     list_type="map", list_map_keys=("ip",)),
    ("PodSpec", "topologySpreadConstraints"): dict(
        patch_strategy="merge", patch_merge_key="topologyKey", list_type="map",
        list_map_keys=("topologyKey", "whenUnsatisfiable")),
    ("PodSpec", "schedulingGates"): dict(patch_strategy="merge", patch_merge_key="name",
                                         list_type="map", list_map_keys=("name",)),
    ("PodSpec", "resourceClaims"): dict(patch_strategy="merge,retainKeys", patch_merge_key="name",
                                        list_type="map", list_map_keys=("name",)),
    ("PodSpec", "tolerations"): dict(list_type="atomic"),
    ("PodSpec", "readinessGates"): dict(list_type="atomic"),
    ("Container", "ports"): dict(patch_strategy="merge", patch_merge_key="containerPort",
                                 list_type="map", list_map_keys=("containerPort", "protocol")),
    ("Container", "env"): dict(patch_strategy="merge", patch_merge_key="name",
                               list_type="map", list_map_keys=("name",)),
    ("Container", "volumeMounts"): dict(patch_strategy="merge", patch_merge_key="mountPath",
                                        list_type="map", list_map_keys=("mountPath",)),
    ("Container", "volumeDevices"): dict(patch_strategy="merge", patch_merge_key="devicePath",
                                         list_type="map", list_map_keys=("devicePath",)),
    ("Container", "command"): dict(list_type="atomic"),
    ("Container", "args"): dict(list_type="atomic"),
    ("Container", "envFrom"): dict(list_type="atomic"),
    ("Container", "resizePolicy"): dict(list_type="atomic"),
    ("ObjectMeta", "ownerReferences"): dict(patch_strategy="merge", patch_merge_key="uid",
                                            list_type="map", list_map_keys=("uid",)),
    ("ObjectMeta", "finalizers"): dict(patch_strategy="merge", list_type="set"),
    ("ObjectMeta", "managedFields"): dict(list_type="atomic"),
    ("ServiceSpec", "ports"): dict(patch_strategy="merge", patch_merge_key="port",
                                   list_type="map", list_map_keys=("port", "protocol")),
    ("ServiceSpec", "clusterIPs"): dict(list_type="atomic"),
    ("ServiceSpec", "ipFamilies"): dict(list_type="atomic"),
    ("ServiceSpec", "externalIPs"): dict(list_type="atomic"),
    ("DeploymentSpec", "strategy"): dict(patch_strategy="retainKeys"),
    ("NodeSpec", "podCIDRs"): dict(patch_strategy="merge", list_type="set"),
    ("NodeSpec", "taints"): dict(list_type="atomic"),
    ("EndpointSubset", "addresses"): dict(list_type="atomic"),
    ("EndpointSubset", "notReadyAddresses"): dict(list_type="atomic"),
    ("EndpointSubset", "ports"): dict(list_type="atomic"),
    ("NodeSelector", "nodeSelectorTerms"): dict(list_type="atomic"),
    ("NodeSelectorTerm", "matchExpressions"): dict(list_type="atomic"),
    ("NodeSelectorTerm", "matchFields"): dict(list_type="atomic"),
    ("LabelSelector", "matchExpressions"): dict(list_type="atomic"),
    ("NamespaceSpec", "finalizers"): dict(list_type="atomic"),
}

# descriptions of the fields kubectl explain is most often asked about (the models carry
# few docstrings); "Type.field" → text
DESCRIPTIONS: dict[str, str] = {
    "*.apiVersion": "The versioned schema of this representation of an object (group/version).",
    "*.kind": "The REST resource this object represents, in CamelCase.",
    "*.metadata": "Standard object metadata: name, namespace, labels, annotations, ...",
    "*.spec": "The desired state of the object.",
    "*.status": "The most recently observed state of the object; read-only for users.",
    "ObjectMeta.name": "Name of the object, unique within a namespace; cannot be updated.",
    "ObjectMeta.namespace": "The namespace the object lives in; empty for cluster-scoped objects.",
    "ObjectMeta.labels": "Key-value pairs that selectors (of services, replica sets, ...) match.",
    "ObjectMeta.annotations": "Arbitrary non-identifying key-value metadata.",
    "ObjectMeta.generateName": "A prefix from which the server generates a unique name when "
                               "name is empty.",
    "ObjectMeta.uid": "The unique id of the object, set by the server.",
    "ObjectMeta.resourceVersion": "The version of the object, for optimistic concurrency and "
                                  "watches; set by the server.",
    "ObjectMeta.generation": "A sequence number of the desired state, set by the server.",
    "ObjectMeta.creationTimestamp": "When the object was created, set by the server.",
    "ObjectMeta.deletionTimestamp": "When the object will be deleted, set by the server on a "
                                    "graceful deletion.",
    "ObjectMeta.finalizers": "Conditions to be met (by controllers) before the object is removed.",
    "ObjectMeta.ownerReferences": "The objects this one depends on; the garbage collector deletes "
                                  "it when they are all gone.",
    "PodSpec.containers": "The containers of the pod. There must be at least one; they cannot be "
                          "added or removed once the pod exists.",
    "PodSpec.initContainers": "Containers run one after another, to completion, before the "
                              "pod's containers start.",
    "PodSpec.volumes": "Volumes the pod's containers can mount.",
    "PodSpec.nodeName": "The node the pod is bound to; set by the scheduler.",
    "PodSpec.nodeSelector": "Labels a node must have for the pod to be scheduled on it.",
    "PodSpec.restartPolicy": "Always, OnFailure or Never: when the kubelet restarts containers.",
    "PodSpec.tolerations": "The taints the pod tolerates.",
    "PodSpec.affinity": "Scheduling constraints on nodes and on other pods.",
    "PodSpec.serviceAccountName": "The ServiceAccount the pod runs as.",
    "PodSpec.terminationGracePeriodSeconds": "Seconds the pod has to stop after a SIGTERM.",
    "Container.name": "Name of the container, a DNS label unique within the pod.",
    "Container.image": "The container image to run.",
    "Container.command": "The entrypoint, replacing the image's ENTRYPOINT.",
    "Container.args": "Arguments to the entrypoint, replacing the image's CMD.",
    "Container.ports": "Ports the container exposes (informational).",
    "Container.env": "Environment variables to set in the container.",
    "Container.resources": "Compute resources the container requests and is limited to.",
    "Container.livenessProbe": "A probe whose failure restarts the container.",
    "Container.readinessProbe": "A probe whose failure takes the pod out of service endpoints.",
    "Container.imagePullPolicy": "Always, Never or IfNotPresent.",
    "DeploymentSpec.replicas": "Number of desired pods (default 1).",
    "DeploymentSpec.selector": "Label selector for the pods; must match the template's labels.",
    "DeploymentSpec.template": "The pods to create.",
    "DeploymentSpec.strategy": "How old pods are replaced by new ones.",
    "DeploymentSpec.minReadySeconds": "Seconds a new pod must be ready to count as available.",
    "DeploymentSpec.revisionHistoryLimit": "Old ReplicaSets kept for rollback (default 10).",
    "DeploymentSpec.paused": "Whether the deployment is paused.",
    "DeploymentSpec.progressDeadlineSeconds": "Seconds before a stalled rollout is reported as "
                                              "failed (default 600).",
    "ServiceSpec.ports": "The ports the service exposes.",
    "ServiceSpec.selector": "Pods with these labels receive the service's traffic.",
    "ServiceSpec.type": "ClusterIP, NodePort, LoadBalancer or ExternalName.",
    "ServiceSpec.clusterIP": "The service's virtual IP, allocated by the server.",
    "JobSpec.completions": "Number of pods that must complete successfully.",
    "JobSpec.parallelism": "Maximum number of pods running at once.",
    "JobSpec.backoffLimit": "Retries before the job is marked failed (default 6).",
    "JobSpec.template": "The pods to run.",
}


# ---- building ---------------------------------------------------------------------

def type_name(cls: type) -> str:
    if cls.__name__ in _RENAMES:
        return _RENAMES[cls.__name__]
    mod = typing.cast(Any, cls).__module__.rsplit(".", 1)[-1]
    pkg = {"core": core, "apps": apps, "batch": batch, "coordination": coordination,
           "meta": meta}.get(mod)
    return f"{_PACKAGES[pkg]}.{cls.__name__}" if pkg else f"io.k8s.kbox.{cls.__name__}"


def short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@dataclass
class Schema:
    types: dict[str, ObjectType]
    kinds: dict[tuple[str, str, str], str]     # (group, version, kind) → type name

    def root(self, group: str, version: str, kind: str) -> ObjectType | None:
        name = self.kinds.get((group, version, kind))
        return self.types.get(name) if name else None


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _typeref(ann: Any, todo: list[type]) -> TypeRef:
    """The schema type of a model field's annotation."""
    if ann is base.IntOrString:
        return Special(INT_OR_STRING)
    if ann is base.Quantity:
        return Special(QUANTITY)
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        args = typing.get_args(ann)
        meta_ = [getattr(m, "func", None) for m in args[1:]]
        names = {getattr(f, "__name__", "") for f in meta_}
        if "_int_or_string" in names:
            return Special(INT_OR_STRING)
        if "_quantity" in names:
            return Special(QUANTITY)
        return _typeref(args[0], todo)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _typeref(args[0], todo)
        return Open()
    if origin in (list, tuple):
        args = typing.get_args(ann)
        return Array(_typeref(args[0], todo) if args else Open())
    if origin is dict:
        args = typing.get_args(ann)
        if len(args) == 2 and args[1] is Any:
            return Open()
        return Map(_typeref(args[1], todo) if len(args) == 2 else Open())
    if ann is str:
        return STRING
    if ann is bool:
        return BOOL
    if ann is int:
        return INT32
    if ann is float:
        return NUMBER
    if _is_model(ann):
        todo.append(ann)
        return Ref(type_name(ann))
    return Open()


_INT64_FIELDS = {"activeDeadlineSeconds", "terminationGracePeriodSeconds", "generation",
                 "deletionGracePeriodSeconds", "tolerationSeconds", "revision"}
_TIME_FIELDS = {"creationTimestamp", "deletionTimestamp", "firstTimestamp", "lastTimestamp",
                "timeAdded", "startTime", "completionTime"}
_MICRO_TIME_FIELDS = {"eventTime", "acquireTime", "renewTime"}


def _object(cls: type[BaseModel], todo: list[type]) -> ObjectType:
    name = type_name(cls)
    ot = ObjectType(name, " ".join((cls.__dict__.get("__doc__") or "").split()))
    sname = short(name)
    for fname, finfo in cls.model_fields.items():
        t = _typeref(finfo.annotation, todo)
        if fname in _INT64_FIELDS and t == INT32:
            t = INT64
        if t == STRING and fname in _TIME_FIELDS:
            t = Special(TIME)
        if t == STRING and fname in _MICRO_TIME_FIELDS:
            t = Special(MICRO_TIME)
        desc = finfo.description or DESCRIPTIONS.get(f"{sname}.{fname}") \
            or DESCRIPTIONS.get(f"*.{fname}", "")
        f = Field(fname, t, desc, **PATCH_META.get((sname, fname), {}))
        ot.fields[fname] = f
    return ot


@lru_cache(maxsize=1)
def build() -> Schema:
    """Every named type reachable from the kinds kbox serves (computed once)."""
    types_: dict[str, ObjectType] = {}
    kinds: dict[tuple[str, str, str], str] = {}
    todo: list[type] = [meta.ObjectMeta]
    for kind, (group, version, model, desc) in KINDS.items():
        root = _object(model, todo)
        fields = {
            "apiVersion": Field("apiVersion", STRING, DESCRIPTIONS["*.apiVersion"]),
            "kind": Field("kind", STRING, DESCRIPTIONS["*.kind"]),
            "metadata": Field("metadata", Ref(type_name(meta.ObjectMeta)),
                              DESCRIPTIONS["*.metadata"]),
        }
        fields.update(root.fields)
        if "status" in fields and isinstance(fields["status"].type, Open):
            fields["status"].description = DESCRIPTIONS["*.status"]
        root.fields = fields
        root.description = desc
        root.gvk = (group, version, kind)
        types_[root.name] = root
        kinds[(group, version, kind)] = root.name
    while todo:
        cls = todo.pop()
        n = type_name(cls)
        if n in types_:
            continue
        types_[n] = _object(cls, todo)
    return Schema(types_, kinds)


__all__ = ["Schema", "ObjectType", "Field", "Scalar", "Ref", "Array", "Map", "Open", "Special",
           "TypeRef", "build", "KINDS", "SPECIALS", "type_name", "short"]
