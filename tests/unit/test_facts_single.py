"""Each fact of the system is spelt in one module (STYLE.md, "One owner per fact").

A key written twice can drift: a taint the watcher adds under one spelling and the
control plane removes under another keeps a node unschedulable; a route-table base
changed in the host half only sends pods' replies to an empty table. The scan reads the
product's syntax, not its text: docstrings and comments may name a fact, code may not
spell it. It imports nothing of vpcnet, so it also runs against an older tree.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("vpcnet", "workers", "beat")

KEYS = "vpcnet/wellknown.py"  # taint, label, annotation and ENI tag keys
ROUTING = "vpcnet/agent/routing.py"  # ENI route tables, policy-rule priorities
SYSCTLS = "vpcnet/host_sysctls.py"  # ip_forward, rp_filter
ATOMIC = "vpcnet/atomicfile.py"  # temp + sync + rename
CREATED_AT = "vpcnet/control/view.py"  # the created-at tag's codec
CREATED_AT_CODEC = frozenset({"created_at_tag", "created_at", "_CREATED_AT_FORMAT"})
KEY_PREFIX = "vpcnet.io/"

# The stdlib-only CNI plugin imports nothing else of vpcnet (tests/unit/test_cni_imports.py),
# so it keeps its own atomic write.
PLUGIN = "vpcnet/cni/plugin.py"

# The allowed exceptions, each with its reason.
ALLOWED_NAMES = {
    # The table of a pod's rule for an EniRecord (None on the primary ENI), computed from
    # routing.ENI_TABLE_BASE; vpcnet/agent/cniserver.py imports it from podnet.
    ("vpcnet/agent/podnet.py", "eni_table"),
}
ALLOWED_RENAMES = {
    # Swaps a fully written, fsync'd runtime directory into place, then fsync_dir().
    ("vpcnet/install/installer.py", "os.rename"),
    # Moves a spooled DEL that is no DEL aside into quarantine/: a move, not a write
    ("vpcnet/agent/cniserver/spool.py", "os.replace"),
    # Binds the agent's socket under a temporary name and renames it into place: a
    # socket, not a written file (H4's split of cniserver.py).
    ("vpcnet/agent/cniserver/transport.py", "os.replace"),
}

SYNC_CALLS = ("os.replace", "os.rename", "os.fsync", "os.fdatasync", "tempfile.mkstemp")


@functools.cache
def product_modules(root: Path = REPO) -> tuple[tuple[str, ast.Module], ...]:
    """(path, syntax tree) of each product module, parsed once per run."""
    found = []
    for top in ROOTS:
        for path in sorted((root / top).rglob("*.py")):
            rel = str(path.relative_to(root))
            if rel == PLUGIN:
                continue
            found.append((rel, ast.parse(path.read_text(), rel)))
    return tuple(found)


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (module, classes, functions)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def strings(tree: ast.Module) -> Iterator[ast.Constant]:
    """String constants in code (f-string parts included), docstrings left out."""
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node


def bound_names(tree: ast.Module) -> set[str]:
    """Names a module defines at its top level (imports do not count)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def dotted_calls(tree: ast.Module) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            yield f"{node.func.value.id}.{node.func.attr}", node.lineno


def owned_names(root: Path = REPO) -> dict[str, str]:
    """name -> its owner module: everything the fact modules define, and the codec."""
    owners = {name: CREATED_AT for name in CREATED_AT_CODEC}
    for owner in (KEYS, ROUTING, SYSCTLS, ATOMIC):
        path = root / owner
        if path.exists():
            owners.update(dict.fromkeys(bound_names(ast.parse(path.read_text())), owner))
    return owners


def routing_numbers(root: Path = REPO) -> set[int]:
    """The table and priority numbers routing.py owns (today's values if it is absent)."""
    path = root / ROUTING
    if not path.exists():
        return {100, 254, 512, 1024, 1025, 1535, 1536}
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value > 1}


def key_spellings(root: Path = REPO) -> list[str]:
    return [f"{rel}:{s.lineno} {s.value!r}" for rel, tree in product_modules(root) if rel != KEYS
            for s in strings(tree) if KEY_PREFIX in s.value]  # "tag:vpcnet.io/..." too


