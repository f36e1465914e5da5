"""Header fields the policies read and write, by slicing the frame's bytes.

No parser: the offsets of the IP header behind up to two VLAN tags (802.1Q,
802.1ad), its DSCP and ECN bits, the 5-tuple hash, and two rewrites a
policy makes: ECN CE (RED, CoDel, fq_codel instead of a drop) and a DSCP
remark (a policer's yellow or red action).  A rewrite replaces the frame's
``data`` with new bytes (a flooded frame's copies share theirs) and, for
IPv4, updates the header checksum incrementally (RFC 1624).  IPv6 has no
header checksum; the transport checksums do not cover these bits.
"""

from __future__ import annotations

import zlib
from typing import Final

from mypy_extensions import i64

from vswitch.core.frame import Frame

__all__ = ["l3", "ip_tos", "dscp", "ecn", "set_ce", "set_dscp", "flow_hash", "linux_priority",
           "ECN_NOT_ECT", "ECN_ECT1", "ECN_ECT0", "ECN_CE", "IP_TOS2PRIO"]

# Final: compiled, a C static; an imported name would be looked up in the module's dict per call.
crc32: Final = zlib.crc32
ETH_P_IP: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD
ECN_NOT_ECT: Final = 0
ECN_ECT1: Final = 1
ECN_ECT0: Final = 2
ECN_CE: Final = 3

# Linux's rt_tos2priority: skb->priority from the IPv4 TOS bits (net/ipv4/route.c ip_tos2prio;
# TC_PRIO_BESTEFFORT 0, BULK 2, INTERACTIVE_BULK 4, INTERACTIVE 6), indexed by (tos & 0x1E) >> 1.
IP_TOS2PRIO: Final = (0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4)


def l3(data: bytes) -> tuple[int, int]:
    """(EtherType, offset of the L3 header) behind up to two VLAN tags; (-1, 0) for a runt."""
    n = len(data)
    if n < 14:
        return -1, 0
    et = (data[12] << 8) | data[13]
    off = 14
    if (et == 0x8100 or et == 0x88A8) and n >= 18:
        et = (data[16] << 8) | data[17]
        off = 18
        if et == 0x8100 and n >= 22:
            et = (data[20] << 8) | data[21]
            off = 22
    return et, off


def ip_tos(data: bytes) -> int:
    """The IPv4 TOS / IPv6 traffic class byte, or -1 if the frame carries neither."""
    et, off = l3(data)
    if et == ETH_P_IP and len(data) >= off + 20:
        return data[off + 1]
    if et == ETH_P_IPV6 and len(data) >= off + 40:
        return ((data[off] & 0x0F) << 4) | (data[off + 1] >> 4)
    return -1


def dscp(data: bytes) -> int:
    """The DSCP (0-63), or -1 for a frame that is not IP."""
    tos = ip_tos(data)
    return tos >> 2 if tos >= 0 else -1


def ecn(data: bytes) -> int:
    """The ECN field (ECN_NOT_ECT, ECN_ECT1, ECN_ECT0, ECN_CE), or -1 for a frame that is not IP."""
    tos = ip_tos(data)
    return tos & 3 if tos >= 0 else -1


def _rewrite_tos(frame: Frame, new_tos: int) -> None:
    """Put ``new_tos`` in the frame's IP header (its TOS / traffic class), fixing the checksum."""
    d = frame.data
    et, off = l3(d)
    b = bytearray(d)
    if et == ETH_P_IP:
        old_word = (d[off] << 8) | d[off + 1]
        new_word = (d[off] << 8) | new_tos
        b[off + 1] = new_tos
        # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
        hc = (d[off + 10] << 8) | d[off + 11]
        s = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        hc = ~s & 0xFFFF
        b[off + 10] = hc >> 8
        b[off + 11] = hc & 0xFF
    else:
        b[off] = (d[off] & 0xF0) | (new_tos >> 4)
        b[off + 1] = ((new_tos & 0x0F) << 4) | (d[off + 1] & 0x0F)
    frame.data = bytes(b)


def set_ce(frame: Frame) -> bool:
    """Mark Congestion Experienced on an ECN-capable (ECT) IP frame, as Linux's INET_ECN_set_ce:
    True if the frame now carries CE (it was ECT, or CE already), False if it cannot be marked
    (not ECT, or not IP) and should be dropped instead."""
    tos = ip_tos(frame.data)
    if tos < 0:
        return False
    e = tos & 3
    if e == ECN_CE:
        return True
    if e == ECN_NOT_ECT:
        return False
    _rewrite_tos(frame, tos | ECN_CE)
    return True


def set_dscp(frame: Frame, value: int) -> bool:
    """Set the DSCP of an IP frame (its ECN bits kept); False if the frame is not IP."""
    tos = ip_tos(frame.data)
    if tos < 0:
        return False
    new = ((value & 0x3F) << 2) | (tos & 3)
    if new != tos:
        _rewrite_tos(frame, new)
    return True


