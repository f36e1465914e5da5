"""The flow hash and the flow classifier as first written (l3() for the offsets, CRC-32, the
MurmurHash3 finaliser with plain 64-bit products) against the faster code (inline offsets,
products split to stay within mypyc's native ints): the same value for any frame, so every
policy puts every frame in the same flow as before, compiled or interpreted."""

from __future__ import annotations

import struct
from zlib import crc32

from hypothesis import given, settings
from hypothesis import strategies as st

from vswitch.core.frame import Frame
from vswitch.core.policies.classify import Classifier
from vswitch.core.policies.headers import _mix, flow_hash, l3


def reference_mix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def reference_crc(data: bytes) -> int:
    et, off = l3(data)
    n = len(data)
    if et == 0x0800 and n >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        proto = data[off + 9]
        fragment = ((data[off + 6] & 0x3F) << 8) | data[off + 7]
        if proto in (6, 17, 132, 136) and fragment == 0 and n >= off + ihl + 4:
            if ihl == 20:
                return crc32(data[off + 12:off + 24], proto)
            return crc32(data[off + ihl:off + ihl + 4], crc32(data[off + 12:off + 20], proto))
        return crc32(data[off + 12:off + 20], proto)
    if et == 0x86DD and n >= off + 40:
        nh = data[off + 6]
        if nh in (6, 17, 132, 136) and n >= off + 44:
            return crc32(data[off + 8:off + 44], nh)
        return crc32(data[off + 8:off + 40], nh)
    return crc32(data[0:12], et & 0xFFFFFFFF)


def frames() -> st.SearchStrategy[bytes]:
    ethertype = st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8])
    inner = st.sampled_from([0x0800, 0x86DD, 0x8100, 0x0806])
    return st.builds(
        lambda macs, et, tag, et2, ver, proto, frag, rest, cut: (
            macs + struct.pack("!H", et) + (tag + struct.pack("!H", et2) if et in (0x8100, 0x88A8) else b"")
            + bytes([ver]) + bytes(5) + frag + bytes([64, proto]) + rest)[:cut],
        st.binary(min_size=12, max_size=12), ethertype, st.binary(min_size=2, max_size=2), inner,
        st.sampled_from([0x45, 0x46, 0x4F, 0x60]), st.sampled_from([6, 17, 132, 136, 1, 58]),
        st.sampled_from([b"\x00\x00", b"\x20\x00", b"\x00\x05", b"\x40\x00"]),
        st.binary(min_size=0, max_size=80), st.integers(0, 140))


@settings(max_examples=1500, deadline=None)
@given(frames())
def test_flow_hash_is_the_reference(data):
    assert flow_hash(data) == reference_mix(reference_crc(data))


@settings(max_examples=500, deadline=None)
@given(st.integers(0, (1 << 32) - 1))
def test_mix_is_the_reference(h):
    assert _mix(h) == reference_mix(h)


@settings(max_examples=500, deadline=None)
@given(frames(), st.integers(1, 65536))
def test_flow_classes_are_the_reference(data, classes):
    c = Classifier("flow", classes)
    assert c.classify(Frame(data)) == (reference_mix(reference_crc(data)) * classes) >> 32
