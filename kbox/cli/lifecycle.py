"""The cluster's own verbs in the registry: up, down, status, run."""

from __future__ import annotations

import argparse

from kbox.cli.registry import COMMANDS, Command, Context


def _register(name: str, help: str, run_name: str) -> None:
    # kbox.cli.up is imported only when one of its verbs is parsed or run
    def add(p: argparse.ArgumentParser) -> None:
        from kbox.cli import up
        up.add_arguments(name, p)

    def run(ctx: Context, args: argparse.Namespace) -> int:
        from kbox.cli import up
        return getattr(up, run_name)(args, ctx.out, ctx.err)

    COMMANDS[name] = Command(name, help, add, run, needs_cluster=False)


_register("up", "Boot a cluster (store, control plane, nodes) and keep it running", "cmd_up")
_register("down", "Stop a running cluster", "cmd_down")
_register("status", "Report a running cluster", "cmd_status")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("script")
    p.add_argument("--runtime", choices=["sim", "docker", "auto"], default="sim")
    p.add_argument("--nodes", type=int)
    p.add_argument("--config")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", default="kbox")


def _run(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.cli.script import run_script_fresh
    return run_script_fresh(args, ctx.out, ctx.err)


COMMANDS["run"] = Command("run", "Boot a fresh cluster and run a demo script against it",
                          _run_args, _run, needs_cluster=False)
