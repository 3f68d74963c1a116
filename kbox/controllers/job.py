"""The Job controller: runs pods until enough of them succeed.

Behaviour copied from kube-controller-manager's job controller (NonIndexed
and Indexed completion modes):

- Pods come from the template with a controller ownerReference and the
  labels batch.kubernetes.io/job-name / controller-uid (and the legacy
  job-name / controller-uid), in slow-start batches; expectations keep a
  stale cache from creating twice.
- Up to `parallelism` pods run at once, never more than the completions
  still missing. Without `completions` (work-queue jobs) the job is done
  when a pod succeeded and none is running.
- Indexed mode: each pod owns one completion index in 0..completions-1
  (annotation and label batch.kubernetes.io/job-completion-index, name
  `<job>-<index>-xxxxx`, hostname `<job>-<index>`, env JOB_COMPLETION_INDEX
  from the annotation); missing indexes are started lowest first, a failed
  index gets a new pod with the same index, duplicates and out-of-range
  indexes are deleted, and the job is complete when every index succeeded
  (status.completedIndexes "0-2,4").
- Failed pods count against `backoffLimit` (default 6; with restartPolicy
  OnFailure container restarts count too). Past it: condition Failed,
  reason BackoffLimitExceeded, running pods deleted, Warning event.
  Replacement pods for failed ones wait 10 s, doubling per failure (max
  6 minutes), on the controller's clock.
- `activeDeadlineSeconds` from startTime: Failed / DeadlineExceeded.
- Success: conditions SuccessCriteriaMet then Complete, completionTime,
  event Completed "Job completed".
- `suspend`: running pods deleted, condition Suspended.
- `ttlSecondsAfterFinished`: the finished Job is deleted (background
  propagation) that long after it finished.
- Status: active, ready, succeeded, failed, terminating, startTime,
  completionTime, conditions.
"""

from __future__ import annotations

import logging
from typing import Any

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.api.objects import Obj, deep_copy, key_of, split_key
from kbox.clock import Clock, iso_time, parse_time
from kbox.controllers import podutil
from kbox.controllers.base import Controller, OwnedPodHandlers
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_LIMIT = 6
BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def pod_index(pod: Obj) -> int | None:
    """The completion index a pod of an Indexed job carries (None: missing or malformed)."""
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    if raw is None:
        raw = (pod["metadata"].get("labels") or {}).get(INDEX_KEY)
    try:
        i = int(raw)
    except (TypeError, ValueError):
        return None
    return i if i >= 0 else None


def format_indexes(indexes: set[int] | list[int]) -> str:
    """Kubernetes' interval text: sorted, runs of three or more as "a-b" ("1,3-5,7")."""
    out: list[str] = []
    xs = sorted(set(indexes))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{xs[i]}-{xs[j]}")
        else:
            out.extend(str(x) for x in xs[i:j + 1])
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, limit: int | None = None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            else:
                out.add(int(part))
        except ValueError:
            continue
    return {i for i in out if i >= 0 and (limit is None or i < limit)}


