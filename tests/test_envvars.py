"""Container environments from ConfigMaps, Secrets, the downward API and $(VAR) expansion,
as the kubelet builds them; and the agent's CreateContainerConfigError."""

from __future__ import annotations

import base64

import pytest

from kbox.node.envvars import CreateContainerConfigError, expand, parse_quantity, resolve_env
from kbox.node.testing import NodeEnv


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def objs(client):
    client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "app", "namespace": "default"},
                                 "data": {"MODE": "fast", "LEVEL": "3", "2x": "x",
                                          "1NUM": "y"}}, "default")
    client.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "creds", "namespace": "default"},
                              "data": {"USER": b64("admin"), "PASS": b64("s3cr3t")}}, "default")
    return client


def pod_with(container: dict, **spec) -> dict:
    return {"metadata": {"name": "web-1", "namespace": "default", "uid": "uid-123",
                         "labels": {"app": "web"}, "annotations": {"team": "blue"}},
            "spec": {"nodeName": "node1", "serviceAccountName": "default",
                     "containers": [container], **spec},
            "status": {"hostIP": "172.18.0.2"}}


def test_expand_rules():
    look = {"A": "1", "B": "two"}.get
    m = lambda n: look(n) if look(n) is not None else f"$({n})"  # noqa: E731
    assert expand("$(A)-$(B)", m) == "1-two"
    assert expand("$(MISSING)", m) == "$(MISSING)"
    assert expand("$$(A)", m) == "$(A)"
    assert expand("$$", m) == "$"
    assert expand("a$b", m) == "a$b"
    assert expand("$(A", m) == "$(A"
    assert expand("end$", m) == "end$"
    assert expand("$(A)$(A)", m) == "11"


def test_quantities():
    assert parse_quantity("500m") * 1000 == 500
    assert parse_quantity("64Mi") == 64 * 1024 * 1024
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("1.5G") == 1_500_000_000
    with pytest.raises(ValueError):
        parse_quantity("lots")


def test_env_from_and_values(objs):
    c = {"name": "web", "image": "busybox",
         "envFrom": [{"configMapRef": {"name": "app"}},
                     {"prefix": "DB_", "secretRef": {"name": "creds"}},
                     {"configMapRef": {"name": "nope", "optional": True}}],
         "env": [{"name": "MODE", "value": "slow"},                      # overrides envFrom
                 {"name": "URL", "value": "db://$(DB_USER):$(DB_PASS)@$(HOST)"},
                 {"name": "HOST", "value": "db"},                     # defined after URL used it
                 {"name": "ESC", "value": "$$(MODE)"},
                 {"name": "EMPTY"},
                 {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "LEVEL"}}},
                 {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
                 {"name": "OPT_KEY", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "zz",
                                                                       "optional": True}}},
                 {"name": "OPT_OBJ", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                                    "optional": True}}}]}
    warnings: list[str] = []
    env = resolve_env(objs, pod_with(c), c, warnings=warnings)
    assert env == {"MODE": "slow", "LEVEL": "3", "DB_USER": "admin", "DB_PASS": "s3cr3t",
                   "URL": "db://admin:s3cr3t@$(HOST)", "HOST": "db", "ESC": "$(MODE)", "EMPTY": "",
                   "FROM_CM": "3", "FROM_SECRET": "s3cr3t"}
    assert warnings == ["Keys [1NUM, 2x] from the EnvFrom configMap default/app were skipped "
                        "since they are considered invalid environment variable names."]


