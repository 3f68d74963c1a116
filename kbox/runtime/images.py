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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

BUSYBOX_IMAGE = "kbox/busybox:latest"
# the same image under a second tag, so rolling-update demos change the image with no registry
BUSYBOX_ALIASES = ("kbox/busybox:v2",)
RECIPE_LABEL = "io.kbox.recipe"
BUSYBOX_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev",
                "root", "home", "var", "var/www", "var/log", "var/run", "run", "mnt", "www")

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
    recipe = _digest("busybox-image-v2", _file_digest(busybox), *applets)
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
        _add_bytes(tar, "www/index.html", b"<h1>kbox busybox httpd</h1>\n")   # the samples serve /www
    return buf.getvalue(), recipe


def image_recipe(client: Any, image: str) -> str | None:
    """The recipe label of `image` in this engine, or None when the image is absent."""
    import docker.errors
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    return ((img.attrs.get("Config") or {}).get("Labels") or {}).get(RECIPE_LABEL, "")


def import_rootfs(client: Any, data: bytes | BinaryIO, image: str, recipe: str, *,
                  cmd: list[str] | None = None, entrypoint: list[str] | None = None,
                  env: dict[str, str] | None = None) -> None:
    """`docker import` a root filesystem tar (bytes, or an open file streamed as it is read)
    under `image`, labelled with its recipe."""
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
    if image_recipe(client, BUSYBOX_IMAGE) != recipe:
        if progress:
            progress(f"building {BUSYBOX_IMAGE} from {find_busybox()}")
        t0 = time.monotonic()
        import_rootfs(client, data, BUSYBOX_IMAGE, recipe, cmd=["sh"])
        if progress:
            progress(f"built {BUSYBOX_IMAGE} ({len(data) >> 10} KiB) in {time.monotonic() - t0:.1f}s")
    tag_busybox_aliases(client)
    return BUSYBOX_IMAGE


def tag_busybox_aliases(client: Any) -> None:
    """Give `kbox/busybox:latest` its alias tags in this engine (a node gets them after a load)."""
    img = client.images.get(BUSYBOX_IMAGE)
    for alias in BUSYBOX_ALIASES:
        repo, _, tag = alias.rpartition(":")
        if alias not in (img.tags or []):
            img.tag(repo, tag)


# ---- results shared by both images -----------------------------------------------------

@dataclass
class BuiltImage:
    """What `busybox_image` / `node_image` did: the tag, whether it was built (False: an
    image with the current recipe was reused), its size in the engine and the time taken."""
    tag: str
    built: bool
    size: int
    seconds: float


def _image_size(client: Any, tag: str) -> int:
    try:
        return int(client.images.get(tag).attrs.get("Size") or 0)
    except Exception:
        return 0


def busybox_image(client: Any, progress: Progress | None = None, *, force: bool = False) -> BuiltImage:
    """`ensure_busybox_image`, saying whether it built and how big the image is."""
    t0 = time.monotonic()
    data, recipe = busybox_rootfs()
    built = force or image_recipe(client, BUSYBOX_IMAGE) != recipe
    if built:
        if progress:
            progress(f"importing {BUSYBOX_IMAGE} from {find_busybox()}")
        import_rootfs(client, data, BUSYBOX_IMAGE, recipe, cmd=["sh"])
    tag_busybox_aliases(client)
    return BuiltImage(BUSYBOX_IMAGE, built, _image_size(client, BUSYBOX_IMAGE), time.monotonic() - t0)


# ---- the node image ----------------------------------------------------------------------
#
# A worker node is a container running its own dockerd. Its image is made from the host's
# own Debian binaries (the engine kbox already talks to), so inner and outer engines are the
# same version and nothing is downloaded: dockerd, docker-proxy, containerd and its runc shim,
# runc, iptables (xtables-nft-multi with its runtime modules), tini as docker-init, busybox
# for a shell, every shared library `ldd` names for them, and the entrypoint below.

