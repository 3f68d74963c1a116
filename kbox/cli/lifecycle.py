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


def _ui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--theme", help="dashboard theme: a name from themes/ or a .yaml path")


def _ui(ctx: Context, args: argparse.Namespace) -> int:
    """`kbox ui`: the dashboard, attached over HTTP to a running cluster (kbox.tui is
    imported only here, so the rest of the CLI never loads Textual)."""
    import sys

    from kbox.cli import state as cluster_state
    out = ctx.out
    if not (hasattr(out, "isatty") and out.isatty()) or ctx.out is not sys.stdout:
        print("error: kbox ui needs a terminal (stdout is not one); for a headless view "
              "use kbox get pods -w or kbox events -w", file=ctx.err)
        return 1
    from kbox.tui.launch import check_theme, run_attached
    if not check_theme(args.theme, ctx.err):
        return 1
    name = cluster_state.cluster_name(getattr(args, "cluster", None))
    return run_attached(ctx.client, ctx.ops, theme=args.theme,
                        log_path=cluster_state.cluster_dir(name) / "ui.log")


COMMANDS["ui"] = Command("ui", "Open the dashboard on a running cluster (kbox ui [--cluster NAME])",
                         _ui_args, _ui)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("script")
    p.add_argument("--runtime", choices=["sim", "docker", "auto"], default=None,
                   help="default: the script's `# runtime:` line, else sim")
    p.add_argument("--nodes", type=int)
    p.add_argument("--config")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", default="kbox")


def _run(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.cli.script import run_script_fresh
    return run_script_fresh(args, ctx.out, ctx.err)


COMMANDS["run"] = Command("run", "Boot a fresh cluster and run a demo script against it",
                          _run_args, _run, needs_cluster=False)


def _load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["image", "docker-image"])
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--name", help="cluster name (default kbox, or $KBOX_CLUSTER)")
    p.add_argument("--nodes", help="comma-separated node names (default: every node)")


def _load(ctx: Context, args: argparse.Namespace) -> int:
    """`kind load docker-image`: copy images from the host engine into docker nodes."""
    from kbox.cli.state import cluster_name
    from kbox.config import ClusterConfig
    from kbox.runtime import RuntimeError_
    from kbox.runtime.dind import LABEL_CLUSTER, LABEL_NODE, LABEL_ROLE, NodeMachines, load_image

    name = cluster_name(args.name or getattr(args, "cluster", None))
    try:
        machines = NodeMachines(ClusterConfig(name=name))
        found = machines.client.containers.list(
            filters={"label": [f"{LABEL_CLUSTER}={name}", f"{LABEL_ROLE}=node"]})
        nodes = sorted((c.labels or {}).get(LABEL_NODE, "") for c in found)
        if args.nodes:
            wanted = [n.strip() for n in args.nodes.split(",") if n.strip()]
            missing = [n for n in wanted if n not in nodes]
            if missing:
                print(f'error: no running docker node {", ".join(missing)} in cluster "{name}" '
                      f'(running: {", ".join(nodes) or "none"})', file=ctx.err)
                return 1
            nodes = wanted
        if not nodes:
            print(f'error: cluster "{name}" has no running docker nodes '
                  f"(start one with: kbox up --runtime docker)", file=ctx.err)
            return 1
        for image in args.images:
            for node in nodes:
                inner = machines.inner(node, timeout=120)
                try:
                    copied = load_image(machines.client, inner, image)
                finally:
                    inner.close()
                what = "loaded into" if copied else "already present on"
                print(f'Image: "{image}" {what} node "{node}"', file=ctx.out)
    except RuntimeError_ as e:
        print(f"error: {e}", file=ctx.err)
        return 1
    return 0


COMMANDS["load"] = Command("load", "Copy images from the host's Docker engine into the nodes "
                           "(load image NAME [--nodes a,b])", _load_args, _load, needs_cluster=False)
