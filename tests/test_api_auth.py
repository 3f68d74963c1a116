"""HTTPS, bearer tokens and roles (kbox.api.auth), and the kubeconfig kbox writes.

Unit tests for the credentials folder, kube-apiserver's request attributes and
RBAC's Forbidden wording; then a real cluster over HTTPS: no token and a wrong
token are 401, the read-only token reads but cannot write, read secrets or
exec, a ServiceAccount token reads discovery only, and nothing changes after
a refused request. Last, `kbox up -d` merges its context into $KUBECONFIG
(private), the real kubectl and the official Python client use it, and
`kbox down` takes it out again leaving the other entries alone.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import yaml

from kbox.api import auth
from kbox.api.errors import ApiError
from kbox.api.httpclient import HttpClient
from kbox.cli import kubeconfig
from kbox.cluster import Cluster
from kbox.config import ClusterConfig


# ---- the credentials folder --------------------------------------------------------------

def test_credentials_are_made_once_private_and_kept(tmp_path):
    d = tmp_path / "pki"
    first = auth.Credentials.ensure(d)
    for f in ("ca.key", "apiserver.key", "tokens.json"):
        assert stat.S_IMODE(os.stat(d / f).st_mode) == 0o600, f
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    again = auth.Credentials.ensure(d)
    assert (again.admin_token, again.viewer_token, again.ca_pem) == \
        (first.admin_token, first.viewer_token, first.ca_pem)
    assert first.admin_token != first.viewer_token and len(first.admin_token) >= 40

    from cryptography import x509
    cert = x509.load_pem_x509_certificate((d / "apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    ssl.create_default_context(cafile=first.ca_path)        # a CA file ssl accepts


def test_an_expiring_serving_certificate_is_renewed_under_the_same_ca(tmp_path):
    first = auth.Credentials.ensure(tmp_path)
    before = (tmp_path / "apiserver.crt").read_bytes()
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    renewed = auth.Credentials.ensure(tmp_path, now=later)
    assert (tmp_path / "apiserver.crt").read_bytes() != before
    assert renewed.ca_pem == first.ca_pem and renewed.admin_token == first.admin_token


# ---- request attributes, as kube-apiserver's RequestInfo ---------------------------------------

@pytest.mark.parametrize("method,path,query,want", [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", "pods", "", "default", "")),
    ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "pods", "", "", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("get", "pods", "", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods/web/exec", {}, ("create", "pods", "exec", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", {}, ("get", "pods", "log", "default", "web")),
    ("DELETE", "/apis/apps/v1/namespaces/x/deployments", {}, ("deletecollection", "deployments", "", "x", "")),
    ("PATCH", "/apis/apps/v1/namespaces/x/deployments/d/scale", {}, ("patch", "deployments", "scale", "x", "d")),
    ("GET", "/api/v1/nodes/n1", {}, ("get", "nodes", "", "", "n1")),
    ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "namespaces", "", "kube-system", "kube-system")),
    ("PUT", "/api/v1/namespaces/gone/finalize", {}, ("update", "namespaces", "finalize", "gone", "gone")),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", "pods", "", "default", "")),
])
def test_request_info(method, path, query, want):
    info = auth.request_info(method, path, query)
    assert info.is_resource
    assert (info.verb, info.resource, info.subresource, info.namespace, info.name) == want


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/version",
                                  "/openapi/v2", "/healthz", "/kbox/v1/status"])
def test_discovery_and_other_paths_are_not_resources(path):
    assert not auth.request_info("GET", path, {}).is_resource


ADMIN = auth.UserInfo(auth.ADMIN_USER, (auth.MASTERS,))
VIEWER = auth.UserInfo(auth.VIEWER_USER, (auth.VIEWERS,))
ROBOT = auth.UserInfo("system:serviceaccount:default:default", ("system:serviceaccounts",))


def _denied(user, method, path, query=None) -> str | None:
    try:
        auth.authorize(user, auth.request_info(method, path, query or {}))
        return None
    except ApiError as e:
        assert e.code == 403 and e.reason == "Forbidden"
        return e.message


def test_roles_and_rbacs_words():
    pods = "/api/v1/namespaces/default/pods"
    assert _denied(ADMIN, "DELETE", pods + "/x") is None
    assert _denied(VIEWER, "GET", pods) is None
    assert _denied(VIEWER, "GET", pods, {"watch": "1"}) is None
    assert _denied(VIEWER, "GET", pods + "/x/log") is None
    assert _denied(VIEWER, "GET", "/apis/apps/v1/deployments") is None
    assert _denied(VIEWER, "POST", pods) == (
        'pods is forbidden: User "kbox-viewer" cannot create resource "pods" in API group "" '
        'in the namespace "default"')
    assert _denied(VIEWER, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web") == (
        'deployments.apps "web" is forbidden: User "kbox-viewer" cannot delete resource '
        '"deployments" in API group "apps" in the namespace "default"')
    assert _denied(VIEWER, "GET", "/api/v1/namespaces/default/secrets") is not None
    assert _denied(VIEWER, "POST", pods + "/x/exec") == (
        'pods "x" is forbidden: User "kbox-viewer" cannot create resource "pods/exec" '
        'in API group "" in the namespace "default"')
    assert _denied(VIEWER, "POST", "/kbox/v1/nodes/stop/n1") == \
        'forbidden: User "kbox-viewer" cannot create path "/kbox/v1/nodes/stop/n1"'
    assert _denied(ROBOT, "GET", "/api/v1/nodes") == (
        'nodes is forbidden: User "system:serviceaccount:default:default" cannot list resource '
        '"nodes" in API group "" at the cluster scope')
    for path in ("/api", "/apis/apps/v1", "/version", "/openapi/v3"):
        assert _denied(ROBOT, "GET", path) is None


def test_authenticator():
    creds = auth.Credentials(directory=None, admin_token="a" * 43, viewer_token="v" * 43)  # type: ignore[arg-type]
    robots = {"r" * 40: ("ns1", "builder")}
    a = auth.Authenticator(creds, robots.get)
    assert a({"authorization": "Bearer " + "a" * 43}).is_admin
    assert a({"authorization": "bearer " + "v" * 43}).is_viewer
    assert a({"authorization": "Bearer " + "r" * 40}).name == "system:serviceaccount:ns1:builder"
    assert a({}, "/healthz") is None and a({}, "/version") is None
    for headers, path in (({}, "/api"), ({"authorization": "Bearer nope"}, "/api"),
                          ({"authorization": "Basic " + "a" * 43}, "/api"),
                          ({"authorization": "Bearer"}, "/version")):
        with pytest.raises(ApiError) as e:
            a(headers, path)
        assert e.value.code == 401 and e.value.reason == "Unauthorized"


# ---- a real cluster over HTTPS -----------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    c = Cluster(ClusterConfig.model_validate({"name": f"auth{uuid.uuid4().hex[:5]}", "runtime": "sim",
                                              "nodes": {"count": 1}}))
    c.start()
    yield c
    c.stop()


def _status(r: httpx.Response, code: int, reason: str) -> dict:
    assert r.status_code == code, r.text
    body = r.json()
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", reason, code)
    return body


def test_https_with_tokens(cluster):
    assert cluster.url.startswith("https://127.0.0.1:")
    ca = ssl.create_default_context(cafile=cluster.credentials.ca_path)
    cms = cluster.url + "/api/v1/namespaces/default/configmaps"
    with pytest.raises(httpx.ConnectError):      # an unknown CA is refused: it is real TLS
        httpx.get(cluster.url + "/version")
    assert httpx.get(cluster.url + "/healthz", verify=ca).text == "ok"
    assert httpx.get(cluster.url + "/version", verify=ca).json()["major"] == "1"
    _status(httpx.get(cms, verify=ca), 401, "Unauthorized")
    _status(httpx.get(cms, verify=ca, headers={"Authorization": "Bearer wrong"}), 401, "Unauthorized")

    admin = cluster.http_client()
    admin.create("configmaps", {"metadata": {"name": "keep", "labels": {"a": "b"}}, "data": {"k": "v"}},
                 "default")
    viewer = cluster.http_client(cluster.credentials.viewer_token)
    assert [c["metadata"]["name"] for c in viewer.list("configmaps", "default")["items"]] == ["keep"]
    with pytest.raises(ApiError) as e:
        viewer.create("configmaps", {"metadata": {"name": "nope"}}, "default")
    assert e.value.code == 403 and "cannot create resource" in e.value.message
    for call in (lambda: viewer.delete("configmaps", "keep", "default"),
                 lambda: viewer.list("secrets", "default")):
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.code == 403
    body = _status(httpx.post(cluster.url + "/api/v1/namespaces/default/pods/x/exec", verify=ca,
                              headers={"Authorization": "Bearer " + cluster.credentials.viewer_token}),
                   403, "Forbidden")
    assert body["details"] == {"name": "x", "kind": "pods"}
    # nothing changed
    assert admin.get("configmaps", "keep", "default")["data"] == {"k": "v"}
    assert [c["metadata"]["name"] for c in admin.list("configmaps", "default")["items"]] == ["keep"]
    admin.close()
    viewer.close()


def test_a_service_account_token_reads_discovery_only(cluster):
    def token():
        for s in cluster.client.list("secrets", "default")["items"]:
            if s.get("type") == "kubernetes.io/service-account-token":
                return base64.b64decode(s["data"]["token"]).decode()
        return None
    deadline = time.monotonic() + 10
    while (tok := token()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tok
    robot = cluster.http_client(tok)
    ca = ssl.create_default_context(cafile=cluster.credentials.ca_path)
    assert httpx.get(cluster.url + "/api", verify=ca, headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    with pytest.raises(ApiError) as e:
        robot.list("pods", "default")
    assert e.value.code == 403
    assert e.value.message == ('pods is forbidden: User "system:serviceaccount:default:default" '
                               'cannot list resource "pods" in API group "" in the namespace "default"')
    robot.close()


def test_the_official_client_over_https(cluster, tmp_path):
    from kubernetes import client as kclient
    from kubernetes import config as kconfig
    path = tmp_path / "config"
    kubeconfig.merge(kubeconfig.kubeconfig_for("py", cluster.url, cluster.credentials.ca_pem,
                                               cluster.credentials.admin_token), path)
    api = kconfig.new_client_from_config(config_file=str(path))
    nodes = kclient.CoreV1Api(api).list_node()
    assert [n.metadata.name for n in nodes.items] == [f"{cluster.config.name}-worker"]
    api.close()


# ---- kubeconfig files ----------------------------------------------------------------------

def test_merge_keeps_other_entries_and_remove_takes_only_ours(tmp_path):
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
             "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
             "users": [{"name": "prod", "user": {"token": "t"}}],
             "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}]}
    path.write_text(yaml.safe_dump(other))
    new = kubeconfig.kubeconfig_for("demo", "https://127.0.0.1:1234", b"PEM", "tok")
    kubeconfig.merge(new, path)
    kubeconfig.merge(new, path)                   # twice: still one entry each
    data = yaml.safe_load(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert data["current-context"] == "kbox-demo"
    assert [c["name"] for c in data["clusters"]] == ["prod", "kbox-demo"]
    assert data["clusters"][1]["cluster"] == {"server": "https://127.0.0.1:1234",
                                              "certificate-authority-data": base64.b64encode(b"PEM").decode()}
    assert data["users"][1] == {"name": "kbox-demo", "user": {"token": "tok"}}
    assert kubeconfig.remove("demo", path)
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == "" and [c["name"] for c in data["contexts"]] == ["prod"]
    assert not kubeconfig.remove("demo", path)
    assert not kubeconfig.remove("demo", tmp_path / "missing")


def test_kubeconfig_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    assert kubeconfig.kubeconfig_path() == tmp_path / "a"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig.kubeconfig_path() == tmp_path / ".kube" / "config"


@pytest.mark.kubectl
def test_kbox_up_sets_the_context_kubectl_uses_and_down_removes_it(tmp_path):
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "config"), KBOX_HOME=str(tmp_path / "home"))
    (tmp_path / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "other", "user": {}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    name = f"kc{uuid.uuid4().hex[:5]}"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=120)

    up = run(sys.executable, "-m", "kbox", "up", "-d", "--runtime", "sim", "--nodes", "1", "--name", name)
    assert up.returncode == 0, up.stderr
    try:
        kubectl = [shutil.which("kubectl"), f"--cache-dir={tmp_path / 'cache'}"]
        got = run(*kubectl, "config", "current-context")
        assert got.stdout.strip() == f"kbox-{name}"
        nodes = run(*kubectl, "get", "nodes", "-o", "name")
        assert nodes.returncode == 0, nodes.stderr
        assert nodes.stdout.split() == [f"node/{name}-worker"]
        printed = run(sys.executable, "-m", "kbox", "kubeconfig", "--name", name, "--viewer")
        (tmp_path / "viewer").write_text(printed.stdout)
        denied = run(*kubectl, "--kubeconfig", str(tmp_path / "viewer"), "create", "configmap", "x")
        assert denied.returncode == 1
        assert 'configmaps is forbidden: User "kbox-viewer" cannot create resource "configmaps"' in denied.stderr
        # kubectl create token: a bound token that authenticates as the account
        assert run(*kubectl, "create", "serviceaccount", "robot").returncode == 0
        token = run(*kubectl, "create", "token", "robot", "--duration=20m")
        assert token.returncode == 0, token.stderr
        as_robot = run(*kubectl, f"--token={token.stdout.strip()}", "get", "pods")
        assert 'User "system:serviceaccount:default:robot" cannot list resource "pods"' in as_robot.stderr
    finally:
        down = run(sys.executable, "-m", "kbox", "down", "--name", name)
    assert down.returncode == 0, down.stderr
    data = yaml.safe_load((tmp_path / "config").read_text())
    assert [c["name"] for c in data["contexts"]] == ["other"]
    assert data["current-context"] == ""
    assert not (tmp_path / "home" / "clusters" / name / "pki").exists()


# ---- bound ServiceAccount tokens (TokenRequest, `kubectl create token`) -------------------------

def test_token_signer_issues_and_checks_jwts(tmp_path):
    signer = auth.Credentials.ensure(tmp_path).token_signer()
    token, exp = signer.issue("ns1", "robot", "uid-1", audiences=list(auth.API_AUDIENCES),
                              now=1000.0, seconds=600, bound={"kind": "Pod", "name": "p", "uid": "u"})
    assert exp == 1600 and token.count(".") == 2
    claims = signer.verify(token, now=1599.0)
    assert claims["sub"] == "system:serviceaccount:ns1:robot"
    assert claims["kubernetes.io"] == {"namespace": "ns1", "serviceaccount": {"name": "robot", "uid": "uid-1"},
                                       "pod": {"name": "p", "uid": "u"}}
    assert signer.verify(token, now=1600.0) is None                         # expired
    other, _ = signer.issue("ns1", "robot", "uid-1", audiences=["vault"], now=1000.0, seconds=600)
    assert signer.verify(other, now=1001.0) is None                         # not for the API
    head, body, sig = token.split(".")
    assert signer.verify(f"{head}.{body}.{sig[:-4]}AAAA", now=1001.0) is None  # tampered
    stranger = auth.Credentials.ensure(tmp_path / "other").token_signer()
    assert stranger.verify(token, now=1001.0) is None                       # another cluster's key
    assert signer.verify("a.b", now=1.0) is None and signer.verify("x.y.z", now=1.0) is None


def test_token_requests_over_https(cluster):
    admin = cluster.http_client()
    admin.create("serviceaccounts", {"metadata": {"name": "builder"}}, "default")
    ca = ssl.create_default_context(cafile=cluster.credentials.ca_path)
    url = cluster.url + "/api/v1/namespaces/default/serviceaccounts/{}/token"
    headers = {"Authorization": "Bearer " + cluster.credentials.admin_token}

    def request(name: str, spec: dict) -> httpx.Response:
        return httpx.post(url.format(name), verify=ca, headers=headers,
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})

    r = request("builder", {})
    assert r.status_code == 201, r.text
    tr = r.json()
    assert tr["kind"] == "TokenRequest" and tr["spec"]["expirationSeconds"] == 3600
    assert tr["spec"]["audiences"] == list(auth.API_AUDIENCES)
    token = tr["status"]["token"]
    assert tr["status"]["expirationTimestamp"].endswith("Z")
    robot = cluster.http_client(token)
    with pytest.raises(ApiError) as e:               # authenticated as the account: 403, not 401
        robot.list("pods", "default")
    assert e.value.code == 403 and 'User "system:serviceaccount:default:builder"' in e.value.message
    body = _status(request("builder", {"expirationSeconds": 60}), 422, "Invalid")
    assert body["message"] == ('TokenRequest.authentication.k8s.io "builder" is invalid: spec.expirationSeconds: '
                               'Invalid value: 60: may not specify a duration less than 10 minutes')
    _status(request("ghost", {}), 404, "NotFound")
    viewer_headers = {"Authorization": "Bearer " + cluster.credentials.viewer_token}
    _status(httpx.post(url.format("builder"), verify=ca, headers=viewer_headers, json={"spec": {}}),
            403, "Forbidden")
    # the account goes: its tokens stop working
    admin.delete("serviceaccounts", "builder", "default")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            robot.list("pods", "default")
        except ApiError as err:
            if err.code == 401:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("a deleted account's token still authenticates")
    robot.close()
    admin.close()
