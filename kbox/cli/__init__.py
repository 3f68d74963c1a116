"""The `kbox` command: kubectl's verbs plus kbox's own (up, down, status, run, node).

`main()` parses with the shared registry, connects to the running cluster
(unless the verb needs none), runs the verb, and turns errors into kubectl's
messages and exit codes. Diagnostics go to stderr, output to stdout.
"""

from __future__ import annotations

import os
import sys

from kbox.api.errors import ApiError
from kbox.cli import commands as _commands  # noqa: F401  (registers the verbs)
from kbox.cli import lifecycle as _lifecycle  # noqa: F401
from kbox.cli.registry import COMMANDS, CliError, Context, parse

GLOBAL_FLAGS = ("--cluster",)


def _usage() -> str:
    from kbox.cli.registry import load_commands
    load_commands()              # every verb module, so the list is whole
    width = max(len(n) for n in COMMANDS) + 2
    lines = ["kbox: a Kubernetes cluster in a box.", "", "Usage: kbox COMMAND [flags]", "", "Commands:"]
    for name in sorted(COMMANDS):
        lines.append(f"  {name.ljust(width)}{COMMANDS[name].help}")
    lines += ["", 'Use "kbox COMMAND --help" for more about a command.']
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cluster = None
    if len(argv) >= 2 and argv[0] == "--cluster":
        cluster, argv = argv[1], argv[2:]
    if not argv or argv[0] in ("help", "-h", "--help"):
        sys.stdout.write(_usage())
        return 0
    try:
        cmd, args = parse(argv)
    except CliError as e:
        if e.code == 0:
            sys.stdout.write(e.message)
            return 0
        sys.stderr.write(f"error: {e.message}\n")
        return e.code or 1
    cluster = cluster or getattr(args, "cluster", None)
    if cluster and not getattr(args, "cluster", None):
        args.cluster = cluster        # `kbox --cluster NAME down|status|...` reads it there
    client = ops = None
    try:
        if cmd.needs_cluster or (cmd.name == "version" and not getattr(args, "client", False)):
            from kbox.cli.connect import connect
            try:
                client, ops = connect(cluster)
            except CliError:
                if cmd.needs_cluster:
                    raise
        ctx = Context(client=client, ops=ops, out=sys.stdout, err=sys.stderr, stdin=sys.stdin)
        return cmd.run(ctx, args)
    except CliError as e:
        msg = e.message
        sys.stderr.write(msg + "\n" if msg.startswith(("Error from server", "The ", "kbox:")) else f"error: {msg}\n")
        return e.code or 1
    except ApiError as e:
        from kbox.cli.util import api_error_text
        sys.stderr.write(api_error_text(e) + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:             # `kbox ... | head`: the reader left, as for kubectl
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    finally:
        if client is not None:
            client.close()
