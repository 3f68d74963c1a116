"""The HTTP API server and HttpClient against an ApiServer on a memory store.

The same scenarios run through InProcessClient and HttpClient on two
identically seeded servers (fake clock, seeded uids), and must give identical
results, errors included. Raw HTTP checks cover Status bodies and codes,
discovery, watches, logs, exec, metrics and kbox's own routes; one test
drives the server with the official `kubernetes` Python client.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Iterator

import httpx
import orjson
import pytest

from kbox.api.client import InProcessClient
from kbox.api.errors import ApiError
from kbox.api.http import HttpServer
from kbox.api.httpclient import HttpClient
from kbox.api.server import ApiServer
from kbox.clock import FakeClock
from kbox.store.memory import MemoryStore


class FakeNode:
    """A node endpoint: canned logs, an echoing exec, fixed stats."""

    def __init__(self) -> None:
        self.follow_lines: list[str] = []

    def logs(self, pod, container, *, follow, previous, tail_lines, timestamps, since_seconds, stop):
        lines = [f"{container} line {i}\n" for i in range(5)]
        if tail_lines is not None:
            lines = lines[-tail_lines:]
        yield from lines
        if follow:
            for i in range(1000):
                if stop is not None and stop.is_set():
                    return
                yield f"follow {i}\n"
                time.sleep(0.02)

    def exec(self, pod, container, command, *, stdin, tty):
        return 3, (" ".join(command)).encode() + (stdin or b""), b"err\xff"

    def stats(self):
        return {"node": {"cpu_nanocores": 250_000_000, "memory_bytes": 123456 * 1024},
                "pods": [{"namespace": "default", "name": "p1", "containers": [
                    {"name": "c", "cpu_nanocores": 12345, "memory_bytes": 64 << 20}]}]}


def _boot(clock: FakeClock | None = None) -> ApiServer:
    clock = clock or FakeClock()
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(7))
    api.bootstrap()
    return api


@pytest.fixture
def server():
    api = _boot()
    calls: list[Any] = []

    def node(action, name, **kw):
        calls.append((action, name, kw))
        if action == "bad":
            raise ValueError("unknown action bad")
        if name == "missing":
            raise KeyError("node missing not found")
        return {"ok": True, "action": action, "name": name, **kw}

    srv = HttpServer(api, extra_routes={"node": node, "status": lambda: {"name": "t", "nodes": 0}})
    srv.start()
    srv.calls = calls  # type: ignore[attr-defined]
    yield srv
    srv.stop()
    api.stop()


@pytest.fixture
def http(server):
    c = HttpClient(server.url)
    yield c
    c.close()


@pytest.fixture(params=["inprocess", "http"])
def any_client(request) -> Iterator[Any]:
    api = _boot()
    if request.param == "inprocess":
        yield InProcessClient(api)
        api.stop()
        return
    srv = HttpServer(api).start()
    c = HttpClient(srv.url)
    yield c
    c.close()
    srv.stop()
    api.stop()


def _cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name.split("-")[0]}},
            "data": data}


def _deploy(name: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


# ---- the same scenario through both clients ------------------------------------------

def scenario(c) -> list[Any]:
    """CRUD, patch, scale, bind, evict, selectors, paging and errors; every result recorded."""
    out: list[Any] = []

    def rec(fn, *a, **kw):
        try:
            out.append(fn(*a, **kw))
        except ApiError as e:
            out.append(("error", e.code, e.reason, e.message, e.details))

    for i in range(5):
        rec(c.create, "configmaps", _cm(f"cfg-{i}", k=str(i)), "default")
    rec(c.create, "configmaps", _cm("cfg-0"), "default")                   # already exists
    rec(c.get, "configmaps", "cfg-1", "default")
    rec(c.get, "configmaps", "nope", "default")                           # not found
    cur = c.get("configmaps", "cfg-1", "default")
    stale = orjson.loads(orjson.dumps(cur))
    cur["data"]["k"] = "changed"
    rec(c.update, "configmaps", cur, "default")
    stale["data"]["k"] = "stale"
    rec(c.update, "configmaps", stale, "default")                         # conflict
    rec(c.create, "configmaps", _cm("Bad_Name"), "default")               # invalid
    rec(c.patch, "configmaps", "cfg-2", {"data": {"m": "1"}}, "merge", "default")
    rec(c.patch, "configmaps", "cfg-2", [{"op": "add", "path": "/data/j", "value": "2"}], "json", "default")
    rec(c.patch, "configmaps", "cfg-2", [{"op": "test", "path": "/data/j", "value": "9"}], "json", "default")
    rec(c.patch, "configmaps", "cfg-2", {"metadata": {"labels": {"s": "1"}}}, "strategic", "default")
    rec(c.patch, "configmaps", "cfg-9", _cm("cfg-9", a="1"), "apply", "default", field_manager="tester")
    rec(c.patch, "configmaps", "cfg-9", {"data": {"a": "2"}}, "merge", "default", field_manager="editor")
    rec(c.patch, "configmaps", "cfg-9", _cm("cfg-9", a="1"), "apply", "default", field_manager="tester")
    rec(c.patch, "configmaps", "cfg-9", _cm("cfg-9", a="1"), "apply", "default", field_manager="tester",
        force=True)
    rec(c.list, "configmaps", "default", label_selector="app=cfg")
    rec(c.list, "configmaps", "default", field_selector="metadata.name=cfg-3")
    rec(c.list, "configmaps", "default", label_selector="app in (cfg")   # bad selector
    page = c.list("configmaps", "default", limit=2)
    out.append(page)
    rec(c.list, "configmaps", "default", limit=2, continue_token=page["metadata"]["continue"])
    rec(c.list, "configmaps", None)
    rec(c.create, "deployments", _deploy("web"), "default")
    rec(c.get_scale, "deployments", "web", "default")
    rec(c.scale, "deployments", "web", 5, "default")
    rec(c.scale, "deployments", "web", -1, "default")
    rec(c.patch, "deployments", "web", {"spec": {"replicas": 3}}, "merge", "default", subresource="scale")
    rec(c.patch, "deployments", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "busybox"}]}}}}, "strategic", "default")
    rec(c.get, "deployments", "web", "default")
    rec(c.create, "pods", _pod("p1"), "default")
    rec(c.bind, "p1", "default", "node-1")
    rec(c.bind, "p1", "default", "node-2")                                # already bound
    rec(c.get, "pods", "p1", "default")
    cur = c.get("pods", "p1", "default")
    cur["status"] = {"phase": "Running"}
    rec(c.update_status, "pods", cur, "default")
    rec(c.create, "pods", _pod("p2"), "default")
    rec(c.evict, "p2", "default")
    rec(c.get, "pods", "p2", "default")
    rec(c.delete, "pods", "p1", "default")                                # graceful: stays
    rec(c.delete, "pods", "p1", "default", grace_period_seconds=0)
    rec(c.delete, "configmaps", "cfg-4", "default", dry_run=True)
    rec(c.delete, "configmaps", "cfg-4", "default", preconditions={"uid": "nope"})
    rec(c.delete, "configmaps", "cfg-4", "default")
    rec(c.create, "configmaps", _cm("cfg-x"), "default", dry_run=True)
    rec(c.get, "configmaps", "cfg-x", "default")
    rec(c.delete_collection, "configmaps", "default", label_selector="app=cfg")
    rec(c.list, "configmaps", "default")
    rec(c.create, "namespaces", {"metadata": {"name": "team"}})
    rec(c.create, "configmaps", _cm("in-team"), "team")
    rec(c.delete, "namespaces", "team")
    # no namespace controller runs here: the namespace stays Terminating, and
    # kube-apiserver refuses new content in it with 403 Forbidden
    rec(c.create, "configmaps", _cm("late"), "team")
    rec(c.get, "nosuchthings", "x")                                       # unknown resource
    return out


def _without_managers(value):
    if isinstance(value, dict):
        return {k: _without_managers(v) for k, v in value.items() if k != "managedFields"}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_managers(v) for v in value)
    return value


def test_same_results_through_both_clients():
    results = []
    for kind in ("inprocess", "http"):
        api = _boot()
        if kind == "inprocess":
            results.append(scenario(InProcessClient(api)))
        else:
            with HttpServer(api) as srv:
                c = HttpClient(srv.url)
                results.append(scenario(c))
                c.close()
        api.stop()
    a, b = (_without_managers(r) for r in results)   # HTTP writes record their user agent
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        if isinstance(x, tuple):
            x = list(x)
        if isinstance(y, tuple):
            y = list(y)
        assert x == y, f"step {i} differs"
    errors = [r for r in a if isinstance(r, tuple)]
    codes = [e[1] for e in errors]
    assert codes == [409, 404, 409, 422, 422, 409, 400, 422, 409, 404, 409, 404, 403, 404]


def test_watch_through_both_clients(any_client):
    c = any_client
    start = c.list("configmaps", "default")["metadata"]["resourceVersion"]
    c.create("configmaps", _cm("w1"), "default")
    w = c.watch("configmaps", "default", resource_version=start)
    got: list[tuple[str, str]] = []
    done = threading.Event()

    def run():
        for etype, obj in w:
            got.append((etype, obj["metadata"]["name"]))
            if len(got) == 3:
                done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    c.patch("configmaps", "w1", {"data": {"a": "b"}}, "merge", "default")
    c.delete("configmaps", "w1", "default")
    assert done.wait(5)
    assert got == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    t0 = time.monotonic()
    w.close()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - t0 < 2


def test_watch_selector_bookmarks_and_timeout(http):
    http.create("configmaps", _cm("abc"), "default")
    http.create("configmaps", _cm("xyz"), "default")
    t0 = time.monotonic()
    events = list(http.watch("configmaps", "default", label_selector="app=xyz",
                             allow_bookmarks=True, timeout_seconds=2))
    assert 1.5 < time.monotonic() - t0 < 5
    assert events[0][0] == "ADDED" and events[0][1]["metadata"]["name"] == "xyz"
    assert len(events) == 1 or all(e[0] == "BOOKMARK" for e in events[1:])
    assert any(e[0] == "BOOKMARK" for e in events)
    bm = [e for e in events if e[0] == "BOOKMARK"][0][1]
    assert bm["kind"] == "ConfigMap" and int(bm["metadata"]["resourceVersion"]) > 0


def test_watch_too_old_is_200_then_error_event(server, http):
    http.list("configmaps")    # the watch cache starts after the bootstrap writes
    with httpx.stream("GET", server.url + "/api/v1/configmaps",
                      params={"watch": "1", "resourceVersion": "1"}) as r:
        assert r.status_code == 200
        lines = [orjson.loads(x) for x in r.iter_lines() if x]
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    st = lines[0]["object"]
    assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired"
    events = list(http.watch("configmaps", resource_version="1"))
    assert events[0][0] == "ERROR" and events[0][1]["code"] == 410


def test_http_watch_client_disconnect_closes_watcher(server, http):
    cache = server.api.cache(server.api.resource("configmaps"))
    w = http.watch("configmaps", "default")
    deadline = time.monotonic() + 3
    while cache.watcher_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.watcher_count() == 1
    w.close()
    deadline = time.monotonic() + 5
    while cache.watcher_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.watcher_count() == 0


# ---- Status bodies and codes ----------------------------------------------------------------

def _status(r: httpx.Response, code: int, reason: str) -> dict:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    return body


def test_error_statuses(server):
    u = server.url
    cms = u + "/api/v1/namespaces/default/configmaps"
    body = _status(httpx.get(cms + "/nope"), 404, "NotFound")
    assert body["message"] == 'configmaps "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "configmaps"}
    assert httpx.post(cms, json=_cm("dup")).status_code == 201
    body = _status(httpx.post(cms, json=_cm("dup")), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "dup" already exists'
    cur = httpx.get(cms + "/dup").json()
    cur["metadata"]["resourceVersion"] = "1"
    body = _status(httpx.put(cms + "/dup", json=cur), 409, "Conflict")
    assert "the object has been modified" in body["message"]
    body = _status(httpx.post(cms, json=_cm("Bad_Name")), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    body = _status(httpx.post(cms, content=b'{"metadata": ', headers={"Content-Type": "application/json"}),
                   400, "BadRequest")
    assert "could not be decoded as JSON" in body["message"]
    body = _status(httpx.post(cms, content=b"metadata: [unclosed\n  - x: {",
                              headers={"Content-Type": "application/yaml"}), 400, "BadRequest")
    assert "YAML" in body["message"]
    body = _status(httpx.get(u + "/api/v1/nosuchthings"), 404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    _status(httpx.get(u + "/apis/nosuch.group/v1/things"), 404, "NotFound")
    _status(httpx.get(u + "/totally/elsewhere"), 404, "NotFound")
    _status(httpx.get(u + "/api/v1/namespaces/default/pods/x/frobnicate"), 404, "NotFound")
    big = _cm("big", blob="x" * (3 * 1024 * 1024 + 10))
    _status(httpx.post(cms, content=orjson.dumps(big), headers={"Content-Type": "application/json"}),
            413, "RequestEntityTooLarge")
    _status(httpx.put(cms), 405, "MethodNotAllowed")
    _status(httpx.post(cms + "/dup"), 405, "MethodNotAllowed")
    _status(httpx.patch(cms + "/dup", content=b"{}", headers={"Content-Type": "text/csv"}),
            415, "UnsupportedMediaType")
    _status(httpx.get(cms, params={"labelSelector": "a in (b"}), 400, "BadRequest")
    _status(httpx.post(cms, json=_cm("dr"), params={"dryRun": "Some"}), 400, "BadRequest")


def test_yaml_bodies_dry_run_and_pretty(server):
    cms = server.url + "/api/v1/namespaces/default/configmaps"
    y = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    r = httpx.post(cms, content=y, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201 and r.json()["data"] == {"k": "v"}
    r = httpx.post(cms, json=_cm("dry"), params={"dryRun": "All"})
    assert r.status_code == 201
    assert httpx.get(cms + "/dry").status_code == 404
    r = httpx.get(cms + "/from-yaml", params={"pretty": "true"})
    assert r.text.startswith("{\n  ")
    # apply in YAML creates (201) then updates (200)
    ap = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    h = {"Content-Type": "application/apply-patch+yaml"}
    r = httpx.patch(cms + "/applied", content=ap, headers=h, params={"fieldManager": "kubectl"})
    assert r.status_code == 201, r.text
    r = httpx.patch(cms + "/applied", content=ap, headers=h, params={"fieldManager": "kubectl"})
    assert r.status_code == 200
    assert r.json()["metadata"]["managedFields"][0]["manager"] == "kubectl"
    r = httpx.patch(cms + "/applied", content=b'{"data":{"a":"2"}}',
                    headers={"Content-Type": "application/merge-patch+json"},
                    params={"fieldManager": "other"})
    assert r.status_code == 200
    body = _status(httpx.patch(cms + "/applied", content=ap, headers=h,
                               params={"fieldManager": "kubectl"}), 409, "Conflict")
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "other" using v1: .data.a'
    assert body["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    r = httpx.patch(cms + "/applied", content=ap, headers=h,
                    params={"fieldManager": "kubectl", "force": "true"})
    assert r.status_code == 200 and r.json()["data"] == {"a": "1"}


def test_delete_query_options_and_collection(server, http):
    base = server.url + "/apis/apps/v1/namespaces/default/deployments"
    http.create("deployments", _deploy("d1"), "default")
    r = httpx.delete(base + "/d1", params={"propagationPolicy": "Foreground"})
    assert r.status_code == 200
    assert "foregroundDeletion" in r.json()["metadata"]["finalizers"]
    assert r.json()["metadata"]["deletionTimestamp"]
    http.create("configmaps", _cm("x1"), "default")
    http.create("configmaps", _cm("x2"), "default")
    r = httpx.request("DELETE", server.url + "/api/v1/namespaces/default/configmaps",
                      params={"labelSelector": "app=x1"})
    assert r.status_code == 200 and [i["metadata"]["name"] for i in r.json()["items"]] == ["x1"]
    assert [i["metadata"]["name"] for i in http.list("configmaps", "default")["items"]] == ["x2"]


def test_all_namespaces_and_cluster_scoped_paths(server, http):
    http.create("namespaces", {"metadata": {"name": "other"}, "spec": {"finalizers": ["kubernetes"]}})
    http.create("configmaps", _cm("a"), "default")
    http.create("configmaps", _cm("b"), "other")
    r = httpx.get(server.url + "/api/v1/configmaps").json()
    assert r["kind"] == "ConfigMapList"
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in r["items"]) == \
        [("default", "a"), ("other", "b")]
    assert httpx.get(server.url + "/api/v1/namespaces/other").json()["metadata"]["name"] == "other"
    # namespaces/{name}/status and /finalize are subresources, not namespaced paths
    ns = httpx.get(server.url + "/api/v1/namespaces/other/status").json()
    assert ns["kind"] == "Namespace"
    http.delete("namespaces", "other")
    ns = http.get("namespaces", "other")
    assert ns["status"]["phase"] == "Terminating"
    ns["spec"]["finalizers"] = []
    r = httpx.put(server.url + "/api/v1/namespaces/other/finalize", json=ns)
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + "/api/v1/namespaces/other").status_code == 404
    # an item of a namespaced kind needs a namespace in the path
    assert httpx.get(server.url + "/api/v1/configmaps/a").status_code == 404


# ---- discovery ------------------------------------------------------------------------------

def test_discovery(server):
    u = server.url
    assert httpx.get(u + "/healthz").text == "ok"
    assert httpx.get(u + "/readyz").text == "ok"
    assert httpx.get(u + "/livez").text == "ok"
    assert httpx.get(u + "/version").json()["major"] == "1"
    assert httpx.get(u + "/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in httpx.get(u + "/apis").json()["groups"]}
    assert {"apps", "batch", "coordination.k8s.io", "metrics.k8s.io"} <= set(groups)
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    core = {r["name"]: r for r in httpx.get(u + "/api/v1").json()["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert core["pods"]["singularName"] == "pod" and "all" in core["pods"]["categories"]
    assert core["pods/log"]["kind"] == "Pod" and core["pods/log"]["verbs"] == ["get"]
    assert core["pods/eviction"]["group"] == "policy" and core["pods/eviction"]["kind"] == "Eviction"
    assert core["pods/binding"]["kind"] == "Binding"
    assert core["namespaces"]["namespaced"] is False
    apps = {r["name"]: r for r in httpx.get(u + "/apis/apps/v1").json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert apps["deployments/scale"]["group"] == "autoscaling"
    assert set(apps["deployments"]["verbs"]) >= {"create", "list", "watch", "patch", "deletecollection"}
    assert httpx.get(u + "/apis/apps").json()["kind"] == "APIGroup"
    m = httpx.get(u + "/apis/metrics.k8s.io/v1beta1").json()
    assert {r["name"] for r in m["resources"]} == {"nodes", "pods"}


# ---- logs, exec, metrics, kbox routes ---------------------------------------------------------

def _running_pod(server, http, name="p1"):
    server.api.node_endpoints["n1"] = FakeNode()
    http.create("pods", _pod(name), "default")
    http.bind(name, "default", "n1")
    p = http.get("pods", name, "default")
    p["status"] = {"phase": "Running"}
    http.update_status("pods", p, "default")


def test_logs_and_follow(server, http):
    _running_pod(server, http)
    assert http.logs("p1", "default") == "".join(f"c line {i}\n" for i in range(5))
    assert http.logs("p1", "default", tail_lines=2) == "c line 3\nc line 4\n"
    r = httpx.get(server.url + "/api/v1/namespaces/default/pods/p1/log", params={"tailLines": "1"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    stop = threading.Event()
    got = []
    t0 = time.monotonic()
    for line in http.stream_logs("p1", "default", stop=stop):
        got.append(line)
        if len(got) == 8:
            stop.set()
    assert got[:6] == [f"c line {i}\n" for i in range(5)] + ["follow 0\n"]
    assert time.monotonic() - t0 < 5
    with pytest.raises(ApiError) as e:
        http.logs("p1", "default", container="nope")
    assert e.value.code == 400


def test_exec_over_kbox_path(server, http):
    _running_pod(server, http)
    code, out, err = http.exec("p1", "default", ["echo", "hi"], stdin=b"!")
    assert (code, out, err) == (3, b"echo hi!", b"err\xff")
    r = httpx.get(server.url + "/kbox/v1/namespaces/default/pods/p1/exec",
                  params=[("command", "ls"), ("command", "-l")])
    assert r.json()["exitCode"] == 3 and r.json()["stdout"] == "ls -l"
    r = httpx.get(server.url + "/api/v1/namespaces/default/pods/p1/exec", params={"command": "ls"})
    assert r.status_code == 400 and r.json()["message"] == "Upgrade request required"


def test_metrics(server, http):
    server.api.node_endpoints["n1"] = FakeNode()
    http.create("nodes", {"metadata": {"name": "n1", "labels": {"zone": "a"}}})
    u = server.url + "/apis/metrics.k8s.io/v1beta1"
    nodes = httpx.get(u + "/nodes").json()
    assert nodes["kind"] == "NodeMetricsList"
    (n,) = nodes["items"]
    assert n["usage"] == {"cpu": "250m", "memory": "123456Ki"}
    assert n["metadata"]["labels"] == {"zone": "a"} and n["window"]
    assert httpx.get(u + "/nodes/n1").json()["kind"] == "NodeMetrics"
    assert httpx.get(u + "/nodes/n9").status_code == 404
    pods = httpx.get(u + "/namespaces/default/pods").json()
    assert pods["kind"] == "PodMetricsList"
    assert pods["items"][0]["containers"] == [{"name": "c", "usage": {"cpu": "12345n", "memory": "64Mi"}}]
    assert len(httpx.get(u + "/pods").json()["items"]) == 1
    assert httpx.get(u + "/namespaces/other/pods").json()["items"] == []
    assert httpx.get(u + "/namespaces/default/pods/p1").json()["kind"] == "PodMetrics"


def test_kbox_routes(server, http):
    assert http.kbox_status() == {"name": "t", "nodes": 0}
    assert http.kbox_node_action("add", "n5", cpu="2") == {"ok": True, "action": "add", "name": "n5", "cpu": "2"}
    assert server.calls[-1] == ("add", "n5", {"cpu": "2"})
    with pytest.raises(ApiError) as e:
        http.kbox_node_action("bad", "n5")
    assert e.value.code == 400 and "unknown action" in e.value.message
    with pytest.raises(ApiError) as e:
        http.kbox_node_action("stop", "missing")
    assert e.value.code == 404


def test_authenticator_hook():
    api = _boot()

    def auth(headers, path):
        if headers.get("authorization") != "Bearer s3cret":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return "admin"

    with HttpServer(api, authenticator=auth) as srv:
        with pytest.raises(ApiError) as e:
            HttpClient(srv.url).list("namespaces")
        assert e.value.code == 401
        c = HttpClient(srv.url, token="s3cret")
        assert len(c.list("namespaces")["items"]) == 4
        c.close()
    api.stop()


# ---- the official kubernetes client --------------------------------------------------------

def test_official_kubernetes_client(server):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host = server.url
    with k8s.ApiClient(cfg) as api_client:
        core = k8s.CoreV1Api(api_client)
        names = [n.metadata.name for n in core.list_namespace().items]
        assert "default" in names and "kube-system" in names
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="k8s-client")))
        pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="hello", labels={"app": "hello"}),
                        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox")]))
        created = core.create_namespaced_pod("k8s-client", pod)
        assert created.metadata.uid and created.metadata.resource_version
        got = core.read_namespaced_pod("hello", "k8s-client")
        assert got.spec.containers[0].image == "busybox"
        pods = core.list_namespaced_pod("k8s-client", label_selector="app=hello")
        assert [p.metadata.name for p in pods.items] == ["hello"]
        core.patch_namespaced_pod("hello", "k8s-client", {"metadata": {"labels": {"x": "y"}}})
        assert core.read_namespaced_pod("hello", "k8s-client").metadata.labels["x"] == "y"
        with pytest.raises(k8s.exceptions.ApiException) as e:
            core.read_namespaced_pod("missing", "k8s-client")
        assert e.value.status == 404
        from kubernetes import watch
        events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
            core.list_namespaced_pod, "k8s-client", timeout_seconds=1)]
        assert events == [("ADDED", "hello")]
        deleted = core.delete_namespaced_pod("hello", "k8s-client", grace_period_seconds=0)
        assert deleted.metadata.name == "hello"
        assert core.list_namespaced_pod("k8s-client").items == []
        apps = k8s.AppsV1Api(api_client)
        assert apps.list_namespaced_deployment("default").items == []
        scale = apps.create_namespaced_deployment("default", _deploy("kd"))
        assert scale.spec.replicas == 2
        apps.patch_namespaced_deployment_scale("kd", "default", {"spec": {"replicas": 4}})
        assert apps.read_namespaced_deployment_scale("kd", "default").spec.replicas == 4


def test_quantities():
    from kbox.api.metrics import cpu_quantity, memory_quantity
    assert [cpu_quantity(v) for v in (0, 2_000_000_000, 250_000_000, 12345)] == ["0", "2", "250m", "12345n"]
    assert [memory_quantity(v) for v in (0, 1 << 30, 3 << 20, 123456 * 1024, 1000)] == \
        ["0", "1Gi", "3Mi", "123456Ki", "1000"]


# ---- performance ------------------------------------------------------------------------------

def test_list_5000_pods_under_a_second(server, http):
    api = server.api
    for i in range(5000):
        api.create("pods", _pod(f"pod-{i:05d}"), "default")
    http.list("pods", "default", limit=1)   # warm the cache and the connection
    t0 = time.perf_counter()
    lst = http.list("pods", "default")
    elapsed = time.perf_counter() - t0
    assert len(lst["items"]) == 5000
    assert elapsed < 1.0, f"list of 5000 pods took {elapsed:.2f}s"


def test_create_update_latency(http):
    lat = []
    for i in range(200):
        t0 = time.perf_counter()
        obj = http.create("configmaps", _cm(f"lat-{i}", i=str(i)), "default")
        obj["data"]["i"] = "u"
        http.update("configmaps", obj, "default")
        lat.append((time.perf_counter() - t0) / 2)
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    assert p99 < 0.05, f"p99 {p99 * 1000:.1f} ms"
