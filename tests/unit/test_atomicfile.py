"""The one atomic-write helper: whole files or nothing, the caller's modes, no debris."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpcnet.atomicfile import Sync, atomic_write_bytes


@pytest.mark.parametrize("sync", list(Sync))
def test_replaces_the_file_with_its_mode_and_creates_the_directory(tmp_path: Path, sync: Sync) -> None:
    path = tmp_path / "state" / "file.json"
    atomic_write_bytes(path, b"old", 0o640, sync=sync, dir_mode=0o700)
    atomic_write_bytes(path, b"new", 0o640, sync=sync, dir_mode=0o700)
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()  # rename(2) cannot replace a directory with a file
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert (target / "inside").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
