"""The layout shows the architecture, and import-linter keeps it so: the contracts live in
pyproject.toml (``[tool.importlinter]``) and ``scripts/test.sh`` runs ``lint-imports``.

These tests check the checker: every contract holds on the code, and every contract can
break (one violating import per contract, added to a copy of the code, breaks it). They
also import the pure layer for real, which a static import graph cannot stand in for: a
package's ``__init__`` or an ``importlib`` call could still load an I/O library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
IO_LIBS = ("boto3", "botocore", "kubernetes", "urllib3", "redis", "pyroute2", "celery", "kombu", "moto")

# contract id -> (file, an import that breaks that contract and no rule the file is
# exempt from). Files that other parts of issue 15 split (agent/cniserver.py, watcher.py,
# kube/client.py) are avoided, so the cases survive the split.
VIOLATIONS = {
    "layers": ("vpcnet/plan.py", "import vpcnet.control.provision"),
    "boto3": ("vpcnet/control/gc.py", "import botocore"),
    "kubernetes": ("vpcnet/ops/collect.py", "import kubernetes"),
    "pyroute2": ("vpcnet/agent/conflist.py", "import pyroute2"),
    "redis": ("vpcnet/control/ready.py", "import redis"),
    "celery": ("vpcnet/state/lock.py", "import celery"),
    "kombu": ("vpcnet/kube/watchstate.py", "import kombu"),
    "moto": ("vpcnet/aws/ec2.py", "import moto"),
    "programs": ("vpcnet/control/release.py", "import vpcnet.agent.ipam"),
    "cni-plugin": ("vpcnet/cni/plugin.py", "import vpcnet.domain"),
    "agent": ("vpcnet/agent/checkpoint.py", "import vpcnet.kube.types"),
    "watcher": ("vpcnet/cli/watcher_cmd.py", "import workers"),
    "control": ("vpcnet/control/reconcile.py", "import celery"),
    "harness": ("vpcnet/ops/audit.py", "import vpcnet_sim.vpc"),
}


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def pure_modules() -> list[str]:
    """The bottom layer of the layers contract: ``a : b : c``."""
    (layers,) = (c for c in contracts() if c["id"] == "layers")
    return [m.strip() for m in layers["layers"][-1].split(":")]


def lint_imports(root: Path) -> tuple[int, str]:
    """``lint-imports`` on the code under ``root`` (first on the path, so a copy is what
    gets analysed), one line per contract (a wide console keeps a name on its line)."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "1000", "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def verdicts(output: str) -> dict[str, str]:
    """Contract id -> KEPT or BROKEN, from the summary lines ``<name> KEPT|BROKEN``."""
    by_name = {c["name"]: c["id"] for c in contracts()}
    found: dict[str, str] = {}
    for line in output.splitlines():
        for word in ("KEPT", "BROKEN"):
            name = line.removesuffix(f" {word}").split(f" {word} (")[0]
            if name in by_name and (line.endswith(word) or f" {word} (" in line):
                found[by_name[name]] = word
    return found


def copy_of_the_code(dest: Path) -> Path:
    for package in ("vpcnet", "workers", "beat"):
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_every_contract_is_kept() -> None:
    rc, output = lint_imports(REPO)
    assert verdicts(output) == {c["id"]: "KEPT" for c in contracts()}, output
    assert rc == 0


def test_every_contract_breaks_on_a_violating_import(tmp_path: Path) -> None:
    """Not vacuous: each contract has a case, and each case breaks its contract."""
    assert set(VIOLATIONS) == {c["id"] for c in contracts()}
    code = copy_of_the_code(tmp_path)
    for path, statement in VIOLATIONS.values():
        with (code / path).open("a") as f:
            f.write(f"\n{statement}  # violation added by {__name__}\n")
    rc, output = lint_imports(code)
    assert verdicts(output) == {c["id"]: "BROKEN" for c in contracts()}, output
    assert rc != 0


def test_pure_modules_load_no_io_library() -> None:
    modules = pure_modules()
    assert "vpcnet.plan" in modules and "vpcnet.domain" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(IO_LIBS)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
