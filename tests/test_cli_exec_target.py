"""`kbox exec TYPE/NAME` picks a pod as kubectl exec does (attachablePodForObject): the most
active pod the object's selector matches (deploy, rs, svc ...), without the "Found N pods"
line that only logs prints; a bare name or pod/NAME is that pod. On a sim cluster, whose
`hostname` answers the pod's name."""

from __future__ import annotations

import io

import pytest

from kbox.cli.registry import Context, execute
from kbox.cluster import Cluster
from kbox.config import ClusterConfig


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ClusterConfig.model_validate({
        "name": "exectarget", "runtime": "sim", "seed": 2, "nodes": {"count": 1},
        "timings": {"nodeLeaseRenewInterval": 0.3, "nodeStatusUpdateFrequency": 0.3,
                    "sim": {"pullDelay": 0.02, "createDelay": 0.02, "startDelay": 0.02}}}),
        serve_http=False).start(timeout=20)
    try:
        yield c
    finally:
        c.stop()


def kbox(cluster, *argv):
    ctx = Context(client=cluster.client, out=io.StringIO(), err=io.StringIO(), cluster=cluster)
    rc = execute(ctx, list(argv))
    return rc, ctx.out.getvalue(), ctx.err.getvalue()


def test_exec_by_deployment_and_service_picks_a_running_pod_silently(cluster):
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "kbox/busybox"}]}}}}
    cluster.client.create("deployments", web, "default")
    cluster.client.create("services", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}]}}, "default")
    assert kbox(cluster, "rollout", "status", "deploy/web", "--timeout=30s")[0] == 0
    pods = {p["metadata"]["name"] for p in cluster.client.list("pods", "default",
                                                               label_selector="app=web")["items"]}
    for target in ("deploy/web", "deployment.apps/web", "svc/web"):
        rc, out, err = kbox(cluster, "exec", target, "--", "hostname")
        assert rc == 0 and err == "", (target, err)
        assert out.strip() in pods
    one = sorted(pods)[0]
    assert kbox(cluster, "exec", f"pod/{one}", "--", "hostname")[1].strip() == one
    assert kbox(cluster, "exec", one, "--", "hostname")[1].strip() == one
    rc, _, err = kbox(cluster, "exec", "deploy/nope", "--", "hostname")
    assert rc == 1 and err == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    rc, _, err = kbox(cluster, "exec", "nope", "--", "hostname")
    assert rc == 1 and err == 'Error from server (NotFound): pods "nope" not found\n'
