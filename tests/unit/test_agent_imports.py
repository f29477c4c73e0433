"""The agent has no AWS credentials and never imports boto3 (nor the Kubernetes client)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("boto3", "botocore", "kubernetes", "celery")


def test_agent_process_imports_no_aws_or_kubernetes_sdk() -> None:
    code = (
        "import sys, json\n"
        "from vpcnet.cli.main import build_parser\n"
        "build_parser('agent')\n"
        "import vpcnet.agent.main, vpcnet.agent.cniserver, vpcnet.install\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out) == []
