"""The CNI network configuration list the container runtime reads.

Its presence is the runtime's signal that the node can take pods (the kubelet reports
the node NetworkReady once a valid conflist exists), so the agent writes it only after
it has programmed the node's ENIs (invariant 5) and removes it on an unrecoverable
error. The write is atomic — temp file, fsync, rename, directory fsync — so a runtime
never reads half a file; an unchanged file is not rewritten.

Plugin entry schema: see ``vpcnet.cni.plugin``'s docstring.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vpcnet.atomicfile import atomic_write_bytes, fsync_dir
from vpcnet.errors import ConfigError, TemporaryError

CNI_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
NETWORK_NAME = "vpcnet"
PLUGIN_TYPE = "vpcnet-cni"

# Chained reference plugins ask the runtime for their inputs through capabilities.
_CHAINED: dict[str, dict[str, Any]] = {
    "portmap": {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    "bandwidth": {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    "tuning": {"type": "tuning"},
}


def plan_conflist(
    *,
    agent_socket: str,
    log_file: str,
    mtu: int,
    chained_plugins: Sequence[str] = (),
    chained_versions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The conflist document (pure).

    ``chained_versions``: each chained plugin's ``supportedVersions`` (its VERSION
    answer). A runtime runs the whole list at one spec version, so the list announces
    only the versions every plugin speaks (Debian's portmap stops at 1.0.0).
    """
    versions = list(CNI_VERSIONS)
    for name, supported in (chained_versions or {}).items():
        versions = [v for v in versions if v in set(supported)]
        if not versions:
            raise ConfigError(f"chained plugin {name} speaks none of {list(CNI_VERSIONS)}")
    if not os.path.isabs(agent_socket):
        raise ConfigError(f"agent socket path must be absolute: {agent_socket!r}")
    plugins: list[dict[str, Any]] = [
        {"type": PLUGIN_TYPE, "agentSocket": agent_socket, "logFile": log_file, "mtu": mtu}
    ]
    for name in chained_plugins:
        if not name or "/" in name:
            raise ConfigError(f"invalid chained plugin name {name!r}")
        plugins.append(dict(_CHAINED.get(name, {"type": name})))
    return {
        "cniVersion": max(versions, key=_version_key),
        "cniVersions": versions,
        "name": NETWORK_NAME,
        "plugins": plugins,
    }


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def probe_versions(bin_dir: Path, plugin_type: str, timeout: float = 10.0) -> list[str]:
    """Exec ``<bin_dir>/<plugin_type>`` with CNI_COMMAND=VERSION, as a runtime would.

    TemporaryError when it is missing or fails: the conflist must not name a plugin
    the runtime cannot run, so the node stays not ready until it is installed.
    """
    binary = bin_dir / plugin_type
    if not os.access(binary, os.X_OK):
        raise TemporaryError(f"chained CNI plugin {plugin_type!r} not found in {bin_dir}")
    try:
        proc = subprocess.run(
            [str(binary)],
            input=b"{}",
            env={"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        answer = json.loads(proc.stdout)
        versions = [str(v) for v in answer["supportedVersions"]]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as e:
        raise TemporaryError(f"{binary} VERSION failed: {e}") from e
    return versions


def render(conflist: dict[str, Any]) -> bytes:
    return (json.dumps(conflist, indent=2, sort_keys=False) + "\n").encode()


def ensure_conflist(path: Path, conflist: dict[str, Any]) -> bool:
    """Write ``conflist`` to ``path`` atomically unless it is already there; True if written."""
    data = render(conflist)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data, mode=0o644)  # kubelet never reads a torn file
    return True


def remove_conflist(path: Path) -> bool:
    """Remove the conflist (the node stops taking pods); True if it existed."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True

