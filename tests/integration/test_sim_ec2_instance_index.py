"""DescribeInstances by id (and by the instance-id filter) answers from the instance
index, not from a copy of every reservation, and answers what moto answers."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from botocore.exceptions import ClientError

from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.emulator import DEFAULT_AMI

UNKNOWN = "i-0123456789abcdef0"


def shape(resp: dict[str, Any]) -> list[list[str]]:
    """Each reservation's instance ids, in the order answered."""
    return [[i["InstanceId"] for i in r["Instances"]] for r in resp["Reservations"]]


@pytest.fixture
def fleet(ec2_emulator: Ec2Emulator, ec2_world: World) -> dict[str, Any]:
    """A reservation of two m5.large (one RunInstances call) and a lone t3.nano."""
    ec2 = ec2_emulator.client()
    pair = ec2.run_instances(ImageId=DEFAULT_AMI, MinCount=2, MaxCount=2, InstanceType="m5.large",
                             SubnetId=ec2_world.subnet_ids[0])
    first, second = (i["InstanceId"] for i in pair["Instances"])
    lone = ec2_emulator.run_instance("t3.nano", name="lone")
    return {"ec2": ec2, "first": first, "second": second, "lone": lone,
            "pair_reservation": pair["ReservationId"]}


def test_by_id_narrows_each_reservation_to_the_ids_asked(fleet: dict[str, Any]) -> None:
    ec2, first, second, lone = fleet["ec2"], fleet["first"], fleet["second"], fleet["lone"]
    one = ec2.describe_instances(InstanceIds=[second])
    assert shape(one) == [[second]]
    assert one["Reservations"][0]["ReservationId"] == fleet["pair_reservation"]
    everything = ec2.describe_instances(InstanceIds=[lone, second, first])
    by_reservation = {r["ReservationId"]: [i["InstanceId"] for i in r["Instances"]]
                      for r in everything["Reservations"]}
    assert len(by_reservation) == 2
    assert by_reservation[fleet["pair_reservation"]] == [first, second]  # launch order
    ids = [r["ReservationId"] for r in everything["Reservations"]]
    assert ids == sorted(ids)
    # asking twice for one id answers it once
    assert shape(ec2.describe_instances(InstanceIds=[first, first])) == [[first]]
    # the narrowing is of a copy: the pair's reservation still holds both
    assert shape(ec2.describe_instances(Filters=[
        {"Name": "instance-type", "Values": ["m5.large"]}])) == [[first, second]]


def test_by_id_with_filters_and_unknown_ids(fleet: dict[str, Any]) -> None:
    ec2, first, lone = fleet["ec2"], fleet["first"], fleet["lone"]
    typed = ec2.describe_instances(InstanceIds=[first, lone],
                                   Filters=[{"Name": "instance-type", "Values": ["t3.nano"]}])
    assert shape(typed) == [[lone]]
    with pytest.raises(ClientError) as exc:
        ec2.describe_instances(InstanceIds=[first, UNKNOWN])
    assert exc.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert UNKNOWN in exc.value.response["Error"]["Message"]


def test_instance_id_filter(fleet: dict[str, Any]) -> None:
    ec2, first, second, lone = fleet["ec2"], fleet["first"], fleet["second"], fleet["lone"]

    def by_filter(*filters: tuple[str, list[str]]) -> list[list[str]]:
        return shape(ec2.describe_instances(Filters=[{"Name": n, "Values": v} for n, v in filters]))

    # unknown ids are simply absent (vpcnet's batched reads rely on it)
    assert by_filter(("instance-id", [second, UNKNOWN])) == [[second]]
    assert by_filter(("instance-id", [UNKNOWN])) == []
    assert sorted(by_filter(("instance-id", [lone, first, second]))) == sorted([[first, second], [lone]])
    # ANDed with the other filters
    assert by_filter(("instance-id", [first, lone]), ("tag:Name", ["lone"])) == [[lone]]
    assert by_filter(("instance-id", [first]), ("instance-type", ["t3.nano"])) == []


def test_lookups_by_id_never_walk_every_reservation(
    ec2_emulator: Ec2Emulator, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a join storm each node's DescribeInstances copied all N reservations (under
    the backend lock); by id the cost must not depend on N."""
    ec2, first, lone = fleet["ec2"], fleet["first"], fleet["lone"]

    def walk(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("walked every reservation")

    monkeypatch.setattr(ec2_emulator.backend, "all_reservations", walk)
    monkeypatch.setattr(ec2_emulator.backend, "all_instances", walk)
    assert shape(ec2.describe_instances(InstanceIds=[lone])) == [[lone]]
    assert shape(ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [lone]}])) == [[lone]]
    with pytest.raises(ClientError) as exc:
        ec2.describe_instances(InstanceIds=[UNKNOWN])
    assert exc.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert ec2_emulator.backend.get_instance(first).id == first


def test_launch_never_walks_every_reservation(
    ec2_emulator: Ec2Emulator, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto looks each new instance up (to attach its root volume) by walking every
    instance: launching N nodes cost O(N^2)."""
    def walk(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("walked every reservation")

    monkeypatch.setattr(ec2_emulator.backend, "all_reservations", walk)
    monkeypatch.setattr(ec2_emulator.backend, "all_instances", walk)
    iid = ec2_emulator.run_instance("m5.large", name="late")
    view = ec2_emulator.instance_view(iid)
    assert view["state"] == "running" and len(view["enis"]) == 1
    volumes = ec2_emulator.backend.volumes.values()
    assert any(v.attachment is not None and v.attachment.instance.id == iid for v in volumes)
