"""Pods: defaults (container pull policy, probes, grace period, ...), QoS class,
spec validation, and the update rule that a pod's spec is fixed once created
apart from images, activeDeadlineSeconds and added tolerations.

Binding a pod to a node goes through pods/binding (ApiServer.bind), never
through an update: an update that sets or changes spec.nodeName is refused
by the same rule, as in Kubernetes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import orjson

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import Cause, required
from kbox.api.kinds.podspec import (default_pod, qos_class, validate_pod_spec,
                                    validate_pod_spec_update)
from kbox.api.models import core
from kbox.api.models.base import check
from kbox.api.objects import Obj, exact_size
from kbox.api.strategy import register


# Pods made from one template have byte-for-byte the same spec: remember the last
# specs that passed validation, so a ReplicaSet's thousand pods are checked once.
_VALID_SPECS: "OrderedDict[bytes, None]" = OrderedDict()
_VALID_SPECS_MAX = 512
_valid_specs_lock = threading.Lock()


def _spec_known_valid(raw: bytes) -> bool:
    with _valid_specs_lock:
        if raw in _VALID_SPECS:
            _VALID_SPECS.move_to_end(raw)
            return True
        return False


def _remember_valid_spec(raw: bytes) -> None:
    raw = exact_size(raw)            # kept: not orjson's whole buffer
    with _valid_specs_lock:
        _VALID_SPECS[raw] = None
        while len(_VALID_SPECS) > _VALID_SPECS_MAX:
            _VALID_SPECS.popitem(last=False)


@register("pods")
class PodStrategy(KindStrategy):
    model = None     # the spec is checked below, and only when it changed
    field_labels = frozenset({
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP",
        "status.nominatedNodeName"})
    bool_fields = frozenset({"spec.hostNetwork"})

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def prepare_status_update(self, obj: Obj, old: Obj) -> None:
        st, ost = obj.get("status"), old.get("status") or {}
        if isinstance(st, dict) and "qosClass" not in st and "qosClass" in ost:
            st["qosClass"] = ost["qosClass"]     # the QoS class never changes

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_pod(spec)
        st = obj.get("status")
        if isinstance(st, dict) and "qosClass" not in st:
            st["qosClass"] = qos_class(spec)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec")
        if old is not None and spec == old.get("spec"):
            return []      # status and metadata writes: the spec was checked when written
        if spec is None:
            return [required("spec.containers")]
        raw = None
        if old is None:
            try:
                raw = orjson.dumps(spec)
            except TypeError:
                raw = None          # not JSON-shaped: the checks below say where
            if raw is not None and _spec_known_valid(raw):
                return []
        causes = check(core.PodSpec, spec, "spec")
        if causes:
            return causes
        causes = validate_pod_spec(spec, "spec")
        if old is not None and not causes:
            causes = validate_pod_spec_update(spec, old.get("spec") or {})
        if raw is not None and not causes:
            _remember_valid_spec(raw)
        return causes
