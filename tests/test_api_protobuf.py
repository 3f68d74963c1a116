"""Kubernetes' protobuf request bodies (kbox.api.protobuf).

Unit tests encode messages by hand (the wire format is small) and check the
JSON the decoder gives, including Go's habit of writing empty non-pointer
fields (dropped, as JSON's omitempty would) and the fields whose zero value
means something (kept). Then the real kubectl: 1.32 sends `kubectl create ...`
objects as protobuf, 1.31 as JSON; the same command through both must store
the same object.
"""

from __future__ import annotations

import base64
import os
import struct
import subprocess
import uuid

import pytest

from kbox.api import protobuf
from kbox.api.protobuf import ProtobufError, decode_object


# ---- a tiny encoder for the tests ------------------------------------------------------------

varint = protobuf.encode_varint


def field(number: int, value: int | bytes | str, wire: int | None = None) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return protobuf.encode_bytes_field(number, value)
    return protobuf.encode_varint_field(number, value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw)


def test_a_deployment_as_kubectl_132_sends_it():
    meta = field(1, "web") + field(11, field(1, "app") + field(2, "web")) + field(8, b"")  # labels, empty time
    port = field(3, 8080) + field(4, "")               # containerPort, protocol "" (Go's empty field)
    quantity = field(1, "100m")
    resources = field(1, field(1, "cpu") + field(2, quantity))           # limits: {cpu: 100m}
    container = (field(1, "httpd") + field(2, "kbox/busybox:latest") + field(3, "httpd") + field(3, "-f")
                 + field(6, port) + field(8, resources) + field(14, "") + field(16, 0, 0)
                 + field(18, 0, 0))                                       # "", false, false: Go's
    pod_spec = field(2, container) + field(3, "") + field(4, 30, 0)       # restartPolicy "", grace 30
    template = field(1, field(11, field(1, "app") + field(2, "web"))) + field(2, pod_spec)
    strategy = field(2, field(1, field(1, 1) + field(3, "25%")) + field(2, field(1, 0) + field(2, 1)))
    spec = (field(1, 0, 0) + field(2, field(1, field(1, "app") + field(2, "web"))) + field(3, template)
            + field(4, strategy) + field(5, 0, 0) + field(7, 0, 0))
    body = envelope("apps/v1", "Deployment", field(1, meta) + field(2, spec) + field(3, b""))
    obj = decode_object(body)
    assert obj == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": None},
        "spec": {
            "replicas": 0,                        # a pointer: an explicit 0 stays
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "httpd", "image": "kbox/busybox:latest",
                                "command": ["httpd", "-f"], "ports": [{"containerPort": 8080}],
                                "resources": {"limits": {"cpu": "100m"}}}],
                "terminationGracePeriodSeconds": 30}},
            "strategy": {"rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
        },
        "status": {}}


