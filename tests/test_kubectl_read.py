"""The real kubectl reads kbox: get in every output format, watch, discovery, explain, apply.

One sim cluster for the module (HTTPS with a token, as `kbox up` serves it),
the samples applied in their own namespace, and every kubectl version on
the machine that matters (1.27, the oldest, reads OpenAPI v2 as protobuf and
aggregated discovery v2beta1; 1.32 is the default; 1.33 the newest) run the
same commands. Table headers are compared with what kubectl prints against a
real cluster for each kind (written out below), `-o wide` included.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from kube_env import KUBECTL_VERSIONS, boot, versions

from kbox.api.resources import lookup
from waiting import wait_for

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).parent.parent
SAMPLES = ["configmap.yaml", "web.yaml", "daemonset.yaml", "job.yaml", "too-big.yaml",
           "init-containers.yaml"]
NS = "read"

# kubectl (1.32) against kube-apiserver (1.32): the header of each kind, then its -o wide header
HEADERS: dict[str, tuple[str, str]] = {
    "pods": ("NAME READY STATUS RESTARTS AGE",
             "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"),
    "nodes": ("NAME STATUS ROLES AGE VERSION",
              "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION "
              "CONTAINER-RUNTIME"),
    "deployments": ("NAME READY UP-TO-DATE AVAILABLE AGE",
                    "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"),
    "replicasets": ("NAME DESIRED CURRENT READY AGE",
                    "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR"),
    "services": ("NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
                 "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR"),
    "endpoints": ("NAME ENDPOINTS AGE", "NAME ENDPOINTS AGE"),
    "jobs": ("NAME STATUS COMPLETIONS DURATION AGE",
             "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"),
    "daemonsets": ("NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
                   "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS "
                   "IMAGES SELECTOR"),
    "events": ("LAST SEEN TYPE REASON OBJECT MESSAGE",
               "LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME"),
    "namespaces": ("NAME STATUS AGE", "NAME STATUS AGE"),
    "configmaps": ("NAME DATA AGE", "NAME DATA AGE"),
    "secrets": ("NAME TYPE DATA AGE", "NAME TYPE DATA AGE"),
    "serviceaccounts": ("NAME SECRETS AGE", "NAME SECRETS AGE"),
    "leases": ("NAME HOLDER AGE", "NAME HOLDER AGE"),
    "controllerrevisions": ("NAME CONTROLLER REVISION AGE", "NAME CONTROLLER REVISION AGE"),
}
CLUSTER_SCOPED = {"nodes", "namespaces"}
KIND_PREFIX = {"pods": "pod", "nodes": "node", "deployments": "deployment.apps",
               "replicasets": "replicaset.apps", "services": "service", "endpoints": "endpoints",
               "jobs": "job.batch", "daemonsets": "daemonset.apps", "events": "event",
               "namespaces": "namespace", "configmaps": "configmap", "secrets": "secret",
               "serviceaccounts": "serviceaccount", "leases": "lease.coordination.k8s.io",
               "controllerrevisions": "controllerrevision.apps"}

# what `kubectl api-resources -o wide` prints for kbox's kinds against a real cluster
API_RESOURCES = """
configmaps cm v1 true ConfigMap create,delete,deletecollection,get,list,patch,update,watch
endpoints ep v1 true Endpoints create,delete,deletecollection,get,list,patch,update,watch
events ev v1 true Event create,delete,deletecollection,get,list,patch,update,watch
namespaces ns v1 false Namespace create,delete,get,list,patch,update,watch
nodes no v1 false Node create,delete,deletecollection,get,list,patch,update,watch
pods po v1 true Pod create,delete,deletecollection,get,list,patch,update,watch all
secrets v1 true Secret create,delete,deletecollection,get,list,patch,update,watch
serviceaccounts sa v1 true ServiceAccount create,delete,deletecollection,get,list,patch,update,watch
services svc v1 true Service create,delete,deletecollection,get,list,patch,update,watch all
controllerrevisions apps/v1 true ControllerRevision create,delete,deletecollection,get,list,patch,update,watch
daemonsets ds apps/v1 true DaemonSet create,delete,deletecollection,get,list,patch,update,watch all
deployments deploy apps/v1 true Deployment create,delete,deletecollection,get,list,patch,update,watch all
replicasets rs apps/v1 true ReplicaSet create,delete,deletecollection,get,list,patch,update,watch all
jobs batch/v1 true Job create,delete,deletecollection,get,list,patch,update,watch all
leases coordination.k8s.io/v1 true Lease create,delete,deletecollection,get,list,patch,update,watch
nodes metrics.k8s.io/v1beta1 false NodeMetrics get,list
pods metrics.k8s.io/v1beta1 true PodMetrics get,list
""".strip().splitlines()

VERSIONS = versions("1.27", "1.32", "1.33")


def split(line: str) -> list[str]:
    """kubectl's columns are separated by at least three spaces (names hold single ones)."""
    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


