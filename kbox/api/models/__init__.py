"""Typed models of every kind the API serves (pydantic v2, Kubernetes field names).

They check the shape of what a user writes; `check(model, obj)` returns
Status causes with Kubernetes field paths. The stored object stays the
user's own dict plus defaults (see `kbox.api.models.base`).
"""

from __future__ import annotations

from kbox.api.models import apps, batch, coordination, core, meta
from kbox.api.models.base import (IntOrString, K8sModel, Quantity, causes_from, check, go_string_map,
                                  go_value, path_of)

__all__ = ["apps", "batch", "coordination", "core", "meta", "K8sModel", "IntOrString", "Quantity",
           "check", "causes_from", "go_value", "go_string_map", "path_of"]
