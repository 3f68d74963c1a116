"""The deployment controller compares a Deployment's template with its ReplicaSets'
templates, so both kinds must default a pod template identically: a second sync
must find the ReplicaSet it made instead of making another."""

from __future__ import annotations

import copy

try:
    from test_replicaset_env import Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_replicaset_env import Env

from kbox.controllers.deployment import HASH_LABEL, equal_ignore_hash


def deployment(name="web"):
    return {"metadata": {"name": name}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
            {"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
             "readinessProbe": {"httpGet": {"port": 80}},
             "resources": {"limits": {"cpu": "100m"}}}]}}}}


def test_replicaset_template_equals_deployment_template():
    env = Env()
    try:
        env.client.create("deployments", deployment(), "default")
        for _ in range(3):
            env.settle()
            env.advance(5)
        rss = env.client.list("replicasets", "default")["items"]
        assert len(rss) == 1
        d = env.client.get("deployments", "web", "default")
        assert equal_ignore_hash(rss[0]["spec"]["template"], d["spec"]["template"])
        t = copy.deepcopy(rss[0]["spec"]["template"])
        t["metadata"]["labels"].pop(HASH_LABEL)
        assert t == d["spec"]["template"]
        # the pods the ReplicaSet makes pass pod validation with the same defaults
        pods = env.client.list("pods", "default")["items"]
        assert len(pods) == 2
        assert pods[0]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 10
    finally:
        env.close()


def test_daemonset_and_job_templates_get_pod_defaults(api):
    tmpl = {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    ds = api.create("daemonsets", {"metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": copy.deepcopy(tmpl)}}, "default")
    jt = copy.deepcopy(tmpl)
    jt["spec"]["restartPolicy"] = "Never"
    job = api.create("jobs", {"metadata": {"name": "j"}, "spec": {"template": jt}}, "default")
    for spec in (ds["spec"]["template"]["spec"], job["spec"]["template"]["spec"]):
        assert spec["dnsPolicy"] == "ClusterFirst"
        assert spec["schedulerName"] == "default-scheduler"
        assert spec["terminationGracePeriodSeconds"] == 30
        assert spec["containers"][0]["imagePullPolicy"] == "Always"
        assert spec["containers"][0]["terminationMessagePolicy"] == "File"
