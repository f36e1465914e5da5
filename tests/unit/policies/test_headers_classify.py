"""Header bits by slicing (DSCP, ECN CE with the checksum), and the classifier's keys."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_frames import checksum, ipv4, ipv6, plain

from vswitch.core.frame import Frame, pop_tag
from vswitch.core.policies.classify import PRIO2BAND, Classifier
from vswitch.core.policies.headers import dscp, ecn, flow_hash, linux_priority, set_ce, set_dscp


def ip_header(f: Frame, off: int = 14) -> bytes:
    return f.data[off:off + 20]


@settings(max_examples=200, deadline=None)
@given(tos=st.integers(0, 255), vlan=st.one_of(st.none(), st.integers(1, 4094)), size=st.integers(64, 1500))
def test_ce_is_set_on_ect_ipv4_with_a_correct_checksum_and_nothing_else_changes(tos, vlan, size):
    f = ipv4(size, tos=tos, vlan=vlan)
    before = f.data
    off = 14 if vlan is None else 18
    marked = set_ce(f)
    assert marked == (tos & 3 != 0)                    # ECT(0), ECT(1) or CE: marked; Not-ECT: not
    if tos & 3 in (1, 2):
        assert f.data[off + 1] == tos | 3
        assert checksum(ip_header(f, off)) == 0        # the header still sums to 0xFFFF
        changed = [i for i in range(len(before)) if before[i] != f.data[i]]
        assert set(changed) <= {off + 1, off + 10, off + 11}
    else:
        assert f.data is before                        # not marked, or already CE: untouched


def test_ce_on_ipv6_sets_the_traffic_class_ecn_bits_only():
    f = ipv6(tclass=0b101110_10)                       # EF, ECT(0)
    assert ecn(f.data) == 2 and dscp(f.data) == 46
    assert set_ce(f)
    assert ecn(f.data) == 3 and dscp(f.data) == 46
    first = struct.unpack("!I", f.data[14:18])[0]
    assert first >> 28 == 6 and first & 0xFFFFF == 0x12345     # version and flow label kept
    assert not set_ce(ipv6(tclass=0b101110_00))                 # not ECT


def test_a_frame_that_is_not_ip_is_never_marked_and_has_no_dscp():
    f = plain()
    assert not set_ce(f) and dscp(f.data) == -1 and not set_dscp(f, 10)


@pytest.mark.parametrize("tos", [0, 0x02, 0xB8, 0xFF])
def test_dscp_remark_keeps_the_ecn_bits_and_fixes_the_checksum(tos):
    f = ipv4(tos=tos)
    assert set_dscp(f, 12)
    assert f.data[15] == (12 << 2) | (tos & 3)
    assert checksum(ip_header(f)) == 0


def test_flow_hash_reads_the_five_tuple_only():
    a = ipv4(sport=1000)
    b = ipv4(sport=1000, size=600, tos=0x10)           # same 5-tuple, other length and TOS
    c = ipv4(sport=1001)
    assert flow_hash(a.data) == flow_hash(b.data) != flow_hash(c.data)
    tagged = ipv4(sport=1000, vlan=10)
    assert flow_hash(tagged.data) == flow_hash(a.data)  # the tag is skipped
    assert flow_hash(ipv6(sport=5).data) != flow_hash(ipv6(sport=6).data)
    assert 0 <= flow_hash(plain().data) < 1 << 32


def test_linux_priority_from_pcp_or_tos():
    # rt_tos2priority: TOS 0x10 (low delay) -> 6 (interactive), 0x08 (throughput) -> 2 (bulk)
    assert linux_priority(ipv4(tos=0x10)) == 6 and linux_priority(ipv4(tos=0x08)) == 2
    assert linux_priority(ipv4(tos=0x18)) == 4 and linux_priority(ipv4(tos=0)) == 0
    tagged = ipv4(vlan=5, pcp=5, tos=0x10)
    assert linux_priority(tagged) == 5                 # a tag in the bytes: its PCP
    popped = Frame(pop_tag(tagged.data), vlan=5, pcp=(5 << 1) | 1)   # the switch popped it (PCP, DEI)
    assert linux_priority(popped) == 5


@pytest.mark.parametrize("key, frame, value", [
    ("port", ipv4(in_port=7), 7),
    ("dscp", ipv4(tos=46 << 2), 46),
    ("dscp", plain(), -1),
    ("pcp", ipv4(vlan=3, pcp=6), 6),
    ("pcp", ipv4(), 0),
    ("vlan", ipv4(vlan=300), 300),
    ("priority", ipv4(tos=0x10), 6),
])
def test_classifier_keys(key, frame, value):
    assert Classifier(key, 64).value(frame) == value


def test_classifier_maps_values_and_sends_the_rest_to_the_default():
    c = Classifier("dscp", 3, {46: 0, 10: 1}, default=2)
    assert c.classify(ipv4(tos=46 << 2)) == 0 and c.classify(ipv4(tos=10 << 2)) == 1
    assert c.classify(ipv4(tos=0)) == 2 and c.classify(plain()) == 2
    assert Classifier("port", 4).classify(ipv4(in_port=6)) == 2       # no map: modulo


def test_linux_priomap_bands():
    c = Classifier("priority", 3, dict(enumerate(PRIO2BAND)))
    assert [c.classify(ipv4(tos=t)) for t in (0x10, 0x00, 0x08)] == [0, 1, 2]


def test_flow_classes_spread_over_all_classes():
    c = Classifier("flow", 8)
    seen = {c.classify(ipv4(sport=p)) for p in range(200)}
    assert seen == set(range(8))


@pytest.mark.parametrize("kw, msg", [({"key": "colour"}, "classify"), ({"classes": 0}, "at least 1"),
                                     ({"classes": 2, "default": 2}, "default_class"),
                                     ({"classes": 2, "map": {1: 3}}, "map 1:3")])
def test_classifier_refuses_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Classifier(**kw)
