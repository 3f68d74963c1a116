"""A sim cluster for the real kubectl: boot, kubeconfig, and a kubectl runner.

Tests that drive kbox with the real `kubectl` share this helper (it is a
plain module, not a conftest, so each test file decides its own fixtures):

    from kube_env import KUBECTL_VERSIONS, boot

    @pytest.fixture(scope="module")
    def env(tmp_path_factory):
        with boot(tmp_path_factory.mktemp("kube")) as e:
            yield e

    def test_x(env, tmp_path):
        r = env.kubectl("get", "pods", version="1.27", cache_dir=tmp_path)

`boot` starts an in-process sim `Cluster` (HTTPS on 127.0.0.1 with a
bearer token, short timings) and writes a kubeconfig for it; `kubectl`
runs one binary with `--kubeconfig` and a `--cache-dir` of the test's own
(kubectl caches discovery and OpenAPI there), returning the
CompletedProcess. `KUBECTL_VERSIONS` maps "1.27" ... to the binaries found
on this machine; `version=None` is /usr/bin/kubectl (or kubectl on PATH).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import yaml

DEFAULT_KUBECTL = "/usr/bin/kubectl"
VERSIONED_GLOB = "/usr/lib/google-cloud-sdk/bin/kubectl.1.*"


def kubectl_binaries() -> dict[str, str]:
    """"1.NN" → path of every versioned kubectl present (plus "default")."""
    out: dict[str, str] = {}
    for path in sorted(glob.glob(VERSIONED_GLOB)):
        m = re.search(r"kubectl\.(1\.\d+)$", path)
        if m and os.access(path, os.X_OK):
            out[m.group(1)] = path
    default = DEFAULT_KUBECTL if os.access(DEFAULT_KUBECTL, os.X_OK) else shutil.which("kubectl")
    if default:
        out["default"] = default
    return out


KUBECTLS = kubectl_binaries()
# the versions tests run against: every 1.NN binary present, oldest first
KUBECTL_VERSIONS = sorted((v for v in KUBECTLS if v != "default"),
                          key=lambda v: int(v.split(".")[1]))


def versions(*wanted: str) -> list[str]:
    """The wanted versions that are present (all present when none is named); when none is,
    [None] so that tests run once against the default kubectl (or skip without one)."""
    have = [v for v in KUBECTL_VERSIONS if not wanted or v in wanted]
    return have or [None]  # type: ignore[list-item]


def write_kubeconfig(cluster: Any, path: Path) -> Path:
    """The one place a kubeconfig for `cluster` is written: its URL, and its CA and admin
    token when it serves HTTPS (kbox.api.auth)."""
    from kbox.cli import kubeconfig
    creds = getattr(cluster, "credentials", None)
    config = kubeconfig.kubeconfig_for(
        cluster.config.name, cluster.url,
        creds.ca_pem if creds is not None else None,
        creds.admin_token if creds is not None else None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class KubeEnv:
    """A running cluster plus what kubectl needs to reach it."""

    def __init__(self, cluster: Any, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.kubeconfig = write_kubeconfig(cluster, workdir / "kubeconfig")
        self.cache_dir = workdir / "cache"

    @staticmethod
    def binary(version: str | None = None) -> str:
        if version is None:
            path = KUBECTLS.get("default")
        else:
            path = KUBECTLS.get(version)
        if not path:
            raise FileNotFoundError(f"no kubectl {version or ''} on this machine".replace("  ", " "))
        return path

    def argv(self, *args: str, version: str | None = None,
             cache_dir: str | Path | None = None) -> list[str]:
        cache = Path(cache_dir) if cache_dir is not None else self.cache_dir
        return [self.binary(version), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={cache}",
                *args]

    def kubectl(self, *args: str, version: str | None = None, cache_dir: str | Path | None = None,
                input: str | None = None, timeout: float = 60,
                cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        """Run kubectl to completion (text mode; never raises on a non-zero exit)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        return subprocess.run(self.argv(*args, version=version, cache_dir=cache_dir),
                              capture_output=True, text=True, input=input, timeout=timeout,
                              cwd=cwd, env=env, check=False)

    def popen(self, *args: str, version: str | None = None,
              cache_dir: str | Path | None = None) -> subprocess.Popen:
        """Start kubectl and return at once (for `get -w`, `logs -f`): the caller reads
        stdout and terminates it."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        return subprocess.Popen(self.argv(*args, version=version, cache_dir=cache_dir),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)


def cluster_config(name: str | None = None, nodes: int = 2, **extra: Any) -> Any:
    from kbox.config import ClusterConfig
    data = {"name": name or f"kt{uuid.uuid4().hex[:6]}", "runtime": "sim", "seed": 7,
            "nodes": {"count": nodes, "cpu": "4", "memory": "8Gi"},
            "timings": {"nodeLeaseRenewInterval": 0.3, "nodeStatusUpdateFrequency": 0.3,
                        "nodeMonitorPeriod": 0.2, "nodeMonitorGracePeriod": 1.5,
                        "sim": {"pullDelay": 0.02, "createDelay": 0.01, "startDelay": 0.02,
                                "stopDelay": 0.02}}}
    data.update(extra)
    return ClusterConfig.model_validate(data)


@contextlib.contextmanager
def boot(workdir: str | Path | None = None, *, nodes: int = 2, name: str | None = None,
         timeout: float = 30.0, **config: Any) -> Iterator[KubeEnv]:
    """A sim cluster serving its API on 127.0.0.1, and its KubeEnv; stopped on exit."""
    from kbox.cluster import Cluster
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kbox-kube-")) if own else Path(workdir)
    cluster = Cluster(cluster_config(name, nodes, **config)).start(timeout=timeout)
    try:
        yield KubeEnv(cluster, work)
    finally:
        cluster.stop()
        if own:
            shutil.rmtree(work, ignore_errors=True)


__all__ = ["KUBECTLS", "KUBECTL_VERSIONS", "KubeEnv", "boot", "cluster_config", "kubectl_binaries",
           "versions", "write_kubeconfig"]
