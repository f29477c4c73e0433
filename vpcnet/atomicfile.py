"""Crash-safe file replacement: write a temporary sibling, sync, rename over the target.

rename(2) within one directory means a reader (kubelet exec'ing ``/opt/cni/bin/vpcnet-cni``,
the runtime reading the conflist, the agent loading its checkpoint after a crash) sees
the old file or the new one, never a partial write. What survives a power loss is the
caller's choice (``Sync``); a durable write returns only once the new file and its
directory entry are on disk, so whatever the caller does next (program pods' routes
after the IPAM checkpoint, say) happens after the file is safe. The stdlib-only CNI
plugin keeps its own copy (``vpcnet.cni.plugin``): it imports nothing else of vpcnet.
"""

from __future__ import annotations

import enum
import os
import tempfile
from pathlib import Path


class Sync(enum.Enum):
    """How much of a write must survive a crash of the machine."""

    FULL = "full"  # fsync the file (data and metadata, the mode included), then the directory
    DATA = "data"  # fdatasync the file (data and size: cheaper), then the directory
    NONE = "none"  # no sync: still atomic for readers, but a crash may keep the old file


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (the directory entry itself is metadata)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(
    path: Path, data: bytes, mode: int = 0o644, *, sync: Sync = Sync.FULL, dir_mode: int = 0o777
) -> None:
    """Replace ``path`` with ``data`` atomically; the temporary file is hidden (dot-name).

    A missing directory is created with ``dir_mode`` (less the umask; its missing
    parents with the default). OSError on failure, with the temporary file removed.
    """
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if sync is Sync.FULL:
                os.fsync(f.fileno())
            elif sync is Sync.DATA:
                os.fdatasync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync is not Sync.NONE:
        fsync_dir(path.parent)
