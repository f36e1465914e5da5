"""A minimal ICMP echo client for hosts without ``ping``: ``pinger.py ADDR COUNT``.

Exits 0 only if every request got its reply; runs inside a namespace via
``ip netns exec``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> int:
    addr, count = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    ok = 0
    for seq in range(1, count + 1):
        body = b"vswitch-ping" * 4
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        sock.sendto(struct.pack("!BBHHH", 8, 0, checksum(hdr + body), ident, seq) + body, (addr, 0))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if not select.select([sock], [], [], deadline - time.monotonic())[0]:
                break
            pkt = sock.recv(2048)
            icmp = pkt[(pkt[0] & 0x0F) * 4:]
            typ, _, _, rid, rseq = struct.unpack_from("!BBHHH", icmp)
            if typ == 0 and rid == ident and rseq == seq and checksum(icmp) == 0:
                ok += 1
                print(f"reply from {addr}: seq={seq}", flush=True)
                break
        time.sleep(0.1)
    print(f"{count} sent, {ok} received")
    return 0 if ok == count else 1


if __name__ == "__main__":
    sys.exit(main())
