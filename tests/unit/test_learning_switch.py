"""The bridge element: flooding, learning, VLAN modes, port flags, ingress checks, accounting."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from helpers import ARP, BCAST, LLDP, MCAST, MCAST6, NS, STP, ZERO, Bridge, eth, mac, tagged

from vswitch.elements.vlan import PortVlan
from vswitch.topology import PortConfig, StaticFdbConfig, Topology, build_dataplane

A, B, C, D = (mac(i) for i in (0xA, 0xB, 0xC, 0xD))


def trunks(n: int, **kw) -> list[PortConfig]:
    return [PortConfig(name=f"p{i}", **kw) for i in range(1, n + 1)]


@pytest.fixture
def br4():
    return Bridge(*trunks(4))


# -- flooding and learning --------------------------------------------------------------------

@pytest.mark.parametrize("dst, kind", [(BCAST, "flood_broadcast"), (MCAST, "flood_multicast"),
                                       (MCAST6, "flood_multicast"), (B, "flood_unknown")])
def test_flood_goes_to_every_other_port(br4, dst, kind):
    f = eth(dst, A)
    out = br4.send(2, f)
    assert out == {1: [f], 3: [f], 4: [f]}
    assert br4.counters["flooded"] == 1
    assert br4.counters[kind] == 1
    assert br4.counters["flood_copies"] == 3
    assert br4.counters["forwarded"] == 0
    br4.check_accounting()


def test_flood_copies_share_the_same_bytes(br4):
    br4.send(1, eth(BCAST, A))
    datas = [br4.out[n][0].data for n in (2, 3, 4)]
    assert datas[0] is datas[1] is datas[2]


def test_learned_unicast_goes_to_exactly_one_port(br4):
    br4.send(1, eth(BCAST, A))              # A learned on 1
    fb = eth(A, B)
    assert br4.send(3, fb) == {1: [fb]}     # B learned on 3
    fa = eth(B, A)
    assert br4.send(1, fa) == {3: [fa]}
    assert br4.counters["forwarded"] == 2
    assert br4.counters["flooded"] == 1
    assert br4.fdb.lookup(0, A, 0) == 1 and br4.fdb.lookup(0, B, 0) == 3
    br4.check_accounting()


def test_unicast_to_the_ingress_port_is_dropped(br4):
    br4.send(1, eth(BCAST, A))
    assert br4.send(1, eth(A, C)) == {}
    assert br4.drops["same_port"] == 1
    assert br4.graph.ports[1].rx_dropped == 1
    br4.check_accounting()


def test_hairpin_sends_back_out_of_the_ingress_port():
    br = Bridge(PortConfig(name="p1", hairpin=True), *trunks(3)[1:])
    br.send(1, eth(BCAST, A))
    f = eth(A, C)
    assert br.send(1, f) == {1: [f]}
    fb = eth(BCAST, C)
    assert br.send(1, fb) == {1: [fb], 2: [fb], 3: [fb]}
    # a port without hairpin still never gets its own frames
    assert 2 not in br.send(2, eth(BCAST, D))
    br.check_accounting()


def test_moved_mac_is_forwarded_to_its_new_port(br4):
    br4.send(1, eth(BCAST, A))
    br4.send(2, eth(BCAST, A), t=1)
    f = eth(A, B)
    assert br4.send(3, f, t=2) == {2: [f]}
    assert br4.fdb.stats["moved"] == 1


def test_learned_entry_ages_out_exactly_at_the_ageing_time():
    br = Bridge(*trunks(3), ageing_time=10)
    t0 = 5 * NS
    br.send(1, eth(BCAST, A), t=t0)
    f = eth(A, B)
    assert br.send(2, f, t=t0 + 10 * NS - 1) == {1: [f]}
    assert br.send(2, f, t=t0 + 10 * NS) == {1: [f], 3: [f]}


def test_traffic_from_a_mac_keeps_it_learned():
    br = Bridge(*trunks(3), ageing_time=10)
    br.send(1, eth(BCAST, A), t=0)
    br.send(1, eth(B, A), t=8 * NS)         # refresh through the data path
    f = eth(A, B)
    assert br.send(2, f, t=17 * NS) == {1: [f]}
    assert br.send(2, f, t=18 * NS) == {1: [f], 3: [f]}


def test_static_entry_from_the_topology():
    dp = build_dataplane(Topology(ports=trunks(3), fdb=[StaticFdbConfig(mac="02:00:00:00:00:0a", port="p3")]))
    got = {n: [] for n in (1, 2, 3)}
    for n in got:
        dp.graph.attach_egress(dp.switch, n, n, lambda b, now, n=n: got[n].extend(b))
    from vswitch.core import Frame
    f = eth(A, B)
    dp.graph.push(1, [Frame(f)], 10**15)
    assert [x.data for x in got[3]] == [f] and got[2] == [] and got[1] == []


def test_snapshot_includes_the_fdb(br4):
    br4.send(1, eth(BCAST, A))
    snap = br4.graph.snapshot()["elements"][br4.switch.name]
    assert snap["fdb"]["current_entries"] == 1
    assert snap["fdb"]["learned"] == 1
    assert snap["flooded"] == 1


# -- VLAN modes -------------------------------------------------------------------------------

def vlan_bridge() -> Bridge:
    """1: access 10, 2: access 20, 3: trunk all, 4: trunk 10,20, 5: native-untagged 10 + 20,
    6: native-tagged 10 + 20, 7: trunk 30."""
    return Bridge(
        PortConfig(name="acc10", tag=10),
        PortConfig(name="acc20", tag=20),
        PortConfig(name="trunk"),
        PortConfig(name="trunk1020", trunks="10,20"),
        PortConfig(name="nu10", vlan_mode="native-untagged", tag=10, trunks="20"),
        PortConfig(name="nt10", vlan_mode="native-tagged", tag=10, trunks="20"),
        PortConfig(name="trunk30", trunks="30"),
    )


def test_access_ingress_goes_out_tagged_or_untagged_per_port():
    br = vlan_bridge()
    f = eth(BCAST, A)
    t10 = tagged(f, 10)
    assert br.send(1, f) == {3: [t10], 4: [t10], 5: [f], 6: [t10]}
    br.check_accounting()


def test_tagged_ingress_on_a_trunk_is_popped_for_untagged_ports():
    br = vlan_bridge()
    inner = eth(BCAST, A)
    t20 = tagged(inner, 20)
    assert br.send(3, t20) == {2: [inner], 4: [t20], 5: [t20], 6: [t20]}
    t10 = tagged(inner, 10)
    assert br.send(4, t10) == {1: [inner], 3: [t10], 5: [inner], 6: [t10]}


def test_native_untagged_ingress():
    br = vlan_bridge()
    f = eth(BCAST, A)
    t10 = tagged(f, 10)
    assert br.send(5, f) == {1: [f], 3: [t10], 4: [t10], 6: [t10]}
    t20 = tagged(f, 20)
    assert br.send(5, t20) == {2: [f], 3: [t20], 4: [t20], 6: [t20]}


def test_native_tagged_ingress_untagged_and_tagged():
    br = vlan_bridge()
    f = eth(BCAST, A)
    t10 = tagged(f, 10)
    assert br.send(6, f) == {1: [f], 3: [t10], 4: [t10], 5: [f]}
    assert br.send(6, t10) == {1: [f], 3: [t10], 4: [t10], 5: [f]}


def test_untagged_on_trunk_all_is_vlan0_and_stays_untagged():
    br = vlan_bridge()
    f = eth(BCAST, A)
    assert br.send(3, f) == {}              # no other port carries VLAN 0
    assert br.drops["no_flood_ports"] == 1
    br2 = Bridge(*trunks(3))
    assert br2.send(1, f) == {2: [f], 3: [f]}


def test_pcp_and_dei_are_preserved():
    br = vlan_bridge()
    f = eth(BCAST, A)
    t = tagged(f, 20, pcp=0b1011)           # PCP 5, DEI set
    out = br.send(3, t)
    assert out[4] == [t] and out[6] == [t]
    assert out[2] == [f]


def test_priority_tag_classifies_as_the_untagged_vlan_and_keeps_pcp():
    br = vlan_bridge()
    f = eth(BCAST, A)
    prio = tagged(f, 0, pcp=6)
    out = br.send(1, prio)                  # access 10: VLAN 10, PCP 6
    assert out == {3: [tagged(f, 10, pcp=6)], 4: [tagged(f, 10, pcp=6)], 5: [f], 6: [tagged(f, 10, pcp=6)]}
    out = br.send(5, prio)                  # native-untagged 10
    assert out[3] == [tagged(f, 10, pcp=6)] and out[1] == [f]


def test_priority_tag_on_a_trunk_without_vlan0_is_not_allowed():
    br = vlan_bridge()
    assert br.send(4, tagged(eth(BCAST, A), 0)) == {}
    assert br.drops["vlan_not_allowed"] == 1


def test_priority_tag_on_a_trunk_of_all_vlans_is_vlan0():
    br = Bridge(*trunks(3))
    f = eth(BCAST, A)
    # VLAN 0, and it leaves the other trunks with its priority tag (as OVS and the Linux bridge)
    assert br.send(1, tagged(f, 0, pcp=3)) == {2: [tagged(f, 0, pcp=3)], 3: [tagged(f, 0, pcp=3)]}
    assert br.fdb.lookup(0, A, 0) == 1


def test_unicast_learned_in_one_vlan_is_unknown_in_another():
    br = vlan_bridge()
    br.send(3, tagged(eth(BCAST, A), 10))
    f = eth(A, B)
    assert br.send(4, tagged(f, 10)) == {3: [tagged(f, 10)]}
    out = br.send(4, tagged(f, 20))
    assert set(out) == {2, 3, 5, 6}
    assert br.fdb.lookup(10, A, 0) == 3 and br.fdb.lookup(20, A, 0) is None


def test_8021ad_outer_tag_is_an_untagged_frame_carried_transparently():
    br = vlan_bridge()
    qinq = eth(BCAST, A, vlan=100, tpid=0x88A8)
    assert qinq[12:14] == b"\x88\xa8"
    t10 = tagged(qinq, 10)
    assert br.send(1, qinq) == {3: [t10], 4: [t10], 5: [qinq], 6: [t10]}
    # an S-tag inside a C-tag comes out with the C-tag popped, the S-tag intact
    assert br.send(4, t10)[1] == [qinq]
    # 0x88a8 on a trunk without an untagged VLAN is an untagged frame it does not carry
    assert br.send(7, qinq) == {}
    assert br.drops["vlan_not_allowed"] == 1


@pytest.mark.parametrize("port, frame", [
    (4, tagged(eth(BCAST, A), 30)),         # trunk 10,20
    (4, eth(BCAST, A)),                     # untagged on a trunk without VLAN 0
    (1, tagged(eth(BCAST, A), 20)),         # access 10
    (5, tagged(eth(BCAST, A), 30)),         # native-untagged 10 + 20
    (7, tagged(eth(BCAST, A), 10)),
])
def test_vlan_not_allowed(port, frame):
    br = vlan_bridge()
    assert br.send(port, frame) == {}
    assert br.nonzero_drops() == {"vlan_not_allowed": 1}
    assert br.graph.ports[port].rx_dropped == 1
    assert len(br.fdb) == 0
    br.check_accounting()


def test_access_port_drops_tagged_frames_as_ovs_does():
    br = vlan_bridge()
    assert br.send(1, tagged(eth(BCAST, A), 10)) == {}
    assert br.drops["vlan_not_allowed"] == 1


def test_mixed_vlan_batch_is_tagged_per_frame():
    br = vlan_bridge()
    f1, f2, f3 = eth(BCAST, A), eth(BCAST, B), eth(BCAST, C, payload_len=80)
    out = br.send(3, tagged(f1, 10), tagged(f2, 20, pcp=2), tagged(f3, 10, pcp=7))
    assert out[1] == [f1, f3]
    assert out[2] == [f2]
    assert out[4] == [tagged(f1, 10), tagged(f2, 20, pcp=2), tagged(f3, 10, pcp=7)]
    assert out[5] == [f1, tagged(f2, 20, pcp=2), f3]
    assert out[6] == [tagged(f1, 10), tagged(f2, 20, pcp=2), tagged(f3, 10, pcp=7)]
    br.check_accounting()


def test_known_unicast_is_tagged_for_the_egress_port():
    br = vlan_bridge()
    br.send(1, eth(BCAST, A))               # A on access 10
    br.send(6, eth(BCAST, B))               # B on native-tagged 10 (untagged in -> VLAN 10)
    f = eth(B, A)
    assert br.send(1, f) == {6: [tagged(f, 10)]}
    g = eth(A, B)
    assert br.send(6, tagged(g, 10, pcp=4)) == {1: [g]}


# -- port flags ---------------------------------------------------------------------------------

def test_learning_off_does_not_learn():
    br = Bridge(PortConfig(name="p1", learning=False), *trunks(3)[1:])
    br.send(1, eth(BCAST, A))
    assert len(br.fdb) == 0
    f = eth(A, B)
    assert br.send(2, f) == {1: [f], 3: [f]}
    assert br.counters["flood_unknown"] == 1


def test_learning_off_does_not_move_a_known_mac():
    br = Bridge(PortConfig(name="p1", learning=False), *trunks(3)[1:])
    br.send(2, eth(BCAST, A))
    br.send(1, eth(BCAST, A), t=1)
    assert br.fdb.lookup(0, A, 2) == 2


@pytest.mark.parametrize("flag, dst", [("flood", B), ("mcast_flood", MCAST), ("bcast_flood", BCAST)])
def test_flood_flags(flag, dst):
    br = Bridge(PortConfig(name="p1"), PortConfig(name="p2", **{flag: False}), PortConfig(name="p3"))
    f = eth(dst, A)
    assert br.send(1, f) == {3: [f]}
    # the other kinds still reach p2
    for other in {B: "flood", MCAST: "mcast_flood", BCAST: "bcast_flood"}.items():
        if other[1] != flag:
            g = eth(other[0], C)
            assert 2 in br.send(1, g)


def test_known_unicast_ignores_the_flood_flag():
    br = Bridge(PortConfig(name="p1"), PortConfig(name="p2", flood=False, bcast_flood=False,
                                                  mcast_flood=False), PortConfig(name="p3"))
    br.send(2, eth(BCAST, B))
    f = eth(B, A)
    assert br.send(1, f) == {2: [f]}


def test_flood_with_no_eligible_port_is_a_named_drop():
    br = Bridge(PortConfig(name="p1"), PortConfig(name="p2", bcast_flood=False))
    assert br.send(1, eth(BCAST, A)) == {}
    assert br.nonzero_drops() == {"no_flood_ports": 1}
    assert br.graph.ports[1].rx_dropped == 1
    br.check_accounting()


def isolated_bridge() -> Bridge:
    return Bridge(PortConfig(name="iso1", isolated=True), PortConfig(name="iso2", isolated=True),
                  PortConfig(name="up1"), PortConfig(name="up2"))


def test_isolated_ports_never_flood_to_each_other():
    br = isolated_bridge()
    f = eth(BCAST, A)
    assert br.send(1, f) == {3: [f], 4: [f]}
    assert br.send(3, f) == {1: [f], 2: [f], 4: [f]}
    g = eth(B, A)                           # unknown unicast
    assert br.send(2, g) == {3: [g], 4: [g]}


def test_isolated_ports_never_unicast_to_each_other():
    br = isolated_bridge()
    br.send(2, eth(BCAST, B))
    br.send(3, eth(BCAST, C))
    assert br.send(1, eth(B, A)) == {}
    assert br.drops["isolated"] == 1
    f = eth(C, A)
    assert br.send(1, f) == {3: [f]}
    g = eth(A, C)
    assert br.send(3, g) == {1: [g]}
    br.check_accounting()


# -- ingress checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 6, 12, 13])
def test_runt_shorter_than_an_ethernet_header(br4, n):
    assert br4.send(1, eth(BCAST, A)[:n]) == {}
    assert br4.nonzero_drops() == {"runt": 1}
    br4.check_accounting()


@pytest.mark.parametrize("n", [14, 15, 16, 17])
def test_runt_vlan_tag_cut_short(br4, n):
    f = eth(BCAST, A, vlan=10)[:n]
    assert f[12:14] == b"\x81\x00" or n < 14
    assert br4.send(1, f) == {}
    assert br4.nonzero_drops() == {"runt": 1}


def test_minimal_headers_are_not_runts(br4):
    bare = BCAST + A + b"\x08\x00"           # 14 bytes, untagged
    assert set(br4.send(1, bare)) == {2, 3, 4}
    hdr = eth(BCAST, A, vlan=10, payload_len=0)[:18]
    out = br4.send(1, hdr)
    assert out[2] == [hdr]
    assert br4.nonzero_drops() == {}


def test_oversize_is_mtu_plus_18():
    br = Bridge(PortConfig(name="p1"), PortConfig(name="p2"), PortConfig(name="jumbo", mtu=9000),
                PortConfig(name="jumbo2", mtu=9000))
    max_std = eth(BCAST, A, vlan=10, payload_len=1500)       # 12 + 4 + 2 + 1500 = 1518
    assert len(max_std) == 1518
    assert br.send(1, max_std) == {2: [max_std], 3: [max_std], 4: [max_std]}
    too_big = eth(BCAST, A, vlan=10, payload_len=1501)
    assert br.send(1, too_big) == {}
    assert br.nonzero_drops() == {"oversize": 1}
    jumbo = eth(BCAST, B, payload_len=9004)                  # 9018 bytes, untagged
    assert len(jumbo) == 9018
    assert set(br.send(3, jumbo)) == {4}                     # (not over the MTU 1500 ports: egress_mtu)
    assert br.send(3, jumbo + b"\0") == {}
    assert br.drops["oversize"] == 2
    br.check_accounting()


def test_gso_superframe_with_vnet_header_is_not_oversize():
    br = Bridge(*trunks(2))
    big = eth(BCAST, A, payload_len=64000)
    hdr = vnet(gso_type=1, gso_size=1448, flags=1)          # TCPv4 GSO, as a TSO guest sends
    assert br.send(1, big, vnet=hdr) == {2: [big]}
    assert br.nonzero_drops() == {}
    # but a runt is a runt, vnet or not
    assert br.send(1, big[:10], vnet=hdr) == {}
    assert br.nonzero_drops() == {"runt": 1}


@pytest.mark.parametrize("dst", [STP, LLDP, bytes.fromhex("0180c2000002"), bytes.fromhex("0180c2000003"),
                                 bytes.fromhex("0180c200000f")])
def test_reserved_link_local_group_addresses_are_not_forwarded(br4, dst):
    assert br4.send(1, eth(dst, A)) == {}
    assert br4.nonzero_drops() == {"reserved_multicast": 1}
    br4.check_accounting()


@pytest.mark.parametrize("dst", [bytes.fromhex("0180c2000010"), bytes.fromhex("0180c2000100"),
                                 bytes.fromhex("0180c3000000")])
def test_group_addresses_next_to_the_reserved_range_are_flooded(br4, dst):
    assert set(br4.send(1, eth(dst, A))) == {2, 3, 4}


def test_reserved_frames_are_filtered_before_learning(br4):
    """The docstring's order: destination filter (3) before learning (4)."""
    br4.send(1, eth(STP, A))
    assert br4.fdb.lookup(0, A, 0) is None


