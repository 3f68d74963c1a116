"""`kbox describe`: kubectl's describe layouts, line for line.

Each describer writes tab-separated lines with kubectl's indentation levels
and `kbox.cli.tabwriter` aligns them exactly as kubectl's tabwriter does.
Events come from a field selector on involvedObject (uid, name, namespace,
kind), as kubectl asks for them; if the server cannot filter on those
fields the CLI filters on its side. Kinds without their own layout get
kubectl's generic one (the object's fields, camel case split into words).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kbox.api.errors import ApiError
from kbox.api.selectors import selector_to_string
from kbox.api.tables import human_duration
from kbox.cli.registry import Context, command
from kbox.cli.tabwriter import render
from kbox.clock import parse_time

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
Obj = dict[str, Any]


# ---- small formatting helpers (kubectl's) --------------------------------------------

def rfc1123z(ts: str | None) -> str:
    t = parse_time(ts)
    if t is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    return datetime.fromtimestamp(t, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def since(ts: str | None, now: float) -> str:
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    d = now - t
    if d < -1:
        return "<invalid>"
    return human_duration(max(0.0, d))


def until(ts: str | None, now: float) -> str:
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    d = t - now
    if d < -1:
        return "<invalid>"
    return human_duration(max(0.0, d))


class _W:
    """kubectl's PrefixWriter: levels of two spaces, text with tabs for the tabwriter."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def text(self) -> str:
        return render("".join(self.parts))


def _labels(w: _W, title: str, labels: dict[str, str] | None, initial: str = "") -> None:
    w.write(0, f"{initial}{title}:\t")
    if not labels:
        w.write(0, "<none>\n")
        return
    for i, k in enumerate(sorted(labels)):
        if i:
            w.write(0, f"{initial}\t")
        w.write(0, f"{k}={labels[k]}\n")


def _annotations(w: _W, title: str, ann: dict[str, str] | None, initial: str = "") -> None:
    ann = {k: v for k, v in (ann or {}).items() if k != LAST_APPLIED}
    w.write(0, f"{initial}{title}:\t")
    if not ann:
        w.write(0, "<none>\n")
        return
    for i, k in enumerate(sorted(ann)):
        if i:
            w.write(0, f"{initial}\t")
        v = ann[k]
        if len(v) > 140:
            v = v[:140] + "..."
        w.write(0, f"{k}: {v}\n")


def _taint(t: Obj) -> str:
    s = t.get("key", "")
    if t.get("value"):
        s += f"={t['value']}"
    if t.get("effect"):
        s += f":{t['effect']}"
    return s


def _taints(w: _W, title: str, taints: list[Obj] | None) -> None:
    w.write(0, f"{title}:\t")
    if not taints:
        w.write(0, "<none>\n")
        return
    for i, t in enumerate(taints):
        if i:
            w.write(0, "\t")
        w.write(0, _taint(t) + "\n")


def _tolerations(w: _W, title: str, tols: list[Obj] | None, initial: str = "") -> None:
    w.write(0, f"{initial}{title}:\t")
    if not tols:
        w.write(0, "<none>\n")
        return
    for i, t in enumerate(sorted(tols, key=lambda t: t.get("key", ""))):
        if i:
            w.write(0, f"{initial}\t")
        s = t.get("key", "")
        if t.get("value"):
            s += f"={t['value']}"
        if t.get("effect"):
            s += f":{t['effect']}"
        if t.get("operator") == "Exists":
            s += " op=Exists"
        if t.get("tolerationSeconds") is not None:
            s += f" for {t['tolerationSeconds']}s"
        w.write(0, s + "\n")


