"""Opening CNI_NETNS (issue 11 finding 7): only a network namespace is opened, and
nothing blocks (a FIFO opened for reading used to wait for a writer forever)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vpcnet.agent import nlbatch as nl
from vpcnet.errors import PodNetworkError

pytestmark = pytest.mark.timeout(20)


def test_a_network_namespace_opens() -> None:
    fd = nl.open_netns("/proc/self/ns/net")
    try:
        assert nl.netns_identity(fd) == (os.stat("/proc/self/ns/net").st_dev, os.stat("/proc/self/ns/net").st_ino)
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["fifo", "regular file", "directory", "uts namespace", "device", "socket"])
def test_anything_else_is_invalid_without_blocking(tmp_path: Path, kind: str) -> None:
    import socket

    path = {"fifo": tmp_path / "fifo", "regular file": tmp_path / "file", "directory": tmp_path,
            "uts namespace": Path("/proc/self/ns/uts"), "device": Path("/dev/null"), "socket": tmp_path / "sock"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "regular file":
        path.write_text("")
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
    with pytest.raises(nl.InvalidNetns, match="not a network namespace"):
        os.close(nl.open_netns(str(path)))


def test_a_missing_path_keeps_its_errno(tmp_path: Path) -> None:
    with pytest.raises(PodNetworkError) as e:
        nl.open_netns(str(tmp_path / "nope"))
    assert e.value.errno == 2 and not isinstance(e.value, nl.InvalidNetns)