@pytest.mark.parametrize("src", [ZERO, BCAST, MCAST, bytes.fromhex("0300000000aa")])
def test_invalid_source_mac_is_dropped_and_not_learned(br4, src):
    assert br4.send(1, eth(BCAST, src)) == {}
    assert br4.send(1, eth(B, src)) == {}
    assert br4.nonzero_drops() == {"invalid_src_mac": 2}
    assert len(br4.fdb) == 0
    br4.check_accounting()


# -- reconfiguration -------------------------------------------------------------------------------

def test_vlan_change_flushes_the_ports_learned_entries(br4):
    br4.send(1, eth(BCAST, A))
    br4.send(1, tagged(eth(BCAST, C), 10))
    br4.send(2, eth(BCAST, B))
    br4.switch.update_port(1, flood=False)  # not a VLAN change: kept
    assert {(e.vlan, e.mac) for e in br4.fdb.entries()} == {(0, A), (10, C), (0, B)}
    br4.switch.update_port(1, vlan=PortVlan.build(tag=10))
    assert {(e.vlan, e.mac, e.port) for e in br4.fdb.entries()} == {(0, B, 2)}
    # and the new config is in force: untagged in on port 1 is VLAN 10 now
    f = eth(BCAST, D)
    assert br4.send(1, f) == {2: [tagged(f, 10)], 3: [tagged(f, 10)], 4: [tagged(f, 10)]}


