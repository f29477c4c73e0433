"""Address bookkeeping of one subnet, as EC2 keeps it (pure: no I/O).

AWS reserves the first four addresses and the broadcast address of every subnet. An
address is held either individually (an ENI's primary or secondary IP) or as part of a
delegated /28 prefix; the two never overlap, and a prefix never covers a reserved
address. The free count is what DescribeSubnets reports and can never go negative,
because nothing is handed out that is not free.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from vpcnet_sim.ec2 import errors

PREFIX_LEN = 28
_BLOCK = 1 << (32 - PREFIX_LEN)  # 16 addresses per /28
_MASK = ~(_BLOCK - 1) & 0xFFFFFFFF


class SubnetPool:
    """Free/used addresses and /28 prefixes of one IPv4 subnet."""

    def __init__(self, cidr: ipaddress.IPv4Network) -> None:
        self.cidr = cidr
        self._first = int(cidr.network_address)
        self._last = int(cidr.broadcast_address)
        self._reserved = {self._first, self._first + 1, self._first + 2, self._first + 3, self._last}
        self._ips: set[int] = set()
        self._prefixes: set[int] = set()  # base address of each delegated /28
        self._block_use: Counter[int] = Counter()  # /28 base -> individually held IPs in it
        self._ip_cursor = self._first + 4
        self._prefix_cursor = self._first

    # -- reporting -------------------------------------------------------------------

    @property
    def usable(self) -> int:
        return max(0, self.cidr.num_addresses - len(self._reserved))

    def free_count(self) -> int:
        """AvailableIpAddressCount: every address neither reserved, held, nor delegated."""
        return self.usable - len(self._ips) - _BLOCK * len(self._prefixes)

    def holds_ip(self, ip: str) -> bool:
        return int(ipaddress.IPv4Address(ip)) in self._ips

    def holds_prefix(self, prefix: str) -> bool:
        return int(ipaddress.IPv4Network(prefix).network_address) in self._prefixes

    # -- individual addresses --------------------------------------------------------

    def _is_free(self, addr: int) -> bool:
        return (
            addr not in self._ips
            and addr not in self._reserved
            and (addr & _MASK) not in self._prefixes
        )

    def peek_ip(self) -> str:
        """The address allocate_ips(1) would return, without taking it."""
        addr = self._scan_ip()
        if addr is None:
            raise errors.insufficient_addresses()
        return str(ipaddress.IPv4Address(addr))

    def _scan_ip(self) -> int | None:
        if self.free_count() <= 0:
            return None
        span = self._last - self._first + 1
        addr = self._ip_cursor
        for _ in range(span):
            if addr > self._last:
                addr = self._first
            if self._is_free(addr):
                return addr
            addr += 1
        return None

    def allocate_ips(self, count: int) -> list[str]:
        """``count`` free addresses, all or none (InsufficientFreeAddressesInSubnet)."""
        if count > self.free_count():
            raise errors.insufficient_addresses()
        out: list[str] = []
        for _ in range(count):
            addr = self._scan_ip()
            if addr is None:  # cannot happen while free_count is right; undo and fail
                self.release_ips(out)
                raise errors.insufficient_addresses()
            self._take_ip(addr)
            # Move on so freed addresses are reused only after a full lap, as EC2
            # rarely hands a just-released address straight back.
            self._ip_cursor = addr + 1
            out.append(str(ipaddress.IPv4Address(addr)))
        return out

    def claim_ip(self, ip: str) -> None:
        """Take a caller-chosen address, with EC2's checks."""
        try:
            addr_obj = ipaddress.IPv4Address(ip)
        except ValueError as e:
            raise errors.invalid_value(f"Invalid IPv4 address: {ip}") from e
        if addr_obj not in self.cidr:
            raise errors.invalid_value(
                f"Address {ip} does not fall within the subnet's address range"
            )
        addr = int(addr_obj)
        if addr in self._reserved:
            raise errors.invalid_value(f"Address {ip} is reserved by AWS and cannot be assigned")
        if not self._is_free(addr):
            raise errors.address_in_use(ip)
        self._take_ip(addr)

    def _take_ip(self, addr: int) -> None:
        self._ips.add(addr)
        self._block_use[addr & _MASK] += 1

    def release_ips(self, ips: list[str]) -> None:
        for ip in ips:
            addr = int(ipaddress.IPv4Address(ip))
            if addr in self._ips:
                self._ips.discard(addr)
                base = addr & _MASK
                self._block_use[base] -= 1
                if self._block_use[base] <= 0:
                    del self._block_use[base]

    # -- /28 prefixes ----------------------------------------------------------------

    def _block_free(self, base: int) -> bool:
        if base in self._prefixes or self._block_use.get(base, 0):
            return False
        # a block holding a reserved address (first or last /28) is never delegated
        return not (base <= self._first + 3 or base + _BLOCK - 1 >= self._last)

    def allocate_prefixes(self, count: int) -> list[str]:
        """``count`` free /28 blocks, all or none.

        Not enough addresses at all -> InsufficientFreeAddressesInSubnet; enough
        addresses but no whole free /28 (fragmentation) -> InsufficientCidrBlocks.
        """
        if _BLOCK * count > self.free_count():
            raise errors.insufficient_addresses()
        found: list[int] = []
        nblocks = (self._last - self._first + 1) // _BLOCK
        base = self._prefix_cursor
        for _ in range(nblocks):
            if base > self._last:
                base = self._first
            if self._block_free(base):
                found.append(base)
                if len(found) == count:
                    break
            base += _BLOCK
        if len(found) < count:
            raise errors.insufficient_cidr_blocks()
        self._prefixes.update(found)
        self._prefix_cursor = found[-1] + _BLOCK if found else self._prefix_cursor
        return [f"{ipaddress.IPv4Address(b)}/{PREFIX_LEN}" for b in found]

    def claim_prefix(self, prefix: str) -> str:
        """Take a caller-chosen /28; returns it normalised."""
        try:
            net = ipaddress.IPv4Network(prefix, strict=True)
        except ValueError as e:
            raise errors.invalid_value(f"Invalid IPv4 prefix: {prefix}") from e
        if net.prefixlen != PREFIX_LEN:
            raise errors.invalid_value(f"Prefix {prefix} must be a /{PREFIX_LEN}")
        if not net.subnet_of(self.cidr):
            raise errors.invalid_value(
                f"Prefix {prefix} does not fall within the subnet's address range"
            )
        base = int(net.network_address)
        if not self._block_free(base):
            raise errors.invalid_value(f"Prefix {prefix} is in use or overlaps assigned addresses")
        self._prefixes.add(base)
        return str(net)

    def release_prefixes(self, prefixes: list[str]) -> None:
        for p in prefixes:
            self._prefixes.discard(int(ipaddress.IPv4Network(p).network_address))
