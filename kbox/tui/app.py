"""The kbox dashboard: a live Textual view of one cluster that takes kubectl-like commands.

`KboxApp(client, clock=..., meta=...)` reads the cluster only through the
client (list + watch, in feed threads that never touch widgets) and applies
the changes as keyed diffs, at most ten times a second, inside
`batch_update()`. Commands typed at the prompt, bound to keys or picked in
the palette run through the CLI's one command registry in worker threads.

For tests and snapshots: `live=False` starts no feed threads and
`ticks=False` no timers; `refresh_now()` lists everything and applies it
synchronously, ages come from the injected clock, rows sort by namespace and
name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import nullcontext
from functools import partial
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, RichLog, Static

from kbox.cli.registry import CliError, Context, execute, help_text, parse
from kbox.clock import Clock, RealClock
from kbox.gcpolicy import collection_paused
from kbox.tui import theme as themes
from kbox.tui.data import ClusterData
from kbox.tui.palette import KboxCommands
from kbox.tui.panes import (ActivityPane, Filter, HeaderBar, Model, NodesPane, ResourceView,
                            SideTable, WorkloadsPane)
from kbox.tui.prompt import Completer, Prompt, classify
from kbox.tui.runner import CommandDone, Sink, SinkReady, split_lines
from kbox.tui.screens import ChoiceScreen, ConfirmScreen, HelpScreen, ScaleScreen, TextScreen
from kbox.tui.table import ResourceTable
from kbox.tui.views import (CORDON, DELETE, DESCRIBE, KILL, LOGS, RESTART, SCALE, VIEWS, YAML, Scope,
                            ViewSpec, lookup_view)

log = logging.getLogger(__name__)

DEFAULT_THEME = "kbox-dark"
BULK_CHANGES = 1000    # an apply cycle this big (a first fill) runs with cyclic GC paused
DANGEROUS = frozenset({"kbox.delete", "kbox.kill"})
REFUSED = {"up": "it boots a cluster", "down": "quit the dashboard first (q), then run kbox down",
           "run": "it boots its own cluster", "ui": "this is the dashboard"}


class DataChanged(Message):
    """The feeds have news; one pending message stands for any number of changes."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DataChanged)


class ScriptDone(Message):
    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code


class OutputPane(RichLog):
    """What commands typed at the prompt print; errors in the failure colour."""

    MAX_LINES = 5000

    def __init__(self, **kw: Any) -> None:
        super().__init__(max_lines=self.MAX_LINES, wrap=False, markup=False, highlight=False,
                         auto_scroll=True, **kw)
        self._partial: dict[str, str] = {}
        self.plain: deque[str] = deque(maxlen=self.MAX_LINES)   # what was written, as text

    def write(self, content: Any, *args: Any, **kw: Any) -> "OutputPane":  # type: ignore[override]
        self.plain.append(content.plain if isinstance(content, Text) else str(content))
        super().write(content, *args, **kw)
        return self

    def write_chunks(self, chunks: list[tuple[str, str]], final: bool = False) -> None:
        lines = split_lines(chunks, self._partial)
        if final:
            lines += list(self._partial.items())
            self._partial.clear()
        err = self.app.role_style("status-failed")  # type: ignore[attr-defined]
        for which, text in lines:
            self.write(Text(text, style=err if which == "err" else ""))

    def text(self) -> str:
        return "\n".join(self.plain)


