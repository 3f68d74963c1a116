"""Screens over the dashboard: text (describe, YAML, logs), confirm, scale, help.

Text screens show the output of a registry command (the same `describe` and
`get -o yaml` as the CLI) streamed from a worker thread; esc stops a followed
`logs -f` and closes. Dangerous actions (delete, node kill) always pass
through `ConfirmScreen`, as k9s confirms its dangerous actions.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, RichLog, Static

from kbox.tui.runner import Sink, split_lines


class TextScreen(Screen):
    """The output of one command, full screen; esc stops it (logs -f) and goes back."""

    BINDINGS = [Binding("escape", "close", "Back", id="text.close"),
                Binding("q", "close", "Back", show=False, id="text.close-q")]

    def __init__(self, title: str, line: str) -> None:
        super().__init__()
        self.title_text = title
        self.line = line
        self.sink: Sink | None = None
        self._partial: dict[str, str] = {}
        self.plain: list[str] = []
        self.log_widget = RichLog(id="text-body", wrap=False, markup=False, highlight=False,
                                  max_lines=5000, auto_scroll=True)

    def compose(self) -> ComposeResult:
        yield Static(f" {self.title_text}   (esc: back)", id="text-title", markup=False)
        yield self.log_widget
        yield Footer()

    def on_mount(self) -> None:
        self.sink = self.app.start_command(self.line, target=self)  # type: ignore[attr-defined]

    def write_chunks(self, chunks: list[tuple[str, str]], final: bool = False) -> None:
        lines = split_lines(chunks, self._partial)
        if final:
            lines += [(w, t) for w, t in self._partial.items()]
            self._partial.clear()
        err = getattr(self.app, "role_style", lambda r: "")("status-failed")
        for which, text in lines:
            self.plain.append(text)
            self.log_widget.write(Text(text, style=err if which == "err" else ""))

    def text(self) -> str:
        return "\n".join(self.plain)

    def action_close(self) -> None:
        self.app.stop_command(self.sink)  # type: ignore[attr-defined]
        self.app.pop_screen()


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no for a dangerous action; the default button is No."""

    BINDINGS = [Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
                Binding("y", "answer(True)", "Yes", id="confirm.yes"),
                Binding("n", "answer(False)", "No", id="confirm.no")]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("No", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of a few actions (node: kill, stop or start)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                for value, label in self.choices:
                    yield Button(label, variant="error" if value == "kill" else "default", id=f"choice-{value}")
                yield Button("Cancel", variant="primary", id="choice-cancel")

    def on_mount(self) -> None:
        self.query_one("#choice-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        value = (event.button.id or "").removeprefix("choice-")
        self.dismiss(None if value == "cancel" else value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ScaleScreen(ModalScreen[int | None]):
    """Ask for a replica count; a bad number is said plainly and asked again."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="scale.cancel")]

    def __init__(self, target: str, current: int) -> None:
        super().__init__()
        self.target = target
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Scale {self.target} to how many replicas?", id="question")
            yield Input(str(self.current), id="replicas", restrict=r"[0-9]*")
            yield Label("", id="scale-error")

    def on_mount(self) -> None:
        self.query_one("#replicas", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text.isdigit():
            self.query_one("#scale-error", Label).update("replicas: must be a whole number >= 0")
            return
        self.dismiss(int(text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Keys (with their binding ids, for set_keymap), views, and the registry's commands."""

    BINDINGS = [Binding("escape", "close", "Close", id="help.close"),
                Binding("question_mark", "close", "Close", show=False, id="help.close-q")]

    def __init__(self, keys: list[tuple[str, str, str, bool]], views: list[str], commands: str) -> None:
        super().__init__()
        self.keys = keys
        self.views = views
        self.commands = commands

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys\n", "bold")
        for key, desc, bid, dangerous in self.keys:
            text.append(f"  {key:<10} {desc:<22} {bid}")
            if dangerous:
                text.append("  (dangerous: asks first)", "bold")
            text.append("\n")
        text.append("\nViews (type :NAME)\n", "bold")
        text.append("  " + "  ".join(f":{v}" for v in self.views) + "  :tree\n")
        text.append("\nPrompt\n", "bold")
        text.append("  :NAME view   /TEXT or /-l k=v filter   :theme NAME   :q quit\n"
                    "  any kbox command, as on the command line: get pods, scale deploy/web --replicas=3\n")
        text.append("\n")
        text.append(self.commands)
        with Vertical(id="help-dialog"):
            yield Static(" Help   (esc: close)", id="help-title")
            with VerticalScroll():
                yield Static(text, id="help-body")

    def action_close(self) -> None:
        self.dismiss(None)

