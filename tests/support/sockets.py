"""The sockets a set of processes listens on (TCP in LISTEN, bound UDP), to check what a stack exposes."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Listener:
    ip: str
    port: int
    kind: str  # "tcp" or "udp"
    pid: int
    process: str

    @property
    def loopback(self) -> bool:
        addr = ipaddress.ip_address(self.ip.split("%")[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return addr.is_loopback

    def __str__(self) -> str:
        return f"{self.kind} {self.ip}:{self.port} ({self.process}, pid {self.pid})"


def _name(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())[:120] or psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Every listening TCP socket and bound UDP socket of ``pids``."""
    wanted = set(pids)
    out = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid not in wanted or not conn.laddr:
            continue
        if conn.type == socket.SOCK_STREAM:
            if conn.status != psutil.CONN_LISTEN:
                continue
            kind = "tcp"
        else:
            if conn.raddr:  # a connected UDP socket answers only its peer
                continue
            kind = "udp"
        out.append(Listener(conn.laddr.ip, conn.laddr.port, kind, conn.pid, _name(conn.pid)))
    return sorted(out, key=lambda item: (item.pid, item.port))


def with_descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and every live process below them."""
    out: set[int] = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out.add(pid)
            out.update(child.pid for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return out
