"""Pure planning: what a node's ENIs and IPs should become, as a list of frozen actions.

Each ``plan_*`` compares EC2's view of the instance's attached ENIs (or Redis' copy of
it) and the agent's pool usage with the mode's targets, and returns the actions that
converge them. No I/O: the control plane re-reads the world, plans, then acts.

IP families (``NodeSpec.ip_family``): the IPv4 plans below concern IPv4 only (their
full/warm/prefix targets are IPv4 targets). A node that wants IPv6 (ipv6, dual) gets one
/80 prefix on its primary ENI (``AssignIpv6Prefixes(primary, 1)``), which meets every
target (2**48 addresses); an ipv6-only node plans no IPv4 growth at all (no secondary
IPv4s, no extra ENIs). A /80 the node no longer wants goes back through the agent as
IPv4 addresses do: its CIDR into ``release-req``, the agent confirms it in
``release-ok``, then ``UnassignIpv6Prefixes``; never while a pod holds one of its
addresses.

A plan also states the EC2 calls it costs (``Plan.ec2_calls``); a clean join costs
``join_calls`` (one DescribeInstances plus the plan), which the tests and the storm
benchmark hold the real call counts against.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from vpcnet.control.view import EniView
from vpcnet.domain import EniRecord, InstanceLimits, IpFamily, IPv4, IPv4Net, IPv6, IPv6Net, Mode
from vpcnet.errors import ConfigError
from vpcnet.limits import PREFIX_SIZE, slots_per_eni
from vpcnet.wellknown import TAG_CLUSTER

# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """Warm-pool targets, with the AWS VPC CNI's meaning."""

    warm_ip_target: int = 0  # free IPs to keep (warm mode); overrides warm_eni_target
    minimum_ip_target: int = 0  # IPs to hold in total, used or not
    warm_eni_target: int = 1  # whole free ENIs' worth of IPs to keep (warm mode)
    warm_prefix_target: int = 1  # free /28 prefixes to keep (prefix mode)
    # Warm mode: ENIs (the primary included) kept attached ahead of demand, holding no
    # secondary IP beyond what the targets above want, so the pool grows by
    # AssignPrivateIpAddresses alone. -1: every ENI the instance type allows; 0: only
    # the ENIs the IP targets need (the AWS VPC CNI's behaviour, and this default: the
    # cluster-wide default is ``Settings.warm_attached_enis``).
    attached_enis: int = 0


@dataclass(frozen=True, slots=True)
class EniConfig:
    """Where new ENIs go: the instance's subnet and groups unless a node overrides them."""

    subnet_id: str
    security_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    cluster: str
    node_name: str
    instance_id: str
    limits: InstanceLimits
    mode: Mode
    eni_config: EniConfig
    targets: Targets = Targets()
    # The provisioning pass' epoch (stable across a killed pass and its re-run, new for
    # the next pass): part of every ClientToken, so a replay returns the same ENI and a
    # later pass never collides with an old token.
    epoch: str = ""
    ip_family: IpFamily = IpFamily.IPV4
    # The IPv6 /64 of the primary ENI's subnet, where its /80s come from; None: the
    # subnet has none (a node wanting IPv6 there is a ConfigError).
    ipv6_subnet_cidr: IPv6Net | None = None
    # Warm mode may add the ENIs held ahead (``Targets.attached_enis``) now: the node is
    # READY (a joining node's pass is DescribeInstances + Assign: the ENIs ahead must not
    # delay its readiness) and no earlier failure of theirs is backing off. Off by
    # default: only the control plane, which knows the phase, turns it on.
    enis_ahead: bool = False


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """The agent's report of its pool (Redis ``assigned``, ``cooldown``, release sets)."""

    assigned: frozenset[IPv4] = frozenset()
    cooling: frozenset[IPv4] = frozenset()  # freed less than the cooldown ago
    release_requested: frozenset[IPv4] = frozenset()
    release_confirmed: frozenset[IPv4] = frozenset()
    demand: int = 0  # ADDs waiting on the node for the pool to grow (the agent's ``demand``)
    # IPv6: the pods' addresses, and the /80 prefixes asked back (``release-req``) and
    # confirmed unused by the agent (``release-ok``); those sets hold a prefix as its CIDR.
    assigned6: frozenset[IPv6] = frozenset()
    release_requested6: frozenset[IPv6Net] = frozenset()
    release_confirmed6: frozenset[IPv6Net] = frozenset()


