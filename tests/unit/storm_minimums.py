"""The storm's expected minimum EC2 calls per joining node, written out by hand.

Full mode fills every ENI at once: the primary's secondaries in one
AssignPrivateIpAddresses, then each further ENI of the type created with its IPs
(CreateNetworkInterface), attached and set to delete on termination (Modify...).
Warm mode (``warm_eni_target`` 1) tops the primary up to one ENI's worth of IPs; prefix
mode (``warm_prefix_target`` 1) assigns one /28 to it: one call after the describe.
ENIs per type (AWS): t3.nano 2, t3.medium 3, m5.large 3, m5.xlarge 4, c5.18xlarge 15.
"""

from __future__ import annotations


def _full(created_enis: int) -> dict[str, int]:
    return {
        "DescribeInstances": 1, "AssignPrivateIpAddresses": 1,
        "CreateNetworkInterface": created_enis, "AttachNetworkInterface": created_enis,
        "ModifyNetworkInterfaceAttribute": created_enis,
    }


_ONE_CALL = {"DescribeInstances": 1, "AssignPrivateIpAddresses": 1}

# (instance type, mode) -> EC2 action -> calls
MIN_CALLS: dict[tuple[str, str], dict[str, int]] = {
    ("t3.nano", "full"): _full(1),
    ("t3.medium", "full"): _full(2),
    ("m5.large", "full"): _full(2),
    ("m5.xlarge", "full"): _full(3),
    ("c5.18xlarge", "full"): _full(14),
    **{(t, mode): _ONE_CALL
       for t in ("t3.nano", "t3.medium", "m5.large", "m5.xlarge", "c5.18xlarge")
       for mode in ("warm", "prefix")},
}
