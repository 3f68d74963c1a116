"""core/v1 models: Pod and its parts, Service, Endpoints, Node, Namespace,
Secret, ConfigMap, ServiceAccount, Event.

Field names are Kubernetes' own (camelCase), so a model reads like the API
reference. Every field is optional here; "required" rules live with the
per-kind validation so that messages match Kubernetes'.
"""

from __future__ import annotations

from typing import Any

from kbox.api.models.base import IntOrString, K8sModel, Loose, Quantity, StrMap
from kbox.api.models.meta import LabelSelector, ObjectMeta, ObjectReference


# ---- containers -----------------------------------------------------------------

class ConfigMapKeySelector(K8sModel):
    name: str | None = None
    key: str | None = None
    optional: bool | None = None


class SecretKeySelector(K8sModel):
    name: str | None = None
    key: str | None = None
    optional: bool | None = None


class ObjectFieldSelector(K8sModel):
    apiVersion: str | None = None
    fieldPath: str | None = None


class ResourceFieldSelector(K8sModel):
    containerName: str | None = None
    resource: str | None = None
    divisor: Quantity | None = None


class EnvVarSource(K8sModel):
    configMapKeyRef: ConfigMapKeySelector | None = None
    secretKeyRef: SecretKeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None


class EnvVar(K8sModel):
    name: str | None = None
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class LocalObjectReference(K8sModel):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(K8sModel):
    prefix: str | None = None
    configMapRef: LocalObjectReference | None = None
    secretRef: LocalObjectReference | None = None


class ContainerPort(K8sModel):
    name: str | None = None
    containerPort: int | None = None
    hostPort: int | None = None
    hostIP: str | None = None
    protocol: str | None = None


class ResourceRequirements(K8sModel):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None
    claims: list[Loose] | None = None


class ExecAction(K8sModel):
    command: list[str] | None = None


class HTTPHeader(K8sModel):
    name: str | None = None
    value: str | None = None


class HTTPGetAction(K8sModel):
    path: str | None = None
    port: IntOrString | None = None
    host: str | None = None
    scheme: str | None = None
    httpHeaders: list[HTTPHeader] | None = None


class TCPSocketAction(K8sModel):
    port: IntOrString | None = None
    host: str | None = None


class GRPCAction(K8sModel):
    port: int | None = None
    service: str | None = None


class Probe(K8sModel):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initialDelaySeconds: int | None = None
    timeoutSeconds: int | None = None
    periodSeconds: int | None = None
    successThreshold: int | None = None
    failureThreshold: int | None = None
    terminationGracePeriodSeconds: int | None = None


class LifecycleHandler(K8sModel):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    sleep: Loose | None = None


class Lifecycle(K8sModel):
    postStart: LifecycleHandler | None = None
    preStop: LifecycleHandler | None = None


class VolumeMount(K8sModel):
    name: str | None = None
    mountPath: str | None = None
    subPath: str | None = None
    subPathExpr: str | None = None
    readOnly: bool | None = None
    mountPropagation: str | None = None
    recursiveReadOnly: str | None = None


class Container(K8sModel):
    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    ports: list[ContainerPort] | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    resources: ResourceRequirements | None = None
    volumeMounts: list[VolumeMount] | None = None
    livenessProbe: Probe | None = None
    readinessProbe: Probe | None = None
    startupProbe: Probe | None = None
    lifecycle: Lifecycle | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    imagePullPolicy: str | None = None
    securityContext: Loose | None = None
    restartPolicy: str | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None
    resizePolicy: list[Loose] | None = None
    volumeDevices: list[Loose] | None = None


# ---- scheduling -----------------------------------------------------------------

class Toleration(K8sModel):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    tolerationSeconds: int | None = None


class NodeSelectorRequirement(K8sModel):
    key: str | None = None
    operator: str | None = None
    values: list[str] | None = None


class NodeSelectorTerm(K8sModel):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class NodeSelector(K8sModel):
    nodeSelectorTerms: list[NodeSelectorTerm] | None = None


class PreferredSchedulingTerm(K8sModel):
    weight: int | None = None
    preference: NodeSelectorTerm | None = None


class NodeAffinity(K8sModel):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = None


class Affinity(K8sModel):
    nodeAffinity: NodeAffinity | None = None
    podAffinity: Loose | None = None
    podAntiAffinity: Loose | None = None


class Volume(K8sModel):
    """A name and one of many sources (emptyDir, configMap, secret, hostPath, ...), each
    kept loose: only the names of the sources are declared."""
    name: str | None = None
    awsElasticBlockStore: Loose | None = None
    azureDisk: Loose | None = None
    azureFile: Loose | None = None
    cephfs: Loose | None = None
    cinder: Loose | None = None
    configMap: Loose | None = None
    csi: Loose | None = None
    downwardAPI: Loose | None = None
    emptyDir: Loose | None = None
    ephemeral: Loose | None = None
    fc: Loose | None = None
    flexVolume: Loose | None = None
    flocker: Loose | None = None
    gcePersistentDisk: Loose | None = None
    gitRepo: Loose | None = None
    glusterfs: Loose | None = None
    hostPath: Loose | None = None
    image: Loose | None = None
    iscsi: Loose | None = None
    nfs: Loose | None = None
    persistentVolumeClaim: Loose | None = None
    photonPersistentDisk: Loose | None = None
    portworxVolume: Loose | None = None
    projected: Loose | None = None
    quobyte: Loose | None = None
    rbd: Loose | None = None
    scaleIO: Loose | None = None
    secret: Loose | None = None
    storageos: Loose | None = None
    vsphereVolume: Loose | None = None