def test_scalars_times_bytes_and_packed_numbers():
    secret = field(1, field(1, "s") + field(8, field(1, 1700000000)))   # creationTimestamp
    secret += field(2, field(1, "k") + field(2, b"\x00\xffhi"))        # data: bytes → base64
    secret += field(3, "Opaque") + field(5, 1, 0)                       # immutable: true
    obj = decode_object(envelope("v1", "Secret", secret))
    assert obj["metadata"] == {"name": "s", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert obj["data"] == {"k": base64.b64encode(b"\x00\xffhi").decode()}
    assert obj["type"] == "Opaque" and obj["immutable"] is True
    from kbox.api.protobuf import _message
    # a negative int64 (a ten-byte varint) and a repeated string
    opts = field(1, -5, 0) + field(5, "All")
    assert _message(memoryview(opts), "meta.v1.DeleteOptions") == {"gracePeriodSeconds": -5,
                                                                    "dryRun": ["All"]}
    # a repeated number sent packed, and one sent an element at a time
    user = field(1, 0, 0) + field(3, varint(1000) + varint(2000)) + field(3, 3000, 0)
    assert _message(memoryview(user), "core.v1.LinuxContainerUser") == {
        "uid": 0, "supplementalGroups": [1000, 2000, 3000]}       # uid: a zero that means root
    # a double where a string belongs is malformed
    with pytest.raises(ProtobufError):
        _message(memoryview(varint(1 << 3 | 1) + struct.pack("<d", 0.5)), "core.v1.Container")


@pytest.mark.parametrize("body,words", [
    (b'{"kind": "Pod"}', "does not start with k8s"),
    (protobuf.MAGIC + b"\x0a\xff", "truncated"),
    (envelope("v1", "Frobnicator", b""), "cannot decode Frobnicator"),
    (envelope("example.com/v1", "Widget", b""), "cannot decode Widget"),
    (envelope("v1", "Pod", field(1, field(77, "x"))), "field 77 of protobuf message meta.v1.ObjectMeta"),
    (envelope("v1", "Pod", b"\x0f"), "wire type 7"),
])
def test_bad_bodies_say_what_is_wrong(body, words):
    with pytest.raises(ProtobufError) as e:
        decode_object(body)
    assert words in str(e.value)


# ---- the real kubectl: 1.32 sends protobuf, 1.31 JSON -------------------------------------------

KUBECTL_132 = "/usr/bin/kubectl"
KUBECTL_131 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.31"

CREATES = [
    ["create", "deployment", "web", "--image=kbox/busybox:latest", "--replicas=0", "--port=8080",
     "--", "httpd", "-f", "-p", "8080"],
    ["create", "service", "clusterip", "web", "--tcp=80:8080"],
    ["create", "service", "nodeport", "np", "--tcp=80:8080"],
    ["create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=pw=x"],
    ["create", "configmap", "settings", "--from-literal=mode=fast"],
    ["create", "job", "once", "--image=kbox/busybox:latest", "--", "echo", "hi"],
    ["create", "serviceaccount", "robot"],
    ["run", "solo", "--image=kbox/busybox:latest", "--labels=a=b", "--env=X=1", "--port=80",
     "--", "sleep", "100"],
]
KINDS = {"deployment": "deployments", "service": "services", "secret": "secrets",
         "configmap": "configmaps", "job": "jobs", "serviceaccount": "serviceaccounts", "run": "pods"}


def _clean(obj: dict) -> dict:
    obj = dict(obj)
    m = {k: v for k, v in obj["metadata"].items()
         if k not in ("uid", "resourceVersion", "creationTimestamp", "namespace", "managedFields")}
    obj["metadata"] = m
    m["labels"] = {k: v for k, v in (m.get("labels") or {}).items() if "controller-uid" not in k}
    obj.pop("status", None)
    obj.pop("secrets", None)             # token secrets: random names
    spec = obj.get("spec") or {}
    for k in ("clusterIP", "clusterIPs"):
        spec.pop(k, None)
    for p in spec.get("ports") or []:
        if p.get("nodePort"):
            p.pop("nodePort")
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    sel.pop("batch.kubernetes.io/controller-uid", None)
    sel.pop("controller-uid", None)
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    for k in [k for k in tmpl_labels if "controller-uid" in k]:
        tmpl_labels.pop(k)
    return obj


@pytest.mark.kubectl
@pytest.mark.skipif(not (os.path.exists(KUBECTL_132) and os.path.exists(KUBECTL_131)),
                    reason="needs kubectl 1.32 and 1.31 (the google-cloud-sdk set)")
def test_kubectl_132s_protobuf_objects_equal_kubectl_131s_json_ones(tmp_path):
    from kbox.cli import kubeconfig
    from kbox.cluster import Cluster
    from kbox.config import ClusterConfig
    c = Cluster(ClusterConfig.model_validate({"name": f"pb{uuid.uuid4().hex[:5]}", "runtime": "sim",
                                              "nodes": {"count": 1}}))
    c.start()
    try:
        cfg = tmp_path / "config"
        kubeconfig.merge(kubeconfig.kubeconfig_for("pb", c.url, c.credentials.ca_pem,
                                                   c.credentials.admin_token), cfg)
        for ns in ("new", "old"):
            c.client.create("namespaces", {"metadata": {"name": ns}})
        for binary, ns in ((KUBECTL_132, "new"), (KUBECTL_131, "old")):
            for argv in CREATES:
                r = subprocess.run([binary, f"--kubeconfig={cfg}", f"--cache-dir={tmp_path / ns}",
                                    "-n", ns, *argv], capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, (binary, argv, r.stderr)
        for argv in CREATES:
            kind = KINDS[argv[0] if argv[0] == "run" else argv[1]]
            name = argv[3] if argv[1] in ("service", "secret") else (argv[1] if argv[0] == "run" else argv[2])
            new = _clean(c.client.get(kind, name, "new"))
            old = _clean(c.client.get(kind, name, "old"))
            assert new == old, (argv, new, old)
    finally:
        c.stop()
