"""Running registry commands from the dashboard without blocking it.

A command runs in a worker thread with a `Context` whose `out` / `err` are
`Sink`s: thread-safe buffers that ask the app to drain them with one
coalescing message (`SinkReady`), so a chatty `get -w` or `logs -f` costs one
repaint per batch, not per line. `stop` ends looping commands (`-w`, `-f`,
`wait`) when the user presses esc or runs another command.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

from textual.message import Message


class Sink(io.TextIOBase):
    """A text stream a worker thread writes to and the app thread drains."""

    def __init__(self, notify: Callable[["Sink"], None], name: str = "output") -> None:
        super().__init__()
        self.name = name
        self._notify = notify
        self._lock = threading.Lock()
        self._chunks: list[tuple[str, str]] = []       # (stream, text): "out" or "err"
        self._pending = False

    def stream(self, which: str) -> "_Stream":
        return _Stream(self, which)

    def put(self, which: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._chunks.append((which, text))
            if self._pending:
                return
            self._pending = True
        self._notify(self)

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            chunks, self._chunks = self._chunks, []
            self._pending = False
        return chunks


class _Stream(io.TextIOBase):
    def __init__(self, sink: Sink, which: str) -> None:
        super().__init__()
        self.sink, self.which = sink, which

    def write(self, s: str) -> int:
        self.sink.put(self.which, s)
        return len(s)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


class SinkReady(Message):
    """Text is waiting in `sink`; one message stands for any number of writes."""

    def __init__(self, sink: Sink) -> None:
        super().__init__()
        self.sink = sink

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SinkReady) and message.sink is self.sink


class CommandDone(Message):
    def __init__(self, sink: Sink, line: str, code: int) -> None:
        super().__init__()
        self.sink, self.line, self.code = sink, line, code


def split_lines(chunks: list[tuple[str, str]], partial: dict[str, str]) -> list[tuple[str, str]]:
    """Whole lines from written chunks; an unfinished line waits in `partial` (per stream)."""
    lines: list[tuple[str, str]] = []
    for which, text in chunks:
        text = partial.pop(which, "") + text
        parts = text.split("\n")
        for line in parts[:-1]:
            lines.append((which, line))
        if parts[-1]:
            partial[which] = parts[-1]
    return lines
