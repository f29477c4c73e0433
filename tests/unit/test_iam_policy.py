"""manifests/iam-policy.json grants exactly the EC2 actions vpcnet/aws/ec2.py calls, and
scopes every mutating one by the cluster tag (or the VPC) where AWS allows it.

The expected actions are a literal list here, not the scanner's output: a new EC2 call in
the adapter, a grant added to or dropped from the policy, or a scanner that stops seeing
a call shape each fails a test until this list is changed on purpose.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from vpcnet.wellknown import TAG_CLUSTER

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "manifests" / "iam-policy.json"
EC2_ADAPTER = REPO / "vpcnet" / "aws" / "ec2.py"
ENI_ARN = "arn:aws:ec2:*:*:network-interface/*"
# Where the product may import boto3: the adapter only (the harness, vpcnet_sim, is not scanned).
BOTO3_ALLOWED = {Path("vpcnet/aws/ec2.py")}
# Every EC2 action vpcnet calls; CreateTags because CreateNetworkInterface tags on create.
EC2_ACTIONS = frozenset({
    "AssignIpv6Addresses",
    "AssignPrivateIpAddresses",
    "AttachNetworkInterface",
    "CreateNetworkInterface",
    "CreateTags",
    "DeleteNetworkInterface",
    "DescribeInstanceTypes",
    "DescribeInstances",
    "DescribeNetworkInterfaces",
    "DescribeSubnets",
    "DetachNetworkInterface",
    "ModifyNetworkInterfaceAttribute",
    "UnassignIpv6Addresses",
    "UnassignPrivateIpAddresses",
})


def called_actions(source: str) -> set[str]:
    """EC2 actions the adapter calls: ``<x>.call("Action", ...)`` / ``<x>._pages("Action", ...)``,
    plus CreateTags when it tags on create (TagSpecifications needs ec2:CreateTags)."""
    tree = ast.parse(source)
    actions: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("call", "_pages")
            and node.args
        ):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                actions.add(first.value)
        if isinstance(node, ast.Constant) and node.value == "TagSpecifications":
            actions.add("CreateTags")
    return actions


def statements() -> list[dict[str, Any]]:
    doc = json.loads(POLICY.read_text())
    assert doc["Version"] == "2012-10-17"
    out = doc["Statement"]
    assert isinstance(out, list) and out
    return out


def as_list(v: str | list[str]) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def test_adapter_call_scan_sees_every_call_shape() -> None:
    src = 'self.call("A", X=1)\nself._pages("B", "K")\nself.call(action)\nd = {"TagSpecifications": []}'
    assert called_actions(src) == {"A", "B", "CreateTags"}


def test_the_adapter_calls_exactly_the_listed_actions() -> None:
    assert called_actions(EC2_ADAPTER.read_text()) == EC2_ACTIONS


def test_policy_grants_exactly_the_listed_actions() -> None:
    granted: set[str] = set()
    for st in statements():
        assert st["Effect"] == "Allow" and st.get("Sid")
        for action in as_list(st["Action"]):
            assert action.startswith("ec2:") and "*" not in action, action
            granted.add(action.removeprefix("ec2:"))
    assert granted == EC2_ACTIONS


def test_no_other_module_calls_ec2() -> None:
    """The adapter is the only EC2 caller, so its calls are all the policy must cover."""
    offenders = []
    for root in ("vpcnet", "workers", "beat"):
        for path in (REPO / root).rglob("*.py"):
            rel = path.relative_to(REPO)
            if rel in BOTO3_ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("boto3", "botocore") for n in names):
                    offenders.append(str(rel))
    assert offenders == []


def _conditions(st: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for block in st.get("Condition", {}).values():
        flat.update(block)
    return flat


@pytest.mark.parametrize(
    ("action", "required_key"),
    [
        ("DeleteNetworkInterface", f"ec2:ResourceTag/{TAG_CLUSTER}"),
        ("ModifyNetworkInterfaceAttribute", f"ec2:ResourceTag/{TAG_CLUSTER}"),
        ("DetachNetworkInterface", f"ec2:ResourceTag/{TAG_CLUSTER}"),
        ("AttachNetworkInterface", f"ec2:ResourceTag/{TAG_CLUSTER}"),
        ("CreateTags", "ec2:CreateAction"),
    ],
)
def test_eni_lifecycle_is_scoped_by_the_cluster_tag(action: str, required_key: str) -> None:
    """On ENIs, these actions are allowed only in statements that carry the condition."""
    on_enis = [
        st for st in statements()
        if f"ec2:{action}" in as_list(st["Action"]) and ENI_ARN in as_list(st["Resource"])
    ]
    assert on_enis, f"{action} is not granted on ENIs"
    for st in on_enis:
        assert required_key in _conditions(st), st["Sid"]


def test_create_requires_the_cluster_tag_on_the_new_eni() -> None:
    creates = [st for st in statements() if "ec2:CreateNetworkInterface" in as_list(st["Action"])]
    eni = [st for st in creates if ENI_ARN in as_list(st["Resource"])]
    assert len(eni) == 1
    assert _conditions(eni[0])[f"aws:RequestTag/{TAG_CLUSTER}"] == "CLUSTER_NAME"
    # subnets and security groups are existing resources: no request tag, but the VPC
    for st in creates:
        if st is not eni[0]:
            assert "ec2:Vpc" in _conditions(st)


def test_addresses_on_untagged_enis_only_within_the_vpc() -> None:
    """The plan assigns secondary IPs to each node's primary ENI, which vpcnet did not
    create (no tag): allowed, but only on ENIs of the cluster's VPC."""
    for st in statements():
        if ENI_ARN not in as_list(st["Resource"]):
            continue
        cond = _conditions(st)
        assert f"ec2:ResourceTag/{TAG_CLUSTER}" in cond or "ec2:Vpc" in cond or \
            f"aws:RequestTag/{TAG_CLUSTER}" in cond or "ec2:CreateAction" in cond, st["Sid"]


def test_only_reads_are_unscoped() -> None:
    for st in statements():
        if as_list(st["Resource"]) == ["*"]:
            assert all(a.startswith("ec2:Describe") for a in as_list(st["Action"])), st["Sid"]