def redefinitions(root: Path = REPO) -> list[str]:
    owners = owned_names(root)
    return [f"{rel} defines {name} (owned by {owners[name]})"
            for rel, tree in product_modules(root) for name in sorted(bound_names(tree))
            if name in owners and owners[name] != rel and (rel, name) not in ALLOWED_NAMES]


ROUTING_MODULES = ("vpcnet.agent.routing", "vpcnet.agent.nlbatch", "vpcnet.agent.hostplan")


def does_routing(rel: str, tree: ast.Module) -> bool:
    """The module plans or programs routes: it is, or imports, the routing numbers, the
    host plan or netlink."""
    modules = {rel.removesuffix(".py").replace("/", ".")}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {f"{n.module}.{a.name}" for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module for a in n.names}
    return any(m.split(".")[0] == "pyroute2" or m.startswith(ROUTING_MODULES) for m in modules)


def spelt_routing_numbers(root: Path = REPO) -> list[str]:
    """Routing numbers written as numbers (the base as ``100 + x``) in routing code."""
    numbers = routing_numbers(root)
    base = min(numbers)
    found = []
    for rel, tree in product_modules(root):
        if rel == ROUTING or not does_routing(rel, tree):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                if any(isinstance(s, ast.Constant) and s.value == base for s in (node.left, node.right)):
                    found.append(f"{rel}:{node.lineno} {base} + ...")
            elif (isinstance(node, ast.Constant) and type(node.value) is int
                    and node.value in numbers - {base}):
                found.append(f"{rel}:{node.lineno} {node.value}")
    return found


def sysctl_spellings(root: Path = REPO) -> list[str]:
    return [f"{rel}:{s.lineno} {s.value!r}" for rel, tree in product_modules(root) if rel != SYSCTLS
            for s in strings(tree) if s.value.startswith("net/ipv4/") or "rp_filter" in s.value]


def hand_written_atomic_writes(root: Path = REPO) -> list[str]:
    return [f"{rel}:{line} {call}" for rel, tree in product_modules(root) if rel != ATOMIC
            for call, line in dotted_calls(tree)
            if call in SYNC_CALLS and (rel, call) not in ALLOWED_RENAMES]


def test_vpcnet_keys_are_spelt_only_in_wellknown() -> None:
    assert key_spellings() == []


def test_no_module_redefines_a_fact_another_owns() -> None:
    assert redefinitions() == []


def test_route_tables_and_priorities_are_spelt_only_in_routing() -> None:
    assert spelt_routing_numbers() == []


def test_sysctl_keys_are_spelt_only_in_host_sysctls() -> None:
    assert sysctl_spellings() == []


def test_atomic_writes_go_through_atomicfile() -> None:
    assert hand_written_atomic_writes() == []


def test_fact_modules_are_pure() -> None:
    """The owners sit at the bottom of the layers: constants import nothing at all, the
    atomic-write helper only the standard library."""
    allowed = {KEYS: {"__future__"}, ROUTING: {"__future__"}, SYSCTLS: {"__future__"},
               ATOMIC: {"__future__", "enum", "os", "tempfile", "pathlib"}}
    for owner, roots in allowed.items():
        tree = ast.parse((REPO / owner).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module}
        assert imported <= roots, owner


def test_the_scan_sees_what_it_looks_for() -> None:
    """Not vacuous: the owners themselves hold what the other modules may not."""
    owners = owned_names()
    assert owners["NOT_READY_TAINT"] == KEYS and owners["ENI_TABLE_BASE"] == ROUTING
    assert owners["RP_FILTER_LOOSE"] == SYSCTLS and owners["atomic_write_bytes"] == ATOMIC
    keys = ast.parse((REPO / KEYS).read_text())
    assert {s.value for s in strings(keys)} >= {"vpcnet.io/not-ready", "vpcnet.io/created-at"}
    assert {100, 254, 512, 1536} <= routing_numbers()
    atomic = ast.parse((REPO / ATOMIC).read_text())
    assert {"os.rename", "os.fsync", "os.fdatasync", "tempfile.mkstemp"} <= {
        c for c, _ in dotted_calls(atomic)}
