"""What `/version` answers: the Kubernetes version kbox's API follows."""

from __future__ import annotations

import platform

import kbox

KUBERNETES_VERSION = "v1.32.0"


def version_info() -> dict[str, str]:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    return {
        "major": major, "minor": minor, "gitVersion": f"{KUBERNETES_VERSION}+kbox.{kbox.__version__}",
        "gitCommit": "kbox", "gitTreeState": "clean", "buildDate": "2026-11-23T00:00:00Z",
        "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }
