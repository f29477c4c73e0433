"""A provisioning pass writes the node's state back once, after its last EC2 mutation.

Observed from the real redis-server with MONITOR: every command the pass sends, in the
order Redis ran it, including the commands a Lua script runs. The EC2 calls show up as
the call recorder's ``calls:<Action>`` increments, written right after each call
returns, so one stream orders the pass's EC2 mutations and its store writes.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from tests.integration.control_support import (
    agent_confirms_release,
    agent_ready,
    agent_returns,
    agent_takes,
    assert_redis_equals_ec2,
    context_for,
    join,
    pool_counts,
    vpcnet_enis,
)
from vpcnet.control.act import StaleClientToken
from vpcnet.control.context import ControlContext
from vpcnet.control.provision import provision_node
from vpcnet.control.ready import agent_has_programmed, node_ready
from vpcnet.domain import EniRecord, Mode, NodePhase
from vpcnet.settings import Settings
from vpcnet.state.records import AgentRecord, StoreVersion
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.ec2.config import Ec2SimConfig, Latency
from vpcnet_sim.kube import KubeEmulator

WRITES = {"HSET", "HMSET", "HDEL", "HINCRBY", "SADD", "SREM", "DEL", "UNLINK", "SET", "EXPIRE",
          "ZADD", "ZREM", "RENAME", "HSETNX", "SPOP", "SMOVE"}
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LUA = re.compile(r"^\S+ \[\d+ lua\] ")
ASSIGN = "AssignPrivateIpAddresses"
CREATE = "CreateNetworkInterface"


@dataclass
class Step:
    """One command a client sent, with what ran inside it (a script's or a MULTI's)."""

    commands: list[list[str]] = field(default_factory=list)

    def writes_to(self, keys: set[str]) -> bool:
        return any(c[0].upper() in WRITES and len(c) > 1 and c[1] in keys for c in self.commands)

    def ec2_mutations(self, stats_key: str) -> list[str]:
        return [
            c[2][len("calls:"):] for c in self.commands
            if c[0].upper() == "HINCRBY" and c[1] == stats_key and c[2].startswith("calls:")
            and not c[2][len("calls:"):].startswith(("Describe", "Get", "List"))
        ]


class Monitor:
    """MONITOR from a start marker to an end marker, grouped into client steps."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._mark = f"writeback-test:{uuid.uuid4().hex}"
        self._started = threading.Event()
        self.raw: list[tuple[str, list[str]]] = []  # (client type, args)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._client.monitor() as m:
            # The raw line: next_command() joins the arguments with spaces, and a JSON
            # argument's own spaces would then split it.
            conn = m.connection  # type: ignore[attr-defined]  # not in redis-py's stubs
            while True:
                line = conn.encoder.decode(conn.read_response(), force=True)
                source = "lua" if _LUA.match(line) else "client"
                args = [a.replace('\\"', '"') for a in _ARG.findall(line.split("] ", 1)[1])]
                if args and args[-1] == self._mark + ":start":
                    self._started.set()
                    continue
                if args and args[-1] == self._mark + ":end":
                    return
                if self._started.is_set():
                    self.raw.append((source, args))

    def __enter__(self) -> Monitor:
        self._thread.start()
        while not self._started.is_set():
            self._client.get(self._mark + ":start")  # MONITOR may not be on yet: repeat
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.get(self._mark + ":end")
        self._thread.join(10)
        assert not self._thread.is_alive(), "MONITOR never saw the end marker"

    def steps(self) -> list[Step]:
        out: list[Step] = []
        in_multi = False
        for source, args in self.raw:
            name = args[0].upper() if args else ""
            if source == "lua" or in_multi:
                out[-1].commands.append(args)
                in_multi = in_multi and name != "EXEC"
                continue
            out.append(Step([args]))
            in_multi = name == "MULTI"
        return out


@pytest.fixture
def ctx(control_settings: Settings) -> Iterator[ControlContext]:
    # No ENIs held ahead: a pool that grows past the primary needs new ENIs' chains.
    yield context_for(control_settings.with_(mode=Mode.WARM, warm_ip_target=4,
                                             minimum_ip_target=6, ip_cooldown_seconds=30,
                                             warm_attached_enis=0))


def test_a_pass_writes_the_node_state_once_after_its_last_ec2_mutation(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "w", "m5.large")
    provision_node(ctx, "w", iid, az)
    agent_takes(ctx, "w", 5)
    provision_node(ctx, "w", iid, az)
    taken = agent_takes(ctx, "w", 3)
    provision_node(ctx, "w", iid, az)
    assert pool_counts(ctx, "w") == (12, 4)
    agent_returns(ctx, "w", taken, freed_at=time.time() - 60)
    provision_node(ctx, "w", iid, az)  # requests 3 back
    assert len(agent_confirms_release(ctx, "w")) == 3
    # Two more pods go: the next pass hands the 3 confirmed IPs back to EC2 *and* asks
    # for 2 more (7 wanted: 3 used + 4 warm), so it both calls EC2 and requests.
    still = [str(ip) for ip in ctx.state.read_usage("w", 30).assigned]
    agent_returns(ctx, "w", sorted(still)[:2], freed_at=time.time() - 60)
    requested_before = ctx.state.read_usage("w", 30).release_requested

    k = ctx.state.node_keys("w")
    state_keys = {k.node, k.enis, k.release_req, k.release_ok}
    with Monitor(control_settings.redis_url) as mon:
        out = provision_node(ctx, "w", iid, az)
    assert out.plan_calls.get("UnassignPrivateIpAddresses") == 1 and out.written

    steps = mon.steps()
    stats = ctx.state.keys.ec2_stats
    mutations = [i for i, s in enumerate(steps) if s.ec2_mutations(stats)]
    writes = [i for i, s in enumerate(steps) if s.writes_to(state_keys)]
    assert mutations, "the pass called EC2"
    after_first_call = [i for i in writes if i > mutations[0]]
    assert len(after_first_call) == 1, [steps[i].commands for i in after_first_call]
    assert after_first_call[0] > mutations[-1], "an EC2 mutation after the write-back"
    # ... and that one write carried the new release requests with the ENIs.
    usage = ctx.state.read_usage("w", 30)
    assert len(usage.release_requested - requested_before) == 2


