"""What the Dockerfile does, run directly (no Docker engine here): its launcher build step,
and the installer using that prebuilt launcher, as the image's init container does."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from vpcnet.install import install, verify_plugin
from vpcnet.install.launcher import PREBUILT, SOURCE

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def run_steps() -> list[str]:
    """The Dockerfile's RUN commands, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[4:].strip() for line in joined.splitlines() if line.startswith("RUN ")]


def test_base_image_is_python_311_slim_bookworm() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE
    assert DOCKERFILE.count("FROM ${PYTHON_IMAGE}") == 2


def test_prebuilt_launcher_lands_where_the_installer_looks() -> None:
    # In the image sys.prefix is /usr/local; the installer looks under <prefix>/libexec.
    rel = PREBUILT.relative_to(PREBUILT.parents[2])
    assert f"/usr/local/{rel}" in DOCKERFILE


def test_build_context_holds_what_the_image_copies() -> None:
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*"  # allowlist
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", DOCKERFILE, flags=re.M)
    for sources in copied:
        for src in sources.split():
            assert (REPO / src).exists(), src
            assert any(fnmatch.fnmatch(src, a) for a in allowed), src
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["vpcnet"]
    assert str(SOURCE.relative_to(REPO / "vpcnet")) in package_data


def test_dockerfile_launcher_step_builds_a_working_launcher(tmp_path: Path) -> None:
    (step,) = [s for s in run_steps() if "launcher.c" in s]
    gcc = shlex.split(step.split("&&")[-1])
    assert gcc[0] == "gcc"
    out_index = gcc.index("-o") + 1
    built = tmp_path / "vpcnet-cni-launcher"
    gcc[out_index] = str(built)
    gcc[-1] = str(REPO / gcc[-1])
    proc = subprocess.run(gcc, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    ldd = subprocess.run(["ldd", str(built)], capture_output=True, text=True, check=False)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr
    # The init container's command, with the image's prebuilt launcher.
    result = install(tmp_path / "bin", tmp_path / "rt", launcher=built)
    answer = verify_plugin(result.plugin)
    assert "1.1.0" in answer["supportedVersions"]
    assert json.loads((result.version_dir / "manifest.json").read_text())["digest"] == result.digest
