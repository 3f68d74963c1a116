"""kbox's commands print what the real kubectl prints.

The golden objects are served over kbox's HTTP API; the real `kubectl`
binary and kbox's own commands run the same command lines against them, and
the outputs must be byte for byte the same: describe for every kind, events,
api-resources, -o yaml|json|name|jsonpath|custom-columns, errors. (kubectl's
`get` tables need server-side Table responses, which kbox's API does not
serve yet; tables are covered by tests/golden/get-tables.txt.)
Ages are computed on the real clock on both sides: the objects are years
old, so "3y9d" does not change between the two runs.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess

import pytest
from test_cli_golden import NOW, load_objects

from kbox.api import strategy
from kbox.api.client import InProcessClient
from kbox.api.server import ApiServer
from kbox.cli.registry import Context, execute
from kbox.clock import FakeClock, RealClock
from kbox.store.memory import MemoryStore

pytestmark = pytest.mark.kubectl

# field selectors kubectl describe needs; registered here only if kbox/api/kinds does not yet
NEEDED_FIELDS = {
    "events": {"involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
               "involvedObject.uid", "involvedObject.apiVersion"},
    "pods": {"spec.nodeName", "status.phase"},
}

COMMANDS = [
    "describe pod too-big",
    "describe pod web-5d9c7b8f6-abcde",
    "describe pod web-5d9c7b8f6-fghij",
    "describe pod with-init",
    "describe pod compute-x7k2p",
    "describe pod hungry",
    "describe pod bad-image",
    "describe pod shop-api -n shop",
    "describe deploy web",
    "describe rs web-5d9c7b8f6",
    "describe ds node-agent",
    "describe job compute",
    # (not `describe svc web`: kubectl 1.32 reads EndpointSlices, which kbox does not serve yet,
    # so it prints no endpoints where kbox prints the Endpoints object's)
    "describe ep web",
    "describe sa builder -n shop",
    "describe svc web-public",
    "describe ns shop",
    # (not `describe cm`: kubectl prints a ConfigMap's keys in Go's random map order)
    "describe secret web-token",
    "describe node kbox-worker",
    "describe node kbox-worker2",
    "events",
    "events -A",
    "events --for pod/too-big",
    "events --types=Warning",
    "api-resources",
    "api-resources -o wide",
    "api-resources --namespaced=false",
    "api-resources -o name",
    "get cm web-config -o yaml",
    "get deploy web -o json",
    "get pod too-big -o yaml",
    "get pods -o name",
    "get all -o name",
    "get deploy,rs -o name",
    "get cm -o yaml",
    "get pods -l app=web -o jsonpath={.items[*].metadata.name}",
    "get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName",
    "get pods --sort-by=.metadata.name -o name",
    "rollout history deploy/web",
    "rollout history deploy/web --revision=2",
    "rollout history deploy/web --revision=7",
    "rollout status deploy/web --timeout=1s",
    "get deploy web -o jsonpath={.metadata.labels}",
    "get deploy web -o jsonpath={.spec.template.spec.containers[0].ports}",
    "create deployment web2 --image=nginx:1.25 --replicas=2 --port=80 --dry-run=client -o yaml",
    "create deployment web2 --image=nginx --dry-run=client",
    "create job j --image=busybox --dry-run=client -o yaml -- echo hi",
    "create cm c --from-literal=a=1 --dry-run=client -o yaml",
    "create svc nodeport np --tcp=80:8080 --dry-run=client -o yaml",
    "create ns x --dry-run=client -o yaml",
    "create secret generic s --from-literal=a=b --dry-run=client -o yaml",
    "get deploy,rs -o yaml",
    "get deploy/web cm/web-config -o json",
    "get cm -n nowhere -o yaml",
    "get deploy,rs -o jsonpath={.items[*].metadata.name}",
    "get pod nope",
    "get foos",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    import kbox.api.kinds  # noqa: F401  (the real strategies first; patch only what they lack)
    from kbox.api.http import HttpServer
    from kbox.api.resources import lookup
    saved = {}
    for plural, fields in NEEDED_FIELDS.items():
        cur = strategy.strategy_for(lookup(plural))
        if not fields <= set(cur.field_labels):
            saved[plural] = (strategy._STRATEGIES.get(plural), strategy._INSTANCES.get(plural))
            cls = type(f"_KubectlTest{plural}", (type(cur),),
                       {"field_labels": frozenset(cur.field_labels) | fields})
            strategy.register(plural)(cls)
    clock = FakeClock(start=NOW - 100_000)
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(7))
    api.bootstrap()
    load_objects(api, clock)
    http = HttpServer(api, port=0).start()
    cache = tmp_path_factory.mktemp("kubectl-cache")
    yield api, ["kubectl", f"--server={http.url}", f"--cache-dir={cache}",
                "--kubeconfig=/dev/null"]
    http.stop()
    api.stop()
    for plural, (cls, inst) in saved.items():
        if not strategy._STRATEGIES.get(plural, object).__name__.startswith("_KubectlTest"):
            continue   # someone registered the real one meanwhile: keep it
        if cls is None:
            strategy._STRATEGIES.pop(plural, None)
        else:
            strategy._STRATEGIES[plural] = cls
        strategy._INSTANCES.pop(plural, None)
        if inst is not None:
            strategy._INSTANCES[plural] = inst


# Command sequences that change the cluster: run on two identical clusters, one driven by
# kubectl over HTTP, one by kbox in-process; every step must print the same.
MUTATIONS = [
    "label deploy web app=x",
    "label deploy web tier=fe",
    "label deploy web tier=fe",
    "label deploy web tier-",
    "label deploy web tier-",
    "annotate deploy web a=b",
    "annotate deploy web a=c",
    "scale deploy web --replicas=5",
    "scale deploy web --replicas=-1",
    "scale deploy/nope --replicas=1",
    "cordon kbox-worker",
    "cordon kbox-worker",
    "uncordon kbox-worker",
    "uncordon kbox-worker",
    "rollout pause deploy/web",
    "rollout pause deploy/web",
    "rollout resume deploy/web",
    "set image deploy/web web=busybox:1.38",
    "set image deploy/web nope=busybox:1.38",
    "delete cm web-config",
    "delete cm web-config",
    "apply -f samples/bad/malformed.yaml",
    "apply -f samples/nothing.yaml",
    "delete deploy web",
    "get deploy web",
]


def test_mutations_print_what_kubectl_prints(served, tmp_path):
    from pathlib import Path

    from kbox.api.http import HttpServer
    _, kubectl = served
    # a cluster of its own for kubectl, so the module's shared one stays untouched
    clock0 = FakeClock(start=NOW - 100_000)
    mine = ApiServer(MemoryStore(clock=clock0), clock0, rng=random.Random(7))
    mine.bootstrap()
    load_objects(mine, clock0)
    http = HttpServer(mine, port=0).start()
    kubectl = [kubectl[0], f"--server={http.url}"] + kubectl[2:]
    clock = FakeClock(start=NOW - 100_000)
    twin = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(7))
    twin.bootstrap()
    load_objects(twin, clock)
    root = Path(__file__).parent.parent
    try:
        for line in MUTATIONS:
            real = subprocess.run(kubectl + line.split(), capture_output=True, text=True, timeout=60,
                                  cwd=root, check=False)
            ctx = Context(client=InProcessClient(twin), out=io.StringIO(), err=io.StringIO(),
                          clock=RealClock(), base_dir=str(root))
            rc = execute(ctx, line)
            assert (ctx.out.getvalue(), ctx.err.getvalue(), rc) == \
                (real.stdout, real.stderr, real.returncode), line
    finally:
        twin.stop()
        http.stop()
        mine.stop()


@pytest.mark.parametrize("line", COMMANDS)
def test_same_output_as_kubectl(served, line):
    api, kubectl = served
    real = subprocess.run(kubectl + line.split(), capture_output=True, text=True, timeout=60,
                          check=False)
    ctx = Context(client=InProcessClient(api), out=io.StringIO(), err=io.StringIO(), clock=RealClock())
    rc = execute(ctx, line)
    assert (ctx.out.getvalue(), ctx.err.getvalue()) == (real.stdout, real.stderr)
    assert rc == real.returncode
