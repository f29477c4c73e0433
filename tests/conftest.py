"""Test-session wiring: fixtures live in tests/fixtures/, one module per real part.

Suites by folder: unit (pure, fast), integration (real Redis, Celery workers, emulators
over HTTP), netns (real namespaces, root), e2e (the whole system), contract (every
Kubernetes call, on the emulator and the real kube-apiserver alike). All run in CI; a
suite that cannot run where it must fails instead of skipping.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.ec2",
    "tests.fixtures.kube",
    "tests.fixtures.celery",
    "tests.fixtures.netns",
    "tests.fixtures.cni",
    "tests.fixtures.apiserver",
    "tests.fixtures.sentinel",
]

_SUITES = ("unit", "integration", "netns", "e2e", "contract")


# Fixtures whose binaries are built from Go modules (helm; etcd and kube-apiserver); a
# test that runs them otherwise (e.g. `vpcnet demo --kube apiserver`) is marked controlplane.
_GO_BUILT = frozenset({"controlplane_built", "helm"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Mark every test by the folder it lives in, so `-m unit` etc. select suites.
    for item in items:
        parts = item.path.parts
        for suite in _SUITES:
            if suite in parts:
                item.add_marker(getattr(pytest.mark, suite))
    # The modules that use Go-built binaries run last, each in its own order: on a cold
    # machine scripts/test.sh builds them in the background while the rest runs.
    late = {item.path for item in items
            if _GO_BUILT & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("controlplane")}
    items.sort(key=lambda item: item.path in late)
