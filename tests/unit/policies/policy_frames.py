"""Frames and harnesses for the policy tests.

Frames are built by hand with struct (no scapy, no project code), so no
expectation comes from the code under test; the IPv4 header checksum is
computed here in full (RFC 791), to check the policies' incremental update.
"""

from __future__ import annotations

import struct

from vswitch.core import Element, Frame, Graph
from vswitch.core.queues import Queue
from vswitch.core.scheduler import Scheduler

SRC = bytes.fromhex("020000000001")
DST = bytes.fromhex("020000000002")
MS = 1_000_000
US = 1_000


def checksum(header: bytes) -> int:
    """The one's-complement sum of 16-bit words, complemented (RFC 791)."""
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(size: int = 100, tos: int = 0, sport: int = 1000, dport: int = 80, proto: int = 17,
         src: bytes = b"\x0a\x00\x00\x01", dst: bytes = b"\x0a\x00\x00\x02", vlan: int | None = None,
         pcp: int = 0, in_port: int = 1) -> Frame:
    """An Ethernet/IPv4/UDP (or ``proto``) frame of ``size`` bytes with a correct header checksum."""
    tag = b"" if vlan is None else b"\x81\x00" + struct.pack("!H", (pcp << 13) | vlan)
    hdr_len = 14 + len(tag)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, size - hdr_len, 7, 0, 64, proto, 0, src, dst))
    ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
    l4 = struct.pack("!HHHH", sport, dport, size - hdr_len - 20, 0)
    f = Frame(DST + SRC + tag + b"\x08\x00" + bytes(ip) + l4 + bytes(size - hdr_len - 28))
    f.in_port = in_port
    return f


def ipv6(size: int = 100, tclass: int = 0, sport: int = 1000, flow_label: int = 0x12345) -> Frame:
    first = (6 << 28) | (tclass << 20) | flow_label
    ip = struct.pack("!IHBB16s16s", first, size - 54, 17, 64, b"\x20\x01" + bytes(13) + b"\x01",
                     b"\x20\x01" + bytes(13) + b"\x02")
    l4 = struct.pack("!HHHH", sport, 80, size - 54, 0)
    return Frame(DST + SRC + b"\x86\xdd" + ip + l4 + bytes(size - 62))


def plain(size: int = 60, in_port: int = 1, fill: int = 0) -> Frame:
    """A non-IP frame (EtherType 0x88b5, local experimental)."""
    f = Frame(DST + SRC + b"\x88\xb5" + bytes([fill % 256]) * (size - 14))
    f.in_port = in_port
    return f


class Sink(Element):
    """Records (time, frame) of everything pushed into it."""

    OUTPUTS = ()

    def __init__(self, name: str = "sink") -> None:
        super().__init__(name)
        self.got: list[tuple[int, Frame]] = []

    def push(self, inp, batch, now_ns):
        self.got.extend((now_ns, f) for f in batch)


def wired(s: Scheduler, name: str = "q") -> tuple[Graph, Queue, Sink]:
    """A graph: port 1 -> Queue(s) -> Sink, as a driver's egress queue would be."""
    g = Graph()
    q = g.add(Queue(name, s))
    sink = g.add(Sink())
    g.connect(q, "out", sink, "in")
    g.add_port(1, "p", q, "in")
    return g, q, sink
