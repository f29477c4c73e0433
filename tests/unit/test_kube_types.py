"""Conversion of API JSON to vpcnet's Kubernetes values, and error translation."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime

import pytest

from vpcnet.errors import (
    KubeConflict,
    KubePermanentError,
    KubeTemporaryError,
    NotFoundError,
    WatchExpired,
)
from vpcnet.kube.client.errors import status_error, translate_status
from vpcnet.kube.client.node_watch import parse_watch_line
from vpcnet.kube.types import (
    KubeEvent,
    Lease,
    LeaseSpec,
    NodeObj,
    PodObj,
    Taint,
    WatchEventType,
    format_micro_time,
    parse_time,
)

NODE = {
    "metadata": {
        "name": "ip-10-0-1-5.ec2.internal",
        "uid": "u-1",
        "resourceVersion": "42",
        "labels": {"kubernetes.io/os": "linux"},
        "annotations": {"vpcnet.io/mode": "warm"},
    },
    "spec": {
        "providerID": "aws:///us-east-1a/i-0abc",
        "taints": [
            {"key": "vpcnet.io/not-ready", "effect": "NoSchedule"},
            {"key": "x", "value": "y", "effect": "NoExecute"},
        ],
    },
}


def test_node_from_api_keeps_what_the_watcher_needs() -> None:
    node = NodeObj.from_api(NODE)
    assert node.name == "ip-10-0-1-5.ec2.internal"
    assert node.resource_version == "42"
    assert node.provider_id == "aws:///us-east-1a/i-0abc"
    assert node.taints == (Taint("vpcnet.io/not-ready", "NoSchedule"), Taint("x", "NoExecute", "y"))
    assert node.has_taint("vpcnet.io/not-ready")
    assert node.has_taint("x", "NoExecute") and not node.has_taint("x", "NoSchedule")
    assert not node.deleting
    ref = node.to_ref()
    assert (ref.instance_id, ref.availability_zone) == ("i-0abc", "us-east-1a")
    assert ref.annotations == {"vpcnet.io/mode": "warm"}


def test_node_without_spec_or_provider() -> None:
    node = NodeObj.from_api(
        {"metadata": {"name": "n", "deletionTimestamp": "2024-01-01T00:00:00Z"}}
    )
    assert node.provider_id == "" and node.taints == () and node.deleting
    with pytest.raises(ValueError):
        node.to_ref()


def test_taint_round_trip_omits_empty_value() -> None:
    assert Taint("k", "NoSchedule").to_api() == {"key": "k", "effect": "NoSchedule"}
    assert Taint.from_api(Taint("k", "NoExecute", "v").to_api()) == Taint("k", "NoExecute", "v")


def test_lease_spec_round_trip_uses_micro_time() -> None:
    t = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    spec = LeaseSpec("me", 15, t, t, 3)
    api = spec.to_api()
    assert api["renewTime"] == "2024-05-06T07:08:09.123456Z"
    lease = Lease.from_api(
        {"metadata": {"name": "l", "namespace": "ns", "resourceVersion": "7"}, "spec": api}
    )
    assert lease.spec == spec and lease.resource_version == "7"


@pytest.mark.parametrize(
    "raw",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.5Z",
        "2024-01-01T00:00:00.123456789Z",
        "2024-01-01T01:00:00+01:00",
    ],
)
def test_parse_time_accepts_api_formats(raw: str) -> None:
    t = parse_time(raw)
    assert t is not None and t.tzinfo is not None
    assert t.astimezone(UTC).replace(microsecond=0) == datetime(2024, 1, 1, tzinfo=UTC)


def test_parse_time_rejects_garbage() -> None:
    assert parse_time("yesterday") is None and parse_time(None) is None and parse_time("") is None
    assert format_micro_time(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000000Z"


def test_pod_and_event_from_api() -> None:
    pod = PodObj.from_api(
        {
            "metadata": {"namespace": "d", "name": "p"},
            "spec": {"nodeName": "n1"},
            "status": {"podIP": "10.0.0.9", "phase": "Running"},
        }
    )
    assert pod.pod_ip == ipaddress.IPv4Address("10.0.0.9") and pod.node_name == "n1"
    assert PodObj.from_api({"metadata": {}, "status": {"podIP": "fd00::1"}}).pod_ip is None
    ev = KubeEvent.from_api(
        {"metadata": {"name": "e"}, "reason": "R", "message": "m", "type": "Warning", "count": 3}
    )
    assert (ev.reason, ev.count, ev.type) == ("R", 3, "Warning")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, NotFoundError),
        (409, KubeConflict),
        (410, WatchExpired),
        (429, KubeTemporaryError),
        (500, KubeTemporaryError),
        (503, KubeTemporaryError),
        (0, KubeTemporaryError),
        (403, KubePermanentError),
        (422, KubePermanentError),
    ],
)
def test_status_codes_map_to_the_error_hierarchy(status: int, kind: type[Exception]) -> None:
    assert isinstance(status_error(status, "R", "m", None), kind)


def test_translation_keeps_reason_message_and_retry_after() -> None:
    err = translate_status(
        429, b'{"kind":"Status","reason":"TooManyRequests","message":"slow down"}', "3"
    )
    assert isinstance(err, KubeTemporaryError)
    assert (err.status, err.reason, err.delay) == (429, "TooManyRequests", 3.0)
    assert "slow down" in str(err)
    assert isinstance(translate_status(500, b"<html>oops</html>", None), KubeTemporaryError)


def test_watch_lines() -> None:
    ev = parse_watch_line(json.dumps({"type": "MODIFIED", "object": NODE}).encode())
    assert ev is not None and ev.type is WatchEventType.MODIFIED and ev.node is not None
    assert ev.resource_version == "42"
    bm = parse_watch_line(
        b'{"type":"BOOKMARK","object":{"kind":"Node","metadata":{"resourceVersion":"99"}}}'
    )
    assert bm is not None and bm.node is None and bm.resource_version == "99"
    assert parse_watch_line(b'{"type":"SOMETHING_NEW","object":{}}') is None
    with pytest.raises(WatchExpired):
        parse_watch_line(
            b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}'
        )
    with pytest.raises(KubeTemporaryError):
        parse_watch_line(b"not json")
