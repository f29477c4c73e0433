"""The control plane's Redis adapter (layout: ``vpcnet.state.keys``, schema v1).

Writes that the agent acts on are atomic and fenced: a node's ``node`` + ``enis`` are
replaced by one Lua script that first checks the caller still holds the node's lock,
stamps the store version (epoch, generation, write_id; rotating the epoch when the
store has none or the agent reported a rollback, see ``vpcnet.state.keys``), adds
the pass's release requests and publishes on the node's ``changed`` channel. A
provisioning pass writes through this adapter fenced by the lock: the intent before
acting (``record_intent``: the ClientToken epoch) and the write-back (``write_node``, or
``request_release`` when only release requests changed), preceded on a READY node whose
pods wait by a ``write_node`` of the pools grown while its new ENIs are still being made.

Those scripts, and the MULTI transactions of ``set_fields`` and ``delete_node``, touch a
node's keys (hash tag ``{<cluster>/<node>}``) together with cluster-wide ones (``nodes``,
``schema``: ``{<cluster>}``). On Redis Cluster the script fails with CROSSSLOT and the
transactions cannot be atomic, so vpcnet needs one Redis primary; Redis Cluster is not
supported.
"""

from __future__ import annotations

import ipaddress
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from vpcnet.domain import EniRecord, InstanceLimits, IPv4, IPv4Net, IPv6, IPv6Net, NodePhase
from vpcnet.errors import LockHeld, StateError
from vpcnet.limits import limits_from_json, limits_to_json
from vpcnet.plan import PoolUsage, Releasable
from vpcnet.state.claims import FollowupClaims
from vpcnet.state.keys import SCHEMA_VERSION, ClusterKeys, NodeKeys
from vpcnet.state.lock import Lease, RedisLock
from vpcnet.state.records import AgentRecord, NodeRecord, StoreVersion, text_fields

ERRORS_KEPT = 1000
LIMITS_TTL_SECONDS = 24 * 3600  # refresh_limits re-reads them sooner; this bounds staleness

# KEYS: lock, node, enis, release-req, release-ok, nodes, schema, agent
# ARGV: token ('' = unfenced), node fields JSON, enis JSON {id: record}, released IPs JSON,
#       node name, channel, schema version, a fresh epoch (used if one is needed), write id,
#       IPs to request the release of JSON (added to release-req in the same step)
# The epoch is decided here, in the same atomic step that bumps the generation: the
# node hash has none (first write, FLUSHALL) or the agent's report shows the store went
# back in this epoch (it names the epoch as rolled back, or programmed a generation of
# it that the store no longer has) -> a new history starts at generation 1.
_WRITE = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, ''} end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local gen = tonumber(redis.call('HGET', KEYS[2], 'generation') or '0') or 0
local rotate = (not epoch) or epoch == ''
if not rotate then
  local seen = redis.call('HMGET', KEYS[8], 'epoch', 'generation', 'rollback')
  if seen[3] == epoch then rotate = true
  elseif seen[1] == epoch and (tonumber(seen[2] or '0') or 0) > gen then rotate = true end
end
if rotate then epoch = ARGV[8]; gen = 0 end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', KEYS[2], k, v) end
redis.call('DEL', KEYS[3])
for id, rec in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', KEYS[3], id, rec) end
for _, ip in ipairs(cjson.decode(ARGV[4])) do
  redis.call('SREM', KEYS[4], ip)
  redis.call('SREM', KEYS[5], ip)
end
for _, ip in ipairs(cjson.decode(ARGV[10])) do redis.call('SADD', KEYS[4], ip) end
gen = gen + 1
redis.call('HSET', KEYS[2], 'epoch', epoch, 'generation', gen, 'write_id', ARGV[9])
redis.call('SADD', KEYS[6], ARGV[5])
redis.call('SET', KEYS[7], ARGV[7], 'NX')
redis.call('PUBLISH', ARGV[6], gen)
return {gen, epoch}
"""
# A pass's other fenced writes (``record_intent``, ``request_release``): nothing is
# written unless KEYS[1], the node's lock, still holds ARGV[1], the pass's token.
# KEYS: lock, node, nodes, schema. ARGV: token, fields JSON, node name, schema version.
_INTENT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[2], k, v) end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4], 'NX')
return 1
"""
# KEYS: lock, release-req. ARGV: token, IPs JSON, channel.
_REQUEST_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for _, ip in ipairs(cjson.decode(ARGV[2])) do redis.call('SADD', KEYS[2], ip) end
redis.call('PUBLISH', ARGV[3], 'release-req')
return 1
"""
# Stamped by _WRITE only: a caller's fields must not forge or reset the store version.
STORE_VERSION_FIELDS = frozenset({"epoch", "generation", "write_id"})


@dataclass(frozen=True, slots=True)
class NodeState:
    """The node's ``node`` hash (``record``, typed; ``fields``, as stored) and ENIs."""

    name: str
    fields: Mapping[str, str]
    enis: tuple[EniRecord, ...]

    @property
    def record(self) -> NodeRecord:
        return NodeRecord.from_redis(self.fields)

    @property
    def phase(self) -> NodePhase | None:
        return self.record.phase

    @property
    def version(self) -> StoreVersion:
        """Which write of the node's desired state this is (epoch, generation, write_id)."""
        return self.record.version

    @property
    def generation(self) -> int:
        return self.version.generation

    @property
    def epoch(self) -> str:
        return self.version.epoch

    @property
    def instance_id(self) -> str:
        return self.record.instance_id