def _cond(job: Obj, ctype: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_finished(job: Obj) -> bool:
    for t in ("Complete", "Failed"):
        c = _cond(job, t)
        if c and c.get("status") == "True":
            return True
    return False


def finish_time(job: Obj) -> float | None:
    st = job.get("status") or {}
    if st.get("completionTime"):
        return parse_time(st["completionTime"])
    for t in ("Complete", "Failed"):
        c = _cond(job, t)
        if c and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None


class JobController(OwnedPodHandlers, Controller):
    owner_kind = "Job"
    name = "job-controller"
    workers = 1   # see Controller.workers

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock, *,
                 recorder: EventRecorder | None = None, burst: int = 500) -> None:
        super().__init__(client, informers, clock, recorder=recorder)
        self.burst = burst
        self.expectations = podutil.Expectations(self.clock)
        self.job_informer = informers.informer("jobs")
        self.pod_informer = informers.informer("pods")
        # when we first saw each pod of ours failed: the clock of the recreate backoff
        self._failed_seen: dict[str, float] = {}
        self.job_informer.add_handler(self._job, lambda o, n: self._job(n), self._job_deleted)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ---- handlers (enqueue only) --------------------------------------------------
    def _job(self, job: Obj) -> None:
        self.enqueue(key_of(job))

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.delete(key_of(job))
        self.enqueue(key_of(job))

    def _pod_deleted(self, pod: Obj) -> None:
        if self._owner_key(pod):
            self._failed_seen.pop(pod["metadata"].get("uid", ""), None)
        super()._pod_deleted(pod)

    # ---- reconcile ----------------------------------------------------------------
    def sync(self, key: str) -> None:
        job = self.job_informer.get(key)
        if job is None:
            self.expectations.delete(key)
            return
        now = self.clock.now()
        if is_finished(job):
            self._handle_ttl(job, key, now)
            return
        if podutil.is_terminating(job):
            return
        spec = job.get("spec") or {}
        uid = job["metadata"].get("uid", "")
        # the pods this Job controls (API defaulting gives it a selector on its own uid)
        pods = list(self.pod_informer.by_index("controller", uid))
        active = [p for p in pods if podutil.is_pod_active(p)]
        succeeded = [p for p in pods if podutil.pod_phase(p) == "Succeeded"]
        failed = [p for p in pods if podutil.pod_phase(p) == "Failed"]
        terminating = [p for p in pods if podutil.is_terminating(p)
                       and podutil.pod_phase(p) not in ("Succeeded", "Failed")]
        for p in failed:
            self._failed_seen.setdefault(p["metadata"].get("uid", ""), now)
        old_status = job.get("status") or {}
        status: dict[str, Any] = deep_copy(old_status)
        conds: list[dict[str, Any]] = status.get("conditions") or []
        start = parse_time(status.get("startTime"))
        if start is None and not spec.get("suspend"):
            start = now
            status["startTime"] = iso_time(now)
        n_failed = len(failed)
        restarts = 0
        tmpl_spec = ((spec.get("template") or {}).get("spec") or {})
        if tmpl_spec.get("restartPolicy") == "OnFailure":
            restarts = sum(podutil.max_container_restarts(p) for p in active)
        backoff_limit = spec.get("backoffLimit")
        backoff_limit = DEFAULT_BACKOFF_LIMIT if backoff_limit is None else int(backoff_limit)
        completions = spec.get("completions")
        parallelism = spec.get("parallelism")
        parallelism = 1 if parallelism is None else int(parallelism)
        indexed = spec.get("completionMode") == "Indexed" and completions is not None
        done_idx: set[int] = set()
        if indexed:
            # completed indexes are remembered in status, so a deleted succeeded pod still counts
            done_idx = parse_indexes(old_status.get("completedIndexes"), int(completions))
            done_idx |= {i for i in (pod_index(p) for p in succeeded)
                         if i is not None and i < int(completions)}
            n_succeeded = len(done_idx)
        else:
            n_succeeded = len(succeeded)
        iso_now = iso_time(now)

        failure: tuple[str, str] | None = None
        if n_failed + restarts > backoff_limit:
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif spec.get("activeDeadlineSeconds") is not None and start is not None \
                and now - start >= int(spec["activeDeadlineSeconds"]):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")

        complete = False
        if failure is None:
            if completions is not None:
                complete = n_succeeded >= int(completions)
            else:
                complete = n_succeeded > 0 and not active
        manage_error: Exception | None = None
        if failure is not None:
            self._delete_pods(job, key, active)
            conds = [c for c in conds if c.get("type") not in ("FailureTarget", "Failed")]
            conds.append({"type": "FailureTarget", "status": "True", "lastProbeTime": iso_now,
                          "lastTransitionTime": iso_now, "reason": failure[0], "message": failure[1]})
            conds.append({"type": "Failed", "status": "True", "lastProbeTime": iso_now,
                          "lastTransitionTime": iso_now, "reason": failure[0], "message": failure[1]})
            self.recorder.warning(job, failure[0], failure[1])
            active = []
        elif complete:
            self._delete_pods(job, key, active)
            active = []
            conds = [c for c in conds if c.get("type") not in ("SuccessCriteriaMet", "Complete")]
            conds.append({"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": iso_now,
                          "lastTransitionTime": iso_now, "reason": "CompletionsReached",
                          "message": "Reached expected number of succeeded pods"})
            conds.append({"type": "Complete", "status": "True", "lastProbeTime": iso_now,
                          "lastTransitionTime": iso_now, "reason": "CompletionsReached",
                          "message": "Reached expected number of succeeded pods"})
            status["completionTime"] = iso_now
            self.recorder.normal(job, "Completed", "Job completed")
        elif spec.get("suspend"):
            if active:
                self._delete_pods(job, key, active)
                active = []
            if not any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conds):
                conds = [c for c in conds if c.get("type") != "Suspended"]
                conds.append({"type": "Suspended", "status": "True", "lastProbeTime": iso_now,
                              "lastTransitionTime": iso_now, "reason": "JobSuspended",
                              "message": "Job suspended"})
                self.recorder.normal(job, "Suspended", "Job suspended")
        else:
            sus = next((c for c in conds if c.get("type") == "Suspended"), None)
            if sus is not None and sus.get("status") == "True":
                sus.update({"status": "False", "reason": "JobResumed", "message": "Job resumed",
                            "lastTransitionTime": iso_now, "lastProbeTime": iso_now})
                self.recorder.normal(job, "Resumed", "Job resumed")
            if self.expectations.satisfied(key) and indexed:
                active, manage_error = self._manage_indexed(job, key, active, failed, done_idx,
                                                            int(completions), parallelism, now)
            elif self.expectations.satisfied(key):
                if completions is not None:
                    want = min(parallelism, max(0, int(completions) - n_succeeded))
                else:
                    want = 0 if n_succeeded > 0 else parallelism
                diff = want - len(active)
                if diff > 0:
                    delay = self._backoff_remaining(failed, now)
                    if delay > 0:
                        self.queue.add_after(key, delay)
                    else:
                        manage_error = self._create_pods(job, key, min(diff, self.burst))
                elif diff < 0:
                    victims = podutil.rank_pods_for_deletion(active)[:-diff]
                    self._delete_pods(job, key, victims)
                    active = [p for p in active if p not in victims]
            if spec.get("activeDeadlineSeconds") is not None and start is not None:
                self.queue.add_after(key, max(0.0, start + int(spec["activeDeadlineSeconds"]) - now))

        status["conditions"] = conds
        if not conds:
            status.pop("conditions")
        if indexed and done_idx:
            status["completedIndexes"] = format_indexes(done_idx)
        elif indexed:
            status.pop("completedIndexes", None)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if podutil.is_pod_ready(p))
        status["succeeded"] = n_succeeded
        status["failed"] = n_failed
        status["terminating"] = len(terminating)
        for k in ("active", "succeeded", "failed", "terminating"):
            if not status[k]:
                status.pop(k)
        self._update_status(job, status)
        if manage_error is not None:
            raise manage_error

    def _backoff_remaining(self, failed: list[Obj], now: float) -> float:
        if not failed:
            return 0.0
        last = max(self._failed_seen.get(p["metadata"].get("uid", ""), now) for p in failed)
        delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** (len(failed) - 1)))
        return max(0.0, last + delay - now)

    def _manage_indexed(self, job: Obj, key: str, active: list[Obj], failed: list[Obj],
                        done: set[int], completions: int, parallelism: int,
                        now: float) -> tuple[list[Obj], Exception | None]:
        """One pod per missing index: keep the oldest per index, start the lowest missing."""
        keep: dict[int, Obj] = {}
        extra: list[Obj] = []
        for p in sorted(active, key=lambda p: (parse_time(p["metadata"].get("creationTimestamp")) or 0,
                                               p["metadata"]["name"])):
            i = pod_index(p)
            if i is None or i >= completions or i in done or i in keep:
                extra.append(p)
            else:
                keep[i] = p
        over = len(keep) - parallelism
        if over > 0:
            # too many running (parallelism lowered): stop the highest indexes
            for i in sorted(keep, reverse=True)[:over]:
                extra.append(keep.pop(i))
        if extra:
            self._delete_pods(job, key, extra)
        active = list(keep.values())
        missing = [i for i in range(completions) if i not in done and i not in keep]
        todo = missing[:max(0, parallelism - len(keep))][:self.burst]
        if not todo:
            return active, None
        delay = self._backoff_remaining(failed, now)
        if delay > 0:
            self.queue.add_after(key, delay)
            return active, None
        return active, self._create_pods(job, key, len(todo), indexes=todo)

    def _create_pods(self, job: Obj, key: str, n: int,
                     indexes: list[int] | None = None) -> Exception | None:
        m = job["metadata"]
        ns = m.get("namespace")
        template = deep_copy((job.get("spec") or {}).get("template") or {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault(LABEL_CONTROLLER_UID, m.get("uid"))
        labels.setdefault(LABEL_JOB_NAME, m["name"])
        labels.setdefault("controller-uid", m.get("uid"))
        labels.setdefault("job-name", m["name"])
        self.expectations.expect_creations(key, n)
        todo = iter(indexes or [])

        def create_one() -> None:
            if indexes is None:
                pod = podutil.pod_from_template(template, job)
            else:
                pod = self._indexed_pod(template, job, next(todo))
            try:
                created = self.client.create("pods", pod, ns)
            except ApiError as e:
                self.recorder.warning(job, "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.normal(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

        ok, err = podutil.slow_start_batch(n, create_one)
        for _ in range(n - ok):
            self.expectations.creation_observed(key)
        return err

    @staticmethod
    def _indexed_pod(template: Obj, job: Obj, index: int) -> Obj:
        name = job["metadata"]["name"]
        pod = podutil.pod_from_template(template, job, generate_name=f"{name}-{index}-")
        meta = pod["metadata"]
        meta.setdefault("annotations", {})[INDEX_KEY] = str(index)
        meta.setdefault("labels", {})[INDEX_KEY] = str(index)
        spec = pod["spec"]
        if not spec.get("hostname"):
            spec["hostname"] = f"{name}-{index}"
        env_var = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            env = c.setdefault("env", [])
            if not any(e.get("name") == INDEX_ENV for e in env):
                env.append(dict(env_var, valueFrom=deep_copy(env_var["valueFrom"])))
        return pod

    def _delete_pods(self, job: Obj, key: str, pods: list[Obj]) -> None:
        if not pods:
            return
        self.expectations.expect_deletions(key, [key_of(p) for p in pods])
        for p in pods:
            m = p["metadata"]
            try:
                self.client.delete("pods", m["name"], m.get("namespace"))
                self.recorder.normal(job, "SuccessfulDelete", f"Deleted pod: {m['name']}")
            except ApiError as e:
                self.expectations.deletion_observed(key, key_of(p))
                if e.code != 404:
                    raise

    def _handle_ttl(self, job: Obj, key: str, now: float) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or podutil.is_terminating(job):
            return
        done = finish_time(job) or now
        left = done + int(ttl) - now
        if left > 0:
            self.queue.add_after(key, left)
            return
        ns, name = split_key(key)
        try:
            self.client.delete("jobs", name, ns, propagation_policy="Background",
                               preconditions={"uid": job["metadata"].get("uid")})
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    def _update_status(self, job: Obj, status: dict[str, Any]) -> None:
        if (job.get("status") or {}) == status:
            return
        new = deep_copy(job)
        new["status"] = status
        try:
            self.client.update_status("jobs", new, job["metadata"].get("namespace"))
        except ApiError as e:
            if e.code != 404:
                raise


__all__ = ["JobController", "format_indexes", "is_finished", "parse_indexes", "pod_index"]
