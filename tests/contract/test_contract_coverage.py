"""The contract covers every call vpcnet makes: each KubeClient method that sends a
request (tests/unit/kube_calls.py finds them in the client package, module by module,
through KubeClient's bases) is called by a contract test.

review_token (TokenReview) is the one exception: the emulator does not issue or review
ServiceAccount tokens, so it is proven on the real apiserver alone
(tests/integration/test_apiserver_tokenreview.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.kube_calls import CLIENT_PACKAGE, request_methods_by_module, unattributed_requests

HERE = Path(__file__).parent
APISERVER_ONLY = {"review_token"}
# The client's per-resource parts; each must be found sending requests (not vacuous).
RESOURCE_PARTS = {"nodes", "taints", "node_watch", "events", "leases", "pods", "tokenreviews"}


def called_methods() -> set[str]:
    names: set[str] = set()
    for f in HERE.glob("test_contract_*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def test_every_request_sending_method_has_a_contract_test() -> None:
    by_module = request_methods_by_module()
    assert set(by_module) == {f"{CLIENT_PACKAGE}.{part}" for part in RESOURCE_PARTS}
    methods = set().union(*by_module.values())
    assert {"list_nodes", "watch_nodes", "emit_event", "update_lease"} <= methods
    missing = {
        module: names - APISERVER_ONLY - called_methods() for module, names in by_module.items()
    }
    assert {module: names for module, names in missing.items() if names} == {}


def test_every_request_in_the_client_package_is_a_kubeclient_method() -> None:
    """A part left out of KubeClient's bases, or a module-level function sending requests,
    would escape both this coverage check and the RBAC analysis."""
    assert unattributed_requests() == []