NODE_IMAGE_REPO = "kbox/node"
NODE_ENTRYPOINT = "/usr/local/bin/kbox-node-entrypoint"
POD_RUNTIME = "kbox-pod"                       # the inner engine's runtime for pod containers
POD_RUNTIME_PATH = "/usr/local/bin/kbox-runc"
NODE_STEPS = ("collecting files", "writing rootfs", "importing")   # progress messages start so
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"

# (command, Debian package that ships it)
NODE_BINARIES = (
    ("dockerd", "docker.io"),
    ("docker-proxy", "docker.io"),
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("runc", "runc"),
    ("xtables-nft-multi", "iptables"),
)
_TINI = ("tini-static", "tini")
_XTABLES_MODULES = "/usr/lib/x86_64-linux-gnu/xtables"
# iptables names that always point at xtables-nft-multi in the node, whatever the host's
# alternatives say; names the host resolves to xtables-nft-multi are added to these
_IPTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore",
                   "ip6tables", "ip6tables-save", "ip6tables-restore")
_HOST_ETC = ("/etc/protocols", "/etc/services", "/etc/ethertypes")
_NODE_DIRS = ("dev", "proc", "sys", "tmp", "run", "root", "etc", "kbox", "var", "var/lib",
              "var/lib/docker", "var/log", "usr/local/bin", "usr/local/sbin", "mnt")

NODE_ENTRYPOINT_SCRIPT = r"""#!/bin/sh
# kbox node entrypoint: make this container fit to run a Docker engine, then run it.
#
# Contract with the code that creates node containers (kbox.runtime.nodeflags):
#   KBOX_CLUSTER_CIDR   the cluster's pod range (10.244.0.0/16)    black-holed first
#   KBOX_SERVICE_CIDR   the cluster's service range (10.96.0.0/12) black-holed first
#   /kbox               host folder: docker.sock (the inner engine) and dockerd.log
#   /var/lib/docker     a volume for the inner engine's data (overlay2 needs one)
# Optional: KBOX_NODE_DNS (DNS server for pods; default 127.0.0.1, so lookups of names
# nobody serves fail here instead of leaving the machine), KBOX_DOCKERD_LOG_LEVEL (warn),
# KBOX_DOCKERD_ARGS (more dockerd flags); arguments to the container go to dockerd too.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# tini (the image's docker-init) as pid 1: it reaps orphans and passes signals on to dockerd
if [ "$$" = 1 ] && [ -x /usr/bin/docker-init ]; then
    exec /usr/bin/docker-init -- "$0" "$@"
fi

# everything below (and dockerd) is logged to the container's output and to /kbox/dockerd.log
LOG=/kbox/dockerd.log
if mkdir -p /kbox 2>/dev/null && touch "$LOG" 2>/dev/null; then
    if [ "$(wc -c < "$LOG")" -gt 10000000 ]; then mv -f "$LOG" "$LOG.1"; fi
    FIFO=/tmp/kbox-node-log.$$
    rm -f "$FIFO"
    if mkfifo "$FIFO" 2>/dev/null; then
        tee -a "$LOG" < "$FIFO" &
        exec > "$FIFO" 2>&1
        rm -f "$FIFO"
    fi
fi
log() { echo "kbox-node: $*"; }
log "starting at $(date -u '+%Y-%m-%dT%H:%M:%SZ')"

# 1. nothing addressed to the cluster's own ranges may leave this machine: while the routes
#    to peer nodes are missing (after a restart) such traffic would follow the default route.
#    More specific routes (peers' pod CIDRs, local bridges) still win over these.
CLUSTER_CIDR="${KBOX_CLUSTER_CIDR:-10.244.0.0/16}"
SERVICE_CIDR="${KBOX_SERVICE_CIDR:-10.96.0.0/12}"
for cidr in $CLUSTER_CIDR $SERVICE_CIDR; do
    if ! ip route replace unreachable "$cidr"; then
        log "cannot add the black-hole route for $cidr; refusing to start"
        exit 1
    fi
done

# 2. what Docker mounts read-only for an unprivileged container, the inner engine must write
mount -o remount,rw /sys 2>/dev/null || log "note: /sys stays read-only"
if grep -q '^[^ ]* /proc/sys [^ ]* ro[, ]' /proc/mounts; then
    mount -o remount,bind,rw /proc/sys 2>/dev/null || log "note: /proc/sys stays read-only"
fi
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    # cgroup v2: move our processes out of the namespace's root so controllers can be delegated
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null
    mkdir -p /sys/fs/cgroup/init
    for pid in $(cat /sys/fs/cgroup/cgroup.procs); do
        echo "$pid" > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null
    done
    for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
        echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
    done
else
    mount -o remount,rw /sys/fs/cgroup 2>/dev/null
    for d in /sys/fs/cgroup/*; do
        [ -L "$d" ] && continue
        mount -o remount,bind,rw "$d" 2>/dev/null || log "note: cannot remount $d read-write"
    done
fi

# 3. a fresh /run, and no pid files or sockets left by a previous life of this node
if ! grep -q '^[^ ]* /run ' /proc/mounts; then
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run || log "note: no tmpfs on /run"
fi
rm -f /run/docker.pid /var/run/docker.pid \
      /run/docker/containerd/containerd.pid /var/run/docker/containerd/containerd.pid \
      /run/containerd/containerd.pid /var/run/containerd/containerd.pid \
      /run/docker/containerd/containerd.sock /run/docker/containerd/containerd-debug.sock \
      /kbox/docker.sock

# 4. pods on the node's bridge reach other nodes through this container
echo 1 > /proc/sys/net/ipv4/ip_forward || log "note: cannot enable ip_forward"

log "exec dockerd"
# storage-driver overlay2: without a volume for /var/lib/docker fail loudly, not fall back to vfs
exec dockerd --host unix:///kbox/docker.sock --userland-proxy=false --bridge=none \
    --add-runtime kbox-pod=/usr/local/bin/kbox-runc \
    --exec-opt native.cgroupdriver=cgroupfs --storage-driver overlay2 \
    --log-level "${KBOX_DOCKERD_LOG_LEVEL:-warn}" --dns "${KBOX_NODE_DNS:-127.0.0.1}" \
    --log-opt max-size=10m --log-opt max-file=2 \
    ${KBOX_DOCKERD_ARGS:-} "$@"
"""

