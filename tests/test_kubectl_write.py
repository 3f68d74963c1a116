"""The real kubectl changing a kbox cluster: the write side of issue 5.

For kubectl 1.27 and 1.32 (1.32 sends typed objects as protobuf), each in a
namespace of its own on one sim cluster: create deployment and service from
the command line, rollout status / history / undo / restart, scale, set
image, label, annotate, wait, describe (deployment, pod, node), events,
client-side apply of a file three times (created, unchanged, configured),
server-side apply twice then a field conflict after `kubectl scale` (and
--force-conflicts), cordon / uncordon / drain, and delete by name, label and
file. Each step checks kubectl's exit code and the line it prints against a
real cluster.
"""

from __future__ import annotations

import json

import pytest
from kube_env import boot, versions

pytestmark = pytest.mark.kubectl

VERSIONS = versions("1.27", "1.32")

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: files, labels: {app: files}}
spec:
  replicas: 1
  selector: {matchLabels: {app: files}}
  template:
    metadata: {labels: {app: files}}
    spec:
      containers: [{name: c, image: kbox/busybox:latest, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: files-config}
data: {mode: fast}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with boot(tmp_path_factory.mktemp("kube"), nodes=2) as e:
        yield e


@pytest.fixture(params=VERSIONS, ids=lambda v: f"kubectl-{v or 'default'}")
def k(request, env, tmp_path):
    version = request.param
    test = request.node.originalname.removeprefix("test_").split("_")[0][:10]
    ns = f"{test}-{(version or 'default').replace('.', '')}"
    env.cluster.client.create("namespaces", {"metadata": {"name": ns}})

    def run(*args: str, ok: bool = True, input: str | None = None, timeout: float = 60):
        r = env.kubectl("-n", ns, *args, version=version, cache_dir=tmp_path / "cache",
                        input=input, timeout=timeout, cwd=tmp_path)
        if ok:
            assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r

    run.ns = ns
    run.tmp = tmp_path
    return run


def _out(r) -> list[str]:
    return r.stdout.strip().splitlines()


def test_deployment_lifecycle(k, env):
    assert _out(k("create", "deployment", "web", "--image=kbox/busybox:latest", "--replicas=2",
                  "--port=8080", "--", "httpd", "-f", "-p", "8080")) == ["deployment.apps/web created"]
    assert _out(k("create", "service", "clusterip", "web", "--tcp=80:8080")) == ["service/web created"]
    assert "successfully rolled out" in k("rollout", "status", "deploy/web", "--timeout=60s").stdout
    assert _out(k("scale", "deploy", "web", "--replicas=3")) == ["deployment.apps/web scaled"]
    assert _out(k("wait", "--for=condition=Available", "deploy/web", "--timeout=60s")) == \
        ["deployment.apps/web condition met"]
    k("wait", "--for=jsonpath={.status.readyReplicas}=3", "deploy/web", "--timeout=60s")
    assert _out(k("label", "deploy", "web", "tier=front")) == ["deployment.apps/web labeled"]
    # kubectl 1.27 itself prints "annotate" here (fixed in later versions)
    assert _out(k("annotate", "deploy", "web", "note=hi"))[0] in ("deployment.apps/web annotated",
                                                                  "deployment.apps/web annotate")
    got = json.loads(k("get", "deploy", "web", "-o", "json").stdout)
    assert got["metadata"]["labels"]["tier"] == "front" and got["metadata"]["annotations"]["note"] == "hi"

    assert _out(k("set", "image", "deploy/web", "busybox=kbox/busybox:v2")) == ["deployment.apps/web image updated"]
    assert "successfully rolled out" in k("rollout", "status", "deploy/web", "--timeout=60s").stdout
    history = _out(k("rollout", "history", "deploy/web"))
    assert history[0] == "deployment.apps/web " and history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    assert _out(k("rollout", "undo", "deploy/web")) == ["deployment.apps/web rolled back"]
    k("rollout", "status", "deploy/web", "--timeout=60s")
    image = k("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "kbox/busybox:latest"
    assert _out(k("rollout", "restart", "deploy/web")) == ["deployment.apps/web restarted"]
    k("rollout", "status", "deploy/web", "--timeout=60s")
    restarted = json.loads(k("get", "deploy", "web", "-o", "json").stdout)
    assert "kubectl.kubernetes.io/restartedAt" in restarted["spec"]["template"]["metadata"]["annotations"]

    describe = k("describe", "deploy", "web").stdout
    for want in ("Name:                   web", f"Namespace:              {k.ns}", "Replicas:",
                 "StrategyType:           RollingUpdate", "Pod Template:", "Events:", "ScalingReplicaSet"):
        assert want in describe, want
    pod = json.loads(k("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"][0]
    describe_pod = k("describe", "pod", pod["metadata"]["name"]).stdout
    for want in (f"Name:             {pod['metadata']['name']}", "Status:           Running",
                 "Controlled By:  ReplicaSet/", "Conditions:", "Events:"):
        assert want in describe_pod, want
    events = k("events").stdout
    assert events.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "ScalingReplicaSet" in events and "Scheduled" in events

    assert _out(k("delete", "svc", "web")) == ['service "web" deleted']
    assert _out(k("delete", "deploy", "-l", "app=web")) == ['deployment.apps "web" deleted']


def test_describe_node_and_drain(k, env):
    node = f"{env.cluster.config.name}-worker2"
    describe = k("describe", "node", node).stdout
    for want in (f"Name:               {node}", "Capacity:", "Allocatable:", "System Info:",
                 "Non-terminated Pods:", "Allocated resources:"):
        assert want in describe, want
    k("create", "deployment", "drainme", "--image=kbox/busybox:latest", "--replicas=4")
    k("rollout", "status", "deploy/drainme", "--timeout=60s")
    assert _out(k("cordon", node)) == [f"node/{node} cordoned"]
    assert json.loads(k("get", "node", node, "-o", "json").stdout)["spec"]["unschedulable"] is True
    assert _out(k("uncordon", node)) == [f"node/{node} uncordoned"]
    drained = k("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
    assert drained.stdout.strip().endswith(f"node/{node} drained")
    left = json.loads(k("get", "pods", "-o", "json", f"--field-selector=spec.nodeName={node}").stdout)
    assert left["items"] == []
    k("rollout", "status", "deploy/drainme", "--timeout=60s")       # back on the other node
    k("uncordon", node)
    k("delete", "deploy", "drainme")


def test_client_side_apply_and_delete_by_file(k):
    path = k.tmp / "web.yaml"
    path.write_text(WEB)
    assert _out(k("apply", "-f", str(path))) == ["deployment.apps/files created", "configmap/files-config created"]
    assert _out(k("apply", "-f", str(path))) == ["deployment.apps/files unchanged",
                                                 "configmap/files-config unchanged"]
    path.write_text(WEB.replace("mode: fast", "mode: slow"))
    assert _out(k("apply", "-f", str(path))) == ["deployment.apps/files unchanged",
                                                 "configmap/files-config configured"]
    cm = json.loads(k("get", "cm", "files-config", "-o", "json").stdout)
    assert cm["data"] == {"mode": "slow"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    assert _out(k("delete", "-f", str(path))) == ['deployment.apps "files" deleted',
                                                  'configmap "files-config" deleted']
    missing = k("delete", "-f", str(path), ok=False)
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_server_side_apply_and_conflicts(k):
    path = k.tmp / "ssa.yaml"
    path.write_text(WEB.replace("files", "ssa"))
    for _ in range(2):
        assert _out(k("apply", "--server-side", "-f", str(path))) == \
            ["deployment.apps/ssa serverside-applied", "configmap/ssa-config serverside-applied"]
    managers = json.loads(k("get", "deploy", "ssa", "-o", "json", "--show-managed-fields").stdout)[
        "metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managers] == [("kubectl", "Apply")]
    k("scale", "deploy", "ssa", "--replicas=3")
    conflict = k("apply", "--server-side", "-f", str(path), ok=False)
    assert conflict.returncode == 1
    assert "Apply failed with 1 conflict: conflict with" in conflict.stderr
    assert 'with subresource "scale" using apps/v1: .spec.replicas' in conflict.stderr
    k("apply", "--server-side", "--force-conflicts", "-f", str(path))
    assert k("get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}").stdout == "1"
    path.write_text(WEB.replace("files", "ssa").replace("replicas: 1", "replicas: 2"))
    k("apply", "--server-side", "-f", str(path))
    assert k("get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    k("delete", "-f", str(path))
