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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Mark every test by the folder it lives in, so `-m unit` etc. select suites.
    for item in items:
        parts = item.path.parts
        for suite in _SUITES:
            if suite in parts:
                item.add_marker(getattr(pytest.mark, suite))