def test_vlan_change_updates_the_flood_set(br4):
    f = eth(BCAST, A)
    assert set(br4.send(1, f)) == {2, 3, 4}
    br4.switch.update_port(3, vlan=PortVlan.build(tag=10))
    assert set(br4.send(1, f)) == {2, 4}


def test_removed_port_entries_are_flushed_and_it_gets_nothing(br4):
    br4.send(2, eth(BCAST, B))
    br4.fdb.add_static(0, C, 2)
    br4.send(3, eth(BCAST, D))
    br4.dp.remove_port("p2")
    assert {(e.mac, e.port) for e in br4.fdb.entries()} == {(D, 3)}
    f = eth(B, A)
    assert br4.send(1, f) == {3: [f], 4: [f]}
    g = eth(C, A)
    assert br4.send(1, g) == {3: [g], 4: [g]}
    assert br4.switch.unconnected == {}


def test_added_port_joins_the_flood_set(br4):
    br4.dp.add_port(PortConfig(name="p9"), 9)
    got = []
    br4.graph.attach_egress(br4.switch, 9, 9, lambda b, now: got.extend(b))
    f = eth(BCAST, A)
    br4.send(1, f)
    assert [x.data for x in got] == [f]


# -- the accounting identity ----------------------------------------------------------------------

