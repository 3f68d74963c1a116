"""A container's environment, as the kubelet builds it (makeEnvironmentVariables).

Order and rules follow the kubelet (v1.32):

1. `envFrom`, in order: every key of the ConfigMap / Secret (with `prefix`); keys that
   are not valid variable names are skipped (and reported); a missing source fails
   unless `optional`.
2. `env`, in order, each overriding what came before:
   - `value`, with `$(VAR)` replaced by a variable defined before it (`$$` escapes a
     `$`; an unknown reference stays as written);
   - `valueFrom.configMapKeyRef` / `secretKeyRef` (Secret data is base64-decoded);
     a missing object or key fails unless `optional`, then the variable is left out;
   - `valueFrom.fieldRef`: metadata.name/namespace/uid, metadata.labels['k'] /
     annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP(s),
     status.hostIP(s);
   - `valueFrom.resourceFieldRef`: limits/requests of cpu, memory, ephemeral-storage,
     divided by `divisor` and rounded up; an unset limit is the node's allocatable.

Failures raise `CreateContainerConfigError` with the kubelet's message
(`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`); the node agent
shows the container waiting with that reason and message.
"""

from __future__ import annotations

import base64
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from kbox.api.errors import ApiError


class CreateContainerConfigError(Exception):
    """The container's configuration cannot be built (the message is the kubelet's)."""


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_MAP = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


# ---- $(VAR) expansion, as k8s.io/kubernetes/third_party/forked/golang/expansion -------------

