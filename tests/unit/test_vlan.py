"""OVS VLAN port modes (vlan_mode, tag, trunks), VLAN list parsing and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vswitch.elements.vlan import PortVlan, format_vlan_list, parse_vlan_list

ALL = frozenset(range(4096))


# -- modes -------------------------------------------------------------------------

def test_ovs_default_is_trunk_of_every_vlan():
    """No tag and no trunks: a trunk of VLANs 0-4095; VLAN 0 (untagged) stays untagged."""
    for v in (PortVlan(), PortVlan.build()):
        assert v.mode == "trunk"
        assert v.carries == ALL
        assert v.tagged == ALL - {0}
        assert v.untagged_vid == 0
    assert PortVlan.build().describe() == {"vlan_mode": "trunk", "tag": None, "trunks": "all"}


def test_access():
    v = PortVlan(mode="access", tag=10)
    assert v.carries == {10}
    assert v.tagged == set()
    assert v.untagged_vid == 10


def test_trunk_with_list_without_vlan0_has_no_untagged_vlan():
    v = PortVlan(mode="trunk", trunks=frozenset({10, 20}))
    assert v.carries == {10, 20}
    assert v.tagged == {10, 20}
    assert v.untagged_vid is None


def test_trunk_with_vlan0_carries_untagged_frames_as_vlan0():
    v = PortVlan(mode="trunk", trunks=frozenset({0, 10}))
    assert v.carries == {0, 10}
    assert v.tagged == {10}
    assert v.untagged_vid == 0


def test_native_tagged():
    v = PortVlan(mode="native-tagged", tag=10, trunks=frozenset({20, 30}))
    assert v.carries == {10, 20, 30}
    assert v.tagged == {10, 20, 30}
    assert v.untagged_vid == 10


def test_native_untagged():
    v = PortVlan(mode="native-untagged", tag=10, trunks=frozenset({20, 30}))
    assert v.carries == {10, 20, 30}
    assert v.tagged == {20, 30}
    assert v.untagged_vid == 10


@pytest.mark.parametrize("mode", ["native-tagged", "native-untagged"])
def test_native_with_empty_trunks_carries_everything_but_vlan0(mode):
    """OVS (ofproto-dpif.c, bundle_set): 'force trunking the native VLAN and prohibit trunking
    VLAN 0': VLAN 0 of a trunk would otherwise leave as the native VLAN or with a VID 0 tag."""
    v = PortVlan(mode=mode, tag=7)
    assert v.carries == ALL - {0}
    assert v.untagged_vid == 7
    assert not v.priority_tagged
    if mode == "native-tagged":
        assert v.tagged == ALL - {0}
    else:
        assert v.tagged == ALL - {0, 7}


@pytest.mark.parametrize("mode", ["native-tagged", "native-untagged"])
def test_native_never_carries_vlan0_even_when_listed(mode):
    v = PortVlan(mode=mode, tag=7, trunks=frozenset({0, 20}))
    assert v.carries == {7, 20}
    assert 0 not in v.tagged


def test_vlan0_is_never_tagged_only_priority_tagged():
    """VLAN 0 leaves untagged everywhere; ports that would carry it tagged keep a frame's
    priority tag (PortVlan.priority_tagged) instead."""
    cases = [(PortVlan(), True), (PortVlan(mode="trunk", trunks=frozenset({0, 10})), True),
             (PortVlan(mode="trunk", trunks=frozenset({10})), False),
             (PortVlan(mode="access", tag=10), False), (PortVlan(mode="access", tag=0), False),
             (PortVlan(mode="native-tagged", tag=0), True),
             (PortVlan(mode="native-untagged", tag=0), False)]
    for v, prio in cases:
        assert 0 not in v.tagged, v
        assert v.priority_tagged is prio, v
    assert 0 in PortVlan(mode="native-tagged", tag=0, trunks=frozenset({10})).carries


