"""The product installed alone (no vpcnet-sim) answers ``vpcnet demo`` with one line saying
how to get the harness, and exits 2; doing what that line says makes ``vpcnet demo`` work.

A fresh virtualenv of its own (no pip in it: this venv's pip installs into it with
``--python``), the product from a wheel built from this checkout with this venv's
setuptools (no build isolation, no index), no dependencies (the CLI's dispatch needs none
of them). Only the last test, which runs the install the line says as a user would, builds
the harness in pip's isolated build environment (setuptools from the index or pip's cache).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vpcnet.cli.main import HARNESS_COMMANDS, HARNESS_MISSING

REPO = Path(__file__).resolve().parents[2]


def pip_into(venv: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-deps", *args],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )


def run_vpcnet(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # cwd away from the checkout: nothing of it may be importable but what was installed
    return subprocess.run([venv / "bin" / "vpcnet", *argv], cwd=venv, capture_output=True,
                          text=True, timeout=60, check=False)


def product_only_venv(venv: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    pip_into(venv, str(wheel))
    return venv


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(REPO)], cwd=REPO, check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("vpcnet-*.whl")
    return wheel


@pytest.fixture(scope="module")
def product_only(tmp_path_factory: pytest.TempPathFactory, product_wheel: Path) -> Path:
    return product_only_venv(tmp_path_factory.mktemp("product-only") / "venv", product_wheel)


def test_the_harness_is_not_there(product_only: Path) -> None:
    done = subprocess.run(
        [product_only / "bin" / "python", "-c", "import vpcnet.cli.main, vpcnet_sim"],
        cwd=product_only, capture_output=True, text=True, timeout=60, check=False,
    )
    assert "No module named 'vpcnet_sim'" in done.stderr


@pytest.mark.parametrize("command", HARNESS_COMMANDS)
def test_harness_command_says_how_to_install_it(product_only: Path, command: str) -> None:
    done = run_vpcnet(product_only, command, "--help")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == HARNESS_MISSING.format(command=command) + "\n"
    assert done.stderr.startswith(f"vpcnet {command} needs the vpcnet-sim harness: pip install")


def test_product_commands_still_dispatch(product_only: Path) -> None:
    done = run_vpcnet(product_only, "agent", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vpcnet agent")


def test_the_line_tells_the_truth(tmp_path: Path, product_wheel: Path) -> None:
    """Run the install the line gives (from the checkout, as it says) in another
    product-only venv: then the command is there."""
    venv = product_only_venv(tmp_path / "venv", product_wheel)
    hint = run_vpcnet(venv, "demo").stderr
    install = hint.split(": ", 1)[1].split()
    assert install[:2] == ["pip", "install"]
    pip_into(venv, *install[2:])
    done = run_vpcnet(venv, "demo", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vpcnet demo")