# MurmurHash3's multipliers, in 16-bit halves: h * M mod 2**32 is computed as
# h * M_LO + ((h * M_HI) mod 2**16) << 16, whose terms stay below 2**49, so the arithmetic
# fits mypyc's native i64 (plain ints interpreted, the same values).  The plain product
# reaches 2**64: compiled, a heap integer and a slow path per multiplication (and mypyc
# takes that path for any tagged int operand of 2**30 or more), which cost most of the
# per-frame time of fq_codel.
_M1_LO: Final = 0x85EBCA6B & 0xFFFF
_M1_HI: Final = 0x85EBCA6B >> 16
_M2_LO: Final = 0xC2B2AE35 & 0xFFFF
_M2_HI: Final = 0xC2B2AE35 >> 16


def _mix(h: int) -> int:
    """MurmurHash3's 32-bit finaliser of ``h`` (0 <= h < 2**32).  CRC-32 is linear: frames that
    differ in a few bits (one port number) would otherwise share the top bits that pick a
    bucket, leaving buckets unused."""
    x: i64 = h
    x ^= x >> 16
    x = (x * _M1_LO + (((x * _M1_HI) & 0xFFFF) << 16)) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * _M2_LO + (((x * _M2_HI) & 0xFFFF) << 16)) & 0xFFFFFFFF
    return x ^ (x >> 16)


def flow_hash(data: bytes) -> int:
    """A 32-bit hash of the frame's flow: IP addresses, protocol and (TCP/UDP/SCTP/UDP-Lite,
    unfragmented) ports; source and destination MACs and EtherType for other frames.
    CRC-32 (mixed) rather than Python's ``hash``: the same on every run and machine, so an
    experiment's flows land in the same buckets every time."""
    # _crc and _mix inline: interpreted, each call per frame costs about as much as its body.
    h: i64 = _crc(data)
    h ^= h >> 16
    h = (h * _M1_LO + (((h * _M1_HI) & 0xFFFF) << 16)) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M2_LO + (((h * _M2_HI) & 0xFFFF) << 16)) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _crc(data: bytes) -> int:
    # l3() inline (the same offsets): its call and tuple cost as much as the CRC interpreted.
    n = len(data)
    if n < 14:
        return crc32(data[0:12], 0xFFFFFFFF)
    et = (data[12] << 8) | data[13]
    off = 14
    if (et == 0x8100 or et == 0x88A8) and n >= 18:
        et = (data[16] << 8) | data[17]
        off = 18
        if et == 0x8100 and n >= 22:
            et = (data[20] << 8) | data[21]
            off = 22
    if et == ETH_P_IP and n >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        proto = data[off + 9]
        fragment = ((data[off + 6] & 0x3F) << 8) | data[off + 7]    # MF flag and offset
        if (proto == 6 or proto == 17 or proto == 132 or proto == 136) and fragment == 0 \
                and n >= off + ihl + 4:
            if ihl == 20:
                return crc32(data[off + 12:off + 24], proto)
            return crc32(data[off + ihl:off + ihl + 4], crc32(data[off + 12:off + 20], proto))
        return crc32(data[off + 12:off + 20], proto)
    if et == ETH_P_IPV6 and n >= off + 40:
        nh = data[off + 6]
        if (nh == 6 or nh == 17 or nh == 132 or nh == 136) and n >= off + 44:
            return crc32(data[off + 8:off + 44], nh)
        return crc32(data[off + 8:off + 40], nh)
    return crc32(data[0:12], et & 0xFFFFFFFF)


def linux_priority(frame: Frame) -> int:
    """The frame's priority as Linux would give skb->priority (0-15): the VLAN PCP where the
    frame is tagged (as an identity ingress-qos-map would), else rt_tos2priority of the IP
    TOS, else 0 (best effort)."""
    if frame.vlan is not None:
        return frame.pcp >> 1              # frame.pcp holds PCP and DEI (tci >> 12)
    d = frame.data
    if len(d) >= 18 and ((d[12] == 0x81 and d[13] == 0x00) or (d[12] == 0x88 and d[13] == 0xA8)):
        return d[14] >> 5
    tos = ip_tos(d)
    if tos < 0:
        return 0
    return IP_TOS2PRIO[(tos & 0x1E) >> 1]


def vlan_pcp(frame: Frame) -> int:
    """The 802.1p priority (0-7): from the popped tag, else a tag still in the bytes, else 0."""
    if frame.vlan is not None:
        return frame.pcp >> 1
    d = frame.data
    if len(d) >= 18 and ((d[12] == 0x81 and d[13] == 0x00) or (d[12] == 0x88 and d[13] == 0xA8)):
        return d[14] >> 5
    return 0


def vlan_id(frame: Frame) -> int:
    """The VLAN ID: the switch's classification, else a tag in the bytes, else 0 (untagged)."""
    if frame.vlan is not None:
        return frame.vlan
    d = frame.data
    if len(d) >= 18 and ((d[12] == 0x81 and d[13] == 0x00) or (d[12] == 0x88 and d[13] == 0xA8)):
        return ((d[14] & 0x0F) << 8) | d[15]
    return 0
