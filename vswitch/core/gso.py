"""virtio-net headers, checksum completion and GSO segmentation, on plain bytes.

A frame read from a vnet_hdr TAP or a ``PACKET_VNET_HDR`` socket comes with a
10-byte ``struct virtio_net_hdr`` (little-endian)::

    u8 flags  u8 gso_type  u16 hdr_len  u16 gso_size  u16 csum_start  u16 csum_offset

``flags & NEEDS_CSUM``: the L4 checksum at ``csum_start + csum_offset`` only
holds the pseudo-header sum; whoever emits the frame on a port without
offloads must finish it (`complete_checksum`).  ``gso_type`` != NONE: the
frame is a super-frame (up to 64 KiB) that must be cut into ``gso_size``
payload pieces (`segment`).  Offsets count from the first byte of the
Ethernet header.

`to_plain` turns a (vnet, frame) pair into correct, MTU-sized frames for a
port without offloads; `to_offload` passes a pair through for a vnet port.
No I/O here: this module is part of the sans-IO dataplane.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

__all__ = ["VNET_HDR_LEN", "VNET_NONE", "F_NEEDS_CSUM", "F_DATA_VALID", "GSO_NONE", "GSO_TCPV4",
           "GSO_UDP", "GSO_TCPV6", "GSO_UDP_L4", "GSO_ECN", "GsoError", "VnetHdr", "parse_vnet",
           "pack_vnet", "needs_fixup", "shift_offsets", "csum16", "complete_checksum", "segment",
           "to_plain", "to_offload"]

VNET_HDR_LEN: Final = 10
VNET_NONE: Final = bytes(VNET_HDR_LEN)   # no offload metadata: a plain, complete frame

F_NEEDS_CSUM: Final = 0x01
F_DATA_VALID: Final = 0x02
GSO_NONE: Final = 0
GSO_TCPV4 = 1
GSO_UDP = 3        # UFO (IP fragmentation); not supported here
GSO_TCPV6 = 4
GSO_UDP_L4 = 5     # USO: UDP segmentation, one UDP header per segment
GSO_ECN = 0x80     # flag bit on gso_type: TCP with ECN (CWR stays on the first segment)

_VNET = struct.Struct("<BBHHHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ETH_VLAN_TPIDS = (0x8100, 0x88A8)
_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_TCP_FIN, _TCP_PSH, _TCP_CWR = 0x01, 0x08, 0x80


class GsoError(ValueError):
    """A frame that cannot be made plain; ``reason`` is a drop-reason word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class VnetHdr(NamedTuple):
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int


def parse_vnet(vnet: bytes) -> VnetHdr:
    """The first 10 bytes of ``vnet`` as a `VnetHdr` (a 12-byte header's num_buffers is ignored)."""
    if len(vnet) < VNET_HDR_LEN:
        raise GsoError("malformed", f"virtio-net header of {len(vnet)} bytes")
    return VnetHdr(*_VNET.unpack_from(vnet))


def pack_vnet(flags: int = 0, gso_type: int = GSO_NONE, hdr_len: int = 0, gso_size: int = 0,
              csum_start: int = 0, csum_offset: int = 0) -> bytes:
    return _VNET.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def needs_fixup(vnet: bytes | None) -> bool:
    """True if the frame is a GSO super-frame or has a partial checksum (cheap hot-path test)."""
    return vnet is not None and bool((vnet[0] & F_NEEDS_CSUM) or vnet[1])


def shift_offsets(vnet: bytes, delta: int) -> bytes:
    """Move ``csum_start``/``hdr_len`` by ``delta`` bytes.

    +4 after pushing an 802.1Q tag into the frame, -4 after popping one.
    """
    h = parse_vnet(vnet)
    if not (h.flags & F_NEEDS_CSUM or h.gso_type):
        return vnet
    return _VNET.pack(h.flags, h.gso_type, max(0, h.hdr_len + delta) if h.hdr_len else 0, h.gso_size,
                      h.csum_start + delta if h.flags & F_NEEDS_CSUM else h.csum_start, h.csum_offset)


