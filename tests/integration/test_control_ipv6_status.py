"""``vpcnet status`` and ``vpcnet inspect`` (the real commands, over the EC2 and
Kubernetes emulators and real Redis) show each node's IP family, its /80 and its pod
capacity for that family, in the tables and in ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.fixtures.celery import REPO, settings_env
from tests.integration.control_support import context_for, join
from vpcnet.control.provision import provision_node
from vpcnet.domain import IpFamily, Mode
from vpcnet.limits import bundled_limits, max_pods
from vpcnet.settings import Settings
from vpcnet.wellknown import IP_FAMILY_ANNOTATION
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator


def cli(settings: Settings, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCNET_")}
    env.update(settings_env(settings))
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "250"
    done = subprocess.run([sys.executable, "-m", "vpcnet.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_status_and_inspect_show_family_80_and_max_pods(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    ctx = context_for(control_settings)
    for name, family in (("n4", "ipv4"), ("n6", "ipv6"), ("nd", "dual")):
        iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], ec2_world.azs[0], name,
                   "m5.large", annotations={IP_FAMILY_ANNOTATION: family})
        provision_node(ctx, name, iid, ec2_world.azs[0])
    lim = bundled_limits("m5.large")
    assert lim is not None
    expected = {f: max_pods(lim, Mode.FULL, IpFamily(f)) for f in ("ipv4", "ipv6", "dual")}
    assert len(set(expected.values())) == 2  # m5.large: 27 IPv4 pods, 110 IPv6

    status: dict[str, Any] = json.loads(cli(control_settings, "status", "--json"))
    rows = {n["name"]: n for n in status["node_list"]}
    for name, family in (("n4", "ipv4"), ("n6", "ipv6"), ("nd", "dual")):
        assert rows[name]["ip_family"] == family and rows[name]["max_pods"] == expected[family]
        assert len(rows[name]["ipv6_prefixes"]) == (0 if family == "ipv4" else 1)

    one: dict[str, Any] = json.loads(cli(control_settings, "inspect", "nd", "--json"))
    assert one["ip_family"] == "dual" and one["max_pods"] == expected["dual"]
    [primary] = [e for e in one["enis"] if e["primary"]]
    assert len(primary["ipv6_prefixes"]) == 1 and primary["subnet_ipv6_cidr"] == ec2_world.subnet_ipv6_cidrs[0]

    table = cli(control_settings, "inspect", "nd")
    assert "family=dual" in table and f"max-pods={expected['dual']}" in table
    assert f"ipv6={primary['ipv6_prefixes'][0]} (assigned 0)" in table
    overview = cli(control_settings, "status")
    assert "family" in overview and "max pods" in overview and "ipv6" in overview
