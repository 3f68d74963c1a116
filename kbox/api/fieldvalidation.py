"""Unknown fields in a request body, under the `fieldValidation` query parameter.

kube-apiserver decodes a create, update or patch body into its Go types;
fields the types do not have would be silently dropped. The parameter says
what to do about them (kubectl 1.27+ sends `fieldValidation=Strict` by
default, and `Warn` with `--validate=warn`):

- `Strict`: refuse the request, 400 BadRequest, with the decoder's words:
  `Deployment in version "v1" cannot be handled as a Deployment: strict
  decoding error: unknown field "spec.foo"` (create and update),
  `strict decoding error: unknown field "spec.foo"` (patches), and for
  server-side apply `failed to create typed patch object (...): .spec.foo:
  field not declared in schema`;
- `Warn` (the default): accept it, and send one `Warning: 299 - "unknown
  field \\"spec.foo\\""` response header per field, which kubectl prints;
- `Ignore`: accept it silently.

kbox keeps a body as the user wrote it, so an "unknown" field would be
stored rather than dropped; it is still reported the same way. The known
fields are those of `kbox.api.schema` (the pydantic models); loose parts of
the models (statuses, volume sources, security contexts) accept anything.
"""

from __future__ import annotations

from typing import Any

from kbox.api import errors, schema
from kbox.api.resources import ResourceInfo

DIRECTIVES = ("Ignore", "Warn", "Strict")


def directive(query: Any) -> str:
    """The request's fieldValidation value (default Warn); 400 for anything else."""
    v = query.get("fieldValidation")
    if v in (None, ""):
        return "Warn"
    if v not in DIRECTIVES:
        raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn", or "Strict", '
                                 f'got "{v}"')
    return v


def _walk(value: Any, t: schema.TypeRef, path: str, types: dict[str, schema.ObjectType],
          out: list[str], patch: bool) -> None:
    if isinstance(t, schema.Ref):
        if not isinstance(value, dict):
            return
        ot = types.get(t.name)
        if ot is None:
            return
        fields = ot.fields
        for k, v in value.items():
            if patch and isinstance(k, str) and k.startswith("$"):
                continue       # strategic merge patch directives
            f = fields.get(k)
            sub = f"{path}.{k}" if path else str(k)
            if f is None:
                out.append(sub)
            elif v is not None:
                _walk(v, f.type, sub, types, out, patch)
    elif isinstance(t, schema.Array):
        if isinstance(value, list) and isinstance(t.items, (schema.Ref, schema.Array, schema.Map)):
            for i, v in enumerate(value):
                if v is not None:
                    _walk(v, t.items, f"{path}[{i}]", types, out, patch)
    elif isinstance(t, schema.Map):
        if isinstance(value, dict) and isinstance(t.values, (schema.Ref, schema.Array, schema.Map)):
            for k, v in value.items():
                if v is not None:
                    _walk(v, t.values, f"{path}[{k}]", types, out, patch)


def unknown_fields(info: ResourceInfo, body: Any, *, patch: bool = False) -> list[str]:
    """Paths of the fields of `body` the kind does not have, in document order."""
    s = schema.build()
    root = s.kinds.get((info.group, info.version, info.kind))
    if root is None or not isinstance(body, dict):
        return []
    out: list[str] = []
    _walk(body, schema.Ref(root), "", s.types, out, patch)
    return out


def check(info: ResourceInfo, body: Any, query: Any, *, operation: str,
          name: str = "", namespace: str | None = None) -> list[str]:
    """Apply the request's fieldValidation to `body`: raise 400 under Strict, return the
    warnings to send under Warn (empty under Ignore or when every field is known).

    operation: "create", "update", or a patch type ("json", "merge", "strategic", "apply")."""
    mode = directive(query)
    if mode == "Ignore" or operation == "json":
        return []
    unknown = unknown_fields(info, body, patch=operation in ("merge", "strategic", "apply"))
    if not unknown:
        return []
    if operation == "apply":
        if mode == "Strict":
            who = f"{namespace}/{name}" if namespace else name
            gvk = f"{info.api_version}, Kind={info.kind}"
            detail = "\n".join(f".{p}: field not declared in schema" for p in unknown)
            raise errors.bad_request(f"failed to create typed patch object ({who}; {gvk}): {detail}")
        return [f'unknown field "{p}"' for p in unknown]
    if mode == "Strict":
        text = "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
        if operation in ("create", "update"):
            text = f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {text}'
        raise errors.bad_request(text)
    return [f'unknown field "{p}"' for p in unknown]


def warning_header(message: str) -> str:
    """One `Warning` header value, as kube-apiserver formats it (RFC 7234 code 299)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


__all__ = ["directive", "unknown_fields", "check", "warning_header"]