# runc for a pod's containers. Docker gives a container that joins another's network the
# hostname of that other container, and refuses an own one. A pod's containers join its
# sandbox, and a sandbox started ahead of its pod (kbox's warm sandboxes) has a placeholder
# name; so the container asks for its pod's name in its HOSTNAME variable (which Kubernetes
# sets to the pod's name anyway), and before runc creates it this sets the OCI spec's
# hostname to it and rewrites the pod's /etc/hostname and /etc/hosts (the sandbox's files,
# shared by the pod's containers) in place.
POD_RUNTIME_SCRIPT = r"""#!/bin/sh
# Shell builtins only (no grep or sed): runc runs this for every container of a pod.
bundle=
prev=
for a in "$@"; do
    case "$prev" in --bundle|-b) bundle=$a ;; esac
    case "$a" in --bundle=*) bundle=${a#--bundle=} ;; esac
    prev=$a
done
# after "$1" in the spec, up to the next quote; empty when the spec has no "$1"
value() {
    v=${spec#*"$1"}
    [ "$v" = "$spec" ] && v= || v=${v%%\"*}
}
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    spec=
    IFS= read -r spec < "$bundle/config.json"
    value '"HOSTNAME='; want=$v
    value '"hostname":"'; have=$v
    if [ -n "$want" ] && [ -n "$have" ] && [ "$want" != "$have" ]; then
        head=${spec%%\"hostname\":\"*}
        tail=${spec#*\"hostname\":\"}
        printf '%s' "$head\"hostname\":\"$want\"${tail#"$have\""}" > "$bundle/config.json"
        value '"destination":"/etc/hostname","type":"bind","source":"'; name_file=$v
        value '"destination":"/etc/hosts","type":"bind","source":"'; hosts_file=$v
        cur=
        [ -n "$name_file" ] && IFS= read -r cur < "$name_file"
        if [ -n "$name_file" ] && [ "$cur" != "$want" ]; then
            printf '%s\n' "$want" > "$name_file"
            if [ -n "$hosts_file" ]; then
                body=
                tab=$(printf '\t')
                while IFS= read -r line; do
                    case "$line" in
                        *[[:space:]]"$have") line=${line%"$have"}; line="${line%[[:space:]]}$tab$want" ;;
                    esac
                    body="$body$line
"
                done < "$hosts_file"
                printf '%s' "$body" > "$hosts_file"
            fi
        fi
    fi
fi
exec runc "$@"
"""