def test_downward_api(client):
    c = {"name": "web", "image": "busybox",
         "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}},
         "env": [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in (
             ("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
             ("NODE", "spec.nodeName"), ("SA", "spec.serviceAccountName"), ("POD_IP", "status.podIP"),
             ("HOST_IP", "status.hostIP"), ("APP", "metadata.labels['app']"),
             ("TEAM", "metadata.annotations['team']"), ("NOLABEL", "metadata.labels['x']"))]
         + [{"name": n, "valueFrom": {"resourceFieldRef": r}} for n, r in (
             ("CPU_LIMIT", {"resource": "limits.cpu"}),
             ("CPU_LIMIT_M", {"resource": "limits.cpu", "divisor": "1m"}),
             ("CPU_REQ_M", {"resource": "requests.cpu", "divisor": "1m"}),
             ("MEM_LIMIT", {"resource": "limits.memory"}),
             ("MEM_LIMIT_MI", {"resource": "limits.memory", "divisor": "1Mi"}),
             ("MEM_REQ", {"resource": "requests.memory", "divisor": "1Mi"}),   # defaults to the limit
             ("STORAGE", {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}))]}
    env = resolve_env(client, pod_with(c), c, pod_ip="10.244.1.7",
                      node_allocatable={"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    assert env == {"NAME": "web-1", "NS": "default", "UID": "uid-123", "NODE": "node1", "SA": "default",
                   "POD_IP": "10.244.1.7", "HOST_IP": "172.18.0.2", "APP": "web", "TEAM": "blue",
                   "NOLABEL": "", "CPU_LIMIT": "1", "CPU_LIMIT_M": "500", "CPU_REQ_M": "250",
                   "MEM_LIMIT": str(64 << 20), "MEM_LIMIT_MI": "64", "MEM_REQ": "64", "STORAGE": "100"}
    # no limit: the node's allocatable
    c2 = {"name": "w", "env": [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}
    assert resolve_env(client, pod_with(c2), c2, node_allocatable={"cpu": "4"}) == {"C": "4"}


@pytest.mark.parametrize("entry,message", [
    ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
    ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
     'configmap "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "k"}}}]},
     "couldn't find key k in ConfigMap default/app"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
     "couldn't find key k in Secret default/creds"),
    ({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]},
     "unsupported fieldPath: spec.hostname"),
])
def test_missing_sources_fail_as_the_kubelet_says(objs, entry, message):
    c = {"name": "web", "image": "busybox", **entry}
    with pytest.raises(CreateContainerConfigError) as e:
        resolve_env(objs, pod_with(c), c)
    assert str(e.value) == message


# ---- through the node agent (sim runtime, fake clock) -------------------------------------------

@pytest.fixture
def node():
    e = NodeEnv()
    yield e
    e.close()


def test_agent_waits_with_create_container_config_error_then_runs(node):
    c = {"name": "web", "image": "nginx:1.27",
         "envFrom": [{"configMapRef": {"name": "settings"}}],
         "env": [{"name": "GREETING", "value": "hello $(WHO)"},
                 {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}]}
    node.create_pod("envpod", containers=[c])
    node.advance(1)
    st = node.cstatus("envpod")
    assert st["state"] == {"waiting": {"reason": "CreateContainerConfigError",
                                       "message": 'configmap "settings" not found'}}
    assert node.pod("envpod")["status"]["phase"] == "Pending"
    assert 'Error: configmap "settings" not found' in node.messages("Failed", "envpod")
    node.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "settings", "namespace": "default"},
                                      "data": {"WHO": "world"}}, "default")
    node.advance(10)
    assert node.cstatus("envpod")["state"]["waiting"] == {
        "reason": "CreateContainerConfigError", "message": "secret \"tok\" not found"}
    node.client.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "tok", "namespace": "default"},
                                   "data": {"token": b64("abc")}}, "default")
    node.advance(11)
    pod = node.pod("envpod")
    assert "running" in node.cstatus("envpod")["state"], node.cstatus("envpod")
    agent = node.pool.agents["node1"]
    rc, out, _ = agent.exec(pod, "web", ["env"])
    lines = out.decode().splitlines()
    assert rc == 0
    assert "WHO=world" in lines and "GREETING=hello world" in lines and "TOKEN=abc" in lines
    assert f"MY_POD_IP={pod['status']['podIP']}" in lines
