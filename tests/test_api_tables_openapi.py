"""Server-side printing, discovery, OpenAPI and field validation, without kubectl.

Units: the Table builder (column names and priorities as kube-apiserver
sends them, rows with PartialObjectMetadata or the object), Accept-header
negotiation, the aggregated and legacy discovery documents, the OpenAPI v2
(JSON and protobuf) and v3 documents generated from the models (upstream
names, group-version-kind, patch metadata, the fieldValidation parameter
kubectl looks for), and unknown-field detection. Then the same over HTTP
against an ApiServer on a memory store.
"""

from __future__ import annotations

import random

import httpx
import orjson
import pytest

from kbox.api import discovery, fieldvalidation, openapi, schema, tableview
from kbox.api.errors import ApiError
from kbox.api.http import HttpServer
from kbox.api.resources import RESOURCES, lookup
from kbox.api.server import ApiServer
from kbox.clock import FakeClock, iso_time
from kbox.store.memory import MemoryStore

TABLE_V1 = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_GET_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                      "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
AGGREGATED_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                     "application/json")


def pod(name: str, ns: str = "default", labels: dict | None = None, created: float = 0.0) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"},
                         "creationTimestamp": iso_time(created)},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                              "state": {"running": {}}}]}}


# ---- Table builder -----------------------------------------------------------------------

def test_column_definitions_are_named_as_kube_apiserver_names_them():
    cols = tableview.columns_for("pods")
    assert [(c["name"], c["priority"]) for c in cols] == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1),
        ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]
    assert cols[0]["format"] == "name" and cols[0]["type"] == "string"
    assert all(c["description"] for c in cols)
    names = lambda plural: [c["name"] for c in tableview.columns_for(plural)]
    assert names("nodes")[5:] == ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version",
                                  "Container-Runtime"]
    assert names("deployments") == ["Name", "Ready", "Up-to-date", "Available", "Age",
                                     "Containers", "Images", "Selector"]
    assert names("services") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                                 "Selector"]
    assert names("daemonsets")[6] == "Node Selector"
    assert [(c["name"], c["priority"]) for c in tableview.columns_for("events")] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
        ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]


def test_table_rows_carry_metadata_or_the_object():
    p = pod("a", created=100.0)
    t = tableview.table("pods", [p], 160.0, resource_version="42", continue_token="c1",
                        remaining=3)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42", "continue": "c1", "remainingItemCount": 3}
    row = t["rows"][0]
    assert row["cells"] == ["a", "1/1", "Running", "0", "60s", "10.0.0.5", "n1", "<none>",
                            "<none>"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": p["metadata"]}
    full = tableview.table("pods", [p], 160.0, include="Object", version="v1beta1")
    assert full["apiVersion"] == "meta.k8s.io/v1beta1" and full["rows"][0]["object"] is p
    bare = tableview.table("pods", [p], 160.0, include="None")
    assert "object" not in bare["rows"][0]


def test_event_cells_include_the_wide_columns():
    ev = {"metadata": {"name": "web.17", "namespace": "default"}, "type": "Normal",
          "reason": "Scheduled", "message": " assigned \n",
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
          "source": {"component": "kubelet", "host": "n1"},
          "firstTimestamp": iso_time(100.0), "lastTimestamp": iso_time(130.0), "count": 3}
    cells = tableview.table("events", [ev], 160.0)["rows"][0]["cells"]
    assert cells == ["30s", "Normal", "Scheduled", "pod/web", "spec.containers{c}", "kubelet, n1",
                     "assigned", "60s", 3, "web.17"]


def test_list_and_item_representations():
    lst = {"kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": [pod("a"), pod("b")]}
    t = tableview.list_as(tableview.Representation("Table", "v1"), "pods", lst, 0.0)
    assert [r["cells"][0] for r in t["rows"]] == ["a", "b"] and t["metadata"]["resourceVersion"] == "9"
    pl = tableview.list_as(tableview.Representation("PartialObjectMetadataList", "v1"), "pods", lst, 0.0)
    assert pl["kind"] == "PartialObjectMetadataList"
    assert [i["metadata"]["name"] for i in pl["items"]] == ["a", "b"]
    one = tableview.item_as(tableview.Representation("PartialObjectMetadata", "v1beta1"), "pods",
                            pod("a"), 0.0)
    assert one["apiVersion"] == "meta.k8s.io/v1beta1" and "spec" not in one


def test_watch_tables_send_column_definitions_once():
    w = tableview.WatchTables(tableview.Representation("Table", "v1"), "pods", "Metadata",
                              FakeClock(start=0.0))
    first, second = w.convert(pod("a")), w.convert(pod("b"))
    assert first["columnDefinitions"] and "columnDefinitions" not in second
    assert second["rows"][0]["cells"][0] == "b"


@pytest.mark.parametrize("accept,item,want", [
    (None, False, ("", "")),
    ("application/json", False, ("", "")),
    (KUBECTL_GET_ACCEPT, False, ("Table", "v1")),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", True, ("Table", "v1beta1")),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", False,
     ("PartialObjectMetadataList", "v1")),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", True,
     ("", "")),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json", False,
     ("", "")),
    ("*/*", False, ("", "")),
])
def test_negotiate(accept, item, want):
    rep = tableview.negotiate(accept, item=item)
    assert (rep.as_, rep.version) == want


