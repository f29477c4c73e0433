"""What the Dockerfile does, checked without a Docker engine: its targets, its build
context, where its virtualenv and launcher land. What the install script builds is run
for real in test_runtime_image_env.py."""

from __future__ import annotations

import fnmatch
import sys
import tomllib
from pathlib import Path

from tests.unit.dockerfile_stages import (
    DOCKERFILE,
    IMAGE_VENV,
    REPO,
    context_allowlist,
    context_copies,
    install_command,
    lineage,
    stages,
    venv_source,
)
from tests.unit.manifests_render import BASE, pod_spec, render, workloads
from vpcnet.install.launcher import PREBUILT, SOURCE

INSTALL_SCRIPT = REPO / "scripts" / "install-image.sh"


def test_base_image_is_python_311_slim_bookworm() -> None:
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE.read_text()
    external = {s.base for s in stages().values() if s.base not in stages()}
    assert external == {"${PYTHON_IMAGE}"}


def test_runtime_is_the_default_target_and_dev_adds_the_harness() -> None:
    names = list(stages())
    assert names[-1] == "runtime"  # a plain `docker build` gives the product image
    for target, role in (("runtime", "runtime"), ("dev", "dev")):
        # The compiler stays in the build stages; both images run on the same base.
        assert "builder" not in [s.name for s in lineage(target)], target
        assert lineage(target)[-1].name == "base"
        build = venv_source(target)
        assert install_command(build)[2:] == [role, IMAGE_VENV], target
    runtime_sources = {s for srcs, _ in context_copies(venv_source("runtime")) for s in srcs}
    dev_sources = {s for srcs, _ in context_copies(venv_source("dev")) for s in srcs}
    assert "vpcnet_sim" not in runtime_sources
    assert dev_sources - runtime_sources == {"vpcnet_sim"}
    assert f"PATH={IMAGE_VENV}/bin:$PATH" in stages()["base"].arguments("ENV")[0]


def test_prebuilt_launcher_lands_where_the_installer_looks() -> None:
    # In the image sys.prefix is the venv; the installer looks under <prefix>/libexec.
    rel = PREBUILT.relative_to(sys.prefix)
    script = INSTALL_SCRIPT.read_text()
    assert f'launcher_dir="$venv/{rel.parent}"' in script
    assert f'"$launcher_dir/{rel.name}"' in script


def test_the_image_venv_is_not_under_a_host_mount() -> None:
    # The agent DaemonSet mounts host directories (/opt/vpcnet: the plugin's runtime);
    # one over the venv would hide the image's own Python environment.
    mounts = {
        m["mountPath"]
        for w in workloads(render(BASE))
        for c in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]
        for m in c.get("volumeMounts", [])
    }
    assert "/opt/vpcnet" in mounts
    venv = Path(IMAGE_VENV)
    assert not [m for m in mounts if venv == Path(m) or Path(m) in venv.parents]


def test_build_context_holds_what_the_image_copies() -> None:
    allowed = context_allowlist()
    for stage in stages().values():
        for sources, _ in stage.copies():
            for src in sources:
                assert (REPO / src).exists(), src
                assert any(fnmatch.fnmatch(src, a) for a in allowed), src
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["vpcnet"]
    assert str(SOURCE.relative_to(REPO / "vpcnet")) in package_data