def norm(line: str) -> str:
    return " ".join(line.split())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not KUBECTL_VERSIONS and not versions()[0]:
        pytest.skip("kubectl is not installed")
    with boot(tmp_path_factory.mktemp("kube-read")) as e:
        c = e.cluster.client
        c.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        files = [a for f in SAMPLES for a in ("-f", str(ROOT / "samples" / f))]
        r = e.kubectl("apply", "-n", NS, *files)
        assert r.returncode == 0, r.stderr
        e.kubectl("create", "secret", "generic", "creds", "-n", NS, "--from-literal=a=b")
        # one object of every kind to print (events, endpoints, revisions come from controllers)
        for plural in HEADERS:
            wait_for(lambda: c.list(plural, None)["items"], timeout=30)
        wait_for(lambda: [p for p in c.list("pods", NS, label_selector="app=web")["items"]
                          if p.get("status", {}).get("podIP")], timeout=30)
        yield e


# ---- get, every output format ---------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("plural", list(HEADERS))
def test_table_headers_match_a_real_cluster(env, tmp_path, version, plural):
    ns = [] if plural in CLUSTER_SCOPED else ["-A"]
    for wide, want in ((False, HEADERS[plural][0]), (True, HEADERS[plural][1])):
        r = env.kubectl("get", plural, *ns, *(["-o", "wide"] if wide else []),
                        version=version, cache_dir=tmp_path)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        expected = want if not ns else "NAMESPACE " + want
        assert norm(lines[0]) == expected, (plural, wide, lines[0])
        assert len(lines) >= 2
        head = split(lines[0])
        for line in lines[1:]:
            assert len(split(line)) <= len(head)        # (empty cells shrink a row)


