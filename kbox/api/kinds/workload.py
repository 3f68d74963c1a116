"""What Deployment, ReplicaSet, DaemonSet and Job share: a selector, a pod
template whose labels that selector must select, and template defaults.

Kubernetes checks these in ValidatePodTemplateSpecForReplicaSet and friends;
the messages below are theirs.
"""

from __future__ import annotations

from typing import Any

from kbox.api.kinds.common import (Cause, forbidden, go_selector, immutable, invalid, required,
                                   selector_matches, validate_label_selector)
from kbox.api.kinds.podspec import default_pod_spec, validate_pod_spec, validate_template_metadata
from kbox.api.models.base import go_string_map


def default_template(spec: dict[str, Any], *, restart_policy: bool = True) -> None:
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        default_pod_spec(tmpl["spec"], restart_policy=restart_policy)


def validate_selector_and_template(spec: dict[str, Any], kind_word: str, *,
                                   restart_policies: tuple[str, ...] = ("Always",),
                                   allow_deadline: bool = False) -> list[Cause]:
    """Selector present, valid and non-empty; template labels selected; template spec valid."""
    out: list[Cause] = []
    sel = spec.get("selector")
    if sel is None:
        out.append(required("spec.selector"))
    else:
        out += validate_label_selector(sel, "spec.selector")
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            out.append({"reason": "FieldValueInvalid", "field": "spec.selector",
                        "message": f"Invalid value: {go_selector(sel)}: empty selector is invalid "
                                   f"for {kind_word}"})
    tmpl = spec.get("template")
    if tmpl is None:
        out.append(required("spec.template"))
        return out
    meta = tmpl.get("metadata") or {}
    out += validate_template_metadata(meta, "spec.template.metadata")
    labels = meta.get("labels") or {}
    if sel is not None and (sel.get("matchLabels") or sel.get("matchExpressions")):
        if not selector_matches(sel, labels):
            out.append({"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                        "message": f"Invalid value: {go_string_map(labels)}: `selector` does not "
                                   "match template `labels`"})
    pod_spec = tmpl.get("spec")
    if pod_spec is None:
        out.append(required("spec.template.spec.containers"))
        return out
    out += validate_pod_spec(pod_spec, "spec.template.spec", restart_policies=restart_policies)
    if not allow_deadline and pod_spec.get("activeDeadlineSeconds") is not None:
        out.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                             "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return out


def selector_immutable(out: list[Cause], spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    if spec.get("selector") != old_spec.get("selector"):
        out.append(immutable("spec.selector", None, go_selector(spec.get("selector"))))


def replicas_rules(out: list[Cause], spec: dict[str, Any]) -> None:
    for k in ("replicas", "minReadySeconds"):
        v = spec.get(k)
        if isinstance(v, int) and v < 0:
            out.append(invalid(f"spec.{k}", v, "must be greater than or equal to 0"))


def reset_status(obj: dict[str, Any]) -> None:
    obj["status"] = {}


__all__ = ["default_template", "validate_selector_and_template", "selector_immutable", "replicas_rules", "reset_status"]
