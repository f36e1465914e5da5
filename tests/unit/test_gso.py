"""GSO segmentation and checksum completion, checked against scapy's own parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from vswitch.core import gso
from vswitch.core.gso import (
    F_NEEDS_CSUM,
    GSO_ECN,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP,
    GSO_UDP_L4,
    VNET_NONE,
    GsoError,
    complete_checksum,
    pack_vnet,
    parse_vnet,
    segment,
    to_offload,
    to_plain,
)

# Explicit addresses: a bare Ether() makes scapy resolve the destination on the host's network.
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _fold(s: int) -> int:
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _l4_offset(pkt) -> int:
    return len(pkt) - len(pkt[TCP] if TCP in pkt else pkt[UDP])


def _partial(pkt) -> tuple[bytes, bytes]:
    """Bytes of ``pkt`` as a kernel hands them with NEEDS_CSUM: pseudo-header sum in the L4 field."""
    pkt = Ether(bytes(pkt))   # fill in lengths and header sizes
    raw = bytearray(bytes(pkt))
    l4 = _l4_offset(pkt)
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    if IP in pkt:
        addrs, proto = raw[l4 - (ip.ihl * 4) + 12:l4 - (ip.ihl * 4) + 20], ip.proto
    else:
        start = len(pkt) - len(ip)
        addrs, proto = raw[start + 8:start + 40], ip.nh
    pseudo = _fold(gso.csum16(addrs) + proto + len(raw) - l4)
    off = 16 if TCP in pkt else 6
    raw[l4 + off:l4 + off + 2] = pseudo.to_bytes(2, "big")
    return bytes(raw), pack_vnet(F_NEEDS_CSUM, 0, 0, 0, l4, off)


def _super(v6: bool, vlan: bool, payload: bytes, flags: str = "PA", seq: int = 1000,
           ip_id: int = 7, mss: int = 1448, udp: bool = False):
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if vlan:
        eth = eth / Dot1Q(vlan=10)
    l3 = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src="10.0.0.1", dst="10.0.0.2", id=ip_id,
                                                            flags="DF")
    l4 = UDP(sport=5000, dport=6000) if udp else TCP(sport=1234, dport=80, seq=seq, ack=55, flags=flags)
    pkt = eth / l3 / l4 / payload
    raw, vnet = _partial(pkt)
    h = parse_vnet(vnet)
    gso_type = GSO_UDP_L4 if udp else (GSO_TCPV6 if v6 else GSO_TCPV4)
    hdr_len = h.csum_start + (8 if udp else 20)
    return raw, pack_vnet(F_NEEDS_CSUM, gso_type, hdr_len, mss, h.csum_start, h.csum_offset)


def _check_segment(seg: bytes, v6: bool, udp: bool = False):
    p = Ether(seg)
    ip = p[IPv6] if v6 else p[IP]
    l4 = p[UDP] if udp else p[TCP]
    if not v6:
        assert ip.len == len(ip)
        got = ip.chksum
        del ip.chksum
        assert IP(bytes(ip))[IP].chksum == got, "IPv4 header checksum"
    else:
        assert ip.plen == len(ip) - 40
    got = l4.chksum
    l4.chksum = None
    recomputed = (p.__class__(bytes(p))[UDP] if udp else p.__class__(bytes(p))[TCP]).chksum
    assert got == recomputed, "L4 checksum"
    return p


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("vlan", [False, True])
def test_tcp_segments_are_valid_and_reassemble(v6: bool, vlan: bool) -> None:
    payload = bytes((i * 7) & 0xFF for i in range(10_000))
    raw, vnet = _super(v6, vlan, payload, flags="FPAC")
    segs = segment(vnet, raw)
    assert len(segs) == -(-len(payload) // 1448)
    data = b""
    for i, seg in enumerate(segs):
        p = _check_segment(seg, v6)
        tcp = p[TCP]
        assert tcp.seq == 1000 + len(data)
        last = i == len(segs) - 1
        assert bool(tcp.flags & 0x01) == last and bool(tcp.flags & 0x08) == last   # FIN, PSH
        assert bool(tcp.flags & 0x80) == (i == 0)                                   # CWR
        assert tcp.flags & 0x10                                                      # ACK everywhere
        if not v6:
            assert p[IP].id == 7 + i
            assert p[IP].flags == "DF"
        if vlan:
            assert p[Dot1Q].vlan == 10
        data += bytes(tcp.payload)
        assert len(bytes(tcp.payload)) <= 1448
    assert data == payload


def test_ip_id_wraps_and_seq_wraps() -> None:
    raw, vnet = _super(False, False, bytes(5000), seq=0xFFFFFF00, ip_id=0xFFFF, mss=1000)
    segs = [Ether(s) for s in segment(vnet, raw)]
    assert [s[IP].id for s in segs[:2]] == [0xFFFF, 0]
    assert segs[1][TCP].seq == (0xFFFFFF00 + 1000) & 0xFFFFFFFF


def test_udp_l4_segments() -> None:
    payload = bytes(range(256)) * 20
    for v6 in (False, True):
        raw, vnet = _super(v6, False, payload, udp=True, mss=1400)
        segs = segment(vnet, raw)
        got = b""
        for seg in segs:
            p = _check_segment(seg, v6, udp=True)
            assert p[UDP].len == len(p[UDP])
            got += bytes(p[UDP].payload)
        assert got == payload


def test_ecn_gso_flag_is_accepted() -> None:
    raw, vnet = _super(False, False, bytes(3000), flags="AC")
    h = parse_vnet(vnet)
    vnet = pack_vnet(h.flags, h.gso_type | GSO_ECN, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset)
    segs = [Ether(s) for s in segment(vnet, raw)]
    assert segs[0][TCP].flags & 0x80 and not segs[1][TCP].flags & 0x80


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("v6", [False, True])
def test_complete_checksum_matches_scapy(udp: bool, v6: bool) -> None:
    l3 = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src="10.0.0.1", dst="10.0.0.2")
    l4 = UDP(sport=1, dport=2) if udp else TCP(sport=1, dport=2, seq=5)
    pkt = ETH / l3 / l4 / b"hello world, odd length!!"
    raw, vnet = _partial(pkt)
    assert raw != bytes(pkt)
    assert complete_checksum(vnet, raw) == bytes(pkt)
    assert complete_checksum(None, raw) is raw
    assert complete_checksum(VNET_NONE, raw) is raw


def test_to_plain_caps_segments_at_the_port_mtu() -> None:
    raw, vnet = _super(False, False, bytes(9000), mss=8948)     # from a 9000-MTU guest
    segs = to_plain(vnet, raw, mtu=1500)
    assert all(len(s) <= 1514 for s in segs)
    assert sum(len(Ether(s)[TCP].payload) for s in segs) == 9000


def test_to_plain_plain_and_oversize() -> None:
    frame = bytes(ETH / IP() / TCP() / bytes(100))
    assert to_plain(None, frame) == [frame]
    assert to_plain(VNET_NONE, frame) == [frame]
    big = bytes(ETH / IP() / TCP() / bytes(3000))
    with pytest.raises(GsoError) as e:
        to_plain(None, big, mtu=1500)
    assert e.value.reason == "oversize"
    tagged = bytes(ETH / Dot1Q(vlan=3) / IP() / TCP() / bytes(1460))    # 1500 of IP plus a tag
    assert to_plain(None, tagged, mtu=1500) == [tagged]


def test_to_offload_passes_through() -> None:
    raw, vnet = _super(False, False, bytes(5000))
    assert to_offload(vnet, raw) == [(vnet, raw)]
    assert to_offload(None, b"x" * 60) == [(VNET_NONE, b"x" * 60)]


def test_bad_frames_raise_gso_error() -> None:
    raw, vnet = _super(False, False, bytes(5000))
    h = parse_vnet(vnet)
    with pytest.raises(GsoError) as e:
        segment(pack_vnet(h.flags, GSO_UDP, 0, 1400, h.csum_start, h.csum_offset), raw)
    assert e.value.reason == "gso_unsupported"
    with pytest.raises(GsoError):
        segment(vnet, raw[:30])
    with pytest.raises(GsoError):
        complete_checksum(pack_vnet(F_NEEDS_CSUM, 0, 0, 0, 9000, 16), raw[:100])
    with pytest.raises(GsoError):
        segment(pack_vnet(h.flags, h.gso_type, 0, 0, h.csum_start, h.csum_offset), raw)


def test_shift_offsets_follows_a_pushed_tag() -> None:
    raw, vnet = _super(False, False, bytes(3000))
    tagged = raw[:12] + b"\x81\x00\x00\x0a" + raw[12:]
    segs = segment(gso.shift_offsets(vnet, 4), tagged)
    assert all(Ether(s)[Dot1Q].vlan == 10 for s in segs)
    assert gso.shift_offsets(VNET_NONE, 4) == VNET_NONE


def test_csum16_odd_and_zero() -> None:
    assert gso.csum16(b"") == 0
    assert gso.csum16(b"\x00\x00") == 0
    assert gso.csum16(b"\xff\xff") == 0xFFFF
    assert gso.csum16(b"\x01") == 0x0100
    assert gso.csum16(b"\x80\x00\x80\x00") == 0x0001


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 12_000), mss=st.integers(300, 1460), v6=st.booleans(), vlan=st.booleans(),
       seq=st.integers(0, 2**32 - 1), flags=st.sampled_from(["A", "PA", "FPA", "CA", "FPAC", "SA"]),
       seed=st.integers(0, 255))
def test_segmentation_properties(size: int, mss: int, v6: bool, vlan: bool, seq: int, flags: str,
                                 seed: int) -> None:
    payload = bytes((seed + i * 31) & 0xFF for i in range(size))
    raw, vnet = _super(v6, vlan, payload, flags=flags, seq=seq, mss=mss)
    segs = segment(vnet, raw)
    assert len(segs) == max(1, -(-size // mss))
    got = b""
    for seg in segs:
        p = _check_segment(seg, v6)
        assert p[TCP].seq == (seq + len(got)) & 0xFFFFFFFF
        got += bytes(p[TCP].payload)
    assert got == payload


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 3000), mss=st.integers(1, 64))
def test_tiny_mss_reassembles(size: int, mss: int) -> None:
    payload = bytes(i & 0xFF for i in range(size))
    raw, vnet = _super(False, False, payload, mss=mss)
    segs = segment(vnet, raw)
    assert len(segs) == -(-size // mss)
    assert b"".join(s[54:] for s in segs) == payload
    assert all(gso.csum16(s[14:34]) == 0xFFFF for s in segs)   # IPv4 header sums to all ones
