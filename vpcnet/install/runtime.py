"""The self-contained runtime the CNI plugin runs on: interpreter, libraries, stdlib subset.

Collected from the running interpreter (in the image: python:3.11-slim's) so the host
needs nothing: the executable, every shared library ``ldd`` resolves for it and for the
extension modules the plugin uses (glibc's dynamic loader included), and one
uncompressed zip of precompiled modules - the plugin's modules plus exactly the standard
library they reach (``modulefinder`` follows imports inside functions too, so lazy imports
are covered). Stored, not deflated: zipimport then needs no zlib and reads are plain
``read()`` calls. Layout of a runtime version (a Python prefix, so ``getpath`` finds it)::

    bin/python3.11
    lib/<loader, libc, libm, libpython...>
    lib/python311.zip
    lib/python3.11/lib-dynload/<extension modules>
    manifest.json
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import marshal
import modulefinder
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType

from vpcnet.atomicfile import fsync_file
from vpcnet.errors import InstallError

# Bump when the layout or the launcher argv changes, so a new install is a new version.
FORMAT = 1
ENTRY_MODULE = "vpcnet.cni.plugin"
ENTRY_PACKAGE = "vpcnet.cni"
# Imported by the interpreter itself at start-up (not frozen): the codec registry and
# the codecs for the file-system / stdio encodings (UTF-8 mode; ASCII/Latin-1 fallbacks).
STARTUP_MODULES = ("encodings", "encodings.aliases", "encodings.utf_8", "encodings.ascii",
                   "encodings.latin_1")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same zip
_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(\S+)(?:\s+\(0x[0-9a-f]+\))?\s*$")


@dataclass(frozen=True, slots=True)
class PyModule:
    name: str
    source: Path
    arcname: str  # path of the .pyc inside the zip


@dataclass(frozen=True, slots=True)
class RuntimeBundle:
    """Everything one runtime version is made of, with a digest of its inputs."""

    python: Path  # the real interpreter executable
    py_version: str  # "3.11"
    libs: tuple[tuple[str, Path], ...]  # (name under lib/, source file)
    loader: str  # file name of the dynamic loader under lib/
    extensions: tuple[Path, ...]  # copied into lib/pythonX.Y/lib-dynload/
    modules: tuple[PyModule, ...]
    entry_module: str = ENTRY_MODULE
    digest: str = field(default="")

    @property
    def python_name(self) -> str:
        return f"python{self.py_version}"

    @property
    def zip_name(self) -> str:
        return f"python{self.py_version.replace('.', '')}.zip"


def ldd(path: Path) -> tuple[dict[str, Path], Path | None]:
    """Shared libraries of ``path`` as resolved here: ({NEEDED name: file}, loader)."""
    try:
        proc = subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError(f"cannot run ldd on {path}: {e}") from e
    if proc.returncode != 0:
        if "not a dynamic executable" in proc.stderr + proc.stdout:
            return {}, None
        raise InstallError(f"ldd {path} failed: {proc.stderr.strip()}")
    libs: dict[str, Path] = {}
    loader: Path | None = None
    for line in proc.stdout.splitlines():
        if "not found" in line:
            raise InstallError(f"{path} needs a library that is missing here: {line.strip()}")
        m = _LDD_LINE.match(line)
        if m is None or "statically linked" in line:
            continue
        name, target = m.group(1), m.group(2)
        if name is None:
            if target.startswith("/"):
                loader = Path(target)  # the ELF interpreter line
            continue  # linux-vdso.so.1 lives in the kernel
        if target.startswith("/"):
            libs[name] = Path(target)
    return libs, loader


def _stdlib_dirs() -> tuple[Path, Path]:
    """The interpreter's stdlib and lib-dynload directories (not a virtualenv's)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    for entry in sys.path:
        if Path(entry).name == "lib-dynload":
            return stdlib, Path(entry).resolve()
    dest = sysconfig.get_config_var("DESTSHARED")
    if not dest:
        raise InstallError("cannot find the interpreter's lib-dynload directory")
    return stdlib, Path(dest).resolve()


