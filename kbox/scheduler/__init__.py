"""kbox's kube-scheduler: scheduling queue, filter and score plugins, binding.

`Scheduler(client, informers, clock, config=..., rng=...)` is what the
composition root builds; see `kbox.scheduler.scheduler` for how it works.
"""

from __future__ import annotations

from kbox.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler"]
