"""Images kbox makes on this machine, so nothing ever needs a registry.

- `kbox/busybox:latest`: the workload image every sample uses, made from the
  host's static busybox (Debian's busybox-static) and its applet links.
- The node image (`kbox/node:<recipe hash>`): see `ensure_node_image`.

Each image carries the hash of its recipe in the label `io.kbox.recipe`; an
image whose label matches is reused, any other is rebuilt. Images go into the
engine with `docker import` of a root filesystem made here in Python.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

BUSYBOX_IMAGE = "kbox/busybox:latest"
RECIPE_LABEL = "io.kbox.recipe"
BUSYBOX_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev",
                "root", "home", "var", "var/www", "var/log", "var/run", "run", "mnt")

Progress = Callable[[str], None]


class ImageBuildError(Exception):
    pass


def find_busybox() -> str:
    """The host's static busybox, or a plain error saying how to get one."""
    for cand in (os.environ.get("KBOX_BUSYBOX"), "/usr/bin/busybox", "/bin/busybox",
                 shutil.which("busybox")):
        if cand and os.path.isfile(cand):
            return cand
    raise ImageBuildError("no busybox binary on this machine: install Debian's busybox-static "
                          "(apt-get install busybox-static) or set KBOX_BUSYBOX to a static busybox")


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 0
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = 0
    tar.addfile(info)


_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = b"root:x:0:\nnobody:x:65534:\n"


def busybox_rootfs(busybox: str | None = None) -> tuple[bytes, str]:
    """(tar of a root filesystem with busybox and its applets, recipe hash)."""
    busybox = busybox or find_busybox()
    applets = _applets(busybox)
    recipe = _digest("busybox-image-v1", _file_digest(busybox), *applets)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in BUSYBOX_DIRS:
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        with open(busybox, "rb") as f:
            _add_bytes(tar, "bin/busybox", f.read(), 0o755)
        for path in applets:
            path = path.lstrip("/")
            if path == "bin/busybox":
                continue
            depth = path.count("/")
            _add_symlink(tar, path, "../" * depth + "bin/busybox")
        _add_bytes(tar, "etc/passwd", _PASSWD)
        _add_bytes(tar, "etc/group", _GROUP)
        _add_bytes(tar, "etc/hostname", b"kbox\n")
        _add_bytes(tar, "var/www/index.html", b"<h1>kbox busybox httpd</h1>\n")
    return buf.getvalue(), recipe


def image_recipe(client: Any, image: str) -> str | None:
    """The recipe label of `image` in this engine, or None when the image is absent."""
    import docker.errors
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    return ((img.attrs.get("Config") or {}).get("Labels") or {}).get(RECIPE_LABEL, "")


def import_rootfs(client: Any, data: bytes, image: str, recipe: str, *,
                  cmd: list[str] | None = None, entrypoint: list[str] | None = None,
                  env: dict[str, str] | None = None) -> None:
    """`docker import` a root filesystem tar under `image`, labelled with its recipe."""
    repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    changes = [f'LABEL {RECIPE_LABEL}="{recipe}"']
    if cmd:
        changes.append("CMD " + _json_list(cmd))
    if entrypoint:
        changes.append("ENTRYPOINT " + _json_list(entrypoint))
    for k, v in (env or {}).items():
        changes.append(f"ENV {k}={v}")
    client.api.import_image_from_data(data, repository=repo, tag=tag, changes=changes)


def _json_list(items: list[str]) -> str:
    import json
    return json.dumps(items)


def ensure_busybox_image(client: Any, progress: Progress | None = None) -> str:
    """Make `kbox/busybox:latest` in the engine `client` talks to, unless it is current."""
    data, recipe = busybox_rootfs()
    if image_recipe(client, BUSYBOX_IMAGE) == recipe:
        return BUSYBOX_IMAGE
    if progress:
        progress(f"building {BUSYBOX_IMAGE} from {find_busybox()}")
    t0 = time.monotonic()
    import_rootfs(client, data, BUSYBOX_IMAGE, recipe, cmd=["sh"])
    if progress:
        progress(f"built {BUSYBOX_IMAGE} ({len(data) >> 10} KiB) in {time.monotonic() - t0:.1f}s")
    return BUSYBOX_IMAGE


__all__ = ["BUSYBOX_IMAGE", "RECIPE_LABEL", "ImageBuildError", "ensure_busybox_image",
           "busybox_rootfs", "image_recipe", "import_rootfs", "find_busybox", "Path"]