def _ip_list(ips: Sequence[Releasable]) -> str:
    return json.dumps([str(i) for i in ips])


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _by_family(raw: Any) -> tuple[frozenset[IPv4], frozenset[IPv6]]:
    """Addresses as the agent stores them (``assigned`` holds both families), split."""
    parsed = [ipaddress.ip_address(_s(x)) for x in raw]
    return (frozenset(a for a in parsed if isinstance(a, IPv4)),
            frozenset(a for a in parsed if isinstance(a, IPv6)))


def _releases(raw: Any) -> tuple[frozenset[IPv4], frozenset[IPv6Net]]:
    """A release set: IPv4 addresses, and /80 prefixes as CIDRs (``a:b::/80``)."""
    texts = [_s(x) for x in raw]
    return (frozenset(ipaddress.IPv4Address(t) for t in texts if "/" not in t and ":" not in t),
            frozenset(ipaddress.IPv6Network(t) for t in texts if "/" in t and ":" in t))


class ControlState:
    def __init__(self, client: redis.Redis[bytes], cluster: str, *, lock_replicas: int = 0) -> None:
        """``lock_replicas``: replicas that must hold a node lock's extension before an
        EC2 call goes out under it (``vpcnet.state.lock``; 0 for a Redis without any)."""
        self.redis = client
        self.keys = ClusterKeys(cluster)
        self.lock_replicas = lock_replicas
        self._write = client.register_script(_WRITE)
        self._intent = client.register_script(_INTENT)
        self._request_release = client.register_script(_REQUEST_RELEASE)
        # beat's follow-up claims live in the node hash; their owner is vpcnet.state.claims
        self.followups = FollowupClaims(client, self.keys)

    def node_keys(self, node: str) -> NodeKeys:
        return self.keys.node(node)

    # -- per-node lock (vpcnet.state.lock) -------------------------------------------

    def node_lock(self, node: str) -> RedisLock:
        return RedisLock(self.redis, self.node_keys(node).lock, replicas=self.lock_replicas)

    def gc_lock(self) -> RedisLock:
        return RedisLock(self.redis, self.keys.gc_lock, replicas=self.lock_replicas)

    def lease_lock(self, node: str, ttl_seconds: float) -> Lease:
        """The node's lock, or LockHeld (the task retries) if another pass holds it."""
        lease = self.node_lock(node).acquire(ttl_seconds)
        if lease is None:
            raise LockHeld(f"node {node} is being worked on by another worker", delay=2.0)
        return lease

    def acquire_lock(self, node: str, ttl_seconds: float) -> str:
        return self.lease_lock(node, ttl_seconds).token

    def release_lock(self, node: str, token: str) -> None:
        Lease(self.node_lock(node), token).release()

    def lock_held(self, node: str) -> bool:
        return self.node_lock(node).held()

    @contextmanager
    def locked(self, node: str, ttl_seconds: float = 60.0) -> Iterator[str]:
        lease = self.lease_lock(node, ttl_seconds)
        try:
            yield lease.token
        finally:
            lease.release()

    # -- node + enis -----------------------------------------------------------------

    def write_node(
        self,
        node: str,
        fields: Mapping[str, str],
        enis: Sequence[EniRecord],
        *,
        lock_token: str,
        released: Sequence[Releasable] = (),
        release_requests: Sequence[Releasable] = (),
    ) -> int:
        """Replace the node's ENIs, update fields, bump and publish ``generation``.

        ``released`` IPs are dropped from release-req/release-ok and ``release_requests``
        added to release-req, in the same step.
        """
        reserved = STORE_VERSION_FIELDS & set(fields)
        if reserved:
            raise ValueError(f"write_node: {sorted(reserved)} are stamped by the store itself")
        k = self.node_keys(node)
        try:
            gen, _epoch = self._write(
                keys=[k.lock, k.node, k.enis, k.release_req, k.release_ok, self.keys.nodes,
                      self.keys.schema, k.agent],
                args=[
                    lock_token,
                    json.dumps({**fields, "updated": f"{time.time():.3f}"}),
                    json.dumps({e.eni_id: e.to_json() for e in enis}) if enis else "{}",
                    _ip_list(released),
                    node,
                    k.changed_channel,
                    str(SCHEMA_VERSION),
                    uuid.uuid4().hex,  # the epoch, if this write starts a history
                    uuid.uuid4().hex,  # this write's id
                    _ip_list(release_requests),
                ],
            )
        except redis.RedisError as e:
            raise StateError(f"write node {node}: {e}") from e
        if int(gen) < 0:
            raise LockHeld(f"lost the lock of node {node} before writing", delay=1.0)
        return int(gen)

    def set_fields(self, node: str, fields: Mapping[str, str], *, register: bool = True) -> None:
        reserved = STORE_VERSION_FIELDS & set(fields)
        if reserved:
            raise ValueError(f"set_fields: {sorted(reserved)} are stamped by write_node only")
        try:
            pipe = self.redis.pipeline()
            mapping: dict[str | bytes, str] = {k: v for k, v in fields.items()}
            mapping["updated"] = f"{time.time():.3f}"
            pipe.hset(self.node_keys(node).node, mapping=mapping)
            if register:
                pipe.sadd(self.keys.nodes, node)
                pipe.set(self.keys.schema, str(SCHEMA_VERSION), nx=True)
            pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"node {node}: {e}") from e

    def record_intent(self, node: str, fields: Mapping[str, str], *, lock_token: str) -> None:
        """Set ``fields`` before a pass acts, fenced by the node's lock (LockHeld when
        lost): the one write a pass makes ahead of its write-back (its ClientToken epoch
        must be durable before CreateNetworkInterface, see ``vpcnet.control.provision``)."""
        reserved = STORE_VERSION_FIELDS & set(fields)
        if reserved:
            raise ValueError(f"record_intent: {sorted(reserved)} are stamped by write_node only")
        k = self.node_keys(node)
        try:
            done = self._intent(
                keys=[k.lock, k.node, self.keys.nodes, self.keys.schema],
                args=[lock_token, json.dumps({**fields, "updated": f"{time.time():.3f}"}),
                      node, str(SCHEMA_VERSION)],
            )
        except redis.RedisError as e:
            raise StateError(f"node {node}: {e}") from e
        if int(done) < 0:
            raise LockHeld(f"lost the lock of node {node} before acting", delay=1.0)

    def read_node(self, node: str) -> NodeState | None:
        k = self.node_keys(node)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(k.node)
            pipe.hgetall(k.enis)
            fields, enis = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"read node {node}: {e}") from e
        if not fields and not enis:
            return None
        records = sorted((EniRecord.from_json(v) for v in enis.values()), key=lambda r: r.device_index)
        return NodeState(node, {_s(a): _s(b) for a, b in fields.items()}, tuple(records))

    def list_nodes(self) -> list[str]:
        try:
            return sorted(_s(n) for n in self.redis.smembers(self.keys.nodes))
        except redis.RedisError as e:
            raise StateError(f"list nodes: {e}") from e

    def delete_node(self, node: str) -> None:
        k = self.node_keys(node)
        try:
            pipe = self.redis.pipeline()
            pipe.delete(*[key for key in k.all() if key != k.lock])
            pipe.srem(self.keys.nodes, node)
            pipe.publish(k.changed_channel, "deleted")
            pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"delete node {node}: {e}") from e

    # -- the agent's side ------------------------------------------------------------

    def read_usage(self, node: str, cooldown_seconds: float, now: float | None = None) -> PoolUsage:
        k = self.node_keys(node)
        now = time.time() if now is None else now
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hkeys(k.assigned)
            pipe.zrangebyscore(k.cooldown, now - cooldown_seconds, "+inf")
            pipe.smembers(k.release_req)
            pipe.smembers(k.release_ok)
            pipe.hget(k.demand, "waiting")
            assigned, cooling, req, ok, waiting = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"read usage {node}: {e}") from e

        try:  # the agent's word: never below 0, never more than a node could hold
            demand = min(max(int(_s(waiting)), 0), 10_000) if waiting is not None else 0
        except ValueError:
            demand = 0
        assigned4, assigned6 = _by_family(assigned)
        req4, req6 = _releases(req)
        ok4, ok6 = _releases(ok)
        return PoolUsage(assigned=assigned4, cooling=_by_family(cooling)[0],
                         release_requested=req4, release_confirmed=ok4, demand=demand,
                         assigned6=assigned6, release_requested6=req6, release_confirmed6=ok6)

    def agent(self, node: str) -> AgentRecord | None:
        """The agent's last report; None when it has written none."""
        try:
            raw = self.redis.hgetall(self.node_keys(node).agent)
        except redis.RedisError as e:
            raise StateError(f"agent {node}: {e}") from e
        return AgentRecord.from_redis(raw) if raw else None

    def read_node_and_agent(self, node: str) -> tuple[StoreVersion, AgentRecord | None]:
        """The node's store version and the agent's report, read in one transaction:
        an agent report can then never be ahead of the store it was read with, unless
        the store went back (node_ready relies on this)."""
        k = self.node_keys(node)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hmget(k.node, "epoch", "generation", "write_id")
            pipe.hgetall(k.agent)
            version_raw, agent_raw = pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"read node {node}: {e}") from e
        fields = text_fields(dict(zip(("epoch", "generation", "write_id"), version_raw, strict=True)))
        return StoreVersion.from_fields(fields), AgentRecord.from_redis(agent_raw) if agent_raw else None

    def request_release(self, node: str, ips: Sequence[Releasable], *, lock_token: str) -> None:
        """Add ``ips`` to release-req (and tell the agent), fenced by the node's lock: a
        pass's write-back when its node state is unchanged (else ``write_node`` carries
        the requests)."""
        k = self.node_keys(node)
        try:
            done = self._request_release(
                keys=[k.lock, k.release_req], args=[lock_token, _ip_list(ips), k.changed_channel]
            )
        except redis.RedisError as e:
            raise StateError(f"request release {node}: {e}") from e
        if int(done) < 0:
            raise LockHeld(f"lost the lock of node {node} before writing", delay=1.0)

    # -- errors ----------------------------------------------------------------------

    def record_error(self, node: str, kind: str, message: str) -> None:
        entry = json.dumps({"node": node, "kind": kind, "message": message, "at": time.time()})
        try:
            pipe = self.redis.pipeline()
            pipe.lpush(self.keys.errors, entry)
            pipe.ltrim(self.keys.errors, 0, ERRORS_KEPT - 1)
            pipe.execute()
        except redis.RedisError as e:
            raise StateError(f"record error {node}: {e}") from e

    def errors(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(_s(x)) for x in self.redis.lrange(self.keys.errors, 0, limit - 1)]

    def claim_fill(self, what: str, ttl_seconds: float) -> bool:
        """True for the one caller that should fill cache entry ``what`` now."""
        try:
            return bool(self.redis.set(self.keys.fill(what), "1", nx=True, px=int(ttl_seconds * 1000)))
        except redis.RedisError:
            return True  # no coordination possible: fill it ourselves

    # -- caches ----------------------------------------------------------------------

    def cached_limits(self, instance_type: str) -> InstanceLimits | None:
        try:
            raw = self.redis.get(self.keys.limits(instance_type))
        except redis.RedisError:
            return None  # the cache is an optimisation; EC2 or the table still answer
        return limits_from_json(raw) if raw else None

    def store_limits(self, limits: InstanceLimits) -> None:
        try:
            self.redis.set(self.keys.limits(limits.instance_type), limits_to_json(limits),
                           ex=LIMITS_TTL_SECONDS)
        except redis.RedisError:
            pass

    def cached_limit_types(self) -> list[str]:
        prefix = self.keys.limits("x")[:-1]
        return sorted(_s(k)[len(prefix):] for k in self.redis.scan_iter(match=prefix + "*"))

    def cached_subnet_ipv6(self, subnet_id: str) -> tuple[IPv6Net | None] | None:
        """The subnet's IPv6 /64 as a 1-tuple (its value None: the subnet has none), or
        None when the cache does not know (no entry, or one from before IPv6 support)."""
        try:
            raw = self.redis.hget(self.keys.subnet(subnet_id), "ipv6_cidr")
        except redis.RedisError:
            return None
        if raw is None:
            return None
        text = _s(raw)
        return (ipaddress.IPv6Network(text) if text else None,)

    def cached_subnet(self, subnet_id: str) -> tuple[IPv4Net, str] | None:
        try:
            raw = self.redis.hgetall(self.keys.subnet(subnet_id))
        except redis.RedisError:
            return None
        if not raw:
            return None
        d = {_s(a): _s(b) for a, b in raw.items()}
        return ipaddress.IPv4Network(d["cidr"]), d.get("az", "")

    def store_subnet(self, subnet_id: str, cidr: IPv4Net, az: str,
                     ipv6_cidr: IPv6Net | None = None) -> None:
        """``ipv6_cidr``: the subnet's /64, stored as "" when it has none."""
        try:
            self.redis.hset(self.keys.subnet(subnet_id), mapping={
                "cidr": str(cidr), "az": az, "ipv6_cidr": str(ipv6_cidr) if ipv6_cidr else ""})
        except redis.RedisError:
            pass
