"""The reconcile-loop skeleton every controller shares.

A controller registers informer handlers that enqueue keys, and implements
`sync(key)`, which reads the informer caches and makes the world match. A
failing sync is retried with the queue's backoff; a successful one resets
it. Workers run in threads; tests drive `process_next()` / `run_until_idle()`
synchronously on a fake clock instead.
"""

from __future__ import annotations

import logging
import threading

from kbox.api.client import Client
from kbox.api.errors import ApiError
from kbox.clock import Clock, RealClock
from kbox.controllers.events import EventRecorder
from kbox.controllers.informer import InformerFactory
from kbox.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)


class Controller:
    #: name used in logs, thread names and as the Event source component
    name = "controller"
    workers = 1

    def __init__(self, client: Client, informers: InformerFactory, clock: Clock | None = None,
                 *, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.informers = informers
        self.clock = clock or RealClock()
        self.queue = WorkQueue(self.clock, name=self.name)
        self.recorder = recorder or EventRecorder(client, self.name, clock=self.clock)
        self._threads: list[threading.Thread] = []

    def sync(self, key: str) -> None:
        raise NotImplementedError

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def process_next(self, timeout: float | None = None) -> bool:
        """Take one key and sync it; False when there was nothing (or on shutdown)."""
        return self.queue.process_next(self.sync, timeout=timeout, name=self.name)

    def run_until_idle(self, limit: int = 100000) -> int:
        """Process every ready key synchronously (tests); returns how many."""
        return self.queue.run_until_idle(self.sync, limit=limit, name=self.name)

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, daemon=True, name=f"{self.name}-{i}")
            t.start()
            self._threads.append(t)

    def _worker(self) -> None:
        while not self.queue.shutting_down:
            self.process_next()

    def stop(self) -> None:
        self.queue.shutdown()
        self.recorder.stop()
