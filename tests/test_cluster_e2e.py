"""A whole sim cluster in this process: what a user sees end to end.

These boot the real composition root (store, API, HTTP, controllers,
scheduler, node agents) on real time with short timings.
"""

from __future__ import annotations

import time

import pytest

from kbox.cluster import Cluster
from kbox.config import ClusterConfig
from waiting import wait_for


def deployment(name="web", replicas=3, image="busybox:1.36", annotations=None):
    tmpl_meta = {"labels": {"app": name}}
    if annotations:
        tmpl_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": tmpl_meta,
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


@pytest.fixture(scope="module")
def cluster():
    config = ClusterConfig.model_validate({
        "name": "e2e", "runtime": "sim", "seed": 7,
        "nodes": {"count": 3, "cpu": "2", "memory": "4Gi"},
        "timings": {"nodeLeaseRenewInterval": 0.3, "nodeStatusUpdateFrequency": 0.3,
                    "nodeMonitorPeriod": 0.2, "nodeMonitorGracePeriod": 1.5,
                    "defaultTolerationSeconds": 1,
                    "sim": {"pullDelay": 0.05, "createDelay": 0.02, "startDelay": 0.05, "stopDelay": 0.05}},
    })
    c = Cluster(config).start(timeout=20)
    yield c
    c.stop()


def running(client, selector):
    pods = client.list("pods", "default", label_selector=selector)["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def test_nodes_ready_and_namespaces(cluster):
    nodes = cluster.client.list("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["e2e-worker", "e2e-worker2", "e2e-worker3"]
    names = {n["metadata"]["name"] for n in cluster.client.list("namespaces")["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_deployment_rolls_out_spread_and_self_heals(cluster):
    c = cluster.client
    c.create("deployments", deployment("web", 3), "default")
    pods = wait_for(lambda: len(running(c, "app=web")) == 3 and running(c, "app=web"))
    assert len({p["spec"]["nodeName"] for p in pods}) == 3          # spread over nodes
    assert all(p["status"]["podIP"].startswith("10.244.") for p in pods)
    d = wait_for(lambda: (c.get("deployments", "web", "default").get("status") or {}).get("availableReplicas") == 3
                 and c.get("deployments", "web", "default"))
    assert any(cond["type"] == "Available" and cond["status"] == "True" for cond in d["status"]["conditions"])
    victim = pods[0]["metadata"]["name"]
    c.delete("pods", victim, "default")
    wait_for(lambda: len(running(c, "app=web")) == 3
             and victim not in {p["metadata"]["name"] for p in running(c, "app=web")})
    reasons = {e["reason"] for e in c.list("events", "default")["items"]}
    assert {"Scheduled", "SuccessfulCreate", "ScalingReplicaSet", "Started"} <= reasons


def test_unschedulable_pod_reports_why(cluster):
    c = cluster.client
    c.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
                      "spec": {"containers": [{"name": "c", "image": "busybox",
                                               "resources": {"requests": {"cpu": "64"}}}]}}, "default")
    ev = wait_for(lambda: [e for e in c.list("events", "default", field_selector="involvedObject.name=huge")["items"]
                           if e["reason"] == "FailedScheduling"])
    assert ev[0]["message"].startswith("0/3 nodes are available: 3 Insufficient cpu.")
    c.delete("pods", "huge", "default")


def test_node_death_evicts_and_reschedules(cluster):
    c = cluster.client
    c.create("deployments", deployment("svc", 3), "default")
    wait_for(lambda: len(running(c, "app=svc")) == 3)
    node = running(c, "app=svc")[0]["spec"]["nodeName"]
    cluster.node_action("stop", node)
    try:
        wait_for(lambda: any(cd["type"] == "Ready" and cd["status"] == "Unknown"
                             for cd in c.get("nodes", node)["status"]["conditions"]), timeout=10)
        wait_for(lambda: len(running(c, "app=svc")) == 3
                 and all(p["spec"]["nodeName"] != node for p in running(c, "app=svc")), timeout=20)
    finally:
        cluster.node_action("start", node)
    wait_for(lambda: any(cd["type"] == "Ready" and cd["status"] == "True"
                         for cd in c.get("nodes", node)["status"]["conditions"]), timeout=10)


def test_http_api_matches_in_process(cluster):
    from kbox.api.httpclient import HttpClient
    http = cluster.http_client()
    try:
        names = lambda cl: sorted(p["metadata"]["name"] for p in cl.list("pods", "default")["items"])
        assert names(http) == names(cluster.client)
        assert http.kbox_status()["nodes"] == 3
    finally:
        http.close()


def test_a_seeded_cluster_names_its_pods_the_same_every_run():
    # events, leases and tokens are created by other threads meanwhile: generated names come
    # from a stream per resource, so their interleaving does not change the pods' names
    def names() -> list[str]:
        config = ClusterConfig.model_validate({"name": "seeded", "runtime": "sim", "seed": 7,
                                               "nodes": {"count": 2}})
        with Cluster(config, serve_http=False) as c:
            c.client.create("deployments", deployment("web", 3), "default")
            pods = wait_for(lambda: len(running(c.client, "app=web")) == 3 and running(c.client, "app=web"))
            return sorted(p["metadata"]["name"] for p in pods)
    first = names()
    assert first == names()