def expand(text: str, mapping: Callable[[str], str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":                       # $$ -> $
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
                else:                                # incomplete: keep "$(" and go on
                    out.append("$(")
                    advance = 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def mapping_for(*envs: dict[str, str]) -> Callable[[str], str]:
    def look(name: str) -> str:
        for env in envs:
            if name in env:
                return env[name]
        return f"$({name})"
    return look


# ---- quantities -----------------------------------------------------------------------------

_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
           "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
           "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
           "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
           "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}
_QTY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


def parse_quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("500m", "1.5", "64Mi", "1e3") as a Decimal of base units."""
    t = str(text).strip()
    m = _QTY.match(t)
    if not m:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {t!r}")
    num, exp, suf = m.groups()
    try:
        value = Decimal(num)
    except InvalidOperation:
        raise ValueError(f"invalid quantity {t!r}") from None
    if exp:
        return value * (Decimal(10) ** int(exp[1:]))
    return value * _SUFFIX[suf or ""]


# ---- the kubelet's lookups ----------------------------------------------------------------------

class _Sources:
    """ConfigMaps and Secrets of the pod's namespace, each fetched once."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        key = (kind, name)
        if key not in self.cache:
            resource = "configmaps" if kind == "configmap" else "secrets"
            try:
                self.cache[key] = self.client.get(resource, name, self.namespace)
            except ApiError as e:
                if e.code != 404:
                    raise CreateContainerConfigError(
                        f"couldn't get {kind} {self.namespace}/{name}: {e}") from None
                self.cache[key] = None
        return self.cache[key]

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        obj = self.get(kind, name)
        if obj is None:
            return None
        if kind == "configmap":
            return {k: str(v) for k, v in (obj.get("data") or {}).items()}
        out = {k: str(v) for k, v in (obj.get("stringData") or {}).items()}
        for k, v in (obj.get("data") or {}).items():
            try:
                out[k] = base64.b64decode(v or "").decode("utf-8", errors="replace")
            except (ValueError, TypeError):
                out[k] = str(v)
        return out


def _field_value(path: str, pod: dict[str, Any], pod_ip: str | None, host_ip: str | None) -> str:
    m = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    st = pod.get("status") or {}
    mm = _FIELD_MAP.match(path)
    if mm:
        return str(((m.get(mm.group(1)) or {}).get(mm.group(2))) or "")
    if path == "metadata.name":
        return m.get("name") or ""
    if path == "metadata.namespace":
        return m.get("namespace") or ""
    if path == "metadata.uid":
        return m.get("uid") or ""
    if path == "spec.nodeName":
        return spec.get("nodeName") or ""
    if path == "spec.serviceAccountName":
        return spec.get("serviceAccountName") or ""
    if path in ("status.podIP", "status.podIPs"):
        return pod_ip or st.get("podIP") or ""
    if path in ("status.hostIP", "status.hostIPs"):
        return host_ip or st.get("hostIP") or ""
    raise CreateContainerConfigError(f"unsupported fieldPath: {path}")


_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _resource_value(ref: dict[str, Any], pod: dict[str, Any], container: dict[str, Any],
                    allocatable: dict[str, str]) -> str:
    name = ref.get("containerName") or container.get("name")
    spec = pod.get("spec") or {}
    target = container
    if name and name != container.get("name"):
        target = next((c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                       if c.get("name") == name), None)
        if target is None:
            raise CreateContainerConfigError(f"container {name} not found")
    field = ref.get("resource") or ""
    kind, _, res = field.partition(".")
    if kind not in ("limits", "requests") or res not in _RESOURCES:
        raise CreateContainerConfigError(f"unsupported container resource : {field}")
    resources = target.get("resources") or {}
    raw = (resources.get(kind) or {}).get(res)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(res)       # requests default to limits
    if raw is None and kind == "limits":
        raw = allocatable.get(res)                           # the node's allocatable
    try:
        value = parse_quantity(raw) if raw is not None else Decimal(0)
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError as e:
        raise CreateContainerConfigError(str(e)) from None
    if divisor <= 0:
        divisor = Decimal(1)
    if res == "cpu":
        # millicores, divided and rounded up (convertResourceCPUToString)
        milli = math.ceil(value * 1000)
        dmilli = max(1, math.ceil(divisor * 1000))
        return str(math.ceil(Decimal(milli) / Decimal(dmilli)))
    return str(math.ceil(math.ceil(value) / max(Decimal(1), math.ceil(divisor))))


def resolve_env(client: Any, pod: dict[str, Any], container: dict[str, Any], *,
                pod_ip: str | None = None, host_ip: str | None = None,
                node_allocatable: dict[str, str] | None = None,
                warnings: list[str] | None = None) -> dict[str, str]:
    """The environment of `container` in `pod` (insertion order: envFrom, then env).
    Raises CreateContainerConfigError with the kubelet's message."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    src = _Sources(client, ns)
    env: dict[str, str] = {}

    for ef in container.get("envFrom") or []:
        if not isinstance(ef, dict):
            continue
        prefix = ef.get("prefix") or ""
        for kind, ref_key, label in (("configmap", "configMapRef", "configMap"),
                                     ("secret", "secretRef", "secret")):
            ref = ef.get(ref_key)
            if ref is None:
                continue
            name = (ref or {}).get("name") or ""
            data = src.data(kind, name)
            if data is None:
                if (ref or {}).get("optional"):
                    continue
                raise CreateContainerConfigError(f'{kind} "{name}" not found')
            invalid = []
            for k, v in data.items():
                k = prefix + k
                if not _ENV_NAME.match(k):
                    invalid.append(k)
                    continue
                env[k] = v
            if invalid and warnings is not None:
                warnings.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {label} "
                                f"{ns}/{name} were skipped since they are considered invalid "
                                "environment variable names.")

    for e in container.get("env") or []:
        if not isinstance(e, dict) or "name" not in e:
            continue
        name = e["name"]
        value = e.get("value")
        vf = e.get("valueFrom")
        if value not in (None, ""):
            env[name] = expand(str(value), mapping_for(env))
            continue
        if not vf:
            env[name] = ""
            continue
        if vf.get("fieldRef"):
            env[name] = _field_value(vf["fieldRef"].get("fieldPath") or "", pod, pod_ip, host_ip)
        elif vf.get("resourceFieldRef"):
            env[name] = _resource_value(vf["resourceFieldRef"], pod, container, node_allocatable or {})
        elif vf.get("configMapKeyRef") or vf.get("secretKeyRef"):
            is_cm = bool(vf.get("configMapKeyRef"))
            ref = vf.get("configMapKeyRef") if is_cm else vf.get("secretKeyRef")
            kind, label = ("configmap", "ConfigMap") if is_cm else ("secret", "Secret")
            obj_name, key = ref.get("name") or "", ref.get("key") or ""
            optional = bool(ref.get("optional"))
            data = src.data(kind, obj_name)
            if data is None:
                if optional:
                    continue
                raise CreateContainerConfigError(f'{kind} "{obj_name}" not found')
            if key not in data:
                if optional:
                    continue
                raise CreateContainerConfigError(f"couldn't find key {key} in {label} {ns}/{obj_name}")
            env[name] = data[key]
        else:
            env[name] = ""
    return env


__all__ = ["CreateContainerConfigError", "resolve_env", "expand", "parse_quantity"]
