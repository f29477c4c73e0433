"""Static analysis for the RBAC test: which Kubernetes API calls each component makes.

1. ``vpcnet/kube/client/``: for every ``KubeClient`` method (found through its bases, the
   per-resource parts, across the package's modules), the HTTP requests it sends
   (``self._json``/``self._open`` with a method and a path template), followed through
   its calls to other methods of the class; each request maps to an RBAC
   (apiGroup, resource, verb).
2. A component's code: the first-party modules reachable by imports from its entry
   modules; every call of a ``KubeClient`` method name in them counts as a use.

What it finds is compared with a literal table in the RBAC test, never trusted as the
expectation itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "vpcnet" / "kube" / "client"  # the adapter package, one module per resource
CLIENT_PACKAGE = "vpcnet.kube.client"
FIRST_PARTY = ("vpcnet", "workers", "beat")
TRANSPORT = ("_json", "_open")  # KubeClient's HTTP core: (method, path, ...)
_PATH_RE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/(?:namespaces/\{\}/)?"
    r"(?P<resource>[a-z]+)(?P<named>/\{\})?(?:/(?P<sub>[a-z]+))?$"
)
Triple = tuple[str, str, str]  # (apiGroup, resource, verb)


class _Str:
    """Evaluate a string expression to a template where unknown values become ``{}``.

    Calls of the client's own helpers (``self._lease_path(ns, name)``) are evaluated with
    the passed parameters bound to ``{}`` and defaulted ones to "" (falsy).
    """

    def __init__(self, env: Mapping[str, str | None], methods: Mapping[str, ast.FunctionDef]) -> None:
        self.env = env
        self.methods = methods

    def eval(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                else:
                    assert isinstance(v, ast.FormattedValue)
                    inner = self.eval(v.value)
                    parts.append("{}" if inner is None else inner)
            return "".join(parts)
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.IfExp):
            cond = self.eval(node.test) if isinstance(node.test, ast.Name) else None
            return self.eval(node.body if cond not in ("", None) else node.orelse)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
            and node.func.attr in self.methods
        ):
            helper = self.methods[node.func.attr]
            params = [a.arg for a in helper.args.args[1:]]
            bound: dict[str, str | None] = {
                p: ("{}" if i < len(node.args) else "") for i, p in enumerate(params)
            }
            henv = _locals(helper, bound, self.methods)
            for sub in ast.walk(helper):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    return _Str(henv, self.methods).eval(sub.value)
        return None


def client_sources() -> dict[str, str]:
    """Module name -> source, for every module of the client package."""
    return {
        CLIENT_PACKAGE if f.stem == "__init__" else f"{CLIENT_PACKAGE}.{f.stem}": f.read_text()
        for f in sorted(CLIENT.glob("*.py"))
    }


def _classes(sources: Mapping[str, str]) -> dict[str, tuple[str, ast.ClassDef]]:
    """Class name -> (module, definition), over all modules (names must be unique)."""
    out: dict[str, tuple[str, ast.ClassDef]] = {}
    for module, source in sources.items():
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                assert node.name not in out, f"class {node.name} defined in two modules"
                out[node.name] = (module, node)
    return out


def _composed(
    classes: Mapping[str, tuple[str, ast.ClassDef]], cls: str
) -> list[tuple[str, ast.ClassDef]]:
    """``cls`` and, transitively, its bases among ``classes`` (each once)."""
    assert cls in classes, f"class {cls} not found"
    found: dict[str, tuple[str, ast.ClassDef]] = {}
    todo = [cls]
    while todo:
        name = todo.pop()
        if name in found or name not in classes:
            continue
        found[name] = classes[name]
        for base in classes[name][1].bases:
            todo.append(base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", ""))
    return list(found.values())


def _methods(
    parts: Iterable[tuple[str, ast.ClassDef]],
) -> tuple[dict[str, ast.FunctionDef], dict[str, str]]:
    """The methods of the composed class (name -> definition) and the module of each.

    A name defined by two parts would leave the winner to the MRO, which this analysis
    does not model: refuse it.
    """
    methods: dict[str, ast.FunctionDef] = {}
    modules: dict[str, str] = {}
    for module, node in parts:
        for f in node.body:
            if isinstance(f, ast.FunctionDef):
                assert f.name not in methods, f"{f.name} defined by two parts of the client"
                methods[f.name] = f
                modules[f.name] = module
    return methods, modules


def _locals(
    fn: ast.FunctionDef, env: dict[str, str | None], methods: Mapping[str, ast.FunctionDef]
) -> dict[str, str | None]:
    out = dict(env)
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _Str(out, methods).eval(node.value)
            if value is not None:
                out[node.targets[0].id] = value
    return out


def _to_triple(method: str, path: str, watch: bool) -> Triple:
    # an object name built from parts ("{}.vpcnet.{}") is still just a name
    path = "/".join("{}" if "{}" in seg else seg for seg in path.split("/"))
    m = _PATH_RE.match(path)
    assert m, f"unrecognised API path {path!r}"
    resource = m["resource"] + (f"/{m['sub']}" if m["sub"] else "")
    named = bool(m["named"])
    verb = {
        ("GET", True): "get",
        ("GET", False): "watch" if watch else "list",
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }[(method, named)]
    return (m["group"] or "", resource, verb)


def client_requests(sources: Mapping[str, str] | None = None) -> dict[str, set[Triple]]:
    """``KubeClient`` method name -> the RBAC triples it needs (transitively).

    ``sources`` (module -> text) defaults to the client package.
    """
    parts = _composed(_classes(client_sources() if sources is None else sources), "KubeClient")
    methods, _ = _methods(parts)
    direct: dict[str, set[Triple]] = {}
    calls: dict[str, set[str]] = {}
    for name, fn in methods.items():
        direct[name] = set()
        calls[name] = set()
        if name in TRANSPORT:
            continue
        env = _locals(fn, {}, methods)
        watch = any(
            isinstance(n, ast.Tuple)
            and [getattr(e, "value", None) for e in n.elts] == ["watch", "true"]
            for n in ast.walk(fn)
        )
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func
            if not (isinstance(target.value, ast.Name) and target.value.id == "self"):
                continue
            if target.attr in TRANSPORT:
                verb = node.args[0]
                assert isinstance(verb, ast.Constant), f"{name}: non-literal HTTP method"
                path = _Str(env, methods).eval(node.args[1])
                assert path is not None, f"{name}: cannot resolve the request path"
                direct[name].add(_to_triple(str(verb.value), path, watch))
            elif target.attr in methods:
                calls[name].add(target.attr)

    def closure(name: str, seen: set[str]) -> set[Triple]:
        out = set(direct[name])
        for callee in calls[name] - seen:
            out |= closure(callee, seen | {callee})
        return out

    return {name: closure(name, {name}) for name in methods if not name.startswith("_")}


def request_methods_by_module(sources: Mapping[str, str] | None = None) -> dict[str, set[str]]:
    """Module -> the public ``KubeClient`` methods it defines that send requests."""
    sources = client_sources() if sources is None else sources
    _, modules = _methods(_composed(_classes(sources), "KubeClient"))
    out: dict[str, set[str]] = {}
    for name, needs in client_requests(sources).items():
        if needs:
            out.setdefault(modules[name], set()).add(name)
    return out


def unattributed_requests(sources: Mapping[str, str] | None = None) -> list[str]:
    """Requests (``_json``/``_open`` calls) in the package that no ``KubeClient`` method
    makes on ``self``, as ``module:line``: a part not composed into the client, or a
    module-level function, would send them unseen by the RBAC and contract checks."""
    sources = client_sources() if sources is None else sources
    seen = {
        (module, node.lineno, node.col_offset)
        for module, cls in _composed(_classes(sources), "KubeClient")
        for node in ast.walk(cls)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TRANSPORT
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    }
    missed = sorted(
        (module, node.lineno)
        for module, source in sources.items()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TRANSPORT
        and (module, node.lineno, node.col_offset) not in seen
    )
    return [f"{module}:{line}" for module, line in missed]


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_closure(entries: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, Path]:
    """First-party modules reachable by imports (at any depth in the code) from ``entries``."""
    excluded = tuple(exclude)
    todo = list(entries)
    found: dict[str, Path] = {}
    while todo:
        mod = todo.pop()
        if mod in found or mod.startswith(excluded):
            continue
        path = _module_file(mod)
        if path is None:
            continue
        found[mod] = path
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n.split(".")[0] in FIRST_PARTY:
                    parts = n.split(".")
                    todo.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def methods_defined_elsewhere(names: Iterable[str]) -> set[str]:
    """Method names that some other first-party class defines too (e.g. the Redis state
    adapter's ``read_node``): for those, the receiver decides."""
    wanted = set(names)
    out: set[str] = set()
    for root in FIRST_PARTY:
        for path in (REPO / root).rglob("*.py"):
            if path.is_relative_to(CLIENT):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    out |= {f.name for f in node.body if isinstance(f, ast.FunctionDef)} & wanted
    return out


def used_methods(
    files: Mapping[str, Path], names: Iterable[str], aliases: Mapping[str, set[str]]
) -> set[str]:
    """KubeClient methods called in ``files`` (module -> path).

    A call counts when its method name is KubeClient's alone, or its receiver is named
    like the client (``ctx.kube``, ``self._kube``), or is a per-module alias of it.
    """
    wanted = set(names)
    ambiguous = methods_defined_elsewhere(wanted)
    used: set[str] = set()
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            if name not in wanted:
                continue
            receiver = _receiver_name(node.func.value)
            if (
                name not in ambiguous
                or "kube" in receiver.lower()
                or receiver in aliases.get(module, set())
            ):
                used.add(name)
    return used


# Receivers that hold a KubeClient under another name, per module.
ALIASES = {"vpcnet.kube.leader": {"_store"}}  # LeaderElector's LeaseStore (a KubeClient)


def component_needs(entries: Iterable[str]) -> set[Triple]:
    requests = client_requests()
    files = module_closure(entries, exclude=("vpcnet.kube.client",))
    out: set[Triple] = set()
    for method in used_methods(files, requests, ALIASES):
        out |= requests[method]
    return out
