"""The command prompt: history, tab completion, and what a typed line means.

One line is either a dashboard word (`:pods`, `:tree`, `:theme NAME`, `:q`),
a filter (`/text`, `/-l app=web`), or a command of the shared registry in the
CLI's own syntax (`get pods`, `kbox get pods`, `:scale deploy/web
--replicas=3`). Completion offers verbs, kinds, object names (from the
dashboard's watch-fed caches) and each verb's flags, all read from the
registry, so the prompt never drifts from the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from kbox.api.resources import RESOURCES
from kbox.tui.views import view_words

DASHBOARD_WORDS = ("tree", "theme", "help", "quit", "q")
NODE_VERBS = {"cordon", "uncordon", "drain", "top"}
POD_VERBS = {"logs", "exec"}
KIND_VERBS = {"get", "describe", "delete", "scale", "label", "annotate", "edit", "wait", "rollout",
              "set", "top"}
ROLLOUT_ACTIONS = ("history", "pause", "restart", "resume", "status", "undo")


@dataclass(frozen=True)
class Parsed:
    """What a prompt line asks for: kind is 'view', 'dashboard', 'filter', 'command' or 'empty'."""
    kind: str
    word: str = ""
    arg: str = ""
    line: str = ""


def classify(line: str) -> Parsed:
    text = line.strip()
    if not text:
        return Parsed("empty")
    if text.startswith("/"):
        return Parsed("filter", arg=text[1:].strip())
    bare = text[1:].strip() if text.startswith(":") else text
    word, _, rest = bare.partition(" ")
    if word.lower() in view_words() and not rest.strip():
        return Parsed("view", word.lower())
    if word.lower() in DASHBOARD_WORDS:
        return Parsed("dashboard", word.lower(), rest.strip())
    return Parsed("command", line=bare)


def kind_words() -> list[str]:
    out: set[str] = set()
    for r in RESOURCES:
        out.update((r.plural, r.singular, *r.short_names))
    return sorted(out)


def _common_prefix(words: list[str]) -> str:
    return os.path.commonprefix(words) if words else ""


class Completer:
    """Tab completion for one line. `names(resource)` lists object names from the caches;
    `themes()` the theme names."""

    def __init__(self, names: Callable[[str], list[str]], themes: Callable[[], list[str]]) -> None:
        self.names = names
        self.themes = themes

    def candidates(self, line: str) -> tuple[str, list[str]]:
        """(the word being completed, what it may become)."""
        body = line[1:] if line.startswith(":") else line
        words = body.split()
        current = "" if (not words or body.endswith(" ")) else words[-1]
        done = words if current == "" else words[:-1]
        if done and done[0] in ("kbox", "kubectl"):
            done = done[1:]
        if not done:
            from kbox.cli.registry import names
            return current, sorted(set(names() + view_words() + list(DASHBOARD_WORDS)))
        verb = done[0]
        if verb == "theme":
            return current, self.themes()
        if verb == "tree":
            return current, self.names("deployments")
        if current.startswith("-"):
            return current, self._flags(verb)
        prev = done[-1]
        if prev in ("-n", "--namespace"):
            return current, self.names("namespaces")
        positional = [w for w in done[1:] if not w.startswith("-")]
        if verb == "rollout" and not positional:
            return current, list(ROLLOUT_ACTIONS)
        if verb == "rollout":
            positional = positional[1:]
        if verb in NODE_VERBS or (verb == "node" and positional):
            return current, self.names("nodes")
        if verb == "node":
            return current, ["add", "kill", "remove", "start", "stop"]
        if verb in POD_VERBS and not positional:
            return current, self.names("pods")
        if verb in KIND_VERBS or verb == "rollout":
            if "/" in current:
                kind, _, _ = current.partition("/")
                resource = _resource(kind)
                return current, [f"{kind}/{n}" for n in self.names(resource)] if resource else []
            if not positional:
                return current, kind_words()
            resource = _resource(positional[0])
            return current, self.names(resource) if resource else []
        return current, []

    def _flags(self, verb: str) -> list[str]:
        from kbox.cli.registry import CliError, lookup, parser_for
        try:
            parser = parser_for(lookup(verb))
        except CliError:
            return []
        return sorted({o for a in parser._actions for o in a.option_strings})

    def complete(self, line: str) -> tuple[str, list[str]]:
        """(the completed line, the matches left when more than one)."""
        current, options = self.candidates(line)
        matches = sorted({o for o in options if o.startswith(current)})
        if not matches:
            return line, []
        head = line[: len(line) - len(current)]
        if len(matches) == 1:
            return head + matches[0] + " ", []
        prefix = _common_prefix(matches)
        return head + prefix, matches


def _resource(word: str) -> str | None:
    from kbox.api.resources import lookup
    info = lookup(word)
    return info.plural if info else None


class Prompt(Input):
    """The `:` line: enter submits, up/down walk the history, tab completes."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="prompt.history-previous"),
        Binding("down", "history(1)", "Next", show=False, id="prompt.history-next"),
        Binding("tab", "complete", "Complete", show=False, priority=True, id="prompt.complete"),
        Binding("escape", "leave", "Leave", show=False, id="prompt.leave"),
    ]

    class Completions(Message):
        def __init__(self, options: list[str]) -> None:
            super().__init__()
            self.options = options

    class Left(Message):
        """The user pressed esc in the prompt."""

    def __init__(self, completer: Completer, **kw) -> None:
        super().__init__(**kw)
        self.completer = completer
        self.history: list[str] = []
        self._pos = 0

    def remember(self, line: str) -> None:
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._pos = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._pos = max(0, min(len(self.history), self._pos + step))
        self.value = self.history[self._pos] if self._pos < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        if not self.has_focus:
            return
        line, options = self.completer.complete(self.value)
        self.value = line
        self.cursor_position = len(line)
        self.post_message(self.Completions(options))

    def action_leave(self) -> None:
        self.value = ""
        self.post_message(self.Left())