class KboxApp(App):
    CSS_PATH = "kbox.tcss"
    TITLE = "kbox"
    COMMANDS = App.COMMANDS | {KboxCommands}

    BINDINGS = [
        Binding("colon", "prompt(':')", "Command", key_display=":", id="kbox.command"),
        Binding("slash", "prompt('/')", "Filter", key_display="/", id="kbox.filter"),
        Binding("d", "act('describe')", "Describe", id="kbox.describe"),
        Binding("y", "act('yaml')", "YAML", id="kbox.yaml"),
        Binding("l", "act('logs')", "Logs", id="kbox.logs"),
        Binding("s", "act('scale')", "Scale", id="kbox.scale"),
        Binding("r", "act('restart')", "Restart", id="kbox.restart"),
        Binding("u", "act('cordon')", "Cordon", id="kbox.cordon"),
        Binding("ctrl+d", "act('delete')", "Delete", id="kbox.delete"),
        Binding("k", "act('kill')", "Kill node", id="kbox.kill"),
        Binding("t", "tree", "Tree", id="kbox.tree"),
        Binding("escape", "back", "Back", id="kbox.back"),
        Binding("question_mark", "help", "Help", key_display="?", id="kbox.help"),
        Binding("q", "quit", "Quit", id="kbox.quit"),
    ]

    def __init__(self, client: Any, *, ops: Any = None, clock: Clock | None = None, cluster: Any = None,
                 meta: dict[str, Any] | None = None, live: bool = True, ticks: bool = True,
                 theme: str | None = None, script: str | None = None, animations: bool = False,
                 cursor_blink: bool = True, namespace: str = "default",
                 data: ClusterData | None = None, min_interval: float = 0.1,
                 stop_event: threading.Event | None = None) -> None:
        super().__init__()
        self.client = client
        self.ops = ops
        self.clock = clock or RealClock()
        self.cluster = cluster
        self.meta = dict(meta or {})
        self.live = live
        self.ticks = ticks
        self.script = script
        self.namespace = namespace
        self.cursor_blink = cursor_blink
        self.min_interval = min_interval
        self.stop_event = stop_event          # set from outside (kbox down's SIGTERM): quit
        if not animations:
            self.animation_level = "none"
        self.data = data or ClusterData(client, on_change=self._feeds_changed)
        self.model = Model(self.data)
        self._role_cache: dict[str, Style] = {}
        self._commands: dict[Sink, tuple[Context, Any]] = {}
        self._output_sink: Sink | None = None
        self._cycle_wall = 0.0      # when the last live apply cycle began (monotonic)
        self._cycle_cpu = 0.0       # and this thread's CPU time then
        self._apply_timer: Any = None
        self.applied = 0                # apply cycles run (tests wait on this)
        themes.register_themes(self, on_error=lambda e: log.warning("theme skipped: %s", e))
        self._initial_theme = self._theme_name(theme or DEFAULT_THEME)

    # ---- themes --------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **themes.ROLE_DEFAULTS}

    def kbox_themes(self) -> list[str]:
        return sorted(n for n in self.available_themes if n.startswith(themes.THEME_PREFIX))

    def _theme_name(self, name: str) -> str:
        """A theme name, a file stem or a .yaml path → a registered theme name (or ThemeError)."""
        if name in self.available_themes:
            return name
        loaded = themes.load_theme(name)
        if loaded.name not in self.available_themes:
            self.register_theme(loaded)
        return loaded.name

    def set_theme(self, name: str) -> None:
        self.theme = self._theme_name(name)

    def role_style(self, role: str) -> Style:
        style = self._role_cache.get(role)
        if style is None:
            colour = themes.role_style(self.theme_variables, role)
            style = Style.parse(colour) if colour else Style()
            self._role_cache[role] = style
        return style

    def _theme_changed(self, _theme: Any) -> None:
        self._role_cache.clear()
        for table in self.query(ResourceTable):
            table.refresh()
        if self.is_mounted(self.header_bar):
            self.header_bar.sync(self.model)

    # ---- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        self.header_bar = HeaderBar(self.meta, id="header")
        self.nodes_pane = NodesPane(self.model, id="nodes")
        self.workloads_pane = WorkloadsPane(self.model, id="workloads")
        self.main_view = ResourceView(self.model, id="main")
        self.activity = ActivityPane(id="activity")
        self.output = OutputPane(id="output")
        self.hint = Static("", id="hint", markup=False)
        self.prompt = Prompt(Completer(self.model.names, self.kbox_themes), id="prompt",
                             placeholder=":view  /filter  or a kbox command (tab completes, ? help)")
        self.prompt.cursor_blink = self.cursor_blink
        yield self.header_bar
        with Horizontal(id="top"):
            yield self.nodes_pane
            yield self.workloads_pane
        yield self.main_view
        with Vertical(id="bottom"):
            yield self.activity
            yield self.output
        yield self.hint
        yield self.prompt
        yield Footer()

    def on_mount(self) -> None:
        self.theme = self._initial_theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.nodes_pane.border_title = "nodes"
        self.workloads_pane.border_title = "workloads"
        self.activity.border_title = "activity"
        self.output.border_title = "output"
        self.main_view.table.focus()
        self._set_now()
        self.header_bar.sync(self.model)
        self.main_view.rebuild()
        if self.live:
            self.data.start()
        if self.ticks:
            self.set_interval(1.0, self._tick)
        if self.stop_event is not None:
            self.set_interval(0.25, self._check_stop)
        if self.script:
            self._start_script(self.script)

    def on_unmount(self) -> None:
        self.data.stop()
        for ctx, _ in list(self._commands.values()):
            ctx.stop.set()

    # ---- data --------------------------------------------------------------------------
    def _feeds_changed(self) -> None:          # feed threads
        self.post_message(DataChanged())

    # A live cycle applies at most this many changed objects per resource, and the next one
    # waits until the dashboard's thread has used at most 1/COST_FACTOR of the time since
    # the last one began: its apply, the repaint that follows (the larger part) and its
    # timers. So keys never queue behind a long burst (a deployment scaling to 1,000), and
    # the dashboard, which shares the control plane's process and GIL, takes a small share
    # of it: in a burst, a few refreshes a second (k9s refreshes every 2 s).
    CYCLE_LIMIT = 400
    COST_FACTOR = 12
    MAX_WAIT = 2.0               # but never longer than this (after a first fill of thousands)

    def on_data_changed(self, _: DataChanged) -> None:
        self._cycle_when_due()

    def _timer_apply(self) -> None:
        self._apply_timer = None
        self._cycle_when_due()       # asked again: the last cycle's repaint may have come since

    def _cycle_when_due(self) -> None:
        spent = time.thread_time() - self._cycle_cpu
        interval = min(self.MAX_WAIT, max(self.min_interval, self.COST_FACTOR * spent))
        wait = interval - (time.monotonic() - self._cycle_wall)
        if wait <= 0:
            self._live_cycle()
        elif self._apply_timer is None:
            self._apply_timer = self.set_timer(wait, self._timer_apply)

    def _live_cycle(self) -> None:
        self._cycle_wall = time.monotonic()
        self._cycle_cpu = time.thread_time()
        self.apply_changes(limit=self.CYCLE_LIMIT)

    def refresh_now(self) -> None:
        """List every resource through the client and apply it now (synchronous: tests, snapshots)."""
        self.data.sync()
        self.apply_changes()

    def _set_now(self) -> None:
        now = self.clock.now()
        for table in (self.main_view.table, self.nodes_pane, self.workloads_pane):
            table.now = now

    def apply_changes(self, limit: int | None = None) -> None:
        """Drain the feeds' changed keys and apply them to every pane (app thread only)."""
        changes = self.data.drain(limit)
        bulk = sum(len(c) + len(r) for c, r in changes.values()) >= BULK_CHANGES
        with collection_paused() if bulk else nullcontext(), self.batch_update():
            self._set_now()
            self.model.account(changes)
            self.nodes_pane.sync(changes)
            self.workloads_pane.sync(changes)
            self.main_view.apply(changes)
            self.activity.sync(self.model, changes)
            self.header_bar.sync(self.model)
        self.applied += 1

    def _check_stop(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            self.exit()

    def _tick(self) -> None:
        self._set_now()
        self.header_bar.sync(self.model)

    # ---- commands --------------------------------------------------------------------
    def _sink_ready(self, sink: Sink) -> None:   # any thread
        self.post_message(SinkReady(sink))

    def start_command(self, line: str, target: Any = None) -> Sink:
        """Run one registry command in a worker thread; its output goes to `target`
        (a pane or a text screen with write_chunks), the output pane by default."""
        sink = Sink(self._sink_ready, line)
        ctx = Context(client=self.client, ops=self.ops, out=sink.stream("out"), err=sink.stream("err"),
                      clock=self.clock, namespace=self.namespace, cluster=self.cluster)
        self._commands[sink] = (ctx, target if target is not None else self.output)
        self.run_worker(partial(self._run_command, ctx, sink, line), thread=True, exit_on_error=False,
                        group="commands", name=line, description=line)
        return sink

    def _run_command(self, ctx: Context, sink: Sink, line: str) -> None:   # worker thread
        try:
            code = execute(ctx, line)
        except Exception as e:  # a bug in a command must not take the dashboard down
            log.exception("command %r failed", line)
            ctx.err.write(f"error: {e}\n")
            code = 1
        self.post_message(CommandDone(sink, line, code))

    def stop_command(self, sink: Sink | None) -> bool:
        entry = self._commands.get(sink) if sink is not None else None
        if entry is None:
            return False
        entry[0].stop.set()
        return True

    def on_sink_ready(self, message: SinkReady) -> None:
        entry = self._commands.get(message.sink)
        target = entry[1] if entry else self.output
        if target.is_attached:
            target.write_chunks(message.sink.take())

    def on_command_done(self, message: CommandDone) -> None:
        entry = self._commands.pop(message.sink, None)
        target = entry[1] if entry else self.output
        if target.is_attached:
            target.write_chunks(message.sink.take(), final=True)
            if message.code and target is self.output:
                self.output.write(Text(f"(exit {message.code})", style="dim"))
        if message.sink is self._output_sink:
            self._output_sink = None

    def command_running(self) -> bool:
        return self._output_sink is not None

    def run_line(self, line: str) -> None:
        """What the prompt does with one line (also the palette's entry point)."""
        p = classify(line)
        if p.kind == "empty":
            return
        if p.kind == "view":
            spec = lookup_view(p.word)
            assert spec is not None
            self.main_view.show(spec.name, push=False)
            self.main_view.stack.clear()
            self.main_view.table.focus()
        elif p.kind == "filter":
            try:
                self.main_view.set_filter(Filter.parse(p.arg))
            except Exception as e:
                self.show_error(f"filter: {getattr(e, 'message', e)}")
        elif p.kind == "dashboard":
            self._dashboard_word(p.word, p.arg)
        else:
            self.run_command_line(p.line)

    def _dashboard_word(self, word: str, arg: str) -> None:
        if word in ("q", "quit"):
            self.exit()
        elif word == "help":
            self.action_help()
        elif word == "tree":
            scope = Scope()
            if arg:
                d = next((o for o in self.model.feed("deployments").values()
                          if o["metadata"].get("name") == arg), None)
                if d is None:
                    self.show_error(f'Error from server (NotFound): deployments.apps "{arg}" not found')
                    return
                scope = Scope(f"deploy/{arg}", owner_uid=d["metadata"]["uid"])
            self.main_view.show("tree", scope)
            self.main_view.table.focus()
        elif word == "theme":
            if not arg:
                self.show_output(f"$ :theme\nthemes: {', '.join(self.kbox_themes())} (now: {self.theme})")
                return
            try:
                self.set_theme(arg)
            except themes.ThemeError as e:
                self.show_error(f"error: {e}")

    def run_command_line(self, line: str) -> None:
        try:
            cmd, _ = parse(line)
        except CliError:
            cmd = None     # execute() prints the same error in the output pane
        if cmd is not None and cmd.name in REFUSED:
            self.show_error(f'error: "{cmd.name}" cannot run inside the dashboard: {REFUSED[cmd.name]}',
                            line)
            return
        if self._output_sink is not None:
            self.stop_command(self._output_sink)
        self._show_output_pane()
        self.output.write(Text(f"$ {line}", style="bold"))
        self._output_sink = self.start_command(line)

    def show_output(self, text: str) -> None:
        self._show_output_pane()
        for line in text.splitlines():
            self.output.write(Text(line))

    def show_error(self, text: str, line: str | None = None) -> None:
        self._show_output_pane()
        if line:
            self.output.write(Text(f"$ {line}", style="bold"))
        self.output.write(Text(text, style=self.role_style("status-failed")))

    def _show_output_pane(self) -> None:
        self.query_one("#bottom").add_class("-output")

    def output_visible(self) -> bool:
        return self.query_one("#bottom").has_class("-output")

    def fill_prompt(self, text: str) -> None:
        self.prompt.value = text
        self.prompt.cursor_position = len(text)
        self.prompt.focus()

    # ---- the script (kbox up --script) ------------------------------------------------------
    def _start_script(self, path: str) -> None:
        """Run a demo script in a plain daemon thread: a script's `sleep` and `wait` cannot be
        interrupted, and a Textual worker would hold the app's exit until they end."""
        from kbox.cli.script import run_script
        sink = Sink(self._sink_ready, path)
        ctx = Context(client=self.client, ops=self.ops, out=sink.stream("out"), err=sink.stream("err"),
                      clock=self.clock, namespace=self.namespace, cluster=self.cluster)
        self._commands[sink] = (ctx, self.output)
        self._show_output_pane()
        self.output.write(Text(f"# script {path}", style="bold"))

        def run() -> None:
            try:
                code = run_script(path, ctx)
            except Exception as e:
                ctx.err.write(f"error: {getattr(e, 'message', e)}\n")
                code = 1
            self.post_message(CommandDone(sink, path, code))
            self.post_message(ScriptDone(code))
        threading.Thread(target=run, daemon=True, name="kbox-tui-script").start()

    def on_script_done(self, message: ScriptDone) -> None:
        text = "script finished" if message.code == 0 else f"script failed (exit {message.code})"
        self.output.write(Text(f"# {text}; the cluster keeps running",
                               style=self.role_style("status-running" if message.code == 0
                                                     else "status-failed")))

    # ---- prompt ---------------------------------------------------------------------------
    def action_prompt(self, start: str) -> None:
        self.fill_prompt(start)

    def on_input_submitted(self, event: Prompt.Submitted) -> None:
        if event.input is not self.prompt:
            return
        line = event.value
        self.prompt.remember(line)
        self.prompt.value = ""
        self.flash("")
        self.main_view.table.focus()
        self.run_line(line)

    def on_prompt_completions(self, message: Prompt.Completions) -> None:
        self.flash("  ".join(message.options[:40]))

    def on_prompt_left(self, _: Prompt.Left) -> None:
        self.flash("")
        self.main_view.table.focus()

    # ---- keys on rows -------------------------------------------------------------------
    MAIN_SCREEN_ACTIONS = frozenset({"prompt", "act", "tree", "back", "help", "quit"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The dashboard's keys act on the main screen only: under a dialog or a text screen,
        `d`, `q` or `ctrl+d` must not reach the rows behind it."""
        if action in self.MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def _selected(self) -> tuple[ViewSpec, dict] | None:
        focused = self.focused
        if isinstance(focused, SideTable):
            return focused.selected()
        return self.main_view.selected()

    def flash(self, text: str) -> None:
        """A one-line note above the prompt (completions, "does not apply"); no toasts, so
        screenshots stay deterministic."""
        self.hint.update(text)
        self.hint.set_class(bool(text), "-shown")

    def action_act(self, action: str) -> None:
        sel = self._selected()
        if sel is None:
            self.flash(f"{action}: no row selected")
            return
        spec, obj = sel
        if action not in spec.actions:
            self.flash(f"{action} does not apply to {spec.resource}")
            return
        meta = obj.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace")
        target = " ".join(spec.target(obj))
        nsflag = f" -n {ns}" if spec.namespaced and ns else ""
        shown = f"{spec.kind}/{name}"
        if action == DESCRIBE:
            self.push_screen(TextScreen(f"describe {shown}", f"describe {target}"))
        elif action == YAML:
            self.push_screen(TextScreen(f"yaml {shown}", f"get {target} -o yaml"))
        elif action == LOGS:
            what = name if spec.resource == "pods" else f"{spec.kind}/{name}"
            self.push_screen(TextScreen(f"logs {shown} (following)", f"logs {what}{nsflag} -f --tail=500"))
        elif action == DELETE:
            def done(yes: bool | None) -> None:
                if yes:
                    self.run_command_line(f"delete {target} --wait=false")
            self.push_screen(ConfirmScreen(f"Delete {shown}{' in ' + ns if ns else ''}?", yes="Delete"), done)
        elif action == SCALE:
            current = int((obj.get("spec") or {}).get("replicas", 1))

            def scaled(n: int | None) -> None:
                if n is not None:
                    self.run_command_line(f"scale {spec.kind}/{name}{nsflag} --replicas={n}")
            self.push_screen(ScaleScreen(shown, current), scaled)
        elif action == RESTART:
            self.run_command_line(f"rollout restart {spec.kind}/{name}{nsflag}")
        elif action == CORDON:
            verb = "uncordon" if (obj.get("spec") or {}).get("unschedulable") else "cordon"
            self.run_command_line(f"{verb} {name}")
        elif action == KILL:
            def chosen(what: str | None) -> None:
                if what:
                    self.run_command_line(f"node {what} {name}")
            self.push_screen(ChoiceScreen(
                f"Node {name}: kill it (its containers die), stop it (no more heartbeats), "
                f"or start it again?", [("kill", "Kill"), ("stop", "Stop"), ("start", "Start")]), chosen)

    def on_resource_table_selected(self, message: ResourceTable.Selected) -> None:
        table = message.table
        sel = table.selected() if isinstance(table, SideTable) else self.main_view.selected()
        if sel is None:
            return
        spec, obj = sel
        if spec.drill is None:
            self.action_act(DESCRIBE)
            return
        target = spec.drill(obj)
        if target is not None:
            self.main_view.show(target[0], target[1])
            self.main_view.table.focus()

    def action_tree(self) -> None:
        sel = self._selected()
        scope = Scope()
        if sel is not None and sel[0].name == "deploy":
            meta = sel[1]["metadata"]
            scope = Scope(f"deploy/{meta['name']}", owner_uid=meta["uid"])
        self.main_view.show("tree", scope)
        self.main_view.table.focus()

    def action_back(self) -> None:
        if self._output_sink is not None and self.stop_command(self._output_sink):
            return
        if self.output_visible():
            self.query_one("#bottom").remove_class("-output")
            return
        if self.main_view.state.filter:
            self.main_view.set_filter(Filter())
            return
        self.main_view.back()

    def action_help(self) -> None:
        keys = [(b.key_display or b.key, b.description, b.id or "", (b.id or "") in DANGEROUS)
                for b in self.BINDINGS if isinstance(b, Binding)]
        keys += [("enter", "Drill down", "table.select", False), ("ctrl+p", "Command palette", "", False),
                 ("tab", "Complete (prompt)", "prompt.complete", False),
                 ("up/down", "History (prompt)", "prompt.history-previous", False)]
        self.push_screen(HelpScreen(keys, list(VIEWS), help_text()))


def screen_text(app: App) -> str:
    """The current screen as plain text, one line per row (tests and debugging)."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())
