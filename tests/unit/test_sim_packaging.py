"""The two distributions split the repo cleanly: ``vpcnet`` ships only the product, and
``vpcnet-sim`` (./vpcnet_sim, the directory is the import package) ships every subpackage
of the harness, whose subpackages its pyproject lists by hand."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "vpcnet_sim"


def pyproject(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def test_harness_lists_every_subpackage() -> None:
    # a build/ left by an old setuptools that ignores [tool.distutils.build] is not source
    on_disk = {
        ".".join(("vpcnet_sim", *init.parent.relative_to(HARNESS).parts))
        for init in HARNESS.rglob("__init__.py")
        if "build" not in init.relative_to(HARNESS).parts
    }
    listed = set(pyproject(HARNESS / "pyproject.toml")["tool"]["setuptools"]["packages"])
    assert listed == on_disk


def test_harness_is_its_own_directory() -> None:
    setuptools = pyproject(HARNESS / "pyproject.toml")["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"vpcnet_sim": "."}


def test_product_distribution_ships_no_harness() -> None:
    include = pyproject(REPO / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {name.split(".")[0] for name in find_packages(where=str(REPO), include=include)}
    assert roots == {"vpcnet", "workers", "beat"}


def test_same_version_both_ways() -> None:
    product = pyproject(REPO / "pyproject.toml")["project"]
    harness = pyproject(HARNESS / "pyproject.toml")["project"]
    assert harness["version"] == product["version"]
    assert f"vpcnet=={product['version']}" in harness["dependencies"]
    for extra in ("sim", "test"):
        assert f"vpcnet-sim=={harness['version']}" in product["optional-dependencies"][extra]
