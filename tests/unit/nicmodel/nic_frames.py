"""Helpers for the nicmodel tests: frames as plain bytes, and what each pool received."""

from __future__ import annotations

import struct

from nicmodel.nic import Nic
from vswitch.core.frame import Frame, parse_mac

SRC = "02:00:00:00:ff:01"
BCAST = "ff:ff:ff:ff:ff:ff"


def mac(n: int) -> str:
    return f"02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}"


def eth(dst: str, src: str = SRC, vlan: int | None = None, pcp: int = 0, size: int = 60,
        ethertype: int = 0x0800) -> Frame:
    """A frame of ``size`` bytes (without FCS; a tag adds 4 more)."""
    hdr = parse_mac(dst) + parse_mac(src)
    if vlan is not None:
        hdr += b"\x81\x00" + struct.pack("!H", (pcp << 12) | vlan)
    hdr += struct.pack("!H", ethertype)
    body = bytes(max(0, size - 14))
    return Frame(hdr + body)


def udp(dst: str, i: int, src: str = SRC) -> Frame:
    """Flow ``i`` of many: an IPv4/UDP frame whose addresses and ports vary with ``i`` so that
    the NIC's RSS hash (an xor of their low octets) takes many values."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0,
                     bytes([10, 0, 0, i & 0xFF]), bytes([10, 0, 1, (i * 2654435761) >> 16 & 0xFF]))
    return Frame(parse_mac(dst) + parse_mac(src) + b"\x08\x00" + ip
                 + struct.pack("!HHHH", 1024 + i % 251, 80, 26, 0) + bytes(18))


def drain(nic: Nic, now_ns: int = 0) -> dict[int, list[Frame]]:
    """Poll every queue empty; frames grouped by the pool they landed in."""
    out: dict[int, list[Frame]] = {}
    for q in range(nic.profile.num_queues):
        while True:
            got = nic.poll(q, 64, now_ns)
            for f in got:
                assert nic.state.pool_of_queue(q) == f.pool, "frame annotated with another pool"
                assert f.queue == q
                out.setdefault(f.pool, []).append(f)
            if len(got) < 64:
                break
    return out


def pools_hit(nic: Nic, frame: Frame, now_ns: int = 0) -> set[int]:
    drain(nic)
    nic.rx([frame], now_ns)
    return set(drain(nic))
