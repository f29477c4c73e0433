"""Install the CNI plugin: a runtime version under ``runtime_dir`` and the launcher in ``bin_dir``.

Order makes every step safe to interrupt and to repeat:

1. the runtime version is built in a hidden temporary directory, fsync'd, then renamed to
   ``<runtime_dir>/v-<digest>`` - a version directory exists only complete;
2. the launcher, pointing at that version, replaces ``<bin_dir>/vpcnet-cni`` atomically
   (kubelet sees the old plugin or the new one, never a partial file);
3. old versions are removed, keeping the previous one for plugins still running from it.

Repeating an install with the same inputs writes nothing (same digest, same bytes).
Concurrent installers on one node (init container and agent) serialise on a lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vpcnet.atomicfile import atomic_write_bytes, fsync_dir
from vpcnet.errors import InstallError
from vpcnet.install.launcher import embed_argv, launcher_template
from vpcnet.install.runtime import (
    RuntimeBundle,
    build_runtime,
    collect_bundle,
    launcher_argv,
    runtime_size,
)

PLUGIN_NAME = "vpcnet-cni"
VERSION_PREFIX = "v-"
_STALE_TMP_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class InstallResult:
    plugin: Path  # the launcher as written on disk (under root, if one was given)
    version_dir: Path  # the runtime version as written on disk
    digest: str
    runtime_changed: bool  # a new runtime version was built
    plugin_changed: bool  # the launcher file was replaced
    removed_versions: tuple[str, ...]
    runtime_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "plugin": str(self.plugin),
            "version_dir": str(self.version_dir),
            "digest": self.digest,
            "runtime_changed": self.runtime_changed,
            "plugin_changed": self.plugin_changed,
            "removed_versions": list(self.removed_versions),
            "runtime_bytes": self.runtime_bytes,
            "seconds": round(self.seconds, 3),
        }


def _on_disk(path: Path, root: Path | None) -> Path:
    """Where a host path lives while installing into ``root`` (e.g. a mounted host)."""
    if not path.is_absolute():
        raise InstallError(f"install paths must be absolute: {path}")
    return root / path.relative_to("/") if root is not None else path


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".install.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _is_complete(version_dir: Path) -> bool:
    try:
        manifest = json.loads((version_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("digest", "").startswith(
        version_dir.name.removeprefix(VERSION_PREFIX)
    )


def ensure_runtime(bundle: RuntimeBundle, runtime_on_disk: Path) -> tuple[Path, bool]:
    """The complete version directory for ``bundle`` (built if missing) and whether built."""
    version = runtime_on_disk / f"{VERSION_PREFIX}{bundle.digest[:16]}"
    if _is_complete(version):
        os.utime(version)  # mark as most recently installed, for garbage collection
        return version, False
    if version.exists():  # incomplete leftover: a rename only happens when complete,
        shutil.rmtree(version)  # so this was damaged afterwards; rebuild it
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runtime_on_disk))
    try:
        staged = tmp / "runtime"
        build_runtime(bundle, staged)
        os.rename(staged, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(runtime_on_disk)
    return version, True


def remove_old_versions(runtime_on_disk: Path, keep: Path) -> tuple[str, ...]:
    """Delete versions other than ``keep`` and the newest other one; stale temp dirs too."""
    now = time.time()
    versions = sorted(
        (p for p in runtime_on_disk.glob(f"{VERSION_PREFIX}*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for old in versions[1:]:  # versions[0] may still serve a plugin started before the swap
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old.name)
    for tmp in runtime_on_disk.glob(".tmp-*"):
        if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:  # a crashed installer's
            shutil.rmtree(tmp, ignore_errors=True)
    return tuple(removed)


def install_plugin(
    bin_dir: Path,
    runtime_dir: Path,
    *,
    root: Path | None = None,
    launcher: Path | None = None,
    bundle: RuntimeBundle | None = None,
    agent_socket: str | None = None,
) -> Path:
    """Install ``vpcnet-cni`` into ``bin_dir``, running on a runtime under ``runtime_dir``.

    Returns the installed plugin's path. ``root``: install into a mounted host root
    (paths written into the launcher stay ``bin_dir``/``runtime_dir`` as the host sees
    them; the returned path is under ``root``). ``agent_socket``: the agent's socket as
    the host sees it (the conflist's ``agentSocket``), embedded in the launcher for its
    fast path; None: the launcher always execs the plugin. Idempotent and atomic; see
    module doc.
    """
    return install(bin_dir, runtime_dir, root=root, launcher=launcher, bundle=bundle,
                   agent_socket=agent_socket).plugin


def install(
    bin_dir: Path,
    runtime_dir: Path,
    *,
    root: Path | None = None,
    launcher: Path | None = None,
    bundle: RuntimeBundle | None = None,
    agent_socket: str | None = None,
) -> InstallResult:
    """:func:`install_plugin` with a report of what changed."""
    started = time.monotonic()
    runtime_on_disk = _on_disk(runtime_dir, root)
    bin_on_disk = _on_disk(bin_dir, root)
    bundle = bundle or collect_bundle()
    with _locked(runtime_on_disk):
        version_on_disk, built = ensure_runtime(bundle, runtime_on_disk)
        version_for_host = runtime_dir / version_on_disk.name
        template = launcher_template(runtime_on_disk / ".build", launcher)
        data = embed_argv(template, launcher_argv(bundle, version_for_host), agent_socket)
        plugin = bin_on_disk / PLUGIN_NAME
        try:
            same = plugin.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            atomic_write_bytes(plugin, data, mode=0o755)
        removed = remove_old_versions(runtime_on_disk, keep=version_on_disk)
    return InstallResult(
        plugin=plugin,
        version_dir=version_on_disk,
        digest=bundle.digest,
        runtime_changed=built,
        plugin_changed=not same,
        removed_versions=removed,
        runtime_bytes=runtime_size([version_on_disk]),
        seconds=time.monotonic() - started,
    )


def verify_plugin(plugin: Path, root: Path | None = None, timeout: float = 20.0) -> dict[str, object]:
    """Exec the installed plugin's VERSION as a runtime would, with an empty environment.

    With ``root``, the plugin runs chrooted there (it must need nothing outside it).
    Returns the plugin's VERSION result; raises InstallError if it does not answer one.
    """
    host_path = "/" + str(plugin.relative_to(root)) if root is not None else str(plugin)
    argv = [host_path]
    if root is not None:
        chroot = shutil.which("chroot")
        if chroot is None:
            raise InstallError("chroot(8) is needed to verify an install into a root")
        argv = [chroot, str(root), host_path]
    try:
        proc = subprocess.run(
            argv,
            input=b'{"cniVersion": "1.1.0"}',
            env={"CNI_COMMAND": "VERSION"},
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError(f"the installed plugin did not run: {e}") from e
    try:
        result = json.loads(proc.stdout)
    except ValueError as e:
        raise InstallError(
            f"the installed plugin answered no JSON (exit {proc.returncode}): "
            f"{proc.stdout[:500]!r} {proc.stderr[:500]!r}"
        ) from e
    if proc.returncode != 0 or not isinstance(result, dict) or "supportedVersions" not in result:
        raise InstallError(f"the installed plugin failed VERSION (exit {proc.returncode}): {result}")
    return result
