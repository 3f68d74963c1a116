"""Deployment controller behaviour on a fake clock, driven synchronously."""

from __future__ import annotations

import pytest

try:
    from test_replicaset_env import NS, Env, deployment, replicaset
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_replicaset_env import NS, Env, deployment, replicaset

from kbox.controllers import podutil, rollout
from kbox.controllers.deployment import (HASH_LABEL, REVISION, compute_hash, equal_ignore_hash,
                                         resolve_fenceposts)


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def get_d(env, name="web"):
    return env.client.get("deployments", name, NS)


def rss(env, name="web"):
    d = get_d(env, name)
    items = env.client.list("replicasets", NS)["items"]
    return sorted([r for r in items if podutil.is_controlled_by(r, d)],
                  key=lambda r: int(r["metadata"]["annotations"][REVISION]))


def cond(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == ctype), None)


def set_image(env, image, name="web"):
    env.client.patch("deployments", name, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": image}]}}}}, "merge", NS)


def rollout_to_ready(env, name="web"):
    """Mark pods ready until the rollout completes (the kubelet's part)."""
    for _ in range(100):
        env.settle()
        env.kubelet()
        env.settle()
        msg, done = rollout.status(get_d(env, name))
        if done:
            return
        env.ready_all(f"app={name}")
    raise AssertionError("rollout did not finish")


def test_creation_makes_hashed_replicaset_revision_1(env):
    env.client.create("deployments", deployment("web", 3), NS)
    env.settle()
    [rs] = rss(env)
    d = get_d(env)
    h = rs["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert h == compute_hash(d["spec"]["template"])
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: h}
    ann = rs["metadata"]["annotations"]
    assert ann[REVISION] == "1"
    assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
    assert ann["deployment.kubernetes.io/max-replicas"] == "4"
    assert d["metadata"]["annotations"][REVISION] == "1"
    ref = rs["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "Deployment" and ref["controller"] and ref["blockOwnerDeletion"]
    assert len(env.pods()) == 3
    assert all(p["metadata"]["labels"][HASH_LABEL] == h for p in env.pods())
    msgs = [e["message"] for e in env.events("ScalingReplicaSet")]
    assert msgs == [f"Scaled up replica set web-{h} from 0 to 3"]
    assert env.events("ScalingReplicaSet")[0]["source"]["component"] == "deployment-controller"
    # not yet available
    d = get_d(env)
    assert cond(d, "Available")["status"] == "False"
    assert cond(d, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert cond(d, "Progressing")["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    rollout_to_ready(env)
    d = get_d(env)
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"],
            st["unavailableReplicas"]) == (3, 3, 3, 3, 0)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    avail = cond(d, "Available")
    assert (avail["status"], avail["reason"], avail["message"]) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    prog = cond(d, "Progressing")
    assert (prog["status"], prog["reason"], prog["message"]) == (
        "True", "NewReplicaSetAvailable", f'ReplicaSet "web-{h}" has successfully progressed.')


def test_hash_ignores_replicas_and_is_stable(env):
    env.client.create("deployments", deployment("web", 2), NS)
    env.settle()
    [rs1] = rss(env)
    env.client.scale("deployments", "web", 5, NS)
    env.settle()
    [rs2] = rss(env)
    assert rs1["metadata"]["name"] == rs2["metadata"]["name"]
    assert rs2["spec"]["replicas"] == 5
    assert len(env.pods()) == 5
    assert rs2["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert "Scaled up replica set %s from 2 to 5" % rs1["metadata"]["name"] in \
        [e["message"] for e in env.events("ScalingReplicaSet")]
    t = deployment("x", 1)["spec"]["template"]
    assert compute_hash(t) == compute_hash(dict(t))
    assert compute_hash(t) != compute_hash(t, 1)
    assert compute_hash(t).isalnum()
    other = deployment("x", 1, image="nginx:1.26")["spec"]["template"]
    assert compute_hash(t) != compute_hash(other)
    assert equal_ignore_hash(rs2["spec"]["template"], get_d(env)["spec"]["template"])


def test_fenceposts():
    d = deployment("web", 10)
    assert resolve_fenceposts(d) == (3, 2)
    d["spec"]["strategy"] = {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    assert resolve_fenceposts(d) == (0, 1)
    d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": "50%", "maxUnavailable": 3}
    assert resolve_fenceposts(d) == (5, 3)


@pytest.mark.parametrize("replicas,surge,unavailable", [(4, 1, 1), (3, 1, 0), (5, 0, 2),
                                                         (10, "25%", "25%")])
def test_rolling_update_respects_surge_and_unavailable(env, replicas, surge, unavailable):
    spec = {"strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}
    env.client.create("deployments", deployment("web", replicas, **spec), NS)
    rollout_to_ready(env)
    max_surge, max_unavail = resolve_fenceposts(get_d(env))
    set_image(env, "nginx:1.26")
    env.settle()
    steps = 0
    while True:
        env.settle()
        pods = env.pods()
        ready = [p for p in pods if podutil.is_pod_ready(p)]
        # at every step: never more than replicas+maxSurge pods, never fewer than
        # replicas-maxUnavailable ready
        assert len(pods) <= replicas + max_surge, (steps, len(pods))
        assert len(ready) >= replicas - max_unavail, (steps, len(ready))
        specs = sum(r["spec"]["replicas"] for r in rss(env))
        assert specs <= replicas + max_surge
        msg, done = rollout.status(get_d(env))
        if done:
            break
        # the kubelet: finish terminations, then one new pod becomes ready
        env.kubelet()
        env.settle()
        new = [p for p in env.pods("app=web") if p["spec"]["containers"][0]["image"] == "nginx:1.26"
               and not podutil.is_pod_ready(p)]
        if new:
            env.make_ready(sorted(new, key=lambda p: p["metadata"]["name"])[0])
        steps += 1
        assert steps < 100
    old, new = rss(env)
    assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == replicas
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert get_d(env)["metadata"]["annotations"][REVISION] == "2"
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.26" for p in env.pods())
    assert len(env.pods()) == replicas


def test_rolling_update_exact_sequence(env):
    env.client.create("deployments", deployment("web", 4), NS)
    rollout_to_ready(env)
    old_name = rss(env)[0]["metadata"]["name"]
    set_image(env, "nginx:1.26")
    env.settle()
    old, new = rss(env)
    new_name = new["metadata"]["name"]
    # surge 1 → new RS 1; unavailable 1 → old RS 3; total back to 4 → new RS 2
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 2)
    assert rollout.status(get_d(env)) == (
        'Waiting for deployment "web" rollout to finish: 2 out of 4 new replicas have been '
        'updated...', False)
    seen = []
    for _ in range(6):
        old, new = rss(env)
        seen.append((old["spec"]["replicas"], new["spec"]["replicas"]))
        env.kubelet()
        env.settle()
        waiting = [p for p in env.pods() if p["metadata"]["labels"]["pod-template-hash"] ==
                   new["metadata"]["labels"]["pod-template-hash"] and not podutil.is_pod_ready(p)]
        if waiting:
            env.make_ready(sorted(waiting, key=lambda p: p["metadata"]["name"])[0])
        env.settle()
    assert seen == [(3, 2), (2, 3), (1, 4), (0, 4), (0, 4), (0, 4)]
    msgs = [e["message"] for e in env.events("ScalingReplicaSet")]
    assert msgs == [
        f"Scaled up replica set {old_name} from 0 to 4",
        f"Scaled up replica set {new_name} from 0 to 1",
        f"Scaled down replica set {old_name} from 4 to 3",
        f"Scaled up replica set {new_name} from 1 to 2",
        f"Scaled down replica set {old_name} from 3 to 2",
        f"Scaled up replica set {new_name} from 2 to 3",
        f"Scaled down replica set {old_name} from 2 to 1",
        f"Scaled up replica set {new_name} from 3 to 4",
        f"Scaled down replica set {old_name} from 1 to 0",
    ]
    assert rollout.status(get_d(env)) == ('deployment "web" successfully rolled out', True)


def test_recreate_waits_for_old_pods(env):
    env.client.create("deployments", deployment("web", 3, strategy={"type": "Recreate"}), NS)
    rollout_to_ready(env)
    set_image(env, "nginx:1.26")
    env.settle()
    [old] = rss(env)
    assert old["spec"]["replicas"] == 0
    # old pods are terminating (graceful): no new ReplicaSet yet
    assert all(p["metadata"].get("deletionTimestamp") for p in env.pods(active_only=False))
    assert len(env.client.list("replicasets", NS)["items"]) == 1
    env.kubelet()
    env.settle()
    old, new = rss(env)
    assert new["spec"]["replicas"] == 3
    assert len(env.pods()) == 3
    msgs = [e["message"] for e in env.events("ScalingReplicaSet")]
    assert f"Scaled down replica set {old['metadata']['name']} from 3 to 0" in msgs
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 3" in msgs
    rollout_to_ready(env)
    assert rollout.status(get_d(env)) == ('deployment "web" successfully rolled out', True)


def test_undo_reuses_old_replicaset_with_new_revision(env):
    env.client.create("deployments", deployment("web", 2), NS)
    rollout_to_ready(env)
    with pytest.raises(rollout.RolloutError, match='no rollout history found for deployment "web"'):
        rollout.undo(env.client, NS, "web")
    env.client.patch("deployments", "web", {"metadata": {"annotations": {
        "kubernetes.io/change-cause": "kubectl set image deployment/web c=nginx:1.26"}}}, "merge", NS)
    set_image(env, "nginx:1.26")
    rollout_to_ready(env)
    first, second = rss(env)
    hist = rollout.history(env.client, NS, "web")
    assert [(r, c) for r, c, _ in hist] == [
        (1, None), (2, "kubectl set image deployment/web c=nginx:1.26")]
    with pytest.raises(rollout.RolloutError, match="unable to find specified revision 7 in history"):
        rollout.undo(env.client, NS, "web", 7)
    assert rollout.undo(env.client, NS, "web", 1) == "rolled back"
    d = get_d(env)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert HASH_LABEL not in d["spec"]["template"]["metadata"]["labels"]
    rollout_to_ready(env)
    revs = {r["metadata"]["name"]: r["metadata"]["annotations"] for r in rss(env)}
    assert revs[first["metadata"]["name"]][REVISION] == "3"
    assert revs[first["metadata"]["name"]]["deployment.kubernetes.io/revision-history"] == "1"
    assert revs[second["metadata"]["name"]][REVISION] == "2"
    assert get_d(env)["metadata"]["annotations"][REVISION] == "3"
    assert len(rss(env)) == 2     # no third ReplicaSet: the old one was reused
    assert [r for r, _, _ in rollout.history(env.client, NS, "web")] == [2, 3]
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.25" for p in env.pods())
    # undo with no revision goes to the previous one (2); again at 2 is skipped
    assert rollout.undo(env.client, NS, "web") == "rolled back"
    rollout_to_ready(env)
    assert get_d(env)["metadata"]["annotations"][REVISION] == "4"
    assert rollout.undo(env.client, NS, "web", 4).startswith("skipped rollback")


def test_pause_and_resume(env):
    env.client.create("deployments", deployment("web", 2), NS)
    rollout_to_ready(env)
    assert rollout.pause(env.client, NS, "web") == "paused"
    with pytest.raises(rollout.RolloutError):
        rollout.pause(env.client, NS, "web")
    env.settle()
    c = cond(get_d(env), "Progressing")
    assert (c["status"], c["reason"], c["message"]) == ("Unknown", "DeploymentPaused",
                                                         "Deployment is paused")
    set_image(env, "nginx:1.26")
    env.settle()
    assert len(rss(env)) == 1                      # no rollout while paused
    env.client.scale("deployments", "web", 4, NS)  # but scaling works
    env.settle()
    [rs] = rss(env)
    assert rs["spec"]["replicas"] == 4 and len(env.pods()) == 4
    with pytest.raises(rollout.RolloutError, match="paused"):
        rollout.undo(env.client, NS, "web")
    with pytest.raises(rollout.RolloutError, match="paused"):
        rollout.restart(env.client, NS, "web", "2024-01-01T00:00:00Z")
    assert rollout.resume(env.client, NS, "web") == "resumed"
    rollout_to_ready(env)
    old, new = rss(env)
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)
    assert cond(get_d(env), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_restart_rolls_out_new_pods(env):
    env.client.create("deployments", deployment("web", 2), NS)
    rollout_to_ready(env)
    before = {p["metadata"]["name"] for p in env.pods()}
    assert rollout.restart(env.client, NS, "web", "2024-05-01T10:00:00Z") == "restarted"
    rollout_to_ready(env)
    old, new = rss(env)
    assert new["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}
    after = {p["metadata"]["name"] for p in env.pods()}
    assert not (before & after) and len(after) == 2


def test_progress_deadline_exceeded(env):
    env.client.create("deployments", deployment("web", 2, progressDeadlineSeconds=60), NS)
    rollout_to_ready(env)
    set_image(env, "nginx:broken")
    env.settle()
    env.advance(30)
    c = cond(get_d(env), "Progressing")
    assert c["status"] == "True"
    env.advance(31)
    d = get_d(env)
    c = cond(d, "Progressing")
    new = rss(env)[-1]["metadata"]["name"]
    assert (c["status"], c["reason"], c["message"]) == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{new}" has timed out progressing.')
    with pytest.raises(rollout.RolloutError, match='deployment "web" exceeded its progress deadline'):
        rollout.status(d)
    # progress again (pods become ready): the rollout completes
    env.ready_all()
    env.settle()
    assert cond(get_d(env), "Progressing")["status"] == "True"
    rollout_to_ready(env)
    assert cond(get_d(env), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_progress_resets_the_deadline(env):
    env.client.create("deployments", deployment("web", 4, progressDeadlineSeconds=60), NS)
    rollout_to_ready(env)
    set_image(env, "nginx:1.26")
    env.settle()
    for _ in range(3):
        env.advance(50)
        new = [p for p in env.pods() if p["spec"]["containers"][0]["image"] == "nginx:1.26"
               and not podutil.is_pod_ready(p)]
        env.make_ready(new[0])
        env.kubelet()
        env.settle()
        assert cond(get_d(env), "Progressing")["status"] == "True"


def test_revision_history_limit_cleans_old_replicasets(env):
    env.client.create("deployments", deployment("web", 1, revisionHistoryLimit=2), NS)
    rollout_to_ready(env)
    for i in range(5):
        set_image(env, f"nginx:1.{30 + i}")
        rollout_to_ready(env)
    all_rs = rss(env)
    assert [int(r["metadata"]["annotations"][REVISION]) for r in all_rs] == [4, 5, 6]
    assert all(r["spec"]["replicas"] == 0 for r in all_rs[:-1])


def test_proportional_scaling_during_rollout(env):
    env.client.create("deployments", deployment("web", 10), NS)
    rollout_to_ready(env)
    set_image(env, "nginx:broken")
    for _ in range(5):
        env.settle()
        env.kubelet()
    old, new = rss(env)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)
    env.client.scale("deployments", "web", 20, NS)
    env.settle()
    old, new = rss(env)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (15, 10)
    for r in (old, new):
        assert r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"
        assert r["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "25"


def test_adopts_orphan_replicaset(env):
    d = deployment("web", 2)
    tmpl_hash = compute_hash(d["spec"]["template"])
    labels = {"app": "web", HASH_LABEL: tmpl_hash}
    orphan = replicaset(f"web-{tmpl_hash}", 2, labels)
    orphan["metadata"]["annotations"] = {REVISION: "1"}
    env.client.create("replicasets", orphan, NS)
    env.settle()
    env.client.create("deployments", d, NS)
    env.settle()
    [rs] = rss(env)
    assert rs["metadata"]["name"] == f"web-{tmpl_hash}"
    assert rs["spec"]["replicas"] == 2 and len(env.pods()) == 2


def test_status_messages():
    d = {"metadata": {"name": "web", "generation": 2},
         "spec": {"replicas": 3}, "status": {"observedGeneration": 1}}
    assert rollout.status(d) == ("Waiting for deployment spec update to be observed...", False)
    d["status"] = {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1}
    assert rollout.status(d) == ('Waiting for deployment "web" rollout to finish: 1 out of 3 new '
                                 'replicas have been updated...', False)
    d["status"] = {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}
    assert rollout.status(d) == ('Waiting for deployment "web" rollout to finish: 1 old replicas '
                                 'are pending termination...', False)
    d["status"] = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                   "availableReplicas": 2}
    assert rollout.status(d) == ('Waiting for deployment "web" rollout to finish: 2 of 3 updated '
                                 'replicas are available...', False)
    d["status"]["availableReplicas"] = 3
    assert rollout.status(d) == ('deployment "web" successfully rolled out', True)


def test_replica_failure_surfaces_on_deployment(env):
    from kbox.api.errors import ApiError

    def no_pods(op, info, obj, old):
        if op == "CREATE" and info.plural == "pods":
            raise ApiError(403, "Forbidden", 'pods "web-x" is forbidden: exceeded quota: q')
    env.api.admission.append(no_pods)
    env.client.create("deployments", deployment("web", 2), NS)
    env.settle()
    c = cond(get_d(env), "ReplicaFailure")
    assert c is not None and c["status"] == "True" and c["reason"] == "FailedCreate"
    assert "exceeded quota" in c["message"]
    env.api.admission.remove(no_pods)
    env.advance(1)
    rollout_to_ready(env)
    assert cond(get_d(env), "ReplicaFailure") is None
