"""Typed records of the hashes the control plane and the agent exchange (layout:
``vpcnet.state.keys``). Pure: no redis import.

Every reader and writer of a node's ``agent`` hash goes through :class:`AgentRecord`,
every reader of its ``node`` hash through :class:`NodeRecord`,
and every comparison of "what the agent programmed" with "what the store holds" goes
through :class:`StoreVersion`, so that numbers from two store histories are never
compared (invariant 7; the epoch design is in ``vpcnet.state.keys``).

Parsing is tolerant: a missing or garbled field reads as its empty value (a hand edit
or an older agent must not crash a status command), and such a record is never taken
as proof that anything was programmed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vpcnet.domain import NodePhase

# A hash as redis-py returns it: bytes (or str with decode_responses), None for a
# missing field of HMGET.
RedisHash = Mapping[Any, Any]


def _text(v: Any) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else str(v)


def text_fields(raw: RedisHash) -> dict[str, str]:
    """A hash as read by redis-py (bytes or str) as ``str -> str``."""
    return {_text(k): _text(v) for k, v in raw.items()}


def _int(raw: str) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        pass
    try:
        return int(float(raw))  # "5.0" from a hand edit or another writer
    except (ValueError, OverflowError):
        return 0


def _float(raw: str) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class StoreVersion:
    """Which write of the node's desired state (``node`` + ``enis``) a reader saw.

    ``epoch`` names the store history, ``generation`` counts writes within it and
    ``write_id`` names the one write (so the same (epoch, generation) written twice
    after a rollback is still told apart). An empty epoch is schema-1 data.
    """

    epoch: str = ""
    generation: int = 0
    write_id: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> StoreVersion:
        return cls(
            epoch=fields.get("epoch", ""),
            generation=_int(fields.get("generation", "")),
            write_id=fields.get("write_id", ""),
        )

    @property
    def exists(self) -> bool:
        return self.generation > 0

    def same_write(self, other: StoreVersion) -> bool:
        """Both name the one write. Schema-1 data (no epoch on either side) can only be
        compared by generation."""
        if not self.epoch and not other.epoch:
            return self.generation == other.generation and self.exists
        return (
            bool(self.epoch)
            and self.epoch == other.epoch
            and self.generation == other.generation
            and self.write_id == other.write_id
        )

    def rolled_back_from(self, seen: StoreVersion) -> bool:
        """The store now holds ``self`` though ``seen`` was read before in the same
        history: the store lost writes (failover without the last writes, a restored
        backup). Another epoch is another history: never compared."""
        if self.epoch != seen.epoch or not seen.exists:
            return False
        if self.generation < seen.generation:
            return True
        return self.generation == seen.generation and self.write_id != seen.write_id

    def describe(self) -> str:
        return f"{self.epoch or '-'}/{self.generation}"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """The node's ``agent`` hash: the agent's readiness report.

    ``epoch``/``generation``/``write_id`` name the desired state the agent programmed;
    ``rollback`` is the epoch in which the agent saw the store go back (its checkpoint
    remembers a newer write than the store holds), or empty. The control plane's next
    write of the node rotates the epoch when it sees one (``vpcnet.state.control``).
    """

    ready: bool = False
    epoch: str = ""
    generation: int = 0
    write_id: str = ""
    rollback: str = ""
    heartbeat: float = 0.0
    free: int = 0
    assigned: int = 0
    cooldown: int = 0
    version: str = ""
    error: str = ""
    # IPv6 pod addresses the agent has assigned (its IPv6 pool has no free count: a /80
    # is 2**48 addresses); 0 in a record an agent without IPv6 support wrote.
    assigned6: int = 0

    @property
    def programmed(self) -> StoreVersion:
        return StoreVersion(self.epoch, self.generation, self.write_id)

    def has_programmed(self, current: StoreVersion) -> bool:
        """The agent is ready and programmed exactly the store's current write."""
        return self.ready and current.exists and self.programmed.same_write(current)

    def to_redis(self) -> dict[str | bytes, bytes | float | int | str]:
        return {
            "ready": int(self.ready),
            "epoch": self.epoch,
            "generation": self.generation,
            "write_id": self.write_id,
            "rollback": self.rollback,
            "heartbeat": self.heartbeat,
            "free": self.free,
            "assigned": self.assigned,
            "cooldown": self.cooldown,
            "version": self.version,
            "error": self.error,
            "assigned6": self.assigned6,
        }

    @classmethod
    def from_redis(cls, raw: RedisHash) -> AgentRecord:
        f = text_fields(raw)
        return cls(
            ready=f.get("ready") == "1",
            epoch=f.get("epoch", ""),
            generation=_int(f.get("generation", "")),
            write_id=f.get("write_id", ""),
            rollback=f.get("rollback", ""),
            heartbeat=_float(f.get("heartbeat", "")),
            free=_int(f.get("free", "")),
            assigned=_int(f.get("assigned", "")),
            cooldown=_int(f.get("cooldown", "")),
            version=f.get("version", ""),
            error=f.get("error", ""),
            assigned6=_int(f.get("assigned6", "")),
        )


