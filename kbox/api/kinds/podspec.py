"""Pod spec defaulting and validation, shared by Pods and every pod template
(Deployment, ReplicaSet, DaemonSet, Job).

Defaults are Kubernetes' SetDefaults_PodSpec / SetDefaults_Container: the
values `kubectl get -o yaml` shows on an object the user never wrote them
into. Pod-only defaults (enableServiceLinks, priority, requests copied from
limits) are applied by `default_pod`, not to templates, as in Kubernetes.

Validation assumes the shape already passed the pydantic models (types are
right) and checks the semantic rules with Kubernetes' field paths and words.
"""

from __future__ import annotations

import re
from typing import Any

from kbox.api.kinds.common import (Cause, duplicate, enum, forbidden, get, invalid, non_negative,
                                   not_found, required, unsupported)
from kbox.api.quantity import QuantityError, parse_nanos
from kbox.api.validation import (dns_label_errors, label_value_errors, qualified_name_errors,
                                 validate_labels)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
NODE_SELECTOR_OPS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")

UPDATABLE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
                 "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                 "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                 "(allow it to be set to 1 if it was previously negative)")


# ---- defaults -----------------------------------------------------------------------

def pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, IfNotPresent for a tag or digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _default_handler(h: Any) -> None:
    if isinstance(h, dict):
        hg = h.get("httpGet")
        if isinstance(hg, dict):
            hg.setdefault("path", "/")
            hg.setdefault("scheme", "HTTP")


