"""One command registry for every surface: the CLI, the script runner, and
(later) the dashboard's prompt, palette and help screen.

A command is a name, aliases, a help line, a function that adds its
arguments to an argparse parser, and `run(ctx, args) -> exit code`. Parsing
is a pure function (`parse`) that raises `CliError` (or `CliHelp` for
`--help`) instead of exiting, and commands write only to `ctx.out` /
`ctx.err`, so the same command runs in a terminal, in a script transcript or
in a dashboard pane.
"""

from __future__ import annotations

import argparse
import difflib
import io
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from kbox.clock import Clock, RealClock


class CliError(Exception):
    """A user error: printed as `error: ...`, exit code 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class CliHelp(CliError):
    """`--help` was asked for: the text to print, exit code 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text, 0)
        self.text = text


@dataclass
class Context:
    """What a command runs against. `client` is a kbox Client (in-process or HTTP);
    `ops` does kbox's own node actions (`ops.node_action(action, name, **kw)`)."""
    client: Any
    ops: Any = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Clock = field(default_factory=RealClock)
    namespace: str = "default"
    base_dir: str = "."                  # where relative paths (apply -f) are resolved
    stdin: TextIO | None = None
    stop: threading.Event = field(default_factory=threading.Event)   # set to interrupt -w / -f
    poll_interval: float = 0.1           # seconds between polls of wait loops (clock time)
    cluster: Any = None                  # the in-process Cluster, when there is one

    def write(self, text: str) -> None:
        self.out.write(text)
        if not text.endswith("\n"):
            self.out.write("\n")
        flush = getattr(self.out, "flush", None)
        if flush:
            flush()

    def warn(self, text: str) -> None:
        self.err.write(text if text.endswith("\n") else text + "\n")

    def ns(self, args: argparse.Namespace) -> str:
        return getattr(args, "namespace", None) or self.namespace


@dataclass
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context, argparse.Namespace], int]
    aliases: tuple[str, ...] = ()
    needs_cluster: bool = True           # False: runs without connecting (up, down, run, version --client)
    usage: str = ""                      # one example line for help screens
    group: str = "Basic"                 # help screen section, as kubectl groups its verbs


COMMANDS: dict[str, Command] = {}
_ALIASES: dict[str, str] = {}


