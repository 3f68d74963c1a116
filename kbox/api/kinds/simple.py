"""Kinds with little to check beyond their shape: ServiceAccount, Endpoints,
Lease, ControllerRevision, plus Events (whose field selectors include
`source`, which is source.component)."""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, immutable, invalid, non_negative, required
from kbox.api.kinds.podspec import port_number
from kbox.api.models import apps, coordination, core
from kbox.api.objects import Obj
from kbox.api.strategy import register


@register("serviceaccounts")
class ServiceAccountStrategy(KindStrategy):
    model = core.ServiceAccount


@register("endpoints")
class EndpointsStrategy(KindStrategy):
    model = core.Endpoints

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        for i, s in enumerate(obj.get("subsets") or []):
            for part in ("addresses", "notReadyAddresses"):
                for j, a in enumerate(s.get(part) or []):
                    if not a.get("ip"):
                        out.append(required(f"subsets[{i}].{part}[{j}].ip"))
            for j, p in enumerate(s.get("ports") or []):
                port_number(out, f"subsets[{i}].ports[{j}].port", p.get("port"))
        return out


@register("leases")
class LeaseStrategy(KindStrategy):
    model = coordination.Lease

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        spec = obj.get("spec") or {}
        d = spec.get("leaseDurationSeconds")
        if isinstance(d, int) and d <= 0:
            out.append(invalid("spec.leaseDurationSeconds", d, "must be greater than 0"))
        non_negative(out, "spec.leaseTransitions", spec.get("leaseTransitions"))
        return out


@register("controllerrevisions")
class ControllerRevisionStrategy(KindStrategy):
    model = apps.ControllerRevision

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        rev = obj.get("revision")
        if rev is None:
            out.append(required("revision"))
        else:
            non_negative(out, "revision", rev)
        if old is not None and obj.get("data") != old.get("data"):
            out.append(immutable("data", None, "runtime.RawExtension{...}"))
        return out


@register("events")
class EventStrategy(KindStrategy):
    model = core.Event
    field_labels = frozenset({
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"})

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        out: list[Cause] = []
        io = obj.get("involvedObject") or {}
        ns = (obj.get("metadata") or {}).get("namespace")
        if io.get("namespace") and ns and io["namespace"] != ns and ns != "default":
            out.append(invalid("involvedObject.namespace", io["namespace"],
                               "does not match event.namespace"))
        t = obj.get("type")
        if t and t not in ("Normal", "Warning"):
            out.append({"reason": "FieldValueNotSupported", "field": "type",
                        "message": f'Unsupported value: "{t}": supported values: "Normal", "Warning"'})
        return out

    def field_value(self, obj: Obj, field: str) -> str:
        if field == "source":
            return (obj.get("source") or {}).get("component") or ""
        if field == "reportingComponent":
            return obj.get("reportingComponent") or ""
        return super().field_value(obj, field)
