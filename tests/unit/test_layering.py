"""The layout shows the architecture, and this keeps it so: pure logic imports no I/O
library, and each I/O library is imported only by its adapter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IO_LIBS = ("boto3", "botocore", "kubernetes", "redis", "pyroute2", "celery", "kombu", "moto")

PURE = (
    "vpcnet.domain", "vpcnet.errors", "vpcnet.settings", "vpcnet.plan", "vpcnet.limits",
    "vpcnet.aws.buckets", "vpcnet.state.keys", "vpcnet.control.view", "vpcnet.ops.audit",
    "vpcnet.agent.ipam", "vpcnet.agent.hostplan", "vpcnet.kube.nodeplan",
    "vpcnet.state.records", "vpcnet.control.inputs", "vpcnet.control.writeback",
)

# library -> the only product modules allowed to import it (the harness, vpcnet_sim, is
# another package and not scanned)
ADAPTERS = {
    "boto3": {"vpcnet/aws/ec2.py"},
    "botocore": {"vpcnet/aws/ec2.py"},
    "kubernetes": {"vpcnet/kube/client.py"},
    "pyroute2": {"vpcnet/agent/nlbatch.py", "vpcnet/agent/podnet.py", "vpcnet/agent/hostnet.py"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def product_files() -> list[Path]:
    return [*REPO.glob("vpcnet/**/*.py"), *REPO.glob("workers/*.py"), *REPO.glob("beat/*.py")]


def test_pure_modules_load_no_io_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(PURE)!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(IO_LIBS)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_io_libraries_only_in_their_adapters() -> None:
    offenders: dict[str, list[str]] = {}
    for f in product_files():
        rel = str(f.relative_to(REPO))
        for lib, allowed in ADAPTERS.items():
            if lib in imported_roots(f) and rel not in allowed:
                offenders.setdefault(lib, []).append(rel)
    assert offenders == {}


def test_the_check_sees_imports() -> None:
    """The scan is not vacuous: it finds the adapters' own imports."""
    assert "boto3" in imported_roots(REPO / "vpcnet/aws/ec2.py")
    assert "kubernetes" in imported_roots(REPO / "vpcnet/kube/client.py")


def test_product_imports_nothing_from_the_harness() -> None:
    offenders = [str(f.relative_to(REPO)) for f in product_files() if "vpcnet_sim" in imported_roots(f)]
    assert offenders == []