def test_every_ingress_frame_is_counted_exactly_once():
    br = vlan_bridge()
    br.send(1, eth(BCAST, A))                          # flooded
    br.send(3, tagged(eth(A, B), 10))                  # forwarded
    br.send(3, tagged(eth(A, C), 10), tagged(eth(MCAST, C), 20), tagged(eth(B, D), 30))  # fwd, flood, flood
    br.send(1, eth(A, C))                              # same_port (A is on 1 in VLAN 10)
    br.send(4, tagged(eth(BCAST, A), 30))              # vlan_not_allowed
    br.send(1, eth(BCAST, A)[:10])                     # runt
    br.send(1, eth(BCAST, A, payload_len=2000))        # oversize
    br.send(1, eth(STP, A))                            # reserved
    br.send(1, eth(BCAST, ZERO))                       # invalid_src_mac
    br.send(7, eth(BCAST, A))                          # vlan_not_allowed (trunk 30, untagged)
    br.send(7, tagged(eth(BCAST, A), 30))              # flooded (to the trunk of all VLANs)
    br.send(3, eth(BCAST, A))                          # no_flood_ports (VLAN 0 is on port 3 only)
    c = br.counters
    assert c["forwarded"] == 2
    assert c["flooded"] == 4
    assert br.nonzero_drops() == {"same_port": 1, "vlan_not_allowed": 2, "runt": 1, "oversize": 1,
                                  "reserved_multicast": 1, "invalid_src_mac": 1, "no_flood_ports": 1}
    assert sum(p.rx_packets for p in br.graph.ports.values()) == 14
    br.check_accounting()


