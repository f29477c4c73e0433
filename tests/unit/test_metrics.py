"""Metric recording without services: EC2 calls, task outcomes and provisioning time,
the agent's collector and CNI observer, and the pure parts of the Redis collectors."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

from tests.fixtures.metrics import Scrape
from vpcnet.agent.ipam import PoolStats
from vpcnet.observability import celery_hooks
from vpcnet.observability.agent import AgentCollector, observe_cni_request
from vpcnet.observability.collectors import ClusterPoolCollector, _pod_ip_count, queue_keys
from vpcnet.observability.metrics import record_ec2_call
from vpcnet.tasknames import PROVISION_NODE, RELEASE_NODE


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_ec2_calls_count_outcomes_latency_wait_and_error_codes() -> None:
    action = "UnitTestAction"
    record_ec2_call(action, seconds=0.2, waited=0.0)
    record_ec2_call(action, seconds=0.1, waited=1.5, throttled=True, error="RequestLimitExceeded")
    record_ec2_call(action, seconds=0.05, waited=0.0, error="InvalidParameterValue")
    assert sample("vpcnet_ec2_calls_total", action=action, outcome="ok") == 1
    assert sample("vpcnet_ec2_calls_total", action=action, outcome="throttled") == 1
    assert sample("vpcnet_ec2_calls_total", action=action, outcome="error") == 1
    assert sample("vpcnet_ec2_errors_total", action=action, code="RequestLimitExceeded") == 1
    assert sample("vpcnet_ec2_errors_total", action=action, code="InvalidParameterValue") == 1
    assert sample("vpcnet_ec2_call_duration_seconds_count", action=action) == 3
    assert sample("vpcnet_ec2_call_duration_seconds_sum", action=action) == pytest.approx(0.35)
    assert sample("vpcnet_ec2_ratelimit_wait_seconds_sum", action=action) == pytest.approx(1.5)
    # calls that did not wait land in the le="0.0" bucket
    assert sample("vpcnet_ec2_ratelimit_wait_seconds_bucket", action=action, le="0.0") == 2


@pytest.mark.parametrize(
    ("state", "outcome"),
    [("SUCCESS", "success"), ("RETRY", "retry"), ("FAILURE", "failure"), ("REJECTED", "rejected"),
     (None, "unknown")],
)
def test_task_outcome(state: str | None, outcome: str) -> None:
    assert celery_hooks.task_outcome(state) == outcome


def test_only_a_provisioning_run_that_wrote_the_node_counts_as_provisioned() -> None:
    done = {"phase": "provisioned", "written": True}
    assert celery_hooks.provisioned_at_end(PROVISION_NODE, "SUCCESS", done)
    assert not celery_hooks.provisioned_at_end(PROVISION_NODE, "SUCCESS", {**done, "written": False})
    assert not celery_hooks.provisioned_at_end(PROVISION_NODE, "SUCCESS", {**done, "phase": "ready"})
    assert not celery_hooks.provisioned_at_end(PROVISION_NODE, "RETRY", done)
    assert not celery_hooks.provisioned_at_end(RELEASE_NODE, "SUCCESS", done)


def test_publishing_stamps_the_first_enqueue_time_and_keeps_it_on_retries() -> None:
    headers: dict[str, Any] = {}
    before = time.time()
    celery_hooks.stamp_enqueue_time(headers=headers)
    first = float(headers[celery_hooks.ENQUEUED_HEADER])
    assert before - 1 <= first <= time.time() + 1
    retried = {celery_hooks.ENQUEUED_HEADER: "1000.5"}  # a retry carries the original
    celery_hooks.stamp_enqueue_time(headers=retried)
    assert retried[celery_hooks.ENQUEUED_HEADER] == "1000.5"


@dataclass
class _Request:
    headers: dict[str, Any] = field(default_factory=dict)


def test_enqueue_time_is_read_from_the_request_and_tolerates_garbage() -> None:
    assert celery_hooks.enqueued_at(_Request({celery_hooks.ENQUEUED_HEADER: "12.5"})) == 12.5
    assert celery_hooks.enqueued_at(_Request({celery_hooks.ENQUEUED_HEADER: "soon"})) is None
    assert celery_hooks.enqueued_at(_Request()) is None


def test_task_runs_are_counted_timed_and_provisioning_observed_from_the_enqueue() -> None:
    app = Celery("t", set_as_current=False)
    # shared=False: a shared task joins every app finalized later (the workers' app too).

    @app.task(name=PROVISION_NODE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def provision(self: Any, node: str, iid: str, az: str) -> None:
        return None

    name = PROVISION_NODE
    before = {
        "success": sample("vpcnet_tasks_total", task=name, outcome="success"),
        "retry": sample("vpcnet_tasks_total", task=name, outcome="retry"),
        "runs": sample("vpcnet_task_duration_seconds_count", task=name),
        "provisioned": sample("vpcnet_node_provisioning_seconds_count"),
        "provisioned_sum": sample("vpcnet_node_provisioning_seconds_sum"),
        "lock_retries": sample("vpcnet_task_retries_total", task=name, reason="LockHeld"),
    }
    celery_hooks._on_prerun(task_id="r1", task=provision, args=["n1", "i-1", "az"])
    assert sample("vpcnet_tasks_active", task=name) == 1

    class LockHeld(Exception):
        pass

    class Retry(Exception):  # celery.exceptions.Retry keeps the cause in .exc
        exc = LockHeld("held")

    celery_hooks._on_retry(sender=provision, reason=Retry())
    celery_hooks._on_postrun(task_id="r1", task=provision, retval=None, state="RETRY")
    assert sample("vpcnet_tasks_active", task=name) == 0

    enqueued = math.floor((time.time() - 50) * 1000) / 1000  # the header keeps ms: no rounding up
    provision.push_request(headers={celery_hooks.ENQUEUED_HEADER: f"{enqueued:.3f}"})
    try:
        celery_hooks._on_prerun(task_id="r2", task=provision, args=["n1", "i-1", "az"])
        celery_hooks._on_postrun(task_id="r2", task=provision, state="SUCCESS",
                                 retval={"phase": "provisioned", "written": True})
    finally:
        provision.pop_request()
    assert sample("vpcnet_tasks_total", task=name, outcome="success") == before["success"] + 1
    assert sample("vpcnet_tasks_total", task=name, outcome="retry") == before["retry"] + 1
    assert sample("vpcnet_task_duration_seconds_count", task=name) == before["runs"] + 2
    assert sample("vpcnet_task_retries_total", task=name, reason="LockHeld") == before["lock_retries"] + 1
    assert sample("vpcnet_node_provisioning_seconds_count") == before["provisioned"] + 1
    observed = sample("vpcnet_node_provisioning_seconds_sum") - before["provisioned_sum"]
    assert 50 <= observed < 50 + 60  # from the enqueue, not from this run's start


@dataclass(frozen=True)
class _Programmed:
    generation: int
    enis: tuple[str, ...]


@dataclass
class _Sync:
    connected: bool = True


class _Ipam:
    def stats(self) -> PoolStats:
        return PoolStats(total=20, free=12, assigned=7, cooldown=1)


class _Ipam6:
    def allocations(self) -> list[str]:
        return []


@dataclass
class _Agent:
    ready: bool = True
    version: str = "1.2.3"
    programmed: _Programmed | None = _Programmed(7, ("eni-a", "eni-b"))
    ipam: _Ipam = field(default_factory=_Ipam)
    ipam6: _Ipam6 = field(default_factory=_Ipam6)
    sync: _Sync = field(default_factory=_Sync)


def test_agent_collector_reads_the_running_agent_on_each_scrape() -> None:
    agent = _Agent()
    registry = CollectorRegistry()
    registry.register(AgentCollector("ip-10-0-0-1", agent))
    m = Scrape.of(registry)
    node = "ip-10-0-0-1"
    assert m.by("vpcnet_agent_pool_ips", "state", node=node) == {
        "total": 20, "free": 12, "assigned": 7, "cooldown": 1,
    }
    assert m.value("vpcnet_agent_ready", node=node) == 1
    assert m.value("vpcnet_agent_programmed_generation", node=node) == 7
    assert m.value("vpcnet_agent_enis", node=node) == 2
    assert m.value("vpcnet_agent_redis_up", node=node) == 1
    assert m.value("vpcnet_agent_info", node=node, version="1.2.3") == 1
    agent.ready, agent.programmed, agent.sync.connected = False, None, False
    m = Scrape.of(registry)
    assert m.value("vpcnet_agent_ready", node=node) == 0
    assert m.value("vpcnet_agent_programmed_generation", node=node) == 0
    assert m.value("vpcnet_agent_redis_up", node=node) == 0


@dataclass(frozen=True)
class _Timing:
    command: str
    total: float
    code: int = 0


def test_cni_requests_are_counted_by_command_and_code_and_timed() -> None:
    before = sample("vpcnet_agent_cni_requests_total", command="GC", code="0")
    before_fail = sample("vpcnet_agent_cni_requests_total", command="GC", code="101")
    before_n = sample("vpcnet_agent_cni_request_seconds_count", command="GC")
    observe_cni_request(_Timing("GC", 0.004))
    observe_cni_request(_Timing("GC", 0.02, code=101))
    assert sample("vpcnet_agent_cni_requests_total", command="GC", code="0") == before + 1
    assert sample("vpcnet_agent_cni_requests_total", command="GC", code="101") == before_fail + 1
    assert sample("vpcnet_agent_cni_request_seconds_count", command="GC") == before_n + 2


def test_an_inactive_cluster_collector_emits_nothing_and_reads_nothing() -> None:
    def no_redis() -> Any:
        raise AssertionError("a standby replica must not read Redis")

    registry = CollectorRegistry()
    registry.register(ClusterPoolCollector(no_redis, "c1", active=lambda: False))
    assert not [s for s in Scrape.of(registry).samples if s.name.startswith("vpcnet_")]


def test_pod_ips_of_an_eni_record_and_queue_keys() -> None:
    assert _pod_ip_count('{"ips": ["10.0.0.5", "10.0.0.6"], "prefixes": ["10.0.1.16/28"]}') == 18
    assert _pod_ip_count(b'{"ips": []}') == 0
    assert _pod_ip_count("not json") == 0
    assert _pod_ip_count('{"ips": [], "prefixes": ["bad"]}') == 0
    assert queue_keys("ec2") == ["ec2", "ec2\x06\x163", "ec2\x06\x166", "ec2\x06\x169"]
