"""The watcher's per-node decision (pure)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

from vpcnet.domain import EniRecord, NodePhase
from vpcnet.kube.nodeplan import (
    ControlView,
    ProvisionArgs,
    plan_node,
    plan_status_summary,
    projection_of,
)
from vpcnet.kube.types import NodeObj, Taint
from vpcnet.state.records import AgentRecord
from vpcnet.wellknown import INSTANCE_ID_LABEL, NOT_READY_TAINT, STATUS_ANNOTATION

TAINT = Taint(NOT_READY_TAINT, "NoSchedule")
NODE = NodeObj(name="n1", provider_id="aws:///us-east-1a/i-0abc", labels={"role": "worker"})
NONE = ControlView()


def test_new_node_is_tainted_labelled_and_provisioned() -> None:
    plan = plan_node(NODE, first_sight=True, last_projection=None, view=NONE)
    assert plan.add_taint
    assert plan.labels == {INSTANCE_ID_LABEL: "i-0abc"}
    assert plan.provision == ProvisionArgs("n1", "i-0abc", "us-east-1a")
    assert not plan.node_ready and plan.warning is None


def test_new_node_already_tainted_and_labelled_only_provisions() -> None:
    node = replace(NODE, taints=(TAINT,), labels={**NODE.labels, INSTANCE_ID_LABEL: "i-0abc"})
    plan = plan_node(node, first_sight=True, last_projection=None, view=NONE)
    assert not plan.add_taint and not plan.labels and plan.provision is not None


def test_unchanged_node_needs_nothing() -> None:
    node = replace(NODE, taints=(TAINT,), labels={**NODE.labels, INSTANCE_ID_LABEL: "i-0abc"})
    first = plan_node(node, first_sight=True, last_projection=None, view=NONE)
    again = plan_node(
        replace(node, resource_version="99"),
        first_sight=False,
        last_projection=first.projection,
        view=NONE,
    )
    assert again.empty


def test_status_and_own_writes_do_not_count_as_changes() -> None:
    base = projection_of(NODE)
    assert projection_of(replace(NODE, taints=(TAINT,), resource_version="7")) == base
    assert (
        projection_of(replace(NODE, annotations={STATUS_ANNOTATION: "{}", "other.io/x": "1"}))
        == base
    )
    assert projection_of(replace(NODE, labels={**NODE.labels, INSTANCE_ID_LABEL: "i-0abc"})) == base
    assert projection_of(replace(NODE, annotations={"vpcnet.io/mode": "prefix"})) != base
    assert projection_of(replace(NODE, labels={"role": "gpu"})) != base


def test_a_vpcnet_annotation_change_reprovisions_without_tainting_a_ready_node() -> None:
    ready = ControlView(instance_id="i-0abc", phase=NodePhase.READY, agent_ready=True)
    first = plan_node(NODE, first_sight=True, last_projection=None, view=ready)
    assert first.provision is None and not first.add_taint  # a new leader trusts Redis
    changed = replace(NODE, annotations={"vpcnet.io/mode": "prefix"})
    plan = plan_node(changed, first_sight=False, last_projection=first.projection, view=ready)
    assert plan.provision is not None and not plan.add_taint


def test_taint_removed_by_node_ready_is_not_put_back() -> None:
    provisioned = ControlView(instance_id="i-0abc", phase=NodePhase.PROVISIONED)
    first = plan_node(NODE, first_sight=True, last_projection=None, view=provisioned)
    # node_ready removed the taint; Redis may still say provisioned for a moment.
    plan = plan_node(NODE, first_sight=False, last_projection=first.projection, view=provisioned)
    assert not plan.add_taint and plan.provision is None


def test_agent_ready_with_taint_enqueues_node_ready() -> None:
    node = replace(NODE, taints=(TAINT,))
    view = ControlView(instance_id="i-0abc", phase=NodePhase.PROVISIONED, agent_ready=True)
    plan = plan_node(node, first_sight=False, last_projection=projection_of(node), view=view)
    assert plan.node_ready and plan.provision is None


def test_replaced_instance_is_treated_as_new() -> None:
    node = replace(NODE, taints=())
    stale = ControlView(instance_id="i-0old", phase=NodePhase.READY, agent_ready=True)
    plan = plan_node(node, first_sight=False, last_projection=projection_of(node), view=stale)
    assert plan.add_taint and plan.provision is not None and not plan.node_ready


def test_missing_and_invalid_provider_ids_only_warn() -> None:
    missing = plan_node(
        replace(NODE, provider_id=""), first_sight=True, last_projection=None, view=NONE
    )
    assert missing.warning is not None and missing.warning.reason == "MissingProviderID"
    assert not (missing.add_taint or missing.labels or missing.provision)
    for bad in ("gce://p/z/n", "aws:///us-east-1a/not-an-instance", "aws:///i-0abc"):
        plan = plan_node(
            replace(NODE, provider_id=bad), first_sight=True, last_projection=None, view=NONE
        )
        assert plan.warning is not None and plan.warning.reason == "InvalidProviderID"
        assert bad in plan.warning.message
        assert not (plan.add_taint or plan.labels or plan.provision)


def test_a_node_being_deleted_gets_nothing() -> None:
    assert plan_node(
        replace(NODE, deleting=True), first_sight=True, last_projection=None, view=NONE
    ).empty


def test_status_summary_reflects_redis_compactly() -> None:
    eni = EniRecord(
        eni_id="eni-1",
        mac="0a:00:00:00:00:01",
        device_index=1,
        subnet_id="subnet-1",
        subnet_cidr=ipaddress.IPv4Network("10.0.0.0/24"),
        primary_ip=ipaddress.IPv4Address("10.0.0.10"),
        ips=(ipaddress.IPv4Address("10.0.0.11"), ipaddress.IPv4Address("10.0.0.12")),
        prefixes=(ipaddress.IPv4Network("10.0.0.32/28"),),
    )
    fields = {"phase": "provisioned", "instance_id": "i-0abc", "mode": "prefix", "generation": "3"}
    raw = plan_status_summary(fields, [eni], AgentRecord(ready=True, generation=2))
    assert raw is not None and " " not in raw
    assert json.loads(raw) == {
        "phase": "provisioned",
        "instanceId": "i-0abc",
        "mode": "prefix",
        "enis": 1,
        "podIPs": 18,
        "generation": 3,
        "agentReady": True,
        "agentGeneration": 2,
    }
    assert plan_status_summary(fields, [eni], AgentRecord(ready=True, generation=2)) == raw  # stable
    failed = plan_status_summary({**fields, "phase": "error", "error": "x" * 500}, [], AgentRecord())
    assert failed is not None and json.loads(failed)["error"] == "x" * 300
    assert plan_status_summary({}, [], {"ready": "1"}) is None