def test_a_port_no_driver_transmits_for_counts_what_reaches_it_as_tx_dropped():
    dp = build_dataplane(Topology(ports=trunks(3)))
    from vswitch.core import Frame
    dp.graph.push(1, [Frame(eth(BCAST, A))], 0)
    assert dp.switch.counters["flood_copies"] == 2
    ports = dp.graph.ports
    assert [(ports[n].tx_packets, ports[n].tx_dropped) for n in (2, 3)] == [(0, 1), (0, 1)]
    assert dp.switch.unconnected == {}


# -- FDB configuration through the switch ------------------------------------------------------------

def test_the_switch_uses_the_fdb_it_is_given():
    """Regression: ``fdb or Fdb()`` replaced an (empty, hence falsy) configured Fdb by a default one."""
    from vswitch.elements.fdb import Fdb
    from vswitch.elements.learning_switch import LearningSwitch
    mine = Fdb(max_entries=5, ageing_ns=7 * NS)
    assert LearningSwitch("sw", mine).fdb is mine
    br = Bridge(*trunks(2), ageing_time=42, mac_table_size=3, move_log=2,
                damp_moves=2, damp_window=4, damp_hold=6)
    f = br.fdb
    assert (f.max_entries, f.ageing_ns) == (3, 42 * NS)
    assert (f.damp_moves, f.damp_window_ns, f.damp_hold_ns) == (2, 4 * NS, 6 * NS)
    assert f.moves.maxlen == 2


def test_table_size_limits_learning_through_the_switch():
    br = Bridge(*trunks(3), mac_table_size=2)
    br.send(1, eth(BCAST, A), t=0)
    br.send(1, eth(BCAST, B), t=1)
    br.send(2, eth(BCAST, C), t=2)          # full: port 1 (2 entries) loses A
    assert {e.mac for e in br.fdb.entries()} == {B, C}
    f = eth(A, D)
    assert set(br.send(3, f, t=3)) == {1, 2}


def test_port_mac_limit_stop_still_forwards():
    br = Bridge(PortConfig(name="p1", mac_limit=1), *trunks(3)[1:])
    br.send(1, eth(BCAST, A))
    f = eth(BCAST, B)
    assert br.send(1, f) == {2: [f], 3: [f]}
    assert br.fdb.stats["learn_refused"] == 1
    g = eth(B, C)
    assert set(br.send(2, g)) == {1, 3}     # B was not learned: unknown unicast
    br.check_accounting()


def test_move_damping_through_the_switch():
    br = Bridge(*trunks(3), damp_moves=1, damp_window=10, damp_hold=30)
    br.send(1, eth(BCAST, A), t=0)
    br.send(2, eth(BCAST, A), t=1 * NS)     # first move: allowed
    br.send(1, eth(BCAST, A), t=2 * NS)     # second within 10 s: frozen on 2
    f = eth(A, B)
    assert br.send(3, f, t=3 * NS) == {2: [f]}
    assert br.fdb.stats["moves_damped"] == 1
    br.send(1, eth(BCAST, A), t=32 * NS)    # hold over
    assert br.send(3, f, t=33 * NS) == {1: [f]}


def test_static_entry_never_leaks_a_vlan_into_a_port_that_does_not_carry_it():
    M = mac(0x55)
    br = Bridge(*trunks(3))
    br.fdb.add_static(10, M, 2)
    f = eth(M, A, vlan=10)
    assert br.send(1, f) == {2: [f]}
    br.switch.update_port(2, vlan=PortVlan.build(tag=20))   # port 2 no longer carries VLAN 10
    out = br.send(1, f)
    assert 2 not in out
    br.check_accounting()


def test_a_burst_is_switched_like_single_frames():
    """Within a batch the switch reuses the last plain forward's decision for identical headers;
    the result is the same as sending the frames one per batch, counters included."""
    frames = [eth(B, A, payload=bytes([i]) * 46) for i in range(5)] + [eth(C, A), eth(B, A, ARP)]
    one, many = Bridge(*trunks(3)), Bridge(*trunks(3))
    for br in (one, many):
        br.send(2, eth(BCAST, B))
        br.send(1, eth(BCAST, A))
    singles: dict[int, list[bytes]] = {}
    for f in frames:
        for port, got in one.send(1, f, t=1).items():
            singles.setdefault(port, []).extend(got)
    assert many.send(1, *frames, t=1) == singles == {2: frames, 3: [frames[5]]}   # C: unknown, flooded
    assert many.counters == one.counters
    many.check_accounting()


