"""IPv6 address bookkeeping of one subnet's /64, as EC2 keeps it (pure: no I/O).

An address is held either individually (an ENI's IPv6 address) or as part of a
delegated /80 prefix; the two never overlap and a /80 is never handed out twice while
it is held. AWS reserves the first four addresses and the last one of every subnet's
IPv6 range too, so the /80s holding them (the first and the last) are never delegated.
Individual addresses are taken from the start of the /64, prefixes from the /80 after
the first: a /64 holds 65536 /80s, far more than any test or benchmark uses.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from vpcnet_sim.ec2 import errors

PREFIX6_LEN = 80
_BLOCK_BITS = 128 - PREFIX6_LEN
_MASK = ~((1 << _BLOCK_BITS) - 1) & ((1 << 128) - 1)


def not_in_prefixes(eni_id: str) -> errors.SimApiError:
    return errors.invalid_value(
        f"Some of the specified IPv6 prefixes are not assigned to interface {eni_id}"
    )


class Ipv6SubnetPool:
    """Held IPv6 addresses and /80 prefixes of one subnet's /64."""

    def __init__(self, cidr: ipaddress.IPv6Network) -> None:
        if cidr.prefixlen > PREFIX6_LEN:
            raise ValueError(f"a subnet's IPv6 range must hold /80s, not {cidr}")
        self.cidr = cidr
        self._first = int(cidr.network_address)
        self._last = int(cidr.broadcast_address)
        self._reserved = {self._first + i for i in range(4)} | {self._last}
        self._ips: set[int] = set()
        self._prefixes: set[int] = set()  # base address of each delegated /80
        self._block_use: Counter[int] = Counter()  # /80 base -> individually held IPs
        self._ip_cursor = self._first + 4
        self._prefix_cursor = self._first + (1 << _BLOCK_BITS)

    @property
    def held_prefixes(self) -> int:
        return len(self._prefixes)

    def holds_prefix(self, prefix: str) -> bool:
        return int(ipaddress.IPv6Network(prefix).network_address) in self._prefixes

    # -- individual addresses --------------------------------------------------------

    def _ip_free(self, addr: int) -> bool:
        return (
            addr not in self._ips
            and addr not in self._reserved
            and (addr & _MASK) not in self._prefixes
        )

    def allocate_ips(self, count: int) -> list[str]:
        """``count`` free addresses (the /64 never runs out in practice)."""
        out: list[int] = []
        addr = self._ip_cursor
        while len(out) < count:
            if addr > self._last:
                self.release_ips([str(ipaddress.IPv6Address(a)) for a in out])
                raise errors.insufficient_addresses()
            if self._ip_free(addr):
                self._take_ip(addr)
                out.append(addr)
            addr += 1
        self._ip_cursor = addr
        return [str(ipaddress.IPv6Address(a)) for a in out]

    def claim_ip(self, ip: str) -> str:
        """Take a caller-chosen address; returns it normalised."""
        try:
            addr_obj = ipaddress.IPv6Address(ip)
        except ValueError as e:
            raise errors.invalid_value(f"Invalid IPv6 address: {ip}") from e
        if addr_obj not in self.cidr:
            raise errors.invalid_value(
                f"Address {ip} does not fall within the subnet's IPv6 address range"
            )
        addr = int(addr_obj)
        if addr in self._reserved:
            raise errors.invalid_value(f"Address {ip} is reserved by AWS and cannot be assigned")
        if not self._ip_free(addr):
            raise errors.address_in_use(ip)
        self._take_ip(addr)
        return str(addr_obj)

    def _take_ip(self, addr: int) -> None:
        self._ips.add(addr)
        self._block_use[addr & _MASK] += 1

    def release_ips(self, ips: list[str]) -> None:
        for ip in ips:
            addr = int(ipaddress.IPv6Address(ip))
            if addr in self._ips:
                self._ips.discard(addr)
                base = addr & _MASK
                self._block_use[base] -= 1
                if self._block_use[base] <= 0:
                    del self._block_use[base]

    # -- /80 prefixes ----------------------------------------------------------------

    def _block_free(self, base: int) -> bool:
        if base in self._prefixes or self._block_use.get(base, 0):
            return False
        # the /80s holding a reserved address are never delegated
        return not any((r & _MASK) == base for r in self._reserved)

    def allocate_prefixes(self, count: int) -> list[str]:
        """``count`` free /80s, all or none (InsufficientCidrBlocks)."""
        found: list[int] = []
        nblocks = (self._last - self._first + 1) >> _BLOCK_BITS
        base = self._prefix_cursor
        for _ in range(nblocks):
            if len(found) == count:
                break
            if base > self._last:
                base = self._first
            if self._block_free(base):
                found.append(base)
            base += 1 << _BLOCK_BITS
        if len(found) < count:
            raise errors.insufficient_cidr_blocks()
        self._prefixes.update(found)
        if found:
            # Move on, so a just-released /80 is handed out again only after a full lap.
            self._prefix_cursor = found[-1] + (1 << _BLOCK_BITS)
        return [f"{ipaddress.IPv6Address(b)}/{PREFIX6_LEN}" for b in found]

    def claim_prefix(self, prefix: str) -> str:
        """Take a caller-chosen /80; returns it normalised."""
        try:
            net = ipaddress.IPv6Network(prefix, strict=True)
        except ValueError as e:
            raise errors.invalid_value(f"Invalid IPv6 prefix: {prefix}") from e
        if net.prefixlen != PREFIX6_LEN:
            raise errors.invalid_value(f"Prefix {prefix} must be a /{PREFIX6_LEN}")
        if not net.subnet_of(self.cidr):
            raise errors.invalid_value(
                f"Prefix {prefix} does not fall within the subnet's IPv6 address range"
            )
        base = int(net.network_address)
        if not self._block_free(base):
            raise errors.invalid_value(f"Prefix {prefix} is in use or overlaps assigned addresses")
        self._prefixes.add(base)
        return str(net)

    def release_prefixes(self, prefixes: list[str]) -> None:
        for p in prefixes:
            self._prefixes.discard(int(ipaddress.IPv6Network(p).network_address))


def norm_prefix6(prefix: str) -> str:
    try:
        return str(ipaddress.IPv6Network(prefix, strict=True))
    except ValueError as e:
        raise errors.invalid_value(f"Invalid IPv6 prefix: {prefix}") from e
