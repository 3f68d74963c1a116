"""The real kubectl listing many pods: `kubectl get pods -A` against 5,000 pods.

Serves an API server (memory store, HTTPS with a bearer token, as `kbox up`
serves it) holding `--pods` Running pods over 50 namespaces, and times the
real kubectl's `get pods -A` (server-side Table, fetched in pages of 500 as
kubectl does by default), `-o wide`, and `-o name`, each `--runs` times with
a warm discovery cache. Goal (issue 5): < 1 s for 5,000 pods.

    python bench/bench_kubectl_get.py [--pods 5000] [--runs 5] [--kubectl /usr/bin/kubectl]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine  # noqa: E402

from kbox.api.auth import Authenticator, Credentials, authorize, request_info  # noqa: E402
from kbox.api.http import HttpServer  # noqa: E402
from kbox.api.server import ApiServer  # noqa: E402
from kbox.cli import kubeconfig  # noqa: E402
from kbox.store.memory import MemoryStore  # noqa: E402


def pod(i: int) -> dict:
    ns = f"ns-{i % 50}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"app-{i:05d}-x7k2p", "namespace": ns,
                         "labels": {"app": f"app-{i % 20}", "pod-template-hash": "5d9c7b8f6"}},
            "spec": {"nodeName": f"node-{i % 100}", "containers": [
                {"name": "app", "image": "kbox/busybox:latest",
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 2}",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                              "image": "kbox/busybox:latest",
                                              "state": {"running": {"startedAt": "2026-11-23T00:00:00Z"}}}]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kubectl", default="/usr/bin/kubectl")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbox-bench-get-"))
    api = ApiServer(MemoryStore(), rng=random.Random(1))
    api.bootstrap()
    for n in range(50):
        api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": f"ns-{n}"}})
    t0 = time.perf_counter()
    for i in range(args.pods):
        api.create("pods", pod(i))
    created = time.perf_counter() - t0
    creds = Credentials.ensure(work / "pki")
    http = HttpServer(api, ssl_certfile=creds.cert_path, ssl_keyfile=creds.key_path,
                      authenticator=Authenticator(creds),
                      authorizer=lambda user, method, path, query: authorize(
                          user, request_info(method, path, query))).start()
    cfg = work / "kubeconfig"
    cfg.write_text(yaml.safe_dump(kubeconfig.kubeconfig_for("bench", http.url, creds.ca_pem,
                                                            creds.admin_token)))
    cache = work / "cache"
    version = subprocess.run([args.kubectl, "version", "--client", "-o", "json"],
                             capture_output=True, text=True).stdout
    print(machine())
    print(f"{args.pods} pods created in {created:.1f} s; kubectl {version.split('gitVersion')[1][3:12] if 'gitVersion' in version else '?'}")

    def run(*extra: str) -> tuple[float, int]:
        t = time.perf_counter()
        r = subprocess.run([args.kubectl, f"--kubeconfig={cfg}", f"--cache-dir={cache}", "get",
                            "pods", "-A", *extra], capture_output=True, text=True)
        took = time.perf_counter() - t
        assert r.returncode == 0, r.stderr
        return took, len(r.stdout.splitlines())

    run()      # warm kubectl's discovery cache (as any second command finds it)
    try:
        for label, extra in (("get pods -A", ()), ("get pods -A -o wide", ("-o", "wide")),
                             ("get pods -A -o name", ("-o", "name")),
                             ("get pods -A --chunk-size=0", ("--chunk-size=0",))):
            times = []
            for _ in range(args.runs):
                took, lines = run(*extra)
                times.append(took)
            print(f"kubectl {label:<28} median {statistics.median(times) * 1000:7.0f} ms   "
                  f"min {min(times) * 1000:7.0f} ms   max {max(times) * 1000:7.0f} ms   "
                  f"({lines} lines)")
    finally:
        http.stop()
        api.stop()


if __name__ == "__main__":
    main()
