"""Headless scripts: demo files of kbox commands, run line by line.

A script is one command per line, without the `kbox ` prefix. `#` starts a
comment, `sleep 2s` pauses, `expect TEXT` checks that the previous command's
output contains TEXT. Each command is echoed as `$ command` followed by its
output, so a run reads as a transcript. The first failing line stops the
run with exit code 1 and a message naming the line.

`kbox run FILE` boots a fresh in-process cluster for the script and stops it
after; `kbox up --script FILE` runs it against the cluster it just booted.
"""

from __future__ import annotations

import io
import os
import shlex
import time
from typing import TextIO

from kbox.api.errors import ApiError
from kbox.cli.registry import CliError, Context, parse


class _Tee(io.StringIO):
    """Captures a command's output while passing it through."""

    def __init__(self, sink: TextIO) -> None:
        super().__init__()
        self.sink = sink

    def write(self, s: str) -> int:
        self.sink.write(s)
        return super().write(s)

    def flush(self) -> None:
        self.sink.flush()


def run_lines(lines: list[str], ctx: Context, source: str = "script") -> int:
    out, err = ctx.out, ctx.err
    last_output = ""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("kbox ")
        out.write(f"$ {line}\n")  # type: ignore[union-attr]
        out.flush()  # type: ignore[union-attr]
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "sleep":
            from kbox.cli.commands import parse_duration
            time.sleep(parse_duration(words[1] if len(words) > 1 else "1s", 1))
            continue
        if words[0] == "expect":
            want = line[len("expect"):].strip().strip("'\"")
            if want not in last_output:
                err.write(f"{source}:{number}: expected the output of the previous command to contain "  # type: ignore[union-attr]
                          f"{want!r}\n")
                return 1
            continue
        tee_out, tee_err = _Tee(out), _Tee(err)
        sub = Context(client=ctx.client, ops=ctx.ops, out=tee_out, err=tee_err, clock=ctx.clock,
                      namespace=ctx.namespace, base_dir=ctx.base_dir, stdin=ctx.stdin,
                      cluster=ctx.cluster)
        try:
            cmd, args = parse(words)
            if cmd.name in ("up", "down", "run"):
                raise CliError(f'"{cmd.name}" cannot run inside a script')
            rc = cmd.run(sub, args)
        except CliError as e:
            tee_err.write(e.message + "\n" if e.message.startswith(("Error from server", "The ")) else f"error: {e.message}\n")
            rc = e.code or 1
        except ApiError as e:
            from kbox.cli.util import api_error_text
            tee_err.write(api_error_text(e) + "\n")
            rc = 1
        last_output = tee_out.getvalue() + tee_err.getvalue()
        if rc != 0:
            err.write(f"{source}:{number}: command failed (exit {rc}): {line}\n")  # type: ignore[union-attr]
            return rc
    return 0


def _read(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError as e:
        raise CliError(f"cannot read script {path}: {e.strerror}")


def script_runtime(lines: list[str]) -> str | None:
    """The runtime a script asks for in its opening comments (`# runtime: docker`): a demo
    that needs real containers says so, and `kbox run` boots that runtime unless told
    otherwise with --runtime."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if not text.startswith("#"):
            break
        key, sep, value = text.lstrip("#").partition(":")
        if sep and key.strip().lower() == "runtime" and value.strip() in ("sim", "docker", "auto"):
            return value.strip()
    return None


def run_script(path: str, ctx: Context) -> int:
    """Run a script file against `ctx` (any client + ops); `apply -f` paths are relative
    to the script's folder. Used by `kbox up --script` and the dashboard."""
    import dataclasses
    sub = dataclasses.replace(ctx, base_dir=os.path.dirname(os.path.abspath(path)))
    return run_lines(_read(path), sub, path)


def run_script_on_cluster(path: str, cluster, out: TextIO, err: TextIO) -> int:
    ctx = Context(client=cluster.client, ops=cluster, out=out, err=err, clock=cluster.clock,
                  base_dir=os.path.dirname(os.path.abspath(path)), cluster=cluster)
    return run_lines(_read(path), ctx, path)


def run_script_fresh(args, out: TextIO, err: TextIO) -> int:
    from kbox.cluster import Cluster
    from kbox.config import ConfigError, load_config
    # read first: fail before booting a cluster when the script cannot be read
    wanted = args.runtime or script_runtime(_read(args.script)) or "sim"
    try:
        config = load_config(args.config, nodes=args.nodes, seed=args.seed,
                             name=getattr(args, "name", None),
                             runtime=wanted if wanted != "auto" else None)
    except ConfigError as e:
        raise CliError(str(e))
    from kbox.cli import state as cluster_state
    running = cluster_state.read_state(config.name)
    if running:
        # a docker demo would otherwise take over (and at the end remove) that cluster's nodes
        raise CliError(f'cluster "{config.name}" is running (pid {running["pid"]}); run the script '
                       f"against it with `kbox --cluster {config.name} ...`, or pick another name "
                       f"with --name")
    cluster = Cluster(config, serve_http=False, runtime=wanted if wanted != "auto" else None)
    try:
        cluster.start()
        return run_script_on_cluster(args.script, cluster, out, err)
    finally:
        cluster.stop()
