"""Which ENIs the agent programs when Redis and the node disagree (invariant 7). Pure.

Redis can lose acknowledged writes (a failover without the last writes, a restored
backup): the ENI list it holds may lack an ENI that running pods use, or carry a record
that contradicts the host (another MAC or device index for an ENI in use). For anything a
running pod uses the node's own truth wins: an ENI that holds assigned IPs (the IPAM,
from the checkpoint) is kept, with the record the pods were programmed with, while
instance metadata names its MAC as that ENI, or, where metadata is silent about the MAC
or cannot be read, while its link is on the host. Only when both say it is gone does
the agent follow Redis and unprogram it. ENIs no pod uses simply follow Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from vpcnet.agent.metadata import ImdsInterface
from vpcnet.domain import EniRecord


@dataclass(frozen=True, slots=True)
class EniVerdict:
    enis: tuple[EniRecord, ...]  # what to program, by device index
    kept: tuple[str, ...] = ()  # ENIs in use kept against Redis (missing or contradicted)
    ignored: tuple[str, ...] = ()  # Redis records dropped: they claim a kept ENI's MAC/index
    gone: tuple[str, ...] = ()  # ENIs in use that metadata and the links say are gone


def held_enis(records: Iterable[EniRecord]) -> dict[str, EniRecord]:
    """The ENIs of the IPAM's allocations (the records running pods were programmed with)."""
    return {r.eni_id: r for r in records}


def _claims(e: EniRecord, held: EniRecord) -> bool:
    """``e`` (another ENI) says it has the held ENI's MAC or device index."""
    return e.eni_id != held.eni_id and (
        e.mac.lower() == held.mac.lower() or e.device_index == held.device_index
    )


def disputed(desired: Sequence[EniRecord], held: Mapping[str, EniRecord]) -> tuple[EniRecord, ...]:
    """ENIs in use that Redis lacks or contradicts: these need metadata before acting."""
    by_id = {e.eni_id: e for e in desired}
    out = []
    for h in held.values():
        r = by_id.get(h.eni_id)
        contradicted = r is None or r.mac.lower() != h.mac.lower() or r.device_index != h.device_index
        if contradicted or any(_claims(e, h) for e in desired):
            out.append(h)
    return tuple(sorted(out, key=lambda e: e.device_index))


def resolve_enis(
    desired: Sequence[EniRecord],
    held: Mapping[str, EniRecord],
    attached: Mapping[str, str] | None,
    links: Iterable[str],
) -> EniVerdict:
    """The ENIs to program.

    ``desired``: Redis's records; ``held``: ENIs with assigned IPs (``held_enis``);
    ``attached``: metadata's MAC -> ENI id, None when it could not be read (or was not
    needed); ``links``: MACs of the links on the host.
    """
    on_host = {m.lower() for m in links}
    out = {e.eni_id: e for e in desired}
    kept: list[str] = []
    ignored: list[str] = []
    gone: list[str] = []
    for h in disputed(desired, held):
        mac = h.mac.lower()
        if attached is not None and mac in attached:
            still_attached = attached[mac] == h.eni_id  # metadata names the MAC's ENI
        else:
            still_attached = mac in on_host  # a link on the host is an attached ENI
        if not still_attached:
            gone.append(h.eni_id)
            continue
        kept.append(h.eni_id)
        out[h.eni_id] = h  # the record the pods were programmed with, not Redis's
        for e in desired:
            if _claims(e, h) and e.eni_id in out:
                del out[e.eni_id]
                ignored.append(e.eni_id)
    return EniVerdict(
        enis=tuple(sorted(out.values(), key=lambda e: (e.device_index, e.eni_id))),
        kept=tuple(kept),
        ignored=tuple(ignored),
        gone=tuple(gone),
    )


def corroborate(
    enis: Sequence[EniRecord], interfaces: Mapping[str, ImdsInterface]
) -> tuple[EniRecord, ...]:
    """The records with only the IPs, prefixes and IPv6 /80s metadata lists for their MAC.

    Used while the store is known to have gone back: an older record may still carry
    IPs that EC2 has since unassigned (and may have given to another node), which the
    pool must not hand out again (invariant 1); the same for a /80. An IP a pod holds
    stays held either way (both pools keep it as vanished); ENIs metadata does not show are left as they
    are (``resolve_enis`` decided on them).
    """
    out = []
    for e in enis:
        iface = interfaces.get(e.mac.lower())
        if iface is None or iface.interface_id != e.eni_id:
            out.append(e)
            continue
        on_ec2 = set(iface.local_ipv4s)
        prefixes = set(iface.ipv4_prefixes)
        prefixes6 = set(iface.ipv6_prefixes)
        out.append(
            replace(
                e,
                ips=tuple(ip for ip in e.ips if ip in on_ec2),
                prefixes=tuple(p for p in e.prefixes if p in prefixes),
                ipv6_prefixes=tuple(p for p in e.ipv6_prefixes if p in prefixes6),
            )
        )
    return tuple(out)