def test_learning_mid_batch_forgets_the_memo():
    """A frame that learns (here: its source on another VLAN, which evicts the port's only
    entry) changes the FDB under the batch: the next identical header must be decided afresh
    (its source is unknown again and is re-learned), not copied from the frame before."""
    br = Bridge(PortConfig(name="p1", mac_limit=1, mac_limit_policy="evict"), *trunks(3)[1:])
    br.send(2, eth(BCAST, B))
    br.send(1, eth(BCAST, A))
    f = eth(B, A)
    got = br.send(1, f, tagged(f, 10), f, t=1)
    assert got == {2: [f, tagged(f, 10), f], 3: [tagged(f, 10)]}     # B is unknown on VLAN 10
    assert {(e.vlan, e.mac) for e in br.fdb.entries(1)} == {(0, B), (0, A)}   # A re-learned on VLAN 0
    assert br.fdb.stats["evicted"] == 2


# -- priority tags (VID 0) and VLAN 0 on egress, per port mode (OVS's rules) -------------------

def prio_bridge() -> Bridge:
    """1: no VLAN config (a trunk of every VLAN), 2: the same, 3: trunk 0,10, 4: access 10,
    5: native-tagged 10, 6: native-untagged 10, 7: trunk 10."""
    return Bridge(
        PortConfig(name="none1"),
        PortConfig(name="none2"),
        PortConfig(name="t0_10", trunks="0,10"),
        PortConfig(name="acc10", tag=10),
        PortConfig(name="nt10", vlan_mode="native-tagged", tag=10),
        PortConfig(name="nu10", vlan_mode="native-untagged", tag=10),
        PortConfig(name="t10", trunks="10"),
    )


def test_priority_tag_crosses_ports_without_vlan_config_unchanged():
    """Issue 8: a VID 0 / PCP 5 frame left untagged (56 bytes instead of 60); the Linux bridge and
    OVS pass it unchanged."""
    br = Bridge(*trunks(3))
    prio = tagged(eth(BCAST, A, payload_len=42), 0, pcp=5)
    assert len(prio) == 60
    assert br.send(1, prio) == {2: [prio], 3: [prio]}
    # and as known unicast (the memo must not drop the tag either)
    br.send(2, eth(BCAST, B))
    u = tagged(eth(B, A), 0, pcp=5)
    assert br.send(1, u, u, u) == {2: [u, u, u]}
    br.check_accounting()


def test_vlan0_egress_per_port_mode():
    """VLAN 0 (untagged and priority-tagged frames of a trunk) leaves a trunk that carries it as it
    came: untagged stays untagged, a priority tag keeps its PCP and DEI.  Native ports never carry
    VLAN 0 (OVS: 'force trunking the native VLAN and prohibit trunking VLAN 0'), so nothing of
    VLAN 0 leaks into their native VLAN or out of them with a VID 0 tag; access ports carry only
    their own VLAN."""
    br = prio_bridge()
    f = eth(BCAST, A)
    assert br.send(1, f) == {2: [f], 3: [f]}
    for pcp in (5, 0b0001, 0b1111):                       # PCP 5; DEI alone; PCP 7 + DEI
        prio = tagged(f, 0, pcp=pcp)
        assert br.send(1, prio) == {2: [prio], 3: [prio]}
    br.check_accounting()


def test_priority_tag_with_a_zero_tci_leaves_untagged():
    """OVS omits an 802.1Q header whose TCI would be zero (priority-tags=never, its default):
    a VID 0 tag with PCP 0 and DEI 0 carries nothing and leaves as an untagged frame."""
    br = prio_bridge()
    f = eth(BCAST, A)
    assert br.send(1, tagged(f, 0)) == {2: [f], 3: [f]}


def test_priority_tag_into_a_native_vlan_keeps_its_pcp_where_the_vlan_leaves_tagged():
    br = prio_bridge()
    f = eth(BCAST, A)
    t10 = tagged(f, 10, pcp=5)
    expect = {1: [t10], 2: [t10], 3: [t10], 5: [t10], 6: [f], 7: [t10]}   # nu10: native, untagged
    assert br.send(4, tagged(f, 0, pcp=5)) == expect                      # access 10
    expect = {1: [t10], 2: [t10], 3: [t10], 4: [f], 6: [f], 7: [t10]}
    assert br.send(5, tagged(f, 0, pcp=5)) == expect                      # native-tagged 10
    expect = {1: [t10], 2: [t10], 3: [t10], 4: [f], 5: [t10], 7: [t10]}
    assert br.send(6, tagged(f, 0, pcp=5)) == expect                      # native-untagged 10
    assert br.send(7, tagged(f, 0, pcp=5)) == {}                          # trunk 10: no VLAN 0
    assert br.nonzero_drops() == {"vlan_not_allowed": 1}
    br.check_accounting()


def test_native_ports_do_not_carry_vlan0():
    """With every VLAN trunked (empty trunks) or VLAN 0 listed, a native-tagged or native-untagged
    port still does not carry VLAN 0, as in OVS: untagged frames of a plain trunk never reach it."""
    br = Bridge(PortConfig(name="none"), PortConfig(name="nt", vlan_mode="native-tagged", tag=10),
                PortConfig(name="nu", vlan_mode="native-untagged", tag=10, trunks="0,20"))
    f = eth(BCAST, A)
    assert br.send(1, f) == {}
    assert br.send(1, tagged(f, 0, pcp=3)) == {}
    assert br.nonzero_drops() == {"no_flood_ports": 2}
    assert br.send(3, tagged(f, 0, pcp=3)) == {1: [tagged(f, 10, pcp=3)], 2: [tagged(f, 10, pcp=3)]}