_NODE_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_NODE_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
_NODE_NSSWITCH = b"passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"

_NODE_OS_RELEASE = b'NAME="kbox node"\nID=kbox-node\nPRETTY_NAME="kbox node (host Docker binaries)"\n'


def _host_docker_group() -> bytes:
    """The host's `docker` group line (same gid), so the inner socket is group-owned as the
    host's own socket is; empty when the host has none."""
    try:
        with open("/etc/group") as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) >= 3 and fields[0] == "docker" and fields[2].isdigit():
                    return f"docker:x:{fields[2]}:\n".encode()
    except OSError:
        pass
    return b""


_digest_cache: dict[tuple[str, int, int, int], str] = {}


def _cached_file_digest(path: str) -> str:
    """sha256 of a host file, remembered per (path, inode, size, mtime) for this process."""
    st = os.stat(path)
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digest_cache:
        _digest_cache[key] = _file_digest(path)
    return _digest_cache[key]


def _canon(path: str) -> str:
    """`path` with its folder's symlinks resolved (the host's /lib → /usr/lib), file name kept."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


@dataclass
class NodeRootfs:
    """The node image's plan: every entry of the root filesystem, by path inside the image.

    entries: path → ("dir", mode) | ("link", target) | ("file", (host path, mode)) |
    ("data", (bytes, mode)). `recipe` hashes all of it (host files by content)."""
    entries: dict[str, tuple[str, Any]]
    recipe: str

    @property
    def tag(self) -> str:
        return f"{NODE_IMAGE_REPO}:{self.recipe[:12]}"

    def size(self) -> int:
        total = 0
        for kind, val in self.entries.values():
            if kind == "file":
                total += os.path.getsize(val[0])
            elif kind == "data":
                total += len(val[0])
        return total

    def write(self, fileobj: BinaryIO) -> None:
        """The root filesystem as a tar (parents before children, owned by root, mtime 0)."""
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self.entries, key=lambda p: (p.count("/"), p)):
                kind, val = self.entries[path]
                if kind == "dir":
                    _add_dir(tar, path, val)
                elif kind == "link":
                    _add_symlink(tar, path, val)
                elif kind == "data":
                    _add_bytes(tar, path, val[0], val[1])
                else:
                    host, mode = val
                    info = tarfile.TarInfo(path)
                    info.size = os.path.getsize(host)
                    info.mode = mode
                    info.mtime = 0
                    with open(host, "rb") as f:
                        tar.addfile(info, f)


class _Plan:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, Any]] = {}

    def _parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent and parent not in self.entries:
            self.entries[parent] = ("dir", 0o755)
            parent = os.path.dirname(parent)

    def put(self, path: str, kind: str, val: Any, *, replace: bool = True) -> None:
        path = path.strip("/")
        if not replace and path in self.entries:
            return
        self._parents(path)
        self.entries[path] = (kind, val)

    def host(self, path: str, as_path: str | None = None) -> None:
        """Copy a host file into the same place (or `as_path`), following its symlink chain:
        each link is kept as a link (soname links stay links) and its target copied too."""
        seen = 0
        while True:
            canon = _canon(path)
            st = os.lstat(canon)
            dest = as_path or canon
            if os.path.islink(canon):
                target = os.readlink(canon)
                self.put(dest, "link", target)
                path = target if target.startswith("/") else os.path.join(os.path.dirname(canon), target)
                as_path = None
                seen += 1
                if seen > 20:
                    raise ImageBuildError(f"symlink loop at {canon}")
                continue
            self.put(dest, "file", (canon, st.st_mode & 0o7777))
            return


def _find_host_binary(name: str, package: str) -> str:
    found = shutil.which(name, path=_SEARCH_PATH)
    if not found:
        raise ImageBuildError(f"the node image needs {name}, which is not on this machine: "
                              f"install Debian's {package} (apt-get install {package})")
    return found


def _ldd_libraries(paths: list[str]) -> list[str]:
    """Every shared library (and the loader) `ldd` names for these files."""
    ldd = shutil.which("ldd", path=_SEARCH_PATH)
    if not ldd:
        raise ImageBuildError("the node image needs ldd to find libraries: "
                              "install Debian's libc-bin (apt-get install libc-bin)")
    libs: list[str] = []
    for i in range(0, len(paths), 64):
        out = subprocess.run([ldd, *paths[i:i + 64]], capture_output=True, text=True,
                             env={"LC_ALL": "C", "PATH": _SEARCH_PATH})
        for line in out.stdout.splitlines():
            line = line.strip()
            if "=>" in line:
                target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
                if target.startswith("/"):
                    libs.append(target)
                elif target == "not found":
                    raise ImageBuildError(f"ldd: {line} (a library the node image needs is missing)")
            elif line.startswith("/") and " (0x" in line:
                libs.append(line.split(" (", 1)[0])
    return sorted(set(libs))


def node_rootfs(progress: Progress | None = None) -> NodeRootfs:
    """Plan the node image from this machine's binaries (raises ImageBuildError naming the
    Debian package to install when one is missing)."""
    if progress:
        progress(f"{NODE_STEPS[0]}: host binaries and libraries")
    plan = _Plan()
    for d in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):   # merged /usr as the host has it
        if os.path.islink("/" + d):
            plan.put(d, "link", os.readlink("/" + d))
    for d in _NODE_DIRS:
        plan.put(d, "dir", 0o1777 if d == "tmp" else 0o755)
    plan.put("var/run", "link", "../run")

    binaries = [_find_host_binary(name, pkg) for name, pkg in NODE_BINARIES]
    for b in binaries:
        plan.host(b)
    tini = _find_host_binary(*_TINI)
    plan.host(tini, "/usr/bin/docker-init")
    busybox = find_busybox()
    plan.host(busybox)

    # iptables: every name as the host's alternatives resolve it, plus the usual names
    nft = os.path.realpath(binaries[-1])
    sbin = os.path.dirname(_canon(binaries[-1]))
    names = set(_IPTABLES_NAMES)
    for name in os.listdir(sbin):
        p = os.path.join(sbin, name)
        if os.path.islink(p) and os.path.realpath(p) == nft and name != os.path.basename(nft):
            names.add(name)
    for name in sorted(names):
        plan.put(os.path.join(sbin, name), "link", os.path.basename(nft))
    modules = sorted(os.path.join(_XTABLES_MODULES, m) for m in os.listdir(_XTABLES_MODULES)
                     if m.endswith(".so")) if os.path.isdir(_XTABLES_MODULES) else []
    if not modules:
        raise ImageBuildError(f"no iptables modules in {_XTABLES_MODULES}: "
                              "install Debian's iptables (apt-get install iptables)")
    for m in modules:
        plan.host(m)

    for lib in _ldd_libraries(binaries + [tini, busybox] + modules):
        plan.host(lib)

    # busybox applets for everything the host binaries do not provide
    target = "/" + _canon(busybox).lstrip("/")
    for applet in _applets(busybox):
        plan.put(_canon("/" + applet.lstrip("/")), "link", target, replace=False)

    for f in _HOST_ETC:
        if os.path.isfile(f):
            plan.host(f)
    plan.put("etc/passwd", "data", (_NODE_PASSWD, 0o644))
    plan.put("etc/group", "data", (_NODE_GROUP + _host_docker_group(), 0o644))
    plan.put("usr/lib/os-release", "data", (_NODE_OS_RELEASE, 0o644))
    plan.put("etc/os-release", "link", "../usr/lib/os-release")
    plan.put("etc/nsswitch.conf", "data", (_NODE_NSSWITCH, 0o644))
    plan.put(NODE_ENTRYPOINT, "data", (NODE_ENTRYPOINT_SCRIPT.encode(), 0o755))
    plan.put(POD_RUNTIME_PATH, "data", (POD_RUNTIME_SCRIPT.encode(), 0o755))

    parts: list[str] = ["node-image-v1", NODE_ENTRYPOINT_SCRIPT]
    for path in sorted(plan.entries):
        kind, val = plan.entries[path]
        if kind == "file":
            parts.append(f"{path} file {val[1]:o} {_cached_file_digest(val[0])}")
        elif kind == "data":
            parts.append(f"{path} data {val[1]:o} {_digest(val[0])}")
        else:
            parts.append(f"{path} {kind} {val}")
    return NodeRootfs(plan.entries, _digest(*parts))


def node_image(client: Any, progress: Progress | None = None, *, force: bool = False) -> BuiltImage:
    """Build `kbox/node:<recipe>` unless the engine already has it (or `force`)."""
    import tempfile
    t0 = time.monotonic()
    rootfs = node_rootfs(progress)
    tag = rootfs.tag
    if not force and image_recipe(client, tag) == rootfs.recipe:
        return BuiltImage(tag, False, _image_size(client, tag), time.monotonic() - t0)
    if progress:
        progress(f"{NODE_STEPS[1]}: {len(rootfs.entries)} entries, {rootfs.size() / 1e6:.0f} MB")
    with tempfile.TemporaryFile(prefix="kbox-node-rootfs-") as f:
        rootfs.write(f)
        f.seek(0)
        if progress:
            progress(f"{NODE_STEPS[2]}: {tag}")
        import_rootfs(client, f, tag, rootfs.recipe, entrypoint=[NODE_ENTRYPOINT],
                      env={"PATH": NODE_PATH})
    if image_recipe(client, tag) != rootfs.recipe:
        raise ImageBuildError(f"docker import of {tag} did not leave an image with its recipe")
    return BuiltImage(tag, True, _image_size(client, tag), time.monotonic() - t0)


def ensure_node_image(client: Any, progress: Progress | None = None) -> str:
    """The node image's tag in the engine `client` talks to, built first unless current."""
    result = node_image(client, progress)
    if progress and result.built:
        progress(f"built {result.tag} ({result.size / 1e6:.0f} MB) in {result.seconds:.1f}s")
    return result.tag


