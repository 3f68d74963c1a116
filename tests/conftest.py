"""Shared fixtures and the rule for tests that need outside tools.

Tests marked `docker` or `kubectl` skip on a laptop without a Docker engine
or the kubectl binary, but FAIL under CI (CI=true or KBOX_REQUIRE_DOCKER=1 /
KBOX_REQUIRE_KUBECTL=1), so the real paths are always proven in CI.
"""

from __future__ import annotations

import os
import shutil

import pytest

# every cached object the API hands to in-process readers is shared: the suite checks
# that no reader changes one in place (kbox.api.cache.CHECK_SHARED)
os.environ.setdefault("KBOX_CHECK_SHARED", "1")
# `kbox up` merges its context into the user's kubeconfig, as kind does: never the real one
if "KBOX_TEST_KUBECONFIG" not in os.environ:
    import tempfile
    os.environ["KBOX_TEST_KUBECONFIG"] = os.environ["KUBECONFIG"] = os.path.join(
        tempfile.mkdtemp(prefix="kbox-test-kube-"), "config")


@pytest.fixture(autouse=True)
def _no_shared_object_mutated():
    from kbox.api import cache
    cache.SHARED_MUTATIONS.clear()
    yield
    assert not cache.SHARED_MUTATIONS, \
        f"objects of the API's watch cache were changed in place: {cache.SHARED_MUTATIONS[:5]}"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _docker_available() -> bool:
    try:
        import docker
        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


_docker_state: dict[str, bool] = {}


def pytest_runtest_setup(item):
    if item.get_closest_marker("docker"):
        if "ok" not in _docker_state:
            _docker_state["ok"] = _docker_available()
        if not _docker_state["ok"]:
            if _ci() or os.environ.get("KBOX_REQUIRE_DOCKER") == "1":
                pytest.fail("a Docker engine is required under CI, but none answers")
            pytest.skip("no Docker engine answers (this fails under CI=true)")
    if item.get_closest_marker("kubectl") and not shutil.which("kubectl"):
        if _ci() or os.environ.get("KBOX_REQUIRE_KUBECTL") == "1":
            pytest.fail("kubectl is required under CI, but it is not installed")
        pytest.skip("kubectl is not installed (this fails under CI=true)")


@pytest.fixture
def fake_clock():
    from kbox.clock import FakeClock
    return FakeClock()


@pytest.fixture
def api(fake_clock):
    """A bare API server on a memory store (no controllers), with the initial namespaces."""
    from kbox.api.server import ApiServer
    from kbox.store.memory import MemoryStore
    import random
    server = ApiServer(MemoryStore(clock=fake_clock), fake_clock, rng=random.Random(1))
    server.bootstrap()
    yield server
    server.stop()


@pytest.fixture
def client(api):
    from kbox.api.client import InProcessClient
    return InProcessClient(api)
