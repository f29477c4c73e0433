"""The watcher leader's choices besides one look at a node (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vpcnet.kube.nodeplan import NodeWarning, projection_of
from vpcnet.kube.types import NodeObj, Taint
from vpcnet.watcher.decisions import (
    DEMAND,
    PROVISION,
    READY,
    RELEASE,
    Enqueue,
    awaiting_ready,
    awaits_ready,
    has_trailing_edge,
    instance_of_deleted,
    orphan_candidates,
    plan_demand,
    plan_provision,
    plan_ready,
    plan_release,
    plan_status_write,
    plan_trailing_provision,
    warning_key,
    with_status,
)
from vpcnet.wellknown import NOT_READY_TAINT, STATUS_ANNOTATION

NODE = NodeObj(name="n1", provider_id="aws:///us-east-1a/i-0abc", labels={"role": "worker"})
TAINTED = replace(NODE, taints=(Taint(NOT_READY_TAINT, "NoSchedule"),))
NO_INSTANCE = replace(NODE, provider_id="gce://p/z/n1")


def test_provision_is_claimed_per_instance() -> None:
    assert plan_provision(NODE) == Enqueue("n1", PROVISION, "i-0abc", ("n1", "i-0abc", "us-east-1a"))
    with pytest.raises(ValueError):
        plan_provision(NO_INSTANCE)


def test_demand_is_claimed_per_report_and_needs_waiting_adds() -> None:
    assert plan_demand(NODE, 3, "1700000000.5") == Enqueue(
        "n1", DEMAND, "1700000000.5", ("n1", "i-0abc", "us-east-1a")
    )
    unreported = plan_demand(NODE, 1, "")
    assert unreported is not None and unreported.claim_value == "-"
    assert plan_demand(NODE, 0, "1700000000.5") is None
    assert plan_demand(NO_INSTANCE, 3, "1700000000.5") is None


def test_ready_and_release_claims() -> None:
    assert plan_ready("n1") == Enqueue("n1", READY, "1", ("n1",))
    assert plan_release("n1", "i-0abc") == Enqueue("n1", RELEASE, "i-0abc", ("n1", "i-0abc"))


def test_every_folded_enqueue_but_a_release_is_looked_at_again() -> None:
    assert [has_trailing_edge(a) for a in (PROVISION, DEMAND, READY)] == [True, True, True]
    assert not has_trailing_edge(RELEASE)


def test_trailing_provision_only_for_a_change_since_the_last_send() -> None:
    assert plan_trailing_provision(NODE, projection_of(NODE)) is None
    changed = replace(NODE, labels={"role": "gpu"})
    assert plan_trailing_provision(changed, projection_of(NODE)) == plan_provision(changed)
    # Never sent by this leader: the claim was a predecessor's.
    assert plan_trailing_provision(NODE, None) == plan_provision(NODE)
    assert plan_trailing_provision(NO_INSTANCE, None) is None


def test_only_tainted_nodes_await_ready() -> None:
    assert awaits_ready(TAINTED) and not awaits_ready(NODE)
    nodes = {"n1": TAINTED, "n2": replace(NODE, name="n2"), "n3": replace(TAINTED, name="n3")}
    assert awaiting_ready(nodes) == ["n1", "n3"]


def test_a_deleted_node_names_its_instance_by_provider_id() -> None:
    assert instance_of_deleted(NODE) == "i-0abc"
    assert instance_of_deleted(NO_INSTANCE) is None
    assert instance_of_deleted(replace(NODE, provider_id="")) is None


def test_orphan_candidates_are_known_but_not_watched_in_name_order() -> None:
    assert orphan_candidates({"c", "a", "b", "w"}, {"w": NODE}.keys()) == ["a", "b", "c"]
    assert orphan_candidates(set(), ["w"]) == []


def test_warnings_are_keyed_by_reason_and_provider_id() -> None:
    warning = NodeWarning("InvalidProviderID", "...")
    assert warning_key(NO_INSTANCE, warning) == ("InvalidProviderID", "gce://p/z/n1")
    assert warning_key(NO_INSTANCE, warning) != warning_key(replace(NO_INSTANCE, provider_id="x"), warning)


def test_status_is_written_only_where_the_copy_differs() -> None:
    summary = '{"phase":"ready"}'
    assert plan_status_write(NODE, summary) == summary
    written = with_status(NODE, summary)
    assert written.annotations[STATUS_ANNOTATION] == summary
    assert written.labels == NODE.labels
    assert plan_status_write(written, summary) is None
    assert plan_status_write(written, '{"phase":"provisioning"}') == '{"phase":"provisioning"}'
    assert plan_status_write(NODE, None) is None  # vpcnet holds no state for it
    assert plan_status_write(None, summary) is None  # no longer watched
