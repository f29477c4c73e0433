"""Tests that use Go-built binaries run last and wait for a build in progress
(scripts/test.sh builds them in the background on a cold machine)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import pytest_collection_modifyitems
from tests.fixtures.apiserver import wait_for_build


@dataclass
class _Item:
    path: Path
    fixturenames: list[str]
    markers: list[str] = field(default_factory=list)

    def add_marker(self, marker: object) -> None:
        self.markers.append(getattr(marker, "name", str(marker)))

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.markers else None


def test_modules_using_go_built_binaries_run_last_in_their_own_order() -> None:
    a1 = _Item(Path("/r/tests/contract/test_a.py"), ["kube_apiserver", "controlplane_built"])
    a2 = _Item(Path("/r/tests/contract/test_a.py"), ["tmp_path"])  # same module: moves too
    b = _Item(Path("/r/tests/integration/test_b.py"), ["redis_server"])
    h = _Item(Path("/r/tests/unit/test_h.py"), ["helm"])
    c = _Item(Path("/r/tests/unit/test_c.py"), [])
    d = _Item(Path("/r/tests/e2e/test_d.py"), ["tmp_path"], ["controlplane"])  # runs it itself
    items = [a1, a2, d, b, h, c]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert items == [b, c, a1, a2, d, h]


@contextmanager
def _held(lock: Path, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """A build stand-in holding ``lock`` for ``seconds`` (yielded once it holds it)."""
    lock.touch()
    holder = subprocess.Popen(["flock", str(lock), "sleep", str(seconds)])
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0:
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_wait_for_build_returns_once_the_build_lets_its_lock_go(tmp_path: Path) -> None:
    with _held(tmp_path / ".lock", 1.5) as holder:
        wait_for_build(tmp_path / ".lock", timeout=30)
        assert holder.poll() is not None  # returned only after the build ended


def test_wait_for_build_fails_past_its_timeout(tmp_path: Path) -> None:
    with _held(tmp_path / ".lock", 30), pytest.raises(pytest.fail.Exception, match="did not end"):
        wait_for_build(tmp_path / ".lock", timeout=0.5)


def test_no_lock_means_no_build_ever_ran_here(tmp_path: Path) -> None:
    started = time.monotonic()
    wait_for_build(tmp_path / "absent" / ".lock", timeout=30)
    assert time.monotonic() - started < 1.0
