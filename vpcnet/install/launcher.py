"""The static launcher kubelet execs: find or build it, and embed the argv it runs.

The launcher (``launcher.c``) is one generic static executable; what it runs is data the
installer writes into its ``vpcnet_argv`` blob. The vpcnet image ships it prebuilt (the
Dockerfile compiles it in a builder stage); elsewhere (a development checkout, tests,
``vpcnet bench cni``) it is compiled once with the system C compiler and cached.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vpcnet.atomicfile import atomic_write_bytes
from vpcnet.errors import InstallError

SOURCE = Path(__file__).with_name("launcher.c")
# Must match VPCNET_MARKER and BLOB_SIZE in launcher.c.
MARKER = b"@@VPCNET-CNI-LAUNCHER-ARGV@@"
BLOB_SIZE = 8192
MAX_PREFIX = 64
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with its NUL (plugin.py's agentSocket limit too)
# Where the image puts the prebuilt launcher (Dockerfile: builder stage).
PREBUILT = Path(sys.prefix) / "libexec" / "vpcnet" / "vpcnet-cni-launcher"


def embed_argv(binary: bytes, argv: Sequence[str], agent_socket: str | None = None) -> bytes:
    """Return ``binary`` with its argv blob set to ``argv`` (pure).

    ``agent_socket``: the agent's socket, written after the argv; the launcher then hands
    each invocation to the agent first (its fast path) and execs ``argv`` only when the
    agent does not answer it. The blob is located by its marker, which the C source keeps
    unique in the file.
    """
    if not argv or not argv[0].startswith("/"):
        raise InstallError("the launcher's argv must start with an absolute path")
    if len(argv) > MAX_PREFIX:
        raise InstallError(f"the launcher takes at most {MAX_PREFIX} fixed arguments")
    parts = [a.encode() for a in argv]
    if any(b"\0" in p or not p for p in parts):
        raise InstallError("launcher arguments must be non-empty and contain no NUL byte")
    blob = b"".join(p + b"\0" for p in parts) + b"\0"
    if agent_socket is not None:
        sock = os.fsencode(agent_socket)
        if not sock.startswith(b"/") or b"\0" in sock or len(sock) > MAX_SOCKET_PATH:
            raise InstallError(
                f"the agent socket must be an absolute path of at most {MAX_SOCKET_PATH} bytes "
                f"without NUL: {agent_socket!r}"
            )
        blob += sock + b"\0"
    if len(blob) > BLOB_SIZE:
        raise InstallError(f"launcher argv is {len(blob)} bytes; the blob holds {BLOB_SIZE}")
    at = binary.find(MARKER)
    if at < 0 or binary.find(MARKER, at + 1) >= 0:
        raise InstallError("launcher binary does not hold exactly one argv marker")
    region = binary[at : at + BLOB_SIZE]
    if len(region) != BLOB_SIZE or region[len(MARKER) :].strip(b"\0"):
        raise InstallError("launcher binary's argv blob is not the expected empty block")
    return binary[:at] + blob.ljust(BLOB_SIZE, b"\0") + binary[at + BLOB_SIZE :]


def _check_template(data: bytes, origin: Path) -> bytes:
    if data.count(MARKER) != 1 or not data.startswith(b"\x7fELF"):
        raise InstallError(f"{origin} is not an unconfigured vpcnet-cni launcher")
    return data


def build_launcher(cache_dir: Path, compiler: str | None = None) -> Path:
    """Compile launcher.c statically into ``cache_dir`` (cached by source hash)."""
    source = SOURCE.read_bytes()
    out = cache_dir / f"vpcnet-cni-launcher-{hashlib.sha256(source).hexdigest()[:16]}"
    if out.exists():
        return out
    cc = compiler or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise InstallError(
            f"no prebuilt launcher at {PREBUILT} and no C compiler to build {SOURCE}; "
            "install from the vpcnet image or install a C compiler with static libc"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{out.name}.{os.getpid()}"
    argv = [cc, "-static", "-Os", "-s", "-Wall", "-o", str(tmp), str(SOURCE)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError(f"compiling the launcher failed: {e}") from e
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"compiling the launcher failed: {proc.stderr.strip()[-2000:]}")
    atomic_write_bytes(out, _check_template(tmp.read_bytes(), tmp), mode=0o755)
    tmp.unlink()
    return out


def launcher_template(cache_dir: Path, prebuilt: Path | None = None) -> bytes:
    """The unconfigured launcher: ``prebuilt`` if given, the image's, or a local build."""
    if prebuilt is not None:
        if not prebuilt.is_file():
            raise InstallError(f"launcher {prebuilt} does not exist")
        return _check_template(prebuilt.read_bytes(), prebuilt)
    if PREBUILT.is_file():
        return _check_template(PREBUILT.read_bytes(), PREBUILT)
    path = build_launcher(cache_dir)
    return _check_template(path.read_bytes(), path)