def test_build_picks_the_mode_as_ovs_does():
    assert PortVlan.build(tag=10).mode == "access"
    assert PortVlan.build(trunks="10,20").mode == "trunk"
    assert PortVlan.build(trunks="10,20").carries == {10, 20}
    # tag + trunks and no mode: the tag is the native VLAN
    v = PortVlan.build(tag=10, trunks="20")
    assert v.mode == "native-untagged"
    assert v.carries == {10, 20}
    assert v.tagged == {20}
    assert PortVlan.build(tag=5, trunks=[6, 7], mode="native-tagged").tagged == {5, 6, 7}
    assert PortVlan.build(trunks="").carries == ALL


def test_describe():
    assert PortVlan.build(tag=10, trunks="20-22,30").describe() == {
        "vlan_mode": "native-untagged", "tag": 10, "trunks": "20-22,30"}


@pytest.mark.parametrize("kwargs, words", [
    (dict(mode="access"), ["access", "tag"]),
    (dict(mode="access", tag=10, trunks=frozenset({20})), ["access", "trunks"]),
    (dict(mode="trunk", tag=10), ["trunk", "tag"]),
    (dict(mode="native-tagged"), ["native-tagged", "tag"]),
    (dict(mode="native-untagged"), ["native-untagged", "tag"]),
    (dict(mode="dot1q-tunnel", tag=10), ["vlan_mode", "dot1q-tunnel"]),
    (dict(mode="access", tag=4096), ["4096"]),
    (dict(mode="access", tag=-1), ["-1"]),
])
def test_bad_configs_are_refused_with_a_reason(kwargs, words):
    with pytest.raises(ValueError) as ei:
        PortVlan(**kwargs)
    for w in words:
        assert w in str(ei.value)


# -- VLAN lists -----------------------------------------------------------------------

@pytest.mark.parametrize("text, vids", [
    ("10", {10}),
    ("10,20", {10, 20}),
    ("10, 20 ,30", {10, 20, 30}),
    ("30-33", {30, 31, 32, 33}),
    ("1,3-5,9", {1, 3, 4, 5, 9}),
    ("0", {0}),
    ("4094", {4094}),
    ("0-4094", set(range(4095))),
    ("7-7", {7}),
    ("5,5,4-6", {4, 5, 6}),
    ("", set()),
    ("10,", {10}),
])
def test_parse_vlan_list(text, vids):
    assert parse_vlan_list(text) == vids
    assert isinstance(parse_vlan_list(text), frozenset)


def test_parse_vlan_list_from_ints():
    assert parse_vlan_list([10, 20, 20]) == {10, 20}
    assert parse_vlan_list(range(3)) == {0, 1, 2}


@pytest.mark.parametrize("text, part", [
    ("abc", "abc"),
    ("10,x", "x"),
    ("10-", "10-"),
    ("20-10", "20-10"),
    ("5000", "5000"),
    ("4000-4096", "4096"),
    ("4095", "4095"),               # reserved by 802.1Q
    ("1-4095", "4095"),
    ("1.5", "1.5"),
])
def test_parse_vlan_list_errors_name_the_bad_part(text, part):
    with pytest.raises(ValueError) as ei:
        parse_vlan_list(text)
    assert part in str(ei.value)


@pytest.mark.parametrize("bad", [[4096], [4095], [-1], [True], ["10"], [1.0]])
def test_parse_vlan_list_iterable_errors(bad):
    with pytest.raises(ValueError):
        parse_vlan_list(bad)


@pytest.mark.parametrize("vids, text", [
    ({1, 2, 3, 7}, "1-3,7"),
    ({5}, "5"),
    ({1, 3}, "1,3"),
    ({1, 2}, "1-2"),
    (set(), ""),
    ([9, 8, 7, 20, 0], "0,7-9,20"),
    (range(4096), "0-4095"),
])
def test_format_vlan_list(vids, text):
    assert format_vlan_list(vids) == text


@settings(max_examples=200, deadline=None)
@given(st.frozensets(st.integers(0, 4094), max_size=40))
def test_format_then_parse_round_trips(vids):
    text = format_vlan_list(vids)
    assert parse_vlan_list(text) == vids
    # ranges are maximal: no two adjacent parts could be merged
    parts = [p for p in text.split(",") if p]
    ends = [(int(p.split("-")[0]), int(p.split("-")[-1])) for p in parts]
    for (_, hi), (lo, _) in zip(ends, ends[1:], strict=False):
        assert lo > hi + 1
