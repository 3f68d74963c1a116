"""Cluster configuration: one pydantic model, read from YAML or built in code.

Defaults are demo-friendly (a dead node is noticed in about 10 s and its
pods evicted about 10 s later); every timing can be set back to
Kubernetes' own values (`ClusterConfig.kubernetes_timings()`).

Example file (every key optional):

    name: demo
    runtime: sim
    nodes:
      count: 3
      cpu: "4"
      memory: 8Gi
      pods: 110
    apiPort: 0            # 0: pick a free port
    timings:
      nodeMonitorGracePeriod: 10
      defaultTolerationSeconds: 10
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class NodeSpec(_Model):
    """One node or a group of identical nodes."""
    name: str | None = None
    count: int = Field(1, ge=0)
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = Field(110, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[dict] = Field(default_factory=list)


class NodesConfig(_Model):
    count: int = Field(3, ge=0, description="number of worker nodes")
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = Field(110, ge=1)
    extra: list[NodeSpec] = Field(default_factory=list, description="nodes with their own shape")
    warm_sandboxes: int = Field(1, ge=0, le=32, alias="warmSandboxes",
                                description="sandboxes each docker node keeps started ahead of its "
                                            "pods, so a new pod skips the network setup")


class SimTimings(_Model):
    """kwok-style delays of the sim runtime, in seconds."""
    pull_delay: float = Field(0.2, ge=0, alias="pullDelay")
    create_delay: float = Field(0.1, ge=0, alias="createDelay")
    start_delay: float = Field(0.2, ge=0, alias="startDelay")
    stop_delay: float = Field(0.1, ge=0, alias="stopDelay")


class Timings(_Model):
    """Control-plane and kubelet timings, in seconds."""
    # kubelet
    node_status_update_frequency: float = Field(2.0, gt=0, alias="nodeStatusUpdateFrequency")
    node_lease_renew_interval: float = Field(2.0, gt=0, alias="nodeLeaseRenewInterval")
    node_lease_duration: float = Field(40.0, gt=0, alias="nodeLeaseDuration")
    sync_frequency: float = Field(1.0, gt=0, alias="syncFrequency")
    restart_backoff_base: float = Field(10.0, gt=0, alias="restartBackoffBase")
    restart_backoff_max: float = Field(300.0, gt=0, alias="restartBackoffMax")
    # node lifecycle controller
    node_monitor_period: float = Field(1.0, gt=0, alias="nodeMonitorPeriod")
    node_monitor_grace_period: float = Field(10.0, gt=0, alias="nodeMonitorGracePeriod")
    default_toleration_seconds: int = Field(10, ge=0, alias="defaultTolerationSeconds")
    # scheduler
    pod_initial_backoff: float = Field(1.0, gt=0, alias="podInitialBackoff")
    pod_max_backoff: float = Field(10.0, gt=0, alias="podMaxBackoff")
    # deployments
    progress_deadline_default: int = Field(600, ge=1, alias="progressDeadlineSeconds")
    sim: SimTimings = Field(default_factory=SimTimings)


class Networking(_Model):
    """Address ranges, named as in kind's cluster config."""
    pod_subnet: str = Field("10.244.0.0/16", alias="podSubnet",
                            description="each node gets a /24 of it (kind's default: 256 nodes)")
    service_subnet: str = Field("10.96.0.0/12", alias="serviceSubnet")
    dns_port: int = Field(0, ge=0, le=65535, alias="dnsPort",
                          description="the cluster DNS's port: on 127.0.0.1 for sim clusters "
                                      "(0: any free port); on the cluster network's gateway for "
                                      "docker clusters (0: 53, or any free port if 53 is taken)")

    @field_validator("pod_subnet", "service_subnet")
    @classmethod
    def _cidr(cls, v: str, info) -> str:
        import ipaddress
        try:
            net = ipaddress.IPv4Network(v, strict=True)
        except ValueError as e:
            raise ValueError(f"must be an IPv4 CIDR such as 10.244.0.0/16: {e}") from None
        if info.field_name == "pod_subnet" and net.prefixlen > 24:
            raise ValueError("must be /24 or larger: every node takes a /24 of it")
        return v


class ClusterConfig(_Model):
    name: str = "kbox"
    runtime: Literal["auto", "sim", "docker"] = "auto"
    nodes: NodesConfig = Field(default_factory=NodesConfig)
    api_host: str = Field("127.0.0.1", alias="apiHost")
    api_port: int = Field(0, ge=0, le=65535, alias="apiPort")
    data_dir: str | None = Field(None, alias="dataDir")
    store: Literal["memory", "etcd"] = "memory"
    timings: Timings = Field(default_factory=Timings)
    networking: Networking = Field(default_factory=Networking)
    seed: int | None = Field(None, description="seed for generated names (deterministic demos)")
    event_ttl_seconds: float = Field(3600.0, gt=0, alias="eventTTL")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        import re
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", v):
            raise ValueError("must be a lowercase RFC 1123 label of at most 32 characters "
                             "(lower case alphanumeric characters or '-')")
        return v

    @classmethod
    def kubernetes_timings(cls) -> Timings:
        """Kubernetes' own defaults, for users who want real-cluster pacing."""
        return Timings(nodeStatusUpdateFrequency=10, nodeLeaseRenewInterval=10,
                       nodeMonitorGracePeriod=50, defaultTolerationSeconds=300,
                       podInitialBackoff=1, podMaxBackoff=10)

    def node_specs(self) -> list[NodeSpec]:
        """Every node to boot, named kbox-style: `<cluster>-worker`, `<cluster>-worker2`, ..."""
        out = []
        for i in range(self.nodes.count):
            out.append(NodeSpec(name=f"{self.name}-worker{'' if i == 0 else i + 1}",
                                cpu=self.nodes.cpu, memory=self.nodes.memory, pods=self.nodes.pods))
        n = self.nodes.count
        for spec in self.nodes.extra:
            for j in range(spec.count):
                n += 1
                name = spec.name if spec.name and spec.count == 1 else \
                    f"{spec.name or self.name + '-worker'}{n if not spec.name else j + 1}"
                out.append(spec.model_copy(update={"name": name, "count": 1}))
        return out


def kbox_home() -> Path:
    """Where kbox keeps per-cluster state (state files, node sockets): $KBOX_HOME or ~/.kbox."""
    return Path(os.environ.get("KBOX_HOME") or Path.home() / ".kbox")


class ConfigError(Exception):
    pass


def load_config(path: str | Path | None = None, **overrides: object) -> ClusterConfig:
    """Read a YAML config (or none) and apply command-line overrides (None means unset)."""
    data: dict = {}
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror}")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping")
        data = loaded or {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "nodes":
            data.setdefault("nodes", {})["count"] = v
        else:
            data[k] = v
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msgs.append(f"{loc}: {err['msg']}")
        raise ConfigError(f"invalid cluster config{f' {path}' if path else ''}: " + "; ".join(msgs))