def default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "imagePullPolicy" not in c and isinstance(c.get("image"), str):
        c["imagePullPolicy"] = pull_policy(c["image"])
    for p in c.get("ports") or ():
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for name in PROBES:
        probe = c.get(name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            _default_handler(probe)
    lc = c.get("lifecycle")
    if isinstance(lc, dict):
        _default_handler(lc.get("postStart"))
        _default_handler(lc.get("preStop"))
    for e in c.get("env") or ():
        fr = get(e, "valueFrom", "fieldRef")
        if isinstance(fr, dict):
            fr.setdefault("apiVersion", "v1")


def _default_volume(v: dict[str, Any]) -> None:
    for src in ("secret", "configMap", "projected", "downwardAPI"):
        s = v.get(src)
        if isinstance(s, dict):
            s.setdefault("defaultMode", 420)


def default_pod_spec(spec: dict[str, Any], *, restart_policy: bool = True) -> None:
    """SetDefaults_PodSpec and SetDefaults_Container, in place (pods and templates)."""
    if restart_policy:
        spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                default_container(c)
    for v in spec.get("volumes") or ():
        if isinstance(v, dict):
            _default_volume(v)


def default_pod(spec: dict[str, Any]) -> None:
    """Pod-only defaults: SetDefaults_Pod and what the Priority admission plugin sets."""
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    if "priority" not in spec and not spec.get("priorityClassName"):
        spec["priority"] = 0
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # requests default to limits, resource by resource
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            res = c.get("resources") if isinstance(c, dict) else None
            if isinstance(res, dict) and isinstance(res.get("limits"), dict) and res["limits"]:
                req = res.get("requests")
                if not isinstance(req, dict):
                    req = res["requests"] = {}
                for r, q in res["limits"].items():
                    req.setdefault(r, q)


def _positive_amount(q: Any) -> bool:
    try:
        return parse_nanos(q) > 0
    except QuantityError:
        return False


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, from cpu and memory requests and limits."""
    any_set = False
    guaranteed = True
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            res = (c.get("resources") or {}) if isinstance(c, dict) else {}
            requests = {r: q for r, q in (res.get("requests") or {}).items()
                        if r in ("cpu", "memory") and _positive_amount(q)}
            limits = {r: q for r, q in (res.get("limits") or {}).items()
                      if r in ("cpu", "memory") and _positive_amount(q)}
            if requests or limits:
                any_set = True
            if set(limits) != {"cpu", "memory"}:
                guaranteed = False
                continue
            for r, q in requests.items():
                if parse_nanos(q) != parse_nanos(limits[r]):
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# ---- validation ---------------------------------------------------------------------

_SVC_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")


def port_name_errors(name: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 characters, lowercase letters, digits and single '-'."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not _SVC_NAME_CHARS.match(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number(out: list[Cause], field: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, int) and not (0 if allow_zero else 1) <= value <= 65535:
        lo = 0 if allow_zero else 1
        out.append(invalid(field, value, f"must be between {lo} and 65535, inclusive"))


def _int_or_name_port(out: list[Cause], field: str, value: Any) -> None:
    if value is None:
        out.append(required(field))
    elif isinstance(value, int):
        port_number(out, field, value)
    else:
        for e in port_name_errors(value):
            out.append(invalid(field, value, e))


def _validate_handler(out: list[Cause], h: dict[str, Any], field: str) -> None:
    present = [k for k in HANDLERS if h.get(k) is not None]
    if not present:
        out.append(required(field, "must specify a handler type"))
    elif len(present) > 1:
        out.append(forbidden(f"{field}.{present[1]}", "may not specify more than 1 handler type"))
    if h.get("httpGet") is not None:
        _int_or_name_port(out, f"{field}.httpGet.port", h["httpGet"].get("port"))
        enum(out, f"{field}.httpGet.scheme", h["httpGet"].get("scheme"), ("HTTP", "HTTPS"))
    if h.get("tcpSocket") is not None:
        _int_or_name_port(out, f"{field}.tcpSocket.port", h["tcpSocket"].get("port"))
    if h.get("exec") is not None and not h["exec"].get("command"):
        out.append(required(f"{field}.exec.command"))
    if h.get("grpc") is not None:
        port_number(out, f"{field}.grpc.port", h["grpc"].get("port"))


def _validate_probe(out: list[Cause], probe: dict[str, Any], field: str, kind: str) -> None:
    _validate_handler(out, probe, field)
    for k in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
              "failureThreshold"):
        non_negative(out, f"{field}.{k}", probe.get(k))
    st = probe.get("successThreshold")
    if kind in ("livenessProbe", "startupProbe") and isinstance(st, int) and st != 1:
        out.append(invalid(f"{field}.successThreshold", st, "must be 1"))


_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "pods"})


def _validate_resources(out: list[Cause], res: dict[str, Any], field: str) -> None:
    parsed: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        parsed[part] = {}
        for r, q in (res.get(part) or {}).items():
            f = f"{field}.{part}[{r}]"
            if r not in _STANDARD_RESOURCES:
                for e in qualified_name_errors(r):
                    out.append(invalid(f"{field}.{part}", r, e))
            try:
                v = parse_nanos(q)
            except QuantityError as e:
                out.append(invalid(f, q, str(e)))
                continue
            if v < 0:
                out.append(invalid(f, q, "must be greater than or equal to 0"))
                continue
            parsed[part][r] = v
    for r, req in parsed["requests"].items():
        lim = parsed["limits"].get(r)
        if lim is not None and req > lim:
            out.append(invalid(f"{field}.requests", res["requests"][r],
                               f"must be less than or equal to {r} limit of {res['limits'][r]}"))


def _validate_env(out: list[Cause], env: list[dict[str, Any]], field: str) -> None:
    for i, e in enumerate(env):
        f = f"{field}[{i}]"
        if not e.get("name"):
            out.append(required(f"{f}.name"))
        vf = e.get("valueFrom")
        if vf is None:
            continue
        sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                   if vf.get(k) is not None]
        if e.get("value"):
            out.append(invalid(f"{f}.valueFrom", "", "may not be specified when `value` is not empty"))
        if not sources:
            out.append(invalid(f"{f}.valueFrom", "", "must specify one of: `fieldRef`, "
                               "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif len(sources) > 1:
            out.append(invalid(f"{f}.valueFrom", "", "may not have more than one field specified at a time"))
        for k in ("configMapKeyRef", "secretKeyRef"):
            ref = vf.get(k)
            if ref is not None and not ref.get("key"):
                out.append(required(f"{f}.valueFrom.{k}.key"))
        if vf.get("fieldRef") is not None and not vf["fieldRef"].get("fieldPath"):
            out.append(required(f"{f}.valueFrom.fieldRef.fieldPath"))
        if vf.get("resourceFieldRef") is not None and not vf["resourceFieldRef"].get("resource"):
            out.append(required(f"{f}.valueFrom.resourceFieldRef.resource"))


def _validate_container(out: list[Cause], c: dict[str, Any], field: str, volumes: set[str],
                        names: set[str], init: bool) -> None:
    name = c.get("name")
    if not name:
        out.append(required(f"{field}.name"))
    else:
        for e in dns_label_errors(name):
            out.append(invalid(f"{field}.name", name, e))
        if name in names:
            out.append(duplicate(f"{field}.name", name))
        names.add(name)
    if not c.get("image"):
        out.append(required(f"{field}.image"))
    enum(out, f"{field}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES)
    enum(out, f"{field}.terminationMessagePolicy", c.get("terminationMessagePolicy"), MESSAGE_POLICIES)
    port_names: set[str] = set()
    for i, p in enumerate(c.get("ports") or ()):
        pf = f"{field}.ports[{i}]"
        cp = p.get("containerPort")
        if cp is None:
            out.append(required(f"{pf}.containerPort"))
        else:
            port_number(out, f"{pf}.containerPort", cp)
        port_number(out, f"{pf}.hostPort", p.get("hostPort"), allow_zero=True)
        enum(out, f"{pf}.protocol", p.get("protocol"), PROTOCOLS, required_if_empty=True)
        pn = p.get("name")
        if pn:
            for e in port_name_errors(pn):
                out.append(invalid(f"{pf}.name", pn, e))
            if pn in port_names:
                out.append(duplicate(f"{pf}.name", pn))
            port_names.add(pn)
    if c.get("resources"):
        _validate_resources(out, c["resources"], f"{field}.resources")
    if c.get("env"):
        _validate_env(out, c["env"], f"{field}.env")
    for i, vm in enumerate(c.get("volumeMounts") or ()):
        vf = f"{field}.volumeMounts[{i}]"
        if not vm.get("name"):
            out.append(required(f"{vf}.name"))
        elif vm["name"] not in volumes:
            out.append(not_found(f"{vf}.name", vm["name"]))
        if not vm.get("mountPath"):
            out.append(required(f"{vf}.mountPath"))
    for kind in PROBES:
        probe = c.get(kind)
        if probe is None:
            continue
        if init and kind != "startupProbe" and c.get("restartPolicy") != "Always":
            out.append(forbidden(f"{field}.{kind}", "may not be set for init containers"))
            continue
        _validate_probe(out, probe, f"{field}.{kind}", kind)
    lc = c.get("lifecycle")
    if lc:
        for h in ("postStart", "preStop"):
            if lc.get(h) is not None:
                _validate_handler(out, lc[h], f"{field}.lifecycle.{h}")
    if c.get("restartPolicy") is not None:
        if not init:
            out.append(forbidden(f"{field}.restartPolicy",
                                 "may not be set for non-init containers"))
        else:
            enum(out, f"{field}.restartPolicy", c["restartPolicy"], ("Always",))


def validate_tolerations(out: list[Cause], tolerations: list[dict[str, Any]], field: str) -> None:
    for i, t in enumerate(tolerations):
        f = f"{field}[{i}]"
        key, op, value = t.get("key") or "", t.get("operator") or "", t.get("value") or ""
        if key:
            for e in qualified_name_errors(key):
                out.append(invalid(f"{f}.key", key, e))
        elif op != "Exists":
            out.append(invalid(f"{f}.operator", op, "operator must be Exists when `key` is empty, "
                               "which means \"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            out.append(invalid(f"{f}.effect", t.get("effect") or "",
                               "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("", "Equal"):
            for e in label_value_errors(value):
                out.append(invalid(f"{f}.operator", value, e))
        elif op == "Exists":
            if value:
                out.append(invalid(f"{f}.operator", value,
                                   "value must be empty when `operator` is 'Exists'"))
        else:
            out.append(unsupported(f"{f}.operator", op, TOLERATION_OPERATORS))
        enum(out, f"{f}.effect", t.get("effect"), TAINT_EFFECTS)


def _validate_node_selector_term(out: list[Cause], term: dict[str, Any], field: str) -> None:
    for part in ("matchExpressions", "matchFields"):
        for i, r in enumerate(term.get(part) or ()):
            f = f"{field}.{part}[{i}]"
            op, values = r.get("operator"), r.get("values") or []
            if not r.get("key"):
                out.append(required(f"{f}.key"))
            if op in ("In", "NotIn"):
                if not values:
                    out.append(required(f"{f}.values",
                                        "must be specified when `operator` is 'In' or 'NotIn'"))
            elif op in ("Exists", "DoesNotExist"):
                if values:
                    out.append(forbidden(f"{f}.values", "may not be specified when `operator` is "
                                         "'Exists' or 'DoesNotExist'"))
            elif op in ("Gt", "Lt"):
                if len(values) != 1 or not re.match(r"^-?[0-9]+$", values[0]):
                    out.append(required(f"{f}.values", "must be specified single value when "
                                        "`operator` is 'Lt' or 'Gt'"))
            else:
                out.append(unsupported(f"{f}.operator", op, NODE_SELECTOR_OPS))


def _validate_affinity(out: list[Cause], aff: dict[str, Any], field: str) -> None:
    na = aff.get("nodeAffinity")
    if not na:
        return
    f = f"{field}.nodeAffinity"
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is not None:
        terms = req.get("nodeSelectorTerms") or []
        rf = f"{f}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not terms:
            out.append(required(rf, "must have at least one node selector term"))
        for i, t in enumerate(terms):
            _validate_node_selector_term(out, t, f"{rf}[{i}]")
    for i, p in enumerate(na.get("preferredDuringSchedulingIgnoredDuringExecution") or ()):
        pf = f"{f}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        w = p.get("weight")
        if not isinstance(w, int) or not 1 <= w <= 100:
            out.append(invalid(f"{pf}.weight", w, "must be in the range 1-100"))
        _validate_node_selector_term(out, p.get("preference") or {}, f"{pf}.preference")


def validate_pod_spec(spec: dict[str, Any], field: str, *,
                      restart_policies: tuple[str, ...] = RESTART_POLICIES) -> list[Cause]:
    """Semantic rules of a PodSpec (shape already checked); `field` is its path."""
    out: list[Cause] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or ()):
        vf = f"{field}.volumes[{i}].name"
        name = v.get("name")
        if not name:
            out.append(required(vf))
            continue
        for e in dns_label_errors(name):
            out.append(invalid(vf, name, e))
        if name in volumes:
            out.append(duplicate(vf, name))
        volumes.add(name)
    names: set[str] = set()
    containers = spec.get("containers")
    if not containers:
        out.append(required(f"{field}.containers"))
    for i, c in enumerate(spec.get("initContainers") or ()):
        _validate_container(out, c, f"{field}.initContainers[{i}]", volumes, names, True)
    for i, c in enumerate(containers or ()):
        _validate_container(out, c, f"{field}.containers[{i}]", volumes, names, False)
    rp = spec.get("restartPolicy")
    if not rp:
        out.append(required(f"{field}.restartPolicy",
                            "valid values: " + ", ".join(f'"{p}"' for p in restart_policies)))
    elif rp not in restart_policies:
        out.append(unsupported(f"{field}.restartPolicy", rp, restart_policies))
    enum(out, f"{field}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    _validate_dns_config(out, spec, f"{field}.dnsConfig")
    non_negative(out, f"{field}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds"))
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and ads < 1:
        out.append(invalid(f"{field}.activeDeadlineSeconds", ads,
                           "must be between 1 and 2147483647, inclusive"))
    if spec.get("nodeSelector"):
        out += validate_labels(spec["nodeSelector"], f"{field}.nodeSelector")
    if spec.get("tolerations"):
        validate_tolerations(out, spec["tolerations"], f"{field}.tolerations")
    if spec.get("affinity"):
        _validate_affinity(out, spec["affinity"], f"{field}.affinity")
    for k in ("serviceAccountName", "nodeName", "hostname", "subdomain"):
        val = spec.get(k)
        if val:
            check = dns_label_errors if k in ("hostname", "subdomain") else None
            if check is None:
                from kbox.api.validation import dns_subdomain_errors as check
            for e in check(val):
                out.append(invalid(f"{field}.{k}", val, e))
    enum(out, f"{field}.preemptionPolicy", spec.get("preemptionPolicy"),
         ("Never", "PreemptLowerPriority"))
    return out


def _validate_dns_config(out: list[Cause], spec: dict[str, Any], f: str) -> None:
    """dnsConfig within the kubelet's limits (a resolv.conf holds 3 nameservers and a search
    line of at most 32 domains and 2048 characters); dnsPolicy None needs a nameserver."""
    import ipaddress

    from kbox.dns.resolvconf import MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCHES
    from kbox.api.validation import dns_subdomain_errors
    cfg = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if not cfg:
            out.append(required(f, "must provide `dnsConfig` when `dnsPolicy` is None"))
            return
        if not cfg.get("nameservers"):
            out.append(required(f"{f}.nameservers",
                                "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if not cfg:
        return
    servers = cfg.get("nameservers") or []
    if len(servers) > MAX_NAMESERVERS:
        out.append(invalid(f"{f}.nameservers", servers,
                           f"must not have more than {MAX_NAMESERVERS} nameservers"))
    for i, ns in enumerate(servers):
        try:
            ipaddress.ip_address(str(ns))
        except ValueError:
            out.append(invalid(f"{f}.nameservers[{i}]", ns,
                               "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    searches = cfg.get("searches") or []
    if len(searches) > MAX_SEARCHES:
        out.append(invalid(f"{f}.searches", searches,
                           f"must not have more than {MAX_SEARCHES} search paths"))
    if len(" ".join(str(s) for s in searches)) > MAX_SEARCH_CHARS:
        out.append(invalid(f"{f}.searches", searches, f"must not have more than "
                           f"{MAX_SEARCH_CHARS} characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        name = str(search).removesuffix(".")      # a trailing dot is fine
        for e in dns_subdomain_errors(name):
            out.append(invalid(f"{f}.searches[{i}]", search, e))
    for i, op in enumerate(cfg.get("options") or []):
        if not (op or {}).get("name"):
            out.append(required(f"{f}.options[{i}]", "Option.Name must not be empty"))


def validate_template_metadata(meta: dict[str, Any] | None, field: str) -> list[Cause]:
    if not meta:
        return []
    out = validate_labels(meta.get("labels"), f"{field}.labels")
    for k in (meta.get("annotations") or {}):
        for e in qualified_name_errors(str(k)):
            out.append(invalid(f"{field}.annotations", k, e))
    return out


def validate_pod_spec_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Only images, activeDeadlineSeconds (set or lowered) and added tolerations may change."""
    if new == old:
        return []
    masked = dict(new)
    for key in ("containers", "initContainers"):
        nc, oc = new.get(key), old.get(key)
        if isinstance(nc, list) and isinstance(oc, list) and len(nc) == len(oc):
            masked[key] = [({**n, "image": o.get("image")} if isinstance(n, dict) and "image" in o
                            else n) for n, o in zip(nc, oc)]
    nad, oad = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if nad != oad and isinstance(nad, int) and nad > 0 and (oad is None or nad <= oad):
        if oad is None:
            masked.pop("activeDeadlineSeconds", None)
        else:
            masked["activeDeadlineSeconds"] = oad
    nt, ot = new.get("tolerations") or [], old.get("tolerations") or []
    if nt != ot and all(t in nt for t in ot):
        if ot:
            masked["tolerations"] = ot
        else:
            masked.pop("tolerations", None)
    ng, og = new.get("terminationGracePeriodSeconds"), old.get("terminationGracePeriodSeconds")
    if ng == 1 and isinstance(og, int) and og < 0:
        masked["terminationGracePeriodSeconds"] = og
    if masked == old:
        return []
    return [forbidden("spec", UPDATABLE_MSG)]


__all__ = ["default_pod_spec", "default_pod", "default_container", "pull_policy", "qos_class",
           "validate_pod_spec", "validate_pod_spec_update", "validate_template_metadata",
           "validate_tolerations", "port_number", "port_name_errors", "RESTART_POLICIES",
           "TAINT_EFFECTS", "PROTOCOLS", "UPDATABLE_MSG"]
