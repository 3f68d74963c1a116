"""The scheduling queue: activeQ, backoffQ and unschedulable pods, as in kube-scheduler.

- activeQ: pods ready to be tried, highest priority first, then oldest first.
- backoffQ: pods that failed and wait out their back-off (initial back-off
  doubling per attempt up to the maximum: 1 s, 2 s, 4 s, 8 s, 10 s ...).
- unschedulable: pods that failed because no node fits. They wait for a
  cluster change that may help (`move_all`: a node added or changed, an
  assigned pod gone) and then go to activeQ, or to backoffQ if still backing
  off. A pod that sits here longer than `max_unschedulable` seconds is
  retried anyway (kube-scheduler's periodic flush).

If a move request arrives while a pod is being tried, a failure of that try
sends the pod to backoffQ rather than unschedulable, so the change that might
have helped it is not missed (kube-scheduler's moveRequestCycle).

All times are the clock's monotonic seconds, so FakeClock tests assert the
exact moment a pod becomes active again. Heaps use lazy deletion: each entry
carries the pod's generation and stale entries are skipped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Any

from kbox.clock import Clock
from kbox.scheduler.info import PodInfo

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "inflight"


class QueuedPod:
    __slots__ = (
        "attempts",
        "cycle",
        "gen",
        "gone",
        "key",
        "last_message",
        "pi",
        "seq",
        "timestamp",
        "where",
    )

    def __init__(self, pi: PodInfo, seq: int, now: float) -> None:
        self.key = pi.key
        self.pi = pi
        self.attempts = 0
        self.timestamp = now
        self.seq = seq
        self.where = ""
        self.cycle = -1
        self.gen = 0
        self.gone = False
        self.last_message = ""


class SchedulingQueue:
    def __init__(self, clock: Clock, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 60.0) -> None:
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._cond = threading.Condition()
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, int, int, str]] = []          # (-priority, seq, gen, key)
        self._backoff: list[tuple[float, int, int, str]] = []       # (ready at, seq, gen, key)
        self._unsched: dict[str, QueuedPod] = {}
        self._unsched_deadlines: list[tuple[float, int, int, str]] = []
        self._seq = itertools.count()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._closed = False

    # ---- adding and removing -----------------------------------------------------------
    def add(self, pi: PodInfo) -> None:
        """A new pending pod (or a newer version of one already queued)."""
        with self._cond:
            qp = self._pods.get(pi.key)
            if qp is not None:
                self._update_locked(qp, pi)
                return
            qp = QueuedPod(pi, next(self._seq), self.clock.monotonic())
            self._pods[pi.key] = qp
            self._push_active(qp)
            self._cond.notify()

    def update(self, pi: PodInfo) -> None:
        self.add(pi)

    def _update_locked(self, qp: QueuedPod, pi: PodInfo) -> None:
        old = qp.pi
        qp.pi = pi
        if qp.where == ACTIVE and old.priority != pi.priority:
            self._push_active(qp)
        elif qp.where == UNSCHEDULABLE and _spec_changed(old.pod, pi.pod):
            # the pod itself changed (tolerations, selector, requests...): it may fit now
            self._unsched.pop(qp.key, None)
            self._requeue(qp, self.clock.monotonic())
            self._cond.notify()

    def delete(self, key: str) -> None:
        with self._cond:
            qp = self._pods.pop(key, None)
            if qp is None:
                return
            qp.gone = True
            qp.gen += 1
            self._unsched.pop(key, None)

    def done(self, qp: QueuedPod) -> None:
        """The pod left the scheduler's hands (bound, or no longer ours)."""
        with self._cond:
            if self._pods.get(qp.key) is qp:
                del self._pods[qp.key]
            qp.gone = True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---- taking ------------------------------------------------------------------------
    def pop(self, timeout: float | None = 0) -> QueuedPod | None:
        """The next pod to try; waits up to `timeout` clock seconds (None: until closed)."""
        clock = self.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = clock.monotonic()
                self._flush(now)
                while self._active:
                    _, _, gen, key = heapq.heappop(self._active)
                    qp = self._pods.get(key)
                    if qp is None or qp.gen != gen or qp.where != ACTIVE:
                        continue
                    qp.where = IN_FLIGHT
                    qp.gen += 1
                    qp.attempts += 1
                    self.scheduling_cycle += 1
                    qp.cycle = self.scheduling_cycle
                    return qp
                if timeout == 0:
                    return None
                wait = self._next_wakeup(now)
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                clock.wait(self._cond, wait)

    # ---- failures and cluster changes ----------------------------------------------------
    def backoff_duration(self, attempts: int) -> float:
        d = self.initial_backoff
        for _ in range(1, max(1, attempts)):
            d *= 2
            if d >= self.max_backoff:
                return self.max_backoff
        return min(d, self.max_backoff)

    def add_unschedulable(self, qp: QueuedPod, *, error: bool = False) -> None:
        """Put back a pod whose try failed: unschedulable, or backoffQ if something moved meanwhile
        (or the failure was an error rather than "no node fits")."""
        with self._cond:
            if qp.gone or self._pods.get(qp.key) is not qp:
                return
            now = self.clock.monotonic()
            qp.timestamp = now
            if error or self.move_request_cycle >= qp.cycle:
                self._push_backoff(qp, now)
            else:
                qp.where = UNSCHEDULABLE
                qp.gen += 1
                self._unsched[qp.key] = qp
                heapq.heappush(self._unsched_deadlines,
                               (now + self.max_unschedulable, qp.seq, qp.gen, qp.key))
            self._cond.notify()

    def move_all(self, event: str = "") -> int:
        """A cluster change that may help: every unschedulable pod gets another chance."""
        with self._cond:
            self.move_request_cycle = self.scheduling_cycle
            if not self._unsched:
                return 0
            now = self.clock.monotonic()
            moved = list(self._unsched.values())
            self._unsched.clear()
            for qp in moved:
                self._requeue(qp, now)
            self._cond.notify_all()
            return len(moved)

    def move_if(self, pred: Any, event: str = "") -> int:
        """Like move_all, but only the unschedulable pods whose PodInfo `pred` accepts
        (an event only some failures care about, e.g. a pod added for pod affinity)."""
        with self._cond:
            if not self._unsched:
                return 0
            moved = [qp for qp in self._unsched.values() if pred(qp.pi)]
            if not moved:
                return 0
            now = self.clock.monotonic()
            for qp in moved:
                del self._unsched[qp.key]
                self._requeue(qp, now)
            self._cond.notify_all()
            return len(moved)

    def _requeue(self, qp: QueuedPod, now: float) -> None:
        if now < qp.timestamp + self.backoff_duration(qp.attempts):
            self._push_backoff(qp, now)
        else:
            self._push_active(qp)

    # ---- internals -----------------------------------------------------------------------
    def _push_active(self, qp: QueuedPod) -> None:
        qp.where = ACTIVE
        qp.gen += 1
        heapq.heappush(self._active, (-qp.pi.priority, qp.seq, qp.gen, qp.key))

    def _push_backoff(self, qp: QueuedPod, now: float) -> None:
        qp.where = BACKOFF
        qp.gen += 1
        heapq.heappush(self._backoff, (qp.timestamp + self.backoff_duration(qp.attempts),
                                       qp.seq, qp.gen, qp.key))

    def _flush(self, now: float) -> None:
        b = self._backoff
        while b and b[0][0] <= now:
            _, _, gen, key = heapq.heappop(b)
            qp = self._pods.get(key)
            if qp is not None and qp.gen == gen and qp.where == BACKOFF:
                self._push_active(qp)
        d = self._unsched_deadlines
        while d and d[0][0] <= now:
            _, _, gen, key = heapq.heappop(d)
            qp = self._unsched.get(key)
            if qp is not None and qp.gen == gen:
                del self._unsched[key]
                self._requeue(qp, now)

    def _next_wakeup(self, now: float) -> float | None:
        times = []
        if self._backoff:
            times.append(self._backoff[0][0])
        if self._unsched_deadlines:
            times.append(self._unsched_deadlines[0][0])
        return max(0.0, min(times) - now) if times else None

    # ---- introspection (tests, dashboard) ------------------------------------------------
    def where(self, key: str) -> str | None:
        with self._cond:
            qp = self._pods.get(key)
            if qp is None:
                return None
            if qp.where == BACKOFF:
                # a backoff that has expired is active in effect, as after kube's 1 s flush
                self._flush(self.clock.monotonic())
            return qp.where

    def stats(self) -> dict[str, int]:
        with self._cond:
            out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
            for qp in self._pods.values():
                out[qp.where] = out.get(qp.where, 0) + 1
            return out

    def __len__(self) -> int:
        return len(self._pods)


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return (old.get("spec") != new.get("spec")
            or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"))
