"""ServiceAccount and token controllers."""

from __future__ import annotations

import base64

import pytest

try:
    from test_nodelifecycle_env import Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import Env

from kbox.controllers.serviceaccount import (ServiceAccountController, TokenController,
                                             find_token)


@pytest.fixture
def env():
    e = Env()
    e.add(ServiceAccountController)
    e.add(TokenController)
    e.start()
    yield e
    e.close()


def test_default_sa_everywhere_and_recreated(env):
    for ns in ("default", "kube-system"):
        env.client.get("serviceaccounts", "default", ns)
    env.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "team-a"}})
    env.settle()
    env.client.get("serviceaccounts", "default", "team-a")
    env.client.delete("serviceaccounts", "default", "team-a")
    env.settle()
    env.client.get("serviceaccounts", "default", "team-a")


def test_token_secret_and_lookup(env):
    env.client.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "builder", "namespace": "default"}},
                      "default")
    env.settle()
    sa = env.client.get("serviceaccounts", "builder", "default")
    [ref] = sa["secrets"]
    assert ref["name"].startswith("builder-token-") and len(ref["name"]) == len("builder-token-") + 5
    secret = env.client.get("secrets", ref["name"], "default")
    assert secret["type"] == "kubernetes.io/service-account-token"
    ann = secret["metadata"]["annotations"]
    assert ann["kubernetes.io/service-account.name"] == "builder"
    assert ann["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
    assert base64.b64decode(secret["data"]["namespace"]).decode() == "default"
    assert secret["data"]["ca.crt"] == ""
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 32
    assert find_token(env.client, token) == ("default", "builder")
    assert find_token(env.client, "nope") is None
    tc = next(c for c in env.controllers if isinstance(c, TokenController))
    assert tc.find_token(token) == ("default", "builder")
    assert tc.find_token("nope") is None and tc.find_token("") is None
    # stable: another sync writes nothing new
    env.client.patch("serviceaccounts", "builder", {"metadata": {"labels": {"a": "b"}}},
                     "merge", "default")
    env.settle()
    assert env.client.get("serviceaccounts", "builder", "default")["secrets"] == [ref]
    # the account goes: so does its token
    env.client.delete("serviceaccounts", "builder", "default")
    env.settle()
    names = [s["metadata"]["name"] for s in env.client.list("secrets", "default")["items"]]
    assert ref["name"] not in names
    assert find_token(env.client, token) is None
    assert tc.find_token(token) is None


def test_a_token_authenticates_only_its_live_account(env):
    import secrets as pysecrets
    sa = env.client.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                               "metadata": {"name": "bot"}}, "default")
    token = pysecrets.token_urlsafe(32)
    # a token Secret naming another uid (an older account of the same name) is worthless
    env.client.create("secrets", {"apiVersion": "v1", "kind": "Secret",
                                  "type": "kubernetes.io/service-account-token",
                                  "metadata": {"name": "bot-token-stale", "annotations": {
                                      "kubernetes.io/service-account.name": "bot",
                                      "kubernetes.io/service-account.uid": "not-" + sa["metadata"]["uid"]}},
                                  "data": {"token": base64.b64encode(token.encode()).decode()}}, "default")
    assert find_token(env.client, token) is None


def test_a_lagging_secret_cache_never_makes_a_second_token(env, monkeypatch):
    # the account's update (its new token referenced) can reach the controller before the
    # secret does: it must look the token up instead of minting another one
    env.client.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "late", "namespace": "default"}},
                      "default")
    env.settle()
    [ref] = env.client.get("serviceaccounts", "late", "default")["secrets"]
    tc = next(c for c in env.controllers if isinstance(c, TokenController))
    monkeypatch.setattr(tc, "_tokens_of", lambda ns, name, uid=None: [])
    tc.sync("sa:default/late")
    tokens = [s["metadata"]["name"] for s in env.client.list("secrets", "default")["items"]
              if s["metadata"]["name"].startswith("late-token-")]
    assert tokens == [ref["name"]]
    assert env.client.get("serviceaccounts", "late", "default")["secrets"] == [ref]
