"""The unit of work: one Ethernet frame as immutable bytes plus annotations.

A `Frame` is deliberately tiny (``__slots__``, no methods on the hot path).
Elements read header fields by slicing ``data``; they never parse with scapy
or dpkt.  Flooding shares the same ``data`` bytes object between copies.

Annotations:

``ts_ns``    time the frame entered the dataplane (driver clock, ns).
``in_port``  number of the switch port it arrived on (``-1``: not yet known).
``vlan``     VLAN the switch classified it into (``None`` before ingress
             VLAN processing).  While a frame is inside the switch its 802.1Q
             tag is *not* in ``data``: ingress pops it into ``vlan``/``pcp``
             (as the kernel moves it into ``skb->vlan_tci``) and egress pushes
             it back where the port wants tagged frames.
``pcp``      priority code point and DEI bits (``tci >> 12``) of the popped tag.
``pool``     NIC pool the frame was sorted into (nicmodel), ``-1`` if none.
``queue``    NIC queue, ``-1`` if none.
``vnet``     the 10/12-byte virtio-net header that travelled with the frame
             from a vnet_hdr TAP or packet socket, or ``None``.  A frame with
             a GSO type set may be far larger than the MTU.
"""

from __future__ import annotations

import struct

__all__ = ["Frame", "BROADCAST", "ETH_P_8021Q", "ETH_P_8021AD", "push_tag", "pop_tag",
           "mac_str", "parse_mac"]

BROADCAST = b"\xff\xff\xff\xff\xff\xff"
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
_TPID_8021Q = b"\x81\x00"
_TCI = struct.Struct("!H")


class Frame:
    __slots__ = ("data", "ts_ns", "in_port", "vlan", "pcp", "pool", "queue", "vnet")

    def __init__(
        self,
        data: bytes,
        ts_ns: int = 0,
        in_port: int = -1,
        vlan: int | None = None,
        pcp: int = 0,
        vnet: bytes | None = None,
    ) -> None:
        self.data = data
        self.ts_ns = ts_ns
        self.in_port = in_port
        self.vlan = vlan
        self.pcp = pcp
        self.pool = -1
        self.queue = -1
        self.vnet = vnet

    def copy(self, data: bytes | None = None) -> Frame:
        """A new Frame with the same annotations (and optionally new bytes)."""
        f = Frame(self.data if data is None else data, self.ts_ns, self.in_port,
                  self.vlan, self.pcp, self.vnet)
        f.pool = self.pool
        f.queue = self.queue
        return f

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        d = self.data
        return (f"Frame(len={len(d)}, dst={d[0:6].hex(':')}, src={d[6:12].hex(':')}, "
                f"in_port={self.in_port}, vlan={self.vlan})")


def push_tag(data: bytes, vid: int, pcp: int = 0, tpid: bytes = _TPID_8021Q) -> bytes:
    """Insert an 802.1Q tag after the MAC addresses."""
    return data[:12] + tpid + _TCI.pack((pcp << 12) | vid) + data[12:]


def pop_tag(data: bytes) -> bytes:
    """Remove the 4-byte tag that follows the MAC addresses."""
    return data[:12] + data[16:]


def mac_str(mac: bytes) -> str:
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or with '-') to 6 bytes; ValueError with the text otherwise."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"invalid MAC address {text!r}: expected 6 octets like 02:00:00:00:00:01")
    try:
        octets = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"invalid MAC address {text!r}: octets must be hex") from None
    if any(len(p) not in (1, 2) for p in parts):
        raise ValueError(f"invalid MAC address {text!r}: octets must be 1-2 hex digits")
    return octets