def test_a_token_naming_a_vanished_eni_retires_the_pass_epoch(
    control_settings: Settings, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    """The write a failed pass makes after acting: the epoch whose ClientToken names an
    ENI GC deleted before it was attached is retired (fenced), so the retry mints new
    tokens instead of replaying the dead ENI forever; what the pass's other lanes did
    (the primary's addresses, the other new ENI) is written back with it."""
    ctx = context_for(control_settings)
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "n1", "m5.large")
    ec2_emulator.set_faults(rules=[{"action": "AttachNetworkInterface",
                                    "code": "InvalidNetworkInterfaceID.NotFound", "count": 1}])
    with pytest.raises(StaleClientToken):
        provision_node(ctx, "n1", iid, az)
    st = ctx.state.read_node("n1")
    assert st is not None and st.record.pass_epoch == "" and st.phase is NodePhase.PROVISIONING
    # The failed chain left nothing; the others' work is in Redis as it is in EC2.
    assert len(st.enis) == 2
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))

    out = provision_node(ctx, "n1", iid, az)
    assert out.written and out.phase == NodePhase.PROVISIONED
    done = ctx.state.read_node("n1")
    assert done is not None and len(done.enis) == 3 and done.record.pass_epoch == ""


def test_a_ready_nodes_grown_pool_is_written_back_before_its_new_eni_is_made(
    ctx: ControlContext, control_settings: Settings, ec2_emulator: Ec2Emulator,
    ec2_world: World, kube_emulator: KubeEmulator,
) -> None:
    """Pods wait on a READY node: the pass assigns the primary's free slots and makes a new
    ENI for the rest. The assigned addresses reach Redis (a generation of their own, that
    the agent may program at once) before the new ENI's CreateNetworkInterface is even
    answered; the new ENI follows in the pass's last write, the next generation."""
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "w", "m5.large")
    provision_node(ctx, "w", iid, az)
    agent_ready(ctx, "w")
    assert node_ready(ctx, "w")
    k = ctx.state.node_keys("w")
    ctx.state.redis.hset(k.demand, mapping={"waiting": 10, "at": f"{time.time():.3f}"})
    # AWS's latencies, a chain's first call slower than any assign (0.2 s +- 30%).
    aws = Ec2SimConfig.aws_like().latency
    ec2_emulator.set_config(preset="aws", latency={**aws, CREATE: Latency(1.0)})
    before = ctx.state.read_node("w")
    assert before is not None

    with Monitor(control_settings.redis_url) as mon:
        out = provision_node(ctx, "w", iid, az)
    assert out.plan_calls.get(ASSIGN) == 1 and out.plan_calls.get(CREATE) == 1
    assert out.written and out.phase == NodePhase.READY
    assert out.generation == before.generation + 2  # two writes, two generations

    steps = mon.steps()
    stats = ctx.state.keys.ec2_stats
    created = next(i for i, s in enumerate(steps) if CREATE in s.ec2_mutations(stats))
    writes = [i for i, s in enumerate(steps) if s.writes_to({k.enis})]
    assert len(writes) == 2 and writes[0] < created < writes[1]
    # The first write holds the primary with its 9 addresses (6 before, 3 assigned) alone.
    early = [EniRecord.from_json(c[3]) for c in steps[writes[0]].commands
             if c[0].upper() == "HSET" and c[1] == k.enis]
    assert [len(r.ips) for r in early] == [9]

    # The agent's report of the first generation is no proof for the second.
    st = ctx.state.read_node("w")
    assert st is not None and len(st.enis) == 2
    stamp = next(c for c in steps[writes[0]].commands
                 if c[0].upper() == "HSET" and c[1] == k.node and "write_id" in c)
    early_version = StoreVersion(epoch=stamp[stamp.index("epoch") + 1],
                                 generation=st.generation - 1,
                                 write_id=stamp[stamp.index("write_id") + 1])
    report = AgentRecord(ready=True, epoch=early_version.epoch,
                         generation=early_version.generation, write_id=early_version.write_id)
    ctx.state.redis.hset(k.agent, mapping=report.to_redis())
    assert not agent_has_programmed(ctx, st)
    agent_ready(ctx, "w")  # the second
    assert agent_has_programmed(ctx, st) and node_ready(ctx, "w")
    assert_redis_equals_ec2(st, vpcnet_enis(ec2_emulator, iid))