def command(name: str, help: str, *, aliases: tuple[str, ...] = (), needs_cluster: bool = True,
            usage: str = "", group: str = "Basic",
            arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorator registering `run(ctx, args) -> int` as a command."""
    def deco(fn: Callable[[Context, argparse.Namespace], int]):
        add = arguments or getattr(fn, "arguments", None) or (lambda p: None)
        COMMANDS[name] = Command(name, help, add, fn, aliases, needs_cluster, usage, group)
        for a in aliases:
            _ALIASES[a] = name
        return fn
    return deco


def arguments(builder: Callable[[argparse.ArgumentParser], None]):
    """Decorator attaching an argument builder to a run function (use above @command)."""
    def deco(fn):
        fn.arguments = builder
        return fn
    return deco


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            extra = message.split(":", 1)[1].split()
            flags = [a for a in extra if a.startswith("-") and a != "-"]
            if flags:
                flag = flags[0].split("=", 1)[0]
                if not flag.startswith("--") and len(flag) > 1:
                    raise CliError(f"unknown shorthand flag: '{flag[1]}' in {flag}")
                raise CliError(f"unknown flag: {flag}")
            raise CliError(f"unexpected arguments: {' '.join(extra)}")
        if message.startswith("argument "):
            # argparse: "argument --replicas: invalid int value: 'x'" → kubectl-like wording
            head, _, rest = message.partition(": ")
            flag = head[len("argument "):].split("/")[-1]
            if "expected one argument" in rest:
                raise CliError(f"flag needs an argument: {flag}")
            raise CliError(f'invalid argument for "{flag}" flag: {rest}')
        if message.startswith("the following arguments are required"):
            raise CliError(message.replace("the following arguments are required",
                                           "required argument(s) missing"))
        raise CliError(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise CliError(message or "", status)

    def print_help(self, file: Any = None) -> None:  # type: ignore[override]
        raise CliHelp(self.format_help())


def _common(p: argparse.ArgumentParser) -> None:
    """Flags every command takes, as kubectl's global flags."""
    p.add_argument("-n", "--namespace", help="namespace of the request")
    p.add_argument("--cluster", help="kbox cluster name (default: kbox, or $KBOX_CLUSTER)")


def parser_for(cmd: Command) -> argparse.ArgumentParser:
    p = _Parser(prog=f"kbox {cmd.name}", description=cmd.help, add_help=True, allow_abbrev=False)
    cmd.add_arguments(p)
    if not any("--namespace" in a.option_strings for a in p._actions):
        _common(p)
    elif not any("--cluster" in a.option_strings for a in p._actions):
        p.add_argument("--cluster", help="kbox cluster name")
    return p


def load_commands() -> None:
    """Import the modules that register commands (idempotent)."""
    from kbox.cli import (
        commands,  # noqa: F401
        curl,  # noqa: F401  (kbox curl: HTTP to 127.0.0.1 only)
        describe,  # kubectl's describe layouts
        imagecmds,  # noqa: F401  (kbox image build|ls)
        kubeconfig,  # noqa: F401  (kbox kubeconfig)
        portforward,  # noqa: F401  (kbox port-forward)
        route,  # noqa: F401  (kbox route)
    )
    COMMANDS["describe"] = describe.DESCRIBE_COMMAND


def lookup(name: str) -> Command:
    load_commands()
    real = _ALIASES.get(name, name)
    cmd = COMMANDS.get(real)
    if cmd is None:
        close = difflib.get_close_matches(name, list(COMMANDS) + list(_ALIASES), n=1, cutoff=0.6)
        hint = f"\n\nDid you mean this?\n\t{_ALIASES.get(close[0], close[0])}" if close else ""
        raise CliError(f'unknown command "{name}" for "kbox"{hint}')
    return cmd


def split_line(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False)
    except ValueError as e:
        raise CliError(f"cannot parse command line: {e}")


def parse(argv: list[str] | str) -> tuple[Command, argparse.Namespace]:
    """Pure: argv (or one command line) → (command, parsed arguments).

    Raises CliError on bad input and CliHelp for --help; never exits or prints.
    A leading `kbox` or `kubectl` word is ignored, so lines pasted from docs work.
    """
    if isinstance(argv, str):
        argv = split_line(argv)
    argv = list(argv)
    if argv and argv[0] in ("kbox", "kubectl"):
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        raise CliHelp(help_text())
    cmd = lookup(argv[0])
    rest = argv[1:]
    # `--` passes the remaining words through untouched (exec, create job)
    tail: list[str] = []
    if "--" in rest:
        i = rest.index("--")
        rest, tail = rest[:i], rest[i + 1:]
    args = parser_for(cmd).parse_args(rest)
    args.command_args = tail
    args.command_name = cmd.name
    return cmd, args


def names() -> list[str]:
    load_commands()
    return sorted(COMMANDS)


def help_text() -> str:
    """The top-level help screen, grouped as kubectl groups its verbs."""
    load_commands()
    out = io.StringIO()
    out.write("kbox: a Kubernetes cluster in a box, with kubectl's verbs.\n")
    groups: dict[str, list[Command]] = {}
    for c in COMMANDS.values():
        groups.setdefault(c.group, []).append(c)
    for g, cmds in groups.items():
        out.write(f"\n{g} Commands:\n")
        width = max(len(c.name) for c in cmds) + 3
        for c in sorted(cmds, key=lambda c: c.name):
            out.write(f"  {c.name.ljust(width)}{c.help}\n")
    out.write('\nUse "kbox <command> --help" for more information about a given command.\n')
    return out.getvalue()


def error_text(message: str) -> str:
    """How a CliError is shown: kubectl's server errors as they are, the rest as `error: ...`."""
    if message.startswith(("Error from server", "The ", "kbox:", "error:")):
        return message
    return f"error: {message}"


def execute(ctx: Context, argv: list[str] | str) -> int:
    """Parse and run one command against `ctx`; errors go to ctx.err. Never raises for
    user or API errors, never exits: the script runner, the dashboard prompt and tests
    call this; the `kbox` entry point does the same plus connecting."""
    from kbox.api.errors import ApiError
    try:
        cmd, args = parse(argv)
        return int(cmd.run(ctx, args) or 0)
    except CliHelp as h:
        ctx.out.write(h.text)
        return 0
    except CliError as e:
        if e.code == 0:
            ctx.out.write(e.message)
            return 0
        ctx.err.write(error_text(e.message).rstrip("\n") + "\n")
        return e.code or 1
    except ApiError as e:
        from kbox.cli.util import api_error_text
        ctx.err.write(api_error_text(e) + "\n")
        return 1
