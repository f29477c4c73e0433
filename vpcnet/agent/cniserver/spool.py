"""The directory of DELs the CNI plugin spooled while the agent was unreachable.

The plugin writes one file per attachment (``vpcnet.cni.protocol.pending_name``) with
temp + fsync + rename; the agent keeps the attachment's IP assigned until it has run
that DEL, then removes the file. This module only reads the directory: which spooled
DELs there are, and the key of each. A file that is no DEL (unparseable, no valid key,
a name that does not match its key, a directory) is moved to ``quarantine/`` and
logged, never retried and never deleted (a human may want to read it). A file that
cannot be read for another reason (EIO, EACCES) is left in place: the next sweep
tries again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from vpcnet.agent.ipam import AttachmentKey
from vpcnet.cni import protocol as p

log = logging.getLogger("vpcnet.agent.cni")

QUARANTINE = "quarantine"


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, key: AttachmentKey) -> Path:
        return self.directory / p.pending_name(*key)

    def has(self, key: AttachmentKey) -> bool:
        return self.path_of(key).exists()

    def remove(self, key: AttachmentKey) -> None:
        """Forget the spooled DEL of ``key`` (it ran, or a DEL reached the agent)."""
        try:
            self.path_of(key).unlink(missing_ok=True)
        except OSError as e:  # e.g. the directory is a file: nothing was spooled there
            log.warning("cannot remove the spooled DEL of %s: %s", key, e)

    def entries(self) -> Iterator[Path]:
        """The spooled DEL files, oldest name first; none when the directory is unusable."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".json"))
        except FileNotFoundError:
            return
        except OSError as e:
            log.error("cannot list spooled DELs in %s (retrying): %s", self.directory, e)
            return
        for name in names:
            yield self.directory / name

    def key_of(self, path: Path) -> AttachmentKey | None:
        """The attachment of a spooled DEL; None when it vanished or was quarantined.

        OSError (other than a vanished file) when it cannot be read now.
        """
        try:
            doc = p.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (IsADirectoryError, UnicodeDecodeError, ValueError) as e:
            self._quarantine(path, f"unreadable: {e}")
            return None
        cid = doc.get("containerId") if isinstance(doc, dict) else None
        ifname = doc.get("ifname") if isinstance(doc, dict) else None
        if not (
            isinstance(cid, str) and p.valid_container_id(cid) and isinstance(ifname, str) and p.valid_ifname(ifname)
        ):
            self._quarantine(path, "without a valid containerId and ifname")
            return None
        key = AttachmentKey(cid, ifname)
        if path.name != p.pending_name(*key):
            self._quarantine(path, f"named for another key than its own ({key})")
            return None
        return key

    def _quarantine(self, path: Path, why: str) -> None:
        target = self.directory / QUARANTINE / path.name
        try:
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, target)
        except OSError as e:
            log.error("spooled DEL %s is %s and cannot be moved aside: %s", path, why, e)
            return
        log.error("spooled DEL %s is %s: moved to %s", path, why, target)