# -- VLAN 4095 on the wire --------------------------------------------------------------------

@pytest.mark.parametrize("port", [1, 2, 3, 4, 5, 6, 7])
def test_vid_4095_is_reserved_and_dropped_on_every_port_mode(port):
    """802.1Q reserves VID 4095; the Linux bridge never holds it in a VLAN filter (br_vlan_valid_id)."""
    br = prio_bridge()
    assert br.send(port, tagged(eth(BCAST, A), 4095, pcp=2)) == {}
    assert br.nonzero_drops() == {"vlan_reserved": 1}
    assert br.graph.ports[port].rx_dropped == 1
    assert len(br.fdb) == 0
    br.check_accounting()


def test_vid_4094_is_an_ordinary_vlan():
    br = Bridge(*trunks(3))
    t = tagged(eth(BCAST, A), 4094)
    assert br.send(1, t) == {2: [t], 3: [t]}


# -- egress MTU (the Linux bridge's is_skb_forwardable) ----------------------------------------

def vnet(gso_type: int = 0, gso_size: int = 0, flags: int = 0) -> bytes:
    """A virtio-net header written here by hand: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset."""
    return struct.pack("<BBHHHH", flags, gso_type, 54 if gso_type else 0, gso_size, 34, 16)


def mtu_bridge() -> Bridge:
    """1: MTU 9000, 2: MTU 1500, 3: MTU 9000, 4: MTU 1500 trunk 10 (tags what it sends)."""
    return Bridge(PortConfig(name="jumbo1", mtu=9000), PortConfig(name="std", mtu=1500),
                  PortConfig(name="jumbo2", mtu=9000), PortConfig(name="std10", trunks="0,10"))


def test_frame_over_the_egress_mtu_is_dropped_and_counted():
    """Issue 8: a 9000-byte frame from an MTU 9000 port was written whole to an MTU 1500 port."""
    br = mtu_bridge()
    big = eth(BCAST, A, payload_len=9000)                  # 9014 bytes: L3 9000
    assert br.send(1, big) == {3: [big]}                   # flooded, but only where it fits
    ports = br.graph.ports
    assert (ports[2].tx_dropped, ports[4].tx_dropped, ports[3].tx_dropped) == (1, 1, 0)
    assert br.counters["flooded"] == 1 and br.counters["flood_copies"] == 1
    assert br.nonzero_drops() == {}                        # the frame itself was flooded
    br.send(2, eth(BCAST, B))                              # B on the MTU 1500 port
    uni = eth(B, A, payload_len=9000)
    assert br.send(1, uni) == {}
    assert br.nonzero_drops() == {"egress_mtu": 1}
    assert ports[2].tx_dropped == 2 and ports[2].tx_packets == 0
    assert ports[1].rx_dropped == 1
    br.check_accounting()


def test_egress_mtu_boundary_is_mtu_plus_18_without_the_tag_the_port_adds():
    """Linux: skb->len > mtu + ETH_HLEN + VLAN_HLEN, skb->len without the (accelerated) outer tag.
    So an untagged frame of MTU + 18 bytes fits, one more byte does not, and the tag a trunk adds
    on egress is not counted against its MTU."""
    br = mtu_bridge()
    fits = eth(BCAST, A, payload_len=1504)                 # 1518 bytes
    assert len(fits) == 1518
    assert br.send(1, fits) == {2: [fits], 3: [fits], 4: [fits]}
    over = eth(BCAST, A, payload_len=1505)
    assert br.send(1, over) == {3: [over]}
    assert br.graph.ports[2].tx_dropped == 1 and br.graph.ports[4].tx_dropped == 1
    # tagged in and out: the same limit applies to the frame without its tag, so a trunk with
    # MTU 1500 sends a 1522-byte tagged frame and refuses a 1523-byte one
    t10 = tagged(eth(BCAST, C, payload_len=1504), 10)
    assert len(t10) == 1522
    assert br.send(1, t10) == {2: [t10], 3: [t10], 4: [t10]}
    t10 = tagged(eth(BCAST, C, payload_len=1505), 10)
    assert br.send(1, t10) == {3: [t10]}
    assert br.graph.ports[2].tx_dropped == 2 and br.graph.ports[4].tx_dropped == 2
    br.check_accounting()


def test_a_flood_that_fits_nowhere_is_dropped_as_egress_mtu():
    br = Bridge(PortConfig(name="jumbo", mtu=9000), *trunks(3)[1:])
    big = eth(B, A, payload_len=2000)                      # unknown unicast, flooded
    assert br.send(1, big) == {}
    assert br.nonzero_drops() == {"egress_mtu": 1}
    assert br.counters["flooded"] == 0 and br.counters["flood_unknown"] == 0
    assert [br.graph.ports[n].tx_dropped for n in (2, 3)] == [1, 1]
    assert br.graph.ports[1].rx_dropped == 1
    br.check_accounting()


def test_the_within_batch_memo_does_not_bypass_the_egress_mtu():
    """Frames with the same first 14 bytes share a forwarding decision inside a batch; their
    lengths may differ, so the MTU check must still see each of them."""
    br = mtu_bridge()
    br.send(2, eth(BCAST, B))
    br.send(1, eth(BCAST, A))
    small, big = eth(B, A), eth(B, A, payload_len=5000)
    assert br.send(1, small, small, big, small, big, small) == {2: [small] * 4}
    assert br.drops["egress_mtu"] == 2
    br.check_accounting()


