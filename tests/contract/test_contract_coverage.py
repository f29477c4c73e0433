"""The contract covers every call vpcnet makes: each KubeClient method that sends a
request (tests/unit/kube_calls.py finds them in the client) is called by a contract test.

review_token (TokenReview) is the one exception: the emulator does not issue or review
ServiceAccount tokens, so it is proven on the real apiserver alone
(tests/integration/test_apiserver_tokenreview.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.kube_calls import client_requests

HERE = Path(__file__).parent
APISERVER_ONLY = {"review_token"}


def called_methods() -> set[str]:
    names: set[str] = set()
    for f in HERE.glob("test_contract_*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def test_every_request_sending_method_has_a_contract_test() -> None:
    methods = {name for name, needs in client_requests().items() if needs}
    assert {"list_nodes", "watch_nodes", "emit_event", "update_lease"} <= methods  # not vacuous
    assert methods - APISERVER_ONLY - called_methods() == set()
