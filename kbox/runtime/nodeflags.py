"""How a Docker-in-Docker node container is created: the arguments for the docker SDK's
`client.containers.create(**node_container_kwargs(...))`.

An inner Docker engine needs nearly every capability, no seccomp/AppArmor confinement,
writable /sys and cgroups, every device, and a volume for its data (overlay on overlay
does not work). `--privileged` gives all of that, but the engine refuses it when its own
capability bounding set lacks a capability (on these machines CAP_SYS_RESOURCE is missing:
`unable to apply caps: operation not permitted`). So the bounding set is read at run time:
when it is full the node is privileged, otherwise it gets each capability Docker 20.10
knows by name that the set holds, and the confinement is lifted option by option.

The node image's entrypoint (kbox.runtime.images.NODE_ENTRYPOINT_SCRIPT) remounts what
Docker mounts read-only and expects: KBOX_CLUSTER_CIDR and KBOX_SERVICE_CIDR in `env`,
the host folder for the inner socket at /kbox, the inner data volume at /var/lib/docker.
"""

from __future__ import annotations

import os
from typing import Any

# every capability Docker 20.10 accepts by name, by bit number (it rejects the newer
# CAP_PERFMON, CAP_BPF and CAP_CHECKPOINT_RESTORE)
DOCKER_CAPABILITIES: dict[int, str] = {
    0: "CHOWN", 1: "DAC_OVERRIDE", 2: "DAC_READ_SEARCH", 3: "FOWNER", 4: "FSETID",
    5: "KILL", 6: "SETGID", 7: "SETUID", 8: "SETPCAP", 9: "LINUX_IMMUTABLE",
    10: "NET_BIND_SERVICE", 11: "NET_BROADCAST", 12: "NET_ADMIN", 13: "NET_RAW",
    14: "IPC_LOCK", 15: "IPC_OWNER", 16: "SYS_MODULE", 17: "SYS_RAWIO", 18: "SYS_CHROOT",
    19: "SYS_PTRACE", 20: "SYS_PACCT", 21: "SYS_ADMIN", 22: "SYS_BOOT", 23: "SYS_NICE",
    24: "SYS_RESOURCE", 25: "SYS_TIME", 26: "SYS_TTY_CONFIG", 27: "MKNOD", 28: "LEASE",
    29: "AUDIT_WRITE", 30: "AUDIT_CONTROL", 31: "SETFCAP", 32: "MAC_OVERRIDE",
    33: "MAC_ADMIN", 34: "SYSLOG", 35: "WAKE_ALARM", 36: "BLOCK_SUSPEND", 37: "AUDIT_READ",
}

# `--security-opt systempaths=unconfined` is the docker CLI's own: it sends empty MaskedPaths
# and ReadonlyPaths, which the SDK cannot set and the engine refuses as a security option.
# The node's entrypoint remounts /proc/sys read-write instead (the one path the inner engine
# writes: ip_forward and the bridges' settings).
SECURITY_OPTS = ["seccomp=unconfined", "apparmor=unconfined"]


def bounding_set(status_file: str = "/proc/self/status") -> int | None:
    """This process's capability bounding set (CapBnd) as a bit mask, None if unreadable."""
    try:
        with open(status_file) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(DOCKER_CAPABILITIES)


def privileged_allowed(capbnd: int | None = None, last_cap: int | None = None) -> bool:
    """Whether `--privileged` can work here: every capability the kernel has is in the
    bounding set (000001ffffffffff on a 6.x kernel). KBOX_NODE_PRIVILEGED=1/0 overrides."""
    forced = os.environ.get("KBOX_NODE_PRIVILEGED", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    capbnd = bounding_set() if capbnd is None else capbnd
    if capbnd is None:
        return False
    last = _last_cap() if last_cap is None else last_cap
    full = (1 << (last + 1)) - 1
    return capbnd & full == full


def node_capabilities(capbnd: int | None = None) -> list[str]:
    """The capabilities to `--cap-add` for a node: those Docker knows that the bounding set
    holds (all but SYS_RESOURCE on these machines)."""
    capbnd = bounding_set() if capbnd is None else capbnd
    if capbnd is None:
        capbnd = ~(1 << 24)            # unknown: leave out only the one known to fail
    return [name for bit, name in sorted(DOCKER_CAPABILITIES.items()) if capbnd >> bit & 1]


def node_container_kwargs(*, name: str, image: str, network: str, socket_dir: str, volume: str,
                          labels: dict[str, str], env: dict[str, str],
                          hostname: str) -> dict[str, Any]:
    """Arguments for `client.containers.create(**kwargs)` making a node container.

    `socket_dir` (a host folder) is bind-mounted at /kbox, where the inner engine puts
    docker.sock and dockerd.log; `volume` (a named volume) holds the inner engine's data;
    `env` should carry KBOX_CLUSTER_CIDR and KBOX_SERVICE_CIDR (the entrypoint black-holes
    both ranges before anything else)."""
    kwargs: dict[str, Any] = {
        "image": image,
        "name": name,
        "hostname": hostname,
        "labels": dict(labels),
        "environment": dict(env),
        "network": network,
        "detach": True,
        "security_opt": list(SECURITY_OPTS),
        "device_cgroup_rules": ["a *:* rwm"],
        "cgroupns": "private",          # pods nest under the node's cgroup and go with it
        "tmpfs": {"/run": "rw,exec,nosuid,nodev,mode=755", "/tmp": "rw,exec,nosuid,nodev,mode=1777"},
        "volumes": {
            os.path.abspath(socket_dir): {"bind": "/kbox", "mode": "rw"},
            volume: {"bind": "/var/lib/docker", "mode": "rw"},
        },
    }
    if privileged_allowed():
        kwargs["privileged"] = True
    else:
        kwargs["cap_add"] = node_capabilities()
    return kwargs


__all__ = ["DOCKER_CAPABILITIES", "SECURITY_OPTS", "bounding_set", "privileged_allowed",
           "node_capabilities", "node_container_kwargs"]