def prune_node_images(client: Any, keep: str) -> list[str]:
    """Remove the engine's other `kbox/node:*` tags (older recipes) that no container uses;
    returns the tags removed. An image a container still uses is left alone."""
    import docker.errors
    removed = []
    for img in client.images.list(name=NODE_IMAGE_REPO):
        for tag in img.tags or []:
            if tag == keep or not tag.startswith(NODE_IMAGE_REPO + ":"):
                continue
            try:
                client.images.remove(tag)
                removed.append(tag)
            except docker.errors.APIError:       # in use by a container (409)
                pass
    return removed


def list_kbox_images(client: Any) -> list[Any]:
    """The engine's images with a `kbox/` tag (docker SDK Image objects), newest first."""
    out = [img for img in client.images.list()
           if any(t.startswith("kbox/") for t in (img.tags or []))]
    return sorted(out, key=lambda i: i.attrs.get("Created", ""), reverse=True)


__all__ = ["BUSYBOX_IMAGE", "RECIPE_LABEL", "ImageBuildError", "ensure_busybox_image",
           "busybox_rootfs", "image_recipe", "import_rootfs", "find_busybox", "Path",
           "BuiltImage", "busybox_image", "NODE_IMAGE_REPO", "NODE_ENTRYPOINT", "NODE_STEPS",
           "NODE_ENTRYPOINT_SCRIPT", "NodeRootfs", "node_rootfs", "node_image",
           "ensure_node_image", "prune_node_images", "list_kbox_images"]