# ---- pods -----------------------------------------------------------------------

class PodDNSConfigOption(K8sModel):
    name: str | None = None
    value: str | None = None


class PodDNSConfig(K8sModel):
    nameservers: list[str] | None = None
    searches: list[str] | None = None
    options: list[PodDNSConfigOption] | None = None


class PodSpec(K8sModel):
    containers: list[Container] | None = None
    initContainers: list[Container] | None = None
    ephemeralContainers: list[Loose] | None = None
    volumes: list[Volume] | None = None
    restartPolicy: str | None = None
    terminationGracePeriodSeconds: int | None = None
    activeDeadlineSeconds: int | None = None
    dnsPolicy: str | None = None
    dnsConfig: PodDNSConfig | None = None
    nodeSelector: StrMap | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None
    automountServiceAccountToken: bool | None = None
    nodeName: str | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostIPC: bool | None = None
    shareProcessNamespace: bool | None = None
    securityContext: Loose | None = None
    imagePullSecrets: list[Loose] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    affinity: Affinity | None = None
    schedulerName: str | None = None
    tolerations: list[Toleration] | None = None
    hostAliases: list[Loose] | None = None
    priorityClassName: str | None = None
    priority: int | None = None
    preemptionPolicy: str | None = None
    readinessGates: list[Loose] | None = None
    runtimeClassName: str | None = None
    enableServiceLinks: bool | None = None
    overhead: dict[str, Quantity] | None = None
    topologySpreadConstraints: list[Loose] | None = None
    os: Loose | None = None
    hostUsers: bool | None = None
    setHostnameAsFQDN: bool | None = None
    schedulingGates: list[Loose] | None = None
    resourceClaims: list[Loose] | None = None
    resources: ResourceRequirements | None = None


class PodTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec | None = None


class Pod(K8sModel):
    spec: PodSpec | None = None
    status: Loose | None = None


# ---- services and endpoints -----------------------------------------------------

class ServicePort(K8sModel):
    name: str | None = None
    protocol: str | None = None
    appProtocol: str | None = None
    port: int | None = None
    targetPort: IntOrString | None = None
    nodePort: int | None = None


class ServiceSpec(K8sModel):
    ports: list[ServicePort] | None = None
    selector: StrMap | None = None
    clusterIP: str | None = None
    clusterIPs: list[str] | None = None
    type: str | None = None
    externalIPs: list[str] | None = None
    sessionAffinity: str | None = None
    sessionAffinityConfig: Loose | None = None
    loadBalancerIP: str | None = None
    loadBalancerSourceRanges: list[str] | None = None
    loadBalancerClass: str | None = None
    externalName: str | None = None
    externalTrafficPolicy: str | None = None
    internalTrafficPolicy: str | None = None
    healthCheckNodePort: int | None = None
    publishNotReadyAddresses: bool | None = None
    ipFamilies: list[str] | None = None
    ipFamilyPolicy: str | None = None
    allocateLoadBalancerNodePorts: bool | None = None
    trafficDistribution: str | None = None


class Service(K8sModel):
    spec: ServiceSpec | None = None
    status: Loose | None = None


class EndpointAddress(K8sModel):
    ip: str | None = None
    hostname: str | None = None
    nodeName: str | None = None
    targetRef: ObjectReference | None = None


class EndpointPort(K8sModel):
    name: str | None = None
    port: int | None = None
    protocol: str | None = None
    appProtocol: str | None = None


class EndpointSubset(K8sModel):
    addresses: list[EndpointAddress] | None = None
    notReadyAddresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(K8sModel):
    subsets: list[EndpointSubset] | None = None


# ---- nodes and namespaces -------------------------------------------------------

class Taint(K8sModel):
    key: str | None = None
    value: str | None = None
    effect: str | None = None
    timeAdded: str | None = None


class NodeSpec(K8sModel):
    podCIDR: str | None = None
    podCIDRs: list[str] | None = None
    providerID: str | None = None
    unschedulable: bool | None = None
    taints: list[Taint] | None = None
    configSource: Loose | None = None
    externalID: str | None = None


class Node(K8sModel):
    spec: NodeSpec | None = None
    status: Loose | None = None


class NamespaceSpec(K8sModel):
    finalizers: list[str] | None = None


class Namespace(K8sModel):
    spec: NamespaceSpec | None = None
    status: Loose | None = None


# ---- configuration --------------------------------------------------------------

class Secret(K8sModel):
    data: StrMap | None = None
    stringData: StrMap | None = None
    type: str | None = None
    immutable: bool | None = None


class ConfigMap(K8sModel):
    data: StrMap | None = None
    binaryData: StrMap | None = None
    immutable: bool | None = None


class ServiceAccount(K8sModel):
    secrets: list[Loose] | None = None
    imagePullSecrets: list[Loose] | None = None
    automountServiceAccountToken: bool | None = None


# ---- events ---------------------------------------------------------------------

class EventSource(K8sModel):
    component: str | None = None
    host: str | None = None


class Event(K8sModel):
    involvedObject: ObjectReference | None = None
    reason: str | None = None
    message: str | None = None
    source: EventSource | None = None
    firstTimestamp: str | None = None
    lastTimestamp: str | None = None
    eventTime: str | None = None
    count: int | None = None
    type: str | None = None
    series: Loose | None = None
    action: str | None = None
    related: ObjectReference | None = None
    reportingComponent: str | None = None
    reportingInstance: str | None = None


__all__ = [n for n, v in list(globals().items()) if isinstance(v, type) and issubclass(v, K8sModel)]
_ = (Any, LabelSelector)
