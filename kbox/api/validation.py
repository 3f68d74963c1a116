"""Validation shared by every kind: object names, labels, annotations.

Rules and messages follow Kubernetes' apimachinery validation, so a user
sees `metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain
must consist of ...` exactly as kubectl would show it.
"""

from __future__ import annotations

import re
from typing import Any

from kbox.api.errors import cause
from kbox.api.resources import ResourceInfo

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")

# kinds whose names must be DNS-1123 labels (≤63) rather than subdomains
LABEL_NAMED = {"namespaces", "services"}


def dns_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        errs.append(SUBDOMAIN_MSG)
    return errs


def dns_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(value):
        errs.append(LABEL_MSG)
    return errs


def qualified_name_errors(key: str) -> list[str]:
    """A label or annotation key: optional DNS subdomain prefix + '/' + name ≤ 63."""
    errs = []
    prefix, _, name = key.rpartition("/")
    if prefix:
        for e in dns_subdomain_errors(prefix):
            errs.append("prefix part " + e)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not QUALIFIED_NAME.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                    "'my.name',  or '123-abc', regex used for validation is "
                    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not LABEL_VALUE.match(value):
        errs.append("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return errs


def invalid_value(field: str, value: Any, message: str) -> dict[str, str]:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return cause(field, f"Invalid value: {shown}: {message}")


def validate_labels(labels: Any, field: str) -> list[dict[str, str]]:
    out = []
    if labels is None:
        return out
    if not isinstance(labels, dict):
        return [cause(field, "must be a map of string keys to string values")]
    for k, v in labels.items():
        for e in qualified_name_errors(str(k)):
            out.append(invalid_value(field, k, e))
        if not isinstance(v, str):
            out.append(invalid_value(f"{field}.{k}", v, "must be a string"))
            continue
        for e in label_value_errors(v):
            out.append(invalid_value(field, v, e))
    return out


def validate_metadata(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    m = obj.get("metadata") or {}
    out: list[dict[str, str]] = []
    name = m.get("name")
    if not name:
        out.append(cause("metadata.name", "Required value: name or generateName is required",
                         "FieldValueRequired"))
    elif info.plural != "events":
        check = dns_label_errors if info.plural in LABEL_NAMED else dns_subdomain_errors
        for e in check(name):
            out.append(invalid_value("metadata.name", name, e))
    out += validate_labels(m.get("labels"), "metadata.labels")
    ann = m.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict):
            out.append(cause("metadata.annotations", "must be a map of string keys to string values"))
        else:
            total = 0
            for k, v in ann.items():
                for e in qualified_name_errors(str(k)):
                    out.append(invalid_value("metadata.annotations", k, e))
                if not isinstance(v, str):
                    out.append(invalid_value(f"metadata.annotations.{k}", v, "must be a string"))
                total += len(str(k)) + len(str(v))
            if total > 256 * 1024:
                out.append(cause("metadata.annotations",
                                 f"Too long: must have at most 262144 bytes", "FieldValueTooLong"))
    fins = m.get("finalizers")
    if fins is not None and not isinstance(fins, list):
        out.append(cause("metadata.finalizers", "must be a list of strings"))
    if old is None and m.get("deletionTimestamp"):
        out.append(cause("metadata.deletionTimestamp", "must be empty on create"))
    return out
