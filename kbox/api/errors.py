"""API errors as Kubernetes Status objects.

Every failure the API reports is an `ApiError` carrying the HTTP code, the
Status `reason` kube-apiserver uses and a message worded as kube-apiserver
words it, so kubectl prints the same text it would against a real cluster.
The HTTP client raises the same class from the Status it receives, so callers
handle errors one way whichever client they hold.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out

    @property
    def causes(self) -> list[dict[str, str]]:
        return list(self.details.get("causes", []))

    @classmethod
    def from_status(cls, status: dict[str, Any], code: int | None = None) -> "ApiError":
        return cls(int(status.get("code") or code or 500), status.get("reason") or "Unknown",
                   status.get("message") or "", status.get("details") or {})

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str | None, resource: str, group: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": resource}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d.update(extra)
    return d


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    _details(name, resource, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    _details(name, resource, group))


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> ApiError:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                    _details(name, resource, group))


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    """422 Invalid. Each cause: {"field": "spec.replicas", "reason": "FieldValueInvalid", "message": ...}."""
    parts = []
    for c in causes:
        msg = c.get("message", "")
        field = c.get("field", "")
        parts.append(f"{field}: {msg}" if field else msg)
    body = ", ".join(parts)
    if len(causes) > 1:
        body = "[" + body + "]"
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {body}',
                    _details(name, kind, group, causes=causes))


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(message: str, name: str | None = None, resource: str = "", group: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message,
                    _details(name, resource, group) if resource else None)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type})")


def too_many_requests(message: str, retry_after: int = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", message, {"retryAfterSeconds": retry_after})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)