def _package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InstallError(f"package {package} is not importable here")
    top = Path(next(iter(spec.submodule_search_locations))).resolve()
    return top.parents[package.count(".")]


class _ImportTimeFinder(modulefinder.ModuleFinder):
    """ModuleFinder that follows the stdlib only through code run at import time.

    ModuleFinder also follows imports inside every function, which for the stdlib drags
    in tkinter, asyncio, ssl and half the library (60 MB, mostly dead weight). The
    plugin's own modules are still followed everywhere, lazy imports included; a stdlib
    function's lazy import is only reached if the plugin calls it, which its tests do
    through the installed runtime.
    """

    def __init__(self, path: list[str], own_top: str) -> None:
        super().__init__(path=path)
        self._own_top = own_top

    def scan_code(self, co: CodeType, m: modulefinder.Module) -> None:
        name = str(getattr(m, "__name__", ""))
        if name != self._own_top and not name.startswith(self._own_top + "."):
            # Blank out function bodies (keep class bodies: they run at import time);
            # None keeps the constant indexes the opcode scanner relies on.
            co = co.replace(
                co_consts=tuple(
                    None if isinstance(c, CodeType) and c.co_flags & inspect.CO_OPTIMIZED else c
                    for c in co.co_consts
                )
            )
        super().scan_code(co, m)


def find_modules(entry_package: str = ENTRY_PACKAGE) -> tuple[list[PyModule], list[Path]]:
    """The plugin package's modules and the stdlib closure they import (static analysis)."""
    stdlib, dynload = _stdlib_dirs()
    root = _package_root(entry_package)
    top = entry_package.split(".")[0]
    finder = _ImportTimeFinder([str(stdlib), str(dynload), str(root)], own_top=top)
    pkg_dir = root.joinpath(*entry_package.split("."))
    for startup in STARTUP_MODULES:
        finder.import_hook(startup)
    for py in sorted(pkg_dir.glob("*.py")):
        finder.import_hook(entry_package if py.stem == "__init__" else f"{entry_package}.{py.stem}")
    # A name the plugin's own code imports but that is neither builtin nor found in the
    # stdlib or the package would fail at run time on the host: refuse to install.
    builtin = set(sys.builtin_module_names)
    for missing, importers in finder.badmodules.items():
        ours = sorted(i for i in importers if i == top or i.startswith(top + "."))
        if ours and missing.split(".")[0] not in builtin:
            raise InstallError(
                f"{', '.join(ours)} imports {missing}, which is not in the standard library; "
                "the CNI plugin must be standard-library only"
            )
    modules: list[PyModule] = []
    extensions: list[Path] = []
    for name, found in sorted(finder.modules.items()):
        file = getattr(found, "__file__", None)
        if not file:
            continue  # builtin or frozen
        path = Path(file).resolve()
        if path.suffix == ".so":
            if "." in name:
                raise InstallError(f"extension module inside a package is unsupported: {name}")
            extensions.append(path)
            continue
        base = stdlib if path.is_relative_to(stdlib) else root
        if not path.is_relative_to(base):
            raise InstallError(f"module {name} comes from {path}, outside the stdlib")
        arc = path.relative_to(base).with_suffix(".pyc").as_posix()
        modules.append(PyModule(name=name, source=path, arcname=arc))
    return modules, extensions


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def collect_bundle(
    python: Path | None = None,
    entry_package: str = ENTRY_PACKAGE,
    entry_module: str = ENTRY_MODULE,
) -> RuntimeBundle:
    """Inspect this machine and describe the runtime to install (reads, writes nothing).

    ``entry_module`` (inside ``entry_package``) must define ``main() -> int``.
    """
    exe = Path(os.path.realpath(python or sys.executable))
    modules, extensions = find_modules(entry_package)
    libs: dict[str, Path] = {}
    loader: Path | None = None
    for binary in [exe, *extensions]:
        found, interp = ldd(binary)
        libs.update(found)
        loader = loader or interp
    if loader is None:
        raise InstallError(f"{exe} has no ELF interpreter; cannot build a relocatable runtime")
    lib_items = sorted((name, Path(os.path.realpath(p))) for name, p in libs.items())
    lib_items.append((loader.name, Path(os.path.realpath(loader))))
    bundle = RuntimeBundle(
        python=exe,
        py_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        libs=tuple(lib_items),
        loader=loader.name,
        extensions=tuple(sorted(extensions)),
        modules=tuple(modules),
        entry_module=entry_module,
    )
    return _with_digest(bundle)