def csum16(data: bytes | bytearray | memoryview) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, folded into 1..0xFFFF (0 if all zero).

    2**16 == 1 (mod 0xFFFF), so the sum of the words is congruent to the whole
    buffer read as one big integer: one C-speed ``int.from_bytes`` and a modulo.
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8   # an odd trailing byte is padded with a zero byte
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


def _fold(s: int) -> int:
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def complete_checksum(vnet: bytes | None, frame: bytes) -> bytes:
    """Finish a partial L4 checksum (``NEEDS_CSUM``) as the virtio spec says; other frames unchanged.

    The field already holds the pseudo-header sum, so the checksum is the
    complement of the sum from ``csum_start`` to the end of the frame.
    """
    if vnet is None or not vnet[0] & F_NEEDS_CSUM:
        return frame
    h = parse_vnet(vnet)
    field = h.csum_start + h.csum_offset
    if h.csum_start >= len(frame) or field + 2 > len(frame):
        raise GsoError("malformed", f"csum_start {h.csum_start}+{h.csum_offset} beyond a {len(frame)}-byte "
                                    "frame")
    c = ~csum16(memoryview(frame)[h.csum_start:]) & 0xFFFF
    if c == 0 and h.csum_offset == 6:
        c = 0xFFFF   # UDP: a zero checksum means "none"; send the other zero
    return frame[:field] + _U16.pack(c) + frame[field + 2:]


def l3_offset(frame: bytes) -> tuple[int, int]:
    """(offset of the L3 header, ethertype), skipping 802.1Q/802.1ad tags."""
    off = 12
    if len(frame) < 14:
        raise GsoError("runt", f"{len(frame)}-byte frame")
    et = _U16.unpack_from(frame, off)[0]
    while et in _ETH_VLAN_TPIDS:
        off += 4
        if len(frame) < off + 2:
            raise GsoError("runt", "truncated VLAN tag")
        et = _U16.unpack_from(frame, off)[0]
    return off + 2, et


class _Layout(NamedTuple):
    l3: int
    v4: bool
    l4: int
    proto: int
    hdr_end: int


def _layout(h: VnetHdr, frame: bytes) -> _Layout:
    gt = h.gso_type & ~GSO_ECN
    if gt in (GSO_TCPV4, GSO_TCPV6):
        proto = 6
    elif gt == GSO_UDP_L4:
        proto = 17
    else:
        raise GsoError("gso_unsupported", f"gso_type {h.gso_type}")
    l3, et = l3_offset(frame)
    if et == _ETH_IPV4 and len(frame) >= l3 + 20:
        v4 = True
        l4 = l3 + (frame[l3] & 0x0F) * 4
        if frame[l3 + 9] != proto:
            raise GsoError("malformed", f"IPv4 protocol {frame[l3 + 9]} under gso_type {h.gso_type}")
    elif et == _ETH_IPV6 and len(frame) >= l3 + 40:
        v4 = False
        l4 = l3 + 40
        if frame[l3 + 6] != proto:
            # extension headers: trust the device's csum_start for where L4 begins
            if not (h.flags & F_NEEDS_CSUM and h.csum_start > l4):
                raise GsoError("malformed", "IPv6 extension headers without csum_start")
            l4 = h.csum_start
    else:
        raise GsoError("malformed", f"GSO frame with ethertype {et:#06x}")
    if len(frame) < l4 + (20 if proto == 6 else 8):
        raise GsoError("malformed", "truncated L4 header")
    thl = (frame[l4 + 12] >> 4) * 4 if proto == 6 else 8
    if thl < 20 and proto == 6:
        raise GsoError("malformed", f"TCP data offset {thl}")
    return _Layout(l3, v4, l4, proto, l4 + thl)


