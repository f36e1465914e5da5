"""Trace generators: small, realistic captures built frame by frame.

Frames are packed with ``struct`` (Ethernet, ARP, IPv4, ICMP, UDP with correct
checksums), which keeps the generator fast and free of heavy imports; tests
verify them with scapy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vswitch.core.frame import BROADCAST
from vswitch.io.pcap import PcapWriter

NS = 1_000_000_000


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ether(dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    frame = dst + src + tag + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))          # pad to the 60-byte minimum


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 0, ttl: int = 64) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + payload


def icmp_echo(kind: int, ident: int, seq: int, data: bytes = bytes(range(48))) -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def udp(src_ip: bytes, dst_ip: bytes, sport: int, dport: int, data: bytes) -> bytes:
    length = 8 + len(data)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + hdr + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + data


@dataclass(frozen=True)
class Guest:
    name: str
    mac: bytes
    ip: bytes


def demo_guests() -> list[Guest]:
    return [Guest(f"vm{i}", bytes([2, 0, 0, 0, 0, i]), bytes([10, 0, 0, i])) for i in (1, 2, 3)]


def three_guests(guests: list[Guest] | None = None, start_ns: int = 1_700_000_000 * NS,
                 pings: int = 3) -> list[tuple[int, bytes, str]]:
    """Three guests: each ARPs for the next, pings it ``pings`` times, then one broadcast.

    Returns (timestamp ns, frame, name of the guest that sent it), in time order.
    """
    g = guests or demo_guests()
    out: list[tuple[int, bytes, str]] = []
    t = start_ns
    for i, a in enumerate(g):
        b = g[(i + 1) % len(g)]
        out.append((t, ether(BROADCAST, a.mac, 0x0806, arp(1, a.mac, a.ip, bytes(6), b.ip)), a.name))
        t += 120_000
        out.append((t, ether(a.mac, b.mac, 0x0806, arp(2, b.mac, b.ip, a.mac, a.ip)), b.name))
        t += 80_000
        for seq in range(1, pings + 1):
            req = ipv4(a.ip, b.ip, 1, icmp_echo(8, 0x100 + i, seq), ident=seq)
            out.append((t, ether(b.mac, a.mac, 0x0800, req), a.name))
            t += 150_000
            rep = ipv4(b.ip, a.ip, 1, icmp_echo(0, 0x100 + i, seq), ident=0x1000 + seq)
            out.append((t, ether(a.mac, b.mac, 0x0800, rep), b.name))
            t += NS // 4
    c = g[-1]
    bcast_ip = c.ip[:3] + b"\xff"
    msg = udp(c.ip, bcast_ip, 5353, 9, b"hello, everyone on 10.0.0.0/24")
    out.append((t, ether(BROADCAST, c.mac, 0x0800, ipv4(c.ip, bcast_ip, 17, msg)), c.name))
    return out


def write_per_guest(trace: list[tuple[int, bytes, str]], out_dir: str | Path) -> dict[str, Path]:
    """One capture per guest (the frames it sent), as the replay's port=file mode reads."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, PcapWriter] = {}
    for ts, frame, who in trace:
        if who not in writers:
            writers[who] = PcapWriter(out_dir / f"{who}-sent.pcap")
        writers[who].write(frame, ts)
    for w in writers.values():
        w.close()
    return {who: Path(w.path) for who, w in writers.items()}