@pytest.mark.parametrize("version", VERSIONS)
def test_rows_show_what_kubectl_shows(env, tmp_path, version):
    k = lambda *a: env.kubectl(*a, version=version, cache_dir=tmp_path)
    nodes = k("get", "nodes", "-o", "wide").stdout.splitlines()[1:]
    name = env.cluster.config.name
    assert [split(n)[0] for n in nodes] == [f"{name}-worker", f"{name}-worker2"]
    assert all(split(n)[1:3] == ["Ready", "<none>"] for n in nodes)
    assert all(split(n)[4].startswith("v1.32") for n in nodes)
    deploy = split(k("get", "deploy", "web", "-n", NS).stdout.splitlines()[1])
    assert deploy[0] == "web" and re.fullmatch(r"\d/3", deploy[1])
    pending = split(k("get", "pod", "too-big", "-n", NS, "-o", "wide").stdout.splitlines()[1])
    assert pending[:3] == ["too-big", "0/1", "Pending"] and pending[6] == "<none>"
    svc = split(k("get", "svc", "web", "-n", NS, "-o", "wide").stdout.splitlines()[1])
    assert svc[1] == "ClusterIP" and svc[-1] == "app=web"
    labels = k("get", "pods", "-n", NS, "-l", "app=web", "--show-labels").stdout.splitlines()
    assert norm(labels[0]).endswith("AGE LABELS") and len(labels) == 4
    assert all("app=web" in line for line in labels[1:])
    node = f"{name}-worker"
    by_node = k("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "wide")
    assert by_node.returncode == 0 and all(split(line)[7] == node
                                           for line in by_node.stdout.splitlines()[1:])
    one = k("get", "pods", "-n", NS, "--field-selector", "metadata.name=too-big", "--no-headers")
    assert [split(line)[0] for line in one.stdout.splitlines()] == ["too-big"]
    missing = k("get", "pod", "nope", "-n", NS)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def _names(env, plural: str, ns: str | None) -> set[str]:
    return {o["metadata"]["name"] for o in env.cluster.client.list(plural, ns)["items"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_output_format(env, tmp_path, version):
    kinds = ",".join(HEADERS)
    k = lambda *a: env.kubectl("get", kinds, "-n", NS, *a, version=version, cache_dir=tmp_path)
    want = {(p, n) for p in HEADERS for n in _names(env, p, None if p in CLUSTER_SCOPED else NS)}
    want_names = {f"{KIND_PREFIX[p]}/{n}" for p, n in want}

    r = k("-o", "name")
    assert r.returncode == 0, r.stderr
    got = set(r.stdout.split())
    assert want_names <= got and all(n.split("/")[0] in KIND_PREFIX.values() for n in got)

    r = k("-o", "json")
    doc = json.loads(r.stdout)
    assert doc["kind"] == "List"
    got_json = {(i["kind"], i["metadata"]["name"]) for i in doc["items"]}
    assert {(lookup(p).kind, n) for p, n in want} <= got_json    # (more events may come)

    r = k("-o", "yaml")
    ydoc = yaml.safe_load(r.stdout)
    assert ydoc["kind"] == "List"
    assert {(lookup(p).kind, n) for p, n in want} <= {(i["kind"], i["metadata"]["name"])
                                                      for i in ydoc["items"]}

    r = k("-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}")
    assert r.returncode == 0, r.stderr
    assert {f"{lookup(p).kind}/{n}" for p, n in want} <= set(r.stdout.splitlines())

    r = k("-o", "custom-columns=KIND:.kind,NAME:.metadata.name")
    lines = r.stdout.splitlines()
    assert split(lines[0]) == ["KIND", "NAME"] and ["Pod", "too-big"] in [split(x) for x in lines]

    r = k("-o", "go-template={{range .items}}{{.metadata.name}}{{\"\\n\"}}{{end}}")
    assert r.returncode == 0, r.stderr
    assert {n for _, n in want} <= set(r.stdout.split())

    r = k()      # tables for every kind, each with its header and kind/name rows
    assert r.returncode == 0, r.stderr
    blocks = [b.splitlines() for b in r.stdout.strip().split("\n\n")]
    heads = {norm(b[0]) for b in blocks}
    assert {HEADERS[p][0] for p in {p for p, _ in want}} <= heads
    rows = {split(line)[0] for b in blocks for line in b[1:]}
    # (an event's name is its -o wide column: its first column is LAST SEEN)
    assert {n for n in want_names if not n.startswith("event/")} <= rows


@pytest.mark.parametrize("version", VERSIONS)
def test_get_all_and_all_namespaces(env, tmp_path, version):
    r = env.kubectl("get", "all", "-n", NS, version=version, cache_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    firsts = [split(b.splitlines()[1])[0].split("/")[0] for b in r.stdout.strip().split("\n\n")]
    # the "all" category in discovery order, as against a real cluster
    assert firsts == ["pod", "service", "daemonset.apps", "deployment.apps", "replicaset.apps",
                      "job.batch"]
    r = env.kubectl("get", "pods", "-A", version=version, cache_dir=tmp_path)
    lines = r.stdout.splitlines()
    assert norm(lines[0]) == "NAMESPACE " + HEADERS["pods"][0]
    assert {split(line)[0] for line in lines[1:]} == {NS}
    assert len(lines) - 1 == len(env.cluster.client.list("pods")["items"])


def _reader(proc) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def run():
        for line in proc.stdout:
            q.put(line.rstrip("\n"))
        q.put(None)
    threading.Thread(target=run, daemon=True).start()
    return q


def _next_line(q: queue.Queue, timeout: float = 15.0) -> str:
    line = q.get(timeout=timeout)
    assert line is not None, "kubectl -w ended early"
    return line


@pytest.mark.parametrize("version", VERSIONS)
def test_get_watch(env, tmp_path, version):
    name = f"w{(version or 'x').replace('.', '')}"
    proc = env.popen("get", "configmaps", "-n", NS, "-w", version=version, cache_dir=tmp_path)
    try:
        q = _reader(proc)
        assert norm(_next_line(q)) == HEADERS["configmaps"][0]
        initial = {split(_next_line(q))[0] for _ in _names(env, "configmaps", NS)}
        assert initial == _names(env, "configmaps", NS)
        env.cluster.client.create("configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"a": "1", "b": "2"}})
        row = split(_next_line(q))
        assert row[:2] == [name, "2"]          # no second header: columns came once
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        env.cluster.client.delete("configmaps", name, NS)


# ---- discovery ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_api_resources(env, tmp_path, version):
    r = env.kubectl("api-resources", "-o", "wide", version=version, cache_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert split(lines[0]) == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS",
                               "CATEGORIES"]
    assert [norm(line) for line in lines[1:]] == API_RESOURCES
    r = env.kubectl("api-resources", version=version, cache_dir=tmp_path)
    assert norm(r.stdout.splitlines()[1]) == "configmaps cm v1 true ConfigMap"
    r = env.kubectl("api-versions", version=version, cache_dir=tmp_path)
    assert r.stdout.split() == ["apps/v1", "batch/v1", "coordination.k8s.io/v1",
                                "metrics.k8s.io/v1beta1", "v1"]


# ---- explain -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_explain(env, tmp_path, version):
    k = lambda *a: env.kubectl("explain", *a, version=version, cache_dir=tmp_path)
    r = k("pods")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^KIND:\s+Pod$", r.stdout, re.M) and re.search(r"^VERSION:\s+v1$", r.stdout, re.M)
    assert re.search(r"^\s+spec\s+<PodSpec>$", r.stdout, re.M)
    r = k("pods.spec.containers")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^FIELD:\s+containers <\[\]Container>$", r.stdout, re.M)
    assert re.search(r"^\s+image\s+<string>$", r.stdout, re.M)
    assert re.search(r"^\s+ports\s+<\[\]ContainerPort>$", r.stdout, re.M)
    r = k("deploy.spec", "--recursive")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^GROUP:\s+apps$", r.stdout, re.M)
    for field in (r"replicas\s+<integer>", r"template\s+<PodTemplateSpec>",
                  r"containers\s+<\[\]Container>", r"maxSurge\s+<IntOrString>"):
        assert re.search(r"^\s+" + field + "$", r.stdout, re.M), field
    r = k("pods.spec.nope")
    assert r.returncode != 0 and 'field "nope" does not exist' in r.stderr


# ---- apply ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_apply_is_idempotent_then_configures(env, tmp_path, version):
    ns = f"apply{(version or 'x').replace('.', '')}"
    env.cluster.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns}})
    files = [a for f in SAMPLES for a in ("-f", str(ROOT / "samples" / f))]
    k = lambda *a: env.kubectl(*a, "-n", ns, version=version, cache_dir=tmp_path)
    first = k("apply", *files)
    assert first.returncode == 0, first.stderr
    assert all(line.endswith(" created") for line in first.stdout.splitlines())
    again = k("apply", *files)
    assert again.returncode == 0, again.stderr
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again.stdout
    assert len(again.stdout.splitlines()) == len(first.stdout.splitlines())
    changed = k("apply", "-f", str(ROOT / "samples" / "web-v2.yaml"))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "deployment.apps/web configured"
    image = env.cluster.client.get("deployments", "web", ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "kbox/busybox:v2"
    back = k("apply", "-f", str(ROOT / "samples" / "web.yaml"))
    assert back.stdout.splitlines() == ["deployment.apps/web configured", "service/web unchanged"]


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_reports_unknown_fields(env, tmp_path, version):
    ns = f"strict{(version or 'x').replace('.', '')}"
    env.cluster.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns}})
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "strict"},
        "spec": {"replicas": 1, "foo": "bar", "selector": {"matchLabels": {"app": "s"}},
                 "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [
                     {"name": "c", "image": "kbox/busybox:latest", "imagePullPolicyy": "Always"}]}}}}))
    k = lambda *a: env.kubectl(*a, "-n", ns, version=version, cache_dir=tmp_path)
    r = k("apply", "-f", str(manifest))
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": Deployment in version '
        f'"v1" cannot be handled as a Deployment: strict decoding error: unknown field '
        f'"spec.foo", unknown field "spec.template.spec.containers[0].imagePullPolicyy"')
    assert env.cluster.client.list("deployments", ns)["items"] == []
    r = k("apply", "-f", str(manifest), "--validate=warn")
    assert r.returncode == 0, r.stderr
    assert 'Warning: unknown field "spec.foo"' in r.stderr
    assert r.stdout.strip() == "deployment.apps/strict created"
    r = k("apply", "-f", str(manifest), "--validate=false")
    assert r.returncode == 0 and "Warning" not in r.stderr
    r = k("apply", "-f", str(manifest), "--server-side")
    assert r.returncode == 1
    assert ".spec.foo: field not declared in schema" in r.stderr


@pytest.mark.parametrize("version", versions())
def test_every_kubectl_version_on_the_machine(env, tmp_path, version):
    """Each version present (1.27-1.33): discovery, a Table, OpenAPI (explain), a strict apply."""
    k = lambda *a, **kw: env.kubectl(*a, version=version, cache_dir=tmp_path, **kw)
    r = k("get", "nodes", "-o", "wide")
    assert r.returncode == 0, r.stderr
    assert norm(r.stdout.splitlines()[0]) == HEADERS["nodes"][1]
    r = k("api-resources", "--api-group=apps", "-o", "name")
    assert r.stdout.split() == ["controllerrevisions.apps", "daemonsets.apps", "deployments.apps",
                                "replicasets.apps"]
    r = k("explain", "deploy.spec.template.spec.containers.ports")
    assert r.returncode == 0 and re.search(r"containerPort\s+<integer>", r.stdout), r.stderr
    cm = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "v", "namespace": NS}, "data": {"a": "b"}, "bogus": 1})
    r = k("apply", "--dry-run=server", "-f", "-", input=cm)
    assert r.returncode == 1 and 'strict decoding error: unknown field "bogus"' in r.stderr
