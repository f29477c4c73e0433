"""The routing numbers vpcnet owns on a node: the ENIs' route tables, the rule priorities.

Both halves of the node's routing use them: ``vpcnet.agent.hostplan`` fills each ENI's
table and writes the per-node rules, ``vpcnet.agent.podnet`` writes each pod's rules
into those tables. Defined once so the halves cannot disagree: a pod rule pointing at
another table than the one holding its ENI's routes sends the pod's replies nowhere.
Pure: no imports.
"""

from __future__ import annotations

MAIN_TABLE = 254  # the kernel's RT_TABLE_MAIN
# Every non-primary ENI has its own table, ENI_TABLE_BASE + its device index: tables
# 101..200 belong to vpcnet (the primary ENI, index 0, uses the main table).
ENI_TABLE_BASE = 100
MAX_DEVICE_INDEX = 100

# Policy-rule priorities. Per pod (podnet): 512 sends traffic to a pod by the main table,
# 1536 sends a pod's traffic out by its ENI's table. Per node (hostplan, SNAT on): 1024
# sends VPC destinations on to the pod rules (goto 1535, a nop anchor right before
# them), 1025 sends the rest to the main table, hence out of the primary ENI.
PRIO_TO_POD = 512
PRIO_VPC_GOTO = 1024
PRIO_LEAVE_VPC = 1025
PRIO_POD_ANCHOR = 1535
PRIO_FROM_POD = 1536
NODE_RULE_PRIORITIES = frozenset({PRIO_VPC_GOTO, PRIO_LEAVE_VPC, PRIO_POD_ANCHOR})


def eni_table(device_index: int) -> int:
    """The route table of the ENI at ``device_index`` (1..MAX_DEVICE_INDEX)."""
    if not 0 < device_index <= MAX_DEVICE_INDEX:
        raise ValueError(f"device index {device_index} has no vpcnet route table")
    return ENI_TABLE_BASE + device_index


def is_eni_table(table: int) -> bool:
    return ENI_TABLE_BASE < table <= ENI_TABLE_BASE + MAX_DEVICE_INDEX
