"""``vpcnet audit`` (the real command, over the EC2 and Kubernetes emulators and real
Redis) sees an ENI left ``available`` past the GC grace period, and only that one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures.celery import REPO, settings_env
from tests.integration.control_support import leave_eni
from vpcnet.settings import Settings
from vpcnet_sim.ec2 import Ec2Emulator, World

GRACE = 600.0


def audit(settings: Settings) -> tuple[int, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCNET_")}
    env.update(settings_env(settings))
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "vpcnet.cli.main", "audit", "--json"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, json.loads(done.stdout)


def test_audit_reports_an_eni_left_available_past_the_grace_period(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
) -> None:
    settings = control_settings.with_(eni_gc_grace_seconds=GRACE)
    subnet = ec2_world.subnet_ids[0]
    fresh = leave_eni(ec2_emulator, subnet, settings.cluster_name, 30.0, "n1")
    code, out = audit(settings)
    assert (code, out) == (0, {"ok": True, "violations": []})  # within the grace: not a leak

    leaked = leave_eni(ec2_emulator, subnet, settings.cluster_name, GRACE + 60.0, "n2")
    code, out = audit(settings)
    assert code == 1
    violations = out["violations"]
    assert isinstance(violations, list)
    assert [(v["invariant"], v["kind"], v["subject"]) for v in violations] == [
        (2, "leaked-eni", leaked)
    ]
    assert fresh != leaked
