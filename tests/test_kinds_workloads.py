"""Deployment, ReplicaSet, DaemonSet and Job defaulting and validation through
the ApiServer (kbox.api.kinds.deployment / replicaset / daemonset / job)."""

from __future__ import annotations

import pytest

from kbox.api.errors import ApiError


def template(labels=None, **spec):
    s = {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    s.update(spec)
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}}, "spec": s}


def workload(name="web", selector=None, tmpl=None, **spec):
    s = {"selector": selector if selector is not None else {"matchLabels": {"app": "web"}},
         "template": tmpl if tmpl is not None else template()}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


def causes(api, resource, body, ns="default"):
    with pytest.raises(ApiError) as ei:
        api.create(resource, body, ns)
    assert ei.value.code == 422, ei.value.message
    assert ei.value.reason == "Invalid"
    return {c["field"]: c["message"] for c in ei.value.causes}


# ---- Deployment ----------------------------------------------------------------------

def test_deployment_defaults(api):
    d = api.create("deployments", workload(), "default")
    s = d["spec"]
    assert s["replicas"] == 1
    assert s["strategy"] == {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert s["revisionHistoryLimit"] == 10
    assert s["progressDeadlineSeconds"] == 600
    t = s["template"]["spec"]
    assert t["restartPolicy"] == "Always" and t["dnsPolicy"] == "ClusterFirst"
    assert t["terminationGracePeriodSeconds"] == 30 and t["schedulerName"] == "default-scheduler"
    assert t["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert t["containers"][0]["terminationMessagePolicy"] == "File"
    # pod-only defaults stay off templates, as in Kubernetes
    assert "enableServiceLinks" not in t and "priority" not in t
    assert d["status"] == {}
    assert d["metadata"]["generation"] == 1


def test_deployment_recreate_gets_no_rolling_update(api):
    d = api.create("deployments", workload(strategy={"type": "Recreate"}), "default")
    assert d["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_keeps_user_fields_and_unknown_fields(api):
    body = workload(replicas=3, minReadySeconds=5)
    body["spec"]["someFutureField"] = {"x": 1}
    d = api.create("deployments", body, "default")
    assert d["spec"]["replicas"] == 3 and d["spec"]["minReadySeconds"] == 5
    assert d["spec"]["someFutureField"] == {"x": 1}


def test_negative_replicas(api):
    got = causes(api, "deployments", workload(replicas=-1))
    assert got["spec.replicas"] == "Invalid value: -1: must be greater than or equal to 0"


def test_replicas_must_be_an_integer(api):
    got = causes(api, "deployments", workload(replicas="3"))
    assert got["spec.replicas"] == 'Invalid value: "3": must be an integer'


def test_selector_must_match_template_labels(api):
    got = causes(api, "deployments", workload(tmpl=template({"app": "other"})))
    assert got["spec.template.metadata.labels"] == (
        'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`')


def test_selector_required(api):
    body = workload()
    del body["spec"]["selector"]
    got = causes(api, "deployments", body)
    assert got["spec.selector"] == "Required value"


def test_empty_selector_is_invalid(api):
    got = causes(api, "deployments", workload(selector={}))
    assert got["spec.selector"].endswith("empty selector is invalid for deployment")


def test_template_containers_required_and_named(api):
    got = causes(api, "deployments", workload(tmpl=template(containers=[])))
    assert got["spec.template.spec.containers"] == "Required value"
    got = causes(api, "deployments", workload(tmpl=template(containers=[{"image": "x"}, {"name": "c"}])))
    assert got["spec.template.spec.containers[0].name"] == "Required value"
    assert got["spec.template.spec.containers[1].image"] == "Required value"
    got = causes(api, "deployments", workload(tmpl=template(containers=[
        {"name": "c", "image": "x"}, {"name": "c", "image": "y"}])))
    assert got["spec.template.spec.containers[1].name"] == 'Duplicate value: "c"'


def test_template_restart_policy_must_be_always(api):
    got = causes(api, "deployments", workload(tmpl=template(restartPolicy="Never")))
    assert got["spec.template.spec.restartPolicy"] == \
        'Unsupported value: "Never": supported values: "Always"'


def test_template_port_and_quantity_paths(api):
    got = causes(api, "deployments", workload(tmpl=template(containers=[
        {"name": "c", "image": "x", "ports": [{"containerPort": 0}]}])))
    assert got["spec.template.spec.containers[0].ports[0].containerPort"] == \
        "Invalid value: 0: must be between 1 and 65535, inclusive"
    got = causes(api, "deployments", workload(tmpl=template(containers=[
        {"name": "c", "image": "x", "resources": {"requests": {"memory": "12 apples"}}}])))
    assert got["spec.template.spec.containers[0].resources.requests[memory]"].startswith(
        'Invalid value: "12 apples": quantities must match the regular expression')


def test_rolling_update_rules(api):
    got = causes(api, "deployments", workload(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}))
    assert got["spec.strategy.rollingUpdate.maxUnavailable"] == \
        "Invalid value: 0: may not be 0 when `maxSurge` is 0"
    got = causes(api, "deployments", workload(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots"}}))
    assert "a valid percent string" in got["spec.strategy.rollingUpdate.maxSurge"]
    got = causes(api, "deployments", workload(strategy={"type": "Recreate", "rollingUpdate": {}}))
    assert got["spec.strategy.rollingUpdate"].startswith("Forbidden: may not be specified")
    got = causes(api, "deployments", workload(strategy={"type": "Sideways"}))
    assert got["spec.strategy.type"] == \
        'Unsupported value: "Sideways": supported values: "Recreate", "RollingUpdate"'


def test_invalid_name(api):
    got = causes(api, "deployments", workload(name="Web_1"))
    assert got["metadata.name"].startswith('Invalid value: "Web_1": a lowercase RFC 1123 subdomain')


def test_selector_is_immutable(api):
    api.create("deployments", workload(), "default")
    cur = api.get("deployments", "web", "default")
    cur["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    cur["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(ApiError) as ei:
        api.update("deployments", cur, "default")
    assert ei.value.code == 422
    (c,) = ei.value.causes
    assert c["field"] == "spec.selector" and c["message"].endswith("field is immutable")
    # everything else may change, and bumps the generation
    cur = api.get("deployments", "web", "default")
    cur["spec"]["replicas"] = 4
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    out = api.update("deployments", cur, "default")
    assert out["metadata"]["generation"] == 2


def test_patch_runs_validation(api):
    api.create("deployments", workload(), "default")
    with pytest.raises(ApiError) as ei:
        api.patch("deployments", "web", {"spec": {"replicas": -3}}, "merge", "default")
    assert ei.value.code == 422
    assert ei.value.causes[0]["field"] == "spec.replicas"


def test_scale_subresource_still_works(api):
    api.create("deployments", workload(), "default")
    assert api.scale("deployments", "web", 5, "default")["spec"]["replicas"] == 5


def test_deployment_status_update_is_not_blocked(api):
    api.create("deployments", workload(), "default")
    cur = api.get("deployments", "web", "default")
    cur["status"] = {"replicas": 1, "observedGeneration": 1}
    out = api.update_status("deployments", cur, "default")
    assert out["status"]["replicas"] == 1


# ---- ReplicaSet ----------------------------------------------------------------------

def test_replicaset_defaults_and_rules(api):
    rs = api.create("replicasets", workload("web-1"), "default")
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    got = causes(api, "replicasets", workload("web-2", replicas=-1, tmpl=template({"app": "x"})))
    assert got["spec.replicas"].startswith("Invalid value: -1")
    assert "spec.template.metadata.labels" in got
    cur = api.get("replicasets", "web-1", "default")
    cur["spec"]["selector"]["matchLabels"]["app"] = "other"
    cur["spec"]["template"]["metadata"]["labels"]["app"] = "other"
    with pytest.raises(ApiError) as ei:
        api.update("replicasets", cur, "default")
    assert ei.value.causes[0]["field"] == "spec.selector"


def test_replicaset_status_replicas_field_selector(api):
    api.create("replicasets", workload("a"), "default")
    api.create("replicasets", workload("b"), "default")
    cur = api.get("replicasets", "b", "default")
    cur["status"] = {"replicas": 2}
    api.update_status("replicasets", cur, "default")
    names = lambda sel: [i["metadata"]["name"] for i in
                         api.list("replicasets", "default", field_selector=sel)["items"]]
    assert names("status.replicas=0") == ["a"]
    assert names("status.replicas!=0") == ["b"]


def test_match_expressions_select_template(api):
    sel = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}
    api.create("replicasets", workload("ok", selector=sel), "default")
    bad = {"matchExpressions": [{"key": "app", "operator": "In"}]}
    got = causes(api, "replicasets", workload("bad", selector=bad))
    assert got["spec.selector.matchExpressions[0].values"].startswith("Required value")


# ---- DaemonSet -----------------------------------------------------------------------

def test_daemonset_defaults(api):
    ds = api.create("daemonsets", workload("agent"), "default")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_daemonset_rules(api):
    got = causes(api, "daemonsets", workload("agent", tmpl=template(restartPolicy="OnFailure")))
    assert got["spec.template.spec.restartPolicy"] == \
        'Unsupported value: "OnFailure": supported values: "Always"'
    got = causes(api, "daemonsets", workload("agent", updateStrategy={"type": "Whenever"}))
    assert got["spec.updateStrategy.type"].startswith('Unsupported value: "Whenever"')
    api.create("daemonsets", workload("agent"), "default")
    cur = api.get("daemonsets", "agent", "default")
    cur["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    with pytest.raises(ApiError) as ei:
        api.update("daemonsets", cur, "default")
    assert "spec.selector" in {c["field"] for c in ei.value.causes}


# ---- Job -----------------------------------------------------------------------------

def job(name="pi", **spec):
    s = {"template": {"spec": {"restartPolicy": "Never",
                               "containers": [{"name": "c", "image": "perl:5.34"}]}}}
    s.update(spec)
    return {"metadata": {"name": name}, "spec": s}


def test_job_defaults_and_generated_selector(api):
    j = api.create("jobs", job(), "default")
    uid = j["metadata"]["uid"]
    s = j["spec"]
    assert (s["parallelism"], s["completions"], s["backoffLimit"], s["completionMode"]) == \
        (1, 1, 6, "NonIndexed")
    assert s["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = s["template"]["metadata"]["labels"]
    assert labels == {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
                      "controller-uid": uid, "job-name": "pi"}
    assert j["metadata"]["labels"] == labels       # a Job without labels takes its template's
    assert s["template"]["spec"]["restartPolicy"] == "Never"
    assert j["status"] == {}


def test_job_parallelism_alone_leaves_completions_unset(api):
    j = api.create("jobs", job(parallelism=3), "default")
    assert j["spec"]["parallelism"] == 3 and "completions" not in j["spec"]
    j = api.create("jobs", job("c5", completions=5), "default")
    assert j["spec"]["parallelism"] == 1 and j["spec"]["completions"] == 5


def test_job_restart_policy(api):
    body = job()
    del body["spec"]["template"]["spec"]["restartPolicy"]
    got = causes(api, "jobs", body)
    assert got["spec.template.spec.restartPolicy"] == 'Required value: valid values: "OnFailure", "Never"'
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    got = causes(api, "jobs", body)
    assert got["spec.template.spec.restartPolicy"] == \
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'


def test_job_negative_fields(api):
    got = causes(api, "jobs", job(backoffLimit=-1, parallelism=-2))
    assert got["spec.backoffLimit"] == "Invalid value: -1: must be greater than or equal to 0"
    assert got["spec.parallelism"] == "Invalid value: -2: must be greater than or equal to 0"


def test_job_manual_selector(api):
    body = job(manualSelector=True)
    got = causes(api, "jobs", body)
    assert got["spec.selector"] == "Required value"
    body = job(manualSelector=True, selector={"matchLabels": {"run": "pi"}})
    body["spec"]["template"]["metadata"] = {"labels": {"run": "pi"}}
    j = api.create("jobs", body, "default")
    assert j["spec"]["selector"] == {"matchLabels": {"run": "pi"}}
    assert "controller-uid" not in j["spec"]["template"]["metadata"]["labels"]


def test_job_user_selector_without_manual_selector_is_refused(api):
    body = job(selector={"matchLabels": {"run": "pi"}})
    body["spec"]["template"]["metadata"] = {"labels": {"run": "pi"}}
    got = causes(api, "jobs", body)
    assert got["spec.selector"].endswith("`selector` not auto-generated")


def test_job_template_and_selector_immutable(api):
    api.create("jobs", job(), "default")
    cur = api.get("jobs", "pi", "default")
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:6"
    with pytest.raises(ApiError) as ei:
        api.update("jobs", cur, "default")
    assert {c["field"] for c in ei.value.causes} == {"spec.template"}
    assert ei.value.causes[0]["message"].endswith("field is immutable")
    cur = api.get("jobs", "pi", "default")
    cur["spec"]["suspend"] = True          # other fields may change
    assert api.update("jobs", cur, "default")["spec"]["suspend"] is True


def test_job_status_successful_field_selector(api):
    api.create("jobs", job("a"), "default")
    api.create("jobs", job("b"), "default")
    cur = api.get("jobs", "b", "default")
    cur["status"] = {"succeeded": 1}
    api.update_status("jobs", cur, "default")
    names = lambda sel: [i["metadata"]["name"] for i in
                         api.list("jobs", "default", field_selector=sel)["items"]]
    assert names("status.successful=1") == ["b"]
    assert names("status.successful=0") == ["a"]
