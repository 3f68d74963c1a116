"""Deployment, ReplicaSet, DaemonSet and Job defaulting and validation through the ApiServer."""

from __future__ import annotations

import copy

import pytest

from kbox.api.errors import ApiError


def template(labels=None, **spec):
    s = {"containers": [{"name": "c", "image": "nginx:1"}]}
    s.update(spec)
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}}, "spec": s}


def workload(name="web", selector=None, tmpl=None, **spec):
    s = {"selector": selector if selector is not None else {"matchLabels": {"app": "web"}},
         "template": tmpl or template()}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


def job(name="j", **spec):
    s = {"template": template(restartPolicy="Never")}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


def fail(api, resource, body, op="create"):
    with pytest.raises(ApiError) as ei:
        if op == "create":
            api.create(resource, body, "default")
        else:
            api.update(resource, body, "default")
    assert ei.value.code == 422, ei.value.message
    return {c["field"]: c["message"] for c in ei.value.causes}


def test_deployment_defaults(api):
    d = api.create("deployments", workload(), "default")
    s = d["spec"]
    assert s["replicas"] == 1
    assert s["strategy"] == {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert s["revisionHistoryLimit"] == 10 and s["progressDeadlineSeconds"] == 600
    ps = s["template"]["spec"]
    assert ps["restartPolicy"] == "Always" and ps["dnsPolicy"] == "ClusterFirst"
    assert ps["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert d["status"] == {} or "replicas" not in d["status"]


def test_replicaset_and_deployment_templates_default_identically(api):
    d = api.create("deployments", workload(), "default")
    rs = api.create("replicasets", workload(), "default")
    assert rs["spec"]["replicas"] == 1
    assert d["spec"]["template"] == rs["spec"]["template"]


def test_daemonset_defaults(api):
    ds = api.create("daemonsets", workload(), "default")
    s = ds["spec"]
    assert s["updateStrategy"] == {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert s["revisionHistoryLimit"] == 10
    assert s["template"]["spec"]["terminationGracePeriodSeconds"] == 30


@pytest.mark.parametrize("resource", ["deployments", "replicasets", "daemonsets"])
def test_selector_required_and_must_match(api, resource):
    body = workload()
    del body["spec"]["selector"]
    assert "spec.selector" in fail(api, resource, body)
    got = fail(api, resource, workload(selector={"matchLabels": {"app": "x"}}))
    assert got["spec.template.metadata.labels"] == (
        'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`')


@pytest.mark.parametrize("resource", ["deployments", "replicasets", "daemonsets"])
def test_template_restart_policy_must_be_always(api, resource):
    got = fail(api, resource, workload(tmpl=template(restartPolicy="Never")))
    assert got["spec.template.spec.restartPolicy"] == (
        'Unsupported value: "Never": supported values: "Always"')


@pytest.mark.parametrize("resource", ["deployments", "replicasets"])
def test_negative_replicas(api, resource):
    got = fail(api, resource, workload(replicas=-1))
    assert got["spec.replicas"] == "Invalid value: -1: must be greater than or equal to 0"


def test_template_container_rules_have_full_paths(api):
    t = template()
    t["spec"]["containers"] = [{"name": "c", "image": "x", "ports": [{"containerPort": 0}]},
                               {"name": "c"}]
    got = fail(api, "deployments", workload(tmpl=t))
    assert "spec.template.spec.containers[0].ports[0].containerPort" in got
    assert got["spec.template.spec.containers[1].name"] == 'Duplicate value: "c"'
    assert got["spec.template.spec.containers[1].image"] == "Required value"
    t["spec"]["containers"] = [{"name": "c", "image": "x", "ports": [{"containerPort": "eighty"}]}]
    got = fail(api, "deployments", workload(tmpl=t))
    assert "spec.template.spec.containers[0].ports[0].containerPort" in got


@pytest.mark.parametrize("resource", ["deployments", "replicasets", "daemonsets"])
def test_selector_is_immutable(api, resource):
    api.create(resource, workload(tmpl=template({"app": "web", "tier": "a"})), "default")
    cur = api.get(resource, "web", "default")
    cur["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "a"}}
    got = fail(api, resource, cur, op="update")
    assert got["spec.selector"].endswith("field is immutable")


def test_deployment_strategy_rules(api):
    got = fail(api, "deployments", workload(strategy={"type": "Blue"}))
    assert got["spec.strategy.type"].startswith('Unsupported value: "Blue"')
    got = fail(api, "deployments", workload(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}))
    assert "spec.strategy.rollingUpdate.maxUnavailable" in got


def test_deployment_update_of_template_is_allowed(api):
    api.create("deployments", workload(), "default")
    cur = api.get("deployments", "web", "default")
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    cur["spec"]["replicas"] = 3
    out = api.update("deployments", cur, "default")
    assert out["metadata"]["generation"] == 2


def test_job_defaults_and_generated_selector(api):
    j = api.create("jobs", job(), "default")
    s, uid = j["spec"], j["metadata"]["uid"]
    assert (s["parallelism"], s["completions"], s["backoffLimit"], s["completionMode"]) == \
        (1, 1, 6, "NonIndexed")
    assert s["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = s["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert labels["controller-uid"] == uid
    assert labels["batch.kubernetes.io/job-name"] == "j" and labels["job-name"] == "j"
    assert s["template"]["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"


def test_job_parallelism_only_leaves_completions_unset(api):
    j = api.create("jobs", job(parallelism=3), "default")
    assert j["spec"]["parallelism"] == 3 and j["spec"].get("completions") is None


def test_job_manual_selector(api):
    body = job(manualSelector=True, selector={"matchLabels": {"app": "web"}})
    j = api.create("jobs", body, "default")
    assert j["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert "controller-uid" not in j["spec"]["template"]["metadata"]["labels"]
    got = fail(api, "jobs", job("k", manualSelector=True, selector={"matchLabels": {"app": "x"}}))
    assert "spec.template.metadata.labels" in got


def test_job_restart_policy(api):
    got = fail(api, "jobs", job(template=template(restartPolicy="Always")))
    assert got["spec.template.spec.restartPolicy"].startswith('Unsupported value: "Always"')


def test_job_template_is_immutable_and_counts_non_negative(api):
    got = fail(api, "jobs", job(backoffLimit=-1))
    assert got["spec.backoffLimit"] == "Invalid value: -1: must be greater than or equal to 0"
    api.create("jobs", job(), "default")
    cur = api.get("jobs", "j", "default")
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    got = fail(api, "jobs", cur, op="update")
    assert got["spec.template"].endswith("field is immutable")
    cur = api.get("jobs", "j", "default")
    cur["spec"]["parallelism"] = 4                      # parallelism may change
    assert api.update("jobs", cur, "default")["spec"]["parallelism"] == 4


def test_workload_field_selectors(api):
    api.create("replicasets", workload("a"), "default")
    api.create("jobs", job(), "default")
    assert [r["metadata"]["name"] for r in
            api.list("replicasets", "default", field_selector="status.replicas=0")["items"]] == ["a"]
    assert [r["metadata"]["name"] for r in
            api.list("jobs", "default", field_selector="status.successful=0")["items"]] == ["j"]


def test_deployment_controller_sees_equal_templates():
    """The RS the deployment controller makes carries the deployment's defaulted template,
    so a second sync finds it instead of making another."""
    try:
        from test_replicaset_env import Env
    except ImportError:  # pragma: no cover - when tests/ is a package
        from tests.test_replicaset_env import Env
    from kbox.controllers.deployment import equal_ignore_hash
    env = Env()
    try:
        env.client.create("deployments", workload(), "default")
        env.settle()
        env.advance(5)
        env.settle()
        rss = env.client.list("replicasets", "default")["items"]
        assert len(rss) == 1
        d = env.client.get("deployments", "web", "default")
        assert equal_ignore_hash(rss[0]["spec"]["template"], d["spec"]["template"])
        t = copy.deepcopy(rss[0]["spec"]["template"])
        t["metadata"]["labels"].pop("pod-template-hash")
        assert t == d["spec"]["template"]
    finally:
        env.close()
