"""Jobs (batch/v1): defaults (parallelism/completions, backoffLimit 6,
NonIndexed), the generated selector on the Job's own uid with the matching
template labels, template restartPolicy OnFailure/Never, and the fields a
Job may not change once created (selector, template, completions).
"""

from __future__ import annotations

from kbox.api.kinds.base import KindStrategy
from kbox.api.kinds.common import (Cause, enum, go_selector, immutable, invalid, non_negative,
                                   required)
from kbox.api.kinds.workload import (default_template, reset_status,
                                     validate_selector_and_template)
from kbox.api.models import batch
from kbox.api.objects import Obj
from kbox.api.strategy import register

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
JOB_RESTART_POLICIES = ("OnFailure", "Never")


@register("jobs")
class JobStrategy(KindStrategy):
    model = batch.Job
    field_labels = frozenset({"status.successful"})

    def prepare_create(self, obj: Obj) -> None:
        reset_status(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("manualSelector") is True:
            return
        # Kubernetes selects a Job's pods by the Job's uid unless told otherwise
        m = obj["metadata"]
        uid, name = m.get("uid", ""), m.get("name", "")
        sel = spec.get("selector")
        if not isinstance(sel, dict):
            sel = spec["selector"] = {}
        ml = sel.get("matchLabels")
        if not isinstance(ml, dict):
            ml = sel["matchLabels"] = {}
        ml.setdefault(CONTROLLER_UID, uid)
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            tm = tmpl.get("metadata")
            if not isinstance(tm, dict):
                tm = tmpl["metadata"] = {}
            labels = tm.get("labels")
            if not isinstance(labels, dict):
                labels = tm["labels"] = {}
            labels.setdefault(CONTROLLER_UID, uid)
            labels.setdefault(JOB_NAME, name)
            labels.setdefault(LEGACY_CONTROLLER_UID, uid)
            labels.setdefault(LEGACY_JOB_NAME, name)

    def apply_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        spec.setdefault("parallelism", 1)
        if spec.get("backoffLimitPerIndex") is None:
            spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        default_template(spec, restart_policy=False)
        m = obj.setdefault("metadata", {})
        tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if not m.get("labels") and tlabels:
            m["labels"] = dict(tlabels)

    def rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        out: list[Cause] = []
        for k in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
            non_negative(out, f"spec.{k}", spec.get(k))
        ads = spec.get("activeDeadlineSeconds")
        if isinstance(ads, int) and ads <= 0:
            out.append(invalid("spec.activeDeadlineSeconds", ads, "must be greater than or equal to 1"))
        enum(out, "spec.completionMode", spec.get("completionMode"), ("NonIndexed", "Indexed"))
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            out.append(required("spec.completions",
                                "when completion mode is Indexed"))
        out += validate_selector_and_template(spec, "job", restart_policies=JOB_RESTART_POLICIES,
                                              allow_deadline=True)
        if spec.get("manualSelector") is not True and spec.get("selector") is not None:
            uid = obj["metadata"].get("uid", "")
            want = {"matchLabels": {CONTROLLER_UID: uid}}
            if spec["selector"] != want:
                out.append({"reason": "FieldValueInvalid", "field": "spec.selector",
                            "message": f"Invalid value: {go_selector(spec['selector'])}: "
                                       "`selector` not auto-generated"})
        if old is not None:
            ospec = old.get("spec") or {}
            if spec.get("selector") != ospec.get("selector"):
                out.append(immutable("spec.selector", None, go_selector(spec.get("selector"))))
            if spec.get("template") != ospec.get("template"):
                out.append(immutable("spec.template", None, "core.PodTemplateSpec{...}"))
            if spec.get("completions") != ospec.get("completions"):
                out.append(immutable("spec.completions", spec.get("completions")))
            if spec.get("completionMode") != ospec.get("completionMode"):
                out.append(immutable("spec.completionMode", spec.get("completionMode")))
        return out

    def field_value(self, obj: Obj, field: str) -> str:
        if field == "status.successful":
            return str((obj.get("status") or {}).get("succeeded") or 0)
        return super().field_value(obj, field)