def _with_digest(b: RuntimeBundle) -> RuntimeBundle:
    # Digest of the inputs (not of the built files: marshal output is not byte-stable).
    h = hashlib.sha256()
    h.update(f"format={FORMAT}\n{sys.version}\n{importlib.util.MAGIC_NUMBER.hex()}\n".encode())
    h.update(f"entry={b.entry_module}\npython={_sha256_file(b.python)}\n".encode())
    for name, path in b.libs:
        h.update(f"lib {name} {_sha256_file(path)}\n".encode())
    for path in b.extensions:
        h.update(f"ext {path.name} {_sha256_file(path)}\n".encode())
    for m in b.modules:
        h.update(f"mod {m.arcname} {_sha256_file(m.source)}\n".encode())
    return RuntimeBundle(
        python=b.python, py_version=b.py_version, libs=b.libs, loader=b.loader,
        extensions=b.extensions, modules=b.modules, entry_module=b.entry_module,
        digest=h.hexdigest(),
    )


def compile_pyc(source: bytes, filename: str) -> bytes:
    """An unchecked hash-based .pyc (PEP 552): valid without its source, never re-checked."""
    code = compile(source, filename, "exec", dont_inherit=True)
    flags = 0b01  # hash-based, check_source off
    return (
        importlib.util.MAGIC_NUMBER
        + flags.to_bytes(4, "little")
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )


def _write_zip(dest: Path, modules: Iterable[PyModule]) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for m in modules:
            info = zipfile.ZipInfo(m.arcname, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            src = m.source.read_bytes()
            zf.writestr(info, compile_pyc(src, m.arcname[:-1]))


def _copy(src: Path, dest: Path, mode: int) -> None:
    shutil.copyfile(src, dest)
    os.chmod(dest, mode)


def build_runtime(bundle: RuntimeBundle, dest: Path) -> None:
    """Write the runtime into the empty directory ``dest``, every file fsync'd."""
    lib = dest / "lib"
    dynload = lib / bundle.python_name / "lib-dynload"
    (dest / "bin").mkdir(parents=True)
    dynload.mkdir(parents=True)
    _copy(bundle.python, dest / "bin" / bundle.python_name, 0o755)
    for name, src in bundle.libs:
        _copy(src, lib / name, 0o755)
    for ext in bundle.extensions:
        _copy(ext, dynload / ext.name, 0o755)
    _write_zip(lib / bundle.zip_name, bundle.modules)
    manifest = {
        "format": FORMAT,
        "digest": bundle.digest,
        "python": sys.version.split()[0],
        "entry_module": bundle.entry_module,
        "loader": bundle.loader,
        "libs": [name for name, _ in bundle.libs],
        "extensions": [e.name for e in bundle.extensions],
        "modules": sorted(m.name for m in bundle.modules),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for path in dest.rglob("*"):
        if path.is_file():
            fsync_file(path)
    for d in (dest, dest / "bin", lib, lib / bundle.python_name, dynload):
        os.chmod(d, 0o755)


def launcher_argv(bundle: RuntimeBundle, version_dir: Path) -> list[str]:
    """What the launcher execs: the bundled loader on the bundled interpreter.

    ``--inhibit-cache`` keeps the host's /etc/ld.so.cache out; ``-I`` ignores PYTHON*
    variables and user site-packages; ``-S`` skips site (nothing to find, ~2 ms saved);
    UTF-8 mode makes stdio independent of the host's locale.
    """
    lib = version_dir / "lib"
    code = f"import sys;from {bundle.entry_module} import main;sys.exit(main())"
    return [
        str(lib / bundle.loader), "--inhibit-cache", "--library-path", str(lib),
        str(version_dir / "bin" / bundle.python_name), "-I", "-S", "-X", "utf8", "-c", code,
    ]


def runtime_size(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for d in paths for p in d.rglob("*") if p.is_file())
