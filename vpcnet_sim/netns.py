"""Small helpers for the simulated VPC: iproute2 argv calls, namespaces by prefix, sockets
inside a namespace, and the "outside" echo service.

Every command is an argv list (no shell). Namespace names always carry a caller-given
prefix so that cleanup by prefix never touches anything else on the machine.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NETNS_DIR = Path("/var/run/netns")
_TIMEOUT = 20.0


class NetnsError(RuntimeError):
    """An iproute2 command failed (message carries its stderr)."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def run_rc(argv: Sequence[str]) -> int:
    """The exit status of ``argv`` (for probes such as ``ip6tables -C``)."""
    return subprocess.run(list(argv), capture_output=True, timeout=_TIMEOUT, check=False).returncode


def ip(ns: str | None, *args: str, check: bool = True) -> str:
    return run(["ip", *(("-n", ns) if ns else ()), *args], check=check)


def ip_json(ns: str | None, *args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *(("-n", ns) if ns else ()), *args]).strip()
    data: list[dict[str, Any]] = json.loads(out) if out else []
    return data


def ip_batch(ns: str | None, commands: Sequence[str]) -> None:
    """Many ``ip`` commands in one process (fast for neighbour tables)."""
    if commands:
        run(["ip", *(("-n", ns) if ns else ()), "-batch", "-"], stdin="\n".join(commands) + "\n")


def sysctl(ns: str, values: dict[str, str]) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_add(name: str) -> None:
    if not netns_exists(name):
        ip(None, "netns", "add", name)
    ip(name, "link", "set", "lo", "up")


def netns_list(prefix: str) -> list[str]:
    if not prefix:
        raise ValueError("refusing to list namespaces without a prefix")
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def netns_delete(name: str) -> None:
    ip(None, "netns", "del", name, check=False)


def delete_by_prefix(prefix: str) -> list[str]:
    """Delete every namespace named ``prefix*`` (idempotent); returns the names deleted."""
    names = netns_list(prefix)
    for name in names:
        netns_delete(name)
    return names


def socket_in(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket living in ``netns`` (a name under /var/run/netns or a path)."""
    from pyroute2.netns import create_socket

    sock: socket.socket = create_socket(netns, family, kind, flags=0)
    return sock


def family_of(address: str) -> int:
    """The socket family of an IPv4 or IPv6 address string."""
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


class EchoServer:
    """A TCP service in a namespace that answers every connection with the source
    address it sees (used to prove SNAT on IPv4, its absence on IPv6), then closes."""

    def __init__(self, netns: str, address: str, port: int) -> None:
        self.netns = netns
        self.address = address
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        sock = socket_in(self.netns, family_of(self.address))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name=f"echo-{self.netns}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(f"{peer[0]}\n".encode())
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()  # the namespace is only freed once no socket holds it
            self._sock = None


def source_seen_by(netns: str, address: str, port: int, timeout: float = 5.0) -> str:
    """Connect from ``netns`` to an ``EchoServer``; the source address it saw."""
    sock = socket_in(netns, family_of(address))
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()
    finally:
        sock.close()


def ping(netns: str, address: str, *, count: int = 2, timeout: float = 5.0) -> bool:
    """``ping`` from inside ``netns``; True when replies came back."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2",
         "-W", "1", "-w", str(int(max(timeout, 1))), address],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
        check=False,
    )
    if proc.returncode != 0:
        log.info("ping %s -> %s failed: %s", netns, address, proc.stdout.strip()[-200:])
    return proc.returncode == 0


def current_netns_is_root() -> bool:
    try:
        return os.readlink("/proc/self/ns/net") == os.readlink("/proc/1/ns/net")
    except OSError:
        return True