# What release-req/release-ok hold, and a pass hands back to EC2: IPv4 addresses, and
# /80 prefixes by CIDR (an IPv4 /28 goes back as its 16 addresses).
Releasable = IPv4 | IPv6Net


# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignIps:
    eni_id: str
    count: int

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"AssignPrivateIpAddresses": 1}


@dataclass(frozen=True, slots=True)
class AssignPrefixes:
    eni_id: str
    count: int

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"AssignPrivateIpAddresses": 1}


@dataclass(frozen=True, slots=True)
class AssignIpv6Prefixes:
    """Delegate ``count`` /80 prefixes to an ENI (AssignIpv6Addresses, Ipv6PrefixCount)."""

    eni_id: str
    count: int

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"AssignIpv6Addresses": 1}


@dataclass(frozen=True, slots=True)
class UnassignIpv6Prefixes:
    """Give /80 prefixes the agent confirmed unused back to EC2."""

    eni_id: str
    prefixes: tuple[IPv6Net, ...]

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"UnassignIpv6Addresses": 1}


@dataclass(frozen=True, slots=True)
class AddEni:
    """Create an ENI with its addresses in one call, attach it, set DeleteOnTermination."""

    device_index: int
    subnet_id: str
    security_groups: tuple[str, ...]
    ip_count: int
    prefix_count: int
    client_token: str
    # An ENI held ahead of demand (warm mode's ``attached_enis``), not one the targets
    # or waiting ADDs need: best effort, its failure fails neither the pass nor the node.
    ahead: bool = False

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {
            "CreateNetworkInterface": 1,
            "AttachNetworkInterface": 1,
            "ModifyNetworkInterfaceAttribute": 1,
        }


@dataclass(frozen=True, slots=True)
class SetDeleteOnTermination:
    eni_id: str
    attachment_id: str

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"ModifyNetworkInterfaceAttribute": 1}


@dataclass(frozen=True, slots=True)
class RequestRelease:
    """Ask the agent to take free IPs (and /80 prefixes, by CIDR) out of its pool
    (Redis only; no EC2 call)."""

    ips: tuple[IPv4, ...]
    ipv6_prefixes: tuple[IPv6Net, ...] = ()

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {}


@dataclass(frozen=True, slots=True)
class UnassignIps:
    """Give IPs the agent confirmed unused back to EC2."""

    eni_id: str
    ips: tuple[IPv4, ...]

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"UnassignPrivateIpAddresses": 1}


@dataclass(frozen=True, slots=True)
class UnassignPrefixes:
    eni_id: str
    prefixes: tuple[IPv4Net, ...]

    @property
    def ec2_calls(self) -> Mapping[str, int]:
        return {"UnassignPrivateIpAddresses": 1}