def test_negotiate_refuses_what_it_cannot_serve():
    with pytest.raises(ApiError) as e:
        tableview.negotiate("application/json;as=Table;v=v2;g=meta.k8s.io", item=False)
    assert e.value.code == 406 and e.value.reason == "NotAcceptable"


# ---- discovery -----------------------------------------------------------------------------

def test_legacy_resource_lists():
    core = {r["name"]: r for r in discovery.resource_list("", "v1")["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["categories"] == ["all"]
    assert core["pods"]["singularName"] == "pod"
    assert core["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                     "group": "policy", "version": "v1", "kind": "Eviction",
                                     "verbs": ["create"]}
    assert core["pods/log"]["kind"] == "Pod" and core["pods/log"]["verbs"] == ["get"]
    assert core["pods/exec"]["kind"] == "PodExecOptions"
    assert core["nodes/proxy"]["kind"] == "NodeProxyOptions"
    assert "deletecollection" not in core["namespaces"]["verbs"]
    assert core["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    apps = {r["name"]: r for r in discovery.resource_list("apps", "v1")["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    assert apps["deployments"]["categories"] == ["all"] and apps["deployments"]["shortNames"] == ["deploy"]
    assert discovery.resource_list("nope", "v1") is None
    groups = [g["name"] for g in discovery.group_list()["groups"]]
    assert groups == ["apps", "batch", "coordination.k8s.io", "metrics.k8s.io"]


def test_aggregated_discovery():
    assert discovery.negotiate_aggregated(AGGREGATED_ACCEPT) == "v2"
    assert discovery.negotiate_aggregated(
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json") == "v2beta1"
    assert discovery.negotiate_aggregated("application/json, */*") is None
    assert discovery.negotiate_aggregated(None) is None
    core = discovery.aggregated(True)
    assert core["kind"] == "APIGroupDiscoveryList" and core["apiVersion"] == "apidiscovery.k8s.io/v2"
    (item,) = core["items"]
    assert "name" not in item["metadata"]
    pods = next(r for r in item["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["status"]["verbs"] == ["get", "patch", "update"]
    named = discovery.aggregated(False, "v2beta1")
    assert named["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert [i["metadata"]["name"] for i in named["items"]] == [
        "apps", "batch", "coordination.k8s.io", "metrics.k8s.io"]
    assert discovery.content_type("v2") == \
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


# ---- schema, OpenAPI --------------------------------------------------------------------------

def test_every_kind_has_a_schema_named_as_upstream():
    s = schema.build()
    for r in RESOURCES:
        name = s.kinds[(r.group, r.version, r.kind)]
        assert name.endswith("." + r.kind)
    assert s.kinds[("", "v1", "Pod")] == "io.k8s.api.core.v1.Pod"
    assert s.kinds[("apps", "v1", "Deployment")] == "io.k8s.api.apps.v1.Deployment"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in s.types


def test_v2_document():
    doc = openapi.v2_document()
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    pod_def = defs["io.k8s.api.core.v1.Pod"]
    assert pod_def["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod_def["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    assert pod_def["description"]
    spec = defs["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert spec["containers"]["x-kubernetes-patch-strategy"] == "merge"
    assert spec["containers"]["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}
    assert spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    container = defs["io.k8s.api.core.v1.Container"]["properties"]
    assert container["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert container["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert container["resources"]["$ref"].endswith("ResourceRequirements")
    limits = defs["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    assert defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]["x-kubernetes-patch-strategy"] == "retainKeys"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "/api/v1/nodes/{name}" in doc["paths"] and "/api/v1/pods" in doc["paths"]


def _pb_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Decode one protobuf message level: (field, wire type, payload)."""
    from kbox.api.protobuf import read_fields
    return read_fields(data)


def test_v2_protobuf_is_a_gnostic_document():
    doc = openapi.v2_document()
    top = _pb_fields(openapi.v2_protobuf(doc))
    assert (1, 2, b"2.0") in top
    defs = next(p for f, _, p in top if f == 9)
    names = [dict((f, p) for f, _, p in _pb_fields(e))[1].decode() for _, _, e in _pb_fields(defs)]
    assert names == list(doc["definitions"])
    paths = next(p for f, _, p in top if f == 8)
    assert len(_pb_fields(paths)) == len(doc["paths"])
    # a vendor extension travels as YAML in Any.yaml
    pod_entry = next(e for _, _, e in _pb_fields(defs)
                     if dict((f, p) for f, _, p in _pb_fields(e))[1] == b"io.k8s.api.core.v1.Pod")
    schema_msg = dict((f, p) for f, _, p in _pb_fields(pod_entry))[2]
    ext = [p for f, _, p in _pb_fields(schema_msg) if f == 31]
    named = dict((f, p) for f, _, p in _pb_fields(ext[0]))
    assert named[1] == b"x-kubernetes-group-version-kind"
    yaml_text = dict((f, p) for f, _, p in _pb_fields(named[2]))[2].decode()
    assert "kind: Pod" in yaml_text and "version: v1" in yaml_text


def test_v3_documents():
    docs = openapi.DOCS.ensure()
    root = orjson.loads(docs.v3_root)["paths"]
    assert set(root) == {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/coordination.k8s.io/v1"}
    url = root["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    doc = openapi.v3_document("apps", "v1")
    assert doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.core.v1.Pod" not in schemas           # only what apps/v1 reaches
    spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["containers"]["x-kubernetes-list-type"] == "map"
    assert spec["containers"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["containers"]["items"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert "oneOf" in schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert openapi.v3_document("nope", "v1") is None


def test_respond_negotiates_and_caches():
    body, ctype, headers = openapi.respond(["v2"], openapi.PB_V2, {})
    assert ctype == openapi.PB_V2_ALT and body is openapi.DOCS.v2_pb
    body2, ctype2, _ = openapi.respond(["v2"], "application/json", {})
    assert ctype2 == "application/json" and orjson.loads(body2)["swagger"] == "2.0"
    assert openapi.respond(["v2"], "application/json", {})[0] is body2      # generated once
    h = orjson.loads(openapi.DOCS.v3_root)["paths"]["api/v1"]["serverRelativeURL"].split("hash=")[1]
    _, _, hdr = openapi.respond(["v3", "api", "v1"], None, {"hash": h})
    assert hdr["Cache-Control"] == "public, immutable"
    with pytest.raises(ApiError):
        openapi.respond(["v3", "apis", "nope", "v1"], None, {})


# ---- field validation -------------------------------------------------------------------------

def test_unknown_fields():
    deploy = lookup("deployments")
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "bogus": 1},
            "spec": {"foo": 1, "replicas": 1, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                "containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always",
                                "securityContext": {"anything": True}}],
                "volumes": [{"name": "v", "emptyDir": {"whatever": 1}}]}}},
            "status": {"free": "form"}}
    assert fieldvalidation.unknown_fields(deploy, body) == [
        "metadata.bogus", "spec.foo", "spec.template.spec.containers[0].imagePullPolicyy"]
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"}],
                                            "containers": [{"name": "c", "$patch": "delete"}]}}}}
    assert fieldvalidation.unknown_fields(deploy, patch, patch=True) == []


def test_field_validation_directives():
    deploy = lookup("deployments")
    body = {"spec": {"foo": 1}}
    with pytest.raises(ApiError) as e:
        fieldvalidation.check(deploy, body, {"fieldValidation": "Strict"}, operation="create")
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message == ('Deployment in version "v1" cannot be handled as a Deployment: '
                               'strict decoding error: unknown field "spec.foo"')
    with pytest.raises(ApiError) as e:
        fieldvalidation.check(deploy, body, {"fieldValidation": "Strict"}, operation="strategic")
    assert e.value.message == 'strict decoding error: unknown field "spec.foo"'
    with pytest.raises(ApiError) as e:
        fieldvalidation.check(deploy, body, {"fieldValidation": "Strict"}, operation="apply",
                              name="web", namespace="default")
    assert e.value.message == ("failed to create typed patch object (default/web; apps/v1, "
                               "Kind=Deployment): .spec.foo: field not declared in schema")
    assert fieldvalidation.check(deploy, body, {}, operation="create") == ['unknown field "spec.foo"']
    assert fieldvalidation.check(deploy, body, {"fieldValidation": "Ignore"}, operation="create") == []
    with pytest.raises(ApiError):
        fieldvalidation.check(deploy, body, {"fieldValidation": "Loud"}, operation="create")
    assert fieldvalidation.warning_header('unknown field "spec.foo"') == '299 - "unknown field \\"spec.foo\\""'


# ---- over HTTP ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def http():
    clock = FakeClock(start=1_000.0)
    api = ApiServer(MemoryStore(clock=clock), clock, rng=random.Random(3))
    api.bootstrap()
    for i in range(3):
        api.create("pods", pod(f"p{i}", created=990.0, labels={"app": "web" if i else "db"}))
    clock.advance(10)
    srv = HttpServer(api).start()
    client = httpx.Client(base_url=srv.url, timeout=10)
    yield api, client
    client.close()
    srv.stop()
    api.stop()


def test_http_tables(http):
    api, c = http
    r = c.get("/api/v1/namespaces/default/pods", headers={"Accept": KUBECTL_GET_ACCEPT},
              params={"labelSelector": "app=web"})
    t = r.json()
    assert t["kind"] == "Table" and [row["cells"][0] for row in t["rows"]] == ["p1", "p2"]
    assert t["rows"][0]["cells"][4] == "10s"          # age on the server's clock
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    paged = c.get("/api/v1/pods", headers={"Accept": TABLE_V1}, params={"limit": 2}).json()
    assert len(paged["rows"]) == 2 and paged["metadata"]["continue"]
    rest = c.get("/api/v1/pods", headers={"Accept": TABLE_V1},
                 params={"limit": 2, "continue": paged["metadata"]["continue"]}).json()
    assert [row["cells"][0] for row in rest["rows"]] == ["p2"]
    one = c.get("/api/v1/namespaces/default/pods/p0", headers={"Accept": TABLE_V1},
                params={"includeObject": "Object"}).json()
    assert one["rows"][0]["object"]["spec"]["nodeName"] == "n1"
    assert c.get("/api/v1/namespaces/default/pods/p0").json()["kind"] == "Pod"
    bad = c.get("/api/v1/pods", headers={"Accept": "application/json;as=Table;v=v9;g=meta.k8s.io"})
    assert bad.status_code == 406 and bad.json()["reason"] == "NotAcceptable"


def test_http_watch_tables(http):
    api, c = http
    with c.stream("GET", "/api/v1/namespaces/default/pods", headers={"Accept": KUBECTL_GET_ACCEPT},
                  params={"watch": "1", "timeoutSeconds": "2"}) as r:
        events = [orjson.loads(line) for line in r.iter_lines() if line.strip()]
    assert [e["type"] for e in events] == ["ADDED"] * 3
    assert [e["object"]["kind"] for e in events] == ["Table"] * 3
    assert "columnDefinitions" in events[0]["object"]
    assert all("columnDefinitions" not in e["object"] for e in events[1:])
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["p0", "p1", "p2"]


def test_http_discovery_and_openapi(http):
    _, c = http
    r = c.get("/apis", headers={"Accept": AGGREGATED_ACCEPT})
    assert r.headers["content-type"] == discovery.content_type("v2")
    assert r.json()["kind"] == "APIGroupDiscoveryList"
    r = c.get("/api", headers={"Accept": "application/json, */*"})
    assert r.headers["content-type"] == "application/json" and r.json()["kind"] == "APIVersions"
    r = c.get("/openapi/v2", headers={"Accept": openapi.PB_V2})
    assert r.headers["content-type"] == openapi.PB_V2_ALT and r.content[:1] == b"\x0a"
    assert c.get("/openapi/v2").json()["swagger"] == "2.0"
    root = c.get("/openapi/v3").json()["paths"]
    doc = c.get(root["api/v1"]["serverRelativeURL"]).json()
    assert "io.k8s.api.core.v1.Pod" in doc["components"]["schemas"]


def test_http_field_validation(http):
    _, c = http
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv"}, "data": {"a": "b"},
          "extra": True}
    r = c.post("/api/v1/namespaces/default/configmaps", json=cm, params={"fieldValidation": "Strict"})
    assert r.status_code == 400
    assert r.json()["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                   'strict decoding error: unknown field "extra"')
    r = c.post("/api/v1/namespaces/default/configmaps", json=cm, params={"fieldValidation": "Warn"})
    assert r.status_code == 201 and r.headers["warning"] == '299 - "unknown field \\"extra\\""'
    r = c.patch("/api/v1/namespaces/default/configmaps/fv", json={"nope": 1},
                headers={"Content-Type": "application/merge-patch+json"},
                params={"fieldValidation": "Strict"})
    assert r.status_code == 400 and r.json()["message"] == 'strict decoding error: unknown field "nope"'
    r = c.put("/api/v1/namespaces/default/configmaps/fv", json={**cm, "extra": None, "more": 1},
              params={"fieldValidation": "Ignore"})
    assert r.status_code == 200 and "warning" not in r.headers
