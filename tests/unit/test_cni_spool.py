"""The plugin's DEL spool (the agent is unreachable): every spooled DEL lands whole, and a
failed spool leaves no temporary file, even with many plugins in one process (the agent's
in-process fast path runs them all under its own pid)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vpcnet.cni import plugin
from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError


def _del(cid: str = "c1") -> dict[str, Any]:
    return {"command": "DEL", "containerId": cid, "ifname": "eth0", "netns": ""}


def test_two_dels_of_one_attachment_spooled_at_once_both_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = {"pendingDir": str(tmp_path / "pending")}
    # The second DEL is spooled while the first is between its write and its rename: what
    # two timed-out DELs of one attachment in the agent's process can do.
    real_fsync = os.fsync
    inner: list[str] = []
    twin_started = False

    def fsync_then_spool_the_twin(fd: int) -> None:
        nonlocal twin_started
        real_fsync(fd)
        if not twin_started:
            twin_started = True
            inner.append(plugin._spool(_del(), conf))

    monkeypatch.setattr(os, "fsync", fsync_then_spool_the_twin)
    outer = plugin._spool(_del(), conf)
    assert inner == [outer]
    (spooled,) = Path(conf["pendingDir"]).iterdir()  # one note, no temporary left
    assert spooled.name == p.pending_name("c1", "eth0")
    assert json.loads(spooled.read_text())["containerId"] == "c1"


def test_a_failed_spool_is_11_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = {"pendingDir": str(tmp_path / "pending")}

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(CniError) as e:
        plugin._spool(_del(), conf)
    monkeypatch.undo()
    assert e.value.code == p.ERR_TRY_AGAIN
    assert list(Path(conf["pendingDir"]).iterdir()) == []
