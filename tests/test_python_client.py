"""The official `kubernetes` Python client against a running kbox cluster, over HTTPS.

It reads the kubeconfig kbox writes (CA inline, bearer token), as a user's
script would, and drives pods, deployments and services: create, read, list
with label and field selectors, patch, delete; watch streams from a
resourceVersion (and what happens after that version is compacted away);
pod logs. A read-only token gets the client's 403 ApiException, and the
client's 410 handling sees kbox's Expired error.
"""

from __future__ import annotations

import time
import uuid

import pytest

from kbox.cli import kubeconfig
from kbox.cluster import Cluster
from kbox.config import ClusterConfig

k8s = pytest.importorskip("kubernetes")
from kubernetes import client as kc  # noqa: E402
from kubernetes import config as kconfig  # noqa: E402
from kubernetes import watch  # noqa: E402
from waiting import wait_for as _until


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ClusterConfig.model_validate({
        "name": f"py{uuid.uuid4().hex[:5]}", "runtime": "sim", "nodes": {"count": 2},
        "timings": {"sim": {"pullDelay": 0, "createDelay": 0, "startDelay": 0.05}}}))
    c.start()
    yield c
    c.stop()


def _api(cluster, tmp_path_factory, token: str | None = None):
    path = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.merge(kubeconfig.kubeconfig_for(cluster.config.name, cluster.url, cluster.credentials.ca_pem,
                                               token or cluster.credentials.admin_token), path)
    return kconfig.new_client_from_config(config_file=str(path))


@pytest.fixture(scope="module")
def api(cluster, tmp_path_factory):
    a = _api(cluster, tmp_path_factory)
    yield a
    a.close()


def test_pods_crud_with_selectors_and_logs(api):
    core = kc.CoreV1Api(api)
    core.create_namespace(kc.V1Namespace(metadata=kc.V1ObjectMeta(name="py")))
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        pod = kc.V1Pod(metadata=kc.V1ObjectMeta(name=name, labels={"tier": tier},
                                                annotations={"kbox.io/sim-run-seconds": "0.2"}
                                                if name == "b" else None),
                       spec=kc.V1PodSpec(restart_policy="Never", containers=[kc.V1Container(
                           name="main", image="kbox/busybox:latest", command=["sh", "-c", "echo hello"])]))
        created = core.create_namespaced_pod("py", pod)
        assert created.metadata.uid and created.status.phase == "Pending"
    assert sorted(p.metadata.name for p in core.list_namespaced_pod("py", label_selector="tier=web").items) \
        == ["a", "b"]
    assert [p.metadata.name for p in core.list_namespaced_pod("py", label_selector="tier!=web").items] == ["c"]
    assert [p.metadata.name for p in core.list_namespaced_pod("py", field_selector="metadata.name=b").items] \
        == ["b"]
    _until(lambda: all(p.spec.node_name for p in core.list_namespaced_pod("py").items), what="scheduled")
    node = core.read_namespaced_pod("a", "py").spec.node_name
    on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node},metadata.namespace=py")
    assert "a" in [p.metadata.name for p in on_node.items]
    # strategic merge patch (the client's default for a dict body) and a JSON patch
    core.patch_namespaced_pod("a", "py", {"metadata": {"labels": {"extra": "yes"}}})
    core.patch_namespaced_pod("a", "py", [{"op": "replace", "path": "/metadata/labels/tier", "value": "edge"}])
    labels = core.read_namespaced_pod("a", "py").metadata.labels
    assert labels == {"tier": "edge", "extra": "yes"}
    # logs of the finished container
    _until(lambda: core.read_namespaced_pod("b", "py").status.phase == "Succeeded", what="b Succeeded")
    assert core.read_namespaced_pod_log("b", "py", container="main").splitlines() == [
        "main: started image kbox/busybox:latest command: sh -c echo hello",
        "main: exited with code 0"]
    assert core.read_namespaced_pod_log("b", "py", tail_lines=1) == "main: exited with code 0\n"
    with pytest.raises(kc.exceptions.ApiException) as e:
        core.read_namespaced_pod("missing", "py")
    assert e.value.status == 404
    core.delete_namespaced_pod("c", "py", grace_period_seconds=0)
    _until(lambda: "c" not in [p.metadata.name for p in core.list_namespaced_pod("py").items], what="c gone")


def test_deployments_and_services(api):
    apps, core = kc.AppsV1Api(api), kc.CoreV1Api(api)
    dep = kc.V1Deployment(
        metadata=kc.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=kc.V1DeploymentSpec(
            replicas=2, selector=kc.V1LabelSelector(match_labels={"app": "web"}),
            template=kc.V1PodTemplateSpec(
                metadata=kc.V1ObjectMeta(labels={"app": "web"}),
                spec=kc.V1PodSpec(containers=[kc.V1Container(name="httpd", image="kbox/busybox:latest",
                                                             ports=[kc.V1ContainerPort(container_port=8080)])]))))
    apps.create_namespaced_deployment("default", dep)
    _until(lambda: apps.read_namespaced_deployment("web", "default").status.available_replicas == 2,
           what="2 available")
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    _until(lambda: apps.read_namespaced_deployment("web", "default").status.ready_replicas == 3, what="3 ready")
    assert len(core.list_namespaced_pod("default", label_selector="app=web").items) == 3
    assert [d.metadata.name for d in apps.list_namespaced_deployment("default", label_selector="app=web").items] \
        == ["web"]

    svc = kc.V1Service(metadata=kc.V1ObjectMeta(name="web"),
                       spec=kc.V1ServiceSpec(selector={"app": "web"},
                                             ports=[kc.V1ServicePort(port=80, target_port=8080)]))
    created = core.create_namespaced_service("default", svc)
    assert created.spec.cluster_ip and created.spec.type == "ClusterIP"
    assert created.spec.ports[0].protocol == "TCP"
    core.patch_namespaced_service("web", "default", {"metadata": {"annotations": {"owner": "py"}}})
    assert core.read_namespaced_service("web", "default").metadata.annotations == {"owner": "py"}
    eps = _until(lambda: (e := core.read_namespaced_endpoints("web", "default")).subsets and e,
                 what="endpoints")
    assert len(eps.subsets[0].addresses) == 3
    core.delete_namespaced_service("web", "default")
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    _until(lambda: not core.list_namespaced_pod("default", label_selector="app=web").items, 30,
           "the deployment's pods gone")


def test_watch_streams_from_a_resource_version(api):
    core = kc.CoreV1Api(api)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", kc.V1ConfigMap(metadata=kc.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w1", "default")
    w = watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("k")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1", None), ("MODIFIED", "w1", "v"), ("DELETED", "w1", "v")]


def test_a_compacted_resource_version_is_410_to_the_client(api, cluster):
    core = kc.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map("default", kc.V1ConfigMap(metadata=kc.V1ObjectMeta(name=f"old{i}")))
    cluster.store.compact(cluster.store.revision)
    with pytest.raises(kc.exceptions.ApiException) as e:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="2",
                                      timeout_seconds=2):
            pass
    assert e.value.status == 410 and "Expired" in str(e.value.reason)


def test_a_read_only_token_gets_403(cluster, tmp_path_factory):
    viewer = _api(cluster, tmp_path_factory, cluster.credentials.viewer_token)
    core = kc.CoreV1Api(viewer)
    assert core.list_namespace().items
    with pytest.raises(kc.exceptions.ApiException) as e:
        core.create_namespaced_config_map("default", kc.V1ConfigMap(metadata=kc.V1ObjectMeta(name="no")))
    assert e.value.status == 403
    viewer.close()