Action = (
    AssignIps
    | AssignPrefixes
    | AddEni
    | SetDeleteOnTermination
    | RequestRelease
    | UnassignIps
    | UnassignPrefixes
    | AssignIpv6Prefixes
    | UnassignIpv6Prefixes
)


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.actions)

    def ec2_calls(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for a in self.actions:
            total.update(a.ec2_calls)
        return dict(total)

    @property
    def touches_ec2(self) -> bool:
        return any(a.ec2_calls for a in self.actions)


# --- helpers --------------------------------------------------------------------------


def client_token(
    cluster: str,
    instance_id: str,
    epoch: str,
    device_index: int,
    subnet_id: str,
    security_groups: Sequence[str],
    ip_count: int,
    prefix_count: int,
) -> str:
    """Deterministic CreateNetworkInterface ClientToken (max 64 ASCII characters).

    A re-run of an interrupted task plans the same ENI for the same free device index
    and so sends the same token: EC2 returns the ENI it already made instead of a second.
    """
    key = "|".join(
        [cluster, instance_id, epoch, str(device_index), subnet_id, ",".join(sorted(security_groups)),
         str(ip_count), str(prefix_count)]
    )
    return "vpcnet-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def managed_enis(cluster: str, enis: Iterable[EniView]) -> list[EniView]:
    """The ENIs whose addresses vpcnet pools: the primary and the ones it created."""
    out = [e for e in enis if e.is_primary or e.owned_by(cluster)]
    return sorted(out, key=lambda e: e.device_index if e.device_index is not None else 1 << 20)


def free_device_indices(limits: InstanceLimits, enis: Sequence[EniView]) -> list[int]:
    """Device indices new ENIs may take: the lowest unused, as many as the type allows."""
    used = {e.device_index for e in enis if e.device_index is not None}
    room = max(limits.max_enis - len(enis), 0)
    out: list[int] = []
    d = 1
    while len(out) < room:
        if d not in used:
            out.append(d)
        d += 1
    return out


def view_from_record(cluster: str, rec: EniRecord) -> EniView:
    """Redis' copy of an ENI as the planner's input (for EC2-free pool checks)."""
    return EniView(
        eni_id=rec.eni_id,
        mac=rec.mac,
        subnet_id=rec.subnet_id,
        primary_ip=rec.primary_ip,
        ips=rec.ips,
        prefixes=rec.prefixes,
        ipv6_prefixes=rec.ipv6_prefixes,
        security_groups=rec.security_groups,
        device_index=rec.device_index,
        attachment_id=None,
        delete_on_termination=True,
        tags={} if rec.is_primary else {TAG_CLUSTER: cluster},
    )


def _dot_fixes(spec: NodeSpec, managed: Sequence[EniView]) -> list[Action]:
    return [
        SetDeleteOnTermination(e.eni_id, e.attachment_id)
        for e in managed
        if not e.is_primary and e.attachment_id and not e.delete_on_termination
    ]


def _add_enis(spec: NodeSpec, indices: Sequence[int], counts: Sequence[int], prefixes: bool) -> list[Action]:
    cfg = spec.eni_config
    out: list[Action] = []
    for d, n in zip(indices, counts, strict=False):
        ip_count, prefix_count = (0, n) if prefixes else (n, 0)
        token = client_token(spec.cluster, spec.instance_id, spec.epoch, d, cfg.subnet_id,
                             cfg.security_groups, ip_count, prefix_count)
        out.append(AddEni(d, cfg.subnet_id, tuple(sorted(cfg.security_groups)),
                          ip_count, prefix_count, token))
    return out


def _top_up(spec: NodeSpec, enis: Sequence[EniView], managed: Sequence[EniView],
            deficit: int, prefixes: bool) -> list[Action]:
    """Fill existing ENIs' free slots first (one call each), then add ENIs."""
    slots = slots_per_eni(spec.limits)
    out: list[Action] = []
    for e in managed:
        if deficit <= 0:
            break
        n = min(slots - e.used_slots, deficit)
        if n > 0:
            out.append(AssignPrefixes(e.eni_id, n) if prefixes else AssignIps(e.eni_id, n))
            deficit -= n
    counts: list[int] = []
    for _ in free_device_indices(spec.limits, enis):
        if deficit <= 0:
            break
        counts.append(min(slots, deficit))
        deficit -= counts[-1]
    out += _add_enis(spec, free_device_indices(spec.limits, enis), counts, prefixes)
    return out


def _enis_ahead(spec: NodeSpec, enis: Sequence[EniView], managed: Sequence[EniView],
                planned: Sequence[Action], usage: PoolUsage) -> list[Action]:
    """Warm mode's ENIs held ahead (``Targets.attached_enis``) that ``planned`` does not
    already add: attached with no secondary IP, at the next free device indices, marked
    ``ahead``. None unless ``spec.enis_ahead`` (the node is READY, not backing off), and
    none while ADDs wait: that pass serves them, the next quiet pass adds these."""
    want = spec.targets.attached_enis
    if want == 0 or not spec.enis_ahead or usage.demand:
        return []
    want = spec.limits.max_enis if want < 0 else min(want, spec.limits.max_enis)
    adding = sum(isinstance(a, AddEni) for a in planned)
    free = free_device_indices(spec.limits, enis)[adding:]
    n = min(max(want - len(managed) - adding, 0), len(free))
    return [replace(a, ahead=True) if isinstance(a, AddEni) else a
            for a in _add_enis(spec, free[:n], [0] * n, prefixes=False)]


def _capacity(spec: NodeSpec, enis: Sequence[EniView], managed: Sequence[EniView]) -> int:
    """Slots the node could ever hold: managed ENIs plus ENIs it may still attach."""
    return (len(managed) + len(free_device_indices(spec.limits, enis))) * slots_per_eni(spec.limits)


def _trim_order(managed: Sequence[EniView]) -> list[tuple[EniView, IPv4]]:
    # Drain the highest device index first so whole ENIs empty out over time.
    pairs = [(e, ip) for e in managed for ip in e.ips]
    return sorted(pairs, key=lambda p: (-(p[0].device_index or 0), -int(p[1])))


# --- plans ----------------------------------------------------------------------------


def plan_full(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage = PoolUsage()) -> Plan:
    """The seed's behaviour: every ENI the type allows, each with every address it allows."""
    slots = slots_per_eni(spec.limits)
    managed = managed_enis(spec.cluster, enis)
    actions: list[Action] = _dot_fixes(spec, managed)
    for e in managed:
        if e.used_slots < slots:
            actions.append(AssignIps(e.eni_id, slots - e.used_slots))
    indices = free_device_indices(spec.limits, enis)
    actions += _add_enis(spec, indices, [slots] * len(indices), prefixes=False)
    return Plan(tuple(actions))


def plan_warm(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage) -> Plan:
    """Keep ``warm_ip_target`` (or ``warm_eni_target`` ENIs' worth) free IPs, at least
    ``minimum_ip_target`` in total; trim surplus the agent confirmed unused.

    ``attached_enis`` ENIs stay attached ahead, empty but for what the IP targets put
    on them: a burst then waits for one AssignPrivateIpAddresses per ENI (in parallel),
    not a new ENI's chain. A trim gives back IPs only, never those ENIs."""
    t = spec.targets
    slots = slots_per_eni(spec.limits)
    managed = managed_enis(spec.cluster, enis)
    pool = {ip for e in managed for ip in e.ips}
    assigned = usage.assigned & pool
    requested = (usage.release_requested & pool) - assigned
    busy = assigned | ((usage.cooling & pool) - requested)
    kept = len(pool) - len(requested)  # requested IPs are on their way out
    # Waiting ADDs count as busy: the whole shortfall is assigned in one pass (one
    # AssignPrivateIpAddresses per ENI it fills), and the warm target stays on top.
    wanted = len(busy) + usage.demand
    if t.warm_ip_target or t.minimum_ip_target:
        desired = max(wanted + t.warm_ip_target, t.minimum_ip_target)
        hysteresis = 0
    else:
        desired = (math.ceil(wanted / slots) + t.warm_eni_target) * slots if slots else 0
        hysteresis = slots - 1  # trim only a whole ENI's worth, against churn
    desired = min(desired, _capacity(spec, enis, managed))

    actions: list[Action] = _dot_fixes(spec, managed)
    confirmed = (usage.release_confirmed & requested) - assigned
    for e in managed:
        mine = tuple(sorted(ip for ip in e.ips if ip in confirmed))
        if mine:
            actions.append(UnassignIps(e.eni_id, mine))
    if desired > kept:
        actions += _top_up(spec, enis, managed, desired - kept, prefixes=False)
    elif kept - desired > hysteresis and not usage.demand:  # never trim while ADDs wait
        surplus = kept - desired
        candidates = [ip for e, ip in _trim_order(managed) if ip not in busy and ip not in requested]
        chosen = tuple(sorted(candidates[:surplus]))
        if chosen:
            actions.append(RequestRelease(chosen))
    actions += _enis_ahead(spec, enis, managed, actions, usage)
    return Plan(tuple(actions))


def plan_prefix(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage) -> Plan:
    """/28 prefix delegation: keep ``warm_prefix_target`` whole free prefixes (and at least
    ``minimum_ip_target`` addresses); a prefix goes back only when all 16 are requested
    (release-req) and confirmed (release-ok), and none is assigned."""
    if not spec.limits.supports_prefixes:
        raise ConfigError(
            f"prefix mode needs a Nitro instance; {spec.limits.instance_type} is "
            f"{spec.limits.hypervisor or 'bare metal'}"
        )
    t = spec.targets
    managed = managed_enis(spec.cluster, enis)
    owned = [(e, p) for e in managed for p in e.prefixes]
    hot = usage.assigned | usage.cooling

    def addrs(p: IPv4Net) -> set[IPv4]:
        return set(p)

    requested = {p for _, p in owned if addrs(p) <= usage.release_requested}
    busy = {p for _, p in owned if addrs(p) & hot and p not in requested}
    kept = len(owned) - len(requested)
    # ADDs wait only when no address is free, so every kept prefix is busy then: the
    # waiting ones need whole new prefixes, on top of the warm target.
    desired = max(len(busy) + math.ceil(usage.demand / PREFIX_SIZE) + t.warm_prefix_target,
                  math.ceil(t.minimum_ip_target / PREFIX_SIZE))
    desired = min(desired, _capacity(spec, enis, managed))

    actions: list[Action] = _dot_fixes(spec, managed)
    # Requested by the control plane and confirmed by the agent, all 16, none assigned:
    # a stale release-ok alone (its release-req lost with a write, the prefix back in use)
    # never hands a prefix back to EC2.
    releasable = usage.release_confirmed & usage.release_requested
    for e in managed:
        done = tuple(
            p for p in e.prefixes
            if addrs(p) <= releasable and not addrs(p) & usage.assigned
        )
        if done:
            actions.append(UnassignPrefixes(e.eni_id, done))
    if desired > kept:
        actions += _top_up(spec, enis, managed, desired - kept, prefixes=True)
    elif kept > desired and not usage.demand:
        free = [(e, p) for e, p in owned if p not in requested and p not in busy]
        free.sort(key=lambda ep: (-(ep[0].device_index or 0), -int(ep[1].network_address)))
        chosen = [ip for _, p in free[: kept - desired] for ip in p]
        if chosen:
            actions.append(RequestRelease(tuple(sorted(chosen))))
    return Plan(tuple(actions))


def _plan_ipv4(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage) -> Plan:
    if spec.mode is Mode.FULL:
        return plan_full(spec, enis, usage)
    if spec.mode is Mode.WARM:
        return plan_warm(spec, enis, usage)
    return plan_prefix(spec, enis, usage)


def _ipv4_only_drains(spec: NodeSpec, usage: PoolUsage) -> tuple[NodeSpec, PoolUsage]:
    """An ipv6-only node's IPv4 plan: no target, no demand (its pods wait on no IPv4),
    so it grows nothing and gives back unused secondaries the way a trim does."""
    mode = Mode.WARM if spec.mode is Mode.FULL else spec.mode
    return (replace(spec, mode=mode, targets=Targets(0, 0, 0, 0)),
            replace(usage, demand=0))


def _primary(spec: NodeSpec, enis: Sequence[EniView]) -> EniView | None:
    return next((e for e in managed_enis(spec.cluster, enis) if e.is_primary), None)


def _kept_ipv6_prefix(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage) -> IPv6Net | None:
    """The /80 the node keeps: the primary ENI's lowest one not being given back."""
    primary = _primary(spec, enis)
    if not spec.ip_family.wants_ipv6 or primary is None:
        return None
    live = sorted(p for p in primary.ipv6_prefixes if p not in usage.release_requested6)
    return live[0] if live else None


def _ipv6_check(spec: NodeSpec, primary: EniView | None) -> None:
    """A node wanting IPv6 where no /80 can ever come is a configuration error."""
    if not spec.ip_family.wants_ipv6:
        return
    if not spec.limits.supports_prefixes:
        raise ConfigError(
            f"ip family {spec.ip_family.value} needs IPv6 prefix delegation (a Nitro instance); "
            f"{spec.limits.instance_type} is {spec.limits.hypervisor or 'bare metal'}"
        )
    if spec.limits.ipv6_slots <= 0:
        raise ConfigError(f"ip family {spec.ip_family.value}: instance type "
                          f"{spec.limits.instance_type} supports no IPv6")
    if spec.ipv6_subnet_cidr is None:
        subnet = primary.subnet_id if primary else spec.eni_config.subnet_id
        raise ConfigError(f"ip family {spec.ip_family.value}: subnet {subnet} has no IPv6 CIDR")


def plan_ipv6(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage) -> Plan:
    """The node's /80s: one on the primary ENI when the family wants IPv6; every other
    /80 on its managed ENIs asked back (release-req), and handed back to EC2 once the
    agent confirmed it (release-ok) and no pod holds an address of it."""
    primary = _primary(spec, enis)
    _ipv6_check(spec, primary)
    kept = _kept_ipv6_prefix(spec, enis, usage)
    actions: list[Action] = []
    if (spec.ip_family.wants_ipv6 and kept is None and primary is not None
            and primary.used_ipv6_slots < spec.limits.ipv6_slots):  # else growth_blocker says why
        actions.append(AssignIpv6Prefixes(primary.eni_id, 1))
    releasable = usage.release_confirmed6 & usage.release_requested6
    asking: list[IPv6Net] = []
    for e in managed_enis(spec.cluster, enis):
        done: list[IPv6Net] = []
        for p in sorted(e.ipv6_prefixes):
            if p == kept:
                continue
            if any(ip in p for ip in usage.assigned6):
                continue  # a pod still holds an address of it: not asked back, never unassigned
            if p in releasable:
                done.append(p)
            elif p not in usage.release_requested6:
                asking.append(p)
        if done:
            actions.append(UnassignIpv6Prefixes(e.eni_id, tuple(done)))
    if asking:
        actions.append(RequestRelease((), tuple(asking)))
    return Plan(tuple(actions))


def plan_node(spec: NodeSpec, enis: Sequence[EniView], usage: PoolUsage = PoolUsage()) -> Plan:
    """The IPv4 plan of the node's mode (none for an ipv6-only node beyond giving back
    unused IPv4s), then its /80s (:func:`plan_ipv6`)."""
    ipv6 = plan_ipv6(spec, enis, usage)  # first: its ConfigError before any IPv4 plan
    if spec.ip_family.wants_ipv4:
        ipv4 = _plan_ipv4(spec, enis, usage)
    else:
        drain_spec, drain_usage = _ipv4_only_drains(spec, usage)
        ipv4 = _plan_ipv4(drain_spec, enis, drain_usage)
    return Plan(ipv4.actions + ipv6.actions, ipv4.notes + ipv6.notes)


def _ipv4_growth_blocker(spec: NodeSpec, enis: Sequence[EniView]) -> str:
    slots = slots_per_eni(spec.limits)
    managed = managed_enis(spec.cluster, enis)
    if free_device_indices(spec.limits, enis) or any(e.used_slots < slots for e in managed):
        return ""
    unit = "/28 prefixes" if spec.mode is Mode.PREFIX else "IPs"
    return (f"ENI and IP limits reached: {len(managed)} of {spec.limits.max_enis} ENIs attached, "
            f"each with its {slots} {unit} ({spec.limits.instance_type})")


def _ipv6_growth_blocker(spec: NodeSpec, enis: Sequence[EniView]) -> str:
    primary = _primary(spec, enis)
    if primary is not None and primary.ipv6_prefixes:
        return ""
    if not spec.limits.supports_prefixes:
        return (f"no IPv6 /80 prefix can be delegated: {spec.limits.instance_type} is not a "
                f"Nitro instance")
    if spec.ipv6_subnet_cidr is None:
        subnet = primary.subnet_id if primary else spec.eni_config.subnet_id
        return f"no IPv6 /80 prefix can be delegated: subnet {subnet} has no IPv6 CIDR"
    if primary is not None and primary.used_ipv6_slots >= spec.limits.ipv6_slots:
        return (f"no IPv6 /80 prefix can be delegated: the primary ENI holds its "
                f"{spec.limits.ipv6_slots} IPv6 addresses ({spec.limits.instance_type})")
    return ""


def growth_blocker(spec: NodeSpec, enis: Sequence[EniView]) -> str:
    """Why the node's pool cannot grow any more ("" when it can), for each family it
    wants: IPv4, every ENI the instance type allows is attached and each holds every
    address it allows; IPv6, the primary ENI holds no /80 and none can be delegated
    (not Nitro, a subnet without IPv6, its IPv6 slots full). The agent fails an ADD
    fast, and the no-free-IPs taint goes on, when the family it needs cannot grow."""
    reasons = []
    if spec.ip_family.wants_ipv4:
        reasons.append(_ipv4_growth_blocker(spec, enis))
    if spec.ip_family.wants_ipv6:
        reasons.append(_ipv6_growth_blocker(spec, enis))
    return "; ".join(r for r in reasons if r)


def join_calls(plan: Plan) -> dict[str, int]:
    """EC2 calls a provisioning pass costs: one DescribeInstances, then the plan's calls."""
    calls = Counter({"DescribeInstances": 1})
    calls.update(plan.ec2_calls())
    return dict(calls)


def min_join_calls(spec: NodeSpec) -> dict[str, int]:
    """The minimum EC2 calls for a clean join of a fresh instance (its primary ENI alone,
    in a dual-stack subnet when the family wants IPv6: its one AssignIpv6Addresses)."""
    if spec.ip_family.wants_ipv6 and spec.ipv6_subnet_cidr is None:
        spec = replace(spec, ipv6_subnet_cidr=IPv6Net("2001:db8::/64"))
    primary = EniView(
        eni_id="eni-primary", mac="02:00:00:00:00:00", subnet_id=spec.eni_config.subnet_id,
        primary_ip=IPv4("10.0.0.10"), device_index=0,
    )
    return join_calls(plan_node(spec, [primary], PoolUsage()))