# For a point read of one field (HGET) where reading the whole hash would cost too much.
PHASE_FIELD = "phase"
# The node hash's back-off of the ENIs held ahead (``NodeRecord.enis_ahead_after``).
ENIS_AHEAD_AFTER_FIELD = "enis_ahead_after"


def parse_phase(raw: Any) -> NodePhase | None:
    """A stored phase (bytes, str or None); None when missing or not a phase."""
    text = _text(raw)
    return NodePhase(text) if text in NodePhase._value2member_map_ else None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """The node's ``node`` hash: what the control plane last wrote about the node.

    The provisioning write-back sets the fields of :meth:`to_redis`; ``version`` is
    stamped by the store's write itself (``vpcnet.state.control``), ``no_free_ips`` by
    the warm-pool scan, ``enis_ahead_after`` by a pass whose ENI held ahead failed, and
    the ``queued:<task>`` claims belong to ``vpcnet.state.claims`` (not read here).
    """

    instance_id: str = ""
    instance_type: str = ""
    az: str = ""
    subnet_id: str = ""
    primary_ip: str = ""
    mode: str = ""  # a vpcnet.domain.Mode value, or "" before the first write-back
    # A vpcnet.domain.IpFamily value ("" = ipv4: records from before IPv6 support). The
    # agent reads it to know which families each pod gets.
    ip_family: str = ""
    phase: NodePhase | None = None
    error: str = ""
    # The ClientToken epoch of a pass that acted but has not written back yet.
    pass_epoch: str = ""
    # JSON action -> minimum EC2 calls of the last pass that acted ("" = none recorded).
    plan_calls: str = ""
    # Why the pool cannot grow (ENI/IP limits reached), "" when it can: read by the agent,
    # which fails an ADD at once instead of waiting when no IP can come.
    no_growth: str = ""
    no_free_ips: bool = False
    # Unix time before which warm mode adds no ENI held ahead (an earlier one failed:
    # the subnet or the account's ENI quota may be short); 0: none pending. Set by the
    # pass that saw the failure (``ENIS_AHEAD_AFTER_FIELD``), never by the write-back.
    enis_ahead_after: float = 0.0
    version: StoreVersion = StoreVersion()

    def may_hold_enis_ahead(self, now: float) -> bool:
        """Warm mode may add ENIs held ahead: the node is READY (they never delay a
        join) and no failure of theirs is backing off."""
        return self.phase is NodePhase.READY and self.enis_ahead_after <= now

    @classmethod
    def from_redis(cls, raw: RedisHash) -> NodeRecord:
        f = text_fields(raw)
        return cls(
            instance_id=f.get("instance_id", ""),
            instance_type=f.get("instance_type", ""),
            az=f.get("az", ""),
            subnet_id=f.get("subnet_id", ""),
            primary_ip=f.get("primary_ip", ""),
            mode=f.get("mode", ""),
            ip_family=f.get("ip_family", ""),
            phase=parse_phase(f.get(PHASE_FIELD)),
            error=f.get("error", ""),
            pass_epoch=f.get("pass_epoch", ""),
            plan_calls=f.get("plan_calls", ""),
            no_growth=f.get("no_growth", ""),
            no_free_ips=f.get("no_free_ips") == "1",
            enis_ahead_after=_float(f.get(ENIS_AHEAD_AFTER_FIELD, "")),
            version=StoreVersion.from_fields(f),
        )

    def to_redis(self) -> dict[str, str]:
        """The fields a provisioning write-back sets (``plan_calls`` only when recorded:
        a pass that did not act keeps the last one)."""
        out = {
            "instance_id": self.instance_id,
            "instance_type": self.instance_type,
            "az": self.az,
            "subnet_id": self.subnet_id,
            "primary_ip": self.primary_ip,
            "mode": self.mode,
            "ip_family": self.ip_family,
            PHASE_FIELD: self.phase.value if self.phase else "",
            "error": self.error,
            "pass_epoch": self.pass_epoch,
            "no_growth": self.no_growth,
        }
        if self.plan_calls:
            out["plan_calls"] = self.plan_calls
        return out

    def same_desired(self, other: NodeRecord) -> bool:
        """Both say the same about the node (``plan_calls`` and the version aside)."""
        mine, theirs = self.to_redis(), other.to_redis()
        mine.pop("plan_calls", None)
        theirs.pop("plan_calls", None)
        return mine == theirs