def segment(vnet: bytes | None, frame: bytes, mtu: int | None = None) -> list[bytes]:
    """Cut a TCP (or UDP_L4) GSO super-frame into plain frames with complete checksums.

    Each segment carries at most ``gso_size`` payload bytes (fewer if ``mtu``,
    the L3 MTU, demands).  IPv4: total length, id incremented per segment,
    header checksum.  IPv6: payload length.  TCP: seq advanced, FIN/PSH only
    on the last segment, CWR only on the first, full checksum.  A frame
    without GSO comes back alone with its checksum completed.
    """
    if vnet is None or not vnet[1]:
        return [complete_checksum(vnet, frame)]
    h = parse_vnet(vnet)
    lay = _layout(h, frame)
    l3, l4, hdr_end = lay.l3, lay.l4, lay.hdr_end
    size = h.gso_size
    if mtu is not None:
        size = min(size, mtu - (hdr_end - l3)) if size else mtu - (hdr_end - l3)
    if size <= 0:
        raise GsoError("malformed", f"segment size {size}")
    payload = memoryview(frame)[hdr_end:]
    tcp = lay.proto == 6
    addrs = frame[l3 + 12:l3 + 20] if lay.v4 else frame[l3 + 8:l3 + 40]
    pseudo = csum16(addrs) + lay.proto
    ihl = l4 - l3
    ip_id = _U16.unpack_from(frame, l3 + 4)[0] if lay.v4 else 0
    seq = _U32.unpack_from(frame, l4 + 4)[0] if tcp else 0
    tcp_flags = frame[l4 + 13] if tcp else 0
    csum_at = l4 + 16 if tcp else l4 + 6
    out: list[bytes] = []
    total = len(payload)
    for i, off in enumerate(range(0, max(total, 1), size)):  # no payload: one segment
        chunk = payload[off:off + size]
        seg = bytearray(frame[:hdr_end])
        l4len = hdr_end - l4 + len(chunk)
        if lay.v4:
            _U16.pack_into(seg, l3 + 2, ihl + l4len)
            _U16.pack_into(seg, l3 + 4, (ip_id + i) & 0xFFFF)
            _U16.pack_into(seg, l3 + 10, 0)
            _U16.pack_into(seg, l3 + 10, ~csum16(memoryview(seg)[l3:l4]) & 0xFFFF)
        else:
            _U16.pack_into(seg, l3 + 4, l4 - l3 - 40 + l4len)
        if tcp:
            _U32.pack_into(seg, l4 + 4, (seq + off) & 0xFFFFFFFF)
            fl = tcp_flags
            if i:
                fl &= ~_TCP_CWR
            if off + size < total:
                fl &= ~(_TCP_FIN | _TCP_PSH)
            seg[l4 + 13] = fl
        else:
            _U16.pack_into(seg, l4 + 4, l4len)
        _U16.pack_into(seg, csum_at, 0)
        s = _fold(pseudo + l4len + csum16(memoryview(seg)[l4:]) + csum16(chunk))
        c = ~s & 0xFFFF
        if c == 0 and not tcp:
            c = 0xFFFF
        _U16.pack_into(seg, csum_at, c)
        out.append(bytes(seg) + chunk)
    return out


def to_plain(vnet: bytes | None, frame: bytes, mtu: int = 1500) -> list[bytes]:
    """Frames for a port without offloads: segmented, checksums complete, each within ``mtu``.

    ``mtu`` is the L3 MTU (a frame may add its Ethernet header and tags).
    Raises `GsoError` (``reason``: ``oversize``, ``malformed``,
    ``gso_unsupported``, ``runt``) for a frame that cannot be made plain;
    the caller drops it under that reason.
    """
    if vnet is not None and vnet[1]:
        return segment(vnet, frame, mtu)
    if vnet is not None and vnet[0] & F_NEEDS_CSUM:
        frame = complete_checksum(vnet, frame)
    if len(frame) > mtu + 14:   # cheap test first; tags may legitimately add bytes
        l3, _ = l3_offset(frame)
        if len(frame) - l3 > mtu:
            raise GsoError("oversize", f"{len(frame)}-byte frame over MTU {mtu}")
    return [frame]


def to_offload(vnet: bytes | None, frame: bytes) -> list[tuple[bytes, bytes]]:
    """A (vnet, frame) pair for a port with offloads: passed through, header defaulted."""
    return [(vnet if vnet is not None else VNET_NONE, frame)]