def _selector(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    return selector_to_string(sel) or "<none>"


def _map_selector(d: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((d or {}).items())) or "<none>"


def _controlled_by(obj: Obj) -> str:
    for r in obj["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            return f"{r.get('kind')}/{r.get('name')}"
    return ""


# ---- quantities ------------------------------------------------------------------------

_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
           "E": 1e18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
           "Ei": 2 ** 60}


def quantity(text: Any) -> float:
    s = str(text).strip()
    for suf in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * _SUFFIX[suf]
    return float(s) if s else 0.0


def _cpu_str(millis: int) -> str:
    if millis == 0:
        return "0"
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _mem_str(b: int) -> str:
    if b == 0:
        return "0"
    for suf, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if b % size == 0:
            return f"{b // size}{suf}"
    return str(b)


def pod_requests_limits(pod: Obj) -> tuple[dict[str, float], dict[str, float]]:
    """Effective requests and limits: the sum over containers, at least each init container's."""
    spec = pod.get("spec") or {}

    def total(cs: list[Obj], kind: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in cs:
            for k, v in ((c.get("resources") or {}).get(kind) or {}).items():
                out[k] = out.get(k, 0.0) + quantity(v)
        return out
    reqs, lims = total(spec.get("containers") or [], "requests"), total(spec.get("containers") or [], "limits")
    for c in spec.get("initContainers") or []:
        for kind, acc in (("requests", reqs), ("limits", lims)):
            for k, v in ((c.get("resources") or {}).get(kind) or {}).items():
                acc[k] = max(acc.get(k, 0.0), quantity(v))
    return reqs, lims


def qos_class(pod: Obj) -> str:
    qc = (pod.get("status") or {}).get("qosClass")
    if qc:
        return qc
    cs = (pod.get("spec") or {}).get("containers") or []
    cs = cs + ((pod.get("spec") or {}).get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in cs:
        r = c.get("resources") or {}
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        if req or lim:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in lim or (res in req and quantity(req[res]) != quantity(lim[res])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# ---- events ------------------------------------------------------------------------------

def events_for(ctx: Context, obj: Obj) -> list[Obj]:
    m = obj["metadata"]
    sel = f"involvedObject.uid={m.get('uid', '')},involvedObject.name={m['name']}"
    if m.get("namespace"):
        sel += f",involvedObject.namespace={m['namespace']}"
    sel += f",involvedObject.kind={obj.get('kind', '')}"
    from kbox.cli.util import list_filtered
    try:
        evs = list_filtered(ctx.client, "events", m.get("namespace") or None, sel)
    except ApiError:
        return []
    evs.sort(key=lambda e: parse_time(e.get("lastTimestamp") or e.get("eventTime")
                                      or e.get("firstTimestamp")) or 0.0)
    return evs


def describe_events(w: _W, events: list[Obj] | None, now: float) -> None:
    if events is None:
        return
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in events:
        first = e.get("firstTimestamp") or e.get("eventTime")
        last = e.get("lastTimestamp") or first
        count = int(e.get("count") or 0)
        if count > 1:
            interval = f"{since(last, now)} (x{count} over {since(first, now)})"
        else:
            interval = since(first, now)
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                   f"{(e.get('message') or '').strip()}\n")


# ---- containers and pod templates -------------------------------------------------------

def _ports(ports: list[Obj] | None, host: bool) -> str:
    if not ports:
        return "<none>"
    return ", ".join(f"{p.get('hostPort', 0) if host else p.get('containerPort')}/{p.get('protocol', 'TCP')}"
                     for p in ports)


def _probe(p: Obj) -> str:
    attrs = (f"delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
             f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
             f"#failure={p.get('failureThreshold', 3)}")
    if p.get("exec"):
        return f"exec [{' '.join(p['exec'].get('command') or [])}] {attrs}"
    if p.get("httpGet"):
        h = p["httpGet"]
        scheme = (h.get("scheme") or "HTTP").lower()
        return f"http-get {scheme}://{h.get('host', '')}:{h.get('port', '')}{h.get('path', '')} {attrs}"
    if p.get("tcpSocket"):
        t = p["tcpSocket"]
        return f"tcp-socket {t.get('host', '')}:{t.get('port', '')} {attrs}"
    if p.get("grpc"):
        return f"grpc <pod>:{p['grpc'].get('port')} {p['grpc'].get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _state(w: _W, name: str, st: Obj | None) -> None:
    st = st or {}
    if st.get("running") is not None:
        w.write(2, f"{name}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z(st['running'].get('startedAt'))}\n")
    elif st.get("waiting") is not None:
        w.write(2, f"{name}:\tWaiting\n")
        if st["waiting"].get("reason"):
            w.write(3, f"Reason:\t{st['waiting']['reason']}\n")
    elif st.get("terminated") is not None:
        t = st["terminated"]
        w.write(2, f"{name}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{name}:\tWaiting\n")


def _env(w: _W, c: Obj) -> None:
    env = c.get("env") or []
    if c.get("envFrom"):
        w.write(2, "Environment Variables from:\n")
        for ef in c["envFrom"]:
            if ef.get("configMapRef"):
                kind, ref = "ConfigMap", ef["configMapRef"]
            else:
                kind, ref = "Secret", ef.get("secretRef") or {}
            opt = "true" if ref.get("optional") else "false"
            prefix = f" with prefix '{ef['prefix']}'" if ef.get("prefix") else ""
            w.write(3, f"{ref.get('name', '')}\t{kind}{prefix}\tOptional: {opt}\n")
    if not env:
        w.write(2, "Environment:\t<none>\n")
        return
    w.write(2, "Environment:\n")
    for e in env:
        if "valueFrom" not in e:
            for i, line in enumerate(str(e.get("value", "")).split("\n")):
                w.write(3, f"{e['name']}:\t{line}\n" if i == 0 else f"\t{line}\n")
            continue
        vf = e["valueFrom"]
        if vf.get("fieldRef"):
            fr = vf["fieldRef"]
            w.write(3, f"{e['name']}:\t ({fr.get('apiVersion', 'v1')}:{fr.get('fieldPath')})\n")
        elif vf.get("resourceFieldRef"):
            rf = vf["resourceFieldRef"]
            w.write(3, f"{e['name']}:\t{rf.get('resource')}\n")
        elif vf.get("secretKeyRef"):
            r = vf["secretKeyRef"]
            w.write(3, f"{e['name']}:\t<set to the key '{r.get('key')}' in secret '{r.get('name')}'>\t"
                       f"Optional: {'true' if r.get('optional') else 'false'}\n")
        elif vf.get("configMapKeyRef"):
            r = vf["configMapKeyRef"]
            w.write(3, f"{e['name']}:\t<set to the key '{r.get('key')}' of config map '{r.get('name')}'>\t"
                       f"Optional: {'true' if r.get('optional') else 'false'}\n")


def _containers(w: _W, label: str, containers: list[Obj], statuses: list[Obj] | None,
                space: str) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:\n")
    for c in containers:
        st = by_name.get(c.get("name"))
        ok = statuses is not None and st is not None
        w.write(1, f"{' ' if space else ''}{c.get('name')}:\n")
        if ok:
            w.write(2, f"Container ID:\t{st.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if ok:
            w.write(2, f"Image ID:\t{st.get('imageID', '')}\n")
        ports = _ports(c.get("ports"), False)
        w.write(2, f"{'Ports' if ',' in ports else 'Port'}:\t{ports}\n")
        hports = _ports(c.get("ports"), True)
        w.write(2, f"{'Host Ports' if ',' in hports else 'Host Port'}:\t{hports}\n")
        for key, title in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                w.write(2, f"{title}:\n")
                for arg in c[key]:
                    for line in str(arg).split("\n"):
                        w.write(3, f"{line}\n")
        if ok:
            _state(w, "State", st.get("state"))
            if (st.get("lastState") or {}).get("terminated"):
                _state(w, "Last State", st["lastState"])
            w.write(2, f"Ready:\t{'True' if st.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{st.get('restartCount', 0)}\n")
        res = c.get("resources") or {}
        for kind, title in (("limits", "Limits"), ("requests", "Requests")):
            if res.get(kind):
                w.write(2, f"{title}:\n")
                for k in sorted(res[kind]):
                    w.write(3, f"{k}:\t{res[kind][k]}\n")
        for key, title in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                           ("startupProbe", "Startup")):
            if c.get(key):
                w.write(2, f"{title}:\t{_probe(c[key])}\n")
        _env(w, c)
        mounts = c.get("volumeMounts") or []
        if not mounts:
            w.write(2, "Mounts:\t<none>\n")
        else:
            w.write(2, "Mounts:\n")
            for m in sorted(mounts, key=lambda m: m.get("mountPath", "")):
                flags = "ro" if m.get("readOnly") else "rw"
                if m.get("subPath"):
                    flags += f",path=\"{m['subPath']}\""
                w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({flags})\n")


def _volumes(w: _W, volumes: list[Obj] | None, space: str) -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in volumes:
        nameIndent = " " if space else ""
        w.write(1, f"{nameIndent}{v.get('name')}:\n")
        if "emptyDir" in v:
            ed = v.get("emptyDir") or {}
            w.write(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n")
            w.write(2, f"Medium:\t{ed.get('medium', '')}\n")
            w.write(2, f"SizeLimit:\t{ed.get('sizeLimit', '<unset>')}\n")
        elif "configMap" in v:
            cm = v["configMap"] or {}
            w.write(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n")
            w.write(2, f"Name:\t{cm.get('name', '')}\n")
            w.write(2, f"Optional:\t{'true' if cm.get('optional') else 'false'}\n")
        elif "secret" in v:
            s = v["secret"] or {}
            w.write(2, "Type:\tSecret (a volume populated by a Secret)\n")
            w.write(2, f"SecretName:\t{s.get('secretName', '')}\n")
            w.write(2, f"Optional:\t{'true' if s.get('optional') else 'false'}\n")
        elif "hostPath" in v:
            hp = v["hostPath"] or {}
            w.write(2, "Type:\tHostPath (bare host directory volume)\n")
            w.write(2, f"Path:\t{hp.get('path', '')}\n")
            w.write(2, f"HostPathType:\t{hp.get('type', '')}\n")
        elif "persistentVolumeClaim" in v:
            pvc = v["persistentVolumeClaim"] or {}
            w.write(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n")
            w.write(2, f"ClaimName:\t{pvc.get('claimName', '')}\n")
            w.write(2, f"ReadOnly:\t{'true' if pvc.get('readOnly') else 'false'}\n")
        else:
            kind = next((k for k in v if k != "name"), "Unknown")
            w.write(2, f"Type:\t{kind}\n")


def _pod_template(w: _W, template: Obj | None) -> None:
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, "<unset>")
        return
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    _labels(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        _annotations(w, "  Annotations", meta.get("annotations"))
    if spec.get("serviceAccountName"):
        w.write(0, f"  Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], None, "  ")
    _containers(w, "Containers", spec.get("containers") or [], None, "  ")
    _volumes(w, spec.get("volumes"), "  ")
    if spec.get("priorityClassName"):
        w.write(0, f"  Priority Class Name:\t{spec['priorityClassName']}\n")
    _labels(w, "  Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"), "  ")


def _pods_status(ctx: Context, obj: Obj) -> str:
    """`N Running / N Waiting / N Succeeded / N Failed` over the pods this object controls."""
    m = obj["metadata"]
    sel = selector_to_string((obj.get("spec") or {}).get("selector") or {}) or None
    try:
        pods = ctx.client.list("pods", m.get("namespace"), label_selector=sel)["items"]
    except ApiError:
        pods = []
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for p in pods:
        ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
        if not ref or ref.get("uid") != m.get("uid"):
            continue
        phase = (p.get("status") or {}).get("phase", "Pending")
        if phase in counts:
            counts[phase] += 1
    return (f"{counts['Running']} Running / {counts['Pending']} Waiting / {counts['Succeeded']} "
            f"Succeeded / {counts['Failed']} Failed")


# ---- the describers ----------------------------------------------------------------------

def _head(w: _W, obj: Obj, *, namespace: bool = True) -> None:
    m = obj["metadata"]
    w.write(0, f"Name:\t{m['name']}\n")
    if namespace and m.get("namespace"):
        w.write(0, f"Namespace:\t{m['namespace']}\n")


def _head_and_metadata(w: _W, obj: Obj) -> None:
    """Name, Namespace, Labels and Annotations: how most of kubectl's describe layouts begin."""
    _head(w, obj)
    m = obj["metadata"]
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))


def describe_pod(ctx: Context, pod: Obj, events: list[Obj] | None) -> str:
    now = ctx.clock.now()
    w = _W()
    m, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    w.write(0, f"Name:\t{m['name']}\n")
    w.write(0, f"Namespace:\t{m.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if not spec.get("nodeName"):
        w.write(0, "Node:\t<none>\n")
    else:
        w.write(0, f"Node:\t{spec['nodeName']}/{st.get('hostIP', '')}\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(st['startTime'])}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    if m.get("deletionTimestamp"):
        w.write(0, f"Status:\tTerminating (lasts {until(m['deletionTimestamp'], now)})\n")
        w.write(0, f"Termination Grace Period:\t{m.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{st.get('phase', '')}\n")
    if st.get("reason"):
        w.write(0, f"Reason:\t{st['reason']}\n")
    if st.get("message"):
        w.write(0, f"Message:\t{st['message']}\n")
    w.write(0, f"IP:\t{st.get('podIP', '')}\n")
    if not st.get("podIPs"):
        w.write(0, "IPs:\t<none>\n")
    else:
        w.write(0, "IPs:\n")
        for ip in st["podIPs"]:
            w.write(0, f"  IP:\t{ip.get('ip', '')}\n")
    owner = _controlled_by(pod)
    if owner:
        w.write(0, f"Controlled By:\t{owner}\n")
    if st.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{st['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], st.get("initContainerStatuses") or [], "")
    _containers(w, "Containers", spec.get("containers") or [], st.get("containerStatuses") or [], "")
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for g in spec["readinessGates"]:
            status = next((c.get("status") for c in st.get("conditions") or []
                           if c.get("type") == g.get("conditionType")), "<none>")
            w.write(1, f"{g.get('conditionType')} \t{status} \n")
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    _volumes(w, spec.get("volumes"), "")
    w.write(0, f"QoS Class:\t{qos_class(pod)}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"))
    describe_events(w, events, now)
    return w.text()


def _rs_summary(rss: list[Obj]) -> str:
    if not rss:
        return "<none>"
    return ", ".join(f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}/"
                     f"{(r.get('spec') or {}).get('replicas', 0)} replicas created)" for r in rss)


def _template_equal(a: Obj | None, b: Obj | None) -> bool:
    import copy
    a, b = copy.deepcopy(a or {}), copy.deepcopy(b or {})
    for t in (a, b):
        ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
    return a == b


def describe_deployment(ctx: Context, d: Obj, events: list[Obj] | None) -> str:
    now = ctx.clock.now()
    w = _W()
    m, spec, st = d["metadata"], d.get("spec") or {}, d.get("status") or {}
    _head(w, d)
    w.write(0, f"CreationTimestamp:\t{rfc1123z(m.get('creationTimestamp'))}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    w.write(0, f"Selector:\t{_selector(spec.get('selector'))}\n")
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {st.get('updatedReplicas', 0)} updated | "
               f"{st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} available | "
               f"{st.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', '')}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    ru = strategy.get("rollingUpdate")
    if ru is not None:
        w.write(0, f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, "
                   f"{ru.get('maxSurge', '25%')} max surge\n")
    _pod_template(w, spec.get("template"))
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")
    try:
        rss = [r for r in ctx.client.list("replicasets", m.get("namespace"))["items"]
               if any(o.get("controller") and o.get("uid") == m.get("uid")
                      for o in r["metadata"].get("ownerReferences") or [])]
    except ApiError:
        rss = None
    if rss is not None and rss:
        new = [r for r in rss if _template_equal((r.get("spec") or {}).get("template"), spec.get("template"))]
        old = [r for r in rss if r not in new and ((r.get("spec") or {}).get("replicas") or
                                                   (r.get("status") or {}).get("replicas"))]
        w.write(0, f"OldReplicaSets:\t{_rs_summary(old)}\n")
        w.write(0, f"NewReplicaSet:\t{_rs_summary(new[:1])}\n")
    describe_events(w, events, now)
    return w.text()


def describe_replicaset(ctx: Context, rs: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m, spec, st = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    _head(w, rs)
    w.write(0, f"Selector:\t{_selector(spec.get('selector'))}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    owner = _controlled_by(rs)
    if owner:
        w.write(0, f"Controlled By:\t{owner}\n")
    w.write(0, f"Replicas:\t{st.get('replicas', 0)} current / {spec.get('replicas', 1)} desired\n")
    w.write(0, f"Pods Status:\t{_pods_status(ctx, rs)}\n")
    _pod_template(w, spec.get("template"))
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")
    describe_events(w, events, ctx.clock.now())
    return w.text()


def describe_daemonset(ctx: Context, ds: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m, spec, st = ds["metadata"], ds.get("spec") or {}, ds.get("status") or {}
    w.write(0, f"Name:\t{m['name']}\n")
    w.write(0, f"Selector:\t{_selector(spec.get('selector'))}\n")
    ns = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    w.write(0, f"Node-Selector:\t{_map_selector(ns)}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    w.write(0, f"Desired Number of Nodes Scheduled: {st.get('desiredNumberScheduled', 0)}\n")
    w.write(0, f"Current Number of Nodes Scheduled: {st.get('currentNumberScheduled', 0)}\n")
    w.write(0, f"Number of Nodes Scheduled with Up-to-date Pods: {st.get('updatedNumberScheduled', 0)}\n")
    w.write(0, f"Number of Nodes Scheduled with Available Pods: {st.get('numberAvailable', 0)}\n")
    w.write(0, f"Number of Nodes Misscheduled: {st.get('numberMisscheduled', 0)}\n")
    w.write(0, f"Pods Status:\t{_pods_status(ctx, ds)}\n")
    _pod_template(w, spec.get("template"))
    describe_events(w, events, ctx.clock.now())
    return w.text()


def describe_job(ctx: Context, job: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m, spec, st = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    _head(w, job)
    w.write(0, f"Selector:\t{_selector(spec.get('selector'))}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    owner = _controlled_by(job)
    if owner:
        w.write(0, f"Controlled By:\t{owner}\n")
    w.write(0, f"Parallelism:\t{spec.get('parallelism', 1)}\n")
    w.write(0, f"Completions:\t{spec['completions'] if spec.get('completions') is not None else '<unset>'}\n")
    if spec.get("completionMode"):
        w.write(0, f"Completion Mode:\t{spec['completionMode']}\n")
    if spec.get("suspend") is not None:
        w.write(0, f"Suspend:\t{'true' if spec['suspend'] else 'false'}\n")
    if spec.get("backoffLimit") is not None:
        w.write(0, f"Backoff Limit:\t{spec['backoffLimit']}\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(st['startTime'])}\n")
    if st.get("completionTime"):
        w.write(0, f"Completed At:\t{rfc1123z(st['completionTime'])}\n")
    if st.get("startTime") and st.get("completionTime"):
        d = (parse_time(st["completionTime"]) or 0) - (parse_time(st["startTime"]) or 0)
        w.write(0, f"Duration:\t{human_duration(d)}\n")
    if spec.get("activeDeadlineSeconds") is not None:
        w.write(0, f"Active Deadline Seconds:\t{spec['activeDeadlineSeconds']}s\n")
    if st.get("ready") is None:
        w.write(0, f"Pods Statuses:\t{st.get('active', 0)} Active / {st.get('succeeded', 0)} Succeeded / "
                   f"{st.get('failed', 0)} Failed\n")
    else:
        w.write(0, f"Pods Statuses:\t{st.get('active', 0)} Active ({st.get('ready', 0)} Ready) / "
                   f"{st.get('succeeded', 0)} Succeeded / {st.get('failed', 0)} Failed\n")
    _pod_template(w, spec.get("template"))
    describe_events(w, events, ctx.clock.now())
    return w.text()


def _endpoints_text(ctx: Context, svc: Obj, port: Obj) -> str:
    m = svc["metadata"]
    try:
        ep = ctx.client.get("endpoints", m["name"], m.get("namespace"))
    except ApiError:
        return "<none>"
    out = []
    for s in ep.get("subsets") or []:
        for p in s.get("ports") or []:
            if (p.get("name") or "") != (port.get("name") or ""):
                continue
            for a in s.get("addresses") or []:
                out.append(f"{a.get('ip')}:{p.get('port')}")
    if not out:
        return "<none>"
    return ",".join(out[:3]) + (f" + {len(out) - 3} more..." if len(out) > 3 else "")


def describe_service(ctx: Context, svc: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m, spec, st = svc["metadata"], svc.get("spec") or {}, svc.get("status") or {}
    _head_and_metadata(w, svc)
    w.write(0, f"Selector:\t{_map_selector(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (st.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(i.get('ip') or i.get('hostname', '') for i in ingress)}\n")
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol", "TCP")
        w.write(0, f"Port:\t{name}\t{p.get('port')}/{proto}\n")
        tp = p.get("targetPort", p.get("port"))
        w.write(0, f"TargetPort:\t{tp}/{proto}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{proto}\n")
        w.write(0, f"Endpoints:\t{_endpoints_text(ctx, svc, p)}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    describe_events(w, events, ctx.clock.now())
    return w.text()


def describe_namespace(ctx: Context, ns: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m = ns["metadata"]
    w.write(0, f"Name:\t{m['name']}\n")
    _labels(w, "Labels", m.get("labels"))
    _annotations(w, "Annotations", m.get("annotations"))
    w.write(0, f"Status:\t{(ns.get('status') or {}).get('phase', '')}\n")
    return w.text()


def describe_configmap(ctx: Context, cm: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m = cm["metadata"]
    _head_and_metadata(w, cm)
    w.write(0, "\nData\n====\n")
    for k in sorted(cm.get("data") or {}):
        w.write(0, f"{k}:\n----\n{cm['data'][k]}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    for k in sorted(cm.get("binaryData") or {}):
        import base64
        w.write(0, f"{k}: {len(base64.b64decode(cm['binaryData'][k]))} bytes\n")
    w.write(0, "\n")
    describe_events(w, events, ctx.clock.now())
    return w.text()


def describe_secret(ctx: Context, s: Obj, events: list[Obj] | None) -> str:
    import base64
    w = _W()
    m = s["metadata"]
    _head_and_metadata(w, s)
    w.write(0, f"\nType:\t{s.get('type', 'Opaque')}\n\n")
    w.write(0, "Data\n====\n")
    for k in sorted(s.get("data") or {}):
        v = base64.b64decode(s["data"][k] or "")
        if s.get("type") == "kubernetes.io/service-account-token" and k == "token":
            w.write(0, f"{k}:\t{v.decode(errors='replace')}\n")
        else:
            w.write(0, f"{k}:\t{len(v)} bytes\n")
    return w.text()


def describe_node(ctx: Context, n: Obj, events: list[Obj] | None) -> str:
    now = ctx.clock.now()
    w = _W()
    m, spec, st = n["metadata"], n.get("spec") or {}, n.get("status") or {}
    labels = m.get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    w.write(0, f"Name:\t{m['name']}\n")
    w.write(0, f"Roles:\t{','.join(roles) or '<none>'}\n")
    _labels(w, "Labels", labels)
    _annotations(w, "Annotations", m.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(m.get('creationTimestamp'))}\n")
    _taints(w, "Taints", spec.get("taints"))
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    try:
        lease = ctx.client.get("leases", m["name"], "kube-node-lease")
        ls = lease.get("spec") or {}
        w.write(0, "Lease:\n")
        w.write(0, f"  HolderIdentity:\t{ls.get('holderIdentity') or '<unset>'}\n")
        w.write(0, f"  AcquireTime:\t{rfc1123z(ls['acquireTime']) if ls.get('acquireTime') else '<unset>'}\n")
        w.write(0, f"  RenewTime:\t{rfc1123z(ls['renewTime']) if ls.get('renewTime') else '<unset>'}\n")
    except ApiError as e:
        w.write(0, f"Lease:\tFailed to get lease: {e.message}\n")
    if st.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(0, "  ----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in st["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                       f"{c.get('message', '')}\n")
    w.write(0, "Addresses:\n")
    for a in st.get("addresses") or []:
        w.write(0, f"  {a.get('type')}:\t{a.get('address')}\n")

    def resources(title: str, rl: Obj | None) -> None:
        if rl:
            w.write(0, f"{title}:\n")
            for k in sorted(rl):
                w.write(1, f"{k}:\t{rl[k]}\n")
    resources("Capacity", st.get("capacity"))
    resources("Allocatable", st.get("allocatable"))
    info = st.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for title, key in (("Machine ID", "machineID"), ("System UUID", "systemUUID"), ("Boot ID", "bootID"),
                       ("Kernel Version", "kernelVersion"), ("OS Image", "osImage"),
                       ("Operating System", "operatingSystem"), ("Architecture", "architecture"),
                       ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion"), ("Kube-Proxy Version", "kubeProxyVersion")):
        w.write(0, f"  {title}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    from kbox.cli.util import list_filtered
    try:
        pods = list_filtered(ctx.client, "pods", None, f"spec.nodeName={m['name']},status.phase!=Succeeded,"
                                                        f"status.phase!=Failed")
    except ApiError:
        pods = []
    alloc = st.get("allocatable") or {}
    acpu = quantity(alloc.get("cpu", 0)) * 1000
    amem = quantity(alloc.get("memory", 0))

    def pct(v: float, total: float) -> int:
        return int(v / total * 100) if total else 0
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    tot = {"rc": 0.0, "lc": 0.0, "rm": 0.0, "lm": 0.0, "re": 0.0, "le": 0.0}
    for p in pods:
        req, lim = pod_requests_limits(p)
        rc, lc = req.get("cpu", 0) * 1000, lim.get("cpu", 0) * 1000
        rm, lm = req.get("memory", 0), lim.get("memory", 0)
        tot["rc"] += rc; tot["lc"] += lc; tot["rm"] += rm; tot["lm"] += lm
        tot["re"] += req.get("ephemeral-storage", 0); tot["le"] += lim.get("ephemeral-storage", 0)
        w.write(1, f"{p['metadata'].get('namespace', '')}\t{p['metadata']['name']}\t\t"
                   f"{_cpu_str(int(rc))} ({pct(rc, acpu)}%)\t{_cpu_str(int(lc))} ({pct(lc, acpu)}%)\t"
                   f"{_mem_str(int(rm))} ({pct(rm, amem)}%)\t{_mem_str(int(lm))} ({pct(lm, amem)}%)\t"
                   f"{since(p['metadata'].get('creationTimestamp'), now)}\n")
    w.write(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    w.write(1, f"cpu\t{_cpu_str(int(tot['rc']))} ({pct(tot['rc'], acpu)}%)\t"
               f"{_cpu_str(int(tot['lc']))} ({pct(tot['lc'], acpu)}%)\n")
    w.write(1, f"memory\t{_mem_str(int(tot['rm']))} ({pct(tot['rm'], amem)}%)\t"
               f"{_mem_str(int(tot['lm']))} ({pct(tot['lm'], amem)}%)\n")
    aeph = quantity(alloc.get("ephemeral-storage", 0))
    w.write(1, f"ephemeral-storage\t{_mem_str(int(tot['re']))} ({pct(tot['re'], aeph)}%)\t"
               f"{_mem_str(int(tot['le']))} ({pct(tot['le'], aeph)}%)\n")
    describe_events(w, events, now)
    return w.text()


def describe_endpoints(ctx: Context, ep: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m = ep["metadata"]
    _head_and_metadata(w, ep)
    w.write(0, "Subsets:\n")
    for sub in ep.get("subsets") or []:
        ready = ",".join(a.get("ip", "") for a in sub.get("addresses") or []) or "<none>"
        not_ready = ",".join(a.get("ip", "") for a in sub.get("notReadyAddresses") or []) or "<none>"
        w.write(1, f"Addresses:\t{ready}\n")
        w.write(1, f"NotReadyAddresses:\t{not_ready}\n")
        if sub.get("ports"):
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for p in sub["ports"]:
                w.write(2, f"{p.get('name') or '<unset>'}\t{p.get('port')}\t{p.get('protocol', 'TCP')}\n")
        w.write(0, "\n")
    describe_events(w, events, ctx.clock.now())
    return w.text()


def describe_serviceaccount(ctx: Context, sa: Obj, events: list[Obj] | None) -> str:
    w = _W()
    m = sa["metadata"]
    _head_and_metadata(w, sa)
    try:
        secrets = ctx.client.list("secrets", m.get("namespace"))["items"]
    except ApiError:
        secrets = []
    existing = {x["metadata"]["name"] for x in secrets}

    def named(refs: list[Obj] | None) -> list[str]:
        return [r.get("name", "") + ("" if r.get("name") in existing else " (not found)") for r in refs or []]
    tokens = [x["metadata"]["name"] for x in secrets
              if x.get("type") == "kubernetes.io/service-account-token"
              and (x["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name") == m["name"]]
    # kubectl's three headers, in their sorted order, padded to one width
    for header, names in (("Image pull secrets:", named(sa.get("imagePullSecrets"))),
                          ("Mountable secrets: ", named(sa.get("secrets"))),
                          ("Tokens:            ", tokens)):
        if not names:
            w.write(0, f"{header}\t<none>\n")
        for i, n in enumerate(names):
            w.write(0, f"{header if i == 0 else ' ' * 19}\t{n}\n")
    describe_events(w, events, ctx.clock.now())
    return w.text()


def _words(key: str) -> str:
    """`clusterIP` → `Cluster IP`, as kubectl's generic describer titles fields."""
    parts = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+", key)
    return " ".join(p[:1].upper() + p[1:] for p in parts) or key


def _generic_value(w: _W, level: int, key: str, value: Any) -> None:
    if isinstance(value, dict):
        w.write(level, f"{_words(key)}:\n")
        for k in sorted(value):
            _generic_value(w, level + 1, k, value[k])
    elif isinstance(value, list):
        w.write(level, f"{_words(key)}:\n")
        for item in value:
            if isinstance(item, dict):
                first = True
                for k in sorted(item):
                    if first:
                        w.write(level + 1, "")
                    _generic_value(w, level + 1, k, item[k])
                    first = False
            else:
                w.write(level + 1, f"{item}\n")
    else:
        v = "true" if value is True else "false" if value is False else value
        w.write(level, f"{_words(key)}:\t{v}\n")


def describe_generic(ctx: Context, obj: Obj, events: list[Obj] | None) -> str:
    """kubectl's generic describer: metadata first, then every other field."""
    w = _W()
    m = obj["metadata"]
    _head_and_metadata(w, obj)
    w.write(0, f"API Version:\t{obj.get('apiVersion', '')}\n")
    for k in sorted(obj):
        if k in ("apiVersion", "kind", "metadata"):
            continue
        _generic_value(w, 0, k, obj[k])
    w.write(0, f"Kind:\t{obj.get('kind', '')}\n") if False else None
    describe_events(w, events, ctx.clock.now())
    return w.text()


DESCRIBERS: dict[str, Callable[[Context, Obj, list[Obj] | None], str]] = {
    "pods": describe_pod, "deployments": describe_deployment, "replicasets": describe_replicaset,
    "daemonsets": describe_daemonset, "jobs": describe_job, "services": describe_service,
    "namespaces": describe_namespace, "configmaps": describe_configmap, "secrets": describe_secret,
    "nodes": describe_node, "endpoints": describe_endpoints, "serviceaccounts": describe_serviceaccount,
}
NO_EVENTS = {"namespaces", "secrets"}


def describe_object(ctx: Context, plural: str, obj: Obj, show_events: bool = True) -> str:
    """The describe text of one object (the dashboard's describe view calls this too)."""
    events = events_for(ctx, obj) if show_events and plural not in NO_EVENTS else None
    return DESCRIBERS.get(plural, describe_generic)(ctx, obj, events)


def _describe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", nargs="+", help="TYPE [NAME_PREFIX...] or TYPE/NAME")
    p.add_argument("-n", "--namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--show-events", default="true", choices=["true", "false"])
    p.add_argument("-f", "--filename", action="append", default=[])


@command("describe", "Show details of a specific resource or group of resources",
         arguments=_describe_args, usage="describe pod web-abc")
def cmd_describe(ctx: Context, args: argparse.Namespace) -> int:
    from kbox.cli.util import targets
    ns = None if args.all_namespaces else (args.namespace or ctx.namespace)
    show_events = args.show_events == "true"
    pairs = targets(args.resource)
    texts: list[str] = []
    rc = 0
    for info, name in pairs:
        rns = ns if info.namespaced else None
        try:
            if name is not None:
                try:
                    objs = [ctx.client.get(info.plural, name, rns or ctx.namespace if info.namespaced else None)]
                except ApiError as e:
                    if e.code != 404:
                        raise
                    # kubectl describes every object whose name starts with NAME
                    objs = [o for o in ctx.client.list(info.plural, rns, label_selector=args.selector)["items"]
                            if o["metadata"]["name"].startswith(name)]
                    if not objs:
                        raise
            else:
                objs = ctx.client.list(info.plural, rns, label_selector=args.selector)["items"]
                if not objs:
                    where = "" if not rns else f" in {rns} namespace"
                    ctx.err.write(f"No resources found{where}.\n")
                    continue
        except ApiError as e:
            from kbox.cli.util import api_error_text
            ctx.err.write(api_error_text(e) + "\n")
            rc = 1
            continue
        for o in objs:
            o.setdefault("kind", info.kind)
            o.setdefault("apiVersion", info.api_version)
            texts.append(describe_object(ctx, info.plural, o, show_events))
    if texts:
        ctx.out.write("\n\n".join(t.rstrip("\n") for t in texts) + "\n")
    return rc


__all__ = ["DESCRIBERS", "cmd_describe", "describe_object", "rfc1123z"]

from kbox.cli.registry import COMMANDS as _COMMANDS

DESCRIBE_COMMAND = _COMMANDS["describe"]
