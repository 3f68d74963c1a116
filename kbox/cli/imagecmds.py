"""`kbox image`: the images kbox makes on this machine (no registry involved).

    kbox image build-node      the Docker-in-Docker node image, from the host's binaries
    kbox image build-busybox   kbox/busybox:latest, from the host's static busybox
    kbox image build           both
    kbox image ls              the kbox images in the host's Docker engine

A build reuses an image whose recipe is current (`--force` rebuilds). On a terminal a
progress bar (on stderr) follows the steps; the result line goes to stdout.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from kbox.cli.registry import CliError, Context, arguments, command

ACTIONS = ("build", "build-node", "build-busybox", "ls")


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, metavar="ACTION",
                   help="build (both images), build-node, build-busybox, ls")
    p.add_argument("--force", action="store_true", help="rebuild even when the image is current")
    p.add_argument("--keep-old", action="store_true",
                   help="build-node: keep node images of older recipes (default: remove unused ones)")
    p.add_argument("--no-headers", action="store_true", help="ls: no header line")


def _engine() -> Any:
    try:
        import docker
    except ImportError:
        raise CliError("the docker Python package is not installed (pip install docker)")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CliError(f"no Docker engine answers ({reason}): start dockerd, or set DOCKER_HOST")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


class _Steps:
    """A rich progress bar over the build's steps when stderr is a terminal, else silence."""

    def __init__(self, ctx: Context, title: str, steps: tuple[str, ...]) -> None:
        from rich.console import Console
        self.steps = steps
        self.console = Console(file=ctx.err)
        self.bar: Any = None
        self.task: Any = None
        self.title = title

    def __enter__(self) -> _Steps:
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            self.bar = Progress(TextColumn("[bold]{task.fields[title]}"), BarColumn(),
                                TextColumn("{task.description}"), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.steps[0], total=len(self.steps), title=self.title)
        return self

    def __call__(self, message: str) -> None:
        if self.bar is None:
            return
        done = None
        for i, step in enumerate(self.steps):
            if message.startswith(step):
                done = i
        if done is None:
            self.bar.update(self.task, description=message)
        else:
            self.bar.update(self.task, completed=done, description=message)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=len(self.steps))
            self.bar.stop()


def _build(ctx: Context, client: Any, which: str, force: bool, keep_old: bool = True) -> None:
    from kbox.runtime import images
    try:
        if which == "node":
            with _Steps(ctx, "node image", images.NODE_STEPS) as steps:
                result = images.node_image(client, steps, force=force)
        else:
            with _Steps(ctx, "busybox image", ("importing",)) as steps:
                result = images.busybox_image(client, steps, force=force)
    except images.ImageBuildError as e:
        raise CliError(str(e))
    except Exception as e:
        import docker.errors
        if isinstance(e, docker.errors.DockerException):
            raise CliError(f"building the {which} image failed: {str(e).splitlines()[0]}")
        raise
    verb = "built" if result.built else "reused (current)"
    ctx.write(f"{result.tag} {verb}: {_mb(result.size)} in {result.seconds:.1f}s")
    if which == "node" and not keep_old:
        for tag in images.prune_node_images(client, result.tag):
            ctx.write(f"{tag} removed (older recipe)")


@command("image", "kbox's images: image build|build-node|build-busybox|ls (no registry needed)",
         needs_cluster=False, usage="kbox image build-node")
@arguments(_image_args)
def cmd_image(ctx: Context, args: argparse.Namespace) -> int:
    client = _engine()
    try:
        if args.action == "ls":
            _list(ctx, client, args.no_headers)
            return 0
        if args.action in ("build", "build-busybox"):
            _build(ctx, client, "busybox", args.force)
        if args.action in ("build", "build-node"):
            _build(ctx, client, "node", args.force, args.keep_old)
        return 0
    finally:
        client.close()


def _ago(created: str) -> str:
    try:
        when = datetime.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return "?"
    secs = int((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{secs // n}{unit}"
    return f"{max(secs, 0)}s"


def _list(ctx: Context, client: Any, no_headers: bool) -> None:
    from kbox.cli.tabwriter import render
    from kbox.runtime.images import RECIPE_LABEL, list_kbox_images
    rows = [] if no_headers else ["IMAGE\tID\tAGE\tSIZE\tRECIPE"]
    for img in list_kbox_images(client):
        labels = (img.attrs.get("Config") or {}).get("Labels") or {}
        recipe = (labels.get(RECIPE_LABEL) or "")[:12] or "<none>"
        for tag in sorted(t for t in img.tags if t.startswith("kbox/")):
            rows.append(f"{tag}\t{img.short_id.split(':', 1)[-1]}\t{_ago(img.attrs.get('Created', ''))}"
                        f"\t{_mb(int(img.attrs.get('Size') or 0))}\t{recipe}")
    if len(rows) == (0 if no_headers else 1):
        ctx.warn("No kbox images in this Docker engine (kbox image build makes them).")
        return
    ctx.write(render("\n".join(rows) + "\n", padding=3))
