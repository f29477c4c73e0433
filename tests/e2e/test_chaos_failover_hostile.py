"""`vpcnet chaos` at CI size with its two newest faults on top of the others.

50 nodes (3 netns nodes with real agents and pods) join while pods churn, workers are
kill -9'd, agents restart, EC2 answers 5xx and throttles, and:

- the world runs on a Sentinel group and, every 15 s, a failover loses acknowledged
  writes (the replica's link cut, the system writing on to the primary, the primary
  frozen, the replica promoted: vpcnet_sim.embedded.sentinel). Right after each, no IP may be
  held by two agents and every long-running pod must keep its IP and ping;
- the netns agents log in as their own node's ACL user, fetched from vpcnet's credential
  issuer with a token of their own (the issuer's TokenReview is a table here);
- a hostile agent logged in with node A's own ACL credential (issued by the issuer's ACL
  user) tries B's release-ok/release-req with B's in-use IPs, B's instance_id, B's lock,
  the queues, beat's lock, FLUSHALL … for the whole run: every attempt must be refused.

Then the system must converge with 0 violations (audit, leaked ENIs included), every
node ready, the long-running pods (B's among them) on their IPs, passing CHECK, pinging.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_chaos import _netns
from vpcnet.state.keys import ClusterKeys
from vpcnet_sim.embedded.hostile import Victim, attempts_on

NODES = 50
NETNS_NODES = 3

pytestmark = pytest.mark.timeout(900)


def test_chaos_with_lossy_failovers_and_a_hostile_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"vpcc{secrets.token_hex(3)}-"
    vpcnet = str(Path(sys.executable).with_name("vpcnet"))
    proc = subprocess.run(
        [vpcnet, "chaos", "--nodes", str(NODES), "--netns-nodes", str(NETNS_NODES),
         "--workers", "2", "--seconds", "60", "--converge-timeout", "200", "--json",
         "--redis", "sentinel", "--failover-every", "15",
         "--netns-prefix", prefix, "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=780,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print("\nchaos (sentinel, hostile) report:", json.dumps(
            {k: report[k] for k in ("ok", "faults", "lost_writes", "failovers", "hostile",
                                    "pods", "add_failures", "worker_broker_loss_crashes",
                                    "seconds_chaos", "seconds_converge")}, indent=1))
    assert report["error"] is None, (report["error"], proc.stderr[-3000:])
    assert report["redis"] == "sentinel"

    # The failovers happened and really lost acknowledged writes, each time.
    faults = report["faults"]
    assert faults["sentinel-failover-lost-writes"] >= 2
    lost = report["lost_writes"]
    assert lost["failovers"] == faults["sentinel-failover-lost-writes"] == len(report["failovers"])
    for fo in report["failovers"]:
        assert fo["marker_acked_replicas"] == 0  # acknowledged by the primary alone
        assert not fo["marker_on_new_primary"] and not fo["marker_on_old_primary"]
        assert fo["old_primary_rejoined"]
        assert fo["safety_problems"] == []  # checked right after this failover
    assert lost["markers_lost"] == lost["failovers"]
    assert lost["keys_lost_or_stale"] > 0 and lost["unreplicated_bytes"] > 0
    # ... and the other faults ran alongside.
    assert faults["worker-kill-9"] >= 10 and faults["agent-kill-9"] >= 5
    assert faults["ec2-5xx"] > 0 and faults["ec2-throttled"] > 0

    # The hostile agent: logged in for real (its own keys readable), again after each
    # failover had lost its ACL user, and every answered attempt refused.
    hostile = report["hostile"]
    assert hostile["attacker"] == "ns-0"
    assert hostile["successes"] == []
    assert hostile["attempts"] >= 500
    assert hostile["refused"] == hostile["attempts"] - hostile["unanswered"]
    assert hostile["unanswered"] < hostile["attempts"] // 10
    assert hostile["own_reads_ok"] > 0
    assert hostile["logins"] >= 1 + lost["failovers"] // 2
    kinds = set(attempts_on(ClusterKeys("chaos"), "u", "i", Victim("ns-1", "i", ())))
    assert set(hostile["by_attempt"]) == kinds

    # The real agents logged in as their own node users (from the credential issuer), and
    # the primary's ACL LOG holds refusals of the attacker's user only.
    assert set(report["agent_credentials"]) == {f"ns-{i}" for i in range(NETNS_NODES)}
    assert set(report["acl_denials"]) <= {"vpcnet-node:chaos:ns-0"}, report["acl_denials"]

    # Converged with every invariant holding; B's (every victim's) pods undisturbed.
    assert report["violations"] == [] and report["problems"] == []
    assert report["nodes_ready"] == NODES
    assert report["pods"]["long_running"] == 3 * NETNS_NODES
    assert report["pods"]["churn-add"] >= 20
    assert report["ip_changed"] == [] and report["check_failed"] == [] and report["ping_failed"] == []
    assert report["unexpected_exits"] == {}
    assert report["ok"] is True and proc.returncode == 0
    assert _netns(prefix) == set()