def test_an_mtu_changed_at_run_time_applies_to_the_next_batch():
    br = mtu_bridge()
    br.send(2, eth(BCAST, B))
    big = eth(B, A, payload_len=4000)
    assert br.send(1, big) == {}
    br.switch.update_port(2, mtu=9000)                     # as `vswitchctl set-port std mtu=9000`
    assert br.send(1, big) == {2: [big]}
    br.switch.update_port(1, mtu=1500)                     # now nothing is over any egress MTU
    br.switch.update_port(2, mtu=1500)
    assert br.send(1, big) == {}
    assert br.nonzero_drops() == {"egress_mtu": 1, "oversize": 1}
    br.check_accounting()


def test_gso_superframe_passes_the_egress_mtu():
    """A frame with a virtio-net header carrying a GSO type is segmented downstream (by the TAP's
    or the kernel's TSO), as the Linux bridge lets skb_is_gso() frames through."""
    br = mtu_bridge()
    sup = eth(BCAST, A, payload_len=64000)
    assert br.send(1, sup, vnet=vnet(gso_type=1, gso_size=1448, flags=1)) == {2: [sup], 3: [sup], 4: [sup]}
    assert br.send(2, sup, vnet=vnet(gso_type=4, gso_size=1428, flags=1)) == {1: [sup], 3: [sup], 4: [sup]}
    # a header without a GSO type (checksum offload only) does not exempt a frame
    big = eth(BCAST, A, payload_len=2000)
    assert br.send(1, big, vnet=vnet(flags=1)) == {3: [big]}
    assert sum(p.tx_dropped for p in br.graph.ports.values()) == 2
    br.check_accounting()


# -- flood counters ----------------------------------------------------------------------------

@pytest.mark.parametrize("flag, dst, kind", [("bcast_flood", BCAST, "flood_broadcast"),
                                             ("mcast_flood", MCAST, "flood_multicast"),
                                             ("flood", B, "flood_unknown")])
def test_a_flood_with_nowhere_to_go_is_not_counted_as_flooded_by_kind(flag, dst, kind):
    """Issue 8: flood_broadcast + flood_multicast + flood_unknown counted frames then dropped as
    no_flood_ports, so the three did not add up to flooded."""
    br = Bridge(PortConfig(name="p1"), PortConfig(name="p2", **{flag: False}))
    assert br.send(1, eth(dst, A)) == {}
    assert br.nonzero_drops() == {"no_flood_ports": 1}
    assert br.counters[kind] == 0
    br.check_accounting()


# -- the order of the steps ---------------------------------------------------------------------

def test_a_frame_failing_several_checks_counts_under_the_first_in_docs_order():
    """docs/switching.md lists the steps in the code's order (as OVS's xlate_normal: VLAN check,
    reserved destination, then learning); a frame failing two checks counts under the earlier."""
    br = vlan_bridge()
    # VLAN before the reserved destination: a reserved frame in a VLAN the port does not carry
    assert br.send(4, tagged(eth(STP, A), 30)) == {}
    assert br.nonzero_drops() == {"vlan_not_allowed": 1}
    # VLAN 4095 before anything about the VLAN the port carries
    assert br.send(1, tagged(eth(STP, A), 4095)) == {}
    assert br.drops["vlan_reserved"] == 1
    # reserved destination before the source check
    assert br.send(3, eth(STP, MCAST)) == {}
    assert br.drops["reserved_multicast"] == 1 and br.drops["invalid_src_mac"] == 0
    # runt before VLAN
    assert br.send(4, tagged(eth(BCAST, A), 30)[:16]) == {}
    assert br.drops["runt"] == 1
    br.check_accounting()


def test_docs_list_the_steps_in_the_codes_order():
    text = (Path(__file__).resolve().parents[2] / "docs" / "switching.md").read_text()
    steps = text.split("## Per frame, in order", 1)[1].split("\n## ", 1)[0]
    order = ["`runt`", "`oversize`", "`vlan_reserved`", "`vlan_not_allowed`", "`reserved_multicast`",
             "`invalid_src_mac`", "**Learning**", "`same_port`", "`no_flood_ports`", "`egress_mtu`",
             "**Egress VLAN**"]
    at = [steps.find(s) for s in order]
    assert -1 not in at, [s for s, i in zip(order, at, strict=True) if i < 0]
    assert at == sorted(at), sorted(order, key=lambda s: steps.find(s))


def test_flood_copies_are_frames_of_their_own_sharing_the_bytes():
    """What one port's path annotates or edits on a flooded frame, the other ports never see."""
    from vswitch.core import Frame
    dp = build_dataplane(Topology(ports=[PortConfig(name="a"), PortConfig(name="t1", trunks="10"),
                                         PortConfig(name="t2", trunks="10"), PortConfig(name="u1", tag=10),
                                         PortConfig(name="u2", tag=10)]))
    got: dict[str, list] = {}
    for number, port in dp.graph.ports.items():
        dp.graph.set_transmit(number, lambda b, now, name=port.name: got.setdefault(name, []).extend(b))
    u1 = dp.numbers["u1"]
    dp.graph.push(u1, [Frame(eth(BCAST, A))], 0)            # access VLAN 10: to t1, t2 tagged, u2 plain
    frames = [got[n][0] for n in ("t1", "t2", "u2")]
    assert len({id(f) for f in frames}) == 3
    assert frames[0].data is frames[1].data                 # the tagged bytes are made once
    frames[0].ts_ns = 999
    frames[0].pool = 5
    assert frames[1].ts_ns == 0 and frames[1].pool == -1 and frames[2].ts_ns == 0
